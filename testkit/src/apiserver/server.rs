//! The API-server stand-in: HTTPS on a free loopback port, a thread per
//! connection with HTTP/1.1 keep-alive (Envoy reuses its upstream
//! connections), bearer-token authentication of the caller, the two review
//! endpoints, counts and records of the reviews received, and the ways a
//! real API server misbehaves: slow, failing, answering garbage, hanging up,
//! resetting the connection, answering a huge body, down (connections
//! refused, open ones closed) and back up on the same port.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

use super::rbac::Rbac;
use super::status::ApiError;
use super::subject_access_review::{self, Answered, SAR_PATH};
use super::tls::TestCa;
use super::token_review::{TokenRegistry, TOKEN_REVIEW_PATH};
use crate::http1::{reason_phrase, Connection, Limits, Message, ReadError};
use crate::listener::{self, AcceptLoop, OpenConnections};

/// The bearer token the stand-in accepts unless a test sets another.
pub const DEFAULT_BEARER_TOKEN: &str = "kfauth-test-apiserver-token";

/// kube-apiserver's request body limit (3 MiB); heads above 64 KiB are refused too.
const LIMITS: Limits = Limits {
    head: 64 * 1024,
    body: 3 * 1024 * 1024,
};

/// Reviews kept per endpoint for inspection; older ones are dropped.
const MAX_RECORDED: usize = 10_000;

/// The review endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Review {
    /// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`
    SubjectAccess,
    /// `POST /apis/authentication.k8s.io/v1/tokenreviews`
    Token,
}

impl Review {
    pub fn path(self) -> &'static str {
        match self {
            Review::SubjectAccess => SAR_PATH,
            Review::Token => TOKEN_REVIEW_PATH,
        }
    }

    fn index(self) -> usize {
        match self {
            Review::SubjectAccess => 0,
            Review::Token => 1,
        }
    }
}

/// How a review endpoint answers an authenticated review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiMode {
    /// 201 with the evaluated review.
    #[default]
    Answer,
    /// Sleeps this long, then answers (for callout timeouts, coalescing).
    Slow(Duration),
    /// 500 with a `Status` (reason `InternalError`).
    Fail,
    /// 200 with `content-type: application/json` and a body that is not JSON.
    Garbage,
    /// Reads the review, then closes the connection without an answer.
    Hangup,
    /// Reads the review, then resets the connection (TCP RST, no TLS
    /// close_notify, no answer).
    Reset,
    /// The evaluated review, padded to at least this many bytes with an
    /// annotation kfauth does not read: the right decision in a huge body.
    Huge(usize),
    /// The evaluated review, an authenticated TokenReview's `status.audiences`
    /// replaced by [`FOREIGN_AUDIENCE`]: a token valid for some other audience
    /// than the ones kfauth asked for (a server ignoring `spec.audiences`).
    ForeignAudiences,
    /// The evaluated review with `status.allowed` and `status.denied` both
    /// true, which the SubjectAccessReview contract forbids: a client must
    /// read it as denied.
    AllowedAndDenied,
}

/// The only audience an answer in [`ApiMode::ForeignAudiences`] grants.
pub const FOREIGN_AUDIENCE: &str = "https://elsewhere.kfauth.test";

/// A garbage answer: claims JSON, is not.
pub const GARBAGE_BODY: &str = "<html><body>502 Bad Gateway (not a review)</body></html>";

struct Shared {
    tls: Arc<ServerConfig>,
    bearer: Mutex<String>,
    rbac: RwLock<Rbac>,
    tokens: Mutex<TokenRegistry>,
    modes: Mutex<[ApiMode; 2]>,
    counts: [AtomicUsize; 2],
    unauthorized: AtomicUsize,
    records: [Mutex<Vec<Value>>; 2],
    connections: OpenConnections,
    server_names: Mutex<Vec<String>>,
}

/// The stand-in; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    ca: TestCa,
    addr: SocketAddr,
    running: Option<AcceptLoop>,
}

