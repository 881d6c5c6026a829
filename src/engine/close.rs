//! How sessions leave the store: closed and counted (by the clock's sweep, by a new event after
//! a gap, or at the end of a replay), remembered afterwards for the dedup horizon (`past`),
//! released to another engine, or evicted when the store is full.

use super::past::{Closed, Ids};
use super::session::Session;
use super::{Engine, Recorder, SessionKey, rules};

impl Engine {
    /// Reports a session's close (drop-off, abandoned cart) at `now_ms` and moves its ids to
    /// the closed sessions remembered.
    pub(super) fn close(&self, key: SessionKey, s: &mut Session, now_ms: i64, rec: &impl Recorder) {
        rec.closed(&rules::closing(&self.journeys, s));
        self.forget(s);
        let closed = Closed {
            ids: Ids::of(std::mem::take(&mut s.ids)),
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            closed_ms: now_ms,
            events: s.events,
            site: s.site,
            reached: std::array::from_fn(|slot| s.reached(slot)),
            channel: s.channel,
            device: s.device,
        };
        self.past().remember(key, closed, &self.bounds);
        self.held_gauge();
    }

    /// Takes a session out of the gauges and the open count.
    pub(super) fn forget(&self, s: &Session) {
        self.gauges().remove(s);
        if let Some(pool) = self.bounds.closed(s.origin, s.ids.cost()) {
            self.metrics.engine.stored_ids.set(pool as i64);
        }
        self.metrics.engine.open_sessions.dec();
    }

    /// Drops every session, open or remembered, without reporting a close: another engine
    /// takes them over (a revoked Kafka partition). Returns how many were open.
    pub fn release(&self) -> usize {
        let mut released = 0;
        self.sessions.retain(|_, s| {
            self.forget(s);
            released += 1;
            false
        });
        self.past().clear(&self.bounds);
        self.remembered_gauges(crate::now_ms());
        released
    }

    /// Closes and counts every session idle since `now_ms - session_timeout` or earlier;
    /// returns how many.
    pub fn sweep(&self, now_ms: i64) -> usize {
        self.sweep_into(now_ms, &self.counting())
    }

    /// [`Engine::sweep`], reporting into `rec`.
    pub(crate) fn sweep_into(&self, now_ms: i64, rec: &impl Recorder) -> usize {
        let cutoff = now_ms.saturating_sub(self.journeys.session_timeout_ms);
        let closed = self.close_where(|s| s.last_ms <= cutoff, now_ms, rec);
        self.past().expire(now_ms, &self.bounds);
        self.remembered_gauges(now_ms);
        closed
    }

    /// Closes and counts every open session (the end of a replayed log), each when its
    /// timeout would have closed it.
    pub fn close_all(&self) -> usize {
        let closed = self.close_where(|_| true, i64::MIN, &self.counting());
        self.remembered_gauges(crate::now_ms());
        closed
    }

    /// Closes the sessions `pred` picks, at `now_ms` (`i64::MIN`: at their timeout).
    fn close_where(
        &self,
        mut pred: impl FnMut(&Session) -> bool,
        now_ms: i64,
        rec: &impl Recorder,
    ) -> usize {
        let timeout = self.journeys.session_timeout_ms;
        let mut closed = 0;
        self.sessions.retain(|key, s| {
            if pred(s) {
                let at = now_ms.max(s.last_ms.saturating_add(timeout));
                self.close(*key, s, at, rec);
                closed += 1;
                false
            } else {
                true
            }
        });
        closed
    }

    /// Sets the gauges of the remembered ids and the effective dedup horizon.
    pub(super) fn remembered_gauges(&self, now_ms: i64) {
        self.held_gauge();
        (self.metrics.engine.dedup_horizon).set(self.bounds.effective_horizon_ms(now_ms) / 1000);
    }

    /// Sets the gauge of the remembered ids (every engine sharing the bounds).
    pub(super) fn held_gauge(&self) {
        let held = self.bounds.remembered_ids();
        self.metrics.engine.remembered_ids.set(held as i64);
    }

    /// Makes room when the store is full: forgets 1 % of the sessions (more when they tie),
    /// those with a single event first (what a flood of new sessions creates), then those
    /// without an open cart, then the longest idle. They are not drop-offs or abandoned carts (a
    /// flood must not fire the funnel alerts): they count in the eviction counters only.
    #[cold]
    pub(super) fn evict(&self) {
        let rank = |s: &Session| (s.events > 1, s.cart_open(), s.last_ms);
        let mut ranks: Vec<_> = self.sessions.iter().map(|e| rank(&e)).collect();
        if ranks.is_empty() {
            return;
        }
        let n = (ranks.len() / 100).max(1).min(ranks.len()) - 1;
        let (_, cutoff, _) = ranks.select_nth_unstable(n);
        let cutoff = *cutoff;
        let (mut evicted, mut carts) = (0, 0);
        self.sessions.retain(|_, s| {
            if rank(s) > cutoff {
                return true;
            }
            evicted += 1;
            carts += u64::from(s.cart_open());
            self.forget(s);
            false
        });
        self.metrics.engine.evicted.inc_by(evicted);
        self.metrics.engine.carts_evicted.inc_by(carts);
        tracing::warn!(
            evicted,
            carts,
            open = self.bounds.open(),
            "session store full: forgot sessions early, single-event ones first"
        );
    }
}
