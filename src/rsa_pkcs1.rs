//! RSA signature verification (RFC 8017): RSASSA-PKCS1-v1_5 (§8.2.2) for RS256, RS384 and
//! RS512, and RSASSA-PSS (§8.1.2, `pss`) for PS256, PS384 and PS512.
//!
//! Every input here is public (key, message, signature), so the exponentiation is
//! variable-time: one Montgomery squaring per exponent bit and one multiplication per set
//! bit, 16 squarings and one multiplication for e = 65537 (`modexp`, written for wasm32).
//!
//! The decrypted block is never parsed: the expected EMSA-PKCS1-v1_5 block (§9.2) is
//! encoded from the message and compared byte for byte, which rules out the padding and
//! DigestInfo parsing forgeries of lenient verifiers.

mod modexp;
mod pss;

use modexp::Modulus;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::fmt;

/// Shortest accepted modulus: RFC 7518 §3.3 requires 2048 bits or more for RS*.
pub const MIN_MODULUS_BITS: usize = 2048;
/// Longest accepted modulus; bounds the cost of one verification.
pub const MAX_MODULUS_BITS: usize = 8192;
/// Largest accepted public exponent, 2^33 − 1 (the bound rsa 0.9 applies). It keeps the
/// exponentiation short, and as every accepted modulus is above 2^2047 it also gives e < n.
pub const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// The hash of RS256, RS384 or RS512 (RFC 7518 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaHash {
    Sha256,
    Sha384,
    Sha512,
}

impl RsaHash {
    /// DER of DigestInfo up to the digest: AlgorithmIdentifier with NULL parameters, then the
    /// OCTET STRING header (RFC 8017 §9.2, note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            RsaHash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            RsaHash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            RsaHash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        self.digest_of(&[message])
    }

    /// The hash of the concatenation of `parts`.
    fn digest_of(self, parts: &[&[u8]]) -> Vec<u8> {
        fn chain<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().to_vec()
        }
        match self {
            RsaHash::Sha256 => chain::<Sha256>(parts),
            RsaHash::Sha384 => chain::<Sha384>(parts),
            RsaHash::Sha512 => chain::<Sha512>(parts),
        }
    }

    /// Output length in bytes (RFC 8017's hLen).
    fn output_len(self) -> usize {
        match self {
            RsaHash::Sha256 => 32,
            RsaHash::Sha384 => 48,
            RsaHash::Sha512 => 64,
        }
    }
}

/// Why a JWK's `n` and `e` do not make an accepted RSA verifying key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    /// The modulus has fewer than [`MIN_MODULUS_BITS`] bits.
    ModulusTooShort { bits: usize },
    /// The modulus has more than [`MAX_MODULUS_BITS`] bits.
    ModulusTooLong { bits: usize },
    /// The modulus is even, so it is not a product of two odd primes.
    EvenModulus,
    /// The public exponent is below 3.
    ExponentTooSmall,
    /// The public exponent is even.
    EvenExponent,
    /// The public exponent is above [`MAX_EXPONENT`].
    ExponentTooLarge,
}

impl fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsaKeyError::ModulusTooShort { bits } => write!(
                f,
                "RSA modulus is {bits} bits, shorter than the minimum {MIN_MODULUS_BITS}"
            ),
            RsaKeyError::ModulusTooLong { bits } => write!(
                f,
                "RSA modulus is {bits} bits, longer than the maximum {MAX_MODULUS_BITS}"
            ),
            RsaKeyError::EvenModulus => write!(f, "RSA modulus is even"),
            RsaKeyError::ExponentTooSmall => write!(f, "RSA public exponent is below 3"),
            RsaKeyError::EvenExponent => write!(f, "RSA public exponent is even"),
            RsaKeyError::ExponentTooLarge => {
                write!(f, "RSA public exponent is above {MAX_EXPONENT}")
            }
        }
    }
}

impl std::error::Error for RsaKeyError {}

/// An RSA public key prepared for verification: built once (at configuration or JWKS load),
/// then reused for every token, so the Montgomery constants are computed once.
#[derive(Debug, Clone)]
pub struct RsaVerifyingKey {
    modulus: Modulus,
    /// Modulus length in bytes (RFC 8017's k): every signature must be exactly this long.
    k: usize,
    bits: usize,
    e: u64,
}

