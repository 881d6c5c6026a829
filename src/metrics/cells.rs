//! The building blocks of the metric structs: a registrar that registers a family in one line
//! (and notes those the figures keep), the label sets of a family, cells whose series are
//! created on first use, and a site's currency labels.

use super::figures::{Book, Series, SkipReason};
use super::{CounterFamily, GaugeFamily, HistogramFamily, Labels, labels};
use crate::config::Config;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Registers metrics in one registry; each method returns the handle it registered.
pub(super) struct Registrar<'a> {
    registry: &'a mut Registry,
    /// The families the engine writes, in registration order: what the figures hold.
    pub ledger: Vec<Book>,
}

/// A family's name and help text.
pub(super) type Meta = (&'static str, &'static str);

impl<'a> Registrar<'a> {
    pub fn new(registry: &'a mut Registry) -> Self {
        Self {
            registry,
            ledger: Vec::new(),
        }
    }

    /// Registers `metric` and returns it (handles share the registered series).
    pub fn add<M: Metric + Clone>(&mut self, (name, help): Meta, metric: M) -> M {
        self.registry.register(name, help, metric.clone());
        metric
    }
    /// Registers a family the engine writes (counters, money or histograms) and notes it in the
    /// ledger with `space`, the label sets its figures are read from and restored into.
    pub fn kept<F>(&mut self, meta: Meta, family: F, space: &Space) -> F
    where
        F: Metric + Clone + Into<Series>,
    {
        let family = self.add(meta, family);
        let series = family.clone().into();
        self.ledger.push(Book::new(meta.0, space.clone(), series));
        family
    }
    /// [`Registrar::kept`], returning the family's series for every label set of `space`, in
    /// order.
    pub fn kept_series<M, C>(
        &mut self,
        meta: Meta,
        family: Family<Labels, M, C>,
        space: &Space,
    ) -> Vec<M>
    where
        Family<Labels, M, C>: Metric + Clone + Into<Series>,
        M: Clone,
        C: MetricConstructor<M>,
    {
        series(&self.kept(meta, family, space), &space.sets())
    }
    /// A counter without labels the engine writes, noted in the ledger.
    pub fn kept_counter(&mut self, meta: Meta) -> Counter {
        let counter = self.counter(meta);
        let series = Series::Counter(counter.clone());
        self.ledger
            .push(Book::new(meta.0, Space::unlabelled(), series));
        counter
    }
    /// A family of `M`, each series made by `M::default()`.
    pub fn family<M: Default>(&mut self, meta: Meta) -> Family<Labels, M>
    where
        Family<Labels, M>: Metric + Clone,
    {
        self.add(meta, Family::default())
    }
    pub fn counters(&mut self, meta: Meta) -> CounterFamily {
        self.family(meta)
    }
    pub fn gauges(&mut self, meta: Meta) -> GaugeFamily {
        self.family(meta)
    }
    pub fn histograms(&mut self, meta: Meta, buckets: fn() -> Histogram) -> HistogramFamily {
        self.add(meta, Family::new_with_constructor(buckets))
    }
    pub fn counter(&mut self, meta: Meta) -> Counter {
        self.add(meta, Counter::default())
    }
    pub fn gauge(&mut self, meta: Meta) -> Gauge {
        self.add(meta, Gauge::default())
    }
}

/// The series of `family` for each label set, in order.
pub(super) fn series<M, C>(family: &Family<Labels, M, C>, sets: &[Labels]) -> Vec<M>
where
    M: Clone,
    C: MetricConstructor<M>,
{
    sets.iter()
        .map(|l| family.get_or_create(l).clone())
        .collect()
}

