//! Hand-made and malicious tokens: any header, no signature, algorithm
//! confusion, altered payloads, truncations.

use base64::engine::general_purpose::{URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

use crate::idp::exact_claims;

pub mod rsa_blocks;

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, with or without padding.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD_INDIFFERENT.decode(text).ok()
}

/// `b64(header).b64(claims).b64(signature)`, exactly as given.
pub fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

/// An unsecured JWT: header `{"alg":"none","typ":"JWT"}`, empty signature
/// (the token ends with a dot).
pub fn alg_none(claims: &Value) -> String {
    assemble(&json!({"alg": "none", "typ": "JWT"}), claims, b"")
}

/// An HS256 token whose HMAC secret is `secret`, header naming `kid`. With
/// the RSA public key (PEM, or the JWK's modulus bytes) as the secret, this is
/// the classic algorithm-confusion attack.
pub fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    HS256Key::from_bytes(secret)
        .with_key_id(kid)
        .authenticate(exact_claims(claims))
        .expect("HS256 signing")
}

/// An ES256 token signed by a freshly generated key, not the provider's,
/// under the provider's `kid`: a valid signature by the wrong key.
pub fn impostor_es256(kid: &str, claims: &Value) -> String {
    ES256KeyPair::generate()
        .with_key_id(kid)
        .sign(exact_claims(claims))
        .expect("ES256 signing")
}

/// Keeps the header and signature of `token` but swaps in other claims.
pub fn replace_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    let _payload = parts.next();
    let signature = parts.next().unwrap_or_default();
    format!(
        "{header}.{}.{signature}",
        b64url(claims.to_string().as_bytes())
    )
}

/// The JSON of segment `index` (0 header, 1 payload) of a compact token.
pub fn segment_json(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("segment present");
    let bytes = b64url_decode(segment).expect("segment is base64url");
    serde_json::from_slice(&bytes).expect("segment is JSON")
}

/// `header.payload`: the signature part dropped.
pub fn without_signature_part(token: &str) -> String {
    let mut parts = token.split('.');
    format!(
        "{}.{}",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    )
}

/// The token cut in the middle of its payload segment.
pub fn cut_in_payload(token: &str) -> String {
    let header_len = token.find('.').expect("a compact token");
    let payload_len = token[header_len + 1..].find('.').expect("a compact token");
    token[..header_len + 1 + payload_len / 2].to_string()
}

/// An HMAC token (`HS256`, `HS384` or `HS512`) whose secret is `secret`,
/// header naming `kid`: with public key material as the secret (PEM, DER,
/// the JWK's JSON, the modulus), the algorithm-confusion attack.
pub fn hmac(alg: &str, secret: &[u8], kid: &str, claims: &Value) -> String {
    let claims = exact_claims(claims);
    match alg {
        "HS256" => HS256Key::from_bytes(secret)
            .with_key_id(kid)
            .authenticate(claims),
        "HS384" => HS384Key::from_bytes(secret)
            .with_key_id(kid)
            .authenticate(claims),
        "HS512" => HS512Key::from_bytes(secret)
            .with_key_id(kid)
            .authenticate(claims),
        other => panic!("not an HMAC algorithm: {other}"),
    }
    .expect("HMAC signing")
}

/// Key id of the [`Signer`]'s RSA key.
pub const SIGNER_RSA_KID: &str = "adv-rsa";
/// Key id of the [`Signer`]'s P-256 key.
pub const SIGNER_EC_KID: &str = "adv-ec";

/// A signer for tokens whose header and payload are given byte for byte
/// (duplicate members, odd `kid`s, embedded `jwk`...), with a real signature:
/// RS256/384/512 and PS256/384/512 with one RSA-2048 key, ES256 (raw `r||s`,
/// RFC 7518 section 3.4) with one P-256 key.
pub struct Signer {
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
    rsa_public: RS256PublicKey,
    ec_public: ES256PublicKey,
}

