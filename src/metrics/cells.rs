//! The building blocks of the metric structs: a registrar that registers a family in one line,
//! cells whose series are created on first use, and a site's currency labels.

use super::{CounterFamily, GaugeFamily, HistogramFamily, Labels};
use crate::config::Config;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::sync::OnceLock;

/// Registers metrics in one registry; each method returns the handle it registered.
pub(super) struct Registrar<'a>(pub &'a mut Registry);

/// A family's name and help text.
pub(super) type Meta = (&'static str, &'static str);

impl Registrar<'_> {
    /// Registers `metric` and returns it (handles share the registered series).
    pub fn add<M: Metric + Clone>(&mut self, (name, help): Meta, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
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
