//! The HTTP/1.1 client of every suite, the bench and the soak, over
//! [`crate::http1`]: it sets `Host` itself, sends header lines byte for byte
//! (a repeated name as separate lines), takes any status as an answer, keeps
//! every response header, and keeps a connection or opens a fresh one per
//! request. [`send`] and [`get`] take a URL and share a pool of kept-alive
//! connections, curl-shaped.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::echo::Echoed;
use crate::http1::{self, ReadError};

/// One response: status, every header line (names lowercase), body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// All values of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        http1::values_of(&self.headers, name)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// The body as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): status {} body {:?}",
                self.status, self.body
            )
        })
    }

    /// What the echo upstream received; panics if the request did not reach
    /// it with 200.
    pub fn echoed(&self) -> Echoed {
        assert_eq!(
            self.status, 200,
            "expected the upstream to answer; got {} {:?} headers {:?}",
            self.status, self.body, self.headers
        );
        Echoed::parse(&self.body)
            .unwrap_or_else(|| panic!("not an echo server body: {:?}", self.body))
    }
}

/// Idle connections kept per address; more are closed after their request.
const IDLE_PER_ADDRESS: usize = 8;
/// Addresses kept at once; past it the pool starts afresh (a suite starts
/// Envoy after Envoy, and connections to stopped ones are only closed here).
const ADDRESSES: usize = 32;

/// Kept-alive connections by address, shared by every thread: the pooled
/// client is the raw one, so a suite sends the same bytes whichever way it goes.
fn pool() -> MutexGuard<'static, HashMap<SocketAddr, Vec<Connection>>> {
    static POOL: OnceLock<Mutex<HashMap<SocketAddr, Vec<Connection>>>> = OnceLock::new();
    POOL.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// `http://HOST[:PORT]/path?query`: the address, the authority and the path.
fn split_url(url: &str) -> Result<(SocketAddr, &str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let with_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("address of {url}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {url}"))?;
    Ok((addr, authority, if path.is_empty() { "/" } else { path }))
}

/// Sends one request on a pooled keep-alive connection to the URL's host.
/// `headers` go out in order, each pair as its own line; a `host` pair is
/// the Host line (else the URL's authority). Any status is an answer.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse, String> {
    let (addr, authority, path) = split_url(url)?;
    let is_host = |name: &str| name.eq_ignore_ascii_case("host");
    let host = headers
        .iter()
        .find(|(name, _)| is_host(name))
        .map_or(authority, |(_, value)| *value);
    let mut request = Request::new(method, host, path);
    for (name, value) in headers.iter().filter(|(name, _)| !is_host(name)) {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let kept = pool().get_mut(&addr).and_then(Vec::pop);
    let mut connection = kept.unwrap_or_else(|| Connection::to(addr));
    let response = connection
        .exchange(&request, Reuse::KeepAlive)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    if connection.open.is_some() {
        let mut pool = pool();
        if pool.len() >= ADDRESSES && !pool.contains_key(&addr) {
            pool.clear();
        }
        let idle = pool.entry(addr).or_default();
        if idle.len() < IDLE_PER_ADDRESS {
            idle.push(connection);
        }
    }
    Ok(response)
}