impl Signer {
    /// Fresh keys (RSA generation takes a moment; prefer [`Signer::shared`]).
    pub fn generate() -> Signer {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let rsa_pair = RS256KeyPair::generate(2048).expect("RSA key generation");
        let der = rsa_pair.to_der().expect("DER export");
        let rsa = rsa::RsaPrivateKey::from_pkcs1_der(&der)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_der(&der))
            .expect("RSA DER import");
        let ec_pair = ES256KeyPair::generate();
        let ec = p256::ecdsa::SigningKey::from_slice(&ec_pair.to_bytes()).expect("P-256 import");
        Signer {
            rsa,
            ec,
            rsa_public: rsa_pair.public_key(),
            ec_public: ec_pair.public_key(),
        }
    }

    /// The signer shared by every test of a process.
    pub fn shared() -> &'static Signer {
        static SHARED: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
        SHARED.get_or_init(Signer::generate)
    }

    /// The RSA public JWK, without `alg`: it serves every RS* and PS* algorithm.
    pub fn rsa_jwk(&self) -> Value {
        let exported: Value =
            serde_json::from_str(&self.rsa_public.to_jwk()).expect("jwt-simple exports JSON");
        json!({"kty": "RSA", "kid": SIGNER_RSA_KID, "use": "sig",
               "n": exported["n"], "e": exported["e"]})
    }

    /// The P-256 public JWK, without `alg`.
    pub fn ec_jwk(&self) -> Value {
        let exported: Value =
            serde_json::from_str(&self.ec_public.to_jwk()).expect("jwt-simple exports JSON");
        json!({"kty": "EC", "crv": "P-256", "kid": SIGNER_EC_KID,
               "x": exported["x"], "y": exported["y"]})
    }

    /// The RSA public key as DER (SubjectPublicKeyInfo).
    pub fn rsa_public_der(&self) -> Vec<u8> {
        self.rsa_public.to_der().expect("DER export")
    }

    /// The RSA public key as PEM.
    pub fn rsa_public_pem(&self) -> String {
        self.rsa_public.to_pem().expect("PEM export")
    }

    /// The signature of `input` (the ASCII `header.payload`) under `alg`.
    pub fn signature(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        use rsa::sha2::{Sha256, Sha384, Sha512};
        use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
        let key = self.rsa.clone();
        let mut rng = CounterRng(7);
        match alg {
            "RS256" => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
                .sign(input)
                .to_vec(),
            "RS384" => rsa::pkcs1v15::SigningKey::<Sha384>::new(key)
                .sign(input)
                .to_vec(),
            "RS512" => rsa::pkcs1v15::SigningKey::<Sha512>::new(key)
                .sign(input)
                .to_vec(),
            "PS256" => rsa::pss::SigningKey::<Sha256>::new(key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            "PS384" => rsa::pss::SigningKey::<Sha384>::new(key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            "PS512" => rsa::pss::SigningKey::<Sha512>::new(key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            "ES256" => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = self.ec.sign(input);
                signature.to_bytes().to_vec()
            }
            other => panic!("the signer has no key for {other}"),
        }
    }

    /// `b64(header).b64(payload).b64(signature)` with the signature made by
    /// `signing_alg` over exactly these bytes (whatever `header` says).
    pub fn sign_bytes(&self, signing_alg: &str, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64url(header), b64url(payload));
        let signature = self.signature(signing_alg, input.as_bytes());
        format!("{input}.{}", b64url(&signature))
    }

    /// `header_segment.payload_segment.signature`: the segments as given (any
    /// alphabet, padding, whitespace), signed by `alg` over exactly that text.
    pub fn sign_segments(&self, alg: &str, header_segment: &str, payload_segment: &str) -> String {
        let input = format!("{header_segment}.{payload_segment}");
        let signature = self.signature(alg, input.as_bytes());
        format!("{input}.{}", b64url(&signature))
    }

    /// Signs `header` and `claims` (JSON, serialized as given) with the
    /// algorithm the header names.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().expect("header names alg");
        self.sign_bytes(
            alg,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
        )
    }

    /// A standard token: `{"alg":alg,"typ":"JWT","kid":..}` with the key's kid.
    pub fn sign_standard(&self, alg: &str, claims: &Value) -> String {
        let kid = if alg.starts_with("ES") {
            SIGNER_EC_KID
        } else {
            SIGNER_RSA_KID
        };
        self.sign(&json!({"alg": alg, "typ": "JWT", "kid": kid}), claims)
    }
}

/// Deterministic bytes for the PSS salt (randomness is not what is tested).
struct CounterRng(u64);

impl rsa::rand_core::RngCore for CounterRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = self.next_u64().to_be_bytes()[0];
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for CounterRng {}

