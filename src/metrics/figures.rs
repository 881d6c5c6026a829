//! The figures the engine has counted, as data: what a checkpoint keeps of the metrics so that,
//! restored into a fresh process and followed by the log after the checkpoint, every counter
//! goes on from where it stood (one Prometheus already scraped never goes down).
//!
//! What they hold: every series of the families the engine writes (funnel counters, orders,
//! touchpoints, friction, the engine's own counters, the engine's filter reasons), the money
//! counters in exact micro-units and the engine's histograms (buckets and sum). Not the gauges
//! (the engine rebuilds them from the sessions it restores), nor the process's own metrics
//! (collector, HTTP, transport, Kafka, lag), which start again at zero with the process.
//!
//! Series are named, not indexed: family, label names and label values as the exposition
//! shows them, so a checkpoint reads without the code that wrote it and survives a change of
//! configuration. Each family's label sets come from the `Space` (`cells`) its series were
//! created from, noted when it was registered: reading asks the family for each (never
//! creating one); restoring maps the names onto that space, and skips what it no longer has,
//! saying why. A label added to a family's space (issue 15's `journey`) is read and restored
//! with no change here; only a checkpoint written before it lacks the label (`MissingLabel`).
//!
//! Values are exact: counters as integers, money as 128-bit integers of micro-units (never
//! through an `f64`), histograms as bucket counts and the sum's bits.
//!
//! Restoring adds to the series: restore into a fresh `Metrics`, before anything is counted
//! (into metrics that have counted already, the sums are what both counted).

use super::cells::Space;
use super::histogram::{Histogram, HistogramFigure};
use super::money::MoneyCounter;
use super::{CounterFamily, Labels, Metrics};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};

/// Every series of the families the engine writes that holds anything, with exact values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub counters: Vec<Figure<u64>>,
    /// The money counters, in micro-units.
    pub money: Vec<Figure<Micros>>,
    pub histograms: Vec<Figure<HistogramFigure>>,
}

/// One series and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure<V> {
    /// The family's name, as registered (without `_total`).
    pub family: String,
    /// Label names and values.
    pub labels: BTreeMap<String, String>,
    pub value: V,
}

/// An exact amount in micro-units, written as a decimal string: JSON numbers past 2^53 are
/// rounded by many readers, and `serde_json::Value` holds none past `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micros(pub u128);

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Micros).map_err(serde::de::Error::custom)
    }
}

/// What a restore did: how many series it added to, and which it skipped and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FiguresRestored {
    pub restored: usize,
    pub skipped: Vec<Skipped>,
}

/// A series left out of a restore.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub family: String,
    pub labels: BTreeMap<String, String>,
    pub reason: SkipReason,
}

/// Why a series was left out: the running code or configuration has no place for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("no family of this name is kept here (or it has no series)")]
    UnknownFamily,
    #[error("the family has no label {0:?}")]
    UnknownLabel(String),
    #[error("the series lacks the family's label {0:?}")]
    MissingLabel(String),
    /// A removed site, stage, currency, ...
    #[error("{label} {value:?} is not configured")]
    NotConfigured { label: String, value: String },
    #[error("the histogram's buckets have changed")]
    BucketLayout,
    #[error("the family keeps another kind of value")]
    WrongKind,
}

/// A family the figures hold: its name, the label sets its series may have, and the series.
#[derive(Debug)]
pub(super) struct Book {
    name: &'static str,
    space: Space,
    series: Series,
}

impl Book {
    pub(super) fn new(name: &'static str, space: Space, series: Series) -> Self {
        Self {
            name,
            space,
            series,
        }
    }

    /// The family's name, as registered.
    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    /// A figure of this family's series `labels`.
    fn figure<V>(&self, labels: &Labels, value: V) -> Figure<V> {
        Figure {
            family: self.name.to_string(),
            labels: (labels.iter())
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            value,
        }
    }
}

/// Where a family's series are, by kind of value.
#[derive(Debug)]
pub(super) enum Series {
    Counters(CounterFamily),
    Money(Family<Labels, MoneyCounter>),
    Histograms(Family<Labels, Histogram, fn() -> Histogram>),
    /// A counter without labels (its space is the one empty label set).
    Counter(Counter),
}

