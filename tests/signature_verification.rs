//! `signatureVerification`: who checks RS* and ES256/ES384 signatures.
//! - `auto` (the default) in Envoy 1.40: Envoy's `verify_signature` passes
//!   the known-answer check, the gauge `kfauth.signatures.host` is 1, one log
//!   line says so, and good tokens pass while tampered ones get 401, with
//!   inline and with fetched keys;
//! - `auto` whose known-answer check fails (forced with the test-only
//!   `testOnlyBreakSignatureCheck`, as an Envoy without the function would
//!   fail it): one warning, the gauge at 0, and kfauth's own code decides the
//!   same way;
//! - `host` whose check fails: the configuration is refused, naming the field;
//! - `wasm`: the gauge at 0 without asking the host.
//!
//! Every other signature suite runs with the default and, in `make e2e`,
//! again with `KFAUTH_SIGNATURE_VERIFICATION=wasm`.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::forge::replace_payload;
use kfauth_testkit::plugin_config::{claims, inline_rule, uri_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, Alg, Gateway, Idp, JwksServer};
use serde_json::{json, Value};

const GAUGE: &str = "kfauth.signatures.host";

/// Good RS256 and ES256 tokens pass; the same tokens with another payload do not.
fn decides_signatures(gateway: &Gateway) {
    let idp = Idp::shared();
    for alg in [Alg::RS256, Alg::ES256] {
        let good = idp.sign(alg, &claims("alice@example.com", &["a"]));
        expect::allowed(&gateway.get_bearer_fresh("/echo", &good));
        let tampered = replace_payload(&good, &claims("mallory@example.com", &["admin"]));
        expect::rejected(
            &gateway.get_bearer_fresh("/echo", &tampered),
            "signature_invalid",
        );
    }
}

fn signature_lines(gateway: &Gateway) -> Vec<String> {
    gateway
        .wasm_logs()
        .into_iter()
        .filter(|line| line.contains("signatures: "))
        .collect()
}

fn inline(extra: Value) -> Value {
    with_rules(vec![inline_rule(ISSUER, Idp::shared())], extra)
}

#[test]
fn auto_lets_envoy_verify_inline_and_fetched_keys() {
    let jwks = JwksServer::start(&Idp::shared().jwks_json());
    let port = jwks.port();
    for config in [
        inline(json!({"signatureVerification": "auto"})),
        with_rules(
            vec![uri_rule(ISSUER, &jwks.uri())],
            json!({"signatureVerification": "auto"}),
        ),
    ] {
        let gateway = Gateway::start_with(config, |settings| settings.with_jwks_cluster(port));
        decides_signatures(&gateway);
        assert_eq!(gateway.stats().get(GAUGE), Some(1));
        let lines = signature_lines(&gateway);
        assert!(
            !lines.is_empty()
                && lines
                    .iter()
                    .all(|line| line.contains("verified by Envoy's verify_signature")),
            "{lines:?}"
        );
    }
}

#[test]
fn auto_falls_back_to_wasm_when_the_known_answer_check_fails() {
    let gateway = Gateway::start(inline(json!({
        "signatureVerification": "auto",
        "testOnlyBreakSignatureCheck": true
    })));
    decides_signatures(&gateway);
    assert_eq!(gateway.stats().get(GAUGE), Some(0));
    let lines = signature_lines(&gateway);
    assert!(
        !lines.is_empty()
            && lines.iter().all(|line| line.contains(
                "verified in Wasm, Envoy's verify_signature failed its known-answer check (a good RS256 signature was refused)"
            ) && line.contains("warn")),
        "{lines:?}"
    );
}

#[test]
fn host_with_a_failing_check_is_refused_at_load() {
    let log = Gateway::start_expect_rejected(inline(json!({
        "signatureVerification": "host",
        "testOnlyBreakSignatureCheck": true
    })));
    assert!(
        log.contains("invalid pluginConfig at `signatureVerification`: `host`, but Envoy's verify_signature failed its known-answer check"),
        "{log}"
    );
}

#[test]
fn wasm_keeps_signatures_in_kfauth() {
    let gateway = Gateway::start(inline(json!({"signatureVerification": "wasm"})));
    decides_signatures(&gateway);
    assert_eq!(gateway.stats().get(GAUGE), Some(0));
    let lines = signature_lines(&gateway);
    assert!(
        !lines.is_empty()
            && lines
                .iter()
                .all(|line| line.contains("verified in Wasm (signatureVerification: wasm)")),
        "{lines:?}"
    );
}

/// RS384 (3072 bits), RS512 (4096 bits), ES384 and Ed25519 keys, and an
/// honest token of each, which the other suites do not sign with (EdDSA stays
/// in Wasm in every mode).
fn more_algorithms() -> (Value, Vec<String>) {
    use base64::Engine;
    use jwt_simple::prelude::*;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let claims = || {
        Claims::with_custom_claims(
            json!({"email": "alice@example.com", "groups": ["a"]}),
            Duration::from_mins(5),
        )
        .with_issuer(ISSUER)
        .with_audience("kubeflow")
    };
    let rs384 = RS384KeyPair::generate(3072).unwrap().with_key_id("rs384");
    let rs512 = RS512KeyPair::generate(4096).unwrap().with_key_id("rs512");
    let es384 = ES384KeyPair::generate().with_key_id("es384");
    let ed25519 = Ed25519KeyPair::generate().with_key_id("ed25519");
    let rsa = |kid: &str, components: RSAPublicKeyComponents| json!({"kty": "RSA", "kid": kid, "n": b64(&components.n), "e": b64(&components.e)});
    let point = es384.public_key().public_key().to_bytes_uncompressed();
    let keys = json!({"keys": [
        rsa("rs384", rs384.public_key().to_components()),
        rsa("rs512", rs512.public_key().to_components()),
        {"kty": "EC", "crv": "P-384", "kid": "es384", "x": b64(&point[1..49]), "y": b64(&point[49..])},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed25519", "x": b64(&ed25519.public_key().to_bytes())},
    ]});
    let tokens = vec![
        rs384.sign(claims()).unwrap(),
        rs512.sign(claims()).unwrap(),
        es384.sign(claims()).unwrap(),
        ed25519.sign(claims()).unwrap(),
    ];
    (keys, tokens)
}

#[test]
fn rs384_rs512_es384_and_eddsa_are_decided_alike_by_envoy_and_by_kfauth() {
    let (keys, tokens) = more_algorithms();
    let rule =
        kfauth_testkit::plugin_config::kubeflow_rule(ISSUER, json!({"jwks": keys.to_string()}));
    for mode in ["host", "wasm"] {
        let gateway = Gateway::start(with_rules(
            vec![rule.clone()],
            json!({"signatureVerification": mode}),
        ));
        for token in &tokens {
            expect::allowed(&gateway.get_bearer_fresh("/echo", token));
            let tampered = replace_payload(token, &claims("mallory@example.com", &["admin"]));
            expect::rejected(
                &gateway.get_bearer_fresh("/echo", &tampered),
                "signature_invalid",
            );
        }
    }
}
