//! Reading a request body safely: content type and encoding checked first, the body read with
//! a cap, and gzip inflated with the same cap, so neither a large upload nor a gzip bomb can
//! make the collector hold more than `max_body_bytes`.

use super::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::io::Read;

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// Checks `Content-Type` (JSON or text/plain, as sendBeacon sends) and `Content-Encoding`.
pub fn check_headers(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && mime != "text/plain" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type `{content_type}` is not supported; send application/json or text/plain"
        )));
    }
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => Ok(Encoding::Identity),
        Some(e) if e.is_empty() || e == "identity" => Ok(Encoding::Identity),
        Some(e) if e == "gzip" => Ok(Encoding::Gzip),
        Some(e) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding `{e}` is not supported; send gzip or no encoding"
        ))),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!("the request body is larger than {limit} bytes"))
}

/// Reads at most `limit` bytes of body.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(_) => Err(ApiError::Malformed(
            "the request body could not be read".into(),
        )),
    }
}

/// Inflates a gzip body, refusing anything that inflates past `limit` bytes.
pub fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity((compressed.len() * 4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(compressed).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|_| ApiError::Malformed("the body is not valid gzip".into()))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "the request body inflates to more than {limit} bytes"
        )));
    }
    Ok(out.into())
}

/// Deepest JSON nesting accepted. A batch needs 6 levels (batch, events, event, props, items,
/// item); anything far deeper is an attack on the parser, refused before parsing.
pub const MAX_DEPTH: usize = 32;

/// Refuses a body whose arrays and objects nest deeper than `MAX_DEPTH` (strings skipped).
pub fn check_depth(raw: &[u8]) -> Result<(), ApiError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in raw {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ApiError::Malformed(format!(
                        "the body nests arrays and objects deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_is_bounded_and_strings_do_not_count() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(check_depth(deep.as_bytes()).is_err());
        let fine = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(check_depth(fine.as_bytes()).is_ok());
        let quoted = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(check_depth(quoted.as_bytes()).is_ok());
    }

    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    #[test]
    fn gzip_bomb_is_cut_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![b' '; 50 * 1024 * 1024]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 100 * 1024);
        assert!(matches!(
            gunzip(&bomb, 512 * 1024),
            Err(ApiError::TooLarge(_))
        ));
        assert!(matches!(
            gunzip(b"not gzip", 1024),
            Err(ApiError::Malformed(_))
        ));
    }
}
