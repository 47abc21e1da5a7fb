//! Valid tokens pass, and their claims become the identity headers the
//! upstream sees:
//! - an RS256 token and an ES256 token (whose JWK has no `alg`) both pass;
//! - a string claim (`email`) is copied as is;
//! - an array claim (`groups`) becomes "a,b,c";
//! - a nested claim is reached by a dotted path (`realm_access.roles`);
//! - `prefix` is prepended to the value;
//! - a claim the token lacks sets no header;
//! - `outputPayloadToHeader` carries the payload, base64url-encoded;
//! - the token itself is not forwarded (forwardOriginalToken defaults to false).

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::forge::b64url_decode;
use kfauth_testkit::plugin_config::{claims, inline_rule, merge, with_rules, ISSUER};
use kfauth_testkit::{expect, scenarios, Alg, Gateway, Idp};
use serde_json::{json, Value};

fn config() -> Value {
    let mut rule = inline_rule(ISSUER, Idp::shared());
    merge(
        &mut rule,
        json!({
            "outputClaimToHeaders": [
                {"header": "kubeflow-userid", "claim": "email"},
                {"header": "kubeflow-groups", "claim": "groups"},
                {"header": "x-realm-roles", "claim": "realm_access.roles"},
                {"header": "x-user-sub", "claim": "sub", "prefix": "oidc:"},
                {"header": "x-department", "claim": "org.department"},
            ],
            "outputPayloadToHeader": "x-jwt-payload",
        }),
    );
    with_rules(vec![rule], json!({}))
}

fn send(gateway: &Gateway, alg: Alg, claims: &Value) -> kfauth_testkit::Echoed {
    let token = Idp::shared().sign(alg, claims);
    let response = gateway.get("/echo", &[("authorization", &format!("Bearer {token}"))]);
    expect::allowed(&response)
}

fn rs256_token_passes_with_email_and_groups(gateway: &Gateway) {
    let seen = send(
        gateway,
        Alg::RS256,
        &claims("alice@example.com", &["a", "b", "c"]),
    );
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    assert_eq!(seen.header("kubeflow-groups"), Some("a,b,c"));
}

fn es256_token_without_alg_in_its_jwk_passes(gateway: &Gateway) {
    let seen = send(gateway, Alg::ES256, &claims("bob@example.com", &["ml"]));
    assert_eq!(seen.header("kubeflow-userid"), Some("bob@example.com"));
    assert_eq!(seen.header("kubeflow-groups"), Some("ml"));
}

fn nested_claim_by_dotted_path(gateway: &Gateway) {
    let mut c = claims("carol@example.com", &[]);
    merge(
        &mut c,
        json!({"realm_access": {"roles": ["admin", "viewer"]}, "org": {"department": "research"}}),
    );
    let seen = send(gateway, Alg::RS256, &c);
    assert_eq!(seen.header("x-realm-roles"), Some("admin,viewer"));
    assert_eq!(seen.header("x-department"), Some("research"));
}

fn prefix_is_prepended(gateway: &Gateway) {
    let c = claims("dave@example.com", &[]);
    let seen = send(gateway, Alg::ES256, &c);
    let expected = format!("oidc:{}", c["sub"].as_str().unwrap());
    assert_eq!(seen.header("x-user-sub"), Some(expected.as_str()));
}

fn missing_claim_sets_no_header(gateway: &Gateway) {
    let seen = send(gateway, Alg::RS256, &claims("erin@example.com", &[]));
    assert_eq!(seen.header("x-realm-roles"), None);
    assert_eq!(seen.header("x-department"), None);
}

fn payload_header_carries_the_base64url_payload(gateway: &Gateway) {
    let c = claims("frank@example.com", &["x"]);
    let seen = send(gateway, Alg::RS256, &c);
    let header = seen
        .header("x-jwt-payload")
        .expect("x-jwt-payload reaches the upstream");
    assert!(
        !header.contains('+') && !header.contains('/'),
        "base64url alphabet: {header}"
    );
    let decoded = b64url_decode(header).expect("x-jwt-payload is base64url");
    let payload: Value = serde_json::from_slice(&decoded).expect("payload is JSON");
    assert_eq!(payload, c);
}

fn token_is_not_forwarded_by_default(gateway: &Gateway) {
    let seen = send(gateway, Alg::RS256, &claims("gina@example.com", &[]));
    assert_eq!(seen.header("authorization"), None);
}

#[test]
fn valid_tokens_map_claims_to_headers() {
    let gateway = Gateway::start(config());
    scenarios!(
        &gateway,
        [
            rs256_token_passes_with_email_and_groups,
            es256_token_without_alg_in_its_jwk_passes,
            nested_claim_by_dotted_path,
            prefix_is_prepended,
            missing_claim_sets_no_header,
            payload_header_carries_the_base64url_payload,
            token_is_not_forwarded_by_default,
        ]
    );
}
