//! Reading a request body safely: content type and encoding checked first, the body read with
//! a cap, and gzip inflated with the same cap, so neither a large upload nor a gzip bomb can
//! make the collector hold more than `max_body_bytes`. However the body is framed (one chunk
//! or a million one-byte chunks), it is copied into one buffer as it arrives, and every byte
//! of buffer is first taken from a budget shared by all requests (see `budget`): when it is
//! spent, the request gets 503 with `Retry-After` instead of more memory.

use super::ApiError;
use super::budget::Held;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::io::Read;
use std::time::Duration;

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

/// Room taken for a body before any of it arrives.
const FIRST_ROOM: usize = 16 * 1024;

/// Reads at most `limit` bytes of body into one buffer, its room taken from the request's
/// budget first: a small start, doubling as bytes arrive (up to `hint`, the `Content-Length`,
/// when the sender gave one), so a client that announces a large body and trickles it holds
/// only about what it sent.
pub async fn read(
    upload: &mut Upload,
    limit: usize,
    hint: Option<usize>,
    held: &mut Held,
) -> Result<Bytes, ApiError> {
    if hint.is_some_and(|h| h > limit) {
        return Err(too_large(limit));
    }
    let most = hint.unwrap_or(limit).min(limit);
    let mut room = most.min(FIRST_ROOM);
    held.take(room)?;
    let mut buf = BytesMut::with_capacity(room);
    upload.polled = true;
    let body = &mut upload.body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::Malformed("the request body could not be read".into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let need = buf.len() + data.len();
        if need > limit {
            return Err(too_large(limit));
        }
        if need > room {
            let grown = need.max((room * 2).min(most)).min(limit);
            held.take(grown - room)?;
            buf.reserve(grown - buf.len());
            room = grown;
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// A request's body, and whether any of it was asked for (hyper answers `100-continue` then).
pub struct Upload {
    body: Body,
    polled: bool,
}

impl Upload {
    pub fn new(body: Body) -> Self {
        Self {
            body,
            polled: false,
        }
    }
}

/// The most of a refused request's body that `linger` reads: bytes, frames, and time (never
/// more than `limits.request_timeout`).
const LINGER_BYTES: usize = 8 << 20;
const LINGER_FRAMES: usize = 64 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads and drops, on a task of its own while the answer goes out, what is left of a refused
/// request's body: at most `LINGER_BYTES` in `LINGER_FRAMES` frames, for at most `LINGER_TIME`
/// or `within`. A server that closes a socket with bytes unread resets it, and a client still
/// sending its body (a browser, reqwest) then loses the answer: it sees a reset connection
/// instead of the 4xx, and retries what it should have dropped (nginx's lingering close). A
/// body read to its end leaves the connection open for the next request. Not done when it could
/// not help or would invite more: a body announced longer than `LINGER_BYTES`, or a client that
/// asked for `100-continue` and was not asked for its body yet (the answer tells it not to
/// send). Nothing read is kept.
pub fn linger(upload: Upload, headers: &HeaderMap, within: Duration) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let done = axum::body::HttpBody::is_end_stream(&upload.body);
    if done
        || (expects_continue && !upload.polled)
        || announced.is_some_and(|n| n > LINGER_BYTES as u64)
    {
        return;
    }
    let mut body = upload.body;
    tokio::spawn(async move {
        let drain = async {
            let (mut bytes, mut frames) = (0, 0);
            while let Some(Ok(frame)) = body.frame().await {
                bytes += frame.data_ref().map_or(0, Bytes::len);
                frames += 1;
                if bytes >= LINGER_BYTES || frames >= LINGER_FRAMES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME.min(within), drain).await;
    });
}

/// Inflates a gzip body, refusing anything that inflates past `limit` bytes. The inflated
/// bytes count against `budget` too, taken as the output grows.
pub fn gunzip(compressed: &[u8], limit: usize, held: &mut Held) -> Result<Bytes, ApiError> {
    let mut room = (compressed.len() * 4).max(1024).min(limit + 1);
    held.take(room)?;
    let mut out = Vec::with_capacity(room);
    let mut decoder = flate2::read::GzDecoder::new(compressed).take(limit as u64 + 1);
    let mut block = [0u8; 16 * 1024];
    loop {
        let n = decoder
            .read(&mut block)
            .map_err(|_| ApiError::Malformed("the body is not valid gzip".into()))?;
        if n == 0 {
            break;
        }
        if out.len() + n > room {
            let grown = (out.len() + n).max(room * 2).min(limit + 1);
            held.take(grown - room)?;
            out.reserve_exact(grown - out.len());
            room = grown;
        }
        out.extend_from_slice(&block[..n]);
    }
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
    use crate::collector::budget::Budget;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    #[test]
    fn gzip_bomb_is_cut_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![b' '; 50 * 1024 * 1024]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 100 * 1024);
        let budget = Budget::new(1 << 20);
        assert!(matches!(
            gunzip(&bomb, 512 * 1024, &mut budget.hold(None)),
            Err(ApiError::TooLarge(_))
        ));
        assert!(matches!(
            gunzip(b"not gzip", 1024, &mut budget.hold(None)),
            Err(ApiError::Malformed(_))
        ));
        assert_eq!(budget.used(), 0, "given back");
    }

    /// A body sent as `chunks` frames of `size` bytes.
    struct Chunks(usize, usize);

    impl axum::body::HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            let frame = hyper::body::Frame::data(Bytes::from(vec![b' '; self.1]));
            std::task::Poll::Ready(Some(Ok(frame)))
        }
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        Body::new(Chunks(chunks, size))
    }

    #[tokio::test]
    async fn one_byte_chunks_land_in_one_buffer_within_the_budget() {
        let budget = Budget::new(1 << 20);
        let mut held = budget.hold(None);
        let body = read(
            &mut Upload::new(chunked(500_000, 1)),
            512 * 1024,
            None,
            &mut held,
        )
        .await
        .unwrap();
        assert_eq!(body.len(), 500_000);
        // The buffer grew by doubling from 16 KiB: what it holds is what the budget lent.
        assert_eq!(budget.used(), 512 * 1024);
        drop(held);
        assert_eq!(budget.used(), 0);
        // An announced length is not taken before the bytes come: a trickle holds little.
        let mut held = budget.hold(None);
        let body = read(
            &mut Upload::new(chunked(1, 10)),
            512 * 1024,
            Some(500_000),
            &mut held,
        )
        .await;
        assert_eq!(body.unwrap().len(), 10);
        assert_eq!(budget.used(), 16 * 1024);
        drop(held);
        // A spent budget gives 503 (Retry-After), whatever the framing.
        let small = Budget::new(100_000);
        let mut held = small.hold(None);
        let err = read(
            &mut Upload::new(chunked(200_000, 1)),
            512 * 1024,
            None,
            &mut held,
        )
        .await;
        assert!(matches!(err, Err(ApiError::Unavailable)), "{err:?}");
        // Over the cap: 413.
        let mut held = budget.hold(None);
        let err = read(
            &mut Upload::new(chunked(600, 1_000)),
            512 * 1024,
            None,
            &mut held,
        )
        .await;
        assert!(matches!(err, Err(ApiError::TooLarge(_))));
    }
}
