//! gRPC requests (`content-type: application/grpc*`) get gRPC errors: HTTP 200
//! with `grpc-status` and `grpc-message` = the reason word, never a 401:
//! - no token where one is required → 16 token_missing;
//! - a bad token → 16 with its reason (expired, bad signature);
//! - `application/grpc+proto` counts as gRPC;
//! - a valid token passes to the upstream;
//! - plain HTTP on the same gateway still gets 401.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::forge;
use kfauth_testkit::idp::now;
use kfauth_testkit::plugin_config::{claims, inline_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, scenarios, Alg, Gateway, HttpResponse, Idp};
use serde_json::json;

const METHOD: &str = "/ml_metadata.MetadataStoreService/GetArtifacts";

fn grpc(gateway: &Gateway, content_type: &str, token: Option<&str>) -> HttpResponse {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", content_type), ("te", "trailers")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    gateway.request("POST", METHOD, &headers, Some(b"\0\0\0\0\0"))
}

fn no_token_is_unauthenticated(gateway: &Gateway) {
    let response = grpc(gateway, "application/grpc", None);
    expect::grpc_status(&response, 16, "token_missing");
}

fn bad_tokens_are_unauthenticated_with_their_reason(gateway: &Gateway) {
    let mut c = claims("alice@example.com", &[]);
    c["exp"] = json!(now() - 3600);
    let expired = Idp::shared().sign(Alg::RS256, &c);
    expect::grpc_status(
        &grpc(gateway, "application/grpc", Some(&expired)),
        16,
        "token_expired",
    );
    let forged = forge::alg_none(&claims("alice@example.com", &[]));
    let response = grpc(gateway, "application/grpc", Some(&forged));
    expect::grpc_status(&response, 16, "signature_invalid");
    expect::no_leak(
        &forged,
        &[&format!("{:?}", response.headers), &response.body],
    );
}

fn grpc_proto_content_type_counts(gateway: &Gateway) {
    let response = grpc(gateway, "application/grpc+proto", None);
    expect::grpc_status(&response, 16, "token_missing");
}

fn a_valid_token_passes(gateway: &Gateway) {
    let token = Idp::shared().sign(Alg::ES256, &claims("alice@example.com", &["g"]));
    let seen = expect::allowed(&grpc(gateway, "application/grpc", Some(&token)));
    assert_eq!(seen.path, METHOD);
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
}

fn plain_http_still_gets_401(gateway: &Gateway) {
    expect::token_missing(&gateway.request(
        "POST",
        METHOD,
        &[("content-type", "application/json")],
        Some(b"{}"),
    ));
}

#[test]
fn grpc_requests_get_grpc_errors() {
    let gateway = Gateway::start(with_rules(
        vec![inline_rule(ISSUER, Idp::shared())],
        json!({"requireJwt": true}),
    ));
    scenarios!(
        &gateway,
        [
            no_token_is_unauthenticated,
            bad_tokens_are_unauthenticated_with_their_reason,
            grpc_proto_content_type_counts,
            a_valid_token_passes,
            plain_http_still_gets_401,
        ]
    );
}
