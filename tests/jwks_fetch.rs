//! Keys fetched from `jwksUri` through an Envoy callout:
//! - over the cluster named the Istio way (`outbound|PORT||127.0.0.1`), RS256
//!   and ES256 tokens pass, and the keys are cached, not fetched per request;
//! - over an explicit `jwksCluster`;
//! - while the JWKS endpoint fails (500, then not JSON) a token gets 503
//!   jwks_unavailable with retry-after (gRPC: status 14), a request without
//!   a token still passes, and kfauth recovers once the endpoint is back;
//! - a fetch slower than the rule's `timeout` → 503 jwks_unavailable;
//! - a key added at the IdP (unknown kid) is picked up by a refetch.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kfauth_testkit::plugin_config::{claims, merge, uri_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, Alg, Cluster, Gateway, HttpResponse, Idp, JwksMode, JwksServer};
use serde_json::{json, Value};

/// How long kfauth may take to recover from an outage or pick up a new key.
const RECOVERY: Duration = Duration::from_secs(30);

fn token(alg: Alg) -> String {
    Idp::shared().sign(alg, &claims("alice@example.com", &["a"]))
}

fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    gateway.get("/echo", &[("authorization", &format!("Bearer {token}"))])
}

fn config(jwks: &JwksServer) -> Value {
    with_rules(vec![uri_rule(ISSUER, &jwks.uri())], json!({}))
}

/// Retries `token` until it passes or `RECOVERY` runs out; returns the last
/// response.
fn until_allowed(gateway: &Gateway, token: &str) -> HttpResponse {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let response = send(gateway, token);
        if response.status == 200 || Instant::now() >= deadline {
            return response;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn keys_come_over_the_istio_named_cluster_and_are_cached() {
    let jwks = JwksServer::start(&Idp::shared().jwks_json());
    let gateway = Gateway::start_with(config(&jwks), |s| s.with_jwks_cluster(jwks.port()));

    for alg in [Alg::RS256, Alg::ES256] {
        let seen = expect::allowed(&send(&gateway, &token(alg)));
        assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    }
    assert!(jwks.hits() >= 1, "the JWKS was fetched");

    let before = jwks.hits();
    for _ in 0..20 {
        expect::allowed(&send(&gateway, &token(Alg::RS256)));
    }
    let fetched = jwks.hits() - before;
    assert!(
        fetched <= 2,
        "20 requests with a known kid fetched the JWKS {fetched} more times"
    );
}

#[test]
fn keys_come_over_an_explicit_jwks_cluster() {
    let jwks = JwksServer::start(&Idp::shared().jwks_json());
    let mut config = config(&jwks);
    merge(
        &mut config["jwtRules"][0],
        json!({"jwksCluster": "idp-keys"}),
    );
    let gateway = Gateway::start_with(config, |s| {
        s.with_cluster(Cluster::loopback("idp-keys", jwks.port()))
    });
    expect::allowed(&send(&gateway, &token(Alg::ES256)));
    assert!(jwks.hits() >= 1);
}

#[test]
fn jwks_outage_answers_503_then_recovers() {
    let jwks = JwksServer::start_with("127.0.0.1:0", "/keys", JwksMode::Fail);
    let gateway = Gateway::start_with(config(&jwks), |s| s.with_jwks_cluster(jwks.port()));
    let t = token(Alg::RS256);

    expect::unavailable(&send(&gateway, &t), "jwks_unavailable");
    assert!(jwks.hits() >= 1, "kfauth tried to fetch");

    let grpc = gateway.get(
        "/pkg.Service/Method",
        &[
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", &format!("Bearer {t}")),
        ],
    );
    expect::grpc_status(&grpc, 14, "jwks_unavailable");

    // Without a token (requireJwt: false) no key is needed.
    expect::allowed(&gateway.get("/echo", &[]));

    jwks.set_mode(JwksMode::Garbage);
    let hits = jwks.hits();
    let deadline = Instant::now() + RECOVERY;
    while jwks.hits() == hits && Instant::now() < deadline {
        expect::unavailable(&send(&gateway, &t), "jwks_unavailable");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(jwks.hits() > hits, "kfauth retried the fetch");
    expect::unavailable(&send(&gateway, &t), "jwks_unavailable");

    jwks.set_mode(JwksMode::Serve(Idp::shared().jwks_json()));
    expect::allowed(&until_allowed(&gateway, &t));
}

#[test]
fn a_fetch_slower_than_the_timeout_is_unavailable() {
    let jwks = JwksServer::start_with(
        "127.0.0.1:0",
        "/keys",
        JwksMode::Stall(Duration::from_secs(6), Idp::shared().jwks_json()),
    );
    let mut config = config(&jwks);
    merge(&mut config["jwtRules"][0], json!({"timeout": "500ms"}));
    let gateway = Gateway::start_with(config, |s| s.with_jwks_cluster(jwks.port()));
    expect::unavailable(&send(&gateway, &token(Alg::RS256)), "jwks_unavailable");
}

#[test]
fn a_new_key_is_picked_up_by_a_refetch() {
    let idp = Idp::shared();
    let rsa_only = json!({"keys": [idp.jwk(Alg::RS256)]}).to_string();
    let jwks = JwksServer::start(&rsa_only);
    let mut config = config(&jwks);
    config["jwksRefetchMinInterval"] = json!("2s");
    let gateway = Gateway::start_with(config, |s| s.with_jwks_cluster(jwks.port()));

    expect::allowed(&send(&gateway, &token(Alg::RS256)));
    let es256 = token(Alg::ES256);
    expect::rejected(&send(&gateway, &es256), "key_unknown");

    jwks.set_mode(JwksMode::Serve(idp.jwks_json()));
    let response = until_allowed(&gateway, &es256);
    let seen = expect::allowed(&response);
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
}
