//! JWKS documents (RFC 7517) to verifying keys, by `kid`.
//!
//! A JWK without `alg` is accepted: its algorithms are inferred from `kty`/`crv`
//! (RSA: RS*/PS*, P-256: ES256, P-384: ES384, P-521: ES512, Ed25519: EdDSA).
//! An EC key without `crv` (RFC 7518 section 6.2.1.1 requires it) is read the
//! way Envoy's jwt_authn reads it (google/jwt_verify_lib `src/jwks.cc`,
//! `extractJwkFromJwkEC`): the curve of its `alg`, or P-256 when it has no
//! `alg` either. A JWK without `kid` is kept (RFC 7517 makes `kid` optional);
//! `verify` decides which tokens may try it. A key that cannot be used is
//! skipped with a note, never an error for the whole set, and symmetric (`oct`)
//! keys are refused: a public JWKS never holds secrets, and accepting one is
//! how "HS256 signed with the public key" attacks work.

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use serde::Deserialize;

use crate::rsa_pkcs1::{RsaHash, RsaVerifyingKey};
use crate::signature_host::der::{self, Curve};
use crate::signature_host::{HashFunction, SignatureHost};

/// A key's DER `SubjectPublicKeyInfo`, built once when the key set is parsed,
/// for a [`SignatureHost`].
pub type Spki = Box<[u8]>;

/// A JWS algorithm kfauth verifies (RFC 7518 section 3.1 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Algorithm {
    pub const RSA: [Algorithm; 6] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm of a JOSE `alg` name; `None` for `none`, `HS*` and anything else.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            "EdDSA" | "Ed25519" => Algorithm::EdDSA,
            _ => return None,
        })
    }
}

/// A public key bound to one algorithm.
pub enum VerifyingKey {
    // RS* and PS*: kfauth's own RSA checks (`rsa_pkcs1`), several times faster in
    // Wasm than jwt-simple's. ES*: RustCrypto's curves; EdDSA: ed25519-compact
    // (the verifiers jwt-simple calls, called directly). RS*, ES256 and ES384
    // carry their SPKI too, for a host that verifies them.
    Rs256(RsaVerifyingKey, Spki),
    Rs384(RsaVerifyingKey, Spki),
    Rs512(RsaVerifyingKey, Spki),
    Ps256(RsaVerifyingKey),
    Ps384(RsaVerifyingKey),
    Ps512(RsaVerifyingKey),
    Es256(p256::ecdsa::VerifyingKey, Spki),
    Es384(p384::ecdsa::VerifyingKey, Spki),
    Es512(p521::ecdsa::VerifyingKey),
    EdDsa(ed25519_compact::PublicKey),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({:?})", self.algorithm())
    }
}

