//! EMSA-PSS verification (RFC 8017 §9.1.2) with MGF1 (§B.2.1), for PS256, PS384 and
//! PS512: the mask function uses the signature's hash, and the salt is as long as the
//! hash output (RFC 7518 §3.5), which is also the only length jwt-simple (rsa 0.9) accepts.
//!
//! The encoded message comes from the public-key operation, so every byte here is
//! public; the comparison need not be constant time.

use super::RsaHash;

/// EMSA-PSS-VERIFY of `em` (emLen = ⌈em_bits / 8⌉ bytes) against `message_hash`, with a
/// salt of `hash`'s output length. `em_bits` is the modulus length in bits minus one.
pub(super) fn emsa_pss_verify(
    hash: RsaHash,
    message_hash: &[u8],
    em: &[u8],
    em_bits: usize,
) -> bool {
    let h_len = hash.output_len();
    let salt_len = h_len;
    if em.len() != em_bits.div_ceil(8) || message_hash.len() != h_len {
        return false;
    }
    // Steps 3 and 4: room for the hash, the salt, the 0x01 separator and the 0xbc trailer.
    let Some(db_len) = em.len().checked_sub(h_len).and_then(|n| n.checked_sub(1)) else {
        return false;
    };
    if db_len < salt_len.saturating_add(1) || em.last() != Some(&0xbc) {
        return false;
    }
    // Step 5: maskedDB || H || 0xbc.
    let (Some(masked_db), Some(h)) = (
        em.get(..db_len),
        em.get(db_len..db_len.saturating_add(h_len)),
    ) else {
        return false;
    };
    // Step 6: the bits above em_bits must be zero.
    let unused_bits = em.len().saturating_mul(8).saturating_sub(em_bits);
    let top_mask = 0xffu8.checked_shr(unused_bits as u32).unwrap_or(0);
    if masked_db
        .first()
        .is_some_and(|first| first & !top_mask != 0)
    {
        return false;
    }
    // Steps 7 to 9: DB = maskedDB xor MGF1(H), the unused top bits cleared.
    let mut db = mgf1(hash, h, db_len);
    for (byte, masked) in db.iter_mut().zip(masked_db) {
        *byte ^= masked;
    }
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // Step 10: DB = zeros || 0x01 || salt.
    let separator = db_len.saturating_sub(salt_len).saturating_sub(1);
    let (Some(zeros), Some(&0x01), Some(salt)) = (
        db.get(..separator),
        db.get(separator),
        db.get(separator.saturating_add(1)..),
    ) else {
        return false;
    };
    if zeros.iter().any(|&byte| byte != 0) {
        return false;
    }
    // Steps 12 to 14: H = Hash(0x00 × 8 || mHash || salt).
    hash.digest_of(&[&[0u8; 8], message_hash, salt]) == h
}

/// MGF1 (RFC 8017 §B.2.1): Hash(seed || counter) for counter = 0, 1, ..., the first
/// `len` bytes.
fn mgf1(hash: RsaHash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut mask = Vec::with_capacity(len.saturating_add(hash.output_len()));
    let mut counter: u32 = 0;
    while mask.len() < len {
        mask.extend_from_slice(&hash.digest_of(&[seed, &counter.to_be_bytes()]));
        counter = counter.wrapping_add(1);
    }
    mask.truncate(len);
    mask
}

#[cfg(test)]
pub(super) mod tests {
    //! The encoder below follows RFC 8017 §9.1.1 step by step, so the verifier is checked
    //! against an independent reading of the standard; whole PS* tokens are checked
    //! against jwt-simple (rsa 0.9) in `rsa_pkcs1`'s tests.

    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const HASHES: [RsaHash; 3] = [RsaHash::Sha256, RsaHash::Sha384, RsaHash::Sha512];

    /// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with a given salt.
    pub(in crate::rsa_pkcs1) fn emsa_pss_encode(
        hash: RsaHash,
        message_hash: &[u8],
        salt: &[u8],
        em_bits: usize,
    ) -> Vec<u8> {
        let em_len = em_bits.div_ceil(8);
        let h_len = hash.output_len();
        assert!(em_len >= h_len + salt.len() + 2, "encoding error");
        let h = hash.digest_of(&[&[0u8; 8], message_hash, salt]);
        let mut db = vec![0u8; em_len - salt.len() - h_len - 2];
        db.push(0x01);
        db.extend_from_slice(salt);
        let mask = mgf1(hash, &h, em_len - h_len - 1);
        let mut em: Vec<u8> = db.iter().zip(&mask).map(|(d, m)| d ^ m).collect();
        em[0] &= 0xff >> (8 * em_len - em_bits);
        em.extend_from_slice(&h);
        em.push(0xbc);
        em
    }

