//! `choose` and the known-answer check with hosts that fail in each way, and
//! (natively) host-checked signatures against kfauth's own code, with a host
//! made of RustCrypto through jwt-simple as the oracle.

use super::*;
use crate::keystore::signature_choice::choose;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Gives no answer, as an Envoy without `verify_signature`.
#[derive(Debug)]
pub(crate) struct Absent;

impl SignatureHost for Absent {
    fn verify(&self, _: HashFunction, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        None
    }
}

/// Accepts every signature it is asked about.
#[derive(Debug)]
struct Credulous;

impl SignatureHost for Credulous {
    fn verify(&self, _: HashFunction, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        Some(true)
    }
}

pub(crate) static ABSENT: Absent = Absent;
static CREDULOUS: Credulous = Credulous;

#[test]
fn wasm_mode_asks_nothing_of_the_host() {
    let choice = choose(SignatureVerification::Wasm, &CREDULOUS, false).unwrap();
    assert!(choice.host.is_none());
    assert!(
        choice.note.contains("signatureVerification: wasm"),
        "{}",
        choice.note
    );
}

#[test]
fn auto_falls_back_to_wasm_when_the_host_gives_no_answer() {
    let choice = choose(SignatureVerification::Auto, &ABSENT, false).unwrap();
    assert!(choice.host.is_none());
    assert!(
        choice.note.contains("no answer for a RS256 signature"),
        "{}",
        choice.note
    );
}

#[test]
fn auto_falls_back_to_wasm_when_the_host_answers_wrongly() {
    let choice = choose(SignatureVerification::Auto, &CREDULOUS, false).unwrap();
    assert!(choice.host.is_none());
    assert!(
        choice.note.contains("a bad RS256 signature was accepted"),
        "{}",
        choice.note
    );
}

#[test]
fn host_mode_refuses_a_host_that_fails_the_check() {
    for host in [&ABSENT as &'static dyn SignatureHost, &CREDULOUS] {
        let problem = choose(SignatureVerification::Host, host, false).unwrap_err();
        assert_eq!(problem.field, "signatureVerification");
        assert!(problem.message.contains("known-answer check"), "{problem}");
    }
}

#[test]
fn modes_are_read_from_lower_case_names() {
    for (name, mode) in [
        ("auto", SignatureVerification::Auto),
        ("host", SignatureVerification::Host),
        ("wasm", SignatureVerification::Wasm),
    ] {
        let read: SignatureVerification = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        assert_eq!(read, mode);
    }
    assert!(serde_json::from_str::<SignatureVerification>("\"Host\"").is_err());
}

#[cfg(not(target_arch = "wasm32"))]
mod oracle {
    use super::*;
    use crate::jwks::{parse_jwks, Algorithm, KeySet};
    use base64::Engine;
    use jwt_simple::prelude::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Envoy's contract checked with RustCrypto: the key is read from its
    /// SPKI, an ECDSA signature from its DER, the text verified as the JWS it
    /// came from (time checks off).
    #[derive(Debug)]
    pub struct RustCrypto;

    impl SignatureHost for RustCrypto {
        fn verify(
            &self,
            hash: HashFunction,
            public_key: &[u8],
            signature: &[u8],
            text: &[u8],
        ) -> Option<bool> {
            let text = std::str::from_utf8(text).ok()?;
            let options = Some(VerificationOptions {
                artificial_time: Some(UnixTimeStamp::from_secs(0)),
                time_tolerance: Some(UnixTimeStamp::from_secs(0)),
                accept_future: true,
                ..VerificationOptions::default()
            });
            let token = |raw: &[u8]| format!("{text}.{}", b64(raw));
            let verdict = if let Ok(signature) = p256::ecdsa::Signature::from_der(signature) {
                let key = ES256PublicKey::from_der(public_key).ok()?;
                (hash == HashFunction::Sha256).then_some(())?;
                key.verify_token::<NoCustomClaims>(&token(&signature.to_bytes()), options)
            } else if let Ok(signature) = p384::ecdsa::Signature::from_der(signature) {
                let key = ES384PublicKey::from_der(public_key).ok()?;
                (hash == HashFunction::Sha384).then_some(())?;
                key.verify_token::<NoCustomClaims>(&token(&signature.to_bytes()), options)
            } else {
                let token = token(signature);
                match hash {
                    HashFunction::Sha256 => RS256PublicKey::from_der(public_key)
                        .ok()?
                        .verify_token::<NoCustomClaims>(&token, options),
                    HashFunction::Sha384 => RS384PublicKey::from_der(public_key)
                        .ok()?
                        .verify_token::<NoCustomClaims>(&token, options),
                    HashFunction::Sha512 => RS512PublicKey::from_der(public_key)
                        .ok()?
                        .verify_token::<NoCustomClaims>(&token, options),
                }
            };
            Some(verdict.is_ok())
        }
    }

    static RUSTCRYPTO: RustCrypto = RustCrypto;

    #[test]
    fn a_correct_host_passes_the_check_and_is_chosen() {
        for mode in [SignatureVerification::Auto, SignatureVerification::Host] {
            let choice = choose(mode, &RUSTCRYPTO, false).unwrap();
            assert!(choice.host.is_some(), "{}", choice.note);
        }
    }

    #[test]
    fn a_broken_check_fails_a_correct_host() {
        let choice = choose(SignatureVerification::Auto, &RUSTCRYPTO, true).unwrap();
        assert!(choice.host.is_none());
        assert!(
            choice.note.contains("a good RS256 signature was refused"),
            "{}",
            choice.note
        );
        assert!(choose(SignatureVerification::Host, &RUSTCRYPTO, true).is_err());
    }