impl VerifyingKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::Rs256(..) => Algorithm::RS256,
            VerifyingKey::Rs384(..) => Algorithm::RS384,
            VerifyingKey::Rs512(..) => Algorithm::RS512,
            VerifyingKey::Ps256(_) => Algorithm::PS256,
            VerifyingKey::Ps384(_) => Algorithm::PS384,
            VerifyingKey::Ps512(_) => Algorithm::PS512,
            VerifyingKey::Es256(..) => Algorithm::ES256,
            VerifyingKey::Es384(..) => Algorithm::ES384,
            VerifyingKey::Es512(_) => Algorithm::ES512,
            VerifyingKey::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    /// The host's verdict on `signature` over `signed` with this key: `None`
    /// when the key's algorithm stays in Wasm or the host gave no answer. An
    /// RSA signature not exactly as long as the modulus, or an ECDSA one not
    /// exactly `r || s` with both in [1, n - 1], is refused without asking.
    pub fn host_check(
        &self,
        signed: &[u8],
        signature: &[u8],
        host: &dyn SignatureHost,
    ) -> Option<bool> {
        let rsa = |hash, key: &RsaVerifyingKey, spki: &[u8]| {
            if signature.len() != key.modulus_bytes() {
                return Some(false);
            }
            host.verify(hash, spki, signature, signed)
        };
        let ecdsa = |hash, curve, spki: &[u8]| match der::ecdsa_signature(curve, signature) {
            Some(signature) => host.verify(hash, spki, &signature, signed),
            None => Some(false),
        };
        match self {
            VerifyingKey::Rs256(key, spki) => rsa(HashFunction::Sha256, key, spki),
            VerifyingKey::Rs384(key, spki) => rsa(HashFunction::Sha384, key, spki),
            VerifyingKey::Rs512(key, spki) => rsa(HashFunction::Sha512, key, spki),
            VerifyingKey::Es256(_, spki) => ecdsa(HashFunction::Sha256, Curve::P256, spki),
            VerifyingKey::Es384(_, spki) => ecdsa(HashFunction::Sha384, Curve::P384, spki),
            _ => None,
        }
    }

    /// Whether the signature of a compact JWS verifies, and nothing else: the
    /// header and claims were read by [`crate::verify::decode`], and the time
    /// claims are checked by the caller, the same way whichever code checked
    /// the signature. With a `host`, RS* and ES256/ES384 are the host's to
    /// check; when it gives no answer, kfauth's own code checks.
    pub fn verify_signature(&self, token: &str, host: Option<&dyn SignatureHost>) -> bool {
        let Some((signed, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature)
        else {
            return false;
        };
        let (signed, signature) = (signed.as_bytes(), signature.as_slice());
        if let Some(valid) = host.and_then(|host| self.host_check(signed, signature, host)) {
            return valid;
        }
        match self {
            VerifyingKey::Rs256(key, _) => key.verify(RsaHash::Sha256, signed, signature),
            VerifyingKey::Rs384(key, _) => key.verify(RsaHash::Sha384, signed, signature),
            VerifyingKey::Rs512(key, _) => key.verify(RsaHash::Sha512, signed, signature),
            VerifyingKey::Ps256(key) => key.verify_pss(RsaHash::Sha256, signed, signature),
            VerifyingKey::Ps384(key) => key.verify_pss(RsaHash::Sha384, signed, signature),
            VerifyingKey::Ps512(key) => key.verify_pss(RsaHash::Sha512, signed, signature),
            // Exactly `r || s` (RFC 7518 section 3.4), r and s in [1, n - 1];
            // `from_slice` refuses anything else. A high S verifies, as in
            // jwt-simple and BoringSSL: ECDSA signatures are malleable, and a
            // second valid signature of the same claims grants nothing more.
            VerifyingKey::Es256(key, _) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signed, &signature).is_ok()),
            VerifyingKey::Es384(key, _) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signed, &signature).is_ok()),
            VerifyingKey::Es512(key) => p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signed, &signature).is_ok()),
            // 64 bytes; ed25519-compact refuses S not below the group order.
            VerifyingKey::EdDsa(key) => ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signed, &signature).is_ok()),
        }
    }
}

/// One JWK: its `kid` and a verifying key for each algorithm it may be used with.
#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    pub keys: Vec<VerifyingKey>,
}

impl Jwk {
    pub fn key_for(&self, algorithm: Algorithm) -> Option<&VerifyingKey> {
        self.keys.iter().find(|key| key.algorithm() == algorithm)
    }
}

/// The usable keys of one JWKS document, and the host that may check their
/// signatures (none: kfauth's own code checks them all).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
    signature_host: Option<&'static dyn SignatureHost>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Jwk> {
        self.keys.iter()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|jwk| jwk.kid.as_deref() == Some(kid))
    }

    pub fn signature_host(&self) -> Option<&'static dyn SignatureHost> {
        self.signature_host
    }

    /// Lets `host` check the signatures this set's keys verify (see
    /// [`crate::keystore::signature_choice::choose`]).
    pub fn use_signature_host(&mut self, host: Option<&'static dyn SignatureHost>) {
        self.signature_host = host;
    }
}