/// `GET url` with `headers`; panics on transport errors.
pub fn get(url: &str, headers: &[(&str, &str)]) -> HttpResponse {
    send("GET", url, headers, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request byte for byte as given: header names keep their case and
/// order (`host` and `connection: close` are added), over a fresh connection
/// to `addr` (`127.0.0.1:PORT`). For what a well-behaved client would not send.
pub fn send_verbatim(
    addr: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let mut request = Request::new(method, addr, path_and_query);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let addr: SocketAddr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    Connection::to(addr).exchange(&request, Reuse::Close)
}

/// One request as the raw client sends it: `Host` first, then the header
/// lines in order and as given, `content-length` when there is a body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub host: String,
    /// Path and query string.
    pub path: String,
    /// Header lines without their CRLF (bytes: a value need not be text).
    pub lines: Vec<Vec<u8>>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: &str, host: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            host: host.into(),
            path: path.into(),
            lines: Vec::new(),
            body: None,
        }
    }

    pub fn header(self, name: &str, value: &str) -> Request {
        self.line(format!("{name}: {value}").as_bytes())
    }

    /// A header line as raw bytes.
    pub fn line(mut self, line: &[u8]) -> Request {
        self.lines.push(line.to_vec());
        self
    }

    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn body(mut self, body: &[u8]) -> Request {
        self.body = Some(body.to_vec());
        self
    }

    /// The request on the wire; `connection: close` after it with [`Reuse::Close`].
    pub fn bytes(&self, reuse: Reuse) -> Vec<u8> {
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, self.path, self.host
        )
        .into_bytes();
        for line in &self.lines {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(b"\r\n");
        }
        if let Some(body) = &self.body {
            bytes.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        if reuse == Reuse::Close {
            bytes.extend_from_slice(b"connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        if let Some(body) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }
}

/// Whether a connection is kept for the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    KeepAlive,
    Close,
}

/// A keep-alive connection to `127.0.0.1:PORT`, opened when needed and again
/// when the server closed it. Unlike a pooled client it shows how many
/// connections it opened, and a caller choosing fresh connections spreads
/// them over Envoy's workers (the kernel picks a worker per connection).
pub struct Connection {
    addr: SocketAddr,
    open: Option<http1::Connection<TcpStream>>,
    /// Requests the open connection has carried.
    carried: u64,
    opened: u64,
}

impl Connection {
    pub fn new(port: u16) -> Connection {
        Connection::to(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn to(addr: SocketAddr) -> Connection {
        Connection {
            addr,
            open: None,
            carried: 0,
            opened: 0,
        }
    }

    /// Connections opened after the first.
    pub fn reconnects(&self) -> u64 {
        self.opened.saturating_sub(1)
    }

    /// Sends `request` on the kept connection; panics on transport errors.
    pub fn send(&mut self, request: &Request) -> HttpResponse {
        self.exchange(request, Reuse::KeepAlive)
            .unwrap_or_else(|e| panic!("{} {}: {e}", request.method, request.path))
    }

    /// Sends `request` and reads its response. A kept-alive connection
    /// found closed before any byte of the answer is retried once on a new
    /// one (as HTTP clients do).
    pub fn exchange(&mut self, request: &Request, reuse: Reuse) -> Result<HttpResponse, String> {
        let reused = self.open.is_some() && self.carried > 0;
        match self.exchange_once(request, reuse) {
            Err(Failure::ClosedBeforeAnswer(_)) if reused => self
                .exchange_once(request, reuse)
                .map_err(Failure::describe),
            other => other.map_err(Failure::describe),
        }
    }

    fn exchange_once(&mut self, request: &Request, reuse: Reuse) -> Result<HttpResponse, Failure> {
        let mut http = match self.open.take() {
            Some(http) => http,
            None => self.connect().map_err(Failure::Other)?,
        };
        self.carried += 1;
        http.send(&request.bytes(reuse))
            .map_err(|e| Failure::ClosedBeforeAnswer(format!("write: {e}")))?;
        let message = http.read_response(&request.method).map_err(|e| match e {
            ReadError::Closed => Failure::ClosedBeforeAnswer("closed before a response".into()),
            ReadError::Io(e) if e.kind() == ErrorKind::ConnectionReset => {
                Failure::ClosedBeforeAnswer(format!("read: {e}"))
            }
            other => Failure::Other(format!("read: {other:?}")),
        })?;
        if reuse == Reuse::KeepAlive && message.keep_alive(0) {
            self.open = Some(http);
        }
        Ok(HttpResponse::from(message))
    }

    fn connect(&mut self) -> Result<http1::Connection<TcpStream>, String> {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        self.opened += 1;
        self.carried = 0;
        Ok(http1::Connection::new(stream))
    }
}

/// Why an exchange failed.
enum Failure {
    /// The server closed (or reset) the connection before answering.
    ClosedBeforeAnswer(String),
    Other(String),
}

impl Failure {
    fn describe(self) -> String {
        match self {
            Failure::ClosedBeforeAnswer(why) | Failure::Other(why) => why,
        }
    }
}

impl From<http1::Message> for HttpResponse {
    fn from(message: http1::Message) -> HttpResponse {
        HttpResponse {
            status: message.word(1).parse().unwrap_or(0),
            headers: message
                .headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect(),
            body: String::from_utf8_lossy(&message.body).into_owned(),
        }
    }
}

/// Sends `request` over a fresh connection to `127.0.0.1:port` (closed
/// afterwards); panics on transport errors.
pub fn send_fresh(port: u16, request: &Request) -> HttpResponse {
    Connection::new(port)
        .exchange(request, Reuse::Close)
        .unwrap_or_else(|e| panic!("{} {}: {e}", request.method, request.path))
}

/// Runs `requests` at once, each on its own connection, released together
/// once every connection is open; returns the responses in order.
pub fn concurrently(port: u16, requests: Vec<Request>) -> Vec<HttpResponse> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let threads: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut connection = Connection::new(port);
                let opened = connection.connect().unwrap_or_else(|e| panic!("{e}"));
                connection.open = Some(opened);
                barrier.wait();
                connection
                    .exchange(&request, Reuse::Close)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", request.method, request.path))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|thread| thread.join().expect("request thread"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoServer;

    #[test]
    fn a_kept_connection_carries_requests_and_reopens_once_closed() {
        let echo = EchoServer::start();
        let mut connection = Connection::new(echo.port());
        for path in ["/a", "/b?c=d"] {
            let seen = connection
                .send(&Request::new("GET", "h.test", path).header("X-Case", "Kept"))
                .echoed();
            assert_eq!(seen.path, path);
            assert_eq!(seen.header("host"), Some("h.test"));
            assert_eq!(seen.header("x-case"), Some("Kept"));
        }
        let head = connection.send(&Request::new("HEAD", "h.test", "/head"));
        assert_eq!((head.status, head.body.as_str()), (200, ""));
        assert_eq!(connection.reconnects(), 0);
        echo.close_connections();
        let posted = connection
            .send(&Request::new("POST", "h.test", "/p").body(b"{}"))
            .echoed();
        assert_eq!(posted.method, "POST");
        assert_eq!(connection.reconnects(), 1);
        assert_eq!(echo.requests(), 4);
    }

    #[test]
    fn send_keeps_the_given_host_and_repeated_headers_and_survives_a_closed_pool() {
        let echo = EchoServer::start();
        let url = format!("http://127.0.0.1:{}/p?q=1", echo.port());
        let headers = [("x-twice", "a"), ("Host", "h.test"), ("x-twice", "b")];
        for _ in 0..2 {
            let seen = send("GET", &url, &headers, None).unwrap().echoed();
            assert_eq!(seen.path, "/p?q=1");
            assert_eq!(seen.header_values("host"), ["h.test"]);
            assert_eq!(seen.header_values("x-twice"), ["a", "b"]);
            // The pooled connection is gone: the next request opens another.
            echo.close_connections();
        }
        let bare = send(
            "GET",
            &format!("http://127.0.0.1:{}", echo.port()),
            &[],
            None,
        );
        assert_eq!(bare.unwrap().echoed().path, "/");
        assert_eq!(echo.requests(), 3);
    }

    #[test]
    fn concurrent_requests_each_get_their_answer() {
        let echo = EchoServer::start();
        let requests = (0..50)
            .map(|i| Request::new("GET", "h.test", &format!("/{i}")))
            .collect();
        let answers = concurrently(echo.port(), requests);
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.echoed().path, format!("/{i}"));
        }
    }
}