impl From<CounterFamily> for Series {
    fn from(f: CounterFamily) -> Self {
        Series::Counters(f)
    }
}
impl From<Family<Labels, MoneyCounter>> for Series {
    fn from(f: Family<Labels, MoneyCounter>) -> Self {
        Series::Money(f)
    }
}
impl From<Family<Labels, Histogram, fn() -> Histogram>> for Series {
    fn from(f: Family<Labels, Histogram, fn() -> Histogram>) -> Self {
        Series::Histograms(f)
    }
}

impl Metrics {
    /// The figures of every series the engine writes that holds anything (a series at zero
    /// adds nothing on restore). Take them between events, with the sessions' snapshot: an
    /// event applied meanwhile may be in some series and not others.
    pub fn figures(&self) -> Figures {
        let mut out = Figures::default();
        for book in &self.ledger {
            for labels in book.space.sets() {
                match &book.series {
                    Series::Counter(c) if c.get() != 0 => {
                        out.counters.push(book.figure(&labels, c.get()));
                    }
                    Series::Counter(_) => {}
                    Series::Counters(f) => {
                        if let Some(n) = f.get(&labels).map(|c| c.get()).filter(|n| *n != 0) {
                            out.counters.push(book.figure(&labels, n));
                        }
                    }
                    Series::Money(f) => {
                        if let Some(n) = f.get(&labels).map(|m| m.micros()).filter(|n| *n != 0) {
                            out.money.push(book.figure(&labels, Micros(n)));
                        }
                    }
                    Series::Histograms(f) => {
                        if let Some(h) = f.get(&labels).filter(|h| h.count() != 0) {
                            out.histograms.push(book.figure(&labels, h.figure()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Adds `figures` to these metrics, series by series, mapped by name onto the running
    /// configuration: call it on a fresh `Metrics`, before the engine counts anything. A series
    /// this configuration has no place for (a removed site, stage or currency, changed
    /// buckets, a family no longer kept) is skipped and reported, never guessed at.
    pub fn restore_figures(&self, figures: &Figures) -> FiguresRestored {
        let books: HashMap<&str, &Book> = self.ledger.iter().map(|b| (b.name, b)).collect();
        let mut report = FiguresRestored::default();
        for f in &figures.counters {
            let added = restore(&books, f, |s, labels| s.add_count(&labels, f.value));
            report.note(f, added);
        }
        for f in &figures.money {
            let added = restore(&books, f, |s, labels| s.add_money(&labels, f.value.0));
            report.note(f, added);
        }
        for f in &figures.histograms {
            let added = restore(&books, f, |s, labels| s.add_histogram(&labels, &f.value));
            report.note(f, added);
        }
        report
    }
}

impl Series {
    fn add_count(&self, labels: &Labels, n: u64) -> Result<(), SkipReason> {
        match self {
            Series::Counter(c) => c.inc_by(n),
            Series::Counters(f) => f.get_or_create(labels).inc_by(n),
            _ => return Err(SkipReason::WrongKind),
        };
        Ok(())
    }

    fn add_money(&self, labels: &Labels, micros: u128) -> Result<(), SkipReason> {
        let Series::Money(f) = self else {
            return Err(SkipReason::WrongKind);
        };
        f.get_or_create(labels).add_exact(micros);
        Ok(())
    }

    fn add_histogram(&self, labels: &Labels, h: &HistogramFigure) -> Result<(), SkipReason> {
        let Series::Histograms(f) = self else {
            return Err(SkipReason::WrongKind);
        };
        let same_buckets = f.get_or_create(labels).add_figure(h);
        same_buckets.then_some(()).ok_or(SkipReason::BucketLayout)
    }
}

/// Finds `f`'s family and series, and adds its value with `add`.
fn restore<V>(
    books: &HashMap<&str, &Book>,
    f: &Figure<V>,
    add: impl FnOnce(&Series, Labels) -> Result<(), SkipReason>,
) -> Result<(), SkipReason> {
    let book = books
        .get(f.family.as_str())
        .ok_or(SkipReason::UnknownFamily)?;
    add(&book.series, book.space.locate(&f.labels)?)
}

impl FiguresRestored {
    fn note<V>(&mut self, f: &Figure<V>, result: Result<(), SkipReason>) {
        match result {
            Ok(()) => self.restored += 1,
            Err(reason) => self.skipped.push(Skipped {
                family: f.family.clone(),
                labels: f.labels.clone(),
                reason,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