/// A parsed JWKS: the usable keys, and a note for each key that was skipped.
#[derive(Debug)]
pub struct ParsedJwks {
    pub keys: KeySet,
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// A document that is not a JWKS (RFC 7517 section 5: an object with `keys`).
#[derive(Debug)]
pub struct JwksError(serde_json::Error);

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a JWKS document ({})", self.0)
    }
}

impl std::error::Error for JwksError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Parses a JWKS document. Fails only when the document itself is not a JWKS;
/// keys that cannot be used are skipped with a note.
pub fn parse_jwks(document: &[u8]) -> Result<ParsedJwks, JwksError> {
    let document: JwksDocument = crate::json::read_object(document).map_err(JwksError)?;
    let mut parsed = ParsedJwks {
        keys: KeySet::default(),
        skipped: Vec::new(),
    };
    for (index, value) in document.keys.into_iter().enumerate() {
        let raw: RawJwk = match serde_json::from_value(value) {
            Ok(raw) => raw,
            Err(problem) => {
                parsed.skipped.push(format!("keys[{index}]: {problem}"));
                continue;
            }
        };
        let label = match &raw.kid {
            Some(kid) => format!("keys[{index}] (kid {kid})"),
            None => format!("keys[{index}]"),
        };
        match jwk_from_raw(&raw) {
            Ok(jwk) => parsed.keys.keys.push(jwk),
            Err(problem) => parsed.skipped.push(format!("{label}: {problem}")),
        }
    }
    Ok(parsed)
}

fn jwk_from_raw(raw: &RawJwk) -> Result<Jwk, String> {
    if let Some(usage) = &raw.usage {
        if usage != "sig" {
            return Err(format!("use is `{usage}`, not `sig`"));
        }
    }
    let declared = match &raw.alg {
        Some(name) => {
            Some(Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg `{name}`"))?)
        }
        None => None,
    };
    let possible: Vec<Algorithm> = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => Algorithm::RSA.to_vec(),
        ("EC", Some("P-256")) => vec![Algorithm::ES256],
        ("EC", Some("P-384")) => vec![Algorithm::ES384],
        ("EC", Some("P-521")) => vec![Algorithm::ES512],
        // No `crv`: the curve its `alg` names, as Envoy reads such a key.
        ("EC", None) => match declared {
            Some(algorithm @ (Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512)) => {
                vec![algorithm]
            }
            Some(algorithm) => return Err(format!("alg {algorithm:?} does not fit key type `EC`")),
            // Neither `crv` nor `alg`: P-256, Envoy's default (its test
            // JwksECMissingBothAlgCrvES256); other coordinates are refused below.
            None => vec![Algorithm::ES256],
        },
        ("OKP", Some("Ed25519")) => vec![Algorithm::EdDSA],
        ("oct", _) => return Err("symmetric keys are refused".into()),
        (kty, crv) => {
            return Err(format!(
                "unsupported key type `{kty}`{}",
                crv.map(|crv| format!(" / curve `{crv}`"))
                    .unwrap_or_default()
            ))
        }
    };
    let algorithms = match declared {
        Some(algorithm) if possible.contains(&algorithm) => vec![algorithm],
        Some(algorithm) => {
            return Err(format!(
                "alg {algorithm:?} does not fit key type `{}`",
                raw.kty
            ))
        }
        None => possible,
    };
    let keys = algorithms
        .into_iter()
        .map(|algorithm| verifying_key(raw, algorithm))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Jwk {
        kid: raw.kid.clone(),
        keys,
    })
}

