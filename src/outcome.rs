//! What the core decides for a request, and how a refusal becomes a response.

use crate::cause::Cause;
use crate::request::RequestView;
// The reason words live in their own module (`cause` needs them too); the
// decisions are where most code looks for them.
pub use crate::reason::Reason;

/// A refusal: the reason, and whether the client sent a token (RFC 6750 `error=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    /// What happened, for the log line only; `None` where the reason word
    /// (and the detail) says it all.
    pub cause: Option<Cause>,
    pub token_sent: bool,
    /// Optional detail for the body (e.g. an authorizer's reason); never token material.
    pub detail: Option<String>,
}

impl Denial {
    pub fn new(reason: Reason, token_sent: bool) -> Self {
        Denial {
            reason,
            cause: None,
            token_sent,
            detail: None,
        }
    }

    /// A refusal for `cause`, with its reason word.
    pub fn because(cause: Cause, token_sent: bool) -> Self {
        Denial {
            cause: Some(cause),
            ..Denial::new(cause.reason(), token_sent)
        }
    }
}

/// What the denial's log line says after the request: the reason word, its
/// cause, and for `header_too_large` the detail (a header's name and sizes;
/// other details, such as an authorizer's words, stay in the body).
impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cause {
            Some(cause) => write!(f, "{cause}")?,
            None => write!(f, "{}", self.reason)?,
        }
        match (&self.reason, &self.detail) {
            (Reason::HeaderTooLarge, Some(detail)) => write!(f, " ({detail})"),
            _ => Ok(()),
        }
    }
}

/// Header edits for a request that goes upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Lower-case names removed entirely (every copy, whatever the client's case).
    pub remove: Vec<String>,
    /// Headers set (replacing any value), after the removals.
    pub set: Vec<(String, String)>,
    /// A new `:path`, when a token is removed from the query string.
    pub path: Option<String>,
    /// Bytes of Cookie removed by the gRPC cookie diet (for the log and metric).
    pub stripped_cookie_bytes: usize,
    /// Bytes of session cookies removed by the session shield (log and metric).
    pub session_cookie_bytes: usize,
}

impl HeaderEdits {
    /// The edits as the host carries them out: removals, then replaces. A
    /// header both removed and set that the request carries at most once
    /// needs no removal: the host's replace (Envoy's `setCopy`, the first
    /// copy's value, else a new header) leaves one header with the new value
    /// either way, so the removal would be a host call for nothing (the
    /// session shield's rewritten `Cookie`, on every browser request). With
    /// two or more copies the removal stays: a replace would leave the rest.
    pub fn for_host(mut self, request: &RequestView) -> HeaderEdits {
        let HeaderEdits { remove, set, .. } = &mut self;
        remove.retain(|name| {
            let also_set = set.iter().any(|(set, _)| set == name);
            !also_set || request.header_values(name).nth(1).is_some()
        });
        self
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Index of the rule (in `jwtRules`) that verified the token.
    pub rule: usize,
    /// The verified claims (empty when no `authorization` block reads them).
    pub claims: std::rc::Rc<serde_json::Map<String, serde_json::Value>>,
    /// Who the API server's TokenReview says the token belongs to, when the
    /// rule asks for one; it then names the authorization subject.
    pub reviewed: Option<Subject>,
}

/// Who a request is, as authorization names it: a user and their groups
/// (from the token's claims, or from a TokenReview's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

/// What the host should do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Continue upstream after applying the edits; `identity` is set when a
    /// token was verified (and is `None` on skipped paths and optional auth).
    Allow {
        edits: HeaderEdits,
        identity: Option<Identity>,
        /// An authorization rule matched and allowed (from the cache).
        authorized: bool,
    },
    /// Answer locally.
    Deny(Denial),
    /// The keys of this rule (index into `jwtRules`) are not there yet: fetch them,
    /// hold the request, and decide again once the fetch ends.
    FetchKeys(usize),
    /// Signature good; hold the request until the API server's TokenReview of
    /// the token (rule `rule`) is answered, then decide again.
    TokenReview { rule: usize, token: String },
    /// Authenticated; hold the request until the API server answers the review
    /// `key` (body `body`), then allow with `edits` or deny.
    SubjectAccessReview {
        edits: HeaderEdits,
        key: String,
        body: Vec<u8>,
    },
}

/// A local reply, ready for `send_http_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Set for gRPC requests: the host answers with this gRPC status instead.
    pub grpc: Option<(u32, String)>,
}

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Turns a refusal into the response the design's table prescribes.
pub fn local_reply(denial: &Denial, is_grpc: bool) -> LocalReply {
    let reason = denial.reason;
    if is_grpc {
        return LocalReply {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            grpc: Some((reason.grpc_status(), reason.as_str().to_string())),
        };
    }
    let status = reason.http_status();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if status == 401 {
        // RFC 6750 section 3: error="invalid_token" only when a token was presented.
        let challenge = if denial.token_sent {
            r#"Bearer realm="kfauth", error="invalid_token""#
        } else {
            r#"Bearer realm="kfauth""#
        };
        headers.push(("www-authenticate".to_string(), challenge.to_string()));
    }
    if status == 503 {
        headers.push(("retry-after".to_string(), RETRY_AFTER_SECONDS.to_string()));
    }
    let mut body = serde_json::json!({"code": status, "reason": reason.as_str()});
    if let (Some(detail), Some(object)) = (&denial.detail, body.as_object_mut()) {
        object.insert("detail".into(), serde_json::Value::String(detail.clone()));
    }
    LocalReply {
        status,
        headers,
        body: body.to_string().into_bytes(),
        grpc: None,
    }
}

