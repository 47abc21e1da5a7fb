//! Key sets Envoy's jwt_authn accepts, from its JWT library's own tests
//! (google/jwt_verify_lib, commit b59e807; its keys, in src/peer_vectors/keys.rs,
//! are the ones printed in those files, private halves included): kfauth accepts them
//! too. One Envoy, one rule per key set (each its own issuer):
//! - keys without `kid` (`verify_jwk_ec_test.cc` VerifyJwkECTest.PubkeyNoKidOK,
//!   `verify_jwk_rsa_test.cc` VerifyJwkRsaTest.OkPublicKeyNotKid): a token whose
//!   `kid` names no key is checked against them and passes, so does one
//!   without `kid`; a forged one gets 401 `key_unknown`
//!   (VerifyJwkECTest.NonExistKidFail: a `kid` nothing carries, all keys
//!   named);
//! - a key carrying the token's `kid` is the only one tried: signed by a
//!   kid-less key of the same set instead → 401 `signature_invalid` (here
//!   kfauth is stricter than the peer, which tries both);
//! - an EC key without `crv` (`jwks_test.cc` JwksParseTest.JwkECMissingCrv):
//!   the curve of its `alg`, P-256 and P-521 alike; without `alg` either
//!   (JwksParseTest.JwksECMissingBothAlgCrvES256): P-256;
//! - ES512 on P-521 (VerifyJwkECTest.KidES512OK, JwksParseTest.GoodEC), with
//!   the peer's own JWK, whose `y` is 65 bytes (its leading zero left out; RFC
//!   7518 asks for 66): passes, with and without `kid`; an altered signature,
//!   or the ES512 signature under an ES384 header → 401 `signature_invalid`;
//! - at most 4 signature checks per token: four kid-less P-256 keys that did
//!   not sign, then the one that did → 401 (`signature_invalid` without
//!   `kid`, `key_unknown` with one nothing carries); three decoys → passes;
//! - fetched keys without `kid`: a token whose `kid` is unknown but which a
//!   kid-less key verifies passes without a refetch; a forged one waits for
//!   one refetch and gets 401 `key_unknown`.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use base64::Engine;
use jwt_simple::prelude::*;
use kfauth_testkit::forge::{self, Signer};
use kfauth_testkit::idp::exact_claims;
use kfauth_testkit::plugin_config::{kubeflow_rule, with_rules, AUDIENCE};
use kfauth_testkit::{expect, scenarios, standard_claims, Gateway, HttpResponse, JwksServer};
use serde_json::{json, Value};

// The peer's keys (verify_jwk_ec_test.cc), shared with the unit tests.
#[path = "../src/peer_vectors/keys.rs"]
mod peer_keys;
use peer_keys::*;

