//! A bounded cache of answers, each with its own time to live; when full,
//! the oldest inserted entry goes first. Used for SubjectAccessReview and
//! TokenReview answers (authorization) and verified tokens (authentication).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: Duration,
}

/// Keys are cloned once into the eviction order: `Rc<str>` (one allocation
/// shared by the map and the order) or a small value such as a digest.
#[derive(Debug)]
pub struct TtlCache<V, K = Rc<str>> {
    entries: HashMap<K, Entry<V>>,
    order: VecDeque<K>,
    max_entries: usize,
}

impl<V, K: Hash + Eq + Clone> TtlCache<V, K> {
    pub fn new(max_entries: usize) -> TtlCache<V, K> {
        TtlCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max_entries,
        }
    }

    pub fn get<Q>(&self, key: &Q, now: Duration) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .filter(|entry| entry.expires > now)
            .map(|entry| &entry.value)
    }

    pub fn insert(&mut self, key: impl Into<K>, value: V, ttl: Duration, now: Duration) {
        if self.max_entries == 0 || ttl.is_zero() {
            return;
        }
        let key: K = key.into();
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.max_entries {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.entries.remove(&oldest);
                    }
                    None => break,
                }
            }
            self.order.push_back(key.clone());
        }
        self.entries.insert(
            key,
            Entry {
                value,
                expires: now.saturating_add(ttl),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: Duration = Duration::from_secs(1000);

    #[test]
    fn entries_expire_after_their_ttl() {
        let mut cache: TtlCache<&str> = TtlCache::new(10);
        cache.insert("a", "long", Duration::from_secs(300), NOW);
        cache.insert("d", "short", Duration::from_secs(30), NOW);
        let later = NOW + Duration::from_secs(31);
        assert_eq!(cache.get("a", later), Some(&"long"));
        assert!(cache.get("d", later).is_none());
        assert!(cache.get("a", NOW + Duration::from_secs(300)).is_none());
    }

    #[test]
    fn the_oldest_entry_goes_first_when_full() {
        let mut cache: TtlCache<u8, u32> = TtlCache::new(2);
        for key in [1u32, 2, 1, 3] {
            cache.insert(key, 0, Duration::from_secs(60), NOW);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&1, NOW).is_none());
        assert!(cache.get(&2, NOW).is_some() && cache.get(&3, NOW).is_some());
        let mut off: TtlCache<u8, u32> = TtlCache::new(0);
        off.insert(1u32, 0, Duration::from_secs(60), NOW);
        assert!(off.is_empty());
    }
}
