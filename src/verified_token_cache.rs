//! Verified tokens, remembered until they expire: Kubeflow users send the same
//! session token with every request, and an RS256 check costs about a
//! millisecond in Wasm. A hit re-checks `exp` and `nbf` against the host clock;
//! an entry is void once its issuer's key set changes. Only tokens that passed
//! every check are remembered.
//!
//! Entries are keyed by a 128-bit keyed digest of the token (SipHash-2-4 with a
//! secret key drawn per VM), not the token itself: an entry is then about a fifth
//! of its size, and 10,000 of them per worker fit in a few MiB. Without the key,
//! nobody can make a token whose digest meets a cached one; by chance, two of
//! 2^64 tokens would have to be cached at once.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use siphasher::sip128::{Hasher128, SipHasher24};

use serde_json::{Map, Value};

use crate::ttl_cache::TtlCache;

/// Default bound on remembered tokens (per worker).
pub const DEFAULT_JWT_CACHE_SIZE: usize = 10_000;

/// What a verified token established. Shared (`Rc`) between the cache and the
/// requests that carry the token, so a hit copies nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub rule: usize,
    /// The claims, for authorization; empty when no `authorization` block
    /// reads them (a cached token then costs its headers, not its payload).
    pub claims: Rc<Map<String, Value>>,
    /// `exp` and `nbf` (seconds), re-checked on every hit.
    pub expires: f64,
    pub not_before: Option<f64>,
    /// The identity headers the rule maps the claims to, computed once.
    pub headers: Vec<(String, String)>,
    /// The key-set generation it was verified against.
    pub key_generation: u64,
}

/// A token's keyed digest under one cache's key ([`VerifiedTokenCache::digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(u128);

/// A bounded memo of verified tokens; interior mutability keeps the pipeline's
/// view of it shared (`&`).
pub struct VerifiedTokenCache {
    entries: RefCell<TtlCache<Rc<VerifiedToken>, u128>>,
    /// The SipHash key (k0, k1).
    digest_key: (u64, u64),
}

impl VerifiedTokenCache {
    pub fn new(max_entries: usize) -> VerifiedTokenCache {
        // std seeds each thread's RandomState from the host's `random_get` (WASI);
        // its hashes of two constants are unpredictable without that seed.
        let seeded = RandomState::new();
        VerifiedTokenCache {
            entries: RefCell::new(TtlCache::new(max_entries)),
            digest_key: (seeded.hash_one(0u8), seeded.hash_one(1u8)),
        }
    }

    /// The key a token is remembered under; computed once per request, for the
    /// lookup and, on a miss, the insertion.
    pub fn digest(&self, token: &str) -> TokenDigest {
        let (k0, k1) = self.digest_key;
        let mut hasher = SipHasher24::new_with_keys(k0, k1);
        hasher.write(token.as_bytes());
        TokenDigest(hasher.finish128().as_u128())
    }

    /// The remembered result for the token of `digest`, if still valid at `now`
    /// and for the rule's current key generation.
    pub fn get(
        &self,
        digest: TokenDigest,
        now: Duration,
        clock_skew: Duration,
        generation_of: impl Fn(usize) -> u64,
    ) -> Option<Rc<VerifiedToken>> {
        let entries = self.entries.try_borrow().ok()?;
        let found = entries.get(&digest.0, now)?;
        if found.key_generation != generation_of(found.rule) {
            return None;
        }
        let now_s = now.as_secs_f64();
        let skew = clock_skew.as_secs_f64();
        let expired = now_s - skew > found.expires;
        let early = found.not_before.is_some_and(|nbf| now_s + skew < nbf);
        (!expired && !early).then(|| Rc::clone(found))
    }

