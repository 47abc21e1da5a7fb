use super::*;
use crate::testutil::*;
use serde_json::json;

fn inputs(config: Value, headers: &[(&str, &str)], review_answer: Option<ReviewAnswer>) -> Inputs {
    Inputs {
        config_text: config.to_string(),
        jwks: Vec::new(),
        request: Request {
            method: "GET".into(),
            host: "kubeflow.example.com".into(),
            path: "/ns/team-a/".into(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        },
        now: NOW,
        review_answer,
    }
}

#[test]
fn one_configuration_is_explained_at_a_time() {
    let plugin = |name: &str| {
        format!("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}}}\nspec:\n  pluginConfig: {{}}\n")
    };
    let (label, _) = plugin_config(&plugin("a")).unwrap();
    assert_eq!(label, "WasmPlugin a");
    let two = format!("{}---\n{}", plugin("a"), plugin("b"));
    assert!(plugin_config(&two).unwrap_err().contains("several"));
    assert!(plugin_config("kind: Service\n").is_err());
}

#[test]
fn the_answer_is_the_brokers_after_the_review_it_waits_for() {
    let mut config = all_keys_config();
    config["authorization"] = json!({"userClaim": "email", "rules": [{"match": {"paths": ["^/ns/(?P<ns>[^/]+)/"]},
        "resourceAttributes": {"namespace": "{path.ns}", "resource": "notebooks"}}]});
    let bearer = format!(
        "Bearer {}",
        sign("RS256", Some("rsa-1"), &standard_claims())
    );
    let headers = [("authorization", bearer.as_str())];
    let waiting = explain(&inputs(config.clone(), &headers, None)).unwrap();
    assert_eq!(waiting.decision, Decision::Waits);
    assert!(waiting
        .lines
        .iter()
        .any(|line| line.contains("subjectaccessreviews")));
    let denied = explain(&inputs(
        config.clone(),
        &headers,
        Some(ReviewAnswer::Denied),
    ))
    .unwrap();
    assert_eq!(
        (denied.decision, denied.status, denied.reason.as_deref()),
        (Decision::Refused, Some(403), Some("forbidden"))
    );
    let allowed = explain(&inputs(config, &headers, Some(ReviewAnswer::Allowed))).unwrap();
    assert_eq!(
        (allowed.decision, allowed.status),
        (Decision::Allowed, Some(200))
    );
}

#[test]
fn a_grpc_refusal_carries_the_reason_as_its_message() {
    let explained = explain(&inputs(
        all_keys_config(),
        &[
            ("authorization", "Bearer x.y"),
            ("content-type", "application/grpc"),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(explained.decision, Decision::Refused);
    assert_eq!(explained.reason.as_deref(), Some("token_malformed"));
    assert!(explained
        .lines
        .iter()
        .any(|line| line.contains("gRPC status 16")));
}

#[test]
fn repeated_authorization_headers_reach_kfauth_joined_as_envoy_joins_them() {
    let request = Request {
        method: "GET".into(),
        host: "h".into(),
        path: "/".into(),
        headers: vec![
            ("Authorization".into(), "Bearer a".into()),
            ("x-other".into(), "1".into()),
            ("authorization".into(), "Bearer b".into()),
            ("x-other".into(), "2".into()),
        ],
    };
    let view = request.view();
    assert_eq!(
        view.header_values("authorization").collect::<Vec<_>>(),
        ["Bearer a,Bearer b"]
    );
    assert_eq!(
        view.header_values("x-other").collect::<Vec<_>>(),
        ["1", "2"]
    );
}
