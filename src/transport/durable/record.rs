//! What the embedded log holds, one record each: an accepted batch, or a tick of the engine's
//! clock (the sweep that closes idle sessions, logged so that a replay closes them at the same
//! points as the live run). A record is a version byte, a kind byte, then postcard: compact,
//! and a stable, documented format. Channel and device are written as their label text, not
//! their position, so a later release that adds a value still reads old logs.
//!
//! Versions: 1, the events' fields up to `origin`; 2 (this release) adds each event's visitor
//! after them. Both are read.

use crate::event::{Channel, Device, Event};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const VERSION: u8 = 2;
const BATCH: u8 = 0;
const TICK: u8 = 1;

/// One record of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A batch the collector accepted, its events in order.
    Batch(Vec<Event>),
    /// The engine's clock: close the sessions idle as of `now_ms`.
    Tick { now_ms: i64 },
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "log record of version {0}; this release reads versions 1 to {VERSION}: upgrade touchstream"
    )]
    Version(u8),
    #[error("log record of unknown kind {0}")]
    Kind(u8),
    #[error("log record too short")]
    Short,
    #[error("log record unreadable: {0}")]
    Decode(#[from] postcard::Error),
    #[error("log record names the unknown {0} `{1}`")]
    Label(&'static str, String),
}

/// The fields of an [`Event`] in the log's order as of version 1; strings borrowed when
/// written. Version 2 writes each as `(Wire, visitor)`.
#[derive(Serialize, Deserialize)]
struct Wire<S> {
    site: S,
    id: S,
    kind: S,
    session: S,
    event_time_ms: i64,
    received_at_ms: i64,
    channel: S,
    device: S,
    value: Option<f64>,
    currency: Option<S>,
    order_id: Option<S>,
    origin: u64,
}

/// The record of a batch.
pub fn batch(events: &[Event]) -> Vec<u8> {
    let wire: Vec<(Wire<&str>, Option<&str>)> = events
        .iter()
        .map(|e| {
            let w = Wire {
                site: &*e.site,
                id: &*e.id,
                kind: &*e.kind,
                session: &*e.session,
                event_time_ms: e.event_time_ms,
                received_at_ms: e.received_at_ms,
                channel: e.channel.as_str(),
                device: e.device.as_str(),
                value: e.value,
                currency: e.currency.as_deref(),
                order_id: e.order_id.as_deref(),
                origin: e.origin,
            };
            (w, e.visitor.as_deref())
        })
        .collect();
    postcard::to_extend(&wire, vec![VERSION, BATCH]).expect("writing to a Vec cannot fail")
}

/// The record of a tick at `now_ms`.
pub fn tick(now_ms: i64) -> Vec<u8> {
    postcard::to_extend(&now_ms, vec![VERSION, TICK]).expect("writing to a Vec cannot fail")
}

/// Reads a record.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let [version, kind, body @ ..] = bytes else {
        return Err(RecordError::Short);
    };
    if !(1..=VERSION).contains(version) {
        return Err(RecordError::Version(*version));
    }
    match *kind {
        BATCH => {
            let wire: Vec<(Wire<String>, Option<String>)> = if *version == 1 {
                let old: Vec<Wire<String>> = postcard::from_bytes(body)?;
                old.into_iter().map(|w| (w, None)).collect()
            } else {
                postcard::from_bytes(body)?
            };
            let mut sites: Vec<Arc<str>> = Vec::new();
            let events = wire
                .into_iter()
                .map(|(w, visitor)| event(w, visitor, &mut sites))
                .collect::<Result<_, _>>()?;
            Ok(Record::Batch(events))
        }
        TICK => Ok(Record::Tick {
            now_ms: postcard::from_bytes(body)?,
        }),
        other => Err(RecordError::Kind(other)),
    }
}

