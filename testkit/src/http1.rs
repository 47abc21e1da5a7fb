//! HTTP/1.1 framing on one connection, for every client and server in the
//! testkit (over TCP or TLS): messages one after the other on a kept-alive
//! connection, bodies by `Content-Length`, chunked or (responses) up to the
//! close, `Expect: 100-continue`, and the raw head as it arrived.

use std::io::{self, Read, Write};

/// How large a message may be before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub head: usize,
    pub body: usize,
}

impl Limits {
    /// Far above anything a test sends (Envoy's own header limit is 60 KiB
    /// by default, raised in some scenarios).
    pub const GENEROUS: Limits = Limits {
        head: 1024 * 1024,
        body: 64 * 1024 * 1024,
    };
}

/// One message's start line, headers (names as sent) and body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `POST /path HTTP/1.1` or `HTTP/1.1 201 Created`, split on spaces.
    pub start: Vec<String>,
    /// Header lines as text (bytes that are not UTF-8 replaced).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The head byte for byte, up to and without the empty line.
    pub head: Vec<u8>,
}

/// The values of header `name` (case-insensitive) among `headers`, in order.
pub fn values_of<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl Message {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        values_of(&self.headers, name).first().copied()
    }

    /// Start-line word `index` (`""` when absent).
    pub fn word(&self, index: usize) -> &str {
        self.start.get(index).map_or("", String::as_str)
    }

    /// Whether the connection stays open after this message.
    pub fn keep_alive(&self, version_index: usize) -> bool {
        let connection = self.header("connection").unwrap_or_default();
        let has = |token: &str| {
            connection
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.word(version_index) == "HTTP/1.0" {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

/// Why no message could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between messages.
    Closed,
    /// The head or body exceeds the limits.
    TooLarge,
    Malformed(String),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// What is being read: a request, or the response to a request of this method.
#[derive(Clone, Copy)]
enum Reading<'a> {
    Request,
    ResponseTo(&'a str),
}

/// A connection: the stream and the bytes read past the last message.
pub struct Connection<S> {
    pub stream: S,
    buffer: Vec<u8>,
    limits: Limits,
}

impl<S: Read + Write> Connection<S> {
    /// A connection with [`Limits::GENEROUS`].
    pub fn new(stream: S) -> Connection<S> {
        Connection::with_limits(stream, Limits::GENEROUS)
    }

    pub fn with_limits(stream: S, limits: Limits) -> Connection<S> {
        Connection {
            stream,
            buffer: Vec::new(),
            limits,
        }
    }

    /// Reads the next request; answers `Expect: 100-continue` itself.
    pub fn read_request(&mut self) -> Result<Message, ReadError> {
        self.read_message(Reading::Request)
    }

    /// Reads the response to a request with `method` (a response to `HEAD`
    /// has no body).
    pub fn read_response(&mut self, method: &str) -> Result<Message, ReadError> {
        self.read_message(Reading::ResponseTo(method))
    }

    fn read_message(&mut self, reading: Reading) -> Result<Message, ReadError> {
        let head_end = loop {
            // Tolerate empty lines before a message (RFC 9112, 2.2).
            while self.buffer.starts_with(b"\r\n") {
                self.buffer.drain(..2);
            }
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > self.limits.head {
                return Err(ReadError::TooLarge);
            }
            if self.fill()? == 0 {
                return Err(if self.buffer.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Malformed("connection closed inside a message head".into())
                });
            }
        };
        let mut raw_head: Vec<u8> = self.buffer.drain(..head_end + 4).collect();
        raw_head.truncate(head_end);
        let head = String::from_utf8_lossy(&raw_head).into_owned();
        let mut lines = head.split("\r\n");
        let start: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(' ')
            .map(str::to_string)
            .collect();
        let is_request = matches!(reading, Reading::Request);
        // A status line may lack its reason phrase.
        if start.len() < 2 || (is_request && start.len() < 3) {
            return Err(ReadError::Malformed(format!("bad start line {start:?}")));
        }
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ReadError::Malformed(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let mut message = Message {
            start,
            headers,
            body: Vec::new(),
            head: raw_head,
        };
        if let Reading::ResponseTo(method) = reading {
            let status: u16 = message.word(1).parse().unwrap_or(0);
            // RFC 9112, 6.3: these responses end with their head.
            if method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304
            {
                return Ok(message);
            }
        }
        if is_request
            && message
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            self.stream.flush()?;
        }
        let chunked = message
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let length = match message.header("content-length") {
            Some(value) => Some(
                value
                    .parse::<usize>()
                    .map_err(|_| ReadError::Malformed(format!("bad content-length {value:?}")))?,
            ),
            None => None,
        };
        message.body = match (chunked, length) {
            (true, _) => self.read_chunked()?,
            (false, Some(length)) if length > self.limits.body => return Err(ReadError::TooLarge),
            (false, Some(length)) => self.take(length)?,
            (false, None) if is_request => Vec::new(),
            // A response without either ends when the connection closes.
            (false, None) => self.take_until_close()?,
        };
        Ok(message)
    }

    fn take_until_close(&mut self) -> Result<Vec<u8>, ReadError> {
        while self.fill()? > 0 {
            if self.buffer.len() > self.limits.body {
                return Err(ReadError::TooLarge);
            }
        }
        Ok(std::mem::take(&mut self.buffer))
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ReadError::Malformed(format!("bad chunk size {line:?}")))?;
            if body.len().saturating_add(size) > self.limits.body {
                return Err(ReadError::TooLarge);
            }
            if size == 0 {
                // Trailers, then the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size)?);
            self.read_line()?;
        }
    }

    fn read_line(&mut self) -> Result<String, ReadError> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            if self.buffer.len() > self.limits.head {
                return Err(ReadError::TooLarge);
            }
            if self.fill()? == 0 {
                return Err(ReadError::Malformed(
                    "connection closed inside a chunk".into(),
                ));
            }
        }
    }

    fn take(&mut self, length: usize) -> Result<Vec<u8>, ReadError> {
        while self.buffer.len() < length {
            if self.fill()? == 0 {
                return Err(ReadError::Malformed(
                    "connection closed inside a body".into(),
                ));
            }
        }
        Ok(self.buffer.drain(..length).collect())
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A peer that vanishes without close_notify is a close.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a response with a `Content-Length` body; to a `HEAD` request
    /// (`method`), the head only.
    pub fn write_response(
        &mut self,
        method: &str,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        close: bool,
    ) -> io::Result<()> {
        let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n", body.len()));
        if close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !method.eq_ignore_ascii_case("HEAD") {
            bytes.extend_from_slice(body);
        }
        self.send(&bytes)
    }

    /// Writes `bytes` (a whole message) and flushes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }
}

