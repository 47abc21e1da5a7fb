//! The fixed keys of the fuzz harness (generated for fuzzing only; they guard
//! nothing), the JWKS documents that trust some of them, and signing and
//! checking done by the RustCrypto crates directly, so that the harness can sign
//! any header bytes and check kfauth's verdict without going through kfauth.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine;
use jwt_simple::prelude::*;
use kfauth::jwks::Algorithm;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _, Verifier as _};

pub const NOW_SECS: u64 = 1_800_000_000;
pub const CLOCK_SKEW_SECS: u64 = 60;
/// Rule 0: audiences required.
pub const ISSUER: &str = "https://dex.example.test/dex";
pub const AUDIENCE: &str = "kubeflow";
/// Rule 1: no audience check, one RSA key.
pub const OTHER_ISSUER: &str = "https://accounts.example.test";
/// The secret of the `oct` JWK in rule 0's JWKS (which kfauth must refuse).
pub const HMAC_SECRET: &[u8] = b"a shared secret that must never verify anything";

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyName {
    RsaA,
    RsaB,
    P256,
    P384,
    Ed25519,
    /// In no JWKS as a signing key (only under `use: enc`).
    RsaUnconfigured,
    /// In rule 0's JWKS without `crv` (read from its `alg`, ES512) and with
    /// `y` written without its leading zero byte (65 bytes).
    P521,
}

/// A JWK of a configured JWKS, as the harness means it: which key, under which
/// `kid`, for which algorithms.
pub struct Trusted {
    pub kid: Option<&'static str>,
    pub key: KeyName,
    pub algorithms: &'static [Algorithm],
}

const RSA_ALL: &[Algorithm] = &Algorithm::RSA;

/// What each rule's JWKS trusts (the `oct` and `use: enc` entries are in the
/// documents too, and trusted for nothing).
pub fn trusted(rule: usize) -> &'static [Trusted] {
    const RULE_0: &[Trusted] = &[
        Trusted {
            kid: Some("rsa-a"),
            key: KeyName::RsaA,
            algorithms: &[Algorithm::RS256],
        },
        Trusted {
            kid: Some("rsa-b"),
            key: KeyName::RsaB,
            algorithms: RSA_ALL,
        },
        Trusted {
            kid: Some("ec-256"),
            key: KeyName::P256,
            algorithms: &[Algorithm::ES256],
        },
        Trusted {
            kid: Some("ec-384"),
            key: KeyName::P384,
            algorithms: &[Algorithm::ES384],
        },
        Trusted {
            kid: None,
            key: KeyName::Ed25519,
            algorithms: &[Algorithm::EdDSA],
        },
        Trusted {
            kid: Some("ec-521"),
            key: KeyName::P521,
            algorithms: &[Algorithm::ES512],
        },
    ];
    const RULE_1: &[Trusted] = &[Trusted {
        kid: Some("rsa-b"),
        key: KeyName::RsaB,
        algorithms: RSA_ALL,
    }];
    match rule {
        0 => RULE_0,
        1 => RULE_1,
        _ => &[],
    }
}

struct Keys {
    rsa_a: rsa::RsaPrivateKey,
    rsa_b: rsa::RsaPrivateKey,
    rsa_unconfigured: rsa::RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
    p384: p384::ecdsa::SigningKey,
    p521: p521::ecdsa::SigningKey,
    ed25519: ed25519_compact::KeyPair,
}

/// The P-521 private scalar: google/jwt_verify_lib's ES512 test key
/// (`test/verify_jwk_ec_test.cc`), whose public `y` has a leading zero byte.
const P521_SCALAR: &str = "012a51bb18f228a90ba3247c1edb5ae7b1978fc92172778e473dedc57a5760650107a9c522660a5b0608ae60c3c7cad11aa218f5c82e60c8e3ac39f82c598daa4ac5";

fn p521_scalar() -> Vec<u8> {
    (0..P521_SCALAR.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&P521_SCALAR[at..at + 2], 16).unwrap())
        .collect()
}