impl ApiServer {
    /// No RBAC objects (every review denied), a fresh test CA, a free port.
    pub fn start() -> ApiServer {
        ApiServer::start_with_rbac(Rbac::new())
    }

    /// Answers reviews from `rbac`.
    pub fn start_with_rbac(rbac: Rbac) -> ApiServer {
        ApiServer::start_on("127.0.0.1:0", rbac, TestCa::generate())
    }

    /// Binds `addr` with `rbac` and the certificate of `ca`.
    pub fn start_on(addr: &str, rbac: Rbac, ca: TestCa) -> ApiServer {
        let listener =
            listener::bind(addr).unwrap_or_else(|e| panic!("API server binds {addr}: {e}"));
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            tls: ca.server_config(),
            bearer: Mutex::new(DEFAULT_BEARER_TOKEN.to_string()),
            rbac: RwLock::new(rbac),
            tokens: Mutex::new(TokenRegistry::default()),
            modes: Mutex::new([ApiMode::Answer; 2]),
            counts: Default::default(),
            unauthorized: AtomicUsize::new(0),
            records: Default::default(),
            connections: OpenConnections::default(),
            server_names: Mutex::new(Vec::new()),
        });
        let mut server = ApiServer {
            shared,
            ca,
            addr,
            running: None,
        };
        server.serve(listener);
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The test CA that signed the server certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The CA certificate (PEM) a client must trust.
    pub fn ca_pem(&self) -> &str {
        self.ca.ca_pem()
    }

    /// Only `Authorization: Bearer <token>` is let in from now on.
    pub fn set_bearer_token(&self, token: &str) {
        *lock(&self.shared.bearer) = token.to_string();
    }

    /// The bearer token callers must send.
    pub fn bearer_token(&self) -> String {
        lock(&self.shared.bearer).clone()
    }

    /// Replaces the RBAC objects.
    pub fn set_rbac(&self, rbac: Rbac) {
        if let Ok(mut current) = self.shared.rbac.write() {
            *current = rbac;
        }
    }

    /// Adds the objects of a YAML text (as `kubectl apply -f`).
    pub fn apply_yaml(&self, yaml: &str) -> Result<(), String> {
        let mut current = self
            .shared
            .rbac
            .write()
            .map_err(|_| "RBAC lock poisoned".to_string())?;
        current.load_yaml(yaml).map(|_| ())
    }

    /// A copy of the RBAC objects in force.
    pub fn rbac(&self) -> Rbac {
        self.shared
            .rbac
            .read()
            .map(|rbac| rbac.clone())
            .unwrap_or_default()
    }

    /// `token` authenticates as `username` in `groups`, for `audiences`
    /// (none: the API server's own, [`super::token_review::API_AUDIENCE`]).
    pub fn register_token(&self, token: &str, username: &str, groups: &[&str], audiences: &[&str]) {
        lock(&self.shared.tokens).register(token, username, groups, audiences);
    }

    /// `token` authenticates as service account `namespace/name`.
    pub fn register_service_account_token(
        &self,
        token: &str,
        namespace: &str,
        name: &str,
        audiences: &[&str],
    ) {
        lock(&self.shared.tokens).register_service_account(token, namespace, name, audiences);
    }

    /// `token` no longer authenticates.
    pub fn revoke_token(&self, token: &str) {
        lock(&self.shared.tokens).revoke(token);
    }

    /// How both review endpoints answer from now on.
    pub fn set_mode(&self, mode: ApiMode) {
        *lock(&self.shared.modes) = [mode; 2];
    }

    /// How one review endpoint answers from now on.
    pub fn set_mode_for(&self, review: Review, mode: ApiMode) {
        lock(&self.shared.modes)[review.index()] = mode;
    }

    pub fn mode(&self, review: Review) -> ApiMode {
        lock(&self.shared.modes)[review.index()]
    }

    /// Authenticated requests that reached `review`'s endpoint, counted on
    /// arrival (before a slow answer), whatever the mode answered.
    pub fn count(&self, review: Review) -> usize {
        self.shared.counts[review.index()].load(Ordering::SeqCst)
    }

    /// [`ApiServer::count`] of SubjectAccessReviews.
    pub fn sar_count(&self) -> usize {
        self.count(Review::SubjectAccess)
    }

    /// [`ApiServer::count`] of TokenReviews.
    pub fn token_review_count(&self) -> usize {
        self.count(Review::Token)
    }

    /// Requests turned away with 401 (wrong or missing bearer token).
    pub fn unauthorized_count(&self) -> usize {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (keep-alive reuse shows as few).
    pub fn connections_accepted(&self) -> usize {
        self.shared.connections.accepted()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.open()
    }

    /// The SNI of each TLS connection that sent a request, in order (`""`
    /// when the client sent none); Envoy's cluster sends
    /// `kubernetes.default.svc`.
    pub fn server_names_seen(&self) -> Vec<String> {
        lock(&self.shared.server_names).clone()
    }

    /// The bodies received at `review`'s endpoint, oldest first (a body that
    /// is not JSON is recorded as a JSON string).
    pub fn requests(&self, review: Review) -> Vec<Value> {
        lock(&self.shared.records[review.index()]).clone()
    }

    pub fn sar_requests(&self) -> Vec<Value> {
        self.requests(Review::SubjectAccess)
    }

    pub fn last_sar_request(&self) -> Option<Value> {
        lock(&self.shared.records[0]).last().cloned()
    }

    pub fn token_review_requests(&self) -> Vec<Value> {
        self.requests(Review::Token)
    }

    pub fn last_token_review_request(&self) -> Option<Value> {
        lock(&self.shared.records[1]).last().cloned()
    }

    /// Zeroes the counts and forgets the recorded bodies and server names.
    pub fn reset_counts(&self) {
        for review in [Review::SubjectAccess, Review::Token] {
            self.shared.counts[review.index()].store(0, Ordering::SeqCst);
            lock(&self.shared.records[review.index()]).clear();
        }
        self.shared.unauthorized.store(0, Ordering::SeqCst);
        self.shared.connections.reset_accepted();
        lock(&self.shared.server_names).clear();
    }

    /// Goes down: the port refuses connections and every open connection is
    /// closed. Configuration, counts and records are kept for
    /// [`ApiServer::restart`].
    pub fn stop(&mut self) {
        self.running.take();
        self.close_connections();
    }

    /// Closes every open connection (the server stays up).
    pub fn close_connections(&self) {
        self.shared.connections.close_all();
    }

    /// Comes back up on the same port.
    pub fn restart(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener = listener::bind(self.addr)
            .unwrap_or_else(|e| panic!("API server rebinds {}: {e}", self.addr));
        self.serve(listener);
    }

    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        let shared = Arc::clone(&self.shared);
        self.running = Some(AcceptLoop::spawn(listener, "apiserver", move |stream| {
            // Registered before the accept loop moves on, so that `stop`
            // (which joins this loop) closes it too.
            let id = shared.connections.add(&stream);
            let shared = Arc::clone(&shared);
            let _ = std::thread::Builder::new()
                .name("apiserver-conn".into())
                .spawn(move || serve_connection(&shared, stream, id));
        }));
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What to do with one request.
enum Outcome {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Hangup,
    Reset,
}

/// How a connection ended.
#[derive(PartialEq, Eq)]
enum End {
    /// After a response or the client's close: TLS close_notify, FIN.
    Clean,
    /// Mid-request or on [`ApiMode::Hangup`]: FIN without close_notify.
    Abrupt,
    /// On [`ApiMode::Reset`]: RST.
    Reset,
}

impl Outcome {
    fn error(error: &ApiError) -> Outcome {
        Outcome::json(error.code, &error.to_status(), Vec::new())
    }

    fn json(status: u16, body: &Value, mut headers: Vec<(String, String)>) -> Outcome {
        headers.insert(0, ("content-type".into(), "application/json".into()));
        Outcome::Respond {
            status,
            headers,
            body: body.to_string().into_bytes(),
        }
    }
}

fn serve_connection(shared: &Shared, tcp: TcpStream, id: u64) {
    let _ = tcp.set_nodelay(true);
    if let Ok(tls) = ServerConnection::new(Arc::clone(&shared.tls)) {
        let mut http = Connection::with_limits(StreamOwned::new(tls, tcp), LIMITS);
        let end = serve_requests(shared, &mut http);
        if end == End::Reset {
            shared.connections.forget(id);
            return crate::jwks_server::reset_connection(http.stream.sock);
        }
        if end == End::Clean {
            http.stream.conn.send_close_notify();
            let _ = http.stream.conn.complete_io(&mut http.stream.sock);
        }
        let _ = http.stream.sock.shutdown(Shutdown::Both);
    }
    shared.connections.forget(id);
}

/// Answers requests until the connection ends; says how it ends.
fn serve_requests(
    shared: &Shared,
    http: &mut Connection<StreamOwned<ServerConnection, TcpStream>>,
) -> End {
    let mut first = true;
    loop {
        let request = match http.read_request() {
            Ok(request) => {
                if std::mem::take(&mut first) {
                    let sni = http.stream.conn.server_name().unwrap_or_default();
                    let mut names = lock(&shared.server_names);
                    if names.len() < MAX_RECORDED {
                        names.push(sni.to_string());
                    }
                }
                request
            }
            Err(ReadError::TooLarge) => {
                let error = ApiError::too_large();
                let body = error.to_status().to_string();
                let headers = vec![("content-type".into(), "application/json".into())];
                let _ = http.write_response(
                    "POST",
                    413,
                    reason_phrase(413),
                    &headers,
                    body.as_bytes(),
                    true,
                );
                return End::Clean;
            }
            Err(ReadError::Closed) => return End::Clean,
            Err(_) => return End::Abrupt,
        };
        let keep_alive = request.keep_alive(2);
        match handle(shared, &request) {
            Outcome::Hangup => return End::Abrupt,
            Outcome::Reset => return End::Reset,
            Outcome::Respond {
                status,
                headers,
                body,
            } => {
                let written = http.write_response(
                    request.word(0),
                    status,
                    reason_phrase(status),
                    &headers,
                    &body,
                    !keep_alive,
                );
                if written.is_err() {
                    return End::Abrupt;
                }
                if !keep_alive {
                    return End::Clean;
                }
            }
        }
    }
}

fn handle(shared: &Shared, request: &Message) -> Outcome {
    let authorization = request.header("authorization").unwrap_or_default();
    let presented = authorization
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .and_then(|_| authorization.get(7..));
    if presented != Some(lock(&shared.bearer).as_str()) {
        shared.unauthorized.fetch_add(1, Ordering::SeqCst);
        return Outcome::error(&ApiError::unauthorized());
    }
    let path = request.word(1).split('?').next().unwrap_or_default();
    let review = match path {
        SAR_PATH => Review::SubjectAccess,
        TOKEN_REVIEW_PATH => Review::Token,
        _ => return Outcome::error(&ApiError::not_found(path)),
    };
    let method = request.word(0);
    if method != "POST" {
        return Outcome::error(&ApiError::method_not_allowed(method));
    }
    let body: Result<Value, _> = serde_json::from_slice(&request.body);
    let recorded = match &body {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&request.body).into_owned()),
    };
    shared.counts[review.index()].fetch_add(1, Ordering::SeqCst);
    {
        let mut records = lock(&shared.records[review.index()]);
        if records.len() >= MAX_RECORDED {
            records.remove(0);
        }
        records.push(recorded);
    }
    // Copied out first: a guard in the match scrutinee would be held
    // through a slow answer and serialize every connection.
    let mode = lock(&shared.modes)[review.index()];
    match mode {
        ApiMode::Answer => {}
        ApiMode::Slow(delay) => std::thread::sleep(delay),
        ApiMode::Fail => {
            return Outcome::error(&ApiError::internal(
                "Internal error occurred: the stand-in was told to fail",
            ))
        }
        ApiMode::Garbage => {
            return Outcome::Respond {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: GARBAGE_BODY.as_bytes().to_vec(),
            }
        }
        ApiMode::Hangup => return Outcome::Hangup,
        ApiMode::Reset => return Outcome::Reset,
        ApiMode::Huge(_) | ApiMode::ForeignAudiences | ApiMode::AllowedAndDenied => {}
    }
    let content_type = request.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Outcome::error(&ApiError::unsupported_media_type(content_type));
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            return Outcome::error(&ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: {e}"
            )))
        }
    };
    let answered = match review {
        Review::SubjectAccess => match shared.rbac.read() {
            Ok(rbac) => subject_access_review::answer(&rbac, &body),
            Err(_) => Err(ApiError::internal("RBAC lock poisoned")),
        },
        Review::Token => lock(&shared.tokens).answer(&body),
    };
    match answered {
        Ok(Answered { mut body, warnings }) => {
            match mode {
                ApiMode::Huge(size) => {
                    body["metadata"]["annotations"]["kfauth.test/padding"] =
                        Value::String("x".repeat(size));
                }
                ApiMode::ForeignAudiences if body["status"]["authenticated"] == true => {
                    body["status"]["audiences"] = serde_json::json!([FOREIGN_AUDIENCE]);
                }
                ApiMode::AllowedAndDenied => {
                    body["status"]["allowed"] = Value::Bool(true);
                    body["status"]["denied"] = Value::Bool(true);
                }
                _ => {}
            }
            let headers = warnings
                .iter()
                .map(|w| {
                    (
                        "warning".to_string(),
                        format!("299 - {}", Value::String(w.clone())),
                    )
                })
                .collect();
            Outcome::json(201, &body, headers)
        }
        Err(error) => Outcome::error(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review() -> Value {
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": "nobody", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}},
        })
    }

    fn post(api: &ApiServer) -> Result<crate::HttpResponse, String> {
        let authorization = format!("Bearer {}", api.bearer_token());
        api.client().send(
            "POST",
            SAR_PATH,
            &[
                ("authorization", &authorization),
                ("content-type", "application/json"),
            ],
            review().to_string().as_bytes(),
        )
    }

    #[test]
    fn a_huge_answer_carries_the_evaluated_decision() {
        let api = ApiServer::start();
        api.set_mode(ApiMode::Huge(200_000));
        let response = post(&api).unwrap();
        assert_eq!(response.status, 201);
        assert!(response.body.len() > 200_000, "{}", response.body.len());
        let body = response.json();
        assert_eq!(body["status"]["allowed"], false, "no RBAC objects: denied");
        assert_eq!(api.sar_count(), 1);
    }

    #[test]
    fn a_contradictory_answer_says_allowed_and_denied() {
        let api = ApiServer::start();
        api.set_mode(ApiMode::AllowedAndDenied);
        let body = post(&api).unwrap().json();
        assert_eq!(body["status"]["allowed"], true);
        assert_eq!(body["status"]["denied"], true);
    }

    #[test]
    fn a_reset_is_no_answer() {
        let api = ApiServer::start();
        api.set_mode(ApiMode::Reset);
        let error = post(&api).unwrap_err();
        assert!(
            error.contains("reset") || error.contains("closed") || error.contains("Io"),
            "{error}"
        );
        assert_eq!(api.sar_count(), 1);
        api.set_mode(ApiMode::Answer);
        assert_eq!(post(&api).unwrap().status, 201, "the server stays up");
    }
}
