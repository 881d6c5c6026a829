//! `touchstream replay FILE`: the engine over a recorded log, in the file's order.
//!
//! The log is one wire-format batch (possibly pretty-printed), or JSON Lines where each line is
//! a batch or a single event carrying `site`. Events are validated exactly as the collector
//! does. The clock is the largest event time read so far; it ticks (closing idle sessions) each
//! time it enters a new minute, and every session closes at the end of the log. So the figures
//! follow from the file's order and event times alone, the same on every run (CONTRACT.md
//! section 2, as the README's "What is counted" states it). A bad line stops the replay with
//! its line number, unless `skip_invalid` is set.

use crate::collector::{BatchContext, Clock, WireBatch, decode_batch, mask};
use crate::config::Config;
use crate::engine::Engine;
use crate::event::Device;
use crate::metrics::{Metrics, Report};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::BufRead;
use std::sync::Arc;

/// The clock ticks each time it enters a new one of these (ms of event time).
const TICK_MS: i64 = 60_000;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
}

/// Options of a replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// Skip bad lines and invalid events (each reported) instead of stopping at the first.
    pub skip_invalid: bool,
}

/// The result of a replay.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// `(line, message)` of every skipped line or event.
    pub skipped: Vec<(usize, String)>,
}

/// A line of a JSON Lines log: a batch when it has `events`, else one event.
#[derive(Deserialize)]
struct LineProbe<'a> {
    site: Option<String>,
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

struct Replayer<'c> {
    config: &'c Config,
    engine: Engine,
    options: ReplayOptions,
    clock: i64,
    applied: u64,
    skipped: Vec<(usize, String)>,
}

/// Replays `input` through a fresh engine configured by `config`.
pub fn replay(
    config: &Config,
    mut input: impl BufRead,
    options: ReplayOptions,
) -> Result<Outcome, ReplayError> {
    let metrics = Arc::new(Metrics::new(config));
    let mut r = Replayer {
        config,
        engine: Engine::new(config, metrics.clone()),
        options,
        clock: i64::MIN,
        applied: 0,
        skipped: Vec::new(),
    };
    let mut line = String::new();
    let mut number = 0;
    while input.read_line(&mut line)? > 0 {
        number += 1;
        let text = line.trim();
        if !text.is_empty() {
            if number == 1
                && serde_json::from_str::<&RawValue>(text).is_err()
                && text.starts_with('{')
            {
                // Not JSON Lines: one (pretty-printed) batch.
                let mut whole = std::mem::take(&mut line);
                input.read_to_string(&mut whole)?;
                r.document(&whole)?;
                break;
            }
            r.line(number, text)?;
        }
        line.clear();
    }
    r.engine.close_all();
    Ok(Outcome {
        report: Report::new(config, &metrics),
        skipped: r.skipped,
    })
}

impl Replayer<'_> {
    /// Stops the replay at `line`, or records it as skipped; either way the message reaches a
    /// terminal or a log, so personal data it quotes (serde quotes values) is masked.
    fn fail(&mut self, line: usize, message: String) -> Result<(), ReplayError> {
        let message = mask(&message).into_owned();
        if self.options.skip_invalid {
            self.skipped.push((line, message));
            Ok(())
        } else {
            Err(ReplayError::Line { line, message })
        }
    }

    fn document(&mut self, text: &str) -> Result<(), ReplayError> {
        match serde_json::from_str::<WireBatch>(text) {
            Ok(b) => self.batch(1, &b.site, &b.events),
            Err(e) => Err(ReplayError::Line {
                line: e.line(),
                message: mask(&format!("not a batch or JSON Lines: {e}")).into_owned(),
            }),
        }
    }

    fn line(&mut self, line: usize, text: &str) -> Result<(), ReplayError> {
        let probe: LineProbe = match serde_json::from_str(text) {
            Ok(p) => p,
            Err(e) => return self.fail(line, format!("not a JSON object: {e}")),
        };
        match (probe.events, probe.site) {
            (Some(events), Some(site)) => self.batch(line, &site, &events),
            (None, Some(site)) => {
                let raw: &RawValue = serde_json::from_str(text).expect("parsed above");
                self.batch(line, &site, &[raw])
            }
            (_, None) => self.fail(
                line,
                "`site` is missing (give it per batch or per event)".into(),
            ),
        }
    }

    fn batch(&mut self, line: usize, site: &str, events: &[&RawValue]) -> Result<(), ReplayError> {
        let Some(cfg) = self.config.site(site) else {
            return self.fail(
                line,
                format!("site `{site}` is not configured (add it under [[sites]])"),
            );
        };
        // Recorded events are replayed at their own time: no clock skew to correct, and no
        // request to read a device or a bot from.
        let ctx = BatchContext {
            site: Arc::from(cfg.id.as_str()),
            require_consent: cfg.require_consent,
            clock: Clock::Recorded,
            device: Device::Desktop,
            filter: None,
            origin: 0,
        };
        let decoded = decode_batch(events, &ctx, &self.config.limits);
        for (i, r) in decoded.rejected {
            let at = if events.len() > 1 {
                format!("event {i}: ")
            } else {
                String::new()
            };
            self.fail(line, format!("{at}{} ({})", r.message, r.reason.as_str()))?;
        }
        for event in &decoded.events {
            self.engine.apply(event);
            self.applied += 1;
            let clock = self.clock.max(event.event_time_ms);
            if clock.div_euclid(TICK_MS) > self.clock.div_euclid(TICK_MS) {
                self.engine.sweep(clock);
            }
            self.clock = clock;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's cart, then `filler` events of other sessions carrying the clock two hours
    /// on, then the session's purchase dated ten minutes after its cart.
    fn run(filler: usize) -> crate::metrics::SiteReport {
        let t = 1_763_800_000_000i64;
        let line = |session: &str, id: &str, kind: &str, ts: i64| {
            format!(
                r#"{{"site":"demo","id":"{id}","type":"{kind}","ts":{ts},"session":"{session}","props":{{"value":10,"currency":"PLN"}}}}"#
            ) + "\n"
        };
        let mut log = line("a", "c", "add_to_cart", t);
        for i in 0..filler {
            let ts = t + 7_200_000 * (i as i64 + 1) / filler as i64;
            log += &line(&format!("f{i}"), "1", "page_view", ts);
        }
        log += &line("a", "p", "purchase", t + 600_000);
        let config = Config::default();
        let out = replay(&config, log.as_bytes(), ReplayOptions::default()).unwrap();
        out.report.sites[0].1.clone()
    }

    #[test]
    fn the_clock_is_the_files_and_its_ticks_do_not_depend_on_how_many_events_pass() {
        // The clock passed the cart's session timeout, so the purchase is late: the cart was
        // abandoned, the order counts once, no second visit.
        for filler in [1, 20_000] {
            let r = run(filler);
            assert_eq!(r.reached[0].1, filler as u64 + 1, "{filler}");
            assert_eq!((r.carts_abandoned, r.orders, r.late), (1, 1, 1), "{filler}");
        }
    }
}
