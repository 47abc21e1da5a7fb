//! kfauth's ES256, ES384 and EdDSA checks against jwt-simple, which verified
//! them until kfauth called the same RustCrypto and ed25519-compact code
//! directly: the same keys are refused, and the same signatures verify. The
//! signatures are the honest one, the peer vectors' alterations, and the
//! edge cases a verifier may get wrong: a high S (`n - s`, which both accept),
//! r or s zero or not below the group order, an Ed25519 S plus the group order.

use super::*;
use base64::Engine;
use jwt_simple::prelude::*;
use p256::elliptic_curve::ff::PrimeField;
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// jwt-simple's verdict on the signature alone (time checks off).
fn options() -> Option<VerificationOptions> {
    Some(VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(0)),
        time_tolerance: Some(UnixTimeStamp::from_secs(0)),
        accept_future: true,
        ..VerificationOptions::default()
    })
}

fn with_signature(token: &str, signature: &[u8]) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    format!("{signed}.{}", b64(signature))
}

fn signature_of(token: &str) -> Vec<u8> {
    unb64(token.rsplit_once('.').unwrap().1)
}

/// The peer vectors' alterations, and r or s zero, all ones (not below the
/// order) or the order's complement `n - s`.
fn ecdsa_variants(token: &str, high_s: Vec<u8>) -> Vec<String> {
    let good = signature_of(token);
    let half = good.len() / 2;
    let mut variants = crate::peer_vectors::altered_signatures(token);
    variants.push(with_signature(token, &high_s));
    for (range, fill) in [
        (0..half, 0),
        (half..good.len(), 0),
        (half..good.len(), 0xff),
    ] {
        let mut changed = good.clone();
        changed[range].fill(fill);
        variants.push(with_signature(token, &changed));
    }
    variants.push(with_signature(token, &[&[0][..], good.as_slice()].concat()));
    variants
}

fn kfauth_key(jwk: serde_json::Value, algorithm: Algorithm) -> KeySet {
    let parsed = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    assert!(parsed
        .keys
        .iter()
        .next()
        .unwrap()
        .key_for(algorithm)
        .is_some());
    parsed.keys
}

fn agree(keys: &KeySet, algorithm: Algorithm, tokens: &[String], oracle: impl Fn(&str) -> bool) {
    let key = keys.iter().next().unwrap().key_for(algorithm).unwrap();
    let mut accepted = 0;
    for token in tokens {
        let theirs = oracle(token);
        assert_eq!(
            key.verify_signature(token, None),
            theirs,
            "{algorithm:?} {token}"
        );
        accepted += usize::from(theirs);
    }
    // The honest signature and the variants both accept (high S, `Ed25519`).
    assert_eq!(accepted, 2, "{algorithm:?}");
}

/// One ECDSA curve's test: a jwt-simple key pair, its token, and the variants.
macro_rules! ecdsa_verdicts_are_jwt_simples {
    ($test:ident, $curve:ident, $pair:ty, $crv:literal, $size:literal, $algorithm:expr) => {
        #[test]
        fn $test() {
            let pair = <$pair>::generate();
            let token = pair
                .sign(Claims::create(Duration::from_secs(60)))
                .unwrap();
            let signature = $curve::ecdsa::Signature::from_slice(&signature_of(&token)).unwrap();
            let (r, s) = signature.split_scalars();
            let high_s = $curve::ecdsa::Signature::from_scalars(r.to_repr(), (-*s).to_repr())
                .unwrap()
                .to_vec();
            let point = pair.public_key().public_key().to_bytes_uncompressed();
            let keys = kfauth_key(
                json!({"kty": "EC", "crv": $crv,
                    "x": b64(&point[1..=$size]), "y": b64(&point[$size + 1..])}),
                $algorithm,
            );
            let mut tokens = vec![token.clone()];
            tokens.extend(ecdsa_variants(&token, high_s));
            let public = pair.public_key();
            agree(&keys, $algorithm, &tokens, |token| {
                public.verify_token::<NoCustomClaims>(token, options()).is_ok()
            });
        }
    };
}

