//! The funnel's metrics: stages reached and dropped, carts, orders, touchpoints and friction.
//! Handles are pre-resolved into flat vectors. The stage families are laid out by *row*, one
//! per (site, journey of the site, stage), each site's journeys in its order (see
//! [`FunnelMetrics::row`]), then channel and device; money and carts by site, once per session
//! whatever its journeys. Series with open-ended combinations (touchpoint x phase, friction kind
//! x row) are created on first use, still from closed label sets. Every family but the gauges
//! is noted in the registrar's ledger with the [`Space`] its series come from, for the figures.

use super::cells::{LazyCells, Meta, Registrar, SiteCurrencies, Space, series};
use super::histogram::Histogram;
use super::money::{MoneyCounter, MoneyGauge};
use super::{CounterFamily, Labels, labels, order_value_buckets, stage_seconds_buckets};
use crate::config::Config;
use crate::event::{Channel, Device};
use crate::journey::{Journeys, MAX_SITE_JOURNEYS, NO_FRICTION};
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
const LAST_TOUCHPOINT: Meta = (
    "touchstream_funnel_dropoffs_last_touchpoint",
    "Drop-offs by the last touchpoint the session sent.",
);
const LAST_FRICTION: Meta = (
    "touchstream_funnel_dropoffs_last_friction",
    "Drop-offs by the last friction kind the session met (none: no friction).",
);
const ACTIVE: Meta = (
    "touchstream_funnel_active_sessions",
    "Open sessions by their furthest stage.",
);
const STAGE_SECONDS: Meta = (
    "touchstream_stage_reached_seconds",
    "Seconds from session start to reaching a stage.",
);
const OPENED: Meta = (
    "touchstream_carts_opened",
    "Sessions that reached a cart stage (once per session, whatever its journeys).",
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
    /// At `site * MAX_SITE_JOURNEYS + slot`: the row of the journey's first stage.
    rows: Vec<usize>,
    phases: usize,
    touchpoint_labels: usize,
    friction_kinds: usize,
    pub currencies: Vec<SiteCurrencies>,
    reached: Vec<Counter>,
    dropoffs: Vec<Counter>,
    active: Vec<Gauge>,
    stage_seconds: Vec<Histogram>,
    carts_opened: Vec<Counter>,
    carts_abandoned: Vec<Counter>,
    carts_abandoned_value: Vec<Vec<MoneyCounter>>,
    carts_open: Vec<Gauge>,
    carts_open_value: Vec<Vec<MoneyGauge>>,
    orders: Vec<Counter>,
    revenue: Vec<Vec<MoneyCounter>>,
    order_value: Vec<Vec<Histogram>>,
    touchpoints: LazyCells<Counter>,
    friction: Vec<Counter>,
    last_touchpoint: LazyCells<Counter>,
    last_friction: Vec<Counter>,
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
    pub(super) fn new(r: &mut Registrar, config: &Config, journeys: &Journeys) -> Self {
        let sites: Vec<String> = config.sites.iter().map(|s| s.id.clone()).collect();
        let currencies = SiteCurrencies::of(config);
        let mut site_stage: Vec<Labels> = Vec::new();
        let mut rows = vec![0; sites.len() * MAX_SITE_JOURNEYS];
        for (site, name) in sites.iter().enumerate() {
            for (slot, &j) in journeys.sites[site].journeys.iter().enumerate() {
                rows[site * MAX_SITE_JOURNEYS + slot] = site_stage.len();
                let journey = &journeys.journeys[j];
                for stage in &journey.stages {
                    let set = [
                        ("site", name.as_str()),
                        ("journey", &journey.name),
                        ("stage", &stage.name),
                    ];
                    site_stage.push(labels(set));
                }
            }
        }
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
            last_touchpoint: lazy_grid(
                r,
                LAST_TOUCHPOINT,
                Space::new(site_stage.clone()).by("touchpoint", journeys.touchpoints.clone()),
            ),
            // From start-up, so a kind's first drop-off shows in a rate.
            last_friction: r.kept_series(
                LAST_FRICTION,
                Family::default(),
                &Space::new(site_stage.clone()).by("kind", none_then(&journeys.friction)),
            ),
            active: series(&r.gauges(ACTIVE), &site_stage),
            stage_seconds: r.kept_series(
                STAGE_SECONDS,
                stage_seconds,
                &Space::new(site_stage.clone()),
            ),
            carts_opened: r.kept_series(OPENED, Family::default(), &cd_site),
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
            touchpoints: touchpoint_cells(r, &sites, journeys),
            // At zero from start-up, so the step alerts have a baseline for a kind that has
            // not occurred yet (a payment provider failing for the first time).
            friction: r.kept_series(
                FRICTION,
                Family::default(),
                &Space::new(site_stage).by("kind", journeys.friction.clone()),
            ),
            rows,
            phases: journeys.phases.len(),
            touchpoint_labels: journeys.touchpoints.len(),
            friction_kinds: journeys.friction.len(),
            currencies,
        }
    }
}

