//! Assertions for kfauth's response contract (DESIGN.md, "Responses").

use serde_json::json;

use crate::client::HttpResponse;
use crate::echo::Echoed;

/// `WWW-Authenticate` of a 401 when no token was sent.
pub const CHALLENGE: &str = r#"Bearer realm="kfauth""#;
/// `WWW-Authenticate` of a 401 when a token was sent and rejected.
pub const CHALLENGE_INVALID_TOKEN: &str = r#"Bearer realm="kfauth", error="invalid_token""#;

/// The request passed the filter and reached the echo upstream.
pub fn allowed(response: &HttpResponse) -> Echoed {
    response.echoed()
}

fn assert_body(response: &HttpResponse, code: u16, reason: &str) {
    assert_eq!(
        response.json(),
        json!({"code": code, "reason": reason}),
        "body of the {} response",
        response.status
    );
}

/// 401 for a token that was sent and rejected for `reason`.
pub fn rejected(response: &HttpResponse, reason: &str) {
    assert_eq!(
        response.status, 401,
        "expected 401 {reason}; got {} {:?}",
        response.status, response.body
    );
    assert_eq!(
        response.header_values("www-authenticate"),
        vec![CHALLENGE_INVALID_TOKEN],
        "www-authenticate of a rejected token ({reason})"
    );
    assert_body(response, 401, reason);
}

/// 401 `token_missing`: no `error=` in the challenge.
pub fn token_missing(response: &HttpResponse) {
    assert_eq!(
        response.status, 401,
        "expected 401 token_missing; got {} {:?}",
        response.status, response.body
    );
    assert_eq!(
        response.header_values("www-authenticate"),
        vec![CHALLENGE],
        "www-authenticate without a token"
    );
    assert_body(response, 401, "token_missing");
}

/// 503 with `retry-after` for an unavailable dependency.
pub fn unavailable(response: &HttpResponse, reason: &str) {
    assert_eq!(
        response.status, 503,
        "expected 503 {reason}; got {} {:?}",
        response.status, response.body
    );
    let retry_after = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 without retry-after: {:?}", response.headers));
    assert!(
        retry_after.trim().parse::<u64>().is_ok() || retry_after.ends_with(" GMT"),
        "retry-after should be delay-seconds or an HTTP-date, got {retry_after:?}"
    );
    assert_body(response, 503, reason);
}

/// A gRPC answer: HTTP 200 with `grpc-status` and `grpc-message` = `reason`.
pub fn grpc_status(response: &HttpResponse, code: u32, reason: &str) {
    assert_eq!(
        response.status, 200,
        "gRPC errors travel with HTTP 200; got {} {:?} {:?}",
        response.status, response.headers, response.body
    );
    assert_eq!(
        response.header("grpc-status"),
        Some(code.to_string().as_str()),
        "grpc-status; headers {:?}",
        response.headers
    );
    assert_eq!(
        response.header("grpc-message"),
        Some(reason),
        "grpc-message; headers {:?}",
        response.headers
    );
}

/// Neither the token nor its payload or signature appears in any of `texts`
/// (response bodies, headers, Envoy's log).
pub fn no_leak(token: &str, texts: &[&str]) {
    let mut secrets: Vec<&str> = vec![token];
    secrets.extend(token.split('.').skip(1).filter(|part| part.len() >= 16));
    for text in texts {
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "a token (or part of one) leaked: {}...",
                &secret[..secret.len().min(24)]
            );
        }
    }
}
