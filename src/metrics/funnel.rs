//! The funnel's metrics: stages reached and dropped, carts, orders, touchpoints and friction.
//! Handles are pre-resolved into flat vectors indexed by (site, stage, channel, device, ...)
//! positions; series with open-ended combinations (touchpoint x phase, friction kind x stage)
//! are created on first use, still from closed label sets. Every family but the gauges is
//! noted in the registrar's ledger with the [`Space`] its series come from, for the figures.

use super::cells::{LazyCells, Meta, Registrar, SiteCurrencies, Space, series};
use super::histogram::Histogram;
use super::money::{MoneyCounter, MoneyGauge};
use super::{CounterFamily, Labels, labels, order_value_buckets, stage_seconds_buckets};
use crate::config::Config;
use crate::event::{Channel, Device};
use crate::journey::{Journey, Stage};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;

const CHANNELS: usize = Channel::ALL.len();
const DEVICES: usize = Device::ALL.len();

// Each family's name and help, in registration (and so exposition) order.
const REACHED: Meta = (
    "touchstream_funnel_sessions",
    "Sessions that reached each stage (counted when first reached).",
);
const DROPOFFS: Meta = (
    "touchstream_funnel_dropoffs",
    "Sessions that closed with this stage as their furthest.",
);
const ACTIVE: Meta = (
    "touchstream_funnel_active_sessions",
    "Open sessions by their furthest stage.",
);
const STAGE_SECONDS: Meta = (
    "touchstream_stage_reached_seconds",
    "Seconds from session start to reaching a stage.",
);
const ABANDONED: Meta = (
    "touchstream_carts_abandoned",
    "Sessions that reached the cart stage and closed without an order.",
);
const ABANDONED_VALUE: Meta = (
    "touchstream_carts_abandoned_value",
    "Value left in abandoned carts, in currency units.",
);
const OPEN: Meta = (
    "touchstream_carts_open",
    "Open sessions with a cart and no order.",
);
const OPEN_VALUE: Meta = (
    "touchstream_carts_open_value",
    "Value in open carts, in currency units.",
);
const ORDERS: Meta = (
    "touchstream_orders",
    "Orders (purchase events, once per order_id and session).",
);
const REVENUE: Meta = (
    "touchstream_revenue",
    "Revenue of orders, in currency units.",
);
const ORDER_VALUE: Meta = (
    "touchstream_order_value",
    "Value of each order, in currency units.",
);
const TOUCHPOINTS: Meta = (
    "touchstream_touchpoints",
    "Touchpoints by journey phase and type.",
);
const FRICTION: Meta = (
    "touchstream_friction",
    "Friction touchpoints by the stage where the session stood.",
);

/// Handles for every funnel metric.
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
}

/// Every label set of `rows` x channel x device, in row-major order with channel and device last.
fn by_channel_device(rows: &[Labels]) -> Space {
    Space::new(rows.to_vec())
        .by("channel", Channel::ALL.iter().map(|c| c.as_str()))
        .by("device", Device::ALL.iter().map(|d| d.as_str()))
}

/// Every site's label set for each of its currencies: `[site][currency]`.
fn per_currency(sites: &[String], currencies: &[SiteCurrencies]) -> Vec<Vec<Labels>> {
    let sets = |(site, cur): (&String, &SiteCurrencies)| -> Vec<Labels> {
        let code = |c: &String| labels([("site", site), ("currency", c)]);
        cur.codes.iter().map(code).collect()
    };
    sites.iter().zip(currencies).map(sets).collect()
}

/// The series of `family` for each site's label sets: `[site][...]`.
fn nested<M: Clone, C: MetricConstructor<M>>(
    family: &Family<Labels, M, C>,
    sets: &[Vec<Labels>],
) -> Vec<Vec<M>> {
    sets.iter().map(|s| series(family, s)).collect()
}

impl FunnelMetrics {
    pub(super) fn new(r: &mut Registrar, config: &Config, journey: &Journey) -> Self {
        let sites: Vec<String> = config.sites.iter().map(|s| s.id.clone()).collect();
        let currencies = SiteCurrencies::of(config);
        let site_stage: Vec<Labels> = sites
            .iter()
            .flat_map(|s| {
                let stage = move |st: &Stage| labels([("site", s), ("stage", &st.name)]);
                journey.stages.iter().map(stage)
            })
            .collect();
        let site_only: Vec<Labels> = sites.iter().map(|s| labels([("site", s)])).collect();
        let (cd_stage, cd_site) = (
            by_channel_device(&site_stage),
            by_channel_device(&site_only),
        );
        let money = per_currency(&sites, &currencies);
        let money_space = Space::new(money.concat());
        let stage_seconds = Family::new_with_constructor(stage_seconds_buckets as fn() -> _);
        let order_value = Family::new_with_constructor(order_value_buckets as fn() -> _);
        Self {
            reached: r.kept_series(REACHED, Family::default(), &cd_stage),
            dropoffs: r.kept_series(DROPOFFS, Family::default(), &cd_stage),
            active: series(&r.gauges(ACTIVE), &site_stage),
            stage_seconds: r.kept_series(STAGE_SECONDS, stage_seconds, &Space::new(site_stage)),
            carts_abandoned: r.kept_series(ABANDONED, Family::default(), &cd_site),
            carts_abandoned_value: nested(
                &r.kept(ABANDONED_VALUE, Family::default(), &money_space),
                &money,
            ),
            carts_open: series(&r.gauges(OPEN), &site_only),
            carts_open_value: nested(&r.family::<MoneyGauge>(OPEN_VALUE), &money),
            orders: r.kept_series(ORDERS, Family::default(), &cd_site),
            revenue: nested(&r.kept(REVENUE, Family::default(), &money_space), &money),
            order_value: nested(&r.kept(ORDER_VALUE, order_value, &money_space), &money),
            touchpoints: touchpoint_cells(r, &sites, journey),
            friction: friction_cells(r, &sites, journey),
            stages: journey.stages.len(),
            phases: journey.phases.len(),
            touchpoint_labels: journey.touchpoints.len(),
            friction_kinds: journey.friction.len(),
            currencies,
        }
    }
}

/// The series of `family` for every label set of `space`, each created on first use (and
/// noted in the ledger).
fn lazy_grid(r: &mut Registrar, meta: Meta, space: Space) -> LazyCells<Counter> {
    let family: CounterFamily = r.kept(meta, Family::default(), &space);
    LazyCells::new(space.len(), move |i| {
        family.get_or_create(&space.at(i)).clone()
    })
}

/// `touchstream_touchpoints_total{site, phase, touchpoint}`, created on first use.
fn touchpoint_cells(r: &mut Registrar, sites: &[String], journey: &Journey) -> LazyCells<Counter> {
    let space = (Space::sites(sites).by("phase", journey.phases.clone()))
        .by("touchpoint", journey.touchpoints.clone());
    lazy_grid(r, TOUCHPOINTS, space)
}

/// `touchstream_friction_total{site, stage, kind}`, created on first use.
fn friction_cells(r: &mut Registrar, sites: &[String], journey: &Journey) -> LazyCells<Counter> {
    let stages = journey.stages.iter().map(|s| s.name.clone());
    let space = (Space::sites(sites).by("stage", stages)).by("kind", journey.friction.clone());
    lazy_grid(r, FRICTION, space)
}

impl FunnelMetrics {
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
