//! Header values that are not UTF-8. HTTP/1.1 allows obs-text (bytes
//! 0x80-0xFF, RFC 9110 section 5.5) in field values and Envoy passes them to
//! the module as they came. The SDK's header reading unwrapped them as UTF-8,
//! so one such byte in any request header trapped the worker's VM (503 for
//! every request after); kfauth's own ABI bindings (src/host/abi.rs) read
//! them with U+FFFD instead:
//! - a valid token with a Latin-1 header beside it → forwarded with the
//!   verified identity and that header's bytes unchanged; the worker keeps
//!   answering;
//! - a spoofed identity header whose value is not UTF-8 → removed, the
//!   upstream sees only the verified identity;
//! - without a token, such a header does not let the request through.

// The upstream is a raw socket here: the testkit's echo server (tiny_http)
// drops requests whose headers are not UTF-8 before its handler runs.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod adversarial_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adversarial_support::*;
use kfauth_testkit::forge::Signer;
use kfauth_testkit::{expect, EnvoySettings, Gateway, HttpResponse};
use serde_json::json;

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

/// An upstream that keeps every request head as raw bytes and answers 200.
fn raw_upstream() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
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
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, heads)
}

/// `GET /echo` with raw header lines (bytes, not text), over a fresh connection.
fn get_raw(g: &Gateway, headers: &[&[u8]]) -> HttpResponse {
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
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
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

/// The values of header `name` (lower case) in a raw request head, as bytes.
fn values(head: &[u8], name: &str) -> Vec<Vec<u8>> {
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

#[test]
fn header_values_that_are_not_utf8_are_read_not_trapped_on() {
    let (port, heads) = raw_upstream();
    let g = Gateway::start_with(with_rules_required(), |settings| EnvoySettings {
        upstream_port: port,
        ..settings
    });
    let token = Signer::shared().sign_standard("ES256", &valid());
    let bearer = format!("Authorization: Bearer {token}");
    let last_head = || {
        heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a forwarded request")
    };

    // A Latin-1 value beside a good token: forwarded as alice, the value's
    // bytes as they came.
    let response = get_raw(&g, &[bearer.as_bytes(), b"X-Latin1: caf\xe9"]);
    assert_eq!(response.status, 200, "{response:?}");
    let head = last_head();
    assert_eq!(values(&head, "kubeflow-userid"), [b"alice@example.com"]);
    assert_eq!(values(&head, "x-latin1"), [b"caf\xe9"]);
    g.assert_no_vm_trap();

    // A spoofed identity whose value is not UTF-8: removed.
    let response = get_raw(
        &g,
        &[
            bearer.as_bytes(),
            b"kubeflow-userid: r\xf6ot@example.com",
            b"Kubeflow-Groups: \xff\xfe",
        ],
    );
    assert_eq!(response.status, 200, "{response:?}");
    let head = last_head();
    assert_eq!(values(&head, "kubeflow-userid"), [b"alice@example.com"]);
    assert_eq!(values(&head, "kubeflow-groups"), [b"team-a"]);

    // No token: the odd header buys nothing.
    let forwarded = heads.lock().unwrap().len();
    expect::token_missing(&get_raw(&g, &[b"kubeflow-userid: r\xf6ot@example.com"]));
    assert_eq!(heads.lock().unwrap().len(), forwarded, "nothing forwarded");

    // The worker still answers.
    let response = get_raw(&g, &[bearer.as_bytes()]);
    assert_eq!(response.status, 200, "{response:?}");
    g.assert_no_vm_trap();
}

/// The suites' rule, with a token required on every path.
fn with_rules_required() -> serde_json::Value {
    kfauth_testkit::plugin_config::with_rules(vec![rule(json!({}))], json!({"requireJwt": true}))
}