/// Is this a gRPC request, by its content type (`application/grpc`, `application/grpc+proto`,
/// `application/grpc-web...`)?
pub fn is_grpc_content_type(content_type: Option<&str>) -> bool {
    content_type
        .map(|value| value.trim().to_ascii_lowercase())
        .is_some_and(|value| {
            value == "application/grpc"
                || value.starts_with("application/grpc+")
                || value.starts_with("application/grpc-web")
                || value.starts_with("application/grpc;")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_host_removes_only_what_a_replace_would_leave() {
        let edits = HeaderEdits {
            remove: vec!["cookie".into(), "kubeflow-userid".into(), "x-token".into()],
            set: vec![
                ("cookie".into(), "theme=dark".into()),
                ("kubeflow-userid".into(), "alice@example.com".into()),
            ],
            ..HeaderEdits::default()
        };
        let request = |pairs: &[(&str, &str)]| RequestView {
            headers: pairs.iter().copied().collect(),
            ..RequestView::default()
        };
        // One Cookie header: the replace rewrites it; a removed header that
        // is not set stays removed, and so does one sent twice.
        let once = request(&[
            ("cookie", "s=1; theme=dark"),
            ("kubeflow-userid", "mallory"),
            ("kubeflow-userid", "eve"),
            ("x-token", "t"),
        ]);
        let host = edits.clone().for_host(&once);
        assert_eq!(host.remove, ["kubeflow-userid", "x-token"]);
        assert_eq!(host.set, edits.set);
        // Two Cookie headers: a replace would leave the second.
        let twice = request(&[("cookie", "theme=dark"), ("cookie", "s=1")]);
        assert_eq!(edits.clone().for_host(&twice).remove, ["cookie", "x-token"]);
        // None sent: nothing to remove either way.
        assert_eq!(edits.clone().for_host(&request(&[])).remove, ["x-token"]);
    }

    fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn bad_token_is_401_with_invalid_token_challenge() {
        let reply = local_reply(&Denial::new(Reason::TokenExpired, true), false);
        assert_eq!(reply.status, 401);
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some(r#"Bearer realm="kfauth", error="invalid_token""#)
        );
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            r#"{"code":401,"reason":"token_expired"}"#
        );
    }

    #[test]
    fn missing_token_challenge_has_no_error() {
        let reply = local_reply(&Denial::new(Reason::TokenMissing, false), false);
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some(r#"Bearer realm="kfauth""#)
        );
    }

    #[test]
    fn outage_is_503_with_retry_after() {
        let reply = local_reply(&Denial::new(Reason::JwksUnavailable, true), false);
        assert_eq!(reply.status, 503);
        assert_eq!(header(&reply, "retry-after"), Some("5"));
        assert_eq!(header(&reply, "www-authenticate"), None);
    }

    #[test]
    fn an_oversized_header_is_431_without_a_challenge() {
        let mut denial = Denial::new(Reason::HeaderTooLarge, false);
        denial.detail = Some("`x-big` is 9000 bytes, over maxHeaderBytes 8190".into());
        let reply = local_reply(&denial, false);
        assert_eq!(reply.status, 431);
        assert_eq!(header(&reply, "www-authenticate"), None);
        assert_eq!(header(&reply, "retry-after"), None);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["reason"], "header_too_large");
        assert_eq!(body["code"], 431);
    }

    #[test]
    fn grpc_requests_get_grpc_statuses() {
        for (reason, code) in [
            (Reason::SignatureInvalid, 16),
            (Reason::Forbidden, 7),
            (Reason::JwksUnavailable, 14),
            (Reason::HeaderTooLarge, 8),
        ] {
            let reply = local_reply(&Denial::new(reason, true), true);
            assert_eq!(reply.status, 200);
            assert_eq!(reply.grpc, Some((code, reason.as_str().to_string())));
        }
    }

    #[test]
    fn the_cause_is_for_the_log_line_and_the_wire_keeps_the_reason_word() {
        let denial = Denial::because(Cause::HeaderNotJson, true);
        assert_eq!(denial.reason, Reason::TokenMalformed);
        assert_eq!(
            denial.to_string(),
            "token_malformed: header not a JSON object"
        );
        for is_grpc in [false, true] {
            assert_eq!(
                local_reply(&denial, is_grpc),
                local_reply(&Denial::new(Reason::TokenMalformed, true), is_grpc)
            );
        }
        // An outage of kfauth's own is told apart from missing keys in the log only.
        let unreadable = Denial::because(Cause::HeadersUnreadable, false);
        assert_eq!(
            unreadable.to_string(),
            "jwks_unavailable: request headers unreadable"
        );
        assert_eq!(local_reply(&unreadable, false).status, 503);
        let mut oversized = Denial::new(Reason::HeaderTooLarge, false);
        oversized.detail = Some("header `x-big` is 9000 bytes".into());
        assert_eq!(
            oversized.to_string(),
            "header_too_large (header `x-big` is 9000 bytes)"
        );
        // Other details (an authorizer's words) stay in the body.
        let mut forbidden = Denial::new(Reason::Forbidden, true);
        forbidden.detail = Some("no RBAC rule".into());
        assert_eq!(forbidden.to_string(), "forbidden");
    }

    #[test]
    fn detects_grpc_content_types() {
        assert!(is_grpc_content_type(Some("application/grpc")));
        assert!(is_grpc_content_type(Some("application/grpc+proto")));
        assert!(is_grpc_content_type(Some("application/grpc-web-text")));
        assert!(is_grpc_content_type(Some("Application/GRPC")));
        assert!(!is_grpc_content_type(Some("application/json")));
        assert!(!is_grpc_content_type(Some("application/grpcx")));
        assert!(!is_grpc_content_type(None));
    }
}
