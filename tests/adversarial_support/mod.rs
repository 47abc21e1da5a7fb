//! Shared setup of the adversarial suites: one Envoy per suite whose rule
//! trusts a JWKS of five keys — the shared identity provider's RSA (`alg:
//! RS256`) and P-256 keys, a symmetric `oct` key (which kfauth must never
//! use), the forge signer's RSA key (no `alg`: every RS*/PS* algorithm) and
//! P-256 key — and a client that asserts status and reason.

#![allow(dead_code)]

use kfauth_testkit::forge::Signer;
use kfauth_testkit::plugin_config::{claims, kubeflow_rule, merge, with_rules, ISSUER};
use kfauth_testkit::{expect, Echoed, Gateway, HttpResponse, Idp};
use serde_json::{json, Value};

/// `kid` of the `oct` key in the JWKS.
pub const OCT_KID: &str = "hmac-1";
/// Its secret (base64url `k`), public knowledge to anyone who reads the JWKS.
pub const OCT_SECRET: &[u8] = b"the-jwks-is-public-so-is-this";

/// The JWKS every adversarial suite trusts.
pub fn jwks() -> Value {
    let signer = Signer::shared();
    let idp = Idp::shared();
    let idp_keys = idp.jwks()["keys"].as_array().cloned().unwrap();
    // The provider's keys first: a token without `kid` signed by the signer
    // is only verified after the provider's keys were tried.
    let mut keys = idp_keys;
    keys.extend([
        json!({"kty": "oct", "kid": OCT_KID, "k": kfauth_testkit::forge::b64url(OCT_SECRET)}),
        signer.rsa_jwk(),
        signer.ec_jwk(),
    ]);
    json!({ "keys": keys })
}

/// The rule: the test issuer and audience, `email`/`groups` to
/// `kubeflow-userid`/`kubeflow-groups`, the JWKS inline; `extra` merged in.
pub fn rule(extra: Value) -> Value {
    let mut rule = kubeflow_rule(ISSUER, json!({"jwks": jwks().to_string()}));
    merge(&mut rule, extra);
    rule
}

/// Starts Envoy with [`rule`]`(rule_extra)` and top-level `extra`.
pub fn start(rule_extra: Value, extra: Value) -> Gateway {
    Gateway::start(with_rules(vec![rule(rule_extra)], extra))
}

/// Valid claims for the rule (email alice@example.com, group team-a).
pub fn valid() -> Value {
    claims("alice@example.com", &["team-a"])
}

/// [`valid`] with `extra` merged in.
pub fn with(extra: Value) -> Value {
    let mut c = valid();
    merge(&mut c, extra);
    c
}

/// [`valid`] without `name`.
pub fn without(name: &str) -> Value {
    let mut c = valid();
    c.as_object_mut().unwrap().remove(name);
    c
}

/// Sends `token` as `Authorization: Bearer`.
pub fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    gateway.get("/echo", &[("authorization", &format!("Bearer {token}"))])
}

/// 401 with `reason` (and the RFC 6750 challenge), never a 5xx.
pub fn rejects(gateway: &Gateway, token: &str, reason: &str) {
    let response = send(gateway, token);
    expect::rejected(&response, reason);
    expect::no_leak(token, &[&response.body]);
}

/// The request reached the upstream with the verified identity.
pub fn accepts(gateway: &Gateway, token: &str) -> Echoed {
    let seen = expect::allowed(&send(gateway, token));
    assert_eq!(seen.header("authorization"), None, "the token was removed");
    seen
}

/// [`accepts`] and the upstream saw `email` as `kubeflow-userid`.
pub fn accepts_as(gateway: &Gateway, token: &str, email: &str) {
    let seen = accepts(gateway, token);
    assert_eq!(seen.header_values("kubeflow-userid"), vec![email]);
}
