//! SubjectAccessReview (authorization.k8s.io/v1) requests and answers.

use serde_json::{json, Map, Value};

/// Who asks: the user and groups the review is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

/// The review's `spec`: subject plus `resourceAttributes` or
/// `nonResourceAttributes`. Its compact JSON is also the cache key, so two
/// requests share an answer only when every field of the review is the same.
pub fn review_spec(
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
pub fn review_body(spec: &Value) -> Vec<u8> {
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
pub enum ReviewAnswer {
    Allowed,
    /// Not allowed, with `status.reason` when the server gave one.
    Denied(Option<String>),
    /// No usable answer (HTTP error, timeout, unparsable body).
    Unusable(String),
}

/// Reads an answer: HTTP 200/201 with `status.allowed`.
pub fn parse_answer(http_status: Option<&str>, body: &[u8]) -> ReviewAnswer {
    match http_status {
        Some("200" | "201") => {}
        Some(code) => return ReviewAnswer::Unusable(format!("HTTP {code}")),
        None => {
            return ReviewAnswer::Unusable("no response (timeout or connection failure)".into())
        }
    }
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return ReviewAnswer::Unusable("the answer is not JSON".into());
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
        Some(true) if !denied => ReviewAnswer::Allowed,
        // Its `reason` speaks for one half of a contradiction: not passed on.
        Some(true) => ReviewAnswer::Denied(Some(
            "the API server answered both allowed and denied".into(),
        )),
        Some(false) => ReviewAnswer::Denied(
            status
                .and_then(|status| status.get("reason"))
                .and_then(Value::as_str)
                .filter(|reason| !reason.is_empty())
                .map(str::to_string),
        ),
        None => ReviewAnswer::Unusable("the answer has no status.allowed".into()),
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
        let spec = review_spec(&subject, "resourceAttributes", attributes);
        let body: Value = serde_json::from_slice(&review_body(&spec)).unwrap();
        assert_eq!(body["kind"], "SubjectAccessReview");
        assert_eq!(body["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(body["spec"]["user"], "alice@example.com");
        assert_eq!(body["spec"]["groups"], json!(["team-a"]));
        assert_eq!(body["spec"]["resourceAttributes"]["verb"], "get");
    }

    #[test]
    fn reads_answers() {
        assert_eq!(
            parse_answer(Some("201"), br#"{"status":{"allowed":true}}"#),
            ReviewAnswer::Allowed
        );
        assert_eq!(
            parse_answer(
                Some("201"),
                br#"{"status":{"allowed":false,"reason":"no binding"}}"#
            ),
            ReviewAnswer::Denied(Some("no binding".into()))
        );
        assert_eq!(
            parse_answer(Some("200"), br#"{"status":{"allowed":false,"reason":""}}"#),
            ReviewAnswer::Denied(None)
        );
        assert!(matches!(
            parse_answer(Some("500"), b""),
            ReviewAnswer::Unusable(_)
        ));
        assert!(matches!(parse_answer(None, b""), ReviewAnswer::Unusable(_)));
        assert!(matches!(
            parse_answer(Some("201"), b"<html>"),
            ReviewAnswer::Unusable(_)
        ));
        assert!(matches!(
            parse_answer(Some("201"), br#"{"status":{}}"#),
            ReviewAnswer::Unusable(_)
        ));
        // Contradictory: `denied` wins (found by the review_answer fuzz target's invariant).
        assert_eq!(
            parse_answer(
                Some("201"),
                br#"{"status":{"allowed":true,"denied":true,"reason":"RBAC: allowed by RoleBinding"}}"#
            ),
            ReviewAnswer::Denied(Some(
                "the API server answered both allowed and denied".into()
            ))
        );
    }
}
