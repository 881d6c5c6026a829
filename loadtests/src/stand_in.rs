//! A stand-in for touchstream in the load generator's own tests: a loopback HTTP/1.1 server
//! that reads each request (one per connection) and answers with a status a test chooses, with
//! an empty body. Not for anything but tests: it answers nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

/// Serves on a free loopback port until the process ends; `answer` gets each request line
/// (`POST /v1/events HTTP/1.1`) and its position, and returns the status, or 0 to close the
/// connection unanswered (a lost answer). Returns the base URL, `http://127.0.0.1:PORT`.
pub fn serve(answer: impl Fn(&str, usize) -> u16 + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let (mut request, mut line, mut length) = (String::new(), String::new(), 0);
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let _ = reader.read_exact(&mut vec![0; length]);
            let status = answer(&request, n);
            if status != 0 {
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = reader.get_mut().write_all(head.as_bytes());
            }
        }
    });
    url
}
