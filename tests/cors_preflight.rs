//! CORS preflights with `requireJwt`. A browser sends a preflight (`OPTIONS`
//! with `Origin` and `Access-Control-Request-Method`) without credentials;
//! a 401 to it is reported to the page as a CORS failure. kfauth lets it
//! through as Envoy's `jwt_authn` does with `bypass_cors_preflight`, which
//! Istio sets for every RequestAuthentication:
//! - a preflight → reaches the upstream with its `Origin` and
//!   `Access-Control-Request-*` headers; spoofed identity headers (any case,
//!   `_` for `-`) are still removed;
//! - a preflight carrying a token, even a bad one → passes; the token is
//!   neither verified nor removed (Envoy's filter returns before looking);
//! - `OPTIONS` without `Origin` or without `Access-Control-Request-Method`,
//!   or a `GET` with both → 401 token_missing as before;
//! - `bypassCorsPreflight: false` → a preflight gets 401 token_missing;
//! - a preflight to a route an `authorization` rule guards → passes, and the
//!   API-server stand-in receives no SubjectAccessReview; the same `OPTIONS`
//!   without the preflight headers → 401 token_missing.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use authz_support::*;
use kfauth_testkit::apiserver::fixtures::USER_NAMESPACE;
use kfauth_testkit::plugin_config::with_rules;
use kfauth_testkit::{expect, scenarios, Gateway, HttpResponse};
use serde_json::{json, Value};

const ORIGIN: (&str, &str) = ("Origin", "https://notebooks.example.com");
const REQUEST_METHOD: (&str, &str) = ("Access-Control-Request-Method", "POST");

fn config(extra: Value) -> Value {
    let mut top = json!({"requireJwt": true});
    kfauth_testkit::plugin_config::merge(&mut top, extra);
    with_rules(vec![dex_rule()], top)
}

fn options(g: &Gateway, headers: &[(&str, &str)]) -> HttpResponse {
    g.request("OPTIONS", "/echo", headers, None)
}

fn a_preflight_reaches_the_upstream_without_a_spoofed_identity(g: &Gateway) {
    let seen = expect::allowed(&options(
        g,
        &[
            ORIGIN,
            REQUEST_METHOD,
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
            ("Kubeflow-Userid", "root@example.com"),
            ("kubeflow_groups", "admins"),
        ],
    ));
    assert_eq!(seen.method, "OPTIONS");
    assert_eq!(seen.header("origin"), Some(ORIGIN.1));
    assert_eq!(seen.header("access-control-request-method"), Some("POST"));
    assert_eq!(
        seen.header("access-control-request-headers"),
        Some("authorization,content-type")
    );
    assert_eq!(seen.header("kubeflow-userid"), None);
    assert_eq!(seen.header("kubeflow_groups"), None);
    assert_eq!(seen.header("kubeflow-groups"), None);
}

fn a_token_on_a_preflight_is_ignored(g: &Gateway) {
    let seen = expect::allowed(&options(
        g,
        &[
            ORIGIN,
            REQUEST_METHOD,
            ("authorization", "Bearer not-a-jwt"),
        ],
    ));
    assert_eq!(seen.header("authorization"), Some("Bearer not-a-jwt"));
    assert_eq!(seen.header("kubeflow-userid"), None);
}

fn not_a_preflight_needs_a_token(g: &Gateway) {
    expect::token_missing(&options(g, &[]));
    expect::token_missing(&options(g, &[ORIGIN]));
    expect::token_missing(&options(g, &[REQUEST_METHOD]));
    expect::token_missing(&options(g, &[("Origin", ""), REQUEST_METHOD]));
    expect::token_missing(&g.get("/echo", &[ORIGIN, REQUEST_METHOD]));
}

#[test]
fn preflights_bypass_authentication() {
    let gateway = Gateway::start(config(json!({})));
    scenarios!(
        &gateway,
        [
            a_preflight_reaches_the_upstream_without_a_spoofed_identity,
            a_token_on_a_preflight_is_ignored,
            not_a_preflight_needs_a_token,
        ]
    );
}

#[test]
fn the_bypass_can_be_turned_off() {
    let gateway = Gateway::start(config(json!({"bypassCorsPreflight": false})));
    expect::token_missing(&options(&gateway, &[ORIGIN, REQUEST_METHOD]));
    gateway.assert_no_vm_trap();
}

#[test]
fn a_preflight_to_a_guarded_route_is_not_reviewed() {
    let setup = Authz::start(
        config(json!({"authorization": authorization(vec![kserve_rule()], "2s", json!({}))})),
        1,
    );
    let preflight = Req::new(
        "OPTIONS",
        &kserve_host("iris", USER_NAMESPACE),
        &predict_path("iris"),
    )
    .header(ORIGIN.0, ORIGIN.1)
    .header(REQUEST_METHOD.0, REQUEST_METHOD.1)
    .header("kubeflow-userid", "root@example.com");
    let seen = expect::allowed(&setup.send(&preflight));
    assert_eq!(seen.method, "OPTIONS");
    assert_eq!(seen.path, predict_path("iris"));
    assert_eq!(seen.header("kubeflow-userid"), None);
    assert!(setup.api.sar_requests().is_empty(), "a review was sent");

    let plain = Req::new(
        "OPTIONS",
        &kserve_host("iris", USER_NAMESPACE),
        &predict_path("iris"),
    );
    expect::token_missing(&setup.send(&plain));
    // The rule does guard the route: a token gets it reviewed.
    let token = user_token("alice@example.com", &[]);
    setup.send(&plain.bearer(&token));
    assert_eq!(setup.api.sar_requests().len(), 1);
    setup.envoy.assert_no_vm_trap();
}