impl RsaVerifyingKey {
    /// From a JWK's big-endian `n` and `e` (RFC 7518 §6.3.1); leading zero bytes are ignored.
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, RsaKeyError> {
        let n = trim_leading_zeros(n);
        let bits = bit_length(n);
        if bits < MIN_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooShort { bits });
        }
        if bits > MAX_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooLong { bits });
        }
        let e = exponent(e)?;
        Ok(RsaVerifyingKey {
            modulus: Modulus::new(n, bits).ok_or(RsaKeyError::EvenModulus)?,
            k: bits.div_ceil(8),
            bits,
            e,
        })
    }

    /// Length of the modulus in bytes (k): every signature is exactly this long.
    pub fn modulus_bytes(&self) -> usize {
        self.k
    }

    /// Length of the modulus in bits.
    pub fn modulus_bits(&self) -> usize {
        self.bits
    }

    /// RFC 8017 §8.2.2: true only if `signature` is exactly k bytes, its integer s is below
    /// n, and s^e mod n is the EMSA-PKCS1-v1_5 encoding of `hash(message)`.
    pub fn verify(&self, hash: RsaHash, message: &[u8], signature: &[u8]) -> bool {
        let Some(expected) = emsa_pkcs1_v1_5(hash, &hash.digest(message), self.k) else {
            return false;
        };
        match self.public_op(signature) {
            Some(em) => em == expected,
            None => false,
        }
    }

    /// RFC 8017 §8.1.2: true only if `signature` is exactly k bytes, its integer s is below
    /// n, and s^e mod n, as emLen = ⌈(modBits − 1) / 8⌉ bytes, is an EMSA-PSS encoding of
    /// `hash(message)` with MGF1 of the same hash and a salt as long as the hash.
    pub fn verify_pss(&self, hash: RsaHash, message: &[u8], signature: &[u8]) -> bool {
        let Some(block) = self.public_op(signature) else {
            return false;
        };
        // I2OSP(m, emLen): when modBits − 1 is a multiple of 8, emLen is k − 1 and the
        // k-byte block must start with a zero byte.
        let em_bits = self.bits.saturating_sub(1);
        let em_len = em_bits.div_ceil(8);
        let (high, em) = block.split_at(block.len().saturating_sub(em_len));
        if high.iter().any(|&byte| byte != 0) {
            return false;
        }
        pss::emsa_pss_verify(hash, &hash.digest(message), em, em_bits)
    }

    /// RSAVP1 (§5.2.2) with I2OSP to k bytes: s^e mod n, or None if the signature is not
    /// k bytes long or its integer is not below n.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        self.modulus.pow_be(signature, self.e, self.k)
    }
}

/// EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2) of an already computed digest:
/// 0x00 0x01, at least eight 0xFF bytes, 0x00, DigestInfo. None if k is too short.
fn emsa_pkcs1_v1_5(hash: RsaHash, digest: &[u8], k: usize) -> Option<Vec<u8>> {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len().checked_add(digest.len())?;
    let ps_len = k.checked_sub(t_len)?.checked_sub(3)?;
    if ps_len < 8 {
        return None;
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(ps_len.saturating_add(2), 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(digest);
    Some(em)
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

fn bit_length(trimmed: &[u8]) -> usize {
    match trimmed.first() {
        None => 0,
        Some(&top) => (trimmed.len().saturating_sub(1))
            .saturating_mul(8)
            .saturating_add(8usize.saturating_sub(top.leading_zeros() as usize)),
    }
}

fn exponent(e: &[u8]) -> Result<u64, RsaKeyError> {
    let e = trim_leading_zeros(e);
    if e.len() > 8 {
        return Err(RsaKeyError::ExponentTooLarge);
    }
    let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e < 3 {
        Err(RsaKeyError::ExponentTooSmall)
    } else if e % 2 == 0 {
        Err(RsaKeyError::EvenExponent)
    } else if e > MAX_EXPONENT {
        Err(RsaKeyError::ExponentTooLarge)
    } else {
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    //! Every verdict is checked against jwt-simple (rsa 0.9) wherever it can take the key
    //! (2048–4096 bits, e = 65537), and against OpenSSL-made signatures where it cannot.
    //! Signatures over arbitrary blocks are made here with the private exponent, so forged
    //! paddings are real RSA signatures that only a strict verifier refuses.

    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::{BoxedUint, Odd};
    use jwt_simple::prelude::*;
    use serde_json::{json, Value};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const K2048: &str = include_str!("rsa_pkcs1/testdata/k2048.pem");
    const K3072: &str = include_str!("rsa_pkcs1/testdata/k3072.pem");
    const K4096: &str = include_str!("rsa_pkcs1/testdata/k4096.pem");
    const K8192: &str = include_str!("rsa_pkcs1/testdata/k8192.pem");
    const K2048_E3: &str = include_str!("rsa_pkcs1/testdata/k2048e3.pem");
    /// `openssl dgst -sha* -sign` of this message with the keys above.
    const KAT_MESSAGE: &[u8] = include_bytes!("rsa_pkcs1/testdata/known_answer.msg");
    const KAT_8192_SHA256: &[u8] = include_bytes!("rsa_pkcs1/testdata/k8192.sha256.sig");
    const KAT_2048_E3_SHA256: &[u8] = include_bytes!("rsa_pkcs1/testdata/k2048e3.sha256.sig");
    const KAT_3072_SHA384: &[u8] = include_bytes!("rsa_pkcs1/testdata/k3072.sha384.sig");
    const KAT_4096_SHA512: &[u8] = include_bytes!("rsa_pkcs1/testdata/k4096.sha512.sig");
    /// The first "leading zero {i}" whose SHA-256 signature under K2048 starts with 0x00.
    const LEADING_ZERO_INDEX: usize = 10;

    const HASHES: [RsaHash; 3] = [RsaHash::Sha256, RsaHash::Sha384, RsaHash::Sha512];

    /// One DER TLV: (tag, contents, rest).
    fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, header) = if der[1] < 0x80 {
            (der[1] as usize, 2)
        } else {
            let n = (der[1] & 0x7f) as usize;
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, 2 + n)
        };
        (der[0], &der[header..header + len], &der[header + len..])
    }

    /// A test key pair: public components, the private exponent, and the PKCS#8 PEM.
    struct TestKey {
        n: Vec<u8>,
        e: Vec<u8>,
        d: Vec<u8>,
        pem: String,
    }

    impl TestKey {
        /// From a PKCS#8 PEM: PrivateKeyInfo { version, algorithm, OCTET STRING {
        /// RSAPrivateKey { version, n, e, d, ... } } } (RFC 5208, RFC 8017 A.1.2).
        fn from_pem(pem: &str) -> TestKey {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = STANDARD.decode(body).unwrap();
            let (_, info, _) = tlv(&der);
            let (_, _, rest) = tlv(info);
            let (_, _, rest) = tlv(rest);
            let (_, octets, _) = tlv(rest);
            let (_, rsa, _) = tlv(octets);
            let (_, _, rest) = tlv(rsa);
            let (_, n, rest) = tlv(rest);
            let (_, e, rest) = tlv(rest);
            let (_, d, _) = tlv(rest);
            let strip = |x: &[u8]| trim_leading_zeros(x).to_vec();
            TestKey {
                n: strip(n),
                e: strip(e),
                d: strip(d),
                pem: pem.to_string(),
            }
        }

        fn k(&self) -> usize {
            self.n.len()
        }

        fn ours(&self) -> RsaVerifyingKey {
            RsaVerifyingKey::from_components(&self.n, &self.e).unwrap()
        }

        /// RSASP1 (RFC 8017 §5.2.1) of any block: em^d mod n, as k bytes.
        fn raw_sign(&self, em: &[u8]) -> Vec<u8> {
            let precision = (self.k() * 8) as u32;
            let n = Odd::new(BoxedUint::from_be_slice(&self.n, precision).unwrap()).unwrap();
            let params = BoxedMontyParams::new_vartime(n);
            let m = BoxedUint::from_be_slice(em, precision).unwrap();
            assert!(m < *params.modulus().as_ref(), "block is not below n");
            let d = BoxedUint::from_be_slice_vartime(&self.d);
            let s = BoxedMontyForm::new(m, &params).pow(&d).retrieve();
            let s = s.to_be_bytes();
            s[s.len() - self.k()..].to_vec()
        }

        fn sign(&self, hash: RsaHash, message: &[u8]) -> Vec<u8> {
            let em = emsa_pkcs1_v1_5(hash, &hash.digest(message), self.k()).unwrap();
            self.raw_sign(&em)
        }

        /// jwt-simple's verdict on `signing_input.signature` as a JWS of `scheme` and `hash`.
        fn jwt_simple_accepts(
            &self,
            scheme: Scheme,
            hash: RsaHash,
            signing_input: &str,
            sig: &[u8],
        ) -> bool {
            fn accepts(key: impl RSAPublicKeyLike, token: &str) -> bool {
                let options = Some(VerificationOptions {
                    artificial_time: Some(Duration::from_secs(1_800_000_000)),
                    ..Default::default()
                });
                key.verify_token::<Value>(token, options).is_ok()
            }
            let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
            let (n, e) = (&self.n, &self.e);
            match (scheme, hash) {
                (Scheme::Pkcs1, RsaHash::Sha256) => {
                    accepts(RS256PublicKey::from_components(n, e).unwrap(), &token)
                }
                (Scheme::Pkcs1, RsaHash::Sha384) => {
                    accepts(RS384PublicKey::from_components(n, e).unwrap(), &token)
                }
                (Scheme::Pkcs1, RsaHash::Sha512) => {
                    accepts(RS512PublicKey::from_components(n, e).unwrap(), &token)
                }
                (Scheme::Pss, RsaHash::Sha256) => {
                    accepts(PS256PublicKey::from_components(n, e).unwrap(), &token)
                }
                (Scheme::Pss, RsaHash::Sha384) => {
                    accepts(PS384PublicKey::from_components(n, e).unwrap(), &token)
                }
                (Scheme::Pss, RsaHash::Sha512) => {
                    accepts(PS512PublicKey::from_components(n, e).unwrap(), &token)
                }
            }
        }

        /// A token signed by jwt-simple (PSS with a random salt): (signing input, signature).
        fn jwt_simple_sign(
            &self,
            scheme: Scheme,
            hash: RsaHash,
            claims: &Value,
        ) -> (String, Vec<u8>) {
            let claims = crate::testutil::claims_of(claims);
            let pem = &self.pem;
            let token = match (scheme, hash) {
                (Scheme::Pkcs1, RsaHash::Sha256) => {
                    RS256KeyPair::from_pem(pem).unwrap().sign(claims)
                }
                (Scheme::Pkcs1, RsaHash::Sha384) => {
                    RS384KeyPair::from_pem(pem).unwrap().sign(claims)
                }
                (Scheme::Pkcs1, RsaHash::Sha512) => {
                    RS512KeyPair::from_pem(pem).unwrap().sign(claims)
                }
                (Scheme::Pss, RsaHash::Sha256) => PS256KeyPair::from_pem(pem).unwrap().sign(claims),
                (Scheme::Pss, RsaHash::Sha384) => PS384KeyPair::from_pem(pem).unwrap().sign(claims),
                (Scheme::Pss, RsaHash::Sha512) => PS512KeyPair::from_pem(pem).unwrap().sign(claims),
            }
            .unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            (input.to_string(), URL_SAFE_NO_PAD.decode(sig).unwrap())
        }

        /// A PSS signature over `message` with this salt, made here (RFC 8017 §8.1.1).
        fn sign_pss(&self, hash: RsaHash, message: &[u8], salt: &[u8]) -> Vec<u8> {
            let bits = self.ours().modulus_bits();
            let em = pss::tests::emsa_pss_encode(hash, &hash.digest(message), salt, bits - 1);
            let mut block = vec![0u8; self.k() - em.len()];
            block.extend_from_slice(&em);
            self.raw_sign(&block)
        }
    }

    #[test]
    fn pss_agrees_with_jwt_simple_on_its_own_tokens_and_their_tampered_forms() {
        let keys = keys_for_jwt_simple();
        for (ki, key) in keys.iter().enumerate() {
            let other = &keys[(ki + 1) % keys.len()];
            for hash in HASHES {
                for i in 0..tokens_per_key().div_ceil(2) {
                    let claims = json!({"sub": format!("user-{i}"), "groups": ["a", "b"], "i": i});
                    let (input, sig) = key.jwt_simple_sign(Scheme::Pss, hash, &claims);
                    assert_agree(Scheme::Pss, key, hash, &input, &sig, true, "valid");

                    let tampered =
                        signing_input(Scheme::Pss, hash, &json!({"sub": "admin", "i": i}));
                    assert_agree(
                        Scheme::Pss,
                        key,
                        hash,
                        &tampered,
                        &sig,
                        false,
                        "tampered payload",
                    );

                    let k = sig.len();
                    for (at, bit) in [(0, 0x80), (0, 0x01), (k / 2, 0x10), (k - 1, 0x01)] {
                        let mut flipped = sig.clone();
                        flipped[at] ^= bit;
                        assert_agree(
                            Scheme::Pss,
                            key,
                            hash,
                            &input,
                            &flipped,
                            false,
                            "flipped bit",
                        );
                    }

                    let (_, other_sig) = other.jwt_simple_sign(Scheme::Pss, hash, &claims);
                    assert_agree(
                        Scheme::Pss,
                        key,
                        hash,
                        &input,
                        &other_sig,
                        false,
                        "another key's",
                    );

                    assert_agree(
                        Scheme::Pss,
                        key,
                        hash,
                        &input,
                        &sig[..k - 1],
                        false,
                        "one byte short",
                    );
                    let mut long = vec![0];
                    long.extend_from_slice(&sig);
                    assert_agree(
                        Scheme::Pss,
                        key,
                        hash,
                        &input,
                        &long,
                        false,
                        "leading zero added",
                    );
                }
            }
        }
    }

    #[test]
    fn pss_and_pkcs1_v1_5_signatures_do_not_stand_for_each_other() {
        let key = TestKey::from_pem(K2048);
        for hash in HASHES {
            let claims = json!({"sub": "alice"});
            let (input, pss) = key.jwt_simple_sign(Scheme::Pss, hash, &claims);
            assert!(!key.ours().verify(hash, input.as_bytes(), &pss));
            let (input, pkcs1) = key.jwt_simple_sign(Scheme::Pkcs1, hash, &claims);
            assert_agree(
                Scheme::Pss,
                &key,
                hash,
                &input,
                &pkcs1,
                false,
                "a PKCS#1 v1.5 signature",
            );
        }
    }

    #[test]
    fn pss_signatures_made_here_agree_with_jwt_simple_on_the_salt_length() {
        for pem in [K2048, K3072] {
            let key = TestKey::from_pem(pem);
            for hash in HASHES {
                let input = signing_input(Scheme::Pss, hash, &json!({"sub": "alice"}));
                let h_len = hash.output_len();
                for (salt_len, expected) in [(h_len, true), (0, false), (h_len + 1, false)] {
                    let salt: Vec<u8> = (0..salt_len).map(|i| i as u8 ^ 0x5a).collect();
                    let sig = key.sign_pss(hash, input.as_bytes(), &salt);
                    let what = format!("salt of {salt_len} bytes");
                    assert_agree(Scheme::Pss, &key, hash, &input, &sig, expected, &what);
                }
            }
        }
    }

    /// RSASSA-PKCS1-v1_5 (RS*) or RSASSA-PSS (PS*).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Scheme {
        Pkcs1,
        Pss,
    }

    fn alg(scheme: Scheme, hash: RsaHash) -> String {
        let prefix = match scheme {
            Scheme::Pkcs1 => "RS",
            Scheme::Pss => "PS",
        };
        let bits = match hash {
            RsaHash::Sha256 => 256,
            RsaHash::Sha384 => 384,
            RsaHash::Sha512 => 512,
        };
        format!("{prefix}{bits}")
    }

    /// A JWS signing input with the header jwt-simple expects for `scheme` and `hash`.
    fn signing_input(scheme: Scheme, hash: RsaHash, claims: &Value) -> String {
        let header = json!({"alg": alg(scheme, hash), "typ": "JWT"}).to_string();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// Both verifiers give the same verdict, and it is `expected`.
    fn assert_agree(
        scheme: Scheme,
        key: &TestKey,
        hash: RsaHash,
        input: &str,
        sig: &[u8],
        expected: bool,
        what: &str,
    ) {
        let ours = match scheme {
            Scheme::Pkcs1 => key.ours().verify(hash, input.as_bytes(), sig),
            Scheme::Pss => key.ours().verify_pss(hash, input.as_bytes(), sig),
        };
        let theirs = key.jwt_simple_accepts(scheme, hash, input, sig);
        assert_eq!(
            (ours, theirs),
            (expected, expected),
            "{what}: {}-bit {} (ours, jwt-simple)",
            key.ours().modulus_bits(),
            alg(scheme, hash)
        );
    }

    fn keys_for_jwt_simple() -> Vec<TestKey> {
        #[allow(unused_mut)]
        let mut keys: Vec<TestKey> = [K2048, K3072, K4096]
            .iter()
            .map(|p| TestKey::from_pem(p))
            .collect();
        // Fresh keys too where key generation is fast enough (not in wasm).
        #[cfg(not(target_arch = "wasm32"))]
        for bits in [2048, 3072] {
            let pem = RS256KeyPair::generate(bits).unwrap().to_pem().unwrap();
            keys.push(TestKey::from_pem(&pem));
        }
        keys
    }

    fn tokens_per_key() -> usize {
        if cfg!(target_arch = "wasm32") {
            3
        } else {
            12
        }
    }

    #[test]
    fn agrees_with_jwt_simple_on_its_own_tokens_and_their_tampered_forms() {
        let keys = keys_for_jwt_simple();
        for (ki, key) in keys.iter().enumerate() {
            let other = &keys[(ki + 1) % keys.len()];
            for hash in HASHES {
                for i in 0..tokens_per_key() {
                    let claims = json!({"sub": format!("user-{i}"), "groups": ["a", "b"], "i": i});
                    let (input, sig) = key.jwt_simple_sign(Scheme::Pkcs1, hash, &claims);
                    assert_agree(Scheme::Pkcs1, key, hash, &input, &sig, true, "valid");

                    let tampered =
                        signing_input(Scheme::Pkcs1, hash, &json!({"sub": "admin", "i": i}));
                    assert_agree(
                        Scheme::Pkcs1,
                        key,
                        hash,
                        &tampered,
                        &sig,
                        false,
                        "tampered payload",
                    );

                    let k = sig.len();
                    for (at, bit) in [(0, 0x80), (0, 0x01), (k / 2, 0x10), (k - 1, 0x01)] {
                        let mut flipped = sig.clone();
                        flipped[at] ^= bit;
                        assert_agree(
                            Scheme::Pkcs1,
                            key,
                            hash,
                            &input,
                            &flipped,
                            false,
                            "flipped signature bit",
                        );
                    }

                    let (other_input, other_sig) =
                        other.jwt_simple_sign(Scheme::Pkcs1, hash, &claims);
                    assert_eq!(other_input, input);
                    assert_agree(
                        Scheme::Pkcs1,
                        key,
                        hash,
                        &input,
                        &other_sig,
                        false,
                        "another key's signature",
                    );

                    assert_agree(
                        Scheme::Pkcs1,
                        key,
                        hash,
                        &input,
                        &sig[..k - 1],
                        false,
                        "one byte short",
                    );
                    let mut long = sig.clone();
                    long.push(0);
                    assert_agree(
                        Scheme::Pkcs1,
                        key,
                        hash,
                        &input,
                        &long,
                        false,
                        "one byte long",
                    );
                    let mut long = vec![0];
                    long.extend_from_slice(&sig);
                    assert_agree(
                        Scheme::Pkcs1,
                        key,
                        hash,
                        &input,
                        &long,
                        false,
                        "leading zero byte added",
                    );
                }
            }
        }
    }

    #[test]
    fn a_signature_made_with_another_hash_is_refused() {
        let keys = keys_for_jwt_simple();
        let limit = if cfg!(target_arch = "wasm32") {
            1
        } else {
            keys.len()
        };
        for key in keys.iter().take(limit) {
            for signed_with in HASHES {
                for verified_as in HASHES {
                    let input = signing_input(Scheme::Pkcs1, verified_as, &json!({"sub": "alice"}));
                    let sig = key.sign(signed_with, input.as_bytes());
                    let expected = signed_with == verified_as;
                    assert_agree(
                        Scheme::Pkcs1,
                        key,
                        verified_as,
                        &input,
                        &sig,
                        expected,
                        "hash choice",
                    );
                }
            }
        }
    }

    #[test]
    fn out_of_range_and_degenerate_signatures_are_refused() {
        for pem in [K2048, K3072, K4096] {
            let key = TestKey::from_pem(pem);
            let k = key.k();
            let input = signing_input(Scheme::Pkcs1, RsaHash::Sha256, &json!({"sub": "alice"}));
            let int = |x: u8| {
                let mut s = vec![0u8; k];
                s[k - 1] = x;
                s
            };
            let n = key.n.clone();
            let mut n_minus_1 = n.clone();
            n_minus_1[k - 1] -= 1; // n is odd, so no borrow
            let mut n_plus_1 = n.clone();
            n_plus_1[k - 1] += 1; // n is odd, so no carry
            let cases: [(&str, Vec<u8>); 8] = [
                ("s = 0", int(0)),
                ("s = 1", int(1)),
                ("s = 2", int(2)),
                ("s = n - 1", n_minus_1),
                ("s = n", n.clone()),
                ("s = n + 1", n_plus_1),
                ("s = 2^(8k) - 1", vec![0xff; k]),
                ("empty", Vec::new()),
            ];
            for (what, sig) in cases {
                assert_agree(
                    Scheme::Pkcs1,
                    &key,
                    RsaHash::Sha256,
                    &input,
                    &sig,
                    false,
                    what,
                );
            }
            let valid = key.sign(RsaHash::Sha256, input.as_bytes());
            assert_agree(
                Scheme::Pkcs1,
                &key,
                RsaHash::Sha256,
                &input,
                &valid,
                true,
                "valid",
            );
        }
    }

    #[test]
    fn a_valid_signature_with_leading_zero_bytes_is_accepted_at_k_bytes_only() {
        let key = TestKey::from_pem(K2048);
        let input = signing_input(
            Scheme::Pkcs1,
            RsaHash::Sha256,
            &json!({"leading zero": LEADING_ZERO_INDEX}),
        );
        let sig = key.sign(RsaHash::Sha256, input.as_bytes());
        assert_eq!(
            sig[0], 0,
            "the fixed message must give a signature below 2^(8k-8)"
        );
        assert_agree(
            Scheme::Pkcs1,
            &key,
            RsaHash::Sha256,
            &input,
            &sig,
            true,
            "leading zero, k bytes",
        );
        assert_agree(
            Scheme::Pkcs1,
            &key,
            RsaHash::Sha256,
            &input,
            &sig[1..],
            false,
            "leading zero dropped",
        );
    }

    /// Blocks that hold the right digest but are not the exact §9.2 encoding, each signed
    /// for real, so only the padding check can refuse them.
    #[test]
    fn signed_blocks_with_wrong_padding_are_refused() {
        let keys: Vec<TestKey> = if cfg!(target_arch = "wasm32") {
            vec![TestKey::from_pem(K2048)]
        } else {
            [K2048, K3072, K4096]
                .iter()
                .map(|p| TestKey::from_pem(p))
                .collect()
        };
        for key in &keys {
            let k = key.k();
            for hash in HASHES {
                let input = signing_input(Scheme::Pkcs1, hash, &json!({"sub": "alice"}));
                let digest = hash.digest(input.as_bytes());
                let prefix = hash.digest_info_prefix();
                let good = emsa_pkcs1_v1_5(hash, &digest, k).unwrap();
                let t_len = prefix.len() + digest.len();
                let sep = k - t_len - 1;
                assert_eq!(good[sep], 0x00);

                let mut forged: Vec<(&str, Vec<u8>)> = Vec::new();
                let mut b = good.clone();
                b[sep] = 0xff;
                forged.push(("separator 0x00 replaced by 0xFF", b));
                let mut b = good.clone();
                b[1] = 0x02;
                forged.push(("block type 2", b));
                let mut b = good.clone();
                b[0] = 0x01;
                b[1] = 0x00;
                forged.push(("first two bytes swapped", b));
                let mut b = good.clone();
                b[2 + 7] = 0x00;
                forged.push(("padding string with a zero byte", b));
                let mut b = good.clone();
                b[k / 2] = 0xfe;
                forged.push(("padding string with a non-FF byte", b));
                // Short padding, digest in the middle and garbage after (the 2006 e = 3 forgery
                // shape that parsers which ignore trailing bytes accept).
                let mut b = vec![
                    0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
                ];
                b.extend_from_slice(prefix);
                b.extend_from_slice(&digest);
                b.resize(k, 0xab);
                forged.push(("digest followed by garbage", b));
                // DigestInfo with the NULL parameters absent (RFC 8017 §9.2 note 2 allows
                // its encoding, but JWS verifiers in practice, rsa 0.9 included, do not).
                let mut absent = prefix.to_vec();
                absent[1] -= 2;
                absent[3] -= 2;
                absent.drain(15..17);
                let mut b = vec![0x00, 0x01];
                b.resize(k - absent.len() - digest.len() - 1, 0xff);
                b.push(0x00);
                b.extend_from_slice(&absent);
                b.extend_from_slice(&digest);
                forged.push(("DigestInfo without NULL parameters", b));
                // The bare digest, no DigestInfo.
                let mut b = vec![0x00, 0x01];
                b.resize(k - digest.len() - 1, 0xff);
                b.push(0x00);
                b.extend_from_slice(&digest);
                forged.push(("bare digest", b));

                for (what, em) in forged {
                    assert_eq!(em.len(), k, "{what}");
                    assert_ne!(em, good, "{what}");
                    let sig = key.raw_sign(&em);
                    assert_agree(Scheme::Pkcs1, key, hash, &input, &sig, false, what);
                }
                let sig = key.raw_sign(&good);
                assert_agree(
                    Scheme::Pkcs1,
                    key,
                    hash,
                    &input,
                    &sig,
                    true,
                    "the exact encoding",
                );
            }
        }
    }

    #[test]
    fn the_encoding_is_the_rfc_8017_layout() {
        let digest = [0x5au8; 32];
        let em = emsa_pkcs1_v1_5(RsaHash::Sha256, &digest, 256).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(&em[..2], &[0x00, 0x01]);
        assert!(em[2..256 - 52].iter().all(|&b| b == 0xff));
        assert_eq!(em[256 - 52], 0x00);
        assert_eq!(
            &em[256 - 51..256 - 32],
            RsaHash::Sha256.digest_info_prefix()
        );
        assert_eq!(&em[256 - 32..], &digest);
        // §9.2 step 3: k < tLen + 11 is "intended encoded message length too short".
        assert!(emsa_pkcs1_v1_5(RsaHash::Sha512, &[0; 64], 19 + 64 + 10).is_none());
        assert!(emsa_pkcs1_v1_5(RsaHash::Sha512, &[0; 64], 19 + 64 + 11).is_some());
    }

    #[test]
    fn openssl_signatures_verify_including_8192_bits_and_e_3() {
        let cases = [
            (K8192, RsaHash::Sha256, KAT_8192_SHA256, 8192),
            (K2048_E3, RsaHash::Sha256, KAT_2048_E3_SHA256, 2048),
            (K3072, RsaHash::Sha384, KAT_3072_SHA384, 3072),
            (K4096, RsaHash::Sha512, KAT_4096_SHA512, 4096),
        ];
        for (pem, hash, sig, bits) in cases {
            let key = TestKey::from_pem(pem).ours();
            assert_eq!(key.modulus_bits(), bits);
            assert!(
                key.verify(hash, KAT_MESSAGE, sig),
                "{bits}-bit {}",
                alg(Scheme::Pkcs1, hash)
            );
            assert!(!key.verify(hash, b"another message", sig));
            for other in HASHES.into_iter().filter(|&h| h != hash) {
                assert!(!key.verify(other, KAT_MESSAGE, sig));
            }
            let mut flipped = sig.to_vec();
            flipped[sig.len() / 3] ^= 4;
            assert!(!key.verify(hash, KAT_MESSAGE, &flipped));
        }
    }

    #[test]
    fn e_3_signatures_verify_and_tampering_is_refused() {
        let key = TestKey::from_pem(K2048_E3);
        assert_eq!(key.e, vec![3]);
        let ours = key.ours();
        for i in 0..4 {
            let message = format!("message {i}");
            for hash in HASHES {
                let sig = key.sign(hash, message.as_bytes());
                assert!(ours.verify(hash, message.as_bytes(), &sig));
                assert!(!ours.verify(hash, b"message x", &sig));
                let mut flipped = sig.clone();
                flipped[255] ^= 1;
                assert!(!ours.verify(hash, message.as_bytes(), &flipped));
            }
        }
        // With e = 3, s = 1 and s = 2 cube to tiny blocks; neither is an encoding.
        let mut two = vec![0u8; 256];
        two[255] = 2;
        assert!(!ours.verify(RsaHash::Sha256, b"m", &two));
    }

    #[test]
    fn the_crate_test_key_verifies_the_crate_test_tokens() {
        let jwk = crate::testutil::rsa_jwk("k", None);
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
        let key = RsaVerifyingKey::from_components(&n, &e).unwrap();
        let token = crate::testutil::sign("RS256", None, &crate::testutil::standard_claims());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(key.verify(RsaHash::Sha256, input.as_bytes(), &sig));
        let other =
            crate::testutil::sign_with_other_rsa_key("k", &crate::testutil::standard_claims());
        let (input, sig) = other.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(!key.verify(RsaHash::Sha256, input.as_bytes(), &sig));
    }

    #[test]
    fn key_limits() {
        let k2048 = TestKey::from_pem(K2048);
        let k8192 = TestKey::from_pem(K8192);
        let (n, e) = (&k2048.n, &k2048.e);
        assert_eq!(
            RsaVerifyingKey::from_components(n, e)
                .unwrap()
                .modulus_bits(),
            2048
        );
        assert_eq!(
            RsaVerifyingKey::from_components(&k8192.n, e)
                .unwrap()
                .modulus_bits(),
            8192
        );
        // Leading zero bytes (some encoders add one) do not change the key.
        let mut padded = vec![0, 0];
        padded.extend_from_slice(n);
        let key = RsaVerifyingKey::from_components(&padded, &[0, 1, 0, 1]).unwrap();
        let sig = k2048.sign(RsaHash::Sha256, b"m");
        assert!(key.verify(RsaHash::Sha256, b"m", &sig));

        let err = |n: &[u8], e: &[u8]| RsaVerifyingKey::from_components(n, e).unwrap_err();
        let mut short = vec![0xffu8; 255];
        short[0] = 0xff;
        assert_eq!(err(&short, e), RsaKeyError::ModulusTooShort { bits: 2040 });
        let mut just_short = vec![0xffu8; 256];
        just_short[0] = 0x7f;
        assert_eq!(
            err(&just_short, e),
            RsaKeyError::ModulusTooShort { bits: 2047 }
        );
        assert_eq!(err(&[], e), RsaKeyError::ModulusTooShort { bits: 0 });
        let mut long = vec![0xffu8; 1025];
        long[0] = 0x01;
        assert_eq!(err(&long, e), RsaKeyError::ModulusTooLong { bits: 8193 });
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(err(&even, e), RsaKeyError::EvenModulus);
        assert_eq!(err(n, &[]), RsaKeyError::ExponentTooSmall);
        assert_eq!(err(n, &[1]), RsaKeyError::ExponentTooSmall);
        assert_eq!(err(n, &[2]), RsaKeyError::ExponentTooSmall);
        assert_eq!(err(n, &[4]), RsaKeyError::EvenExponent);
        assert_eq!(err(n, &[1, 0, 0]), RsaKeyError::EvenExponent);
        assert!(RsaVerifyingKey::from_components(n, &[3]).is_ok());
        assert!(RsaVerifyingKey::from_components(n, &[1, 0xff, 0xff, 0xff, 0xff]).is_ok());
        assert_eq!(err(n, &[2, 0, 0, 0, 1]), RsaKeyError::ExponentTooLarge);
        assert_eq!(err(n, &[1; 9]), RsaKeyError::ExponentTooLarge);
        // e ≥ n: the exponent bound refuses it.
        assert_eq!(err(n, n), RsaKeyError::ExponentTooLarge);
        assert_eq!(
            err(&short, e).to_string(),
            "RSA modulus is 2040 bits, shorter than the minimum 2048"
        );
    }
}
