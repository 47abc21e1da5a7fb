//! `requireJwt` and `skipPaths`:
//! - requireJwt: true → a request without a token gets 401 token_missing,
//!   with a challenge but no `error=`;
//! - a valid token still passes;
//! - skipPaths lets `/dex/...` through without a token;
//! - skipPaths are regexes on the path: an unanchored match elsewhere does
//!   not skip, and the query string is not part of the path;
//! - requireJwt defaults to false: no token, no identity, but the request passes.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::plugin_config::{claims, inline_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, scenarios, Alg, Gateway, Idp};
use serde_json::json;

fn no_token_gets_token_missing(gateway: &Gateway) {
    expect::token_missing(&gateway.get("/echo", &[]));
    expect::token_missing(&gateway.get("/", &[]));
    expect::token_missing(&gateway.request(
        "POST",
        "/pipeline/apis/v2beta1/runs",
        &[],
        Some(b"{}"),
    ));
}

fn a_valid_token_passes(gateway: &Gateway) {
    let token = Idp::shared().sign(Alg::RS256, &claims("alice@example.com", &[]));
    let seen =
        expect::allowed(&gateway.get("/echo", &[("authorization", &format!("Bearer {token}"))]));
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
}

fn skipped_paths_pass_without_a_token(gateway: &Gateway) {
    let seen = expect::allowed(&gateway.get("/dex/auth?client_id=kubeflow", &[]));
    assert_eq!(seen.path, "/dex/auth?client_id=kubeflow");
    expect::allowed(&gateway.get("/healthz", &[]));
}

fn skip_regexes_match_the_path_only(gateway: &Gateway) {
    // `^/dex/` is anchored: /api/dex/ is not skipped.
    expect::token_missing(&gateway.get("/api/dex/x", &[]));
    // `/healthz$` must match the path, not the query string.
    expect::token_missing(&gateway.get("/secret?next=/healthz", &[]));
}

#[test]
fn require_jwt_with_skip_paths() {
    let gateway = Gateway::start(with_rules(
        vec![inline_rule(ISSUER, Idp::shared())],
        json!({"requireJwt": true, "skipPaths": ["^/dex/", "/healthz$"]}),
    ));
    scenarios!(
        &gateway,
        [
            no_token_gets_token_missing,
            a_valid_token_passes,
            skipped_paths_pass_without_a_token,
            skip_regexes_match_the_path_only,
        ]
    );
}

#[test]
fn require_jwt_defaults_to_false() {
    let gateway = Gateway::start(with_rules(
        vec![inline_rule(ISSUER, Idp::shared())],
        json!({}),
    ));
    let seen = expect::allowed(&gateway.get("/echo", &[]));
    assert_eq!(seen.header("kubeflow-userid"), None);
    // A bad token is still rejected when tokens are optional.
    let response = gateway.get("/echo", &[("authorization", "Bearer not.a.token")]);
    expect::rejected(&response, "token_malformed");
}
