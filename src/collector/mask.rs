//! Masking personal data before anything leaves the collector: e-mail addresses (also
//! percent-encoded, as in URLs) become `[email]`, card-like numbers `[card]` and phone numbers
//! `[phone]` ([`spans`] has the exact rules).
//!
//! Text is masked as it is meant, never as it is spelled: a JSON string is decoded first, so an
//! address written `ann\u0040shop.io` is found like `ann@shop.io`. Identifiers an event carries
//! into the transport (id, session, order id) are replaced whole by a pseudonym when they hold
//! personal data ([`pseudonymise`]): masking part of an identifier could make two of them
//! equal, merging sessions or dropping events as duplicates. The raw text of rejected events
//! sent to the dead-letter topic is masked with [`mask_json`], and stays valid JSON.
//!
//! Text without personal data costs a few passes over its bytes and no allocation.

mod spans;

use sha2::{Digest, Sha256};
use spans::Span;
use std::borrow::Cow;
use std::fmt::Write;

/// `id` itself when it holds no personal data; otherwise `masked-` and the first 128 bits of
/// its SHA-256 in hex. The same id gives the same pseudonym on every collector, and two ids
/// different ones, so sessions, dedup and orders keep working. It is not a secret: whoever
/// guesses the address or number can compute the pseudonym and confirm the guess.
pub fn pseudonymise(id: String) -> String {
    if !holds_personal_data(&id) {
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

/// Whether `text` holds an e-mail address, a card number or a phone number.
pub fn holds_personal_data(text: &str) -> bool {
    !find(text.as_bytes()).is_empty()
}

/// `text` with e-mail addresses, card and phone numbers masked; borrowed when there is nothing
/// to mask.
pub fn mask(text: &str) -> Cow<'_, str> {
    // A label can free what its neighbour hid (`+48 601 468+0 1 234 567`: the second number
    // touched the first, and stands alone next to `[phone]`): mask again until nothing is
    // left, so masking what was masked finds nothing.
    let Cow::Owned(mut masked) = mask_once(text) else {
        return Cow::Borrowed(text);
    };
    for _ in 0..8 {
        match mask_once(&masked) {
            Cow::Borrowed(_) => break,
            Cow::Owned(again) => masked = again,
        }
    }
    Cow::Owned(masked)
}

fn mask_once(text: &str) -> Cow<'_, str> {
    let mut out = Rewrite::new(text);
    for (start, end, label) in find(text.as_bytes()) {
        // Of two overlapping finds, the first (the longer, at one start) wins.
        if start >= out.done {
            out.replace(start, end, label);
        }
    }
    out.finish()
}

/// Every span of personal data in `b`, in order; empty, and not allocated, for most text.
fn find(b: &[u8]) -> Vec<Span> {
    // One cheap pass first: most text has no `@` (plain or `%40`) and fewer than 8 digits.
    let (mut digits, mut at) = (0, false);
    for (i, c) in b.iter().enumerate() {
        digits += usize::from(c.is_ascii_digit());
        at |= *c == b'@' || (*c == b'%' && b[i + 1..].starts_with(b"40"));
    }
    let mut found = Vec::new();
    if at {
        spans::emails(b, &mut found);
    }
    if digits >= 13 {
        spans::cards(b, &mut found);
    }
    if digits >= 8 {
        spans::phones(b, &mut found);
    }
    found.sort_unstable_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
    found
}

/// `json` (valid JSON text) with personal data masked inside its strings (keys too, decoded
/// first), and card numbers written as numbers replaced by the string `"[card]"`, so the result
/// stays valid JSON. A string that cannot be decoded (a lone UTF-16 surrogate) cannot be read
/// for personal data either, and becomes `"[unreadable]"`.
pub fn mask_json(json: &str) -> Cow<'_, str> {
    let b = json.as_bytes();
    let mut out = Rewrite::new(json);
    let mut i = 0;
    while i < b.len() {
        let end = if b[i] == b'"' {
            // A string literal, up to the next unescaped quote.
            let mut end = i + 1;
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            let end = (end + 1).min(b.len());
            if let Some(masked) = mask_literal(&json[i..end]) {
                out.replace(i, end, &masked);
            }
            end
        } else if is_number_byte(b[i]) {
            let end = i + b[i..].iter().take_while(|c| is_number_byte(**c)).count();
            if number_is_card(&json[i..end]) {
                out.replace(i, end, "\"[card]\"");
            }
            end
        } else {
            i + b[i..]
                .iter()
                .take_while(|c| **c != b'"' && !is_number_byte(**c))
                .count()
        };
        i = end;
    }
    out.finish()
}

/// A JSON string literal (quotes included) masked as the text it stands for and written back
/// as a literal; `None` when it holds no personal data.
fn mask_literal(literal: &str) -> Option<String> {
    let inner = literal
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or(literal);
    if !inner.contains('\\') {
        // No escapes: the bytes are the text, and masks add no character JSON must escape.
        return match mask(inner) {
            Cow::Owned(masked) => Some(format!("\"{masked}\"")),
            Cow::Borrowed(_) => None,
        };
    }
    match serde_json::from_str::<String>(literal) {
        Ok(text) => match mask(&text) {
            Cow::Owned(masked) => {
                Some(serde_json::to_string(&masked).expect("a string always serialises"))
            }
            Cow::Borrowed(_) => None,
        },
        Err(_) => Some("\"[unreadable]\"".into()),
    }
}