    /// Remembers a token that passed every check, until its `exp` (plus skew).
    pub fn remember(
        &self,
        digest: TokenDigest,
        verified: Rc<VerifiedToken>,
        now: Duration,
        clock_skew: Duration,
    ) {
        let exp = verified.expires;
        let until = Duration::try_from_secs_f64(exp.clamp(0.0, 1e12))
            .unwrap_or_default()
            .saturating_add(clock_skew);
        let ttl = until.saturating_sub(now);
        if let Ok(mut entries) = self.entries.try_borrow_mut() {
            entries.insert(digest.0, verified, ttl, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: Duration = Duration::from_secs(1_800_000_000);
    const SKEW: Duration = Duration::from_secs(60);

    fn verified(exp: u64, generation: u64) -> Rc<VerifiedToken> {
        Rc::new(VerifiedToken {
            rule: 0,
            claims: Rc::new(
                json!({"exp": exp, "email": "a@b.c"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
            headers: vec![("kubeflow-userid".into(), "a@b.c".into())],
            expires: exp as f64,
            not_before: None,
            key_generation: generation,
        })
    }

    #[test]
    fn remembers_until_expiry_plus_skew() {
        let cache = VerifiedTokenCache::new(10);
        cache.remember(
            cache.digest("t"),
            verified(NOW.as_secs() + 100, 1),
            NOW,
            SKEW,
        );
        assert!(cache.get(cache.digest("t"), NOW, SKEW, |_| 1).is_some());
        assert!(cache
            .get(
                cache.digest("t"),
                NOW + Duration::from_secs(159),
                SKEW,
                |_| 1
            )
            .is_some());
        assert!(cache
            .get(
                cache.digest("t"),
                NOW + Duration::from_secs(161),
                SKEW,
                |_| 1
            )
            .is_none());
        assert!(cache.get(cache.digest("other"), NOW, SKEW, |_| 1).is_none());
    }

    #[test]
    fn a_new_key_set_voids_entries() {
        let cache = VerifiedTokenCache::new(10);
        cache.remember(
            cache.digest("t"),
            verified(NOW.as_secs() + 100, 1),
            NOW,
            SKEW,
        );
        assert!(cache.get(cache.digest("t"), NOW, SKEW, |_| 2).is_none());
    }

    #[test]
    fn tokens_differing_in_one_byte_do_not_share_an_entry() {
        let cache = VerifiedTokenCache::new(10);
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        cache.remember(
            cache.digest(token),
            verified(NOW.as_secs() + 100, 0),
            NOW,
            SKEW,
        );
        assert!(cache.get(cache.digest(token), NOW, SKEW, |_| 0).is_some());
        for at in 0..token.len() {
            let mut other = token.as_bytes().to_vec();
            other[at] ^= 1;
            let other = String::from_utf8(other).unwrap();
            assert!(
                cache.get(cache.digest(&other), NOW, SKEW, |_| 0).is_none(),
                "{other}"
            );
        }
        assert!(cache
            .get(cache.digest(&token[..token.len() - 1]), NOW, SKEW, |_| 0)
            .is_none());
        assert!(cache
            .get(cache.digest(&format!("{token}A")), NOW, SKEW, |_| 0)
            .is_none());
    }

    #[test]
    fn each_cache_has_its_own_digest_key() {
        assert_ne!(
            VerifiedTokenCache::new(1).digest("t"),
            VerifiedTokenCache::new(1).digest("t")
        );
    }

    #[test]
    fn is_bounded() {
        let cache = VerifiedTokenCache::new(2);
        for token in ["a", "b", "c"] {
            cache.remember(
                cache.digest(token),
                verified(NOW.as_secs() + 100, 0),
                NOW,
                SKEW,
            );
        }
        assert!(cache.get(cache.digest("a"), NOW, SKEW, |_| 0).is_none());
        assert!(cache.get(cache.digest("c"), NOW, SKEW, |_| 0).is_some());
        let off = VerifiedTokenCache::new(0);
        off.remember(off.digest("a"), verified(NOW.as_secs() + 100, 0), NOW, SKEW);
        assert!(off.get(off.digest("a"), NOW, SKEW, |_| 0).is_none());
    }
}
