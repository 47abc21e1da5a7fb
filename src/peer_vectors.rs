//! The key sets Envoy's jwt_authn accepts, as its JWT library's own tests
//! state them: google/jwt_verify_lib (commit b59e807), `test/jwks_test.cc`,
//! `test/verify_jwk_ec_test.cc`, `test/verify_jwk_rsa_pss_test.cc`. Keys (in
//! `keys.rs`) and tokens below are copied from those files (their private keys are printed in
//! `verify_jwk_ec_test.cc`'s comments; they guard nothing). The peer's tokens
//! carry no `exp`, so they are checked here for their signature and key
//! choice; whole tokens signed with the same keys go through `verify`.

use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

mod keys;

use crate::jwks::{parse_jwks, Algorithm, KeySet};
use crate::outcome::Reason;
use crate::testutil::{b64, claims_of, standard_claims, NOW};
use crate::verify::{candidate_keys, decode, verify, MAX_SIGNATURE_CHECKS};
use keys::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// `verify_jwk_ec_test.cc` `PublicKeyJwkEC`.
fn public_key_jwk_ec() -> Value {
    json!({"keys": [
        {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "abc", "x": P256_X, "y": P256_Y},
        {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "xyz", "x": P256_X, "y": P256_Y},
        {"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "es384", "x": P384_X, "y": P384_Y},
        {"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "es512", "x": P521_X, "y": P521_Y},
    ]})
}

/// `JwtES256Text` (`{"kid":"abc"}`).
const JWT_ES256: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFiYyJ9.eyJpc3MiOiI2Mj",
    "g2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvc",
    "GVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2Mjg2NDU3NDE4ODEtbm9hYml1",
    "MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3V",
    "udC5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS9teWFwaSJ9.T2KAwChqg",
    "o2ZSXyLh3IcMBQNSeRZRe5Z-MUDl-s-F99XGoyutqA6lq8bKZ6vmjZAlpVG8AGRZW9J",
    "Gp9lq3cbEw"
);

/// `JwtES512Text` (`{"kid":"es512"}`), signed by OpenSSL.
const JWT_ES512: &str = concat!(
    "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCIsImtpZCI6ImVzNTEyIn0.eyJpc3MiOi",
    "I2Mjg2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZ",
    "GV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2Mjg2NDU3NDE4",
    "ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmd",
    "zZXJ2aWNlYWNjb3VudC5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS",
    "9teWFwaSJ9.ATSReP9zpba6PRJZmlIEA78Ft-FZS1m_SpFLqfiNQNexaDaTmmVr",
    "IqD9X-krPxk0c8KSBeMlU-QLOsbh37coamruAPKoAODYWA-QKUN2a_xem8WrudK",
    "VXWsmQlZDOJA0lQWI-YGMEPrDr17mljMhZwSGbVVST9l-nZiMXyMK0z8hR9Mn"
);

/// `JwtTextWithNonExistKidEC` (`{"kid":"abcdef"}`).
const JWT_NON_EXIST_KID: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFiY2RlZiJ9.eyJpc3MiOi",
    "I2Mjg2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZ",
    "GV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2Mjg2NDU3NDE4",
    "ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmd",
    "zZXJ2aWNlYWNjb3VudC5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS",
    "9teWFwaSJ9.rWSoOV5j7HxHc4yVgZEZYUSgY7AUarG3HxdfPON1mw6II_pNUsc8",
    "_sVf7Yv2-jeVhmf8BtR99wnOwEDhVYrVpQ"
);

fn keys(document: &Value) -> KeySet {
    let parsed = parse_jwks(document.to_string().as_bytes()).unwrap();
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    parsed.keys
}

/// What `verifyJwt` decides about the signature and the key choice (time and
/// claims aside): `Ok` when a candidate key verifies.
fn signature_verdict(token: &str, keys: &KeySet) -> Result<(), Reason> {
    let unverified = decode(token)?;
    let algorithm = Algorithm::from_name(&unverified.alg).ok_or(Reason::SignatureInvalid)?;
    let (candidates, failure) = candidate_keys(keys, unverified.kid.as_deref(), algorithm);
    if candidates
        .iter()
        .any(|key| key.verify_signature(token, keys.signature_host()))
    {
        Ok(())
    } else {
        Err(failure.into())
    }
}

/// `fuzzJwtSignature`'s idea: every altered signature fails.
pub(crate) fn altered_signatures(token: &str) -> Vec<String> {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    let mut altered = Vec::new();
    for at in [0, 1, raw.len() / 2, raw.len() - 1] {
        let mut changed = raw.clone();
        changed[at] ^= 0x01;
        altered.push(changed);
    }
    altered.push(raw[..raw.len() - 1].to_vec());
    altered.push([raw.as_slice(), &[0]].concat());
    altered.push(vec![0; raw.len()]);
    altered
        .into_iter()
        .map(|signature| {
            format!(
                "{signed}.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
            )
        })
        .collect()
}