const NO_KID: &str = "https://no-kid.peer.test";
const NO_CRV: &str = "https://no-crv.peer.test";
const ES512: &str = "https://es512.peer.test";
const CAP_HIT: &str = "https://four-decoys.peer.test";
const CAP_MISS: &str = "https://three-decoys.peer.test";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `PublicKeyJwkEC` of `verify_jwk_ec_test.cc`.
fn public_key_jwk_ec() -> Vec<Value> {
    vec![
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "abc", "x": P256_X, "y": P256_Y}),
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "xyz", "x": P256_X, "y": P256_Y}),
        json!({"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "es384", "x": P384_X, "y": P384_Y}),
        json!({"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "es512", "x": P521_X, "y": P521_Y}),
    ]
}

fn without(mut keys: Vec<Value>, member: &str) -> Vec<Value> {
    for key in &mut keys {
        key.as_object_mut().unwrap().remove(member);
    }
    keys
}

fn claims_for(issuer: &str) -> Value {
    standard_claims(issuer, AUDIENCE, "alice@example.com", &["team-a"])
}

/// ES256 with the peer's P-256 key.
fn es256(kid: Option<&str>, issuer: &str) -> String {
    let key = ES256KeyPair::from_bytes(&hex(P256_D)).unwrap();
    let key = match kid {
        Some(kid) => key.with_key_id(kid),
        None => key,
    };
    key.sign(exact_claims(&claims_for(issuer))).unwrap()
}

/// ES512 with the peer's P-521 key, under `header` as given.
fn es512(header: Value, issuer: &str) -> String {
    use p521::ecdsa::{signature::Signer as _, Signature, SigningKey};
    let key = SigningKey::from_slice(&hex(P521_D)).unwrap();
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims_for(issuer).to_string().as_bytes())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

/// A P-256 JWK, without `kid`, of a key that signs nothing here.
fn decoy() -> Value {
    let mut jwk: Value =
        serde_json::from_str(&ES256KeyPair::generate().public_key().to_jwk()).unwrap();
    jwk.as_object_mut().unwrap().remove("kid");
    jwk
}

fn rule(issuer: &str, keys: Vec<Value>) -> Value {
    kubeflow_rule(issuer, json!({"jwks": json!({ "keys": keys }).to_string()}))
}

fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    gateway.get("/echo", &[("authorization", &format!("Bearer {token}"))])
}

fn passes(gateway: &Gateway, token: &str) {
    let seen = expect::allowed(&send(gateway, token));
    assert_eq!(
        seen.header_values("kubeflow-userid"),
        vec!["alice@example.com"]
    );
}

fn rejects(gateway: &Gateway, token: &str, reason: &str) {
    expect::rejected(&send(gateway, token), reason);
}

/// The forge signer's RSA key (no `alg`: every RS*/PS* algorithm), kid removed.
fn kid_less_rsa() -> Value {
    let mut jwk = Signer::shared().rsa_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    jwk
}

fn rsa(header: Value, issuer: &str) -> String {
    Signer::shared().sign(&header, &claims_for(issuer))
}

// ---- scenarios ----

fn pubkey_no_kid_ok(g: &Gateway) {
    // VerifyJwkECTest.PubkeyNoKidOK: the token names "abc", the keys have no kid.
    passes(g, &es256(Some("abc"), NO_KID));
    passes(g, &es256(None, NO_KID));
    passes(g, &es512(json!({"alg": "ES512", "kid": "es512"}), NO_KID));
    // VerifyJwkRsaTest.OkPublicKeyNotKid.
    for alg in ["RS256", "PS384"] {
        passes(g, &rsa(json!({"alg": alg, "kid": "any"}), NO_KID));
        passes(g, &rsa(json!({"alg": alg}), NO_KID));
    }
}

fn a_forged_token_against_kid_less_keys_is_an_unknown_key(g: &Gateway) {
    let attacker = Signer::generate();
    rejects(
        g,
        &attacker.sign(&json!({"alg": "ES256", "kid": "abc"}), &claims_for(NO_KID)),
        "key_unknown",
    );
    rejects(
        g,
        &attacker.sign(&json!({"alg": "RS256"}), &claims_for(NO_KID)),
        "signature_invalid",
    );
}

fn non_exist_kid_fail(g: &Gateway) {
    // VerifyJwkECTest.NonExistKidFail: every key named, none "abcdef".
    rejects(g, &es256(Some("abcdef"), ES512), "key_unknown");
}

fn a_named_key_is_the_only_one_tried(g: &Gateway) {
    // In NO_CRV, "named" is a decoy; the key that signed is there without kid.
    rejects(g, &es256(Some("named"), NO_CRV), "signature_invalid");
    passes(g, &es256(Some("other"), NO_CRV));
}

fn jwk_ec_missing_crv(g: &Gateway) {
    // JwksParseTest.JwkECMissingCrv: `alg: ES512`, no crv; and ES256 the same.
    passes(
        g,
        &es512(json!({"alg": "ES512", "kid": "p521-no-crv"}), NO_CRV),
    );
    passes(g, &es256(Some("p256-no-crv"), NO_CRV));
}

fn jwks_ec_missing_both_alg_crv_es256(g: &Gateway) {
    // JwksParseTest.JwksECMissingBothAlgCrvES256: read as P-256.
    passes(g, &es256(Some("p256-bare"), NO_CRV));
}

fn kid_es512_ok(g: &Gateway) {
    // VerifyJwkECTest.KidES512OK, on the peer's JWK with its 65-byte `y`.
    let token = es512(json!({"alg": "ES512", "typ": "JWT", "kid": "es512"}), ES512);
    passes(g, &token);
    passes(g, &es512(json!({"alg": "ES512"}), ES512));
    // fuzzJwtSignature's idea: an altered signature fails.
    let signature = forge::signature_of(&token);
    for at in [0, 65, 131] {
        let mut altered = signature.clone();
        altered[at] ^= 1;
        rejects(
            g,
            &forge::with_signature(&token, &altered),
            "signature_invalid",
        );
    }
    rejects(
        g,
        &forge::with_signature(&token, &[0; 132]),
        "signature_invalid",
    );
    rejects(
        g,
        &forge::with_signature(&token, &signature[..131]),
        "signature_invalid",
    );
    // The ES512 signature under another algorithm's header.
    let (_, rest) = token.split_once('.').unwrap();
    let header = b64(json!({"alg": "ES384", "kid": "es512"})
        .to_string()
        .as_bytes());
    rejects(g, &format!("{header}.{rest}"), "signature_invalid");
}

fn at_most_four_signature_checks_per_token(g: &Gateway) {
    rejects(g, &es256(None, CAP_HIT), "signature_invalid");
    rejects(g, &es256(Some("unlisted"), CAP_HIT), "key_unknown");
    passes(g, &es256(None, CAP_MISS));
    passes(g, &es256(Some("unlisted"), CAP_MISS));
}

#[test]
fn key_sets_envoy_accepts() {
    let kid_less = {
        let mut keys = without(public_key_jwk_ec(), "kid");
        keys.push(kid_less_rsa());
        keys
    };
    let mut named_decoy = decoy();
    named_decoy["kid"] = "named".into();
    let no_crv = vec![
        named_decoy,
        json!({"kty": "EC", "kid": "p521-no-crv", "alg": "ES512", "x": P521_X, "y": P521_Y}),
        json!({"kty": "EC", "kid": "p256-no-crv", "alg": "ES256", "x": P256_X, "y": P256_Y}),
        json!({"kty": "EC", "kid": "p256-bare", "x": P256_X, "y": P256_Y}),
        json!({"kty": "EC", "x": P256_X, "y": P256_Y}),
    ];
    let signer = json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y});
    let decoys = |count: usize| {
        let mut keys: Vec<Value> = (0..count).map(|_| decoy()).collect();
        keys.push(signer.clone());
        keys
    };
    let gateway = Gateway::start(with_rules(
        vec![
            rule(NO_KID, kid_less),
            rule(NO_CRV, no_crv),
            rule(ES512, public_key_jwk_ec()),
            rule(CAP_HIT, decoys(4)),
            rule(CAP_MISS, decoys(3)),
        ],
        json!({}),
    ));
    scenarios!(
        &gateway,
        [
            pubkey_no_kid_ok,
            a_forged_token_against_kid_less_keys_is_an_unknown_key,
            non_exist_kid_fail,
            a_named_key_is_the_only_one_tried,
            jwk_ec_missing_crv,
            jwks_ec_missing_both_alg_crv_es256,
            kid_es512_ok,
            at_most_four_signature_checks_per_token,
        ]
    );
}

