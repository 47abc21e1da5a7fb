//! API-server answers: SubjectAccessReview (`authz::subject_access_review::parse_subject_access_review`) and
//! TokenReview (`authz::token_review::parse_token_review`).
//!
//! Input: one byte choosing the HTTP status and the TokenReview audiences, the
//! rest is the body. Invariants: no panic; "allowed" only for HTTP 200/201 with
//! `status.allowed` the JSON `true` and `status.denied` not `true`;
//! "authenticated" only for HTTP 200/201 with `status.authenticated` the JSON
//! `true`, a non-empty `status.user.username` as the user, exactly the string
//! `status.user.groups` as groups, and (with audiences configured) one of them
//! in `status.audiences`.
#![no_main]

use kfauth::authz::subject_access_review::{
    parse_subject_access_review, SubjectAccessReviewAnswer,
};
use kfauth::authz::token_review::{parse_token_review, TokenStatus};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const STATUSES: [Option<&str>; 8] = [
    Some("201"),
    Some("200"),
    Some("500"),
    Some("403"),
    Some("2010"),
    Some(" 200"),
    Some(""),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let http_status = STATUSES[usize::from(choice) % STATUSES.len()];
    let audiences: Vec<String> = match (choice >> 3) % 3 {
        0 => vec![],
        1 => vec!["pipelines.kubeflow.org".into()],
        _ => vec!["a".into(), "pipelines.kubeflow.org".into()],
    };
    let ok_status = matches!(http_status, Some("200" | "201"));
    let document: Option<Value> = serde_json::from_slice(body).ok();
    let status = document
        .as_ref()
        .and_then(|document| document.get("status"));
    let field = |name: &str| status.and_then(|status| status.get(name));

    if parse_subject_access_review(http_status, body) == SubjectAccessReviewAnswer::Allowed {
        assert!(ok_status, "allowed with HTTP {http_status:?}");
        assert_eq!(
            field("allowed"),
            Some(&Value::Bool(true)),
            "allowed without allowed: true"
        );
        assert_ne!(
            field("denied"),
            Some(&Value::Bool(true)),
            "allowed though denied: true"
        );
    }

    if let Ok(TokenStatus::Authenticated(subject)) =
        parse_token_review(http_status, body, &audiences)
    {
        assert!(ok_status, "authenticated with HTTP {http_status:?}");
        assert_eq!(field("authenticated"), Some(&Value::Bool(true)));
        let user = field("user");
        let username = user
            .and_then(|user| user.get("username"))
            .and_then(Value::as_str);
        assert_eq!(Some(subject.user.as_str()), username);
        assert!(!subject.user.is_empty());
        let groups: Vec<&str> = user
            .and_then(|user| user.get("groups"))
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(subject.groups, groups);
        if !audiences.is_empty() {
            let granted = field("audiences")
                .and_then(Value::as_array)
                .is_some_and(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .any(|aud| audiences.iter().any(|wanted| wanted == aud))
                });
            assert!(granted, "authenticated without a configured audience");
        }
    }
});