/// `none`, then the friction kinds: the `kind` values of a drop-off's last friction.
fn none_then(kinds: &[String]) -> Vec<String> {
    std::iter::once(NO_FRICTION.to_string())
        .chain(kinds.iter().cloned())
        .collect()
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
fn touchpoint_cells(r: &mut Registrar, sites: &[String], j: &Journeys) -> LazyCells<Counter> {
    let space =
        (Space::sites(sites).by("phase", j.phases.clone())).by("touchpoint", j.touchpoints.clone());
    lazy_grid(r, TOUCHPOINTS, space)
}

impl FunnelMetrics {
    fn cd(&self, row: usize, channel: Channel, device: Device) -> usize {
        (row * CHANNELS + channel.index()) * DEVICES + device.index()
    }

    /// The row of `stage` of the journey in `site`'s slot `slot`: what the stage families
    /// are indexed by.
    #[inline]
    pub fn row(&self, site: usize, slot: usize, stage: usize) -> usize {
        self.rows[site * MAX_SITE_JOURNEYS + slot] + stage
    }

    pub fn reached(&self, row: usize, ch: Channel, dev: Device) -> &Counter {
        &self.reached[self.cd(row, ch, dev)]
    }
    pub fn dropoffs(&self, row: usize, ch: Channel, dev: Device) -> &Counter {
        &self.dropoffs[self.cd(row, ch, dev)]
    }
    pub fn active(&self, row: usize) -> &Gauge {
        &self.active[row]
    }
    pub fn stage_seconds(&self, row: usize) -> &Histogram {
        &self.stage_seconds[row]
    }
    pub fn carts_opened(&self, site: usize, ch: Channel, dev: Device) -> &Counter {
        &self.carts_opened[self.cd(site, ch, dev)]
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
    pub fn dropoffs_last_touchpoint(&self, row: usize, label: usize) -> &Counter {
        self.last_touchpoint
            .get(row * self.touchpoint_labels + label)
    }
    /// `kind`: a friction kind plus one, 0 for none.
    pub fn dropoffs_last_friction(&self, row: usize, kind: usize) -> &Counter {
        &self.last_friction[row * (self.friction_kinds + 1) + kind]
    }
    pub fn friction(&self, row: usize, kind: usize) -> &Counter {
        &self.friction[row * self.friction_kinds + kind]
    }

    /// Sum of a per-(channel, device) counter row, for reports.
    fn row_sum(v: &[Counter], row: usize) -> u64 {
        v[row * CHANNELS * DEVICES..(row + 1) * CHANNELS * DEVICES]
            .iter()
            .map(Counter::get)
            .sum()
    }
    /// Sessions that reached the stage of `row`, over every channel and device.
    pub fn reached_total(&self, row: usize) -> u64 {
        Self::row_sum(&self.reached, row)
    }
    /// Drop-offs at the stage of `row`, over every channel and device.
    pub fn dropoffs_total(&self, row: usize) -> u64 {
        Self::row_sum(&self.dropoffs, row)
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
