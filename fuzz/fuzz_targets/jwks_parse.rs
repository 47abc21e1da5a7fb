//! JWKS documents (`jwks::parse_jwks`), as fetched from an issuer.
//!
//! Invariants: no panic; every key is either kept or skipped with a note that
//! names its index; every kept key is well formed: a signing key (`use` absent
//! or `sig`) of a supported type (never `oct`), with the `kid` of its document
//! entry (or none), algorithms that fit its type and curve (only the declared
//! `alg` when there is one; an EC key without `crv` has the curve of its `alg`,
//! or P-256 without one, as Envoy reads it), and exactly the key material the
//! entry gives (EC coordinates no longer than the curve's size, shorter ones
//! read as the same number).
#![no_main]

use base64::Engine;
use kfauth::jwks::{parse_jwks, Algorithm, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_jwks(data) else {
        return;
    };
    // serde reads a struct from an object, or from an array of its fields.
    let document: Value = serde_json::from_slice(data).expect("accepted a non-JSON document");
    let entries = match &document {
        Value::Object(map) => map.get("keys"),
        Value::Array(fields) => fields.first(),
        _ => None,
    }
    .and_then(Value::as_array)
    .expect("accepted a document without a keys array");
    assert_eq!(parsed.keys.len() + parsed.skipped.len(), entries.len());

    let skipped: Vec<usize> = parsed
        .skipped
        .iter()
        .map(|note| {
            let index = note
                .strip_prefix("keys[")
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(index, _)| index.parse().ok())
                .unwrap_or_else(|| panic!("a skip note without its index: {note}"));
            assert!(index < entries.len());
            index
        })
        .collect();
    assert!(
        skipped.windows(2).all(|pair| pair[0] < pair[1]),
        "{skipped:?}"
    );
    let kept = entries
        .iter()
        .enumerate()
        .filter(|(index, _)| !skipped.contains(index))
        .map(|(_, entry)| entry);
    for (entry, jwk) in kept.zip(parsed.keys.iter()) {
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        assert!(matches!(entry.get("use"), None | Some(Value::Null)) || text("use") == Some("sig"));
        assert_eq!(jwk.kid.as_deref(), text("kid"));
        let algorithms: Vec<Algorithm> = jwk.keys.iter().map(VerifyingKey::algorithm).collect();
        assert!(!algorithms.is_empty());
        let fitting: &[Algorithm] = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => &Algorithm::RSA,
            (Some("EC"), Some("P-256")) => &[Algorithm::ES256],
            (Some("EC"), Some("P-384")) => &[Algorithm::ES384],
            (Some("EC"), Some("P-521")) => &[Algorithm::ES512],
            (Some("EC"), None) if entry.get("crv").is_none_or(Value::is_null) => {
                match text("alg") {
                    None => &[Algorithm::ES256],
                    Some("ES256") => &[Algorithm::ES256],
                    Some("ES384") => &[Algorithm::ES384],
                    Some("ES512") => &[Algorithm::ES512],
                    Some(other) => panic!("kept an EC key without crv, with alg {other}"),
                }
            }
            (Some("OKP"), Some("Ed25519")) => &[Algorithm::EdDSA],
            other => panic!("kept a key of type {other:?}"),
        };
        for (index, algorithm) in algorithms.iter().enumerate() {
            assert!(fitting.contains(algorithm), "{algorithm:?} on {entry}");
            assert!(
                !algorithms[..index].contains(algorithm),
                "twice: {algorithm:?}"
            );
        }
        if let Some(alg) = text("alg") {
            assert_eq!(
                algorithms,
                [Algorithm::from_name(alg).expect("unknown alg kept")]
            );
        }
        for key in &jwk.keys {
            assert_material(entry, key);
        }
    }
});

fn member(entry: &Value, name: &str) -> Vec<u8> {
    let text = entry
        .get(name)
        .and_then(Value::as_str)
        .expect("kept a key without its member");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("kept a key whose member is not base64url")
}

fn significant(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|byte| **byte == 0).count();
    &bytes[zeros..]
}

/// The verifying key holds exactly the entry's public key.
fn assert_material(entry: &Value, key: &VerifyingKey) {
    // kfauth's own RSA key (RS* and PS*) keeps only what it needs; check its size.
    let rsa_bits = |bits: usize| {
        let n = member(entry, "n");
        assert!(bits >= 2048, "RSA modulus under 2048 bits");
        assert_eq!(bits.div_ceil(8), significant(&n).len());
    };
    let point = |uncompressed: &[u8], size: usize| {
        let mut expected = vec![4];
        for name in ["x", "y"] {
            let coordinate = member(entry, name);
            assert!(
                coordinate.len() <= size,
                "a {name} of {} bytes",
                coordinate.len()
            );
            expected.extend(std::iter::repeat_n(0, size - coordinate.len()));
            expected.extend(coordinate);
        }
        assert_eq!(uncompressed, expected);
    };
    match key {
        VerifyingKey::Rs256(key, _) => rsa_bits(key.modulus_bits()),
        VerifyingKey::Rs384(key, _) => rsa_bits(key.modulus_bits()),
        VerifyingKey::Rs512(key, _) => rsa_bits(key.modulus_bits()),
        VerifyingKey::Ps256(key) => rsa_bits(key.modulus_bits()),
        VerifyingKey::Ps384(key) => rsa_bits(key.modulus_bits()),
        VerifyingKey::Ps512(key) => rsa_bits(key.modulus_bits()),
        VerifyingKey::Es256(key, _) => point(key.to_sec1_point(false).as_bytes(), 32),
        VerifyingKey::Es384(key, _) => point(key.to_sec1_point(false).as_bytes(), 48),
        VerifyingKey::Es512(key) => point(key.to_sec1_point(false).as_bytes(), 66),
        VerifyingKey::EdDsa(key) => assert_eq!(key.as_slice(), member(entry, "x")),
    }
}
