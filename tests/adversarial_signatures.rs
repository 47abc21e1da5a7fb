//! Signature games: only the exact signature of the configured key passes.
//! - RSA: truncated, extended, another token's, all zeros, the modulus itself,
//!   empty → 401 signature_invalid;
//! - ECDSA (ES256, raw `r || s` per RFC 7518 section 3.4):
//!   r = s = 0 (CVE-2022-21449, "psychic signatures"), r or s = 0, r or s = n,
//!   r or s > n, 63 or 65 bytes, the ASN.1 DER form of a valid signature
//!   → signature_invalid;
//! - high S: `(r, n - s)` verifies the same message. Accepted, as every
//!   ECDSA verifier of JOSE does (RFC 7518 does not require low S, and many
//!   signers — OpenSSL, Go — do not normalize S, so refusing would refuse
//!   about half of their honest tokens); it proves nothing new to an attacker
//!   (same claims, same key) and the identity is the signed one.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod adversarial_support;

use adversarial_support::*;
use kfauth_testkit::forge::{self, Signer, P256_ORDER};
use kfauth_testkit::{scenarios, Gateway};
use serde_json::json;

fn rs256() -> String {
    Signer::shared().sign_standard("RS256", &valid())
}

fn es256() -> String {
    Signer::shared().sign_standard("ES256", &valid())
}

fn rsa_signature_truncated(g: &Gateway) {
    let token = rs256();
    let signature = forge::signature_of(&token);
    rejects(
        g,
        &forge::with_signature(&token, &signature[..signature.len() - 1]),
        "signature_invalid",
    );
    rejects(
        g,
        &forge::with_signature(&token, &signature[1..]),
        "signature_invalid",
    );
}

fn rsa_signature_extended(g: &Gateway) {
    let token = rs256();
    let mut signature = forge::signature_of(&token);
    signature.push(0);
    rejects(
        g,
        &forge::with_signature(&token, &signature),
        "signature_invalid",
    );
    let mut signature = forge::signature_of(&token);
    signature.insert(0, 0);
    rejects(
        g,
        &forge::with_signature(&token, &signature),
        "signature_invalid",
    );
}

fn another_tokens_signature(g: &Gateway) {
    let victim = rs256();
    let other = Signer::shared().sign_standard("RS256", &with(json!({"email": "bob@example.com"})));
    rejects(
        g,
        &forge::with_signature(&victim, &forge::signature_of(&other)),
        "signature_invalid",
    );
    let es_victim = es256();
    let es_other =
        Signer::shared().sign_standard("ES256", &with(json!({"email": "bob@example.com"})));
    rejects(
        g,
        &forge::with_signature(&es_victim, &forge::signature_of(&es_other)),
        "signature_invalid",
    );
}

fn rsa_degenerate_signatures(g: &Gateway) {
    let token = rs256();
    let modulus = forge::b64url_decode(Signer::shared().rsa_jwk()["n"].as_str().unwrap()).unwrap();
    let mut one = vec![0u8; 256];
    one[255] = 1;
    for signature in [vec![0u8; 256], one, modulus, vec![0xff; 256], Vec::new()] {
        rejects(
            g,
            &forge::with_signature(&token, &signature),
            "signature_invalid",
        );
    }
}

fn ecdsa_psychic_signature(g: &Gateway) {
    let token = es256();
    rejects(
        g,
        &forge::with_signature(&token, &[0u8; 64]),
        "signature_invalid",
    );
    let (r, s) = forge::split_rs(&forge::signature_of(&token));
    rejects(
        g,
        &forge::with_signature(&token, &forge::join_rs(&[0; 32], &s)),
        "signature_invalid",
    );
    rejects(
        g,
        &forge::with_signature(&token, &forge::join_rs(&r, &[0; 32])),
        "signature_invalid",
    );
}

fn ecdsa_scalars_at_or_above_the_order(g: &Gateway) {
    let token = es256();
    let (r, s) = forge::split_rs(&forge::signature_of(&token));
    let above = forge::add_small_be(&P256_ORDER, 1);
    for (r, s) in [
        (P256_ORDER, s),
        (r, P256_ORDER),
        (above, s),
        (r, above),
        ([0xff; 32], s),
        (r, [0xff; 32]),
        (P256_ORDER, P256_ORDER),
    ] {
        rejects(
            g,
            &forge::with_signature(&token, &forge::join_rs(&r, &s)),
            "signature_invalid",
        );
    }
}

fn ecdsa_wrong_lengths(g: &Gateway) {
    let token = es256();
    let signature = forge::signature_of(&token);
    rejects(
        g,
        &forge::with_signature(&token, &signature[..63]),
        "signature_invalid",
    );
    let mut longer = signature.clone();
    longer.push(0);
    rejects(
        g,
        &forge::with_signature(&token, &longer),
        "signature_invalid",
    );
}

fn ecdsa_der_instead_of_raw(g: &Gateway) {
    let token = es256();
    let der = forge::ecdsa_der(&forge::signature_of(&token));
    rejects(g, &forge::with_signature(&token, &der), "signature_invalid");
}

fn ecdsa_high_s_is_the_same_signature(g: &Gateway) {
    let token = es256();
    accepts_as(g, &token, "alice@example.com");
    let flipped = forge::with_signature(&token, &forge::ecdsa_flip_s(&forge::signature_of(&token)));
    assert_ne!(flipped, token);
    accepts_as(g, &flipped, "alice@example.com");
}

#[test]
fn signature_games() {
    let gateway = start(json!({}), json!({}));
    scenarios!(
        &gateway,
        [
            rsa_signature_truncated,
            rsa_signature_extended,
            another_tokens_signature,
            rsa_degenerate_signatures,
            ecdsa_psychic_signature,
            ecdsa_scalars_at_or_above_the_order,
            ecdsa_wrong_lengths,
            ecdsa_der_instead_of_raw,
            ecdsa_high_s_is_the_same_signature,
        ]
    );
    explain_agrees(&gateway);
}
