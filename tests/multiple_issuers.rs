//! Two issuers in one config, each with its own keys, audiences and claim
//! mapping; the token's `iss` picks the rule:
//! - a token of issuer A is mapped by A's outputClaimToHeaders only;
//! - a token of issuer B is mapped by B's outputClaimToHeaders only;
//! - audiences are per rule;
//! - a token claiming issuer A but signed by B's key is rejected
//!   (key_unknown under B's kid, signature_invalid under A's kid).

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::idp::{standard_claims, RSA_KID};
use kfauth_testkit::plugin_config::{
    claims, inline_rule, other_rule, with_rules, ISSUER, OTHER_AUDIENCE as AUDIENCE_B,
    OTHER_ISSUER as ISSUER_B,
};
use kfauth_testkit::{expect, scenarios, Alg, Gateway, HttpResponse, Idp};
use serde_json::{json, Value};

fn config() -> Value {
    let rule_b = other_rule(json!([
        {"header": "kubeflow-userid", "claim": "sub", "prefix": "other:"},
        {"header": "x-other-roles", "claim": "roles"},
    ]));
    with_rules(vec![inline_rule(ISSUER, Idp::shared()), rule_b], json!({}))
}

fn claims_b() -> Value {
    let mut c = standard_claims(ISSUER_B, AUDIENCE_B, "bea@other.test", &["should-not-map"]);
    c["sub"] = json!("bea-123");
    c["roles"] = json!(["r1", "r2"]);
    c
}

fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    gateway.get("/echo", &[("authorization", &format!("Bearer {token}"))])
}

fn issuer_a_token_uses_rule_a(gateway: &Gateway) {
    let mut c = claims("alice@example.com", &["a", "b"]);
    c["roles"] = json!(["should-not-map"]);
    let seen = expect::allowed(&send(gateway, &Idp::shared().sign(Alg::RS256, &c)));
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    assert_eq!(seen.header("kubeflow-groups"), Some("a,b"));
    assert_eq!(seen.header("x-other-roles"), None);
}

fn issuer_b_token_uses_rule_b(gateway: &Gateway) {
    for alg in [Alg::RS256, Alg::ES256] {
        let token = Idp::shared_second().sign(alg, &claims_b());
        let seen = expect::allowed(&send(gateway, &token));
        assert_eq!(seen.header("kubeflow-userid"), Some("other:bea-123"));
        assert_eq!(seen.header("x-other-roles"), Some("r1,r2"));
        assert_eq!(seen.header("kubeflow-groups"), None);
    }
}

fn audiences_are_per_rule(gateway: &Gateway) {
    let mut c = claims_b();
    c["aud"] = json!("kubeflow");
    expect::rejected(
        &send(gateway, &Idp::shared_second().sign(Alg::RS256, &c)),
        "audience_mismatch",
    );
}

fn issuer_a_claimed_with_issuer_b_key(gateway: &Gateway) {
    let c = claims("mallory@example.com", &[]);
    let idp_b = Idp::shared_second();
    expect::rejected(&send(gateway, &idp_b.sign(Alg::RS256, &c)), "key_unknown");
    expect::rejected(
        &send(gateway, &idp_b.sign_with_kid(Alg::RS256, RSA_KID, &c)),
        "signature_invalid",
    );
}

#[test]
fn each_issuer_maps_its_own_claims() {
    let gateway = Gateway::start(config());
    scenarios!(
        &gateway,
        [
            issuer_a_token_uses_rule_a,
            issuer_b_token_uses_rule_b,
            audiences_are_per_rule,
            issuer_a_claimed_with_issuer_b_key,
        ]
    );
}
