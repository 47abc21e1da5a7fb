//! What a shared decision is about, as a keyed digest: every field of the
//! review goes in, so equal digests mean the same review; the key is one per
//! Envoy (every worker's VM reads it from shared data) and never leaves it.
//!
//! HMAC-SHA-256 rather than the SipHash of the verified-token cache: a slot
//! holds the digest in place of the review, so two reviews must never meet
//! on one digest, and SHA-256's collision resistance holds even for someone
//! who knew the key. The key only keeps clients from choosing which slot a
//! review lands in (crowding out others' answers) and from testing guesses
//! of a token against its digest.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::keystore::shared::SharedData;

/// Where the digest key lives in shared data.
pub const KEY_NAME: &str = "kfauth.decisions|key";

/// A review to share the answer of, with every field the API server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review<'a> {
    /// A SubjectAccessReview: its `spec` as sent, compact JSON (user,
    /// groups, extra, every resource or non-resource attribute).
    Access { spec: &'a str },
    /// A TokenReview: the bearer token and the audiences asked for.
    Token {
        token: &'a str,
        audiences: &'a [String],
    },
}

/// Which API a review goes to; its answers are of that kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKind {
    SubjectAccess,
    Token,
}

impl Review<'_> {
    pub fn kind(&self) -> ReviewKind {
        match self {
            Review::Access { .. } => ReviewKind::SubjectAccess,
            Review::Token { .. } => ReviewKind::Token,
        }
    }
}

/// A review's keyed digest: what a slot holds instead of the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewDigest {
    pub kind: ReviewKind,
    pub bytes: [u8; 32],
}

impl ReviewDigest {
    /// The first eight bytes, to pick a bucket with.
    pub fn bucket_seed(&self) -> u64 {
        let mut seed = [0u8; 8];
        for (to, from) in seed.iter_mut().zip(self.bytes.iter()) {
            *to = *from;
        }
        u64::from_le_bytes(seed)
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    pub fn decode(kind: ReviewKind, text: &str) -> Option<ReviewDigest> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(ReviewDigest {
            kind,
            bytes: bytes.try_into().ok()?,
        })
    }
}

/// The HMAC key every VM of one Envoy digests reviews with.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestKey([u8; 32]);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    pub fn new(bytes: [u8; 32]) -> DigestKey {
        DigestKey(bytes)
    }

    /// A key nobody outside this process can guess: std seeds each thread's
    /// `RandomState` from the host's `random_get` (WASI), and its hashes of
    /// constants are unpredictable without that seed (128 bits of it).
    pub fn fresh() -> DigestKey {
        let seeded = RandomState::new();
        let mut bytes = [0u8; 32];
        for (index, chunk) in bytes.chunks_mut(8).enumerate() {
            let word = seeded.hash_one(index).to_le_bytes();
            for (to, from) in chunk.iter_mut().zip(word.iter()) {
                *to = *from;
            }
        }
        DigestKey(bytes)
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    fn decode(bytes: &[u8]) -> Option<DigestKey> {
        let raw = URL_SAFE_NO_PAD.decode(bytes).ok()?;
        Some(DigestKey(raw.try_into().ok()?))
    }

    /// The digest of `review` for callers in `scope`; every field is
    /// length-prefixed, so no two reviews give the same input.
    pub fn digest(&self, scope: &str, review: &Review) -> ReviewDigest {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            // Unreachable (HMAC takes keys of any length); a digest of
            // nothing but zeros would still match no stored review.
            return ReviewDigest {
                kind: review.kind(),
                bytes: [0; 32],
            };
        };
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_le_bytes());
            mac.update(bytes);
        };
        field(scope.as_bytes());
        match review {
            Review::Access { spec } => {
                field(b"SubjectAccessReview");
                field(spec.as_bytes());
            }
            Review::Token { token, audiences } => {
                field(b"TokenReview");
                field(token.as_bytes());
                field(&(audiences.len() as u64).to_le_bytes());
                for audience in audiences.iter() {
                    field(audience.as_bytes());
                }
            }
        }
        ReviewDigest {
            kind: review.kind(),
            bytes: mac.finalize().into_bytes().into(),
        }
    }
}

/// The key in shared data, if one was published (and reads as a key).
pub fn published_key(shared: &dyn SharedData) -> Option<DigestKey> {
    shared
        .get(KEY_NAME)
        .and_then(|(bytes, _)| DigestKey::decode(&bytes))
}

/// Publishes `fresh` unless a key is there already; returns the key that is
/// there afterwards. The first VM's key wins by compare-and-swap; a VM that
/// loses adopts the winner's. Envoy cannot compare-and-swap a key that does
/// not exist yet, so two VMs that both find none may both write: the last
/// write stays, and a VM that adopted the other one reads the key again on
/// every digest ([`published_key`]), so they agree from their next review on.
pub fn publish_key(shared: &mut dyn SharedData, fresh: DigestKey) -> Option<DigestKey> {
    for _ in 0..4 {
        let cas = match shared.get(KEY_NAME) {
            Some((bytes, cas)) => match DigestKey::decode(&bytes) {
                Some(key) => return Some(key),
                // Not a key: replace it, unless someone else does first.
                None => Some(cas),
            },
            None => None,
        };
        // Won or lost, the next read says which key stands.
        let _ = shared.set(KEY_NAME, fresh.encode().as_bytes(), cas);
    }
    published_key(shared)
}
