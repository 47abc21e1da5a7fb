//! The DER that Envoy's `verify_signature` reads (X.690 DER, as BoringSSL's
//! `EVP_parse_public_key` and `ECDSA_SIG_from_bytes` parse it, strictly): a
//! public key as `SubjectPublicKeyInfo` (RFC 5280 section 4.1), an RSA key's
//! `RSAPublicKey` (RFC 8017 appendix A.1.1), an EC key's uncompressed point
//! (RFC 5480), and an ECDSA signature as `Ecdsa-Sig-Value` (RFC 3279 section
//! 2.2.3) from the JWS `r || s` form (RFC 7518 section 3.4).

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: [u8; 2] = [0x05, 0x00];

/// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 8017 appendix A.1).
const RSA_ENCRYPTION: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 section 2.1.1).
const EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// A curve the host verifies ECDSA signatures on (ES256, ES384).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// Bytes of one coordinate, and of `r` and `s` in a JWS signature.
    pub fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// The named-curve OID (RFC 5480 section 2.1.1.1), as a DER TLV.
    fn oid(self) -> &'static [u8] {
        match self {
            // secp256r1, 1.2.840.10045.3.1.7
            Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // secp384r1, 1.3.132.0.34
            Curve::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        }
    }

    /// The group order n, big-endian (SEC 2 sections 2.4.2 and 2.5.1): `r` and
    /// `s` must lie in [1, n - 1].
    fn order(self) -> &'static [u8] {
        match self {
            Curve::P256 => &[
                0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
                0xfc, 0x63, 0x25, 0x51,
            ],
            Curve::P384 => &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81,
                0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec,
                0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
            ],
        }
    }
}

/// One TLV: tag, definite length (short or long form), contents.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let length = contents.len();
    let mut out = Vec::with_capacity(contents.len().saturating_add(10));
    out.push(tag);
    match u8::try_from(length) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            // Long form: 0x80 | how many length bytes follow, then the length.
            let bytes = length.to_be_bytes();
            let first = bytes.iter().position(|&byte| byte != 0).unwrap_or(0);
            let significant = bytes.get(first..).unwrap_or_default();
            out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
            out.extend_from_slice(significant);
        }
    }
    out.extend_from_slice(contents);
    out
}

/// A non-negative INTEGER from big-endian bytes: leading zeros dropped, one
/// zero byte put back when the top bit is set (DER's minimal two's complement).
fn unsigned_integer(value: &[u8]) -> Vec<u8> {
    let first = value
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(value.len());
    let trimmed = value.get(first..).unwrap_or_default();
    let mut contents = Vec::with_capacity(trimmed.len().saturating_add(1));
    if trimmed.first().is_none_or(|&top| top & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(trimmed);
    tlv(INTEGER, &contents)
}

fn spki(algorithm: &[&[u8]], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len().saturating_add(1));
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut body = tlv(SEQUENCE, &algorithm.concat());
    body.extend(tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &body)
}

/// The `SubjectPublicKeyInfo` of an RSA key from its JWK `n` and `e`
/// (big-endian; leading zeros are allowed and dropped).
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(n);
    key.extend(unsigned_integer(e));
    spki(&[&RSA_ENCRYPTION, &NULL], &tlv(SEQUENCE, &key))
}

/// The `SubjectPublicKeyInfo` of an EC key from its SEC1 uncompressed point
/// (`0x04 || x || y`, each coordinate [`Curve::size`] bytes).
pub fn ec_spki(curve: Curve, point: &[u8]) -> Vec<u8> {
    spki(&[&EC_PUBLIC_KEY, curve.oid()], point)
}

/// Is `value` (exactly the curve's size, big-endian) in [1, n - 1]?
fn in_scalar_range(curve: Curve, value: &[u8]) -> bool {
    value.iter().any(|&byte| byte != 0) && value < curve.order()
}

