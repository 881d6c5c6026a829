//! No personal data leaves the collector, in any encoding or field. Batches go through the real
//! router into a sink that keeps what the collector hands the transport (the events, and the
//! dead letters a Kafka transport would publish); the accepted events are then applied by an
//! engine. The answer, the events, the dead letters and the metrics exposition are all read.

mod common;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::StatusCode;
use common::app::{ORIGIN, post, send};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use touchstream::collector::{CollectorState, pseudonymise, router};
use touchstream::config::Config;
use touchstream::engine::Engine;
use touchstream::event::Event;
use touchstream::metrics::Metrics;
use touchstream::transport::{DeadLetter, EventSink, SendError};

/// Keeps every event and dead letter it is handed.
#[derive(Default)]
struct Keep {
    events: Mutex<Vec<Event>>,
    letters: Mutex<Vec<DeadLetter>>,
}

#[async_trait]
impl EventSink for Keep {
    async fn send(&self, events: Vec<Event>) -> Result<(), SendError> {
        self.events.lock().unwrap().extend(events);
        Ok(())
    }

    async fn dead_letter(&self, letters: Vec<DeadLetter>) -> Result<(), SendError> {
        self.letters.lock().unwrap().extend(letters);
        Ok(())
    }
}

/// Everything that left the collector for one batch.
struct Left {
    answer: Value,
    events: Vec<Event>,
    letters: Vec<DeadLetter>,
    /// The answer, events, dead letters and metrics exposition, as text.
    all: String,
}

impl Left {
    /// The message and masked event of the dead letter with `reason`.
    fn letter(&self, reason: &str) -> (String, Value) {
        let l = self.letters.iter().find(|l| l.reason == reason).unwrap();
        (
            l.message.clone(),
            serde_json::from_str(l.event.get()).unwrap(),
        )
    }

    fn assert_absent(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.all.contains(secret),
                "`{secret}` left in:\n{}",
                self.all
            );
        }
    }
}

/// Posts `events` (JSON text, written as a client could) for `demo` and applies what was
/// accepted.
async fn post_events(events: &str) -> Left {
    let mut config = Config::default();
    config.sites[0].origins = vec![ORIGIN.into()];
    let metrics = Arc::new(Metrics::new(&config));
    let keep = Arc::new(Keep::default());
    let state = CollectorState::new(&config, keep.clone(), metrics.clone());
    let body = format!(r#"{{"site":"demo","events":[{events}]}}"#);
    let request = post().body(Body::from(body)).unwrap();
    let (status, _, answer) = send(&router(Arc::new(state)), request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let events = std::mem::take(&mut *keep.events.lock().unwrap());
    let letters = std::mem::take(&mut *keep.letters.lock().unwrap());
    let engine = Engine::new(&config, metrics.clone());
    events.iter().for_each(|e| {
        engine.apply(e);
    });
    engine.close_all();
    let all = format!(
        "{answer}\n{}\n{}\n{}",
        serde_json::to_string(&events).unwrap(),
        serde_json::to_string(&letters).unwrap(),
        metrics.encode()
    );
    Left {
        answer,
        events,
        letters,
        all,
    }
}

#[tokio::test]
async fn an_email_written_with_a_json_escape_is_masked_in_the_dead_letter() {
    // `\u0040` is `@`: the raw text has no `@` for a quick check to see.
    let left = post_events(
        r#"{"id":"e","type":"page_view","session":"s","props":{"m":"ann\u0040shop.io"}}"#,
    )
    .await;
    let (_, event) = left.letter("missing_field");
    assert_eq!(event["props"]["m"], "[email]");
    left.assert_absent(&["shop.io", "u0040"]);
}

#[tokio::test]
async fn a_card_number_as_the_type_is_refused_and_never_forwarded() {
    let left = post_events(
        r#"{"id":"e1","type":"4111111111111111","ts":1763800000000,"session":"s"},
           {"id":"e2","type":"page_view","ts":1763800000000,"session":"s"}"#,
    )
    .await;
    assert_eq!(left.answer["accepted"], 1);
    assert_eq!(left.answer["rejected"][0]["reason"], "invalid_type");
    assert_eq!(left.letter("invalid_type").1["type"], "[card]");
    left.assert_absent(&["4111"]);
}

#[tokio::test]
async fn a_rejection_message_names_the_field_without_quoting_the_value() {
    let left =
        post_events(r#"{"id":"e","type":"page_view","ts":"5500 0000 0000 0004","session":"s"}"#)
            .await;
    left.assert_absent(&["5500", "0004"]);
    let answer = &left.answer["rejected"][0];
    assert_eq!(answer["reason"], "invalid_ts");
    let message = answer["message"].as_str().unwrap();
    assert!(message.starts_with("`ts` must be an integer"), "{message}");
    // The dead letter has the same message, and the value masked where it stood.
    let (letter_message, event) = left.letter("invalid_ts");
    assert_eq!(
        (letter_message.as_str(), &event["ts"]),
        (message, &Value::from("[card]"))
    );
}

#[tokio::test]
async fn a_phone_number_as_the_session_becomes_a_pseudonym() {
    let left = post_events(
        r#"{"id":"e1","type":"page_view","ts":1763800000000,"session":"+48 601 234 567"},
           {"id":"e2","type":"page_view","session":"s","props":{"tel":"+48601234567"}}"#,
    )
    .await;
    assert_eq!(
        left.events[0].session,
        pseudonymise("+48 601 234 567".into())
    );
    assert_eq!(left.letter("missing_field").1["props"]["tel"], "[phone]");
    left.assert_absent(&["601", "234 567"]);
}

#[tokio::test]
async fn a_card_number_as_the_order_id_never_leaves_however_written() {
    // Accepted: a pseudonym. Rejected (no `ts`): masked in the dead letter, also as a float.
    let left = post_events(
        r#"{"id":"e1","type":"purchase","ts":1763800000000,"session":"s","props":{"order_id":"4111 1111 1111 1111","value":5}},
           {"id":"e2","type":"purchase","session":"s","props":{"order_id":4.111111111111111e15}}"#,
    )
    .await;
    let order = pseudonymise("4111 1111 1111 1111".into());
    assert_eq!(left.events[0].order_id.as_ref(), Some(&order));
    assert_eq!(
        left.letter("missing_field").1["props"]["order_id"],
        "[card]"
    );
    left.assert_absent(&["4111", "4.111"]);
}
