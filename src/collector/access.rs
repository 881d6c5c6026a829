//! Who may send: the sites by id or write key, and signed server-side requests.
//!
//! A signed request carries `Touchstream-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is the
//! HMAC-SHA256, under one of the site's `signing_secrets`, of `t`, a dot, and the body exactly
//! as sent (compressed, if it is). Signatures more than five minutes from the collector's clock
//! are refused, so a captured request cannot be replayed later.

use super::ApiError;
use crate::config::SiteConfig;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;

pub const SIGNATURE_HEADER: &str = "touchstream-signature";
/// Largest distance between a signature's time and the collector's clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// How a batch named its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    ById,
    ByKey,
}

/// The configured sites, found by id or write key. Replaced whole on reload.
#[derive(Debug)]
pub struct Sites {
    pub list: Vec<(Arc<str>, SiteConfig)>,
    names: HashMap<String, (usize, Named)>,
}

impl Sites {
    pub fn new(sites: &[SiteConfig]) -> Self {
        let mut names = HashMap::new();
        for (i, s) in sites.iter().enumerate() {
            names.insert(s.id.clone(), (i, Named::ById));
            for k in &s.keys {
                names.insert(k.clone(), (i, Named::ByKey));
            }
        }
        Sites {
            list: sites
                .iter()
                .map(|s| (Arc::from(s.id.as_str()), s.clone()))
                .collect(),
            names,
        }
    }

    /// The site a batch's `site` field names.
    pub fn find(&self, name: &str) -> Option<(usize, Named)> {
        self.names.get(name).copied()
    }

    /// The site ids in order: the metrics' site index, which a reload must keep.
    pub fn ids(&self) -> Vec<&str> {
        self.list.iter().map(|(id, _)| &**id).collect()
    }
}

/// Checks a request's signature, if it has one: `Ok(true)` when signed by one of `secrets`,
/// `Ok(false)` when unsigned.
pub fn verify_signature(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[String],
    now_secs: i64,
) -> Result<bool, ApiError> {
    let Some(value) = headers.get(SIGNATURE_HEADER) else {
        return Ok(false);
    };
    let bad = |why: &str| ApiError::BadSignature(why.to_string());
    let value = value.to_str().map_err(|_| bad("the header is not text"))?;
    let (mut t, mut v1) = (None, None);
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = decode_hex(x),
            _ => {}
        }
    }
    let (Some(t), Some(mac)) = (t, v1) else {
        return Err(bad("expected `t=UNIX_SECONDS,v1=HEX_HMAC_SHA256`"));
    };
    // `abs_diff`: any `t` a client sends, `i64::MIN` included, gives a distance, not an overflow.
    if now_secs.abs_diff(t) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
        return Err(bad(
            "the signature's time is more than 5 minutes from the collector's clock",
        ));
    }
    if secrets.is_empty() {
        return Err(bad("this site has no signing secret"));
    }
    let signed = secrets
        .iter()
        .any(|secret| signed_mac(secret, t, body).verify_slice(&mac).is_ok());
    if signed {
        Ok(true)
    } else {
        Err(bad(
            "the signature does not match the body under any of the site's secrets",
        ))
    }
}

/// The signature header value for `body` at `t` under `secret` (for senders and tests).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let hex: String = signed_mac(secret, t, body)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The HMAC-SHA256 under `secret` of `t`, a dot, and `body`: what a signature carries.
fn signed_mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_known_answer_from_openssl_verifies() {
        // printf '%s.%s' 1763800000 "$BODY" | openssl dgst -sha256 -hmac "$S" -r
        let body = br#"{"site":"demo","events":[{"id":"e1","type":"purchase","ts":1763800000000,"session":"s-7d1f9a","props":{"value":129.99,"currency":"PLN","order_id":"A-1001"}}]}"#;
        let secrets = ["s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t".to_string()];
        let header = signed(
            "t=1763800000,v1=48da9e2b2731e4992273ecac0da52df01defd2920d64870a7a804a395723389d",
        );
        assert!(verify_signature(&header, body, &secrets, 1_763_800_000).unwrap());
        assert!(verify_signature(&header, b"{}", &secrets, 1_763_800_000).is_err());
    }

    fn signed(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn signatures_are_checked_against_body_time_and_secret() {
        let body = br#"{"site":"demo","events":[]}"#;
        let secrets = vec!["old-secret-old-secret-old-secret".into(), SECRET.into()];
        let good = sign(SECRET, 1_000, body);
        assert_eq!(
            verify_signature(&signed(&good), body, &secrets, 1_100).ok(),
            Some(true)
        );
        assert_eq!(
            verify_signature(&HeaderMap::new(), body, &secrets, 0).ok(),
            Some(false)
        );
        let err = |h: &str, body: &[u8], now| {
            verify_signature(&signed(h), body, &secrets, now)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&good, b"{}", 1_000).contains("does not match"));
        assert!(err(&good, body, 1_000 + 301).contains("5 minutes"));
        assert!(err("v1=00", body, 1_000).contains("expected"));
        assert!(
            err(
                &sign("another-secret-another-secret-xx", 1_000, body),
                body,
                1_000
            )
            .contains("does not match")
        );
    }

    #[test]
    fn signature_times_at_the_ends_of_i64_are_refused_without_overflow() {
        let body = b"{}";
        let secrets = [SECRET.to_string()];
        let ends = [
            (i64::MIN, 1_763_800_000),
            (i64::MAX, 1_763_800_000),
            (i64::MAX, -1),
        ];
        for (t, now) in ends {
            let header = signed(&sign(SECRET, t, body));
            let err = verify_signature(&header, body, &secrets, now).unwrap_err();
            assert!(err.to_string().contains("5 minutes"), "t={t}: {err}");
        }
    }

    #[test]
    fn sites_are_found_by_id_and_by_key() {
        let site = SiteConfig {
            keys: vec!["pk_live_0123456789".into()],
            ..SiteConfig::default()
        };
        let sites = Sites::new(&[site]);
        assert_eq!(sites.find("demo"), Some((0, Named::ById)));
        assert_eq!(sites.find("pk_live_0123456789"), Some((0, Named::ByKey)));
        assert_eq!(sites.find("pk_live_unknown"), None);
    }
}
