//! A key endpoint that misbehaves, in an Envoy with several workers. In
//! every case no request passes without a good signature from a key the
//! endpoint served well, the answers are the documented ones, and the VM
//! never traps (the testkit's Envoy checks its log when it stops):
//! - before any good fetch, the endpoint is slow past `timeout`, resets the
//!   connection, answers 500, answers non-JSON, hangs up halfway through its
//!   body, or serves 20 MB of non-JSON: a valid token gets 503
//!   `jwks_unavailable` with `retry-after` (a forged one never passes); once
//!   the endpoint serves its keys, the same token passes;
//! - after a good fetch, with `jwksRefreshInterval: 1s`, the endpoint goes
//!   through every fault above and also serves a set of nothing but broken
//!   keys: valid tokens keep passing on the last good keys, forged ones get
//!   401, and `kfauth.jwks.fetch_failed` rises;
//! - a set of 3,000 keys: a token signed by the 3,000th key passes, one
//!   naming a listed kid but signed by another key gets 401
//!   `signature_invalid`, one with a kid not listed 401 `key_unknown`; a
//!   token with no kid is tried against the first 4 keys of its type only
//!   (`verify::MAX_SIGNATURE_CHECKS`): signed by the 3,000th key or forged, it
//!   gets 401 `signature_invalid` at once instead of costing seconds (the
//!   time it takes is printed);
//! - broken keys beside a good one (bad base64, a point not on the curve, an
//!   `oct` key, unknown `kty`, `use: enc`, non-objects): the good key works,
//!   tokens naming the broken ones get 401;
//! - a 20 MB set that is valid JSON (the good keys plus padding, `timeout:
//!   5s`): Envoy 1.40 delivers the whole body to the callout and kfauth uses
//!   the keys (there is no size limit): the valid token passes, forged ones
//!   get 401.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use jwt_simple::prelude::*;
use kfauth_testkit::idp::exact_claims;
use kfauth_testkit::plugin_config::{claims, kubeflow_rule, uri_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, forge, wait, Alg, Gateway, HttpResponse, Idp, JwksMode, JwksServer};
use serde_json::{json, Value};

const WORKERS: u32 = 2;
/// Bound on waits for something that should take about a second.
const PATIENCE: Duration = Duration::from_secs(10);
/// The key endpoint's "slow": well past the rules' `timeout` of 300 ms.
const STALL: Duration = Duration::from_millis(1500);
/// A huge body: far past any sane key set.
const HUGE: usize = 20 * 1024 * 1024;

fn token_for(issuer: &str, email: &str) -> String {
    let mut claims = claims(email, &["faults"]);
    claims["iss"] = json!(issuer);
    Idp::shared().sign(Alg::ES256, &claims)
}

/// Tokens that must never pass: a valid signature by another key under the
/// provider's kid, and `alg: none`.
fn forged_for(issuer: &str) -> Vec<String> {
    let mut claims = claims("mallory@example.com", &["admins"]);
    claims["iss"] = json!(issuer);
    vec![
        forge::impostor_es256(Idp::shared().kid(Alg::ES256), &claims),
        forge::alg_none(&claims),
    ]
}

fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    gateway.get_bearer_fresh("/echo", token)
}

/// The request reached the upstream as `email`.
fn passes_as(response: &HttpResponse, email: &str, what: &str) {
    assert_eq!(
        response.status, 200,
        "{what}: expected 200; got {} {:?}",
        response.status, response.body
    );
    assert_eq!(
        expect::allowed(response).header("kubeflow-userid"),
        Some(email),
        "{what}"
    );
}

/// Refused: 401 for a bad token, or 503 while no keys can be had; never a
/// pass, never any other status.
fn refused(response: &HttpResponse, what: &str) {
    assert!(
        matches!(response.status, 401 | 503),
        "{what}: a forged token got {} {:?}",
        response.status,
        response.body
    );
    let reason = response.json()["reason"].clone();
    assert!(
        (response.status == 503 && reason == "jwks_unavailable") || response.status == 401,
        "{what}: {} {reason}",
        response.status
    );
}