ecdsa_verdicts_are_jwt_simples!(
    es256_verdicts_are_jwt_simples,
    p256,
    ES256KeyPair,
    "P-256",
    32,
    Algorithm::ES256
);
ecdsa_verdicts_are_jwt_simples!(
    es384_verdicts_are_jwt_simples,
    p384,
    ES384KeyPair,
    "P-384",
    48,
    Algorithm::ES384
);

/// Ed25519's group order L, little-endian (RFC 8032 section 5.1).
const ED25519_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[test]
fn eddsa_verdicts_are_jwt_simples() {
    let pair = Ed25519KeyPair::generate();
    let token = pair.sign(Claims::create(Duration::from_secs(60))).unwrap();
    let keys = kfauth_key(
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&pair.public_key().to_bytes())}),
        Algorithm::EdDSA,
    );
    let good = signature_of(&token);
    // S + L: the same point equation, a non-canonical S.
    let mut s_plus_order = good.clone();
    let mut carry = 0u16;
    for (byte, order) in s_plus_order[32..].iter_mut().zip(ED25519_ORDER) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    let mut tokens = vec![token.clone()];
    tokens.extend(crate::peer_vectors::altered_signatures(&token));
    tokens.push(with_signature(&token, &s_plus_order));
    // The alias jwt-simple accepts, and kfauth with it.
    let (_, rest) = token.split_once('.').unwrap();
    let unsigned_alias = format!("{}.{rest}", b64(br#"{"alg":"Ed25519","typ":"JWT"}"#));
    let (signed, _) = unsigned_alias.rsplit_once('.').unwrap();
    let signature: Vec<u8> = pair
        .key_pair()
        .as_ref()
        .sk
        .sign(signed.as_bytes(), None)
        .to_vec();
    tokens.push(with_signature(&unsigned_alias, &signature));
    let public = pair.public_key();
    agree(&keys, Algorithm::EdDSA, &tokens, |token| {
        public
            .verify_token::<NoCustomClaims>(token, options())
            .is_ok()
    });
}

#[test]
fn the_keys_jwt_simple_refuses_are_refused() {
    let p256_point = ES256KeyPair::generate()
        .public_key()
        .public_key()
        .to_bytes_uncompressed();
    let p384_point = ES384KeyPair::generate()
        .public_key()
        .public_key()
        .to_bytes_uncompressed();
    let mut ec_points: Vec<(Vec<u8>, usize, &str, bool)> = Vec::new();
    for (point, size, crv) in [(&p256_point, 32, "P-256"), (&p384_point, 48, "P-384")] {
        let mut off_curve = point.clone();
        *off_curve.last_mut().unwrap() ^= 1;
        let mut zero = point.clone();
        zero[1..].fill(0);
        let mut all_ones = point.clone();
        all_ones[1..=size].fill(0xff);
        for candidate in [point.clone(), off_curve, zero, all_ones] {
            let theirs = match crv {
                "P-256" => ES256PublicKey::from_bytes(&candidate).is_ok(),
                _ => ES384PublicKey::from_bytes(&candidate).is_ok(),
            };
            ec_points.push((candidate, size, crv, theirs));
        }
    }
    for (point, size, crv, theirs) in ec_points {
        let jwk = json!({"kty": "EC", "crv": crv,
            "x": b64(&point[1..=size]), "y": b64(&point[size + 1..])});
        let parsed = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        assert_eq!(parsed.keys.len() == 1, theirs, "{crv} {point:?}");
    }
    let good = Ed25519KeyPair::generate().public_key().to_bytes();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // y = p (2^255 - 19), a non-canonical encoding of 0, and p + 1 of 1.
    let mut y_p = [0xffu8; 32];
    y_p[0] = 0xed;
    y_p[31] = 0x7f;
    let mut y_p_plus_1 = y_p;
    y_p_plus_1[0] = 0xee;
    let mut accepted = 0;
    for x in [
        good,
        identity.to_vec(),
        y_p.to_vec(),
        y_p_plus_1.to_vec(),
        vec![0; 32],
    ] {
        let theirs = Ed25519PublicKey::from_bytes(&x).is_ok();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)});
        let parsed = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        assert_eq!(parsed.keys.len() == 1, theirs, "{x:?}");
        accepted += usize::from(theirs);
    }
    assert_eq!(accepted, 1);
}
