//! Key-selection games: the key comes only from the configured JWKS.
//! - a token signed by an attacker's key that embeds it (`jwk`, `x5c`) or
//!   points at it (`jku`, `x5u`) → 401 (signature_invalid; token_malformed when
//!   `jwk` is an object, which jwt-simple cannot read);
//! - `jku`/`x5u`/`x5c` on an honest token are ignored: it passes;
//! - `kid` empty or with control characters → key_unknown; over 8 KiB of
//!   header (a 10 KB `kid`) → token_malformed; a number, null, an array → token_malformed;
//! - `kid` naming the JWKS's `oct` key: HS256 with its secret → signature_invalid,
//!   RS256 → key_unknown (symmetric keys are never loaded);
//! - no `kid` with several keys: the right key verifies (then claims are
//!   checked: an expired one is token_expired), no key fits → signature_invalid.

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
use kfauth_testkit::forge::{self, Signer, SIGNER_RSA_KID};
use kfauth_testkit::idp::now;
use kfauth_testkit::{scenarios, Alg, Gateway, Idp};
use serde_json::{json, Value};

/// A signer the gateway does not trust.
fn attacker() -> &'static Signer {
    static ATTACKER: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    ATTACKER.get_or_init(Signer::generate)
}

fn signed(signer: &Signer, header: Value) -> String {
    signer.sign(&header, &with(json!({"email": "mallory@example.com"})))
}

fn embedded_jwk_object_of_the_attacker(g: &Gateway) {
    let jwk = attacker().rsa_jwk();
    rejects(
        g,
        &signed(attacker(), json!({"alg": "RS256", "jwk": jwk})),
        "token_malformed",
    );
    rejects(
        g,
        &signed(
            attacker(),
            json!({"alg": "RS256", "kid": SIGNER_RSA_KID, "jwk": jwk}),
        ),
        "token_malformed",
    );
}

fn embedded_jwk_string_of_the_attacker(g: &Gateway) {
    let jwk = attacker().rsa_jwk().to_string();
    rejects(
        g,
        &signed(
            attacker(),
            json!({"alg": "RS256", "kid": SIGNER_RSA_KID, "jwk": jwk}),
        ),
        "signature_invalid",
    );
}

fn jku_and_x5u_of_the_attacker(g: &Gateway) {
    for (name, url) in [
        ("jku", "https://evil.example/jwks.json"),
        ("x5u", "https://evil.example/cert.pem"),
    ] {
        let mut header = json!({"alg": "RS256", "kid": SIGNER_RSA_KID});
        header[name] = url.into();
        rejects(g, &signed(attacker(), header.clone()), "signature_invalid");
        header.as_object_mut().unwrap().remove("kid");
        rejects(g, &signed(attacker(), header), "signature_invalid");
    }
}

fn x5c_of_the_attacker(g: &Gateway) {
    let der = forge::b64url(&attacker().rsa_public_der());
    rejects(
        g,
        &signed(attacker(), json!({"alg": "RS256", "x5c": [der]})),
        "signature_invalid",
    );
    rejects(
        g,
        &signed(attacker(), json!({"alg": "RS256", "x5c": der})),
        "token_malformed",
    );
}

fn key_urls_on_an_honest_token_are_ignored(g: &Gateway) {
    let token = Signer::shared().sign(
        &json!({"alg": "RS256", "kid": SIGNER_RSA_KID,
                "jku": "https://evil.example/jwks.json", "x5u": "https://evil.example/c",
                "x5c": ["AAAA"]}),
        &valid(),
    );
    accepts_as(g, &token, "alice@example.com");
}

fn odd_kids_are_unknown_keys(g: &Gateway) {
    for kid in [
        "",
        " ",
        "rsa-1\u{0}",
        "adv-rsa\r\nx: y",
        "../../etc/passwd",
        "ADV-RSA",
    ] {
        let token = Signer::shared().sign(&json!({"alg": "RS256", "kid": kid}), &valid());
        rejects(g, &token, "key_unknown");
    }
}

fn a_10_kb_kid_is_malformed(g: &Gateway) {
    let token = Signer::shared().sign(
        &json!({"alg": "RS256", "kid": "k".repeat(10 * 1024)}),
        &valid(),
    );
    rejects(g, &token, "token_malformed");
}

fn kid_not_a_string(g: &Gateway) {
    for kid in [
        json!(1),
        json!(null),
        json!(["adv-rsa"]),
        json!({"kid": "adv-rsa"}),
    ] {
        let token = Signer::shared().sign(&json!({"alg": "RS256", "kid": kid}), &valid());
        rejects(g, &token, "token_malformed");
    }
}

fn kid_naming_the_oct_key(g: &Gateway) {
    rejects(
        g,
        &forge::hmac("HS256", OCT_SECRET, OCT_KID, &valid()),
        "signature_invalid",
    );
    let token = Signer::shared().sign(&json!({"alg": "RS256", "kid": OCT_KID}), &valid());
    rejects(g, &token, "key_unknown");
}

fn no_kid_finds_the_right_key_among_several(g: &Gateway) {
    // The provider's RSA and P-256 keys come first in the JWKS: each of these
    // verifies only with a later key.
    for alg in ["RS256", "PS384", "ES256"] {
        let token = Signer::shared().sign(&json!({"alg": alg, "typ": "JWT"}), &valid());
        accepts_as(g, &token, "alice@example.com");
    }
}

fn kid_removed_from_a_signed_header(g: &Gateway) {
    let token = Idp::shared().sign(Alg::RS256, &valid());
    let stripped = format!(
        "{}.{}",
        forge::b64url(json!({"alg": "RS256", "typ": "JWT"}).to_string().as_bytes()),
        token.split_once('.').unwrap().1
    );
    rejects(g, &stripped, "signature_invalid");
}

fn no_kid_and_expired_is_expired(g: &Gateway) {
    let now = now();
    let token = Signer::shared().sign(
        &json!({"alg": "ES256"}),
        &with(json!({"iat": now - 7200, "exp": now - 3600})),
    );
    rejects(g, &token, "token_expired");
}

fn no_kid_and_no_key_fits(g: &Gateway) {
    for alg in ["RS256", "PS256", "ES256"] {
        let token = attacker().sign(&json!({"alg": alg}), &valid());
        rejects(g, &token, "signature_invalid");
    }
}

#[test]
fn key_selection_games() {
    let gateway = start(json!({}), json!({}));
    scenarios!(
        &gateway,
        [
            embedded_jwk_object_of_the_attacker,
            embedded_jwk_string_of_the_attacker,
            jku_and_x5u_of_the_attacker,
            x5c_of_the_attacker,
            key_urls_on_an_honest_token_are_ignored,
            odd_kids_are_unknown_keys,
            a_10_kb_kid_is_malformed,
            kid_not_a_string,
            kid_naming_the_oct_key,
            no_kid_finds_the_right_key_among_several,
            kid_removed_from_a_signed_header,
            no_kid_and_expired_is_expired,
            no_kid_and_no_key_fits,
        ]
    );
    explain_agrees(&gateway);
}