fn member(raw: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = raw.as_deref().ok_or_else(|| format!("missing `{name}`"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// The ECDSA key of the point (x, y), each coordinate as long as the curve's
/// field elements: `None` when a coordinate is not below the field's prime or
/// the point is not on the curve (the identity has no coordinates). The check
/// `from_sec1_bytes` makes of an uncompressed point, without bringing into the
/// module the square roots it needs for compressed ones (27 KB of it).
macro_rules! ecdsa_key {
    ($curve:ident, $x:expr, $y:expr) => {{
        use $curve::elliptic_curve::point::AffineCoordinates;
        let x = $curve::FieldBytes::try_from($x).ok();
        let y = $curve::FieldBytes::try_from($y).ok();
        x.zip(y)
            .and_then(|(x, y)| Option::from($curve::AffinePoint::from_coordinates(&x, &y)))
            .and_then(|point| $curve::ecdsa::VerifyingKey::from_affine(point).ok())
    }};
}

fn verifying_key(raw: &RawJwk, algorithm: Algorithm) -> Result<VerifyingKey, String> {
    let invalid = |problem: &dyn std::fmt::Display| format!("invalid {algorithm:?} key: {problem}");
    match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            let n = member(&raw.n, "n")?;
            let e = member(&raw.e, "e")?;
            // RFC 7518 section 3.3: RSA keys of 2048 bits or more.
            let significant = n.iter().skip_while(|byte| **byte == 0).count();
            if significant < 256 {
                return Err(format!(
                    "RSA modulus of {} bits is too small",
                    significant.saturating_mul(8)
                ));
            }
            // kfauth's key policy (size, exponent) holds whoever checks signatures.
            let key =
                RsaVerifyingKey::from_components(&n, &e).map_err(|problem| invalid(&problem))?;
            let spki = || der::rsa_spki(&n, &e).into_boxed_slice();
            Ok(match algorithm {
                Algorithm::RS256 => VerifyingKey::Rs256(key, spki()),
                Algorithm::RS384 => VerifyingKey::Rs384(key, spki()),
                Algorithm::RS512 => VerifyingKey::Rs512(key, spki()),
                Algorithm::PS256 => VerifyingKey::Ps256(key),
                Algorithm::PS384 => VerifyingKey::Ps384(key),
                _ => VerifyingKey::Ps512(key),
            })
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
            let (size, curve) = match algorithm {
                Algorithm::ES256 => (32, "P-256"),
                Algorithm::ES384 => (48, "P-384"),
                _ => (66, "P-521"),
            };
            let x = member(&raw.x, "x")?;
            let y = member(&raw.y, "y")?;
            if x.len() > size || y.len() > size {
                let read_as = match (&raw.crv, &raw.alg) {
                    (Some(_), _) => String::new(),
                    (None, Some(alg)) => format!(" (no `crv`: read as {curve}, from alg {alg})"),
                    (None, None) => format!(" (no `crv` or `alg`: read as {curve}, as Envoy does)"),
                };
                return Err(format!("`x`/`y` longer than {size} bytes{read_as}"));
            }
            // SEC1 uncompressed point: 0x04 || x || y, each coordinate `size`
            // bytes. RFC 7518 section 6.2.1.2 wants them written at that size,
            // but a coordinate written without its leading zero bytes is the
            // same number, and Envoy reads it so (BN_bin2bn): jwt_verify_lib's
            // own P-521 test key has a 65-byte `y`, as half of all P-521
            // coordinates have when written minimally. They are padded here;
            // the curve check below still refuses a point that is not on it.
            let mut point = Vec::with_capacity(size.saturating_mul(2).saturating_add(1));
            point.push(0x04);
            for coordinate in [&x, &y] {
                point.extend(std::iter::repeat_n(
                    0,
                    size.saturating_sub(coordinate.len()),
                ));
                point.extend_from_slice(coordinate);
            }
            // The curve check comes first, whoever checks signatures.
            let not_on = || invalid(&format_args!("not a point of {curve}"));
            let (x, y) = point
                .get(1..)
                .and_then(|coordinates| coordinates.split_at_checked(size))
                .ok_or_else(not_on)?;
            Ok(match algorithm {
                Algorithm::ES256 => VerifyingKey::Es256(
                    ecdsa_key!(p256, x, y).ok_or_else(not_on)?,
                    der::ec_spki(Curve::P256, &point).into_boxed_slice(),
                ),
                Algorithm::ES384 => VerifyingKey::Es384(
                    ecdsa_key!(p384, x, y).ok_or_else(not_on)?,
                    der::ec_spki(Curve::P384, &point).into_boxed_slice(),
                ),
                _ => VerifyingKey::Es512(ecdsa_key!(p521, x, y).ok_or_else(not_on)?),
            })
        }
        Algorithm::EdDSA => {
            let x = member(&raw.x, "x")?;
            if x.len() != 32 {
                return Err("`x` must be 32 bytes".into());
            }
            // As jwt-simple: a point of the curve, and no weak key (small order).
            let key = ed25519_compact::PublicKey::from_slice(&x)
                .ok()
                .filter(|key| key.validate().is_ok())
                .ok_or_else(|| invalid(&"not an Ed25519 point, or a weak one"))?;
            Ok(VerifyingKey::EdDsa(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ec_jwk, ed_jwk, rsa_jwk};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn jwks(keys: Vec<serde_json::Value>) -> ParsedJwks {
        parse_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn rsa_key_without_alg_serves_every_rsa_algorithm() {
        let parsed = jwks(vec![rsa_jwk("r1", None)]);
        let jwk = parsed.keys.iter().next().unwrap();
        for algorithm in Algorithm::RSA {
            assert!(jwk.key_for(algorithm).is_some(), "{algorithm:?}");
        }
        assert!(jwk.key_for(Algorithm::ES256).is_none());
        assert!(parsed.keys.has_kid("r1"));
    }

    #[test]
    fn declared_alg_limits_the_key() {
        let parsed = jwks(vec![rsa_jwk("r1", Some("PS256"))]);
        let jwk = parsed.keys.iter().next().unwrap();
        assert!(jwk.key_for(Algorithm::PS256).is_some());
        assert!(jwk.key_for(Algorithm::RS256).is_none());
    }

    #[test]
    fn ec_and_okp_keys_are_inferred_from_the_curve() {
        let parsed = jwks(vec![ec_jwk("e1"), ed_jwk("d1")]);
        assert_eq!(parsed.keys.len(), 2, "{:?}", parsed.skipped);
        let mut keys = parsed.keys.iter();
        assert!(keys.next().unwrap().key_for(Algorithm::ES256).is_some());
        assert!(keys.next().unwrap().key_for(Algorithm::EdDSA).is_some());
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let mut bad_alg = rsa_jwk("r2", None);
        bad_alg["alg"] = "ES256".into();
        let mut bad_n = rsa_jwk("r3", None);
        bad_n["n"] = "!!!".into();
        let mut small = rsa_jwk("r4", None);
        small["n"] = "AQAB".into();
        let mut encryption = rsa_jwk("r5", None);
        encryption["use"] = "enc".into();
        let parsed = jwks(vec![
            rsa_jwk("good", None),
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"}),
            serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            serde_json::json!({"kid": "no-kty"}),
            serde_json::json!("not an object"),
            bad_alg,
            bad_n,
            small,
            encryption,
            serde_json::json!({"kty": "RSA", "kid": "no-e", "n": "AQAB"}),
        ]);
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.skipped.len(), 9, "{:?}", parsed.skipped);
        assert!(parsed.skipped.iter().any(|note| note.contains("symmetric")));
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        assert!(parse_jwks(b"{").is_err());
        assert!(parse_jwks(b"{\"keys\": 5}").is_err());
        assert!(parse_jwks(b"[]").is_err());
        // serde would read the struct from an array: `[[]]` is not a JWKS.
        assert!(parse_jwks(b" [[]]").is_err());
        assert_eq!(
            parse_jwks(b" [[]]").unwrap_err().to_string(),
            "not a JWKS document (not a JSON object)"
        );
        // serde alone skips a member it does not name without reading its escapes.
        let problem = parse_jwks(br#"{"keys": [], "x": "\ud800"}"#).unwrap_err();
        assert!(problem.to_string().contains("escape"), "{problem}");
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(Algorithm::from_name("RS256"), Some(Algorithm::RS256));
        assert_eq!(Algorithm::from_name("EdDSA"), Some(Algorithm::EdDSA));
        for refused in ["none", "HS256", "HS512", "rs256", ""] {
            assert_eq!(Algorithm::from_name(refused), None);
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod jwt_simple_oracle;
