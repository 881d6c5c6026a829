//! The collector's per-site event counters: received, accepted, rejected by reason, filtered by
//! reason (the engine counts its duplicates into the same filtered series).

use super::cells::{Registrar, series};
use super::{CounterFamily, labels};
use crate::event::{FilterReason, RejectReason};
use prometheus_client::metrics::counter::Counter;

/// Per-site event counters.
#[derive(Debug)]
pub struct IngestMetrics {
    received: Vec<Counter>,
    accepted: Vec<Counter>,
    /// `[site][reason]`, flattened.
    rejected: Vec<Counter>,
    /// `[site][reason]`, flattened.
    filtered: Vec<Counter>,
}

impl IngestMetrics {
    /// The filter reasons the engine counts (per event applied, so kept in the figures and
    /// restored with them); the others (`bot`, `consent`) are the collector's, per request,
    /// and start again at zero with the process like every collector metric.
    pub const ENGINE_REASONS: [FilterReason; 4] = [
        FilterReason::Duplicate,
        FilterReason::SessionLimit,
        FilterReason::SessionMemory,
        FilterReason::SessionRate,
    ];

    pub(super) fn new(r: &mut Registrar, sites: &[String], filtered: &CounterFamily) -> Self {
        let per_site: Vec<_> = sites.iter().map(|s| labels([("site", s)])).collect();
        let with_reason = |reasons: Vec<&'static str>| {
            sites
                .iter()
                .flat_map(|s| {
                    reasons
                        .iter()
                        .map(move |r| labels([("site", s), ("reason", r)]))
                })
                .collect::<Vec<_>>()
        };
        Self {
            filtered: series(
                filtered,
                &with_reason(FilterReason::ALL.iter().map(|r| r.as_str()).collect()),
            ),
            received: series(
                &r.counters((
                    "touchstream_events_received",
                    "Events in well-formed batches for a known site.",
                )),
                &per_site,
            ),
            accepted: series(
                &r.counters((
                    "touchstream_events_accepted",
                    "Events accepted (in the transport, or filtered).",
                )),
                &per_site,
            ),
            rejected: series(
                &r.counters((
                    "touchstream_events_rejected",
                    "Events not accepted, by reason.",
                )),
                &with_reason(RejectReason::ALL.iter().map(|r| r.as_str()).collect()),
            ),
        }
    }

    pub fn received(&self, site: usize) -> &Counter {
        &self.received[site]
    }
    pub fn accepted(&self, site: usize) -> &Counter {
        &self.accepted[site]
    }
    pub fn rejected(&self, site: usize, reason: RejectReason) -> &Counter {
        &self.rejected[site * RejectReason::ALL.len() + reason.index()]
    }
    pub fn filtered(&self, site: usize, reason: FilterReason) -> &Counter {
        &self.filtered[site * FilterReason::ALL.len() + reason.index()]
    }
}
