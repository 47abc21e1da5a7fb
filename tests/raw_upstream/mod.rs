//! An upstream that keeps every request head as raw bytes, and a client that
//! sends raw header lines: for header values that are not ASCII. The
//! testkit's echo server cannot see them: tiny_http keeps header values as
//! ASCII strings and answers 400 to any request carrying another byte.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kfauth_testkit::{Gateway, HttpResponse};

/// Reads one request head (up to the blank line) from `stream`.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// A running raw upstream: its port and every request head it received.
pub struct RawUpstream {
    pub port: u16,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawUpstream {
    /// Starts on a free loopback port; answers every request 200 `ok`.
    pub fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let head = read_head(&mut stream);
                if head.is_empty() {
                    continue;
                }
                kept.lock().unwrap().push(head);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        RawUpstream { port, heads }
    }

    /// How many requests reached the upstream.
    pub fn count(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    /// The last request head received.
    pub fn last_head(&self) -> Vec<u8> {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a forwarded request")
    }
}

/// `GET /echo` with raw header lines (bytes, not text), over a fresh connection.
pub fn get_raw(g: &Gateway, headers: &[&[u8]]) -> HttpResponse {
    let addr = format!("127.0.0.1:{}", g.port());
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("GET /echo HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
    for line in headers {
        request.extend_from_slice(line);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    stream.write_all(&request).unwrap();
    // Read until the response is complete rather than until Envoy closes:
    // after a local reply Envoy waits up to its delayed_close_timeout (1 s)
    // for the client to close first.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !complete(&raw) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Whether `raw` holds a whole response: its head and `content-length` bytes.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let length = values(&raw[..end], "content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok());
    length.is_some_and(|length| raw.len() >= end + 4 + length)
}

/// The values of header `name` (lower case) in a raw request head, as bytes.
pub fn values(head: &[u8], name: &str) -> Vec<Vec<u8>> {
    head.split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            let (n, v) = line.split_at(colon);
            n.eq_ignore_ascii_case(name.as_bytes())
                .then(|| v[1..].trim_ascii().to_vec())
        })
        .collect()
}