/// The order n of the P-256 group (FIPS 186-4 D.1.2.3), big-endian.
pub const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `a - b` for 32-byte big-endian numbers with `a >= b`.
pub fn sub_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// `a + small` for a 32-byte big-endian number (wrapping).
pub fn add_small_be(a: &[u8; 32], small: u8) -> [u8; 32] {
    let mut out = *a;
    let mut carry = u16::from(small);
    for byte in out.iter_mut().rev() {
        let sum = u16::from(*byte) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// Replaces the signature segment of `token` with `signature`.
pub fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("a compact token");
    format!("{input}.{}", b64url(signature))
}

/// The decoded signature of `token`.
pub fn signature_of(token: &str) -> Vec<u8> {
    b64url_decode(token.rsplit('.').next().unwrap_or_default()).expect("signature is base64url")
}

/// `r || s` of a raw ES256 signature.
pub fn split_rs(raw: &[u8]) -> ([u8; 32], [u8; 32]) {
    let r: [u8; 32] = raw[..32].try_into().expect("64-byte ES256 signature");
    let s: [u8; 32] = raw[32..64].try_into().expect("64-byte ES256 signature");
    (r, s)
}

/// `r || s`.
pub fn join_rs(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    let mut raw = r.to_vec();
    raw.extend_from_slice(s);
    raw
}

/// The same ECDSA signature as ASN.1 DER (`SEQUENCE { INTEGER r, INTEGER s }`,
/// what OpenSSL and Java produce) instead of JOSE's raw `r || s`.
pub fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        value.extend(trimmed);
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    };
    let (r, s) = split_rs(raw);
    let mut body = integer(&r);
    body.extend(integer(&s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The other valid ECDSA signature of the same message: `(r, n - s)`. Exactly
/// one of `s` and `n - s` is "high" (above n/2).
pub fn ecdsa_flip_s(raw: &[u8]) -> Vec<u8> {
    let (r, s) = split_rs(raw);
    join_rs(&r, &sub_be(&P256_ORDER, &s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::{standard_claims, Alg, Idp, RSA_KID};
    use serde_json::Map;

    fn claims() -> Value {
        standard_claims("https://issuer.test", "kubeflow", "alice@example.com", &[])
    }

    #[test]
    fn alg_none_has_an_empty_signature() {
        let token = alg_none(&claims());
        assert!(token.ends_with('.'));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(segment_json(&token, 0)["alg"], "none");
        assert_eq!(segment_json(&token, 1), claims());
    }

    #[test]
    fn hs256_with_the_rsa_public_key_is_a_valid_hmac_token() {
        let pem = Idp::shared().rsa_public_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let token = hs256(pem.as_bytes(), RSA_KID, &claims());
        let header = segment_json(&token, 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], RSA_KID);
        HS256Key::from_bytes(pem.as_bytes())
            .verify_token::<Map<String, Value>>(&token, None)
            .unwrap();
    }

    #[test]
    fn payload_swaps_and_truncations() {
        let token = Idp::shared().sign(Alg::ES256, &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let other = json!({"iss": "https://issuer.test", "email": "mallory@example.com"});
        let swapped = replace_payload(&token, &other);
        let swapped_parts: Vec<&str> = swapped.split('.').collect();
        assert_eq!(swapped_parts[0], parts[0]);
        assert_eq!(swapped_parts[2], parts[2]);
        assert_eq!(segment_json(&swapped, 1), other);

        assert_eq!(
            without_signature_part(&token),
            format!("{}.{}", parts[0], parts[1])
        );
        let cut = cut_in_payload(&token);
        assert_eq!(cut.split('.').count(), 2);
        assert!(token.starts_with(&cut));
        assert!(cut.len() < parts[0].len() + 1 + parts[1].len());
    }

    #[test]
    fn the_signer_signs_every_algorithm_over_exact_bytes() {
        let signer = Signer::shared();
        let n = b64url_decode(signer.rsa_jwk()["n"].as_str().unwrap()).unwrap();
        let e = b64url_decode(signer.rsa_jwk()["e"].as_str().unwrap()).unwrap();
        let c = claims();
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let token = signer.sign_standard(alg, &c);
            let ok = match alg {
                "RS256" => RS256PublicKey::from_components(&n, &e)
                    .unwrap()
                    .verify_token::<Map<String, Value>>(&token, None)
                    .is_ok(),
                "RS384" => RS384PublicKey::from_components(&n, &e)
                    .unwrap()
                    .verify_token::<Map<String, Value>>(&token, None)
                    .is_ok(),
                "RS512" => RS512PublicKey::from_components(&n, &e)
                    .unwrap()
                    .verify_token::<Map<String, Value>>(&token, None)
                    .is_ok(),
                "PS256" => PS256PublicKey::from_components(&n, &e)
                    .unwrap()
                    .verify_token::<Map<String, Value>>(&token, None)
                    .is_ok(),
                "PS384" => PS384PublicKey::from_components(&n, &e)
                    .unwrap()
                    .verify_token::<Map<String, Value>>(&token, None)
                    .is_ok(),
                _ => PS512PublicKey::from_components(&n, &e)
                    .unwrap()
                    .verify_token::<Map<String, Value>>(&token, None)
                    .is_ok(),
            };
            assert!(ok, "{alg}");
        }
        let token = signer.sign_standard("ES256", &c);
        assert!(signer
            .ec_public
            .verify_token::<Map<String, Value>>(&token, None)
            .is_ok());
        // Both (r, s) and (r, n - s) verify; DER does not (JOSE wants r || s).
        let flipped = with_signature(&token, &ecdsa_flip_s(&signature_of(&token)));
        assert_ne!(flipped, token);
        assert!(signer
            .ec_public
            .verify_token::<Map<String, Value>>(&flipped, None)
            .is_ok());
        let der = ecdsa_der(&signature_of(&token));
        assert_eq!(der[0], 0x30);
        assert_eq!(usize::from(der[1]) + 2, der.len());
    }

    #[test]
    fn big_endian_helpers() {
        let one = add_small_be(&[0; 32], 1);
        assert_eq!(one[31], 1);
        assert_eq!(sub_be(&P256_ORDER, &P256_ORDER), [0; 32]);
        assert_eq!(add_small_be(&sub_be(&P256_ORDER, &one), 1), P256_ORDER);
    }
}
