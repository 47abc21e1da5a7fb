//! HTTP/1.1 framing on one connection (after TLS): requests one after the
//! other on a kept-alive connection, bodies by `Content-Length` or chunked,
//! `Expect: 100-continue`, and responses with `Content-Length`. The server
//! side and the test client share it.

use std::io::{self, Read, Write};

/// Request heads larger than this are refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// kube-apiserver's request body limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// One message's start line, headers (names as sent) and body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `POST /path HTTP/1.1` or `HTTP/1.1 201 Created`, split on spaces.
    pub start: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

/// A connection: the stream and the bytes read past the last message.
pub struct Connection<S> {
    pub stream: S,
    buffer: Vec<u8>,
}

impl<S: Read + Write> Connection<S> {
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Reads the next request; answers `Expect: 100-continue` itself.
    pub fn read_request(&mut self) -> Result<Message, ReadError> {
        self.read_message(true)
    }

    /// Reads the next response (one with a body: not to HEAD).
    pub fn read_response(&mut self) -> Result<Message, ReadError> {
        self.read_message(false)
    }

    fn read_message(&mut self, is_request: bool) -> Result<Message, ReadError> {
        let head_end = loop {
            // Tolerate empty lines before a message (RFC 9112, 2.2).
            while self.buffer.starts_with(b"\r\n") {
                self.buffer.drain(..2);
            }
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > MAX_HEAD {
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
        let head: Vec<u8> = self.buffer.drain(..head_end + 4).collect();
        let head = String::from_utf8_lossy(&head[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let start: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(' ')
            .map(str::to_string)
            .collect();
        if start.len() < 3 {
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
        };
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
        message.body = if chunked {
            self.read_chunked()?
        } else {
            let length = match message.header("content-length") {
                Some(value) => value
                    .parse::<usize>()
                    .map_err(|_| ReadError::Malformed(format!("bad content-length {value:?}")))?,
                None => 0,
            };
            if length > MAX_BODY {
                return Err(ReadError::TooLarge);
            }
            self.take(length)?
        };
        Ok(message)
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ReadError::Malformed(format!("bad chunk size {line:?}")))?;
            if body.len() + size > MAX_BODY {
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
            if self.buffer.len() > MAX_HEAD {
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

    /// Writes a response with a `Content-Length` body.
    pub fn write_response(
        &mut self,
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
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes)?;
        self.stream.flush()
    }

    /// Writes a request with a `Content-Length` body.
    pub fn write_request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut out = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes)?;
        self.stream.flush()
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
        let mut conn = Connection::new(Script {
            input: io::Cursor::new(input.to_vec()),
            output: Vec::new(),
        });
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

    #[test]
    fn oversized_bodies_are_refused() {
        let input = format!(
            "POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let mut conn = Connection::new(Script {
            input: io::Cursor::new(input.into_bytes()),
            output: Vec::new(),
        });
        assert!(matches!(conn.read_request(), Err(ReadError::TooLarge)));
    }
}
