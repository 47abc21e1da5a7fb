//! The upstream for tests, load and the soak: answers every request with 200
//! and a JSON account of what it received, so a test can see exactly what
//! the filter forwarded. A thread per connection with keep-alive
//! ([`crate::serve::HttpServer`]), so it serves any number of connections
//! at once.

use serde_json::{json, Value};

use crate::serve::{HttpServer, Reply};

/// A running echo upstream; stops when dropped.
pub struct EchoServer {
    server: HttpServer,
}

impl EchoServer {
    /// Starts on a free loopback port.
    pub fn start() -> EchoServer {
        EchoServer::start_on("127.0.0.1:0")
    }

    /// Starts on `addr`; panics if it cannot bind.
    pub fn start_on(addr: &str) -> EchoServer {
        EchoServer::try_start_on(addr).expect("echo server binds")
    }

    /// Starts on `addr`.
    pub fn try_start_on(addr: &str) -> std::io::Result<EchoServer> {
        let server = HttpServer::start(addr, |request| {
            let headers: Vec<Value> = request
                .headers
                .iter()
                .map(|(name, value)| json!([name, value]))
                .collect();
            Reply::json(
                200,
                &json!({
                    "method": request.method,
                    "path": request.url,
                    "headers": headers,
                }),
            )
        })?;
        Ok(EchoServer { server })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.server.requests()
    }

    /// Closes every open connection (the server stays up).
    pub fn close_connections(&self) {
        self.server.close_connections();
    }
}

/// The echo server's account of one request.
#[derive(Debug, Clone)]
pub struct Echoed {
    pub method: String,
    /// Path and query string as the upstream received them.
    pub path: String,
    /// Every header line, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
}

impl Echoed {
    /// Parses the echo server's JSON body; `None` if the body is not one
    /// (e.g. the filter answered instead of the upstream).
    pub fn parse(body: &str) -> Option<Echoed> {
        let value: Value = serde_json::from_str(body).ok()?;
        let headers = value
            .get("headers")?
            .as_array()?
            .iter()
            .filter_map(|pair| {
                Some((
                    pair.get(0)?.as_str()?.to_string(),
                    pair.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect();
        Some(Echoed {
            method: value.get("method")?.as_str()?.to_string(),
            path: value.get("path")?.as_str()?.to_string(),
            headers,
        })
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        crate::http1::values_of(&self.headers, name)
    }

    /// The value of header `name` if it was received exactly once; panics if
    /// it was received more than once (identity headers must be unique).
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "upstream received {name} {} times: {values:?}",
            values.len()
        );
        values.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn echoes_every_header_line_in_order_with_duplicates() {
        let echo = EchoServer::start();
        let url = format!("http://127.0.0.1:{}/some/path?x=1&y=2", echo.port());
        let response = client::get(
            &url,
            &[
                ("Kubeflow-Userid", "one"),
                ("x-other", "o"),
                ("KUBEFLOW-USERID", "two"),
            ],
        );
        let seen = response.echoed();
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.path, "/some/path?x=1&y=2");
        assert_eq!(seen.header_values("kubeflow-userid"), vec!["one", "two"]);
        assert_eq!(seen.header("x-other"), Some("o"));
    }

    #[test]
    fn answers_while_many_connections_are_open() {
        let echo = EchoServer::start();
        let url = format!("http://127.0.0.1:{}/a/b?x=1", echo.port());
        // Hold 150 idle connections open: the echo must still answer.
        let idle: Vec<std::net::TcpStream> = (0..150)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", echo.port())).unwrap())
            .collect();
        let seen = client::get(&url, &[("Kubeflow-Userid", "alice")]).echoed();
        assert_eq!(seen.path, "/a/b?x=1");
        assert_eq!(seen.header("kubeflow-userid"), Some("alice"));
        assert_eq!(echo.requests(), 1);
        drop(idle);
    }

    #[test]
    #[should_panic(expected = "2 times")]
    fn a_duplicated_identity_header_is_an_error() {
        let seen = Echoed {
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("a".into(), "1".into()), ("A".into(), "2".into())],
        };
        let _ = seen.header("a");
    }
}