fn within_patience(check: impl FnMut() -> bool) -> Option<Duration> {
    wait::within(PATIENCE, check)
}

/// The ways a key endpoint fails, by name.
fn faults() -> Vec<(&'static str, JwksMode)> {
    let good = Idp::shared().jwks_json();
    vec![
        ("slow", JwksMode::Stall(STALL, good.clone())),
        ("reset", JwksMode::Reset),
        ("500", JwksMode::Fail),
        ("non-JSON", JwksMode::Garbage),
        ("truncated", JwksMode::Truncated(good)),
        ("20 MB of non-JSON", JwksMode::Serve("<".repeat(HUGE))),
    ]
}

#[test]
fn before_any_good_fetch_every_fault_is_503_and_recovery_follows() {
    let faults = faults();
    let servers: Vec<(String, &str, JwksServer)> = faults
        .into_iter()
        .enumerate()
        .map(|(i, (name, mode))| {
            (
                format!("https://fault-{i}.kfauth.test"),
                name,
                JwksServer::start_with("127.0.0.1:0", "/keys", mode),
            )
        })
        .collect();
    let rules: Vec<Value> = servers
        .iter()
        .map(|(issuer, _, server)| {
            let mut rule = uri_rule(issuer, &server.uri());
            rule["timeout"] = json!("300ms");
            rule
        })
        .collect();
    let ports: Vec<u16> = servers.iter().map(|(_, _, s)| s.port()).collect();
    let gateway = Gateway::start_with(with_rules(rules, json!({})), |mut s| {
        for port in ports {
            s = s.with_jwks_cluster(port);
        }
        s.with_concurrency(WORKERS)
    });

    for (issuer, name, _) in &servers {
        let email = format!("user@{name}.example.com").replace(' ', "-");
        for attempt in 0..3 {
            let response = send(&gateway, &token_for(issuer, &email));
            assert_eq!(
                response.status, 503,
                "{name}: attempt {attempt} with no keys yet: {} {:?}",
                response.status, response.body
            );
            expect::unavailable(&response, "jwks_unavailable");
        }
        for forged in forged_for(issuer) {
            refused(&send(&gateway, &forged), name);
        }
    }
    let failed = gateway.stats().counter("kfauth.jwks.fetch_failed");
    assert!(
        failed >= servers.len() as u64,
        "every fault counts a failed fetch: {failed}"
    );

    let good = Idp::shared().jwks_json();
    for (_, _, server) in &servers {
        server.set_mode(JwksMode::Serve(good.clone()));
    }
    for (issuer, name, _) in &servers {
        let email = format!("user@{name}.example.com").replace(' ', "-");
        let token = token_for(issuer, &email);
        let took = within_patience(|| send(&gateway, &token).status == 200)
            .unwrap_or_else(|| panic!("{name}: no recovery within {PATIENCE:?}"));
        println!("{name}: recovered {took:?} after the endpoint came back");
        passes_as(&send(&gateway, &token), &email, name);
        for forged in forged_for(issuer) {
            expect::rejected(&send(&gateway, &forged), "signature_invalid");
        }
    }
    gateway.assert_no_vm_trap();
}

