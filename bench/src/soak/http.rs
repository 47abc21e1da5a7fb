//! A keep-alive HTTP/1.1 client over one TCP connection: the soak needs every
//! response (status and body) over a fixed number of connections, which a
//! pooled client would hide.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Why an exchange failed.
enum Failure {
    /// The server closed a kept-alive connection before answering.
    ClosedBeforeAnswer,
    Io(String),
}

/// One connection to `127.0.0.1:port`, reopened when the server closes it.
pub struct Connection {
    port: u16,
    stream: Option<BufReader<TcpStream>>,
    opened: u64,
}

impl Connection {
    pub fn new(port: u16) -> Connection {
        Connection {
            port,
            stream: None,
            opened: 0,
        }
    }

    /// Connections opened after the first.
    pub fn reconnects(&self) -> u64 {
        self.opened.saturating_sub(1)
    }

    /// `GET path` with `headers`. A kept-alive connection found closed before
    /// any byte of the answer is retried once on a new one (as HTTP clients do
    /// for idempotent requests).
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let reused = self.stream.is_some();
        match self.try_get(path, headers) {
            Err(Failure::ClosedBeforeAnswer) if reused => {
                self.try_get(path, headers).map_err(describe)
            }
            other => other.map_err(describe),
        }
    }

    fn try_get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Answer, Failure> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port))
                .map_err(|e| Failure::Io(format!("connect: {e}")))?;
            let _ = stream.set_nodelay(true);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            self.opened += 1;
            self.stream = Some(BufReader::new(stream));
        }
        let result = match self.stream.as_mut() {
            Some(stream) => exchange(stream, self.port, path, headers),
            None => Err(Failure::Io("no connection".into())),
        };
        match &result {
            Ok((_, keep_alive)) if *keep_alive => {}
            _ => self.stream = None,
        }
        result.map(|(answer, _)| answer)
    }
}

fn describe(failure: Failure) -> String {
    match failure {
        Failure::ClosedBeforeAnswer => "connection closed before the answer".into(),
        Failure::Io(why) => why,
    }
}

/// Writes one request and reads its answer; also says whether the connection
/// may be reused.
fn exchange(
    stream: &mut BufReader<TcpStream>,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Answer, bool), Failure> {
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
        move |e| Failure::Io(format!("{what}: {e}"))
    }
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .map_err(|_| Failure::ClosedBeforeAnswer)?;

    let mut line = String::new();
    let read = stream.read_line(&mut line).map_err(io("status line"))?;
    if read == 0 {
        return Err(Failure::ClosedBeforeAnswer);
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Failure::Io(format!("bad status line {line:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep_alive = true;
    loop {
        line.clear();
        if stream.read_line(&mut line).map_err(io("header"))? == 0 {
            return Err(Failure::Io("closed in headers".into()));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).map_err(io("chunk size"))?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| Failure::Io(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).map_err(io("chunk"))?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        stream.read_exact(&mut body).map_err(io("body"))?;
    } else {
        stream.read_to_end(&mut body).map_err(io("body"))?;
        keep_alive = false;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok((Answer { status, body }, keep_alive))
}
