//! Every bad token gets 401 with `error="invalid_token"` and its reason word,
//! and no token ever shows up in a response or in Envoy's log:
//! - expired → token_expired; expired within the clock skew (60 s) → passes;
//! - `nbf` in the future → token_not_yet_valid; within the skew → passes;
//! - no `exp` → token_malformed;
//! - an issuer no rule names → issuer_unknown;
//! - another audience → audience_mismatch;
//! - altered payload, or signed by another key under the same kid → signature_invalid;
//! - a kid not in the JWKS → key_unknown;
//! - `alg: none` → signature_invalid;
//! - HS256 keyed with the RSA public key (PEM, or the modulus) → signature_invalid;
//! - truncated (`header.payload`, or cut inside the payload) → token_malformed;
//! - not base64url → token_malformed;
//! - larger than 64 KiB → token_malformed;
//! - `clockSkew` is configurable;
//! - the denial's log line names the cause within the reason word
//!   (`token_malformed: payload not a JSON object`); the response does not.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kfauth_testkit::forge::{self, b64url};
use kfauth_testkit::idp::{now, EC_KID, RSA_KID};
use kfauth_testkit::plugin_config::{claims, inline_rule, merge, with_rules, ISSUER};
use kfauth_testkit::{expect, scenarios, Alg, Gateway, Idp};
use serde_json::{json, Value};

struct Ctx {
    gateway: Gateway,
    sent: Mutex<Vec<String>>,
}

impl Ctx {
    fn send(&self, token: &str) -> kfauth_testkit::HttpResponse {
        self.sent.lock().unwrap().push(token.to_string());
        self.gateway
            .get("/echo", &[("authorization", &format!("Bearer {token}"))])
    }

    fn rejects(&self, token: &str, reason: &str) {
        let response = self.send(token);
        expect::rejected(&response, reason);
        expect::no_leak(token, &[&response.body, &format!("{:?}", response.headers)]);
    }

    fn accepts(&self, token: &str) {
        expect::allowed(&self.send(token));
    }
}

fn valid() -> Value {
    claims("alice@example.com", &["a"])
}

fn with(extra: Value) -> Value {
    let mut c = valid();
    merge(&mut c, extra);
    c
}

fn sign(c: &Value) -> String {
    Idp::shared().sign(Alg::RS256, c)
}

fn a_valid_token_passes(ctx: &Ctx) {
    ctx.accepts(&sign(&valid()));
}

fn expired_token(ctx: &Ctx) {
    let now = now();
    let c = with(json!({"iat": now - 7200, "exp": now - 3600}));
    ctx.rejects(&sign(&c), "token_expired");
    ctx.rejects(&Idp::shared().sign(Alg::ES256, &c), "token_expired");
}

fn expired_within_the_clock_skew_passes(ctx: &Ctx) {
    let now = now();
    ctx.accepts(&sign(&with(json!({"iat": now - 600, "exp": now - 20}))));
}

fn not_yet_valid_token(ctx: &Ctx) {
    ctx.rejects(
        &sign(&with(json!({"nbf": now() + 3600}))),
        "token_not_yet_valid",
    );
}

fn not_before_within_the_clock_skew_passes(ctx: &Ctx) {
    ctx.accepts(&sign(&with(json!({"nbf": now() + 20}))));
}

fn token_without_exp(ctx: &Ctx) {
    let mut c = valid();
    c.as_object_mut().unwrap().remove("exp");
    ctx.rejects(&sign(&c), "token_malformed");
}

fn unknown_issuer(ctx: &Ctx) {
    ctx.rejects(
        &sign(&with(json!({"iss": "https://evil.example"}))),
        "issuer_unknown",
    );
}

fn wrong_audience(ctx: &Ctx) {
    ctx.rejects(
        &sign(&with(json!({"aud": "someone-else"}))),
        "audience_mismatch",
    );
    ctx.rejects(
        &sign(&with(json!({"aud": ["someone-else", "another"]}))),
        "audience_mismatch",
    );
}

fn one_matching_audience_in_a_list_passes(ctx: &Ctx) {
    ctx.accepts(&sign(&with(json!({"aud": ["someone-else", "kubeflow"]}))));
}

fn altered_payload(ctx: &Ctx) {
    let token = sign(&valid());
    let forged = forge::replace_payload(&token, &with(json!({"email": "admin@example.com"})));
    ctx.rejects(&forged, "signature_invalid");
}

fn signed_by_another_key_with_the_same_kid(ctx: &Ctx) {
    let token = forge::impostor_es256(EC_KID, &valid());
    ctx.rejects(&token, "signature_invalid");
}

fn unknown_kid(ctx: &Ctx) {
    let token = Idp::shared().sign_with_kid(Alg::RS256, "rotated-away", &valid());
    ctx.rejects(&token, "key_unknown");
}

fn alg_none(ctx: &Ctx) {
    ctx.rejects(&forge::alg_none(&valid()), "signature_invalid");
    let with_kid = forge::assemble(
        &json!({"alg": "none", "typ": "JWT", "kid": RSA_KID}),
        &valid(),
        b"",
    );
    ctx.rejects(&with_kid, "signature_invalid");
}

