//! A background HTTP/1.1 server on loopback, answering every request with a
//! handler closure. The JWKS server, the echo upstream and the demo identity
//! provider are all built on it. Dropping the server stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A request as the handler sees it: headers in arrival order, duplicates kept.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: String,
    /// The request target as sent: path plus query string.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
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
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (e.g. `127.0.0.1:0` for a free port) and serves requests
    /// one at a time on a background thread.
    pub fn start<H>(addr: &str, handler: H) -> std::io::Result<HttpServer>
    where
        H: Fn(&Incoming) -> Reply + Send + 'static,
    {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not an IP listener"))?;
        let server = Arc::new(server);
        let worker = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name(format!("http-{}", addr.port()))
            .spawn(move || {
                for request in worker.incoming_requests() {
                    serve_one(request, &handler);
                }
            })?;
        Ok(HttpServer {
            server,
            addr,
            thread: Some(thread),
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
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one<H>(mut request: tiny_http::Request, handler: &H)
where
    H: Fn(&Incoming) -> Reply,
{
    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
    let incoming = Incoming {
        method: request.method().as_str().to_string(),
        url: request.url().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string()))
            .collect(),
        body,
    };
    let reply = handler(&incoming);
    let mut response = tiny_http::Response::from_data(reply.body)
        .with_status_code(tiny_http::StatusCode(reply.status));
    for (name, value) in &reply.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    let _ = request.respond(response);
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