const RSA_A_PEM: &str = include_str!("../keys/rsa_a.pem");
const RSA_B_PEM: &str = include_str!("../keys/rsa_b.pem");
const RSA_UNCONFIGURED_PEM: &str = include_str!("../keys/rsa_unconfigured.pem");
const P256_PEM: &str = include_str!("../keys/p256.pem");
const P384_PEM: &str = include_str!("../keys/p384.pem");
const ED25519_PEM: &str = include_str!("../keys/ed25519.pem");

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa_a: rsa::RsaPrivateKey::from_pkcs8_pem(RSA_A_PEM).unwrap(),
        rsa_b: rsa::RsaPrivateKey::from_pkcs8_pem(RSA_B_PEM).unwrap(),
        rsa_unconfigured: rsa::RsaPrivateKey::from_pkcs8_pem(RSA_UNCONFIGURED_PEM).unwrap(),
        p256: p256::ecdsa::SigningKey::from_slice(
            &ES256KeyPair::from_pem(P256_PEM).unwrap().to_bytes(),
        )
        .unwrap(),
        p384: p384::ecdsa::SigningKey::from_slice(
            &ES384KeyPair::from_pem(P384_PEM).unwrap().to_bytes(),
        )
        .unwrap(),
        p521: p521::ecdsa::SigningKey::from_slice(&p521_scalar()).unwrap(),
        ed25519: ed25519_compact::KeyPair::from_pem(ED25519_PEM).unwrap(),
    })
}

fn rsa_key(name: KeyName) -> Option<&'static rsa::RsaPrivateKey> {
    let keys = keys();
    match name {
        KeyName::RsaA => Some(&keys.rsa_a),
        KeyName::RsaB => Some(&keys.rsa_b),
        KeyName::RsaUnconfigured => Some(&keys.rsa_unconfigured),
        _ => None,
    }
}

/// PSS needs randomness; a fixed stream keeps seed tokens reproducible.
struct FixedRng(u64);

impl rsa::rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = (self.next_u64() >> 56) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rsa::rand_core::CryptoRng for FixedRng {}

