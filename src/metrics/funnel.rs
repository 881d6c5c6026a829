//! The engine's metrics: funnel, carts, orders, touchpoints, friction and session store.
//! Handles are pre-resolved into flat vectors indexed by (site, stage, channel, device, ...)
//! positions; series with open-ended combinations (touchpoint x phase, friction kind x stage)
//! are created on first use, still from closed label sets.

use super::money::{MoneyCounter, MoneyGauge};
use super::{
    CounterFamily, GaugeFamily, Labels, histogram_family, labels, latency_buckets,
    order_value_buckets, reg, stage_seconds_buckets,
};
use crate::config::Config;
use crate::engine::Journey;
use crate::event::{Channel, Device};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

const CHANNELS: usize = Channel::ALL.len();
const DEVICES: usize = Device::ALL.len();

/// The currency label values of one site: its configured codes, then `other`.
#[derive(Debug, Clone)]
pub struct SiteCurrencies {
    pub codes: Vec<String>,
    /// Index of the currency assumed when an event names none.
    pub default: usize,
}

impl SiteCurrencies {
    /// Index of `code` (case-insensitive), `other` when not configured, the default when absent.
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

/// Series created on first use, from a closed set of label combinations.
pub struct LazyCells<M> {
    cells: Box<[OnceLock<M>]>,
    make: Box<dyn Fn(usize) -> M + Send + Sync>,
}

impl<M> LazyCells<M> {
    fn new(len: usize, make: impl Fn(usize) -> M + Send + Sync + 'static) -> Self {
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

/// Handles for every engine metric.
#[derive(Debug)]
pub struct FunnelMetrics {
    stages: usize,
    phases: usize,
    touchpoint_labels: usize,
    friction_kinds: usize,
    pub currencies: Vec<SiteCurrencies>,
    reached: Vec<Counter>,
    dropoffs: Vec<Counter>,
    active: Vec<Gauge>,
    stage_seconds: Vec<Histogram>,
    carts_abandoned: Vec<Counter>,
    carts_abandoned_value: Vec<Vec<MoneyCounter>>,
    carts_open: Vec<Gauge>,
    carts_open_value: Vec<Vec<MoneyGauge>>,
    orders: Vec<Counter>,
    revenue: Vec<Vec<MoneyCounter>>,
    order_value: Vec<Vec<Histogram>>,
    touchpoints: LazyCells<Counter>,
    friction: LazyCells<Counter>,
    duplicates: Vec<Counter>,
    /// `touchstream_events_filtered_total`, shared with the collector's bot and consent filters.
    pub filtered: CounterFamily,
    /// `touchstream_engine_event_lag_seconds`: received by the collector to applied.
    pub lag: Histogram,
    /// `touchstream_engine_open_sessions`.
    pub open_sessions: Gauge,
    /// `touchstream_engine_sessions_evicted_total`.
    pub evicted: Counter,
    /// `touchstream_engine_events_applied_total`.
    pub applied: Counter,
    /// `touchstream_engine_events_unknown_site_total`: events for a site this engine lacks.
    pub unknown_site: Counter,
}

/// A counter family with a series for every (site, ..., channel, device) combination, in
/// row-major order with channel and device last.
fn by_channel_device(family: &CounterFamily, prefixes: &[Labels]) -> Vec<Counter> {
    let mut out = Vec::with_capacity(prefixes.len() * CHANNELS * DEVICES);
    for prefix in prefixes {
        for c in Channel::ALL {
            for d in Device::ALL {
                let mut l = prefix.clone();
                l.push(("channel", c.as_str().to_string()));
                l.push(("device", d.as_str().to_string()));
                out.push(family.get_or_create(&l).clone());
            }
        }
    }
    out
}

fn per_currency<M: Clone>(
    family: &Family<Labels, M, impl prometheus_client::metrics::family::MetricConstructor<M>>,
    sites: &[String],
    currencies: &[SiteCurrencies],
) -> Vec<Vec<M>> {
    sites
        .iter()
        .zip(currencies)
        .map(|(site, cur)| {
            cur.codes
                .iter()
                .map(|c| {
                    family
                        .get_or_create(&labels([("site", site), ("currency", c)]))
                        .clone()
                })
                .collect()
        })
        .collect()
}

impl FunnelMetrics {
    pub(super) fn new(registry: &mut Registry, config: &Config, journey: &Journey) -> Self {
        let sites: Vec<String> = config.sites.iter().map(|s| s.id.clone()).collect();
        let currencies: Vec<SiteCurrencies> = config
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
            .collect();
        let site_stage: Vec<Labels> = sites
            .iter()
            .flat_map(|s| {
                journey
                    .stages
                    .iter()
                    .map(move |st| labels([("site", s), ("stage", &st.name)]))
            })
            .collect();
        let site_only: Vec<Labels> = sites.iter().map(|s| labels([("site", s)])).collect();

        let r = registry;
        let reached_f = reg(
            r,
            "touchstream_funnel_sessions",
            "Sessions that reached each stage (counted when first reached).",
            CounterFamily::default(),
        );
        let dropoffs_f = reg(
            r,
            "touchstream_funnel_dropoffs",
            "Sessions that closed with this stage as their furthest.",
            CounterFamily::default(),
        );
        let active_f = reg(
            r,
            "touchstream_funnel_active_sessions",
            "Open sessions by their furthest stage.",
            GaugeFamily::default(),
        );
        let stage_f = reg(
            r,
            "touchstream_stage_reached_seconds",
            "Seconds from session start to reaching a stage.",
            histogram_family(stage_seconds_buckets),
        );
        let abandoned_f = reg(
            r,
            "touchstream_carts_abandoned",
            "Sessions that reached the cart stage and closed without an order.",
            CounterFamily::default(),
        );
        let abandoned_value_f = reg(
            r,
            "touchstream_carts_abandoned_value",
            "Value left in abandoned carts, in currency units.",
            Family::<Labels, MoneyCounter>::default(),
        );
        let open_f = reg(
            r,
            "touchstream_carts_open",
            "Open sessions with a cart and no order.",
            GaugeFamily::default(),
        );
        let open_value_f = reg(
            r,
            "touchstream_carts_open_value",
            "Value in open carts, in currency units.",
            Family::<Labels, MoneyGauge>::default(),
        );
        let orders_f = reg(
            r,
            "touchstream_orders",
            "Orders (purchase events, once per order_id and session).",
            CounterFamily::default(),
        );
        let revenue_f = reg(
            r,
            "touchstream_revenue",
            "Revenue of orders, in currency units.",
            Family::<Labels, MoneyCounter>::default(),
        );
        let order_value_f = reg(
            r,
            "touchstream_order_value",
            "Value of each order, in currency units.",
            histogram_family(order_value_buckets),
        );
        let touchpoints_f = reg(
            r,
            "touchstream_touchpoints",
            "Touchpoints by journey phase and type.",
            CounterFamily::default(),
        );
        let friction_f = reg(
            r,
            "touchstream_friction",
            "Friction touchpoints by the stage where the session stood.",
            CounterFamily::default(),
        );
        let filtered = reg(
            r,
            "touchstream_events_filtered",
            "Accepted events kept out of the funnel, by reason.",
            CounterFamily::default(),
        );
        let lag_f = reg(
            r,
            "touchstream_engine_event_lag_seconds",
            "Seconds from the collector receiving an event to the engine applying it.",
            histogram_family(latency_buckets),
        );
        let open_sessions = reg(
            r,
            "touchstream_engine_open_sessions",
            "Sessions held in memory.",
            Gauge::default(),
        );
        let evicted = reg(
            r,
            "touchstream_engine_sessions_evicted",
            "Sessions closed early because the session store was full.",
            Counter::default(),
        );
        let applied = reg(
            r,
            "touchstream_engine_events_applied",
            "Events applied by the engine, duplicates included.",
            Counter::default(),
        );
        let unknown_site = reg(
            r,
            "touchstream_engine_events_unknown_site",
            "Events for a site missing from this engine's configuration.",
            Counter::default(),
        );

        let (phases, tps, kinds, stages) = (
            journey.phases.clone(),
            journey.touchpoints.clone(),
            journey.friction.clone(),
            journey.stages.len(),
        );
        let (sites_tp, sites_fr) = (sites.clone(), sites.clone());
        let stage_names: Vec<String> = journey.stages.iter().map(|s| s.name.clone()).collect();
        let (np, nt, nk) = (phases.len(), tps.len(), kinds.len());
        let touchpoints = LazyCells::new(sites.len() * np * nt, move |i| {
            let (site, phase, tp) = (i / (np * nt), i / nt % np, i % nt);
            touchpoints_f
                .get_or_create(&labels([
                    ("site", &sites_tp[site]),
                    ("phase", &phases[phase]),
                    ("touchpoint", &tps[tp]),
                ]))
                .clone()
        });
        let friction = LazyCells::new(sites.len() * stages * nk.max(1), move |i| {
            let (site, stage, kind) = (i / (stages * nk), i / nk % stages, i % nk);
            friction_f
                .get_or_create(&labels([
                    ("site", &sites_fr[site]),
                    ("stage", &stage_names[stage]),
                    ("kind", &kinds[kind]),
                ]))
                .clone()
        });
        Self {
            stages,
            phases: np,
            touchpoint_labels: nt,
            friction_kinds: nk,
            reached: by_channel_device(&reached_f, &site_stage),
            dropoffs: by_channel_device(&dropoffs_f, &site_stage),
            active: site_stage
                .iter()
                .map(|l| active_f.get_or_create(l).clone())
                .collect(),
            stage_seconds: site_stage
                .iter()
                .map(|l| stage_f.get_or_create(l).clone())
                .collect(),
            carts_abandoned: by_channel_device(&abandoned_f, &site_only),
            carts_abandoned_value: per_currency(&abandoned_value_f, &sites, &currencies),
            carts_open: site_only
                .iter()
                .map(|l| open_f.get_or_create(l).clone())
                .collect(),
            carts_open_value: per_currency(&open_value_f, &sites, &currencies),
            orders: by_channel_device(&orders_f, &site_only),
            revenue: per_currency(&revenue_f, &sites, &currencies),
            order_value: per_currency(&order_value_f, &sites, &currencies),
            duplicates: sites
                .iter()
                .map(|s| {
                    filtered
                        .get_or_create(&labels([("site", s), ("reason", "duplicate")]))
                        .clone()
                })
                .collect(),
            currencies,
            touchpoints,
            friction,
            filtered,
            lag: lag_f.get_or_create(&Vec::new()).clone(),
            open_sessions,
            evicted,
            applied,
            unknown_site,
        }
    }

    fn cd(&self, row: usize, channel: Channel, device: Device) -> usize {
        (row * CHANNELS + channel.index()) * DEVICES + device.index()
    }

    pub fn reached(&self, site: usize, stage: usize, ch: Channel, dev: Device) -> &Counter {
        &self.reached[self.cd(site * self.stages + stage, ch, dev)]
    }
    pub fn dropoffs(&self, site: usize, stage: usize, ch: Channel, dev: Device) -> &Counter {
        &self.dropoffs[self.cd(site * self.stages + stage, ch, dev)]
    }
    pub fn active(&self, site: usize, stage: usize) -> &Gauge {
        &self.active[site * self.stages + stage]
    }
    pub fn stage_seconds(&self, site: usize, stage: usize) -> &Histogram {
        &self.stage_seconds[site * self.stages + stage]
    }
    pub fn carts_abandoned(&self, site: usize, ch: Channel, dev: Device) -> &Counter {
        &self.carts_abandoned[self.cd(site, ch, dev)]
    }
    pub fn carts_abandoned_value(&self, site: usize, currency: usize) -> &MoneyCounter {
        &self.carts_abandoned_value[site][currency]
    }
    pub fn carts_open(&self, site: usize) -> &Gauge {
        &self.carts_open[site]
    }
    pub fn carts_open_value(&self, site: usize, currency: usize) -> &MoneyGauge {
        &self.carts_open_value[site][currency]
    }
    pub fn orders(&self, site: usize, ch: Channel, dev: Device) -> &Counter {
        &self.orders[self.cd(site, ch, dev)]
    }
    pub fn revenue(&self, site: usize, currency: usize) -> &MoneyCounter {
        &self.revenue[site][currency]
    }
    pub fn order_value(&self, site: usize, currency: usize) -> &Histogram {
        &self.order_value[site][currency]
    }
    pub fn touchpoint(&self, site: usize, phase: usize, label: usize) -> &Counter {
        self.touchpoints
            .get((site * self.phases + phase) * self.touchpoint_labels + label)
    }
    pub fn friction(&self, site: usize, stage: usize, kind: usize) -> &Counter {
        self.friction
            .get((site * self.stages + stage) * self.friction_kinds + kind)
    }
    pub fn duplicates(&self, site: usize) -> &Counter {
        &self.duplicates[site]
    }

    /// Sum of a per-(channel, device) counter row, for reports.
    fn row_sum(v: &[Counter], row: usize) -> u64 {
        v[row * CHANNELS * DEVICES..(row + 1) * CHANNELS * DEVICES]
            .iter()
            .map(Counter::get)
            .sum()
    }
    /// Sessions of `site` that reached `stage`, over every channel and device.
    pub fn reached_total(&self, site: usize, stage: usize) -> u64 {
        Self::row_sum(&self.reached, site * self.stages + stage)
    }
    /// Drop-offs of `site` at `stage`, over every channel and device.
    pub fn dropoffs_total(&self, site: usize, stage: usize) -> u64 {
        Self::row_sum(&self.dropoffs, site * self.stages + stage)
    }
    /// Abandoned carts of `site`, over every channel and device.
    pub fn carts_abandoned_total(&self, site: usize) -> u64 {
        Self::row_sum(&self.carts_abandoned, site)
    }
    /// Orders of `site`, over every channel and device.
    pub fn orders_total(&self, site: usize) -> u64 {
        Self::row_sum(&self.orders, site)
    }
}