/// The DER `Ecdsa-Sig-Value` of a JWS ECDSA signature, or `None` when it is
/// not exactly `2 * size` bytes or `r` or `s` is outside [1, n - 1]: such a
/// signature is refused without asking the host.
pub fn ecdsa_signature(curve: Curve, jws: &[u8]) -> Option<Vec<u8>> {
    if jws.len() != curve.size().checked_mul(2)? {
        return None;
    }
    let (r, s) = jws.split_at(curve.size());
    if !in_scalar_range(curve, r) || !in_scalar_range(curve, s) {
        return None;
    }
    let mut body = unsigned_integer(r);
    body.extend(unsigned_integer(s));
    Some(tlv(SEQUENCE, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(hex(&unsigned_integer(&[0, 0, 1])), "020101");
        assert_eq!(hex(&unsigned_integer(&[0x80])), "02020080");
        assert_eq!(hex(&unsigned_integer(&[0, 0x7f, 0xff])), "02027fff");
        assert_eq!(hex(&unsigned_integer(&[0, 0])), "020100");
    }

    #[test]
    fn lengths_take_the_long_form_from_128_bytes() {
        assert_eq!(hex(&tlv(0x04, &[7; 127])[..2]), "047f");
        assert_eq!(hex(&tlv(0x04, &[7; 128])[..3]), "048180");
        assert_eq!(hex(&tlv(0x04, &[7; 256])[..4]), "04820100");
        // An 8192-bit modulus with its zero byte: 1025 bytes of contents.
        assert_eq!(hex(&unsigned_integer(&[0xff; 1024])[..5]), "0282040100");
    }

    #[test]
    fn ecdsa_signatures_are_sequences_of_two_integers() {
        let mut jws = [0u8; 64];
        jws[31] = 1; // r = 1: 31 leading zeros dropped
        jws[32] = 0x80; // s has its top bit set: a zero byte put in front
        let der = ecdsa_signature(Curve::P256, &jws).unwrap();
        assert_eq!(hex(&der[..8]), "3026020101022100");
        assert_eq!(der.len(), 2 + 3 + 35);
        assert_eq!(&der[8..], &jws[32..]);
    }

    #[test]
    fn non_canonical_ecdsa_signatures_are_refused_before_the_host() {
        let order = Curve::P256.order();
        let below = {
            let mut value = order.to_vec();
            value[31] -= 1;
            value
        };
        let good = [below.as_slice(), below.as_slice()].concat();
        assert!(ecdsa_signature(Curve::P256, &good).is_some());
        for bad in [
            [order, below.as_slice()].concat(),
            [below.as_slice(), order].concat(),
            [&[0u8; 32][..], below.as_slice()].concat(),
            [below.as_slice(), &[0xff; 32]].concat(),
            good[..63].to_vec(),
            [good.as_slice(), &[0]].concat(),
        ] {
            assert_eq!(ecdsa_signature(Curve::P256, &bad), None, "{}", hex(&bad));
        }
        // A P-256 signature is not a P-384 one.
        assert_eq!(ecdsa_signature(Curve::P384, &good), None);
        let p384 = [&[1u8; 48][..], &[0x7f; 48]].concat();
        assert_eq!(
            ecdsa_signature(Curve::P384, &p384).unwrap().len(),
            2 + 50 + 50
        );
    }

    #[test]
    fn rsa_keys_wrap_rsa_public_key_in_a_bit_string() {
        let n = [&[0u8][..], &[0xc5; 256]].concat(); // a JWK may keep a leading zero
        let spki = rsa_spki(&n, &[1, 0, 1]);
        // SEQUENCE(290) { SEQUENCE { rsaEncryption, NULL }, BIT STRING(271) { 0,
        // SEQUENCE(266) { INTEGER(257) 00 c5.., INTEGER 010001 } } }
        assert_eq!(
            hex(&spki[..34]),
            "30820122300d06092a864886f70d01010105000382010f003082010a0282010100c5"
        );
        assert_eq!(hex(&spki[spki.len() - 5..]), "0203010001");
        assert_eq!(spki.len(), 294);
    }

    #[test]
    fn ec_keys_name_their_curve() {
        let point = [&[4u8][..], &[9; 64]].concat();
        assert_eq!(
            hex(&ec_spki(Curve::P256, &point)[..27]),
            "3059301306072a8648ce3d020106082a8648ce3d03010703420004"
        );
        let point = [&[4u8][..], &[9; 96]].concat();
        assert_eq!(
            hex(&ec_spki(Curve::P384, &point)[..24]),
            "3076301006072a8648ce3d020106052b8104002203620004"
        );
    }

    /// The same encodings from the RustCrypto crates (native only: they are
    /// not dependencies of the Wasm build).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn encodings_match_rustcrypto() {
        use jwt_simple::prelude::*;
        let key = RS256KeyPair::generate(2048).unwrap();
        let components = key.public_key().to_components();
        assert_eq!(
            rsa_spki(&components.n, &components.e),
            key.public_key().to_der().unwrap()
        );
        let key = ES256KeyPair::generate();
        let point = key.public_key().public_key().to_bytes_uncompressed();
        assert_eq!(
            ec_spki(Curve::P256, &point),
            key.public_key().to_der().unwrap()
        );
        let key = ES384KeyPair::generate();
        let point = key.public_key().public_key().to_bytes_uncompressed();
        assert_eq!(
            ec_spki(Curve::P384, &point),
            key.public_key().to_der().unwrap()
        );
        for _ in 0..64 {
            let jws = ES256KeyPair::generate()
                .sign(Claims::create(Duration::from_secs(60)))
                .unwrap();
            let (_, signature) = jws.rsplit_once('.').unwrap();
            let raw = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                signature,
            )
            .unwrap();
            let theirs = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
            assert_eq!(
                ecdsa_signature(Curve::P256, &raw).unwrap(),
                theirs.as_bytes()
            );
        }
    }
}