    /// A signed token and the key set of its key, for each algorithm.
    fn signed(algorithm: Algorithm) -> (String, KeySet) {
        let claims = Claims::create(Duration::from_secs(60)).with_subject("someone");
        let rsa =
            |n: Vec<u8>, e: Vec<u8>| json!({"kty": "RSA", "kid": "k", "n": b64(&n), "e": b64(&e)});
        let ec = |crv: &str, point: Vec<u8>, size: usize| {
            json!({"kty": "EC", "kid": "k", "crv": crv,
                "x": b64(&point[1..1 + size]), "y": b64(&point[1 + size..])})
        };
        macro_rules! rsa_token {
            ($pair:ty) => {{
                let pair = <$pair>::generate(2048).unwrap().with_key_id("k");
                let components = pair.public_key().to_components();
                (pair.sign(claims).unwrap(), rsa(components.n, components.e))
            }};
        }
        let (token, jwk) = match algorithm {
            Algorithm::RS256 => rsa_token!(RS256KeyPair),
            Algorithm::RS384 => rsa_token!(RS384KeyPair),
            Algorithm::RS512 => rsa_token!(RS512KeyPair),
            Algorithm::PS256 => rsa_token!(PS256KeyPair),
            Algorithm::ES256 => {
                let pair = ES256KeyPair::generate().with_key_id("k");
                let point = pair.public_key().public_key().to_bytes_uncompressed();
                (pair.sign(claims).unwrap(), ec("P-256", point, 32))
            }
            Algorithm::ES384 => {
                let pair = ES384KeyPair::generate().with_key_id("k");
                let point = pair.public_key().public_key().to_bytes_uncompressed();
                (pair.sign(claims).unwrap(), ec("P-384", point, 48))
            }
            other => panic!("{other:?} not generated here"),
        };
        let parsed = parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
        (token, parsed.keys)
    }

    /// The token with its signature replaced.
    fn with_signature(token: &str, signature: &[u8]) -> String {
        let (signed, _) = token.rsplit_once('.').unwrap();
        format!("{signed}.{}", b64(signature))
    }

    /// Altered signatures: peer_vectors' (bits flipped, cut, lengthened, all
    /// zero), and a leading zero byte, r zero, s out of range (ECDSA).
    fn forgeries(token: &str) -> Vec<String> {
        let (_, signature) = token.rsplit_once('.').unwrap();
        let good = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        let mut forged = crate::peer_vectors::altered_signatures(token);
        forged.push(with_signature(token, &[&[0][..], good.as_slice()].concat()));
        let half = good.len() / 2;
        let mut zero_r = good.clone();
        zero_r[..half].fill(0);
        forged.push(with_signature(token, &zero_r));
        let mut big_s = good.clone();
        big_s[half..].fill(0xff);
        forged.push(with_signature(token, &big_s));
        forged
    }

    #[test]
    fn host_and_wasm_agree_on_every_algorithm() {
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::ES384,
        ] {
            let (token, mut keys) = signed(algorithm);
            let key = keys.iter().next().unwrap().key_for(algorithm).unwrap();
            assert!(key.verify_signature(&token, None), "{algorithm:?}");
            assert!(
                key.verify_signature(&token, Some(&RUSTCRYPTO)),
                "{algorithm:?}"
            );
            for forged in forgeries(&token) {
                assert!(!key.verify_signature(&forged, None), "{algorithm:?}");
                assert!(
                    !key.verify_signature(&forged, Some(&RUSTCRYPTO)),
                    "{algorithm:?}"
                );
            }
            // Through the key set, as requests see it.
            keys.use_signature_host(Some(&RUSTCRYPTO));
            let key = keys.iter().next().unwrap().key_for(algorithm).unwrap();
            assert!(key.verify_signature(&token, keys.signature_host()));
        }
    }

    #[test]
    fn only_rs_and_es256_es384_are_the_hosts_and_malformed_ones_never_reach_it() {
        for (algorithm, asked) in [
            (Algorithm::RS256, true),
            (Algorithm::RS512, true),
            (Algorithm::ES256, true),
            (Algorithm::ES384, true),
            (Algorithm::PS256, false),
        ] {
            let (token, keys) = signed(algorithm);
            let key = keys.iter().next().unwrap().key_for(algorithm).unwrap();
            let (signed_part, signature) = token.rsplit_once('.').unwrap();
            let mut bad = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(signature)
                .unwrap();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            // A host that accepts everything decides for the algorithms it is asked about.
            let forged = with_signature(&token, &bad);
            assert_eq!(
                key.verify_signature(&forged, Some(&CREDULOUS)),
                asked,
                "{algorithm:?}"
            );
            // ... but not for a signature of the wrong length or with r = 0.
            bad.push(0);
            assert_eq!(
                key.host_check(signed_part.as_bytes(), &bad, &CREDULOUS),
                asked.then_some(false)
            );
            bad.pop();
            let half = bad.len() / 2;
            bad[..half].fill(0);
            let expected = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => Some(false),
                Algorithm::PS256 => None,
                _ => Some(true),
            };
            assert_eq!(
                key.host_check(signed_part.as_bytes(), &bad, &CREDULOUS),
                expected,
                "{algorithm:?}"
            );
            // A host that gives no answer leaves the check to kfauth's code.
            assert!(key.verify_signature(&token, Some(&ABSENT)));
            assert!(!key.verify_signature(&forged, Some(&ABSENT)));
        }
    }
}
