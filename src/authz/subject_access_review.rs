//! SubjectAccessReview (authorization.k8s.io/v1) requests, answers, and
//! their cache.

use serde_json::{json, Map, Value};

use crate::outcome::Subject;
use crate::ttl_cache::TtlCache;

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDecision {
    pub allowed: bool,
    pub reason: Option<String>,
}

/// SubjectAccessReview answers, by the review's spec (compact JSON).
pub type SubjectAccessReviewCache = TtlCache<CachedDecision>;

/// The review's `spec`: subject plus `resourceAttributes` or
/// `nonResourceAttributes`. Its compact JSON is also the cache key, so two
/// requests share an answer only when every field of the review is the same.
pub fn subject_access_review_spec(
    subject: &Subject,
    attributes_field: &str,
    attributes: Map<String, Value>,
) -> Value {
    let mut spec = Map::new();
    spec.insert("user".into(), Value::String(subject.user.clone()));
    if !subject.groups.is_empty() {
        spec.insert("groups".into(), json!(subject.groups));
    }
    spec.insert(attributes_field.into(), Value::Object(attributes));
    Value::Object(spec)
}

/// The body POSTed to `/apis/authorization.k8s.io/v1/subjectaccessreviews`.
pub fn subject_access_review_body(spec: &Value) -> Vec<u8> {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    })
    .to_string()
    .into_bytes()
}

/// What the API server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAccessReviewAnswer {
    Allowed,
    /// Not allowed, with `status.reason` when the server gave one.
    Denied(Option<String>),
    /// No usable answer (HTTP error, timeout, unparsable body).
    Unusable(String),
}

/// Reads an answer: HTTP 200/201 with `status.allowed`.
pub fn parse_subject_access_review(
    http_status: Option<&str>,
    body: &[u8],
) -> SubjectAccessReviewAnswer {
    match http_status {
        Some("200" | "201") => {}
        Some(code) => return SubjectAccessReviewAnswer::Unusable(format!("HTTP {code}")),
        None => {
            return SubjectAccessReviewAnswer::Unusable(
                "no response (timeout or connection failure)".into(),
            )
        }
    }
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return SubjectAccessReviewAnswer::Unusable("the answer is not JSON".into());
    };
    let status = document.get("status");
    // SubjectAccessReviewStatus: `denied` may not be true when `allowed` is;
    // an answer that says both is taken as the refusal.
    let denied = status
        .and_then(|status| status.get("denied"))
        .and_then(Value::as_bool)
        == Some(true);
    match status
        .and_then(|status| status.get("allowed"))
        .and_then(Value::as_bool)
    {
        Some(true) if !denied => SubjectAccessReviewAnswer::Allowed,
        // Its `reason` speaks for one half of a contradiction: not passed on.
        Some(true) => SubjectAccessReviewAnswer::Denied(Some(
            "the API server answered both allowed and denied".into(),
        )),
        Some(false) => SubjectAccessReviewAnswer::Denied(
            status
                .and_then(|status| status.get("reason"))
                .and_then(Value::as_str)
                .filter(|reason| !reason.is_empty())
                .map(str::to_string),
        ),
        None => SubjectAccessReviewAnswer::Unusable("the answer has no status.allowed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn builds_a_subject_access_review() {
        let subject = Subject {
            user: "alice@example.com".into(),
            groups: vec!["team-a".into()],
        };
        let mut attributes = Map::new();
        attributes.insert("namespace".into(), "team-a".into());
        attributes.insert("verb".into(), "get".into());
        let spec = subject_access_review_spec(&subject, "resourceAttributes", attributes);
        let body: Value = serde_json::from_slice(&subject_access_review_body(&spec)).unwrap();
        assert_eq!(body["kind"], "SubjectAccessReview");
        assert_eq!(body["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(body["spec"]["user"], "alice@example.com");
        assert_eq!(body["spec"]["groups"], json!(["team-a"]));
        assert_eq!(body["spec"]["resourceAttributes"]["verb"], "get");
    }

    #[test]
    fn reads_answers() {
        assert_eq!(
            parse_subject_access_review(Some("201"), br#"{"status":{"allowed":true}}"#),
            SubjectAccessReviewAnswer::Allowed
        );
        assert_eq!(
            parse_subject_access_review(
                Some("201"),
                br#"{"status":{"allowed":false,"reason":"no binding"}}"#
            ),
            SubjectAccessReviewAnswer::Denied(Some("no binding".into()))
        );
        assert_eq!(
            parse_subject_access_review(
                Some("200"),
                br#"{"status":{"allowed":false,"reason":""}}"#
            ),
            SubjectAccessReviewAnswer::Denied(None)
        );
        assert!(matches!(
            parse_subject_access_review(Some("500"), b""),
            SubjectAccessReviewAnswer::Unusable(_)
        ));
        assert!(matches!(
            parse_subject_access_review(None, b""),
            SubjectAccessReviewAnswer::Unusable(_)
        ));
        assert!(matches!(
            parse_subject_access_review(Some("201"), b"<html>"),
            SubjectAccessReviewAnswer::Unusable(_)
        ));
        assert!(matches!(
            parse_subject_access_review(Some("201"), br#"{"status":{}}"#),
            SubjectAccessReviewAnswer::Unusable(_)
        ));
        // Contradictory: `denied` wins (found by the review_answer fuzz target's invariant).
        assert_eq!(
            parse_subject_access_review(
                Some("201"),
                br#"{"status":{"allowed":true,"denied":true,"reason":"RBAC: allowed by RoleBinding"}}"#
            ),
            SubjectAccessReviewAnswer::Denied(Some(
                "the API server answered both allowed and denied".into()
            ))
        );
    }
}
