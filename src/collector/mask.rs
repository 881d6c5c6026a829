//! Masking personal data before anything leaves the collector: e-mail addresses (also
//! percent-encoded, as in URLs) become `[email]`, and card-like numbers (13 to 19 digits
//! starting with 2 to 6, with single spaces or dashes between them, standing alone rather than
//! inside a word or a hex string, passing the Luhn check) become `[card]`.
//!
//! Identifiers an event carries into the transport (id, session, order id) are replaced whole
//! by a pseudonym when they hold personal data ([`pseudonymise`]): masking part of an
//! identifier could make two of them equal, merging sessions or dropping events as duplicates.
//! The raw text of rejected events sent to the dead-letter topic is masked with [`mask_json`],
//! and stays valid JSON.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Write;

/// `id` itself when it holds no personal data; otherwise `masked-` and the first 128 bits of
/// its SHA-256 in hex. The same id gives the same pseudonym on every collector, and two ids
/// different ones, so sessions, dedup and orders keep working. It is not a secret: whoever
/// guesses the address or number can compute the pseudonym and confirm the guess.
pub fn pseudonymise(id: String) -> String {
    if matches!(mask(&id), Cow::Borrowed(_)) {
        return id;
    }
    let digest = Sha256::digest(id.as_bytes());
    let mut out = String::with_capacity(7 + 32);
    out.push_str("masked-");
    for byte in &digest[..16] {
        write!(out, "{byte:02x}").expect("writing to a String");
    }
    out
}

/// `text` with e-mail addresses and card numbers masked; borrowed when there is nothing to mask.
pub fn mask(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    // Cheap test first, in one pass: most strings have neither an `@` (plain or `%40`) nor
    // 13 digits.
    let (mut digits, mut at) = (0, false);
    for (i, c) in b.iter().enumerate() {
        digits += usize::from(c.is_ascii_digit());
        at |= *c == b'@' || (*c == b'%' && b[i + 1..].starts_with(b"40"));
    }
    if digits < 13 && !at {
        return Cow::Borrowed(text);
    }
    let mut spans = email_spans(b);
    if digits >= 13 {
        spans.extend(card_spans(b));
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, label) in spans {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(label);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// `json` (valid JSON text) with personal data masked inside its strings, and card-like numbers
/// replaced by the string `"[card]"`, so the result stays valid JSON.
pub fn mask_json(json: &str) -> Cow<'_, str> {
    if matches!(mask(json), Cow::Borrowed(_)) {
        return Cow::Borrowed(json);
    }
    let b = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            // A string literal, up to the next unescaped quote: masked as the text it stands
            // for (escapes decoded), and written back as a JSON string.
            let mut end = i + 1;
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            let end = (end + 1).min(b.len());
            let literal = &json[i..end];
            match serde_json::from_str::<String>(literal) {
                Ok(text) => match mask(&text) {
                    Cow::Owned(masked) => out.push_str(
                        &serde_json::to_string(&masked).expect("a string always serialises"),
                    ),
                    Cow::Borrowed(_) => out.push_str(literal),
                },
                Err(_) => out.push_str(literal),
            }
            i = end;
        } else if is_number_byte(b[i]) {
            // A whole number token; only a plain integer can be a card number.
            let end = i + b[i..].iter().take_while(|c| is_number_byte(**c)).count();
            let number = &json[i..end];
            let integer = number.bytes().all(|c| c.is_ascii_digit());
            if integer && matches!(mask(number), Cow::Owned(_)) {
                out.push_str("\"[card]\"");
            } else {
                out.push_str(number);
            }
            i = end;
        } else {
            let end = i + b[i..]
                .iter()
                .take_while(|c| **c != b'"' && !is_number_byte(**c))
                .count();
            out.push_str(&json[i..end]);
            i = end;
        }
    }
    Cow::Owned(out)
}

fn is_number_byte(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// (start, end, "[email]") of every address: local part, `@` or `%40`, a dotted domain whose
/// last label has at least two letters.
fn email_spans(b: &[u8]) -> Vec<(usize, usize, &'static str)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_len = if b[i] == b'@' {
            1
        } else if b[i..].starts_with(b"%40") {
            3
        } else {
            i += 1;
            continue;
        };
        let mut start = i;
        while start > 0 && is_local(b[start - 1]) {
            start -= 1;
        }
        // `%40` follows a local part that may itself hold percent escapes; skip none.
        let mut end = i + at_len;
        while end < b.len() && is_domain(b[end]) {
            end += 1;
        }
        while end > i + at_len && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &b[i + at_len..end];
        let tld = domain.rsplit(|c| *c == b'.').next().unwrap_or_default();
        let dotted = domain.contains(&b'.');
        if start < i && dotted && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            spans.push((start, end, "[email]"));
            i = end;
        } else {
            i += at_len;
        }
    }
    spans
}

