//! Why an event that does not deserialise was rejected: the reason of the field at fault and a
//! message naming it and what it must be. The message never quotes the value sent (serde's own
//! messages do, and the value may be an address or a card number).

use super::wire::{Rejection, WireEvent};
use crate::event::RejectReason;
use serde_json::error::Category;

/// The rejection of `text`, an event that serde could not read as a [`WireEvent`].
pub fn diagnose(text: &str) -> Rejection {
    let mut de = serde_json::Deserializer::from_str(text);
    let Err(e) = serde_path_to_error::deserialize::<_, WireEvent>(&mut de) else {
        return Rejection::new(RejectReason::InvalidField, "the event could not be read");
    };
    let path = e.path().to_string();
    let error = e.into_inner();
    let twice = duplicate(&error.to_string()).map(|name| match path.as_str() {
        "." => name.to_string(),
        parent => format!("{parent}.{name}"),
    });
    let message = match &twice {
        Some(field) => format!("`{field}` is given more than once"),
        None if error.classify() == Category::Data => {
            format!("`{path}` must be {}", expected(&path))
        }
        // Past the batch's parse, only a number out of range or a lone `\u` surrogate.
        None => format!(
            "`{path}` could not be read (a number out of range or an invalid \\u escape); it must be {}",
            expected(&path)
        ),
    };
    let field = twice.as_deref().unwrap_or(&path);
    let reason = match field.split(['.', '[']).next().unwrap_or("") {
        "id" => RejectReason::InvalidId,
        "type" => RejectReason::InvalidType,
        "ts" => RejectReason::InvalidTs,
        "session" => RejectReason::InvalidSession,
        "props" => RejectReason::InvalidProps,
        _ => RejectReason::InvalidField,
    };
    Rejection::new(reason, message)
}

/// The field named by serde's "duplicate field `x`", when it is one of ours.
fn duplicate(error: &str) -> Option<&str> {
    let name = error.strip_prefix("duplicate field `")?.split('`').next()?;
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then_some(name)
}

/// What the field at `path` must be, in the words of the wire format.
fn expected(path: &str) -> &'static str {
    // `props.items[3].price` reads as `props.items[].price`.
    let mut shape = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => {
                in_index = false;
                shape.push_str("[]");
            }
            _ if in_index => {}
            _ => shape.push(c),
        }
    }
    match shape.as_str() {
        "id" | "session" => "a string of 1 to 64 characters",
        "type" => "a string such as `add_to_cart`",
        "ts" => "an integer: milliseconds since the epoch",
        "visitor" => "a string of at most 64 characters",
        "url" | "referrer" | "utm.source" | "utm.medium" | "utm.campaign" => "a string",
        "utm" | "props" | "props.items[]" => "an object",
        "props.value" | "props.items[].price" | "props.items[].quantity" => "a number",
        "props.currency" => "a three-letter ISO 4217 code",
        "props.order_id" => "a string or a number",
        "props.items" => "an array of objects",
        "consent" => "true or false",
        _ => "of the type the wire format gives",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(json: &str) -> (RejectReason, String) {
        let r = diagnose(json);
        (r.reason, r.message)
    }

    #[test]
    fn messages_name_the_field_and_never_quote_the_value() {
        for (json, reason, message) in [
            (
                r#"{"id":4111111111111111}"#,
                RejectReason::InvalidId,
                "`id` must be a string of 1 to 64 characters",
            ),
            (
                r#"{"ts":"ann\u0040shop.io"}"#,
                RejectReason::InvalidTs,
                "`ts` must be an integer: milliseconds since the epoch",
            ),
            (
                r#"{"props":{"items":[{"price":1},{"price":"+48 601 234 567"}]}}"#,
                RejectReason::InvalidProps,
                "`props.items[1].price` must be a number",
            ),
            (
                r#"{"utm":{"source":5500000000000004}}"#,
                RejectReason::InvalidField,
                "`utm.source` must be a string",
            ),
            (
                r#"{"props":{"currency":"USD","currency":"EUR"}}"#,
                RejectReason::InvalidProps,
                "`props.currency` is given more than once",
            ),
            (
                r#"{"id":"a","id":"b"}"#,
                RejectReason::InvalidId,
                "`id` is given more than once",
            ),
        ] {
            assert_eq!(rejection(json), (reason, message.to_string()), "{json}");
        }
        let (reason, message) = rejection(r#"{"session":"\ud800 4111111111111111"}"#);
        assert_eq!(reason, RejectReason::InvalidSession);
        assert!(
            message.starts_with("`session` could not be read"),
            "{message}"
        );
    }
}
