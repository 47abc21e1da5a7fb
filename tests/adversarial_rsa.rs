//! RSA forgeries and the JWK `alg` pin, end to end: the unit tests of
//! `src/rsa_pkcs1.rs` and `src/rsa_pkcs1/pss.rs` sent as tokens through a
//! real Envoy. Every forged signature below is a real RSA signature by the
//! trusted key (the signer's private exponent applied to a hand-made
//! encoded message), so only the encoding check can refuse it: 401
//! `signature_invalid` each, while the exact encoding made the same way
//! passes.
//! - PKCS#1 v1.5 (RS256/384/512): block type 2, the first two bytes swapped,
//!   the zero separator replaced, a zero or non-FF byte in the padding, short
//!   padding with the digest in the middle and garbage after, DigestInfo
//!   without its NULL parameters, another hash's DigestInfo, the bare digest;
//! - the hash of another algorithm: an honest RS384 or RS512 signature
//!   under an RS256 header, and back;
//! - lengths: a signature with a leading zero byte passes at k bytes and is
//!   refused at k - 1 and k + 1; a short and a double-length signature;
//! - PSS (PS256/384/512): salts of 0 bytes, 20 bytes, one byte short and
//!   long of the hash length; a PS256 encoding whose trailer is not `BC`,
//!   whose zero padding holds a one, whose `01` separator is zero (all-zero
//!   padding), or whose `H` is another message's;
//! - the `alg` pin: the same RSA key published twice, once with `alg: RS256`;
//!   a PS256 token naming the pinned key is refused (`signature_invalid`)
//!   while the RS256 token on it and the PS256 token on the unpinned copy
//!   pass.

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
use kfauth_testkit::forge::rsa_blocks::{pkcs1_v1_5_block, pss_join, pss_parts, Hash};
use kfauth_testkit::forge::{self, Signer, SIGNER_RSA_KID};
use kfauth_testkit::{scenarios, Gateway};
use serde_json::{json, Value};

/// The signer's RSA key again, pinned to RS256.
const PINNED_KID: &str = "adv-rsa-rs256";

/// The suite's JWKS: the adversarial one plus [`PINNED_KID`].
fn jwks_with_pinned_key() -> Value {
    let mut jwks = jwks();
    let mut pinned = Signer::shared().rsa_jwk();
    pinned["kid"] = json!(PINNED_KID);
    pinned["alg"] = json!("RS256");
    jwks["keys"].as_array_mut().unwrap().push(pinned);
    jwks
}

/// `header.payload` of a token on the signer's RSA key with `alg`.
fn signing_input(alg: &str, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    format!(
        "{}.{}",
        forge::b64url(header.to_string().as_bytes()),
        forge::b64url(claims.to_string().as_bytes())
    )
}

fn token(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", forge::b64url(signature))
}

/// The token of `input` whose signature opens to exactly `block`.
fn signed_block(input: &str, block: &[u8]) -> String {
    token(input, &Signer::shared().rsa_sign_block(block))
}

fn exact_pkcs1_encodings_signed_by_hand_pass(g: &Gateway) {
    let k = Signer::shared().rsa_len();
    for hash in Hash::ALL {
        let input = signing_input(hash.rs(), SIGNER_RSA_KID, &valid());
        let block = pkcs1_v1_5_block(hash, input.as_bytes(), k);
        accepts_as(g, &signed_block(&input, &block), "alice@example.com");
    }
}

fn pkcs1_padding_variants(g: &Gateway) {
    let k = Signer::shared().rsa_len();
    for hash in Hash::ALL {
        let input = signing_input(hash.rs(), SIGNER_RSA_KID, &valid());
        let digest = hash.digest(&[input.as_bytes()]);
        let prefix = hash.digest_info_prefix();
        let good = pkcs1_v1_5_block(hash, input.as_bytes(), k);
        let separator = k - prefix.len() - digest.len() - 1;
        assert_eq!(good[separator], 0x00);
        let changed = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut block = good.clone();
            change(&mut block);
            block
        };
        // With the digest and DigestInfo after the padding, as long as it fits.
        let padded = |t: &[u8]| {
            let mut block = vec![0x00, 0x01];
            block.resize(k - t.len() - 1, 0xff);
            block.push(0x00);
            block.extend_from_slice(t);
            block
        };
        let mut no_null = prefix.clone();
        no_null[1] -= 2;
        no_null[3] -= 2;
        no_null.drain(no_null.len() - 4..no_null.len() - 2);
        no_null.extend_from_slice(&digest);
        let other_hash = if hash == Hash::Sha256 {
            Hash::Sha512
        } else {
            Hash::Sha256
        };
        let mut other_info = other_hash.digest_info_prefix();
        other_info.extend_from_slice(&digest);
        let mut short_padding = vec![0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        short_padding.extend([0xff, 0xff, 0x00]);
        short_padding.extend_from_slice(&prefix);
        short_padding.extend_from_slice(&digest);
        short_padding.resize(k, 0xab);
        let forged: Vec<(&str, Vec<u8>)> = vec![
            ("block type 2", changed(&|b| b[1] = 0x02)),
            (
                "first two bytes swapped",
                changed(&|b| {
                    b[0] = 0x01;
                    b[1] = 0x00;
                }),
            ),
            (
                "separator replaced by FF",
                changed(&|b| b[separator] = 0xff),
            ),
            ("a zero byte in the padding", changed(&|b| b[9] = 0x00)),
            (
                "a non-FF byte in the padding",
                changed(&|b| b[k / 2] = 0xfe),
            ),
            ("short padding, garbage after the digest", short_padding),
            ("DigestInfo without NULL parameters", padded(&no_null)),
            ("another hash's DigestInfo", padded(&other_info)),
            ("the bare digest", padded(&digest)),
        ];
        for (what, block) in forged {
            assert_eq!(block.len(), k, "{what}");
            assert_ne!(block, good, "{what}");
            eprintln!("{}: {what}", hash.rs());
            rejects(g, &signed_block(&input, &block), "signature_invalid");
        }
    }
}