/// (start, end, "[card]") of every run of 13 to 19 digits (single spaces or dashes allowed
/// between digits), not touching a letter, digit or `_` on either side, that looks like a card
/// number and passes the Luhn check. The boundary keeps digit runs inside hex ids and UUIDs
/// (`4d4111…1111a`) as they are.
fn card_spans(b: &[u8]) -> Vec<(usize, usize, &'static str)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = Vec::new();
        let mut end = i;
        while end < b.len() {
            if b[end].is_ascii_digit() {
                digits.push(b[end] - b'0');
                end += 1;
            } else if matches!(b[end], b' ' | b'-')
                && end + 1 < b.len()
                && b[end + 1].is_ascii_digit()
                && end > start
                && b[end - 1].is_ascii_digit()
            {
                end += 1;
            } else {
                break;
            }
        }
        // Card numbers start with 2 to 6 (Mastercard, Amex, Visa, Discover...); millisecond
        // timestamps, also 13 digits, start with 1.
        let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        let touching = (start > 0 && word(&b[start - 1])) || b.get(end).is_some_and(word);
        if !touching
            && (13..=19).contains(&digits.len())
            && (2..=6).contains(&digits[0])
            && luhn(&digits)
        {
            spans.push((start, end, "[card]"));
        }
        i = end.max(i + 1);
    }
    spans
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_cards_are_masked_and_the_rest_kept() {
        assert!(matches!(mask("session-42"), Cow::Borrowed(_)));
        assert_eq!(mask("jan.kowalski+shop@example.co.uk"), "[email]");
        assert_eq!(
            mask("https://shop.test/account?e=jan%40example.com&x=1"),
            "https://shop.test/account?e=[email]&x=1"
        );
        assert_eq!(
            mask(r#"{"email":"a@b.io","n":"x"}"#),
            r#"{"email":"[email]","n":"x"}"#
        );
        // A Visa test number, with and without separators; a number failing Luhn is kept.
        assert_eq!(mask("card 4111 1111 1111 1111 ok"), "card [card] ok");
        assert_eq!(mask("4111-1111-1111-1111"), "[card]");
        assert_eq!(mask("4111111111111111"), "[card]");
        assert_eq!(mask("order 4111111111111112"), "order 4111111111111112");
        // Timestamps and short ids are not cards; `@` without a domain is not an address.
        assert_eq!(mask("1763800000000"), "1763800000000");
        assert_eq!(mask("@handle and a@b"), "@handle and a@b");
        assert_eq!(
            mask("mail a@b.io, pay 5500 0000 0000 0004."),
            "mail [email], pay [card]."
        );
        assert_eq!(mask("?cc=4111111111111111&x=1"), "?cc=[card]&x=1");
        // Inside a hex id or a UUID, a Luhn-valid run of digits is not a card number.
        for id in [
            "4d4111111111111111a",
            "c2265d34-2d41-1111-1111-111111cff56b",
            "x_4111111111111111",
        ] {
            assert_eq!(mask(id), id);
        }
    }

    #[test]
    fn identifiers_with_personal_data_become_stable_distinct_pseudonyms() {
        assert_eq!(pseudonymise("s-42".into()), "s-42");
        let a = pseudonymise("ann@shop.io".into());
        assert!(a.starts_with("masked-") && a.len() == 39, "{a}");
        assert!(!a.contains("ann"));
        assert_eq!(a, pseudonymise("ann@shop.io".into()));
        // Two card numbers would both mask to `[card]`; as orders they must stay two.
        assert_ne!(
            pseudonymise("4111 1111 1111 1111".into()),
            pseudonymise("5500 0000 0000 0004".into())
        );
    }

    #[test]
    fn card_numbers_as_json_numbers_become_strings() {
        let raw = r#"[4111111111111111, 1763800000000, {"n": 5500000000000004}, -3.2333069372474485e258]"#;
        let v: serde_json::Value = serde_json::from_str(&mask_json(raw)).unwrap();
        assert_eq!(
            v,
            serde_json::json!(["[card]", 1763800000000i64, {"n": "[card]"}, -3.2333069372474485e258])
        );
        assert!(matches!(mask_json(r#"{"a":1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_are_never_split() {
        // Found by fuzzing: an address right after `\n` once cut the escape in two.
        let raw = r#"{"u":"?e=ann\n%%40shop.io","v":"a\u0040b.io"}"#;
        let v: serde_json::Value = serde_json::from_str(&mask_json(raw)).unwrap();
        assert_eq!(v["u"], "?e=ann\n[email]");
        assert_eq!(v["v"], "[email]");
    }

    #[test]
    fn masked_json_stays_json() {
        let raw = r#"{"id":"x","url":"https://s.test/?mail=ann@shop.io","props":{"card":"4111 1111 1111 1111"}}"#;
        let masked = mask_json(raw);
        let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(v["url"], "https://s.test/?mail=[email]");
        assert_eq!(v["props"]["card"], "[card]");
    }
}
