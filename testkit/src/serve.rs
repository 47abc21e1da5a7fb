//! A background HTTP/1.1 server on loopback, answering every request with a
//! handler closure, a thread per connection. The echo upstream, the demo
//! identity provider and scenario stand-ins are built on it. Dropping the
//! server stops it.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::http1;
use crate::listener::{self, AcceptLoop, OpenConnections};

/// A request as the handler sees it: headers in arrival order, duplicates kept.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: String,
    /// The request target as sent: path plus query string.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The request head byte for byte (header values need not be text).
    pub head: Vec<u8>,
}

impl Incoming {
    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name` (no percent-decoding beyond `+`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.url.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| percent_decode(value))
        })
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// A running server; stops when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    open: Arc<OpenConnections>,
    requests: Arc<AtomicUsize>,
    accepting: Option<AcceptLoop>,
}

impl HttpServer {
    /// Binds `addr` (e.g. `127.0.0.1:0` for a free port) and answers every
    /// connection on a thread of its own, with keep-alive: a burst of new
    /// connections is served at once (tiny_http's pool, used before, left
    /// ~100 new connections unserved and Envoy answered 504).
    pub fn start<H>(addr: &str, handler: H) -> std::io::Result<HttpServer>
    where
        H: Fn(&Incoming) -> Reply + Send + Sync + 'static,
    {
        let listener = listener::bind(addr)?;
        let addr = listener.local_addr()?;
        let open = Arc::new(OpenConnections::default());
        let requests = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (registry, counter) = (Arc::clone(&open), Arc::clone(&requests));
        let accepting = AcceptLoop::spawn(listener, "http", move |stream| {
            let id = registry.add(&stream);
            let (registry, counter, handler) = (
                Arc::clone(&registry),
                Arc::clone(&counter),
                Arc::clone(&handler),
            );
            let _ = std::thread::Builder::new()
                .name("http-conn".into())
                .spawn(move || {
                    serve_connection(stream, handler.as_ref(), &counter);
                    registry.forget(id);
                });
        });
        Ok(HttpServer {
            addr,
            open,
            requests,
            accepting: Some(accepting),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Closes every open connection (the server stays up).
    pub fn close_connections(&self) {
        self.open.close_all();
    }
}

impl Drop for HttpServer {
    /// Stops accepting, then closes the connections still open.
    fn drop(&mut self) {
        self.accepting.take();
        self.open.close_all();
    }
}

/// Answers the requests of one connection until it closes.
fn serve_connection<H>(stream: TcpStream, handler: &H, requests: &AtomicUsize)
where
    H: Fn(&Incoming) -> Reply,
{
    let _ = stream.set_nodelay(true);
    let mut http = http1::Connection::new(stream);
    while let Ok(request) = http.read_request() {
        let close = !request.keep_alive(2);
        let incoming = Incoming {
            method: request.word(0).to_string(),
            url: request.word(1).to_string(),
            headers: request.headers,
            body: request.body,
            head: request.head,
        };
        let reply = handler(&incoming);
        requests.fetch_add(1, Ordering::SeqCst);
        let written = http.write_response(
            &incoming.method,
            reply.status,
            http1::reason_phrase(reply.status),
            &reply.headers,
            &reply.body,
            close,
        );
        if written.is_err() || close {
            break;
        }
    }
    let _ = http.stream.shutdown(Shutdown::Both);
}

/// Minimal percent-decoding for query values (`%XX` and `+`).
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let incoming = Incoming {
            method: "GET".into(),
            url: "/token?email=a%40b.c&groups=x,y&flag&plus=a+b&bad=%zz%".into(),
            headers: Vec::new(),
            body: Vec::new(),
            head: Vec::new(),
        };
        assert_eq!(incoming.path(), "/token");
        assert_eq!(incoming.query_param("email").as_deref(), Some("a@b.c"));
        assert_eq!(incoming.query_param("groups").as_deref(), Some("x,y"));
        assert_eq!(incoming.query_param("flag").as_deref(), Some(""));
        assert_eq!(incoming.query_param("plus").as_deref(), Some("a b"));
        assert_eq!(incoming.query_param("bad").as_deref(), Some("%zz%"));
        assert_eq!(incoming.query_param("missing"), None);
    }
}