    fn salt(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 37 + 11) as u8).collect()
    }

    #[test]
    fn mgf1_matches_its_definition() {
        // Two blocks and a part: T = Hash(seed || 0) || Hash(seed || 1) || Hash(seed || 2).
        let seed = b"seed";
        let mask = mgf1(RsaHash::Sha256, seed, 70);
        let mut expected = Vec::new();
        for counter in 0u32..3 {
            expected.extend(RsaHash::Sha256.digest_of(&[seed, &counter.to_be_bytes()]));
        }
        assert_eq!(mask, expected[..70]);
        assert!(mgf1(RsaHash::Sha512, seed, 0).is_empty());
    }

    #[test]
    fn an_encoding_with_a_hash_long_salt_verifies_at_every_bit_length() {
        // Unused top bits of the first byte: 2045 three, 2047 one, 2048 none, 2049 seven
        // (emLen 257, the case of a modulus one bit longer than a multiple of 8).
        for hash in HASHES {
            let message_hash = hash.digest(b"message");
            for em_bits in [1279, 2045, 2047, 2048, 2049, 3071, 4095] {
                let em = emsa_pss_encode(hash, &message_hash, &salt(hash.output_len()), em_bits);
                assert!(
                    emsa_pss_verify(hash, &message_hash, &em, em_bits),
                    "{hash:?} em_bits {em_bits}"
                );
                let other = hash.digest(b"other message");
                assert!(!emsa_pss_verify(hash, &other, &em, em_bits));
            }
        }
    }

    #[test]
    fn other_salt_lengths_are_refused() {
        for hash in HASHES {
            let message_hash = hash.digest(b"message");
            let h_len = hash.output_len();
            for salt_len in [0, 20, h_len - 1, h_len + 1, 2 * h_len] {
                let em = emsa_pss_encode(hash, &message_hash, &salt(salt_len), 2047);
                assert!(
                    !emsa_pss_verify(hash, &message_hash, &em, 2047),
                    "{hash:?} salt of {salt_len} bytes"
                );
            }
        }
    }

    #[test]
    fn every_malformation_is_refused() {
        let hash = RsaHash::Sha256;
        let message_hash = hash.digest(b"message");
        let em_bits = 2047;
        let good = emsa_pss_encode(hash, &message_hash, &salt(32), em_bits);
        assert!(emsa_pss_verify(hash, &message_hash, &good, em_bits));

        let mut trailer = good.clone();
        *trailer.last_mut().unwrap() = 0xbb;
        assert!(!emsa_pss_verify(hash, &message_hash, &trailer, em_bits));

        // The bit above em_bits set (it would be cleared from DB, so only step 6 catches it).
        let mut top_bit = good.clone();
        top_bit[0] |= 0x80;
        assert!(!emsa_pss_verify(hash, &message_hash, &top_bit, em_bits));

        // A flipped byte anywhere in maskedDB or H.
        for at in [0, 100, 200, 222, 223, 240, 254] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x04;
            assert!(
                !emsa_pss_verify(hash, &message_hash, &flipped, em_bits),
                "byte {at}"
            );
        }

        // Wrong lengths: the block, the message hash.
        assert!(!emsa_pss_verify(hash, &message_hash, &good[1..], em_bits));
        assert!(!emsa_pss_verify(hash, &message_hash, &good, em_bits + 8));
        assert!(!emsa_pss_verify(hash, &message_hash[1..], &good, em_bits));
        // Too short to hold hash, salt and separator.
        assert!(!emsa_pss_verify(
            hash,
            &message_hash,
            &good[..60],
            60 * 8 - 1
        ));
        assert!(!emsa_pss_verify(hash, &message_hash, &[], 0));
    }

    #[test]
    fn a_nonzero_byte_before_the_separator_is_refused() {
        // Encode DB with a stray byte in the zero padding, then mask it as the encoder does.
        let hash = RsaHash::Sha256;
        let message_hash = hash.digest(b"message");
        let em_bits = 2047;
        let em_len = 256;
        let salt = salt(32);
        let h = hash.digest_of(&[&[0u8; 8], &message_hash, &salt]);
        let mut db = vec![0u8; em_len - 32 - 32 - 2];
        db[50] = 0x01;
        db.push(0x01);
        db.extend_from_slice(&salt);
        let mask = mgf1(hash, &h, em_len - 33);
        let mut em: Vec<u8> = db.iter().zip(&mask).map(|(d, m)| d ^ m).collect();
        em[0] &= 0x7f;
        em.extend_from_slice(&h);
        em.push(0xbc);
        assert!(!emsa_pss_verify(hash, &message_hash, &em, em_bits));
    }
}
