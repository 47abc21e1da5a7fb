//! Where tokens come from, and whether they travel on:
//! - `fromHeaders` with a prefix (`Authorization: Bearer`) and without one
//!   (`x-id-token`);
//! - `fromParams`: a query parameter, removed from the upstream path (other
//!   parameters kept) unless forwarded;
//! - `fromCookies`: a cookie, removed from the `cookie` header (other cookies
//!   kept) unless forwarded;
//! - forwardOriginalToken: false → the upstream sees none of it; true → it
//!   sees the request as sent;
//! - a bad token from any source is rejected.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::plugin_config::{claims, inline_rule, merge, with_rules, ISSUER};
use kfauth_testkit::{expect, scenarios, Alg, Echoed, Gateway, Idp};
use serde_json::{json, Value};

fn config(forward: bool) -> Value {
    let mut rule = inline_rule(ISSUER, Idp::shared());
    merge(
        &mut rule,
        json!({
            "fromHeaders": [
                {"name": "Authorization", "prefix": "Bearer "},
                {"name": "x-id-token"},
            ],
            "fromParams": ["access_token"],
            "fromCookies": ["kf_token"],
            "forwardOriginalToken": forward,
        }),
    );
    with_rules(vec![rule], json!({"requireJwt": true}))
}

fn token() -> String {
    Idp::shared().sign(Alg::RS256, &claims("alice@example.com", &["a"]))
}

fn allowed_as_alice(response: &kfauth_testkit::HttpResponse) -> Echoed {
    let seen = expect::allowed(response);
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    seen
}

fn cookies(seen: &Echoed) -> Vec<String> {
    seen.header_values("cookie")
        .iter()
        .flat_map(|line| line.split(';'))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn query(seen: &Echoed) -> Vec<String> {
    seen.path
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

// --- forwardOriginalToken: false ---

fn bearer_header_is_removed(gateway: &Gateway) {
    let t = token();
    let seen =
        allowed_as_alice(&gateway.get("/echo", &[("authorization", &format!("Bearer {t}"))]));
    assert_eq!(seen.header("authorization"), None);
}

fn header_without_prefix_is_removed(gateway: &Gateway) {
    let t = token();
    let seen = allowed_as_alice(&gateway.get("/echo", &[("x-id-token", &t)]));
    assert_eq!(seen.header("x-id-token"), None);
}

fn query_parameter_is_removed_and_others_kept(gateway: &Gateway) {
    let t = token();
    let seen = allowed_as_alice(&gateway.get(&format!("/echo?x=1&access_token={t}&y=2"), &[]));
    assert!(seen.path.starts_with("/echo?"), "path {}", seen.path);
    assert_eq!(query(&seen), vec!["x=1", "y=2"]);
    let only = allowed_as_alice(&gateway.get(&format!("/echo?access_token={t}"), &[]));
    assert!(!only.path.contains(&t), "token left in {}", only.path);
    assert!(only.path.starts_with("/echo"), "path {}", only.path);
    assert!(query(&only).is_empty(), "path {}", only.path);
}

fn cookie_is_removed_and_others_kept(gateway: &Gateway) {
    let t = token();
    let seen =
        allowed_as_alice(&gateway.get("/echo", &[("cookie", &format!("a=1; kf_token={t}; b=2"))]));
    assert_eq!(cookies(&seen), vec!["a=1", "b=2"]);
    let only = allowed_as_alice(&gateway.get("/echo", &[("cookie", &format!("kf_token={t}"))]));
    assert!(cookies(&only).is_empty(), "cookies {:?}", cookies(&only));
}

fn bad_tokens_are_rejected_from_every_source(gateway: &Gateway) {
    let expired = {
        let mut c = claims("alice@example.com", &[]);
        c["exp"] = json!(kfauth_testkit::idp::now() - 3600);
        Idp::shared().sign(Alg::RS256, &c)
    };
    expect::rejected(
        &gateway.get(&format!("/echo?access_token={expired}"), &[]),
        "token_expired",
    );
    expect::rejected(
        &gateway.get("/echo", &[("cookie", &format!("a=1; kf_token={expired}"))]),
        "token_expired",
    );
    expect::rejected(
        &gateway.get("/echo", &[("x-id-token", &expired)]),
        "token_expired",
    );
}

#[test]
fn tokens_are_found_and_removed() {
    let gateway = Gateway::start(config(false));
    scenarios!(
        &gateway,
        [
            bearer_header_is_removed,
            header_without_prefix_is_removed,
            query_parameter_is_removed_and_others_kept,
            cookie_is_removed_and_others_kept,
            bad_tokens_are_rejected_from_every_source,
        ]
    );
}

// --- forwardOriginalToken: true ---

fn bearer_header_is_forwarded(gateway: &Gateway) {
    let t = token();
    let bearer = format!("Bearer {t}");
    let seen = allowed_as_alice(&gateway.get("/echo", &[("authorization", &bearer)]));
    assert_eq!(seen.header("authorization"), Some(bearer.as_str()));
}

fn query_parameter_is_forwarded(gateway: &Gateway) {
    let t = token();
    let path = format!("/echo?x=1&access_token={t}");
    let seen = allowed_as_alice(&gateway.get(&path, &[]));
    assert_eq!(seen.path, path);
}

fn cookie_is_forwarded(gateway: &Gateway) {
    let t = token();
    let seen =
        allowed_as_alice(&gateway.get("/echo", &[("cookie", &format!("a=1; kf_token={t}; b=2"))]));
    assert_eq!(
        cookies(&seen),
        vec![
            "a=1".to_string(),
            format!("kf_token={t}"),
            "b=2".to_string()
        ]
    );
}

#[test]
fn tokens_are_forwarded_when_asked() {
    let gateway = Gateway::start(config(true));
    scenarios!(
        &gateway,
        [
            bearer_header_is_forwarded,
            query_parameter_is_forwarded,
            cookie_is_forwarded
        ]
    );
}