/// A label name and its closed set of values.
pub(super) type Dimension = (&'static str, Vec<String>);

/// The label sets a family may hold: each of `rows` (label sets sharing their names), extended
/// by every combination of `dims`, the first varying slowest. A family's series are created
/// from its space and its figures read from and restored into the same one, so what is
/// counted, kept and put back cannot disagree; a label added here reaches all three.
#[derive(Debug, Clone)]
pub struct Space {
    rows: Vec<Labels>,
    dims: Vec<Dimension>,
}

impl Space {
    pub fn new(rows: Vec<Labels>) -> Self {
        Self {
            rows,
            dims: Vec::new(),
        }
    }

    /// Each site alone: `{site}` for every site.
    pub fn sites(sites: &[String]) -> Self {
        Self::new(sites.iter().map(|s| labels([("site", s)])).collect())
    }

    /// The one empty label set, of a metric without labels.
    pub fn unlabelled() -> Self {
        Self::new(vec![Vec::new()])
    }

    /// This space with every row extended by each value of `name`.
    pub fn by<S: Into<String>>(
        mut self,
        name: &'static str,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.dims
            .push((name, values.into_iter().map(Into::into).collect()));
        self
    }

    fn per_row(&self) -> usize {
        self.dims.iter().map(|(_, v)| v.len()).product()
    }

    /// How many label sets.
    pub fn len(&self) -> usize {
        self.rows.len() * self.per_row()
    }

    /// The label set at `index` (below [`Space::len`]).
    pub fn at(&self, index: usize) -> Labels {
        let mut stride = self.per_row();
        let mut labels = self.rows[index / stride].clone();
        for (name, values) in &self.dims {
            stride /= values.len();
            labels.push((*name, values[index / stride % values.len()].clone()));
        }
        labels
    }

    /// Every label set, in order.
    pub fn sets(&self) -> Vec<Labels> {
        (0..self.len()).map(|i| self.at(i)).collect()
    }

    /// The label set of this space that `given` names (by label name, in any order), or why
    /// there is none: a label this space lacks or lacks a value of, or one it has and `given`
    /// does not.
    pub fn locate(&self, given: &BTreeMap<String, String>) -> Result<Labels, SkipReason> {
        let row_names = self.rows.first().into_iter().flatten().map(|(n, _)| *n);
        let names: Vec<&str> = row_names.chain(self.dims.iter().map(|(n, _)| *n)).collect();
        if let Some(name) = given.keys().find(|n| !names.contains(&n.as_str())) {
            return Err(SkipReason::UnknownLabel(name.clone()));
        }
        let value = |name: &str| {
            given
                .get(name)
                .ok_or_else(|| SkipReason::MissingLabel(name.into()))
        };
        let not_configured = |name: &str, value: &String| SkipReason::NotConfigured {
            label: name.into(),
            value: value.clone(),
        };
        // Narrowed label by label, so the value named is the first no row has.
        let mut rows: Vec<&Labels> = self.rows.iter().collect();
        for (k, name) in names[..names.len() - self.dims.len()].iter().enumerate() {
            let v = value(name)?;
            rows.retain(|r| r[k].1 == *v);
            if rows.is_empty() {
                return Err(not_configured(name, v));
            }
        }
        // No row at all: a family without series here.
        let mut labels = (*rows.first().ok_or(SkipReason::UnknownFamily)?).clone();
        for (name, values) in &self.dims {
            let v = value(name)?;
            if !values.contains(v) {
                return Err(not_configured(name, v));
            }
            labels.push((*name, v.clone()));
        }
        Ok(labels)
    }
}

/// Series created on first use, from a closed set of label combinations.
pub struct LazyCells<M> {
    cells: Box<[OnceLock<M>]>,
    make: Box<dyn Fn(usize) -> M + Send + Sync>,
}

impl<M> LazyCells<M> {
    pub(super) fn new(len: usize, make: impl Fn(usize) -> M + Send + Sync + 'static) -> Self {
        Self {
            cells: (0..len).map(|_| OnceLock::new()).collect(),
            make: Box::new(make),
        }
    }

    /// The handle at `index`, creating its series the first time.
    pub fn get(&self, index: usize) -> &M {
        self.cells[index].get_or_init(|| (self.make)(index))
    }
}

impl<M> std::fmt::Debug for LazyCells<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCells")
            .field("len", &self.cells.len())
            .finish()
    }
}

/// The currency label values of one site: its configured codes, then `other`.
#[derive(Debug, Clone)]
pub struct SiteCurrencies {
    pub codes: Vec<String>,
    /// Index of the currency assumed when an event names none.
    pub default: usize,
}

impl SiteCurrencies {
    /// The currencies of every configured site, in site order.
    pub fn of(config: &Config) -> Vec<Self> {
        config
            .sites
            .iter()
            .map(|s| {
                let mut codes = s.currencies.clone();
                codes.push("other".into());
                let default = codes
                    .iter()
                    .position(|c| c == s.default_currency())
                    .unwrap_or(codes.len() - 1);
                SiteCurrencies { codes, default }
            })
            .collect()
    }

    /// Index of `code` (case-insensitive), `other` when not configured, the default when absent.
    #[inline]
    pub fn index(&self, code: Option<&str>) -> usize {
        match code {
            None => self.default,
            Some(c) => self
                .codes
                .iter()
                .position(|k| k.eq_ignore_ascii_case(c))
                .unwrap_or(self.codes.len() - 1),
        }
    }
}