fn event(
    w: Wire<String>,
    visitor: Option<String>,
    sites: &mut Vec<Arc<str>>,
) -> Result<Event, RecordError> {
    let channel = Channel::from_label(&w.channel)
        .ok_or_else(|| RecordError::Label("channel", w.channel.clone()))?;
    let device = Device::from_label(&w.device)
        .ok_or_else(|| RecordError::Label("device", w.device.clone()))?;
    // A batch is one site's: its events share one allocation of the name, as the collector's.
    let site = match sites.iter().find(|s| ***s == *w.site) {
        Some(s) => s.clone(),
        None => {
            sites.push(Arc::from(w.site));
            sites[sites.len() - 1].clone()
        }
    };
    Ok(Event {
        site,
        id: w.id,
        kind: w.kind,
        session: w.session,
        visitor,
        event_time_ms: w.event_time_ms,
        received_at_ms: w.received_at_ms,
        channel,
        device,
        value: w.value,
        currency: w.currency,
        order_id: w.order_id,
        origin: w.origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A purchase with every field set, and a bare page view.
    fn sample() -> Vec<Event> {
        let mut events = sample_1();
        events[0].visitor = Some("v-1".into());
        events
    }

    /// [`sample`] as version 1 held it: without visitors.
    fn sample_1() -> Vec<Event> {
        vec![
            Event {
                channel: Channel::Email,
                device: Device::Mobile,
                value: Some(129.99),
                currency: Some("PLN".into()),
                order_id: Some("o-1".into()),
                origin: 9,
                received_at_ms: 1_763_800_000_500,
                ..Event::new("demo", "s-1", "e-1", "purchase", 1_763_800_000_000)
            },
            Event::new("demo", "s-1", "e-2", "page_view", 1_763_800_000_001),
        ]
    }

    #[test]
    fn batches_and_ticks_read_back_as_written() {
        let events = sample();
        let bytes = batch(&events);
        assert_eq!(decode(&bytes).unwrap(), Record::Batch(events));
        assert_eq!(decode(&tick(-7)).unwrap(), Record::Tick { now_ms: -7 });
        assert_eq!(decode(&batch(&[])).unwrap(), Record::Batch(Vec::new()));
    }

    /// The bytes of this version, kept: a change to the record format fails this test, and must
    /// bump `VERSION` and still read this file (`TOUCHSTREAM_BLESS=1` writes a new version's).
    #[test]
    fn version_2_reads_as_it_was_written() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/log-record-version-2.bin"
        );
        let events = sample();
        let mut written = batch(&events);
        written.extend(tick(1_763_800_001_000));
        if std::env::var_os("TOUCHSTREAM_BLESS").is_some() {
            std::fs::write(path, &written).unwrap();
        }
        let kept = std::fs::read(path).unwrap();
        assert_eq!(
            kept, written,
            "version {VERSION} changed: bump VERSION and read the old"
        );
        let (first, second) = kept.split_at(batch(&events).len());
        assert_eq!(decode(first).unwrap(), Record::Batch(events));
        assert_eq!(
            decode(second).unwrap(),
            Record::Tick {
                now_ms: 1_763_800_001_000
            }
        );
    }

    /// A log written by the release before the visitor reads on, without visitors.
    #[test]
    fn version_1_still_reads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/log-record-version-1.bin"
        );
        let kept = std::fs::read(path).unwrap();
        assert_eq!(kept[0], 1);
        let Ok(Record::Batch(events)) = decode(&kept) else {
            panic!("version 1 unreadable");
        };
        assert_eq!(events, sample_1());
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let mut bytes = batch(&[Event::new("demo", "s", "1", "page_view", 0)]);
        assert!(matches!(decode(&bytes[..1]), Err(RecordError::Short)));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 2]),
            Err(RecordError::Decode(_))
        ));
        bytes[0] = 9;
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("version 9") && err.contains("upgrade"),
            "{err}"
        );
        bytes[0] = VERSION;
        bytes[1] = 7;
        assert!(matches!(decode(&bytes), Err(RecordError::Kind(7))));
    }
}
