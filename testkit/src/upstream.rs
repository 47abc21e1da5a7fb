//! An echo upstream for concurrency: the same JSON account of each request
//! as [`crate::echo::EchoServer`] (`method`, `path`, `headers`; read it with
//! [`crate::HttpResponse::echoed`]), but one thread per connection with
//! HTTP/1.1 keep-alive, so it serves any number of connections at once.
//! tiny_http's task pool, behind `EchoServer`, can leave a burst of ~100 new
//! keep-alive connections unserved (Envoy then answers 504 after its 15 s
//! route timeout); load and isolation scenarios use this one instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Value};

/// A running upstream; stops accepting when dropped (connections already
/// open end when Envoy closes them).
pub struct Upstream {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts on a free loopback port.
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("upstream binds");
        let port = listener.local_addr().expect("bound address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&stop);
        let counter = Arc::clone(&requests);
        let thread = std::thread::Builder::new()
            .name(format!("upstream-{port}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let counter = Arc::clone(&counter);
                        let _ = std::thread::Builder::new()
                            .name("upstream-conn".into())
                            .spawn(move || serve_echo(stream, &counter));
                    }
                }
            })
            .expect("spawn upstream thread");
        Upstream {
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers the requests of one connection until it closes.
fn serve_echo(mut stream: TcpStream, requests: &AtomicUsize) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let path = request_line.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // The body: `length` bytes, or chunks up to the last one.
        let consumed = loop {
            let body = &buffer[head_end..];
            let done = if chunked {
                body.windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|end| head_end + end + 5)
            } else {
                (body.len() >= length).then_some(head_end + length)
            };
            if let Some(done) = done {
                break done;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        buffer.drain(..consumed);
        let pairs: Vec<Value> = headers
            .iter()
            .map(|(name, value)| json!([name.to_ascii_lowercase(), value]))
            .collect();
        let body = json!({"method": method, "path": path, "headers": pairs}).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        requests.fetch_add(1, Ordering::SeqCst);
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn echoes_headers_on_many_connections_at_once() {
        let upstream = Upstream::start();
        let url = format!("http://127.0.0.1:{}/a/b?x=1", upstream.port());
        // Hold 150 idle connections open: the echo must still answer.
        let idle: Vec<TcpStream> = (0..150)
            .map(|_| TcpStream::connect(("127.0.0.1", upstream.port())).unwrap())
            .collect();
        let response = client::get(&url, &[("Kubeflow-Userid", "alice"), ("x-b", "2")]);
        let seen = response.echoed();
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.path, "/a/b?x=1");
        assert_eq!(seen.header("kubeflow-userid"), Some("alice"));
        assert_eq!(upstream.requests(), 1);
        drop(idle);
    }
}