/// A whole ES512 token with the peer's P-521 key and the given header.
pub fn sign_es512(header: &Value, claims: &Value) -> String {
    use p521::ecdsa::{signature::Signer, Signature, SigningKey};
    let key = SigningKey::from_slice(&hex(P521_D)).unwrap();
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let signature: Signature = key.sign(input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

/// A whole ES256 token with the peer's P-256 key.
fn sign_es256(kid: Option<&str>, claims: &Value) -> String {
    let key = ES256KeyPair::from_bytes(&hex(P256_D)).unwrap();
    let key = match kid {
        Some(kid) => key.with_key_id(kid),
        None => key,
    };
    key.sign(claims_of(claims)).unwrap()
}

fn check(token: &str, jwks: &Value) -> Result<(), Reason> {
    let config = crate::config::Config::parse(
        json!({"jwtRules": [{"issuer": crate::testutil::DEX, "jwks": jwks.to_string()}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let rule = &config.rules[0];
    let crate::jwt_rule::KeySource::Inline(keys) = &rule.keys else {
        panic!("inline keys expected")
    };
    verify(token, &decode(token)?, rule, keys, NOW, config.clock_skew).map_err(Reason::from)
}

fn without(document: &Value, member: &str) -> Value {
    let mut document = document.clone();
    for key in document["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove(member);
    }
    document
}

// ---- jwks_test.cc ----

#[test]
fn good_ec() {
    // JwksParseTest.GoodEC: P-256, P-384 and P-521 keys.
    let keys = keys(&public_key_jwk_ec());
    let algorithms: Vec<_> = keys
        .iter()
        .map(|jwk| {
            jwk.keys
                .iter()
                .map(|key| key.algorithm())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        algorithms,
        [
            vec![Algorithm::ES256],
            vec![Algorithm::ES256],
            vec![Algorithm::ES384],
            vec![Algorithm::ES512]
        ]
    );
}

#[test]
fn jwk_ec_missing_crv_is_read_from_alg() {
    // JwksParseTest.JwkECMissingCrv (ES512, no crv) and the same for P-256/P-384.
    let es512 = json!({"keys": [{"alg": "ES512", "kid": "sxG_WeuLxIKXoVit-8vyQf", "kty": "EC", "use": "sig",
        "x": "AG3w2vYgVbn4E27rkxZPUVrzLWhMctY5GOP6xygLLFwNRaoOx2gnlQPwAsEXHxz80u5lfmOms0pJSjuDrNqs5pB4",
        "y": "Ad0K-hbFmTVj3nMOw7jAdl21dlU35pG1g7h_Tswr0VYfxqg4ubIPyXrrtmlKH8q3c2Gqgq77Uq12qfcDE8zF2a4v"}]});
    let keys = keys(&es512);
    let jwk = keys.iter().next().unwrap();
    assert!(jwk.key_for(Algorithm::ES512).is_some());
    assert_eq!(jwk.keys.len(), 1);

    let document = without(&public_key_jwk_ec(), "crv");
    let keys = self::keys(&document);
    assert_eq!(keys.len(), 4);
    // And a token verifies with such a key.
    assert_eq!(signature_verdict(JWT_ES512, &keys), Ok(()));
    assert_eq!(signature_verdict(JWT_ES256, &keys), Ok(()));
}

#[test]
fn jwk_ec_missing_alg_is_read_from_crv() {
    // JwksParseTest.JwkECMissingAlg (a P-521 key without alg) and
    // VerifyJwkECTest.PubkeyNoAlgOK.
    let keys = keys(&without(&public_key_jwk_ec(), "alg"));
    assert_eq!(signature_verdict(JWT_ES512, &keys), Ok(()));
    assert_eq!(signature_verdict(JWT_ES256, &keys), Ok(()));
    let p521 = keys.iter().last().unwrap();
    assert_eq!(p521.keys.len(), 1);
    assert!(p521.key_for(Algorithm::ES512).is_some());
}

#[test]
fn jwks_ec_missing_both_alg_and_crv_is_p256() {
    // JwksParseTest.JwksECMissingBothAlgCrvES256: Envoy assumes P-256.
    let keys = keys(&json!({"keys": [{"kty": "EC", "x": P256_X, "y": P256_Y}]}));
    let jwk = keys.iter().next().unwrap();
    assert!(jwk.key_for(Algorithm::ES256).is_some());
    assert_eq!(jwk.keys.len(), 1);
    assert_eq!(signature_verdict(JWT_ES256, &keys), Ok(()));

    // JwksParseTest.JwksECMissingBothAlgES384: P-384 coordinates without alg or
    // crv are not P-256; the peer fails too. kfauth skips the key and says why.
    let parsed = parse_jwks(
        json!({"keys": [{"kty": "EC", "x": P384_X, "y": P384_Y}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(parsed.keys.is_empty());
    assert_eq!(
        parsed.skipped,
        ["keys[0]: `x`/`y` longer than 32 bytes (no `crv` or `alg`: read as P-256, as Envoy does)"]
    );
}

#[test]
fn jwks_ec_mismatch_alg_crv() {
    // JwksParseTest.JwksECMismatchAlgCrv1/2/3, JwksECNotSupportedAlg, and an EC
    // key without crv whose alg is not an EC algorithm.
    for (alg, crv) in [
        ("ES256", Some("P-384")),
        ("ES384", Some("P-521")),
        ("ES512", Some("P-256")),
        ("ES1024", None),
        ("RS256", None),
        ("EdDSA", None),
    ] {
        let mut key = json!({"kty": "EC", "alg": alg, "x": P521_X, "y": P521_Y});
        if let Some(crv) = crv {
            key["crv"] = crv.into();
        }
        let parsed = parse_jwks(json!({ "keys": [key] }).to_string().as_bytes()).unwrap();
        assert!(parsed.keys.is_empty(), "{alg} {crv:?}");
        assert_eq!(parsed.skipped.len(), 1);
    }
    // A P-521 key with the coordinates of another curve, or off the curve.
    for (x, y) in [(P384_X, P384_Y), (P521_Y, P521_X)] {
        let key = json!({"kty": "EC", "crv": "P-521", "x": x, "y": y});
        let parsed = parse_jwks(json!({ "keys": [key] }).to_string().as_bytes()).unwrap();
        assert!(parsed.keys.is_empty(), "{:?}", parsed.skipped);
    }
}

// ---- verify_jwk_ec_test.cc ----

#[test]
fn kid_es512_ok() {
    // VerifyJwkECTest.KidES512OK, and its fuzzJwtSignature.
    let keys = keys(&public_key_jwk_ec());
    assert_eq!(signature_verdict(JWT_ES512, &keys), Ok(()));
    for altered in altered_signatures(JWT_ES512) {
        assert_eq!(
            signature_verdict(&altered, &keys),
            Err(Reason::SignatureInvalid)
        );
    }
    // The ES512 signature under an ES384 or ES256 header verifies nowhere.
    for alg in ["ES384", "ES256"] {
        let header = b64(&format!(
            "{{\"alg\":\"{alg}\",\"typ\":\"JWT\",\"kid\":\"es512\"}}"
        ));
        let (_, rest) = JWT_ES512.split_once('.').unwrap();
        assert_eq!(
            signature_verdict(&format!("{header}.{rest}"), &keys),
            Err(Reason::SignatureInvalid)
        );
    }
}

#[test]
fn non_exist_kid_fail() {
    // VerifyJwkECTest.NonExistKidFail: every key has a kid, none is "abcdef".
    let keys = keys(&public_key_jwk_ec());
    assert_eq!(
        signature_verdict(JWT_NON_EXIST_KID, &keys),
        Err(Reason::KeyUnknown)
    );
    let (candidates, _) = candidate_keys(&keys, Some("abcdef"), Algorithm::ES256);
    assert!(candidates.is_empty(), "no key tried");
}

#[test]
fn pubkey_no_kid_ok() {
    // VerifyJwkECTest.PubkeyNoKidOK: the keys lose their kid; a token with
    // kid "abc" is checked against them.
    let keys = keys(&without(&public_key_jwk_ec(), "kid"));
    assert_eq!(signature_verdict(JWT_ES256, &keys), Ok(()));
    assert_eq!(signature_verdict(JWT_ES512, &keys), Ok(()));
    for altered in altered_signatures(JWT_ES256) {
        // The kid names no key: the answer stays key_unknown (refetch may help).
        assert_eq!(signature_verdict(&altered, &keys), Err(Reason::KeyUnknown));
    }
    // Whole tokens, through `verify`.
    let document = without(&public_key_jwk_ec(), "kid");
    let claims = standard_claims();
    assert_eq!(check(&sign_es256(Some("abc"), &claims), &document), Ok(()));
    assert_eq!(check(&sign_es256(None, &claims), &document), Ok(()));
    assert_eq!(
        check(
            &sign_es512(&json!({"alg": "ES512", "kid": "any"}), &claims),
            &document
        ),
        Ok(())
    );
}

// ---- verify_jwk_rsa_pss_test.cc, VerifyKidMatchingTest ----

#[test]
fn a_kid_that_names_a_key_is_only_checked_against_it() {
    // The peer tries every key whose kid matches or is absent; kfauth, when a
    // key carries the token's kid, tries that key alone. "xyz" is another key
    // here; the key that signed is in the set without kid.
    let claims = standard_claims();
    let other = ES256KeyPair::generate().public_key().to_jwk();
    let mut other: Value = serde_json::from_str(&other).unwrap();
    other["kid"] = "xyz".into();
    let document = json!({"keys": [
        other,
        {"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y},
    ]});
    assert_eq!(
        check(&sign_es256(Some("xyz"), &claims), &document),
        Err(Reason::SignatureInvalid),
        "the named key does not verify; the kid-less key is not tried"
    );
    assert_eq!(check(&sign_es256(Some("new"), &claims), &document), Ok(()));
    assert_eq!(check(&sign_es256(None, &claims), &document), Ok(()));
}

#[test]
fn signature_checks_per_token_are_capped() {
    // MAX_SIGNATURE_CHECKS kid-less P-256 keys that did not sign, then the one
    // that did: never reached. One fewer decoy and it is.
    let decoy = |_| {
        let mut jwk: Value =
            serde_json::from_str(&ES256KeyPair::generate().public_key().to_jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("kid");
        jwk
    };
    let signer = json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y});
    let claims = standard_claims();
    for (decoys, with_kid, expected) in [
        (MAX_SIGNATURE_CHECKS - 1, true, Ok(())),
        (MAX_SIGNATURE_CHECKS - 1, false, Ok(())),
        (MAX_SIGNATURE_CHECKS, true, Err(Reason::KeyUnknown)),
        (MAX_SIGNATURE_CHECKS, false, Err(Reason::SignatureInvalid)),
    ] {
        let mut keys: Vec<Value> = (0..decoys).map(decoy).collect();
        // Keys of another type are not counted: they are never tried.
        keys.insert(0, crate::testutil::rsa_jwk("r", None));
        keys[0].as_object_mut().unwrap().remove("kid");
        keys.push(signer.clone());
        let document = json!({ "keys": keys });
        let token = sign_es256(with_kid.then_some("unlisted"), &claims);
        assert_eq!(check(&token, &document), expected, "{decoys} {with_kid}");
        let set = self::keys(&document);
        let (candidates, _) =
            candidate_keys(&set, with_kid.then_some("unlisted"), Algorithm::ES256);
        assert_eq!(candidates.len(), (decoys + 1).min(MAX_SIGNATURE_CHECKS));
    }
}

#[test]
fn es512_whole_tokens() {
    let document = public_key_jwk_ec();
    let mut claims = standard_claims();
    assert_eq!(
        check(
            &sign_es512(&json!({"alg": "ES512", "kid": "es512"}), &claims),
            &document
        ),
        Ok(())
    );
    assert_eq!(
        check(&sign_es512(&json!({"alg": "ES512"}), &claims), &document),
        Ok(())
    );
    // Time claims after the signature, as for every algorithm.
    claims["exp"] = (crate::testutil::NOW_SECS - 3600).into();
    assert_eq!(
        check(
            &sign_es512(&json!({"alg": "ES512", "kid": "es512"}), &claims),
            &document
        ),
        Err(Reason::TokenExpired)
    );
    // An ES512 token naming the P-256 key.
    assert_eq!(
        check(
            &sign_es512(&json!({"alg": "ES512", "kid": "abc"}), &claims),
            &document
        ),
        Err(Reason::SignatureInvalid)
    );
}

#[test]
fn a_coordinate_without_its_leading_zero_bytes() {
    // The P-521 key of GoodEC / KidES512OK writes `y` in 65 bytes (its first
    // byte, 0x00, left out); RFC 7518 wants 66. Envoy reads it as the number it
    // is, and so does kfauth; written in full it is the same key.
    let decode = |text: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap()
    };
    assert_eq!((decode(P521_X).len(), decode(P521_Y).len()), (66, 65));
    let full_y = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode([&[0u8][..], &decode(P521_Y)].concat());
    for y in [P521_Y.to_string(), full_y] {
        let keys = keys(
            &json!({"keys": [{"kty": "EC", "crv": "P-521", "kid": "es512", "x": P521_X, "y": y}]}),
        );
        assert_eq!(signature_verdict(JWT_ES512, &keys), Ok(()));
    }
    // Longer than the curve's size, even with leading zeros: refused.
    let long_x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode([&[0u8][..], &decode(P521_X)].concat());
    let parsed = parse_jwks(
        json!({"keys": [{"kty": "EC", "crv": "P-521", "x": long_x, "y": P521_Y}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(parsed.skipped, ["keys[0]: `x`/`y` longer than 66 bytes"]);
    // A P-256 coordinate cut short is padded too; it is then not on the curve.
    let cut_x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&decode(P256_X)[1..]);
    let parsed = parse_jwks(
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": cut_x, "y": P256_Y}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(parsed.keys.is_empty());
    assert!(
        parsed.skipped[0].contains("invalid ES256 key"),
        "{:?}",
        parsed.skipped
    );
}