fn pkcs1_hash_of_another_algorithm(g: &Gateway) {
    let signer = Signer::shared();
    for (claimed, signed_with) in [
        (Hash::Sha256, Hash::Sha384),
        (Hash::Sha256, Hash::Sha512),
        (Hash::Sha512, Hash::Sha256),
    ] {
        let input = signing_input(claimed.rs(), SIGNER_RSA_KID, &valid());
        let signature = signer.signature(signed_with.rs(), input.as_bytes());
        rejects(g, &token(&input, &signature), "signature_invalid");
    }
}

fn signature_lengths(g: &Gateway) {
    let signer = Signer::shared();
    let k = signer.rsa_len();
    // About one message in 256 has a signature below 2^(8k-8).
    let (input, signature) = (0..8192)
        .map(|n| {
            let input = signing_input(
                "RS256",
                SIGNER_RSA_KID,
                &with(json!({"jti": format!("jti-{n}")})),
            );
            let signature = signer.signature("RS256", input.as_bytes());
            (input, signature)
        })
        .find(|(_, signature)| signature[0] == 0)
        .expect("a signature with a leading zero byte");
    assert_eq!(signature.len(), k);
    accepts_as(g, &token(&input, &signature), "alice@example.com");
    rejects(g, &token(&input, &signature[1..]), "signature_invalid");
    let mut longer = vec![0u8];
    longer.extend_from_slice(&signature);
    rejects(g, &token(&input, &longer), "signature_invalid");
    rejects(g, &token(&input, &signature[..k / 2]), "signature_invalid");
    rejects(g, &token(&input, &signature.repeat(2)), "signature_invalid");
}

fn pss_salt_lengths(g: &Gateway) {
    let signer = Signer::shared();
    for hash in Hash::ALL {
        let input = signing_input(hash.ps(), SIGNER_RSA_KID, &valid());
        let h_len = hash.digest(&[]).len();
        let honest = signer.pss_with_salt(hash, h_len, input.as_bytes());
        accepts_as(g, &token(&input, &honest), "alice@example.com");
        for salt_len in [0, 20, h_len - 1, h_len + 1] {
            eprintln!("{}: salt of {salt_len} bytes", hash.ps());
            let signature = signer.pss_with_salt(hash, salt_len, input.as_bytes());
            rejects(g, &token(&input, &signature), "signature_invalid");
        }
    }
}

fn pss_padding_variants(g: &Gateway) {
    let signer = Signer::shared();
    let hash = Hash::Sha256;
    let input = signing_input("PS256", SIGNER_RSA_KID, &valid());
    let em = signer.rsa_open(&signer.signature("PS256", input.as_bytes()));
    let parts = pss_parts(hash, &em);
    // DB = zero padding || 01 || salt (32 bytes).
    let separator = parts.db.len() - 32 - 1;
    assert_eq!(parts.db[separator], 0x01);
    assert!(parts.db[..separator].iter().all(|b| *b == 0));
    assert_eq!(pss_join(hash, &parts), em, "the parts put back together");
    accepts_as(g, &signed_block(&input, &em), "alice@example.com");

    let mut trailer = pss_parts(hash, &em);
    trailer.trailer = 0xbb;
    let mut one_in_padding = pss_parts(hash, &em);
    one_in_padding.db[separator / 2] = 0x01;
    let mut no_separator = pss_parts(hash, &em);
    no_separator.db[separator] = 0x00;
    let other_input = signing_input(
        "PS256",
        SIGNER_RSA_KID,
        &with(json!({"email": "bob@example.com"})),
    );
    let other = pss_parts(
        hash,
        &signer.rsa_open(&signer.signature("PS256", other_input.as_bytes())),
    );
    let mut other_h = pss_parts(hash, &em);
    other_h.h = other.h;
    for (what, parts) in [
        ("trailer BB", trailer),
        ("a one in the zero padding", one_in_padding),
        ("no 01 separator", no_separator),
        ("another message's H", other_h),
    ] {
        eprintln!("PS256: {what}");
        rejects(
            g,
            &signed_block(&input, &pss_join(hash, &parts)),
            "signature_invalid",
        );
    }
}

fn an_rs256_pinned_key_refuses_ps256(g: &Gateway) {
    let signer = Signer::shared();
    let input = signing_input("PS256", PINNED_KID, &valid());
    let ps256 = token(&input, &signer.signature("PS256", input.as_bytes()));
    rejects(g, &ps256, "signature_invalid");
    let input = signing_input("RS256", PINNED_KID, &valid());
    let rs256 = token(&input, &signer.signature("RS256", input.as_bytes()));
    accepts_as(g, &rs256, "alice@example.com");
    // The same key unpinned takes PS256.
    accepts_as(
        g,
        &signer.sign_standard("PS256", &valid()),
        "alice@example.com",
    );
}

#[test]
fn rsa_forgeries_and_the_alg_pin() {
    let gateway = start(
        json!({"jwks": jwks_with_pinned_key().to_string()}),
        json!({}),
    );
    scenarios!(
        &gateway,
        [
            exact_pkcs1_encodings_signed_by_hand_pass,
            pkcs1_padding_variants,
            pkcs1_hash_of_another_algorithm,
            signature_lengths,
            pss_salt_lengths,
            pss_padding_variants,
            an_rs256_pinned_key_refuses_ps256,
        ]
    );
    explain_agrees(&gateway);
}