fn hs256_keyed_with_the_rsa_public_key(ctx: &Ctx) {
    let idp = Idp::shared();
    let pem = idp.rsa_public_pem();
    ctx.rejects(
        &forge::hs256(pem.as_bytes(), RSA_KID, &valid()),
        "signature_invalid",
    );
    let n = forge::b64url_decode(idp.jwk(Alg::RS256)["n"].as_str().unwrap()).unwrap();
    ctx.rejects(&forge::hs256(&n, RSA_KID, &valid()), "signature_invalid");
}

fn truncated_tokens(ctx: &Ctx) {
    let token = sign(&valid());
    ctx.rejects(&forge::without_signature_part(&token), "token_malformed");
    ctx.rejects(&forge::cut_in_payload(&token), "token_malformed");
    let header = token.split('.').next().unwrap();
    ctx.rejects(header, "token_malformed");
}

fn not_base64url(ctx: &Ctx) {
    ctx.rejects("not!a.valid$.token*", "token_malformed");
    let token = sign(&valid());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = b64url(b"this is not JSON");
    ctx.rejects(&parts.join("."), "token_malformed");
}

fn larger_than_64_kib(ctx: &Ctx) {
    let token = sign(&with(json!({"padding": "x".repeat(70 * 1024)})));
    assert!(token.len() > 64 * 1024);
    ctx.rejects(&token, "token_malformed");
}

fn no_token_appears_in_envoy_log(ctx: &Ctx) {
    let logs = ctx.gateway.logs();
    for token in ctx.sent.lock().unwrap().iter() {
        expect::no_leak(token, &[&logs]);
    }
}

#[test]
fn bad_tokens_are_rejected_with_their_reason() {
    let ctx = Ctx {
        gateway: Gateway::start(with_rules(
            vec![inline_rule(ISSUER, Idp::shared())],
            json!({}),
        )),
        sent: Mutex::new(Vec::new()),
    };
    scenarios!(
        &ctx,
        [
            a_valid_token_passes,
            expired_token,
            expired_within_the_clock_skew_passes,
            not_yet_valid_token,
            not_before_within_the_clock_skew_passes,
            token_without_exp,
            unknown_issuer,
            wrong_audience,
            one_matching_audience_in_a_list_passes,
            altered_payload,
            signed_by_another_key_with_the_same_kid,
            unknown_kid,
            alg_none,
            hs256_keyed_with_the_rsa_public_key,
            truncated_tokens,
            not_base64url,
            larger_than_64_kib,
            no_token_appears_in_envoy_log,
        ]
    );
}

#[test]
fn clock_skew_is_configurable() {
    let gateway = Gateway::start(with_rules(
        vec![inline_rule(ISSUER, Idp::shared())],
        json!({"clockSkew": "5s"}),
    ));
    let now = now();
    let expired_20s_ago = sign(&with(json!({"iat": now - 600, "exp": now - 20})));
    let response = gateway.get(
        "/echo",
        &[("authorization", &format!("Bearer {expired_20s_ago}"))],
    );
    expect::rejected(&response, "token_expired");
    let fresh = sign(&valid());
    expect::allowed(&gateway.get("/echo", &[("authorization", &format!("Bearer {fresh}"))]));
}

#[test]
fn the_denial_log_line_names_the_cause() {
    let gateway = Gateway::start(with_rules(
        vec![inline_rule(ISSUER, Idp::shared())],
        json!({}),
    ));
    let token = sign(&valid());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = b64url(b"this is not JSON");
    let mut no_exp = valid();
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases = [
        (
            "/payload",
            parts.join("."),
            "token_malformed",
            "payload not a JSON object",
        ),
        ("/no-exp", sign(&no_exp), "token_malformed", "no exp"),
        (
            "/truncated",
            forge::without_signature_part(&token),
            "token_malformed",
            "not three dot-separated segments",
        ),
        (
            "/kid",
            Idp::shared().sign_with_kid(Alg::RS256, "rotated-away", &valid()),
            "key_unknown",
            "no key has its kid",
        ),
    ];
    for (path, token, reason, cause) in &cases {
        let response = gateway.get(path, &[("authorization", &format!("Bearer {token}"))]);
        expect::rejected(&response, reason);
        assert!(!response.body.contains(cause), "{}", response.body);
    }
    // Envoy flushes its log file every 100 ms (the testkit's setting).
    let expected: Vec<String> = cases
        .iter()
        .map(|(path, _, reason, cause)| format!("denied 401 GET {path}: {reason}: {cause}"))
        .collect();
    let missing = || -> Vec<String> {
        let lines = gateway.wasm_logs();
        expected
            .iter()
            .filter(|line| !lines.iter().any(|logged| logged.contains(line.as_str())))
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !missing().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        missing().is_empty(),
        "no log line {:#?}\nkfauth log lines: {:#?}",
        missing(),
        gateway.wasm_logs()
    );
}
