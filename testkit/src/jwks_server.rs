//! A key endpoint on loopback, the way an identity provider looks to kfauth:
//! serves a JWKS (and, for OIDC discovery, `/.well-known/openid-configuration`)
//! at chosen paths, counts and timestamps the fetches of each path, can be
//! switched to fail or to serve garbage, and can be stopped and started again
//! on the same port (a real outage: connections are refused).
//!
//! It closes every connection after one answer, so a stopped server leaves
//! no kept-alive connection behind for Envoy to reuse, and every fetch is
//! seen here as one request. Besides failing cleanly (500, garbage, slow) it
//! can fail the way networks do: reset the connection after reading the
//! request, or promise a body and hang up halfway through it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::listener::{self, AcceptLoop};

use serde_json::json;

/// Where OIDC discovery looks, relative to the issuer.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// What one path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksMode {
    /// 200 with this JSON document.
    Serve(String),
    /// 500 with a short text body.
    Fail,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Waits this long, then serves the document (for fetch timeouts). The
    /// server answers one request at a time, so later fetches queue behind.
    Stall(Duration, String),
    /// Reads the request, then resets the connection (TCP RST, no answer).
    Reset,
    /// Sends the head with the document's full `content-length` and half of
    /// the body, then closes.
    Truncated(String),
}

/// What the connection does after the request head is read.
enum Answer {
    Respond(u16, &'static str, Vec<u8>),
    Reset,
    Truncated(Vec<u8>),
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, JwksMode>>,
    hits: Mutex<HashMap<String, Vec<Instant>>>,
}

impl State {
    fn answer(&self, path: &str) -> Answer {
        let (status, content_type, body) = match self.mode(path) {
            Ok(JwksMode::Reset) => return Answer::Reset,
            Ok(JwksMode::Truncated(body)) => return Answer::Truncated(body.into_bytes()),
            Ok(mode) => respond(mode),
            Err(not_found) => not_found,
        };
        Answer::Respond(status, content_type, body)
    }

