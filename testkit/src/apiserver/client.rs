//! An HTTPS client for the stand-in that trusts only its test CA and checks
//! the certificate for `kubernetes.default.svc`, the way Envoy's cluster
//! does; one connection can carry several requests (keep-alive).

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::tls::API_SERVER_SNI;
use crate::client::{HttpResponse, Request, Reuse};
use crate::http1::{Connection, ReadError};

/// Where and how to connect.
#[derive(Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: String,
}

/// One open TLS connection.
pub struct ApiConnection {
    http: Connection<StreamOwned<ClientConnection, TcpStream>>,
}

impl ApiClient {
    /// A client of `addr` trusting `config`'s roots, sending SNI
    /// `kubernetes.default.svc`.
    pub fn new(addr: SocketAddr, config: Arc<ClientConfig>) -> ApiClient {
        ApiClient {
            addr,
            config,
            server_name: API_SERVER_SNI.to_string(),
        }
    }

    /// Sends (and verifies against) another server name, e.g. `127.0.0.1`.
    pub fn with_server_name(mut self, name: &str) -> ApiClient {
        self.server_name = name.to_string();
        self
    }

    /// Connects and completes the TLS handshake.
    pub fn connect(&self) -> Result<ApiConnection, String> {
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| format!("server name {:?}: {e}", self.server_name))?;
        let tls = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| format!("TLS client: {e}"))?;
        let mut stream = StreamOwned::new(tls, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS handshake with {}: {e}", self.addr))?;
        }
        Ok(ApiConnection {
            http: Connection::new(stream),
        })
    }

    /// One request on a fresh connection.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, String> {
        self.connect()?.send(method, path, headers, body)
    }
}

impl ApiConnection {
    /// Sends a request on this connection and reads the response.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, String> {
        let mut request = Request::new(method, API_SERVER_SNI, path).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        self.http
            .send(&request.bytes(Reuse::KeepAlive))
            .map_err(|e| format!("sending {method} {path}: {e}"))?;
        let message = self.http.read_response(method).map_err(|e| match e {
            ReadError::Closed => format!("{method} {path}: the server closed the connection"),
            other => format!("{method} {path}: {other:?}"),
        })?;
        Ok(HttpResponse::from(message))
    }

    /// The ALPN protocol the server chose.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.http.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }
}

impl super::server::ApiServer {
    /// A client that trusts this server's CA.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(self.addr(), self.ca().client_config())
    }

    /// POSTs `body` as JSON to `path` with the configured bearer token, on
    /// a fresh connection; panics if no response comes.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> HttpResponse {
        let authorization = format!("Bearer {}", self.bearer_token());
        self.client()
            .send(
                "POST",
                path,
                &[
                    ("authorization", &authorization),
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
                body.to_string().as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