/// The reason phrase of an HTTP status line.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        204 => "No Content",
        403 => "Forbidden",
        503 => "Service Unavailable",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads from a script, records what is written.
    struct Script {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Trickle a few bytes at a time to exercise reassembly.
            let n = buf.len().min(7);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pipelined_requests_with_both_body_framings() {
        let input = b"\r\nPOST /a HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello\
POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        let mut conn = Connection::new(script(input));
        let first = conn.read_request().unwrap();
        assert_eq!(
            (first.word(1), first.body.as_slice()),
            ("/a", &b"hello"[..])
        );
        assert!(first.keep_alive(2));
        let second = conn.read_request().unwrap();
        assert_eq!(
            (second.word(1), second.body.as_slice()),
            ("/b", &b"abcde"[..])
        );
        assert!(!second.keep_alive(2));
        assert!(matches!(conn.read_request(), Err(ReadError::Closed)));
        assert_eq!(conn.stream.output, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    fn script(input: &[u8]) -> Script {
        Script {
            input: io::Cursor::new(input.to_vec()),
            output: Vec::new(),
        }
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let limits = Limits {
            head: 1024,
            body: 100,
        };
        let input = b"POST / HTTP/1.1\r\ncontent-length: 101\r\n\r\n";
        let mut conn = Connection::with_limits(script(input), limits);
        assert!(matches!(conn.read_request(), Err(ReadError::TooLarge)));
    }

    #[test]
    fn responses_end_by_length_by_close_or_with_their_head() {
        let input =
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nHTTP/1.1 200 OK\r\n\r\nup to the close";
        let mut conn = Connection::new(script(input));
        assert_eq!(conn.read_response("GET").unwrap().body, b"ok");
        let empty = conn.read_response("GET").unwrap();
        assert_eq!((empty.word(1), empty.body.len()), ("204", 0));
        let head = conn.read_response("HEAD").unwrap();
        assert_eq!(
            (head.header("content-length"), head.body.len()),
            (Some("5"), 0)
        );
        let last = conn.read_response("GET").unwrap();
        assert_eq!(last.body, b"up to the close");
        assert!(matches!(conn.read_response("GET"), Err(ReadError::Closed)));
    }

    #[test]
    fn the_raw_head_keeps_bytes_that_are_not_text() {
        let mut conn = Connection::new(script(b"GET / HTTP/1.1\r\nx-a: caf\xe9\r\n\r\n"));
        let request = conn.read_request().unwrap();
        assert_eq!(request.head, b"GET / HTTP/1.1\r\nx-a: caf\xe9");
        assert_eq!(request.header("x-a"), Some("caf\u{fffd}"));
    }
}
