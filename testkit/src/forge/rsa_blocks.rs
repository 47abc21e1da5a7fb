//! RSA signatures over hand-made encoded messages: the [`Signer`]'s private
//! exponent applied to any block, so a malformed EMSA-PKCS1-v1_5 (RFC 8017
//! §9.2) or EMSA-PSS (§9.1) encoding is a real signature that only a strict
//! verifier refuses; and the public operation, to take a valid signature's
//! encoding apart (PSS: unmask its data block with MGF1, §B.2.1).

use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::sha2::{Digest, Sha256, Sha384, Sha512};
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use rsa::BigUint;

use super::Signer;

/// The hash of an RS*/PS* algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub const ALL: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

    /// `RS256`, `RS384` or `RS512`.
    pub fn rs(self) -> &'static str {
        match self {
            Hash::Sha256 => "RS256",
            Hash::Sha384 => "RS384",
            Hash::Sha512 => "RS512",
        }
    }

    /// `PS256`, `PS384` or `PS512`.
    pub fn ps(self) -> &'static str {
        match self {
            Hash::Sha256 => "PS256",
            Hash::Sha384 => "PS384",
            Hash::Sha512 => "PS512",
        }
    }

    /// The hash of `parts`, one after the other.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        let bytes = parts.concat();
        match self {
            Hash::Sha256 => Sha256::digest(&bytes).to_vec(),
            Hash::Sha384 => Sha384::digest(&bytes).to_vec(),
            Hash::Sha512 => Sha512::digest(&bytes).to_vec(),
        }
    }

    /// The DER `DigestInfo` header before the digest (RFC 8017 §9.2 note 1),
    /// as the rsa crate writes it.
    pub fn digest_info_prefix(self) -> Vec<u8> {
        let padding = match self {
            Hash::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            Hash::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
            Hash::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        };
        padding.prefix.to_vec()
    }
}

/// The exact EMSA-PKCS1-v1_5 block of `input` for a `k`-byte modulus:
/// `00 01 FF..FF 00 DigestInfo digest`.
pub fn pkcs1_v1_5_block(hash: Hash, input: &[u8], k: usize) -> Vec<u8> {
    let mut t = hash.digest_info_prefix();
    t.extend(hash.digest(&[input]));
    let mut block = vec![0x00, 0x01];
    block.resize(k - t.len() - 1, 0xff);
    block.push(0x00);
    block.extend(t);
    block
}

/// MGF1 with `hash` (RFC 8017 §B.2.1).
pub fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut mask = Vec::new();
    let mut counter: u32 = 0;
    while mask.len() < len {
        mask.extend(hash.digest(&[seed, &counter.to_be_bytes()]));
        counter += 1;
    }
    mask.truncate(len);
    mask
}

/// A PSS encoded message split into its data block (unmasked) and `H`; its
/// trailer byte is the last byte of the block given to [`pss_parts`].
pub struct PssParts {
    pub db: Vec<u8>,
    pub h: Vec<u8>,
    pub trailer: u8,
}

/// Takes a PSS encoding (`k` bytes, as the public operation gives it for a
/// modulus of 8k bits) apart.
pub fn pss_parts(hash: Hash, em: &[u8]) -> PssParts {
    let h_len = hash.digest(&[]).len();
    let (masked_db, rest) = em.split_at(em.len() - h_len - 1);
    let h = rest[..h_len].to_vec();
    let mask = mgf1(hash, &h, masked_db.len());
    let mut db: Vec<u8> = masked_db.iter().zip(&mask).map(|(d, m)| d ^ m).collect();
    // emBits = 8k - 1: the top bit is not part of the encoding.
    db[0] &= 0x7f;
    PssParts {
        db,
        h,
        trailer: em[em.len() - 1],
    }
}

/// Masks `parts` back into a `k`-byte encoding.
pub fn pss_join(hash: Hash, parts: &PssParts) -> Vec<u8> {
    let mask = mgf1(hash, &parts.h, parts.db.len());
    let mut em: Vec<u8> = parts.db.iter().zip(&mask).map(|(d, m)| d ^ m).collect();
    em[0] &= 0x7f;
    em.extend_from_slice(&parts.h);
    em.push(parts.trailer);
    em
}

impl Signer {
    /// k: the RSA modulus length in bytes.
    pub fn rsa_len(&self) -> usize {
        self.rsa.size()
    }

    /// `block^d mod n`, `k` bytes: a signature whose public operation gives
    /// back exactly `block` (which must be below the modulus).
    pub fn rsa_sign_block(&self, block: &[u8]) -> Vec<u8> {
        let m = BigUint::from_bytes_be(block);
        assert!(&m < self.rsa.n(), "the block is not below the modulus");
        left_pad(
            m.modpow(self.rsa.d(), self.rsa.n()).to_bytes_be(),
            self.rsa_len(),
        )
    }

    /// `signature^e mod n`, `k` bytes: the encoded message a verifier sees.
    pub fn rsa_open(&self, signature: &[u8]) -> Vec<u8> {
        let s = BigUint::from_bytes_be(signature);
        left_pad(
            s.modpow(self.rsa.e(), self.rsa.n()).to_bytes_be(),
            self.rsa_len(),
        )
    }

    /// An RSASSA-PSS signature of `input` with a salt of `salt_len` bytes
    /// (JWS fixes it at the hash length, RFC 7518 §3.5).
    pub fn pss_with_salt(&self, hash: Hash, salt_len: usize, input: &[u8]) -> Vec<u8> {
        use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
        let key = self.rsa.clone();
        let mut rng = super::CounterRng(11);
        match hash {
            Hash::Sha256 => rsa::pss::SigningKey::<Sha256>::new_with_salt_len(key, salt_len)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            Hash::Sha384 => rsa::pss::SigningKey::<Sha384>::new_with_salt_len(key, salt_len)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            Hash::Sha512 => rsa::pss::SigningKey::<Sha512>::new_with_salt_len(key, salt_len)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
        }
    }
}

fn left_pad(bytes: Vec<u8>, len: usize) -> Vec<u8> {
    let mut padded = vec![0u8; len.saturating_sub(bytes.len())];
    padded.extend(bytes);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_made_pkcs1_block_signs_as_the_rsa_crate_does() {
        let signer = Signer::shared();
        let input = b"header.payload";
        for hash in Hash::ALL {
            let block = pkcs1_v1_5_block(hash, input, signer.rsa_len());
            let signature = signer.rsa_sign_block(&block);
            assert_eq!(signature, signer.signature(hash.rs(), input), "{hash:?}");
            assert_eq!(signer.rsa_open(&signature), block);
        }
    }

    #[test]
    fn a_pss_encoding_comes_apart_and_back_together() {
        let signer = Signer::shared();
        let input = b"header.payload";
        for hash in Hash::ALL {
            let em = signer.rsa_open(&signer.signature(hash.ps(), input));
            let parts = pss_parts(hash, &em);
            let h_len = hash.digest(&[]).len();
            let separator = parts.db.len() - h_len - 1;
            assert_eq!(parts.trailer, 0xbc);
            assert_eq!(parts.db[separator], 0x01, "{hash:?}");
            assert!(parts.db[..separator].iter().all(|b| *b == 0));
            // H = Hash(8 zero bytes || Hash(input) || salt) (RFC 8017 §9.1.1).
            let salt = &parts.db[separator + 1..];
            let h = hash.digest(&[&[0u8; 8], &hash.digest(&[input]), salt]);
            assert_eq!(parts.h, h);
            assert_eq!(pss_join(hash, &parts), em);
        }
    }
}
