//! An upstream that keeps every request head as raw bytes, and a client that
//! sends raw header lines: for header values that are not ASCII. Both are
//! the testkit's (its server keeps each head byte for byte, its raw client
//! sends header lines as given); the echo's JSON could not carry the bytes.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use kfauth_testkit::client::{send_fresh, Request};
use kfauth_testkit::serve::{HttpServer, Reply};
use kfauth_testkit::{Gateway, HttpResponse};

/// A running raw upstream: its port and every request head it received.
pub struct RawUpstream {
    pub port: u16,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    _server: HttpServer,
}

impl RawUpstream {
    /// Starts on a free loopback port; answers every request 200 `ok`.
    pub fn start() -> RawUpstream {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&heads);
        let server = HttpServer::start("127.0.0.1:0", move |request| {
            kept.lock().unwrap().push(request.head.clone());
            Reply::text(200, "ok")
        })
        .unwrap();
        RawUpstream {
            port: server.port(),
            heads,
            _server: server,
        }
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
    let request = headers.iter().fold(
        Request::new("GET", &format!("127.0.0.1:{}", g.port()), "/echo"),
        |request, line| request.line(line),
    );
    send_fresh(g.port(), &request)
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
