//! A JWKS endpoint on loopback: serves a document at one path, counts the
//! fetches, and can be switched to fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::serve::{HttpServer, Reply};

/// What the endpoint answers.
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
    Stall(std::time::Duration, String),
}

struct State {
    mode: Mutex<JwksMode>,
    hits: AtomicUsize,
}

/// A running JWKS endpoint; stops when dropped.
pub struct JwksServer {
    state: Arc<State>,
    path: String,
    server: HttpServer,
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
        let state = Arc::new(State {
            mode: Mutex::new(mode),
            hits: AtomicUsize::new(0),
        });
        let shared = Arc::clone(&state);
        let served_path = path.to_string();
        let server = HttpServer::start(addr, move |request| {
            if request.path() != served_path {
                return Reply::text(404, "not found");
            }
            shared.hits.fetch_add(1, Ordering::SeqCst);
            let mode = shared
                .mode
                .lock()
                .map(|m| m.clone())
                .unwrap_or(JwksMode::Fail);
            match mode {
                JwksMode::Serve(body) => Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: body.into_bytes(),
                },
                JwksMode::Fail => Reply::text(500, "JWKS backend down"),
                JwksMode::Stall(delay, body) => {
                    std::thread::sleep(delay);
                    Reply {
                        status: 200,
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: body.into_bytes(),
                    }
                }
                JwksMode::Garbage => Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: b"<html>this is not a key set</html>".to_vec(),
                },
            }
        })
        .expect("JWKS server binds");
        JwksServer {
            state,
            path: path.to_string(),
            server,
        }
    }

    /// Changes what the endpoint answers from now on.
    pub fn set_mode(&self, mode: JwksMode) {
        if let Ok(mut current) = self.state.mode.lock() {
            *current = mode;
        }
    }

    /// How many requests reached the JWKS path.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The `jwksUri` for a rule: `http://127.0.0.1:PORT/keys`.
    pub fn uri(&self) -> String {
        self.server.url(&self.path)
    }
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
        server.set_mode(JwksMode::Fail);
        assert_eq!(client::get(&server.uri(), &[]).status, 500);
        server.set_mode(JwksMode::Garbage);
        let garbage = client::get(&server.uri(), &[]);
        assert_eq!(garbage.status, 200);
        assert!(serde_json::from_str::<serde_json::Value>(&garbage.body).is_err());
        let elsewhere = client::get(&server.uri().replace("/keys", "/other"), &[]);
        assert_eq!(elsewhere.status, 404);
        assert_eq!(server.hits(), 3);
    }
}