fn is_number_byte(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Whether a JSON number token is a card number: written as an integer (`4111111111111111`,
/// `-4111111111111111`) or as a float whose value is one (`4.111111111111111e15`).
fn number_is_card(token: &str) -> bool {
    let integer = token.strip_prefix('-').unwrap_or(token);
    if integer.bytes().all(|c| c.is_ascii_digit()) {
        return integer.len() >= 13 && holds_personal_data(integer);
    }
    match token.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && (1e12..1e19).contains(&v.abs()) => {
            holds_personal_data(&format!("{:.0}", v.abs()))
        }
        _ => false,
    }
}

/// `text` with some byte ranges replaced, left to right; allocated at the first replacement.
struct Rewrite<'a> {
    text: &'a str,
    /// Where the text not yet copied starts.
    done: usize,
    out: Option<String>,
}

impl<'a> Rewrite<'a> {
    fn new(text: &'a str) -> Self {
        Rewrite {
            text,
            done: 0,
            out: None,
        }
    }

    fn replace(&mut self, start: usize, end: usize, with: &str) {
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(&self.text[self.done..start]);
        out.push_str(with);
        self.done = end;
    }

    fn finish(self) -> Cow<'a, str> {
        match self.out {
            None => Cow::Borrowed(self.text),
            Some(mut out) => {
                out.push_str(&self.text[self.done..]);
                Cow::Owned(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_is_linear_in_the_text_whatever_it_repeats() {
        // Each `%40` once made the scan walk back over every `%40` before it: half a megabyte
        // of them cost about 5e10 steps (tens of seconds of a worker). Now a few milliseconds.
        for unit in ["%40", "@", "a@", "4 ", "+4", "%40a.b"] {
            let text = unit.repeat(512 * 1024 / unit.len());
            let masked = mask(&text);
            assert!(masked.len() <= text.len() * 2, "{unit}");
        }
    }

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
    fn a_number_glued_to_an_address_goes_with_it() {
        // Found by fuzzing: the number touches a letter, so neither the card nor the phone
        // scanner took it, and the address took only its last group (`601 234 [email]`).
        for (text, masked) in [
            ("6011 0000 0000 0000 004ann@shop.io", "[email]"),
            ("5500-0000 0000 0004nn@shop.io", "[email]"),
            ("call 601 234 567ann@shop.io now", "call [email] now"),
            ("(555) 123-4567ann@shop.io", "[email]"),
            ("a@b.io 4111 1111 1111 1111ann@shop.io", "[email] [email]"),
            ("order 12, 4ann@shop.io", "order 12, [email]"),
        ] {
            assert_eq!(mask(text), masked, "{text}");
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
        let raw = r#"[4111111111111111, 1763800000000, {"n": 5500000000000004}, -3.2333069372474485e258,
                      4.111111111111111e15, -4111111111111111, 4111111111111111.0, 4111111111111112]"#;
        let v: serde_json::Value = serde_json::from_str(&mask_json(raw)).unwrap();
        assert_eq!(
            v,
            serde_json::json!(["[card]", 1763800000000i64, {"n": "[card]"}, -3.2333069372474485e258,
                               "[card]", "[card]", "[card]", 4111111111111112i64])
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
    fn phone_numbers_are_masked_and_look_alikes_kept() {
        for (text, masked) in [
            ("call +48 601 234 567 now", "call [phone] now"),
            ("+48601234567", "[phone]"),
            ("tel=%2B48601234567&x=1", "tel=[phone]&x=1"),
            ("+1 (555) 123-4567", "[phone]"),
            ("(555) 123-4567", "[phone]"),
            ("601 234 567", "[phone]"),
            ("020 7946 0958.", "[phone]."),
        ] {
            assert_eq!(mask(text), masked, "{text}");
        }
        // Dates, times, timestamps, bare numbers, prices, versions and ids stay.
        for text in [
            "2024-11-22 10:30:00",
            "1763800000000",
            "601234567",
            "1 234 567,89 PLN",
            "v1.2.3+4",
            "1e+308",
            "size+12345678",
            "c2265d34-2d41-1111-1111-111111cff56b",
            "A-1001",
        ] {
            assert_eq!(mask(text), text);
        }
    }

    #[test]
    fn json_escapes_are_decoded_before_masking() {
        // `\u0040` is `@` and `\u0034` is `4`: neither may hide an address or a card number.
        let raw = r#"{"props":{"e":"ann\u0040shop.io","c":"\u0034111111111111111","t":"\n4111111111111111","p":"\u002b48601234567"}}"#;
        let masked = mask_json(raw);
        let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(
            v["props"],
            serde_json::json!({"e": "[email]", "c": "[card]", "t": "\n[card]", "p": "[phone]"})
        );
        // Keys are strings too; a lone surrogate cannot be read, so it does not pass.
        let raw = r#"{"ann\u0040shop.io":1,"x":"\ud800 ann@shop.io"}"#;
        let v: serde_json::Value = serde_json::from_str(&mask_json(raw)).unwrap();
        assert_eq!(v, serde_json::json!({"[email]": 1, "x": "[unreadable]"}));
        // Escapes without personal data are kept as sent.
        let raw = r#"{"a":"line\nbreak \u00e9"}"#;
        assert!(matches!(mask_json(raw), Cow::Borrowed(_)));
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
