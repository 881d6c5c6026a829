//! Decoding and validation of single events: what is accepted, and the reason of each fault.

use super::*;

fn decode(json: &str) -> Result<ValidEvent<'static>, Rejection> {
    // Leaked: a few bytes per test, so the event may borrow from its body.
    let raw: &'static RawValue = Box::leak(serde_json::from_str::<Box<RawValue>>(json).unwrap());
    decode_event(raw, 32 * 1024, 200)
}

fn reason(json: &str) -> RejectReason {
    decode(json).unwrap_err().reason
}

const OK: &str = r#"{"id":"e1","type":"add_to_cart","ts":1763800000000,"session":"s1"}"#;

#[test]
fn accepts_minimal_and_full_events() {
    let e = decode(OK).unwrap();
    assert_eq!(
        (e.id.as_str(), e.kind.as_str(), e.session.as_str()),
        ("e1", "add_to_cart", "s1")
    );
    let e = decode(
        r#"{"id":"e1","type":"Product Added","ts":1,"session":"s","extra":[1],
           "props":{"currency":"pln","order_id":1001,"items":[{"id":"a","price":10.5,"quantity":2},{"price":1}],"color":"red"}}"#,
    )
    .unwrap();
    assert_eq!(e.value, Some(22.0));
    assert_eq!(e.currency.as_deref(), Some("PLN"));
    assert_eq!(e.order_id.as_deref(), Some("1001"));
}

#[test]
fn each_problem_has_its_reason() {
    assert_eq!(reason("[1]"), RejectReason::NotAnObject);
    assert_eq!(
        reason(r#"{"type":"x","ts":1,"session":"s"}"#),
        RejectReason::MissingField
    );
    assert_eq!(
        reason(r#"{"id":7,"type":"x","ts":1,"session":"s"}"#),
        RejectReason::InvalidId
    );
    let long = "x".repeat(65);
    assert_eq!(
        reason(&format!(
            r#"{{"id":"{long}","type":"x","ts":1,"session":"s"}}"#
        )),
        RejectReason::InvalidId
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"DROP TABLE;","ts":1,"session":"s"}"#),
        RejectReason::InvalidType
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":"now","session":"s"}"#),
        RejectReason::InvalidTs
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":-5,"session":"s"}"#),
        RejectReason::InvalidTs
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":1.5,"session":"s"}"#),
        RejectReason::InvalidTs
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":1,"session":""}"#),
        RejectReason::InvalidSession
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":1,"session":"s","props":{"value":-1}}"#),
        RejectReason::InvalidProps
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":1,"session":"s","props":{"value":"9"}}"#),
        RejectReason::InvalidProps
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":1,"session":"s","props":{"currency":"dollars"}}"#),
        RejectReason::InvalidProps
    );
    assert_eq!(
        reason(r#"{"id":"e","type":"x","ts":1,"session":"s","url":5}"#),
        RejectReason::InvalidField
    );
    let items = vec![r#"{"price":1}"#; 201].join(",");
    let json =
        format!(r#"{{"id":"e","type":"x","ts":1,"session":"s","props":{{"items":[{items}]}}}}"#);
    assert_eq!(reason(&json), RejectReason::TooManyItems);
    let raw: Box<RawValue> = serde_json::from_str(OK).unwrap();
    assert_eq!(
        decode_event(&raw, 10, 200).unwrap_err().reason,
        RejectReason::EventTooLarge
    );
}

#[test]
fn a_type_holding_a_card_or_phone_number_is_refused_without_quoting_it() {
    for kind in [
        "4111111111111111",
        "4111111111111112",
        "promo_4111111111111111",
        "call 601 234 567",
        "x 4111 1111 1111 1111",
    ] {
        let json = format!(r#"{{"id":"e","type":"{kind}","ts":1,"session":"s"}}"#);
        let r = decode(&json).unwrap_err();
        assert_eq!(r.reason, RejectReason::InvalidType, "{kind}");
        assert!(
            !r.message.contains("1111") && !r.message.contains("234"),
            "{r:?}"
        );
    }
    // Short numbers in a name are fine.
    assert!(decode(r#"{"id":"e","type":"step_2024_11","ts":1,"session":"s"}"#).is_ok());
}

#[test]
fn messages_never_quote_personal_data() {
    for json in [
        r#"{"id":"e","type":"x","ts":"ann\u0040shop.io","session":"s"}"#,
        r#"{"id":"e","type":"x","ts":1,"session":4111111111111111}"#,
        r#"{"id":"e","type":"x","ts":1,"session":"s","props":{"value":"+48 601 234 567"}}"#,
    ] {
        let r = decode(json).unwrap_err();
        for secret in ["ann", "shop.io", "1111", "601"] {
            assert!(!r.message.contains(secret), "{json}: {}", r.message);
        }
    }
}

#[test]
fn an_empty_visitor_is_none_and_a_long_one_is_refused() {
    let with =
        |v: &str| format!(r#"{{"id":"e1","type":"x","ts":1,"session":"s","visitor":"{v}"}}"#);
    assert_eq!(
        decode(&with("v-1")).unwrap().visitor.as_deref(),
        Some("v-1")
    );
    // Else every shopper sending "" would share one partition key, and one state.
    assert_eq!(decode(&with("")).unwrap().visitor, None);
    assert_eq!(decode(OK).unwrap().visitor, None);
    let long = decode(&with(&"v".repeat(65))).unwrap_err();
    assert!(long.message.contains("visitor"), "{}", long.message);
}
