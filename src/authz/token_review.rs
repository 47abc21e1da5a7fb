//! TokenReview (authentication.k8s.io/v1) for service-account tokens: after the
//! local signature check, the API server confirms the token is still good (its
//! service account or pod not deleted) and says who it belongs to.

use std::time::Duration;

use serde_json::{json, Value};

use crate::outcome::Subject;
use crate::ttl_cache::TtlCache;
use crate::verified_token_cache::TokenDigest;

/// kube-rbac-proxy's TokenReview cache lifetime.
pub const TOKEN_REVIEW_TTL: Duration = Duration::from_secs(120);
/// With `failureMode: allow`, how long a token goes on unreviewed after a failure.
pub const UNREVIEWED_TTL: Duration = Duration::from_secs(5);

/// What is known of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStatus {
    /// The API server vouches for it: this is who it is.
    Authenticated(Subject),
    /// The API server refused it (or its audiences do not fit).
    Rejected(String),
    /// The API server could not answer and `failureMode` is `allow`: use the claims.
    Unreviewed,
}

/// TokenReview answers, by the keyed digest of the bearer token (as the
/// verified-token cache keys them: the cache holds no token).
pub type TokenReviewCache = TtlCache<TokenStatus, TokenDigest>;

/// The body POSTed to `/apis/authentication.k8s.io/v1/tokenreviews`.
pub fn token_review_body(token: &str, audiences: &[String]) -> Vec<u8> {
    let mut spec = serde_json::Map::new();
    spec.insert("token".into(), Value::String(token.to_string()));
    if !audiences.is_empty() {
        spec.insert("audiences".into(), json!(audiences));
    }
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    })
    .to_string()
    .into_bytes()
}

/// Reads an answer. `Err` when there is no usable answer. With `audiences`
/// configured, `status.audiences` must hold one of them (as KFP checks it).
pub fn parse_token_review(
    http_status: Option<&str>,
    body: &[u8],
    audiences: &[String],
) -> Result<TokenStatus, String> {
    match http_status {
        Some("200" | "201") => {}
        Some(code) => return Err(format!("HTTP {code}")),
        None => return Err("no response (timeout or connection failure)".into()),
    }
    let document: Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let status = document
        .get("status")
        .ok_or_else(|| "the answer has no status".to_string())?;
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let why = status
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("not authenticated");
        return Ok(TokenStatus::Rejected(why.to_string()));
    }
    if !audiences.is_empty() {
        let granted: Vec<&str> = status
            .get("audiences")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !granted
            .iter()
            .any(|aud| audiences.iter().any(|wanted| wanted == aud))
        {
            return Ok(TokenStatus::Rejected(
                "the token is not valid for the configured audiences".into(),
            ));
        }
    }
    let user = status.get("user");
    let username = user
        .and_then(|user| user.get("username"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "the answer has no status.user.username".to_string())?;
    let groups = user
        .and_then(|user| user.get("groups"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(TokenStatus::Authenticated(Subject {
        user: username.to_string(),
        groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn builds_a_token_review() {
        let body: Value = serde_json::from_slice(&token_review_body(
            "t0k",
            &["pipelines.kubeflow.org".into()],
        ))
        .unwrap();
        assert_eq!(body["kind"], "TokenReview");
        assert_eq!(body["spec"]["token"], "t0k");
        assert_eq!(body["spec"]["audiences"], json!(["pipelines.kubeflow.org"]));
        let plain: Value = serde_json::from_slice(&token_review_body("t0k", &[])).unwrap();
        assert!(plain["spec"].get("audiences").is_none());
    }

    #[test]
    fn reads_who_the_token_belongs_to() {
        let answer = br#"{"status":{"authenticated":true,"user":{"username":"system:serviceaccount:team-a:runner","groups":["system:serviceaccounts","system:serviceaccounts:team-a"]},"audiences":["pipelines.kubeflow.org"]}}"#;
        assert_eq!(
            parse_token_review(Some("201"), answer, &["pipelines.kubeflow.org".into()]),
            Ok(TokenStatus::Authenticated(Subject {
                user: "system:serviceaccount:team-a:runner".into(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:serviceaccounts:team-a".into()
                ],
            }))
        );
        assert!(matches!(
            parse_token_review(Some("201"), answer, &["other".into()]),
            Ok(TokenStatus::Rejected(_))
        ));
        let refused = br#"{"status":{"authenticated":false,"error":"service account deleted"}}"#;
        assert_eq!(
            parse_token_review(Some("201"), refused, &[]),
            Ok(TokenStatus::Rejected("service account deleted".into()))
        );
        assert!(parse_token_review(Some("500"), b"", &[]).is_err());
        assert!(parse_token_review(None, b"", &[]).is_err());
        assert!(parse_token_review(Some("201"), b"nope", &[]).is_err());
    }
}
