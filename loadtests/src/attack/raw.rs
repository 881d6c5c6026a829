//! HTTP/1.1 by hand over TCP, for what a well-behaved client library will not do: connect from
//! a chosen loopback address, send nothing or one byte, frame a body in one-byte chunks, or
//! pipeline without reading; and the kernel's view of whether the server closed a socket.

use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// `127.0.0.1:8080` of `http://127.0.0.1:8080`.
pub fn socket_address(url: &str) -> anyhow::Result<SocketAddr> {
    let host = url
        .strip_prefix("http://")
        .context("--url must be http://HOST:PORT")?
        .trim_end_matches('/');
    host.parse()
        .with_context(|| format!("--url must name an IP address and port, not {host}"))
}

/// A connection to `to` from the local address `from` (Linux routes all of 127/8 to loopback).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An answer's status and headers (names in lower case).
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a response head (`HTTP/1.1 200 OK\r\nname: value\r\n...`).
pub fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Head { status, headers })
}

/// Reads one answer (head, and a body of its `content-length`) within `within`; None when the
/// connection closed or nothing complete came in time.
pub async fn read_answer(stream: &mut TcpStream, within: Duration) -> Option<(Head, Vec<u8>)> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_head(&String::from_utf8_lossy(&buf[..end]))?;
            let length: usize = head
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some((head, buf[end + 4..end + 4 + length].to_vec()));
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Whether the listener serves a request for the snippet on `stream` (answer read whole, so
/// the connection is left idle).
pub async fn served(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    matches!(read_answer(stream, Duration::from_secs(5)).await, Some((h, _)) if h.status == 200)
}

/// How a socket ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    /// The server closed it (end of stream or reset) after this long.
    Closed(Duration),
    /// Still open when we stopped waiting.
    Open,
}

/// Reads (and drops) whatever comes until the server closes `stream`, for at most `limit`;
/// the time from `since`, and the bytes received.
pub async fn until_closed(stream: &mut TcpStream, since: Instant, limit: Duration) -> (End, usize) {
    let mut chunk = [0u8; 16 * 1024];
    let mut received = 0;
    loop {
        match tokio::time::timeout_at(since + limit, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => received += n,
            Ok(_) => return (End::Closed(since.elapsed()), received),
            Err(_) => return (End::Open, received),
        }
    }
}

/// Whether the kernel still holds `stream` as established (false once the server closed or
/// reset it), without reading what it sent.
pub fn established(stream: &TcpStream) -> bool {
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it, and
    // the descriptor stays open while `stream` is borrowed.
    let state = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        if r != 0 {
            return false;
        }
        info.tcpi_state
    };
    // TCP_ESTABLISHED is 1 in the kernel's numbering.
    state == 1
}

/// A POST of `body` framed as one-byte chunks (`Transfer-Encoding: chunked`).
pub fn chunked_post(origin: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Origin: {origin}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut wire = Vec::with_capacity(head.len() + body.len() * 6 + 5);
    wire.extend_from_slice(head.as_bytes());
    for b in body {
        wire.extend_from_slice(b"1\r\n");
        wire.push(*b);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// The head of a POST of `length` bytes with `Content-Length`.
pub fn post_head(origin: &str, length: usize) -> String {
    format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Origin: {origin}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_chunks_decode_to_the_body() {
        let wire = chunked_post("http://o", b"{\"a\":1}");
        let text = String::from_utf8(wire).unwrap();
        let (head, chunks) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Transfer-Encoding: chunked"));
        let mut body = String::new();
        let mut parts = chunks.split("\r\n");
        while let Some(size) = parts.next() {
            if size == "0" {
                break;
            }
            assert_eq!(size, "1");
            body.push_str(parts.next().unwrap());
        }
        assert_eq!(body, "{\"a\":1}");
    }

    #[test]
    fn heads_and_addresses_parse() {
        let h = parse_head("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nx: y").unwrap();
        assert_eq!((h.status, h.header("retry-after")), (503, Some("1")));
        assert_eq!(
            socket_address("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(socket_address("https://shop.example").is_err());
    }
}