/// Signs `input` with `key` by `algorithm`; `None` when they do not fit.
pub fn sign(key: KeyName, algorithm: Algorithm, input: &[u8]) -> Option<Vec<u8>> {
    use rsa::sha2::{Sha256, Sha384, Sha512};
    use rsa::{pkcs1v15, pss};
    let mut rng = FixedRng(input.len() as u64);
    if let Some(rsa_key) = rsa_key(key) {
        let rsa_key = rsa_key.clone();
        return Some(match algorithm {
            Algorithm::RS256 => pkcs1v15::SigningKey::<Sha256>::new(rsa_key)
                .sign(input)
                .to_vec(),
            Algorithm::RS384 => pkcs1v15::SigningKey::<Sha384>::new(rsa_key)
                .sign(input)
                .to_vec(),
            Algorithm::RS512 => pkcs1v15::SigningKey::<Sha512>::new(rsa_key)
                .sign(input)
                .to_vec(),
            Algorithm::PS256 => pss::BlindedSigningKey::<Sha256>::new(rsa_key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            Algorithm::PS384 => pss::BlindedSigningKey::<Sha384>::new(rsa_key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            Algorithm::PS512 => pss::BlindedSigningKey::<Sha512>::new(rsa_key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            _ => return None,
        });
    }
    let keys = keys();
    match (key, algorithm) {
        (KeyName::P256, Algorithm::ES256) => {
            use p256::ecdsa::signature::Signer;
            let signature: p256::ecdsa::Signature = keys.p256.sign(input);
            Some(signature.to_bytes().to_vec())
        }
        (KeyName::P384, Algorithm::ES384) => {
            use p384::ecdsa::signature::Signer;
            let signature: p384::ecdsa::Signature = keys.p384.sign(input);
            Some(signature.to_bytes().to_vec())
        }
        (KeyName::P521, Algorithm::ES512) => {
            use p521::ecdsa::signature::Signer;
            let signature: p521::ecdsa::Signature = keys.p521.sign(input);
            Some(signature.to_bytes().to_vec())
        }
        (KeyName::Ed25519, Algorithm::EdDSA) => Some(keys.ed25519.sk.sign(input, None).to_vec()),
        _ => None,
    }
}

/// HS256 with the `oct` JWK's secret.
pub fn hmac(input: &[u8]) -> Vec<u8> {
    hmac_sha256::HMAC::mac(input, HMAC_SECRET).to_vec()
}

/// Does `signature` over `input` verify with `key` by `algorithm`? (JWS
/// encodings: RSA as is, ECDSA as raw r||s, Ed25519 as is.)
pub fn verifies(key: KeyName, algorithm: Algorithm, input: &[u8], signature: &[u8]) -> bool {
    use rsa::sha2::{Sha256, Sha384, Sha512};
    use rsa::{pkcs1v15, pss};
    if let Some(rsa_key) = rsa_key(key) {
        let public = rsa_key.to_public_key();
        macro_rules! check {
            ($module:ident, $hash:ty) => {
                $module::Signature::try_from(signature).is_ok_and(|signature| {
                    $module::VerifyingKey::<$hash>::new(public)
                        .verify(input, &signature)
                        .is_ok()
                })
            };
        }
        return match algorithm {
            Algorithm::RS256 => check!(pkcs1v15, Sha256),
            Algorithm::RS384 => check!(pkcs1v15, Sha384),
            Algorithm::RS512 => check!(pkcs1v15, Sha512),
            Algorithm::PS256 => check!(pss, Sha256),
            Algorithm::PS384 => check!(pss, Sha384),
            Algorithm::PS512 => check!(pss, Sha512),
            _ => false,
        };
    }
    let keys = keys();
    match (key, algorithm) {
        (KeyName::P256, Algorithm::ES256) => {
            use p256::ecdsa::signature::Verifier;
            p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| keys.p256.verifying_key().verify(input, &signature).is_ok())
        }
        (KeyName::P384, Algorithm::ES384) => {
            use p384::ecdsa::signature::Verifier;
            p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| keys.p384.verifying_key().verify(input, &signature).is_ok())
        }
        (KeyName::P521, Algorithm::ES512) => {
            use p521::ecdsa::signature::Verifier;
            p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| keys.p521.verifying_key().verify(input, &signature).is_ok())
        }
        (KeyName::Ed25519, Algorithm::EdDSA) => ed25519_compact::Signature::from_slice(signature)
            .is_ok_and(|signature| keys.ed25519.pk.verify(input, &signature).is_ok()),
        _ => false,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(pem: &str, kid: &str) -> serde_json::Value {
    let components = RS256KeyPair::from_pem(pem)
        .unwrap()
        .public_key()
        .to_components();
    serde_json::json!({"kty": "RSA", "kid": kid, "n": b64(&components.n), "e": b64(&components.e)})
}

fn ec_jwk(uncompressed: &[u8], crv: &str, kid: &str) -> serde_json::Value {
    let coordinates = &uncompressed[1..];
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    serde_json::json!({"kty": "EC", "crv": crv, "kid": kid, "x": b64(x), "y": b64(y)})
}

/// Rule 0's JWKS: every configured key, plus an `oct` key and a `use: enc`
/// RSA key that kfauth must skip.
pub fn jwks_rule_0() -> serde_json::Value {
    let mut rsa_a = rsa_jwk(RSA_A_PEM, "rsa-a");
    rsa_a["alg"] = "RS256".into();
    rsa_a["use"] = "sig".into();
    let mut encryption = rsa_jwk(RSA_UNCONFIGURED_PEM, "rsa-enc");
    encryption["use"] = "enc".into();
    let p256 = ES256KeyPair::from_pem(P256_PEM).unwrap().public_key();
    let p384 = ES384KeyPair::from_pem(P384_PEM).unwrap().public_key();
    let ed = Ed25519KeyPair::from_pem(ED25519_PEM).unwrap().public_key();
    let p521 = p521::ecdsa::SigningKey::from_slice(&p521_scalar())
        .unwrap()
        .verifying_key()
        .to_sec1_point(false);
    let mut p521 = ec_jwk(p521.as_bytes(), "P-521", "ec-521");
    p521.as_object_mut().unwrap().remove("crv");
    p521["alg"] = "ES512".into();
    let minimal = |coordinate: &serde_json::Value| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(coordinate.as_str().unwrap())
            .unwrap();
        let zeros = bytes.iter().take_while(|byte| **byte == 0).count();
        b64(&bytes[zeros..])
    };
    p521["y"] = minimal(&p521["y"]).into();
    serde_json::json!({"keys": [
        rsa_a,
        rsa_jwk(RSA_B_PEM, "rsa-b"),
        ec_jwk(&p256.public_key().to_bytes_uncompressed(), "P-256", "ec-256"),
        ec_jwk(&p384.public_key().to_bytes_uncompressed(), "P-384", "ec-384"),
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&ed.to_bytes())},
        {"kty": "oct", "kid": "hs", "k": b64(HMAC_SECRET)},
        encryption,
        p521,
    ]})
}

pub fn jwks_rule_1() -> serde_json::Value {
    serde_json::json!({"keys": [rsa_jwk(RSA_B_PEM, "rsa-b")]})
}

/// The pluginConfig the token target verifies with.
pub fn config_json() -> serde_json::Value {
    serde_json::json!({
        "requireJwt": true,
        "jwtRules": [
            {
                "issuer": ISSUER,
                "audiences": [AUDIENCE, "other-audience"],
                "jwks": jwks_rule_0().to_string(),
                "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}],
            },
            {
                "issuer": OTHER_ISSUER,
                "jwks": jwks_rule_1().to_string(),
                "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "sub"}],
            },
        ],
    })
}
