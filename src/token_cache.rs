//! Verified tokens, remembered until they expire: Kubeflow users send the same
//! session token with every request, and an RS256 check costs about a
//! millisecond in Wasm. A hit re-checks `exp` and `nbf` against the host clock;
//! an entry is void once its issuer's key set changes. Only tokens that passed
//! every check are remembered.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::authz::cache::TtlCache;

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

/// A bounded memo of verified tokens; interior mutability keeps the pipeline's
/// view of it shared (`&`).
pub struct TokenCache {
    entries: RefCell<TtlCache<Rc<VerifiedToken>>>,
}

impl TokenCache {
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            entries: RefCell::new(TtlCache::new(max_entries)),
        }
    }

    /// The remembered result for `token`, if still valid at `now` and for the
    /// rule's current key generation.
    pub fn get(
        &self,
        token: &str,
        now: Duration,
        clock_skew: Duration,
        generation_of: impl Fn(usize) -> u64,
    ) -> Option<Rc<VerifiedToken>> {
        let entries = self.entries.try_borrow().ok()?;
        let found = entries.get(token, now)?;
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
        token: &str,
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
            entries.insert(token.to_string(), verified, ttl, now);
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
        let cache = TokenCache::new(10);
        cache.remember("t", verified(NOW.as_secs() + 100, 1), NOW, SKEW);
        assert!(cache.get("t", NOW, SKEW, |_| 1).is_some());
        assert!(cache
            .get("t", NOW + Duration::from_secs(159), SKEW, |_| 1)
            .is_some());
        assert!(cache
            .get("t", NOW + Duration::from_secs(161), SKEW, |_| 1)
            .is_none());
        assert!(cache.get("other", NOW, SKEW, |_| 1).is_none());
    }

    #[test]
    fn a_new_key_set_voids_entries() {
        let cache = TokenCache::new(10);
        cache.remember("t", verified(NOW.as_secs() + 100, 1), NOW, SKEW);
        assert!(cache.get("t", NOW, SKEW, |_| 2).is_none());
    }

    #[test]
    fn is_bounded() {
        let cache = TokenCache::new(2);
        for token in ["a", "b", "c"] {
            cache.remember(token, verified(NOW.as_secs() + 100, 0), NOW, SKEW);
        }
        assert!(cache.get("a", NOW, SKEW, |_| 0).is_none());
        assert!(cache.get("c", NOW, SKEW, |_| 0).is_some());
        let off = TokenCache::new(0);
        off.remember("a", verified(NOW.as_secs() + 100, 0), NOW, SKEW);
        assert!(off.get("a", NOW, SKEW, |_| 0).is_none());
    }
}