#[test]
fn fetched_kid_less_keys_are_tried_before_a_refetch() {
    let keys = json!({"keys": without(public_key_jwk_ec(), "kid")}).to_string();
    let jwks = JwksServer::start(&keys);
    let mut rule = kubeflow_rule(NO_KID, json!({"jwksUri": jwks.uri()}));
    rule["timeout"] = "2s".into();
    let config = with_rules(vec![rule], json!({"jwksRefetchMinInterval": "1s"}));
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| s.with_jwks_cluster(port));
    passes(&gateway, &es256(Some("abc"), NO_KID));
    let fetched = jwks.hits();
    // Past the refetch interval: an unknown kid could start a fetch now.
    std::thread::sleep(Duration::from_millis(1500));
    passes(&gateway, &es256(Some("rotated"), NO_KID));
    passes(
        &gateway,
        &es512(json!({"alg": "ES512", "kid": "new"}), NO_KID),
    );
    assert_eq!(jwks.hits(), fetched, "a kid-less key verified: no refetch");
    let forged = Signer::generate().sign(
        &json!({"alg": "ES256", "kid": "rotated"}),
        &claims_for(NO_KID),
    );
    rejects(&gateway, &forged, "key_unknown");
    assert_eq!(
        jwks.hits(),
        fetched + 1,
        "no key verified: one refetch, then key_unknown"
    );
    gateway.assert_no_vm_trap();
}
