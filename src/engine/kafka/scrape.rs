//! `/metrics` of a Kafka engine: the process's metrics and, labelled `partition`, the figures
//! of every owned partition that has caught up (see `metrics::partitioned`). A scrape changes
//! nothing: any number of scrapers may read it.

use super::Shared;
use crate::metrics::{Exposition, Metrics};
use std::sync::Arc;

/// Renders `/metrics` of a Kafka engine.
pub struct Scrape {
    shared: Arc<Shared>,
}

impl Scrape {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait::async_trait]
impl Exposition for Scrape {
    async fn render(&self) -> Result<String, String> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let parts: Vec<(i32, Arc<Metrics>)> = {
                let state = shared.lock();
                let mut shown: Vec<_> = (state.parts.iter())
                    .filter(|(_, part)| part.shown())
                    .map(|(p, part)| (*p, part.metrics.clone()))
                    .collect();
                shown.sort_by_key(|(p, _)| *p);
                shown
            };
            // The store's bounds are the process's: its gauges, not a partition's.
            let (b, m) = (&shared.bounds, &shared.metrics.engine);
            m.stored_ids.set(b.stored_ids() as i64);
            m.remembered_ids.set(b.remembered_ids() as i64);
            m.dedup_horizon
                .set(b.effective_horizon_ms(crate::now_ms()) / 1000);
            let parts: Vec<(i32, &Metrics)> = parts.iter().map(|(p, m)| (*p, &**m)).collect();
            shared.metrics.encode_partitioned(&parts)
        })
        .await
        .map_err(|e| format!("scrape task failed: {e}"))
    }
}