    /// The mode of `path`, counting the hit; `Err` with a 404 for an unknown path.
    fn mode(&self, path: &str) -> Result<JwksMode, (u16, &'static str, Vec<u8>)> {
        let mode = self
            .routes
            .lock()
            .ok()
            .and_then(|routes| routes.get(path).cloned());
        let Some(mode) = mode else {
            return Err((404, "text/plain", b"not found".to_vec()));
        };
        if let Ok(mut hits) = self.hits.lock() {
            hits.entry(path.to_string())
                .or_default()
                .push(Instant::now());
        }
        Ok(mode)
    }
}

/// The status, content type and body of a mode that answers.
fn respond(mode: JwksMode) -> (u16, &'static str, Vec<u8>) {
    match mode {
        JwksMode::Serve(body) => (200, "application/json", body.into_bytes()),
        JwksMode::Fail => (500, "text/plain", b"JWKS backend down".to_vec()),
        JwksMode::Garbage => (
            200,
            "application/json",
            b"<html>this is not a key set</html>".to_vec(),
        ),
        JwksMode::Stall(delay, body) => {
            std::thread::sleep(delay);
            (200, "application/json", body.into_bytes())
        }
        // Handled before a body is built.
        JwksMode::Reset | JwksMode::Truncated(_) => {
            (500, "text/plain", b"unreachable mode".to_vec())
        }
    }
}

/// Closes `stream` with a TCP reset (SO_LINGER 0) instead of a FIN: what a
/// crashed peer or a middlebox dropping the connection looks like.
pub fn reset_connection(stream: TcpStream) {
    use std::os::fd::AsRawFd as _;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// A key endpoint; stops when dropped.
pub struct JwksServer {
    state: Arc<State>,
    /// The path [`JwksServer::set_mode`], [`JwksServer::hits`] and
    /// [`JwksServer::uri`] refer to.
    path: String,
    addr: SocketAddr,
    /// Connections are answered one at a time, on the loop's thread.
    running: Option<AcceptLoop>,
}

impl JwksServer {
    /// Serves `jwks_json` at `/keys` on a free loopback port.
    pub fn start(jwks_json: &str) -> JwksServer {
        JwksServer::start_with(
            "127.0.0.1:0",
            "/keys",
            JwksMode::Serve(jwks_json.to_string()),
        )
    }

    /// Binds `addr`, answering `mode` at `path` and 404 elsewhere.
    pub fn start_with(addr: &str, path: &str, mode: JwksMode) -> JwksServer {
        let listener = listener::bind(addr).expect("JWKS server binds");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State::default());
        let mut server = JwksServer {
            state,
            path: path.to_string(),
            addr,
            running: None,
        };
        server.route(path, mode);
        server.serve(listener);
        server
    }

    /// An OIDC provider whose issuer is this server's origin
    /// (`http://127.0.0.1:PORT`): `jwks_json` at `/keys` and a discovery
    /// document naming that issuer and `/keys` as its `jwks_uri`.
    pub fn start_discoverable(jwks_json: &str) -> JwksServer {
        let server = JwksServer::start(jwks_json);
        server.route(
            DISCOVERY_PATH,
            JwksMode::Serve(discovery_document(&server.origin(), &server.uri())),
        );
        server
    }

    /// Answers `mode` at `path` from now on (a new path, or another answer
    /// for a known one).
    pub fn route(&self, path: &str, mode: JwksMode) {
        if let Ok(mut routes) = self.state.routes.lock() {
            routes.insert(path.to_string(), mode);
        }
    }

    /// Changes what the main path answers from now on.
    pub fn set_mode(&self, mode: JwksMode) {
        self.route(&self.path.clone(), mode);
    }

    /// How many requests reached the main path.
    pub fn hits(&self) -> usize {
        self.hits_at(&self.path)
    }

    /// How many requests reached `path`.
    pub fn hits_at(&self, path: &str) -> usize {
        self.hit_times_at(path).len()
    }

    /// When each request to the main path arrived.
    pub fn hit_times(&self) -> Vec<Instant> {
        self.hit_times_at(&self.path)
    }

    /// When each request to `path` arrived.
    pub fn hit_times_at(&self, path: &str) -> Vec<Instant> {
        self.state
            .hits
            .lock()
            .ok()
            .and_then(|hits| hits.get(path).cloned())
            .unwrap_or_default()
    }

    /// Stops listening: from now on connections to the port are refused.
    /// Routes and hit counts are kept for [`JwksServer::restart`].
    pub fn stop(&mut self) {
        self.running.take();
    }

    /// Listens again on the same port, with the same routes.
    pub fn restart(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener = listener::bind(self.addr)
            .unwrap_or_else(|e| panic!("JWKS server rebinds {}: {e}", self.addr));
        self.serve(listener);
    }

    /// Whether the server is listening.
    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        self.running = Some(AcceptLoop::spawn(listener, "jwks", move |stream| {
            serve_connection(stream, &state);
        }));
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`: the issuer of [`JwksServer::start_discoverable`].
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// The `jwksUri` for a rule: `http://127.0.0.1:PORT/keys` (the main path).
    pub fn uri(&self) -> String {
        self.url(&self.path)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An OpenID Provider Configuration with the fields kfauth reads.
pub fn discovery_document(issuer: &str, jwks_uri: &str) -> String {
    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    })
    .to_string()
}

/// Reads one request head, answers it, closes the connection.
fn serve_connection(mut stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let (status, content_type, body, sent) = match state.answer(path) {
        Answer::Reset => return reset_connection(stream),
        Answer::Truncated(body) => {
            let half = body.len() / 2;
            (200, "application/json", body, half)
        }
        Answer::Respond(status, content_type, body) => {
            let len = body.len();
            (status, content_type, body, len)
        }
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body[..sent]);
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn serves_counts_and_fails_on_demand() {
        let server = JwksServer::start(r#"{"keys":[]}"#);
        assert!(server.uri().ends_with("/keys"));
        let ok = client::get(&server.uri(), &[]);
        assert_eq!((ok.status, ok.body.as_str()), (200, r#"{"keys":[]}"#));
        assert_eq!(ok.header("connection"), Some("close"));
        server.set_mode(JwksMode::Fail);
        assert_eq!(client::get(&server.uri(), &[]).status, 500);
        server.set_mode(JwksMode::Garbage);
        let garbage = client::get(&server.uri(), &[]);
        assert_eq!(garbage.status, 200);
        assert!(serde_json::from_str::<serde_json::Value>(&garbage.body).is_err());
        let elsewhere = client::get(&server.uri().replace("/keys", "/other"), &[]);
        assert_eq!(elsewhere.status, 404);
        assert_eq!(server.hits(), 3);
        assert_eq!(server.hit_times().len(), 3);
    }

    #[test]
    fn resets_and_truncates_on_demand() {
        let server = JwksServer::start(r#"{"keys":[]}"#);
        server.set_mode(JwksMode::Reset);
        let reset = client::send("GET", &server.uri(), &[], None);
        assert!(reset.is_err(), "a reset is no answer: {reset:?}");
        server.set_mode(JwksMode::Truncated(r#"{"keys":[1,2,3,4]}"#.into()));
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(b"GET /keys HTTP/1.1\r\n\r\n").unwrap();
        let mut raw = String::new();
        let _ = stream.read_to_string(&mut raw);
        assert!(raw.contains("content-length: 18"), "{raw}");
        assert!(raw.ends_with("\r\n\r\n{\"keys\":["), "{raw:?}");
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn serves_a_discovery_document_naming_itself() {
        let server = JwksServer::start_discoverable(r#"{"keys":[]}"#);
        let doc = client::get(&server.url(DISCOVERY_PATH), &[]).json();
        assert_eq!(doc["issuer"], server.origin());
        assert_eq!(doc["jwks_uri"], server.uri());
        assert_eq!(server.hits_at(DISCOVERY_PATH), 1);
        assert_eq!(server.hits(), 0);
    }

    #[test]
    fn a_stopped_server_refuses_connections_and_restarts_on_its_port() {
        let mut server = JwksServer::start(r#"{"keys":[]}"#);
        let port = server.port();
        assert_eq!(client::get(&server.uri(), &[]).status, 200);
        server.stop();
        assert!(!server.is_up());
        assert!(client::send("GET", &server.uri(), &[], None).is_err());
        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(client::get(&server.uri(), &[]).status, 200);
        assert_eq!(server.hits(), 2);
    }
}
