//! The engine's own health: how far behind it runs, and what its session store holds. Its
//! counters are kept in the figures; the gauges follow the sessions and the lag is the process's.

use super::cells::{Registrar, Space};
use super::latency_buckets;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// The engine's store and lag metrics.
#[derive(Debug)]
pub struct EngineMetrics {
    /// `touchstream_engine_event_lag_seconds`: received by the collector to applied.
    pub lag: Histogram,
    /// `touchstream_engine_open_sessions`.
    pub open_sessions: Gauge,
    /// `touchstream_engine_sessions_evicted_total`.
    pub evicted: Counter,
    /// `touchstream_engine_carts_evicted_total`: open carts among them, never counted as
    /// abandoned.
    pub carts_evicted: Counter,
    /// `touchstream_engine_stored_ids`: the room of the sessions' large id sets, against
    /// `engine.max_stored_ids`.
    pub stored_ids: Gauge,
    /// `touchstream_engine_events_applied_total`.
    pub applied: Counter,
    /// `touchstream_engine_events_unknown_site_total`: events for a site this engine lacks.
    pub unknown_site: Counter,
    /// `touchstream_engine_late_events_total{site}`: new events of closed sessions, counted
    /// against them.
    late: Vec<Counter>,
    /// `touchstream_engine_remembered_ids`: ids of closed sessions held for dedup.
    pub remembered_ids: Gauge,
    /// `touchstream_engine_dedup_horizon_seconds`: how far back dedup is exact.
    pub dedup_horizon: Gauge,
}

impl EngineMetrics {
    pub(super) fn new(r: &mut Registrar, sites: &[String]) -> Self {
        // A family with one empty label set, as it always was: its samples print with `{}`.
        let lag = r
            .histograms(
                (
                    "touchstream_engine_event_lag_seconds",
                    "Seconds from the collector receiving an event to the engine applying it.",
                ),
                latency_buckets,
            )
            .get_or_create(&Vec::new())
            .clone();
        Self {
            lag,
            open_sessions: r.gauge((
                "touchstream_engine_open_sessions",
                "Sessions held in memory.",
            )),
            evicted: r.kept_counter((
                "touchstream_engine_sessions_evicted",
                "Sessions closed early because the session store was full (not drop-offs).",
            )),
            carts_evicted: r.kept_counter((
                "touchstream_engine_carts_evicted",
                "Open carts of evicted sessions (not counted as abandoned).",
            )),
            stored_ids: r.gauge((
                "touchstream_engine_stored_ids",
                "Room of the open sessions' large id sets, against engine.max_stored_ids.",
            )),
            applied: r.kept_counter((
                "touchstream_engine_events_applied",
                "Events applied by the engine, duplicates included.",
            )),
            unknown_site: r.kept_counter((
                "touchstream_engine_events_unknown_site",
                "Events for a site missing from this engine's configuration.",
            )),
            late: r.kept_series(
                (
                    "touchstream_engine_late_events",
                    "New events of sessions already closed, counted against them (touchpoints, \
                     orders) without a second visit.",
                ),
                Default::default(),
                &Space::sites(sites),
            ),
            remembered_ids: r.gauge((
                "touchstream_engine_remembered_ids",
                "Event and order ids of closed sessions held for dedup, against \
                 engine.max_remembered_ids.",
            )),
            dedup_horizon: r.gauge((
                "touchstream_engine_dedup_horizon_seconds",
                "How long after its session closed an id is still surely remembered: \
                 engine.dedup_horizon, or less once ids were forgotten to make room.",
            )),
        }
    }

    /// The late events of `site`.
    pub fn late(&self, site: usize) -> &Counter {
        &self.late[site]
    }

    /// Records how long ago the collector received events just applied (`now_ms` is the
    /// server clock at their application).
    pub fn observe_lag(&self, received_at_ms: i64, now_ms: i64) {
        self.lag
            .observe((now_ms - received_at_ms).max(0) as f64 / 1000.0);
    }
}