#[test]
fn after_a_good_fetch_every_fault_keeps_the_last_good_keys() {
    let jwks = JwksServer::start(&Idp::shared().jwks_json());
    let mut rule = uri_rule(ISSUER, &jwks.uri());
    rule["timeout"] = json!("300ms");
    let config = with_rules(vec![rule], json!({"jwksRefreshInterval": "1s"}));
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| {
        s.with_jwks_cluster(port).with_concurrency(WORKERS)
    });
    let token = token_for(ISSUER, "alice@example.com");
    passes_as(&send(&gateway, &token), "alice@example.com", "first fetch");

    let mut faults = faults();
    faults.push((
        "only broken keys",
        JwksMode::Serve(json!({"keys": broken_keys()}).to_string()),
    ));
    faults.push(("no keys", JwksMode::Serve(r#"{"keys":[]}"#.into())));
    for (name, mode) in faults {
        let failed_before = gateway.stats().counter("kfauth.jwks.fetch_failed");
        let hits_before = jwks.hits();
        jwks.set_mode(mode);
        // Two refresh periods plus the fetch timeout and its first retry.
        let until = Instant::now() + Duration::from_millis(2600);
        let mut sent = 0;
        while Instant::now() < until {
            passes_as(&send(&gateway, &token), "alice@example.com", name);
            for forged in forged_for(ISSUER) {
                expect::rejected(&send(&gateway, &forged), "signature_invalid");
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        let failed = gateway.stats().counter("kfauth.jwks.fetch_failed") - failed_before;
        println!(
            "{name}: {sent} rounds passed on the last good keys; {} fetches, {failed} failed",
            jwks.hits() - hits_before
        );
        assert!(jwks.hits() > hits_before, "{name}: no refresh was tried");
        assert!(failed >= 1, "{name}: fetch_failed did not rise");
    }
    gateway.assert_no_vm_trap();
}

/// Keys kfauth must skip: each broken in one way.
fn broken_keys() -> Vec<Value> {
    let good_ec = Idp::shared().jwk(Alg::ES256);
    let good_rsa = Idp::shared().jwk(Alg::RS256);
    let mut enc = good_rsa.clone();
    enc["kid"] = json!("enc-key");
    enc["use"] = json!("enc");
    let mut off_curve = good_ec.clone();
    off_curve["kid"] = json!("off-curve");
    off_curve["y"] = good_ec["x"].clone();
    let mut bad_b64 = good_rsa.clone();
    bad_b64["kid"] = json!("bad-base64");
    bad_b64["n"] = json!("!!!not base64url!!!");
    let mut short_x = good_ec.clone();
    short_x["kid"] = json!("short-x");
    short_x["x"] = json!("AAAA");
    vec![
        enc,
        off_curve,
        bad_b64,
        short_x,
        json!({"kty": "oct", "kid": "oct-key", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}),
        json!({"kty": "OKP", "kid": "bad-okp", "crv": "Ed448", "x": "AAAA"}),
        json!({"kty": "EC", "kid": "p999", "crv": "P-999", "x": "AAAA", "y": "AAAA"}),
        json!({"kty": "NOPE", "kid": "no-such-kty"}),
        json!({"kid": "no-kty"}),
        json!({"kty": "RSA", "kid": "rsa-no-n", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": 42, "n": good_rsa["n"], "e": "AQAB"}),
        json!("a string"),
        json!(42),
        json!(null),
        json!([1, 2]),
    ]
}

#[test]
fn broken_keys_beside_a_good_one_are_skipped() {
    let mut keys = broken_keys();
    keys.push(Idp::shared().jwk(Alg::ES256));
    let jwks = JwksServer::start(&json!({"keys": keys}).to_string());
    let config = with_rules(vec![uri_rule(ISSUER, &jwks.uri())], json!({}));
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| {
        s.with_jwks_cluster(port).with_concurrency(WORKERS)
    });
    let token = token_for(ISSUER, "alice@example.com");
    passes_as(&send(&gateway, &token), "alice@example.com", "the good key");
    let claims = claims("mallory@example.com", &[]);
    for kid in [
        "enc-key",
        "off-curve",
        "bad-base64",
        "short-x",
        "bad-okp",
        "p999",
        "no-such-kty",
        "rsa-no-n",
    ] {
        let response = send(&gateway, &forge::impostor_es256(kid, &claims));
        assert_eq!(response.status, 401, "kid {kid}: {:?}", response.body);
        let reason = response.json()["reason"].clone();
        assert!(
            reason == "key_unknown" || reason == "signature_invalid",
            "kid {kid}: {reason}"
        );
    }
    // The RSA key listed for encryption only never verifies a signature.
    let rsa_as_enc = Idp::shared().sign_with_kid(Alg::RS256, "enc-key", &claims);
    let response = send(&gateway, &rsa_as_enc);
    assert_eq!(response.status, 401, "use: enc: {:?}", response.body);
    // An HMAC token naming the `oct` key, with its secret: never accepted.
    let hmac = forge::hs256(b"secret-secret-secret", "oct-key", &claims);
    expect::rejected(&send(&gateway, &hmac), "signature_invalid");
    assert!(
        jwks.hits() <= 2,
        "no refetch storm: {} fetches",
        jwks.hits()
    );
}

#[test]
fn three_thousand_keys() {
    const KEYS: usize = 3000;
    // 2,999 distinct keys that sign nothing here, then ours as the last.
    let ours = ES256KeyPair::generate().with_key_id("key-2999");
    let mut keys: Vec<Value> = (0..KEYS - 1)
        .map(|i| {
            let key = ES256KeyPair::generate();
            let mut jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
            jwk["kid"] = json!(format!("key-{i:04}"));
            jwk
        })
        .collect();
    let mut last: Value = serde_json::from_str(&ours.public_key().to_jwk()).unwrap();
    last["kid"] = json!("key-2999");
    keys.push(last);
    let document = json!({"keys": keys}).to_string();
    println!("3,000-key JWKS: {} bytes", document.len());
    let jwks = JwksServer::start(&document);
    let config = with_rules(
        vec![kubeflow_rule(ISSUER, json!({"jwksUri": jwks.uri()}))],
        json!({}),
    );
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| {
        s.with_jwks_cluster(port).with_concurrency(WORKERS)
    });
    let claims = claims("alice@example.com", &["a"]);
    // Exactly these claims: jwt-simple adds none when all are unset.
    let sign = |key: &ES256KeyPair| key.sign(exact_claims(&claims)).unwrap();
    let good = sign(&ours);
    passes_as(
        &send(&gateway, &good),
        "alice@example.com",
        "the 3,000th key",
    );
    let impostor = sign(&ES256KeyPair::generate().with_key_id("key-1234"));
    expect::rejected(&send(&gateway, &impostor), "signature_invalid");
    let unknown = sign(&ES256KeyPair::generate().with_key_id("key-9999"));
    expect::rejected(&send(&gateway, &unknown), "key_unknown");

    // No kid: the first 4 keys of the right type are tried, no more (before
    // the cap, every key was: about 5 s of a worker for either token).
    let no_kid = sign(&ES256KeyPair::from_bytes(&ours.to_bytes()).unwrap());
    assert!(forge::segment_json(&no_kid, 0).get("kid").is_none());
    let impostor_no_kid = sign(&ES256KeyPair::generate());
    for (name, token) in [
        ("signed by the 3,000th key", no_kid),
        ("forged", impostor_no_kid),
    ] {
        let started = Instant::now();
        let response = send(&gateway, &token);
        let took = started.elapsed();
        println!(
            "a token without kid, {name}, against 3,000 keys: {} in {took:?}",
            response.status
        );
        expect::rejected(&response, "signature_invalid");
        assert!(took < Duration::from_secs(2), "{name}: {took:?}");
    }
    assert!(
        jwks.hits() <= 2,
        "no refetch storm: {} fetches",
        jwks.hits()
    );
}

#[test]
fn a_twenty_megabyte_key_set_that_is_valid_json() {
    let mut document = Idp::shared().jwks();
    document["padding"] = json!("x".repeat(HUGE));
    let jwks = JwksServer::start(&document.to_string());
    let mut rule = uri_rule(ISSUER, &jwks.uri());
    rule["timeout"] = json!("5s");
    let config = with_rules(vec![rule], json!({}));
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| {
        s.with_jwks_cluster(port).with_concurrency(WORKERS)
    });
    let token = token_for(ISSUER, "alice@example.com");
    let response = send(&gateway, &token);
    println!(
        "a 20 MB valid JWKS: {} {:?} after {} fetch(es); fetch_failed {}",
        response.status,
        response.body.get(..200).unwrap_or(&response.body),
        jwks.hits(),
        gateway.stats().counter("kfauth.jwks.fetch_failed")
    );
    passes_as(&response, "alice@example.com", "20 MB set");
    for forged in forged_for(ISSUER) {
        expect::rejected(&send(&gateway, &forged), "signature_invalid");
    }
    gateway.assert_no_vm_trap();
}
