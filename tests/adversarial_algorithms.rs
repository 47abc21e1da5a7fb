//! Algorithm games: the `alg` header never chooses a weaker or different
//! verification than the key allows.
//! - `none` in any spelling, with or without a signature → 401 signature_invalid;
//! - no `alg`, or one that is not a string → 401 token_malformed;
//! - `alg` not fitting the key's type (ES256 on the RSA key and back) → signature_invalid;
//! - HS256/384/512 keyed with public key material (PEM, DER, JWK JSON, modulus) → signature_invalid;
//! - RS↔PS, and a header algorithm stronger or weaker than the signature's → signature_invalid;
//! - a lower-case or unknown name → signature_invalid;
//! - control: every supported algorithm, honestly used, passes.

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
use kfauth_testkit::forge::{self, Signer, SIGNER_EC_KID, SIGNER_RSA_KID};
use kfauth_testkit::{scenarios, Gateway};
use serde_json::json;

fn every_supported_algorithm_honestly_used_passes(g: &Gateway) {
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    ] {
        accepts_as(
            g,
            &Signer::shared().sign_standard(alg, &valid()),
            "alice@example.com",
        );
    }
}

fn alg_none_in_any_case(g: &Gateway) {
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": none, "typ": "JWT", "kid": SIGNER_RSA_KID});
        // Empty signature (RFC 7519 section 6.1), and a real RS256 signature.
        rejects(
            g,
            &forge::assemble(&header, &valid(), b""),
            "signature_invalid",
        );
        let signed = Signer::shared().sign_bytes(
            "RS256",
            header.to_string().as_bytes(),
            valid().to_string().as_bytes(),
        );
        rejects(g, &signed, "signature_invalid");
    }
}

fn alg_missing_or_not_a_string(g: &Gateway) {
    let signer = Signer::shared();
    for header in [
        json!({"typ": "JWT", "kid": SIGNER_RSA_KID}),
        json!({"alg": null, "kid": SIGNER_RSA_KID}),
        json!({"alg": 256, "kid": SIGNER_RSA_KID}),
        json!({"alg": ["RS256"], "kid": SIGNER_RSA_KID}),
    ] {
        let token = signer.sign_bytes(
            "RS256",
            header.to_string().as_bytes(),
            valid().to_string().as_bytes(),
        );
        rejects(g, &token, "token_malformed");
    }
}

fn es256_on_the_rsa_key(g: &Gateway) {
    let token = Signer::shared().sign(
        &json!({"alg": "ES256", "typ": "JWT", "kid": SIGNER_RSA_KID}),
        &valid(),
    );
    rejects(g, &token, "signature_invalid");
}

fn rs256_on_the_ec_key(g: &Gateway) {
    let token = Signer::shared().sign(
        &json!({"alg": "RS256", "typ": "JWT", "kid": SIGNER_EC_KID}),
        &valid(),
    );
    rejects(g, &token, "signature_invalid");
}

fn eddsa_on_the_rsa_key(g: &Gateway) {
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": SIGNER_RSA_KID});
    let token = Signer::shared().sign_bytes(
        "RS256",
        header.to_string().as_bytes(),
        valid().to_string().as_bytes(),
    );
    rejects(g, &token, "signature_invalid");
}

fn hmac_keyed_with_public_key_material(g: &Gateway) {
    let signer = Signer::shared();
    let jwk_json = signer.rsa_jwk().to_string();
    let modulus = forge::b64url_decode(signer.rsa_jwk()["n"].as_str().unwrap()).unwrap();
    let pem = signer.rsa_public_pem();
    let der = signer.rsa_public_der();
    for (alg, secret) in [
        ("HS256", pem.as_bytes()),
        ("HS384", der.as_slice()),
        ("HS512", jwk_json.as_bytes()),
        ("HS256", modulus.as_slice()),
    ] {
        rejects(
            g,
            &forge::hmac(alg, secret, SIGNER_RSA_KID, &valid()),
            "signature_invalid",
        );
    }
}

fn ps256_header_over_an_rs256_signature(g: &Gateway) {
    let header = json!({"alg": "PS256", "typ": "JWT", "kid": SIGNER_RSA_KID});
    let token = Signer::shared().sign_bytes(
        "RS256",
        header.to_string().as_bytes(),
        valid().to_string().as_bytes(),
    );
    rejects(g, &token, "signature_invalid");
}

fn rs256_header_over_a_ps256_signature(g: &Gateway) {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": SIGNER_RSA_KID});
    let token = Signer::shared().sign_bytes(
        "PS256",
        header.to_string().as_bytes(),
        valid().to_string().as_bytes(),
    );
    rejects(g, &token, "signature_invalid");
}

fn header_algorithm_stronger_or_weaker_than_the_signature(g: &Gateway) {
    for (claimed, signed_with) in [
        ("RS512", "RS256"),
        ("RS256", "RS512"),
        ("PS512", "PS384"),
        ("RS384", "PS384"),
    ] {
        let header = json!({"alg": claimed, "typ": "JWT", "kid": SIGNER_RSA_KID});
        let token = Signer::shared().sign_bytes(
            signed_with,
            header.to_string().as_bytes(),
            valid().to_string().as_bytes(),
        );
        rejects(g, &token, "signature_invalid");
    }
}

fn es384_header_over_an_es256_signature(g: &Gateway) {
    let header = json!({"alg": "ES384", "typ": "JWT", "kid": SIGNER_EC_KID});
    let token = Signer::shared().sign_bytes(
        "ES256",
        header.to_string().as_bytes(),
        valid().to_string().as_bytes(),
    );
    rejects(g, &token, "signature_invalid");
}

fn lower_case_or_unknown_algorithm_names(g: &Gateway) {
    for name in ["rs256", "Rs256", "RS256 ", "RS1", "ES256K"] {
        let header = json!({"alg": name, "typ": "JWT", "kid": SIGNER_RSA_KID});
        let token = Signer::shared().sign_bytes(
            "RS256",
            header.to_string().as_bytes(),
            valid().to_string().as_bytes(),
        );
        rejects(g, &token, "signature_invalid");
    }
}

#[test]
fn algorithm_games() {
    let gateway = start(json!({}), json!({}));
    scenarios!(
        &gateway,
        [
            every_supported_algorithm_honestly_used_passes,
            alg_none_in_any_case,
            alg_missing_or_not_a_string,
            es256_on_the_rsa_key,
            rs256_on_the_ec_key,
            eddsa_on_the_rsa_key,
            hmac_keyed_with_public_key_material,
            ps256_header_over_an_rs256_signature,
            rs256_header_over_a_ps256_signature,
            header_algorithm_stronger_or_weaker_than_the_signature,
            es384_header_over_an_es256_signature,
            lower_case_or_unknown_algorithm_names,
        ]
    );
    explain_agrees(&gateway);
}
