//! Gateway-wide decisions: SubjectAccessReview and TokenReview answers, and
//! the leases of reviews in flight, shared by every worker's VM through
//! proxy-wasm shared data, so that a gateway asks the API server once per
//! review rather than once per worker.
//!
//! # The table
//!
//! A fixed number of slots (shared-data keys `kfauth.decisions|0` ..
//! `|N-1`), in buckets of [`WAYS`] consecutive slots. A review's keyed
//! digest ([`digest`]) picks its bucket; within it, a slot holds a lease or
//! an answer together with the *full* digest of the review it is about. A
//! reader compares that digest in full, so two reviews that share a bucket
//! (or a slot, one after the other) are a miss for each other, never a
//! decision served to another user or for other attributes. Slots are
//! overwritten, never deleted: memory stays at most `N` ×
//! [`slot::MAX_SLOT_BYTES`]. Every write is a compare-and-swap on the slot's
//! token; entries whose time is past (answers after their expiry, leases of
//! a VM that never answered) count as vacant, and so do bytes that do not
//! read as an entry.
//!
//! # Use (for the broker)
//!
//! At configuration, once per VM: [`SharedDecisions::new`] with the VM's
//! random id (the one its key-set leases use), then
//! [`SharedDecisions::prepare`] with [`DigestKey::fresh`], which publishes
//! the digest key if no VM has yet and creates the slots (so that leases are
//! taken with a real compare-and-swap: Envoy cannot compare-and-swap a key
//! that does not exist). A vacant slot holds [`slot::VACANT`], never an
//! empty value, which a host may report as absent.
//!
//! For a review that the VM's own cache does not answer:
//!
//! 1. `let Some(digest) = table.digest(shared, &Review::Access { spec })`
//!    (`Review::Token { token, audiences }` for a TokenReview). `None` (no
//!    key published): ask the API server alone, as without this module.
//! 2. [`SharedDecisions::lookup`]`(shared, &digest, now)`:
//!    - `Lookup::Answer { answer, expires }`: use it, and cache it locally
//!      until `expires` only (not for a fresh TTL);
//!    - `Lookup::Leased { until }`: another VM is asking; park the request,
//!      and look up again on each tick (at `until` the lease is stale);
//!    - `Lookup::Vacant`: go to 3.
//! 3. [`SharedDecisions::lease`]`(shared, &digest, now, ttl)` with `ttl` the
//!    review's callout timeout plus a margin:
//!    - `Claim::Won` or `Claim::Alone`: send the review (`Alone`: the table
//!      could not take a lease, the bucket being full of live entries);
//!    - `Claim::Held { until }` / `Claim::Answered { .. }`: as in 2.
//! 4. When the answer comes: [`SharedDecisions::publish`] it with its
//!    absolute expiry (now + the allowed or denied TTL, or the TokenReview
//!    TTL). When there is no usable answer: [`SharedDecisions::release`], so
//!    that parked requests elsewhere find the slot vacant on their next
//!    look-up and ask for themselves (a failure is not shared).
//!
//! What races cost: a lease is one compare-and-swap, so of VMs racing for
//! it one wins. Two VMs can both win only where the compare-and-swap cannot
//! hold: on a slot that no `prepare` created yet, or when one VM reads a
//! bucket while an entry in it expires. Then the review is asked twice;
//! an answer is never given to another review.
//!
//! All of it is sans-IO: the host passes its shared data (the key store's
//! [`SharedData`] trait) and the host clock.

pub mod digest;
pub mod slot;

use std::time::Duration;

use crate::keystore::record::millis;
use crate::keystore::shared::{SharedData, WriteError};
pub use digest::{DigestKey, Review, ReviewDigest, ReviewKind};
pub use slot::Answer;
use slot::Entry;

/// Slots per bucket: a review's entry may sit in any of them. A review whose
/// bucket is full of live entries is asked by each worker alone: with 250
/// live reviews over the default table, buckets of four overflow in about
/// one gateway in 170, buckets of eight in about one in 700,000 (and with
/// 1,000 live reviews, 97% against 9%). A look-up reads one bucket.
pub const WAYS: usize = 8;
/// The slots a gateway shares by default: 512 buckets; at most 16 MiB,
/// about 150 KiB for a thousand typical SubjectAccessReview answers.
pub const DEFAULT_SLOTS: usize = 4096;
/// Compare-and-swap attempts before giving up on a write.
const ATTEMPTS: usize = 8;

/// What the table knows of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Answered, good until `expires` (host time since the epoch).
    Answer {
        answer: Answer,
        expires: Duration,
    },
    /// A VM is asking the API server, until `until` at the latest.
    Leased {
        until: Duration,
    },
    Vacant,
}

/// What [`SharedDecisions::lease`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This VM holds the lease: it asks the API server, then publishes.
    Won,
    /// Another VM holds it.
    Held { until: Duration },
    /// Answered meanwhile.
    Answered { answer: Answer, expires: Duration },
    /// The table cannot take a lease now (bucket full of live entries, or
    /// shared data refused): ask alone.
    Alone,
}

/// One slot as read: its key, content and compare-and-swap token.
struct Read {
    key: String,
    entry: Option<Entry>,
    /// `None`: the key does not exist yet.
    cas: Option<u32>,
}

/// One VM's handle on the shared table.
#[derive(Debug, Clone)]
pub struct SharedDecisions {
    /// This VM's id in leases.
    vm: u64,
    buckets: usize,
    /// Part of every digest: plugins that share a `vm_id` but not an API
    /// server (or audiences) do not share answers.
    scope: String,
}

impl SharedDecisions {
    /// A table of `slots` slots (rounded down to whole buckets, at least one).
    pub fn new(vm: u64, slots: usize, scope: &str) -> SharedDecisions {
        SharedDecisions {
            vm,
            buckets: (slots / WAYS).max(1),
            scope: scope.to_string(),
        }
    }

    /// How many slots the table has.
    pub fn slots(&self) -> usize {
        self.buckets.saturating_mul(WAYS)
    }

    /// Publishes the digest key unless one is there, and creates the slots
    /// that do not exist yet (as vacant).
    pub fn prepare(&self, shared: &mut dyn SharedData, fresh: DigestKey) {
        digest::publish_key(shared, fresh);
        for index in 0..self.slots() {
            let key = slot_key(index);
            if shared.get(&key).is_none() {
                let _ = shared.set(&key, slot::VACANT, None);
            }
        }
    }

    /// The review's digest under the published key (read on every call, so
    /// that every VM digests with the key that stands); `None` before any
    /// key is published.
    pub fn digest(&self, shared: &dyn SharedData, review: &Review) -> Option<ReviewDigest> {
        digest::published_key(shared).map(|key| key.digest(&self.scope, review))
    }

    /// What the table holds about the review at `now`.
    pub fn lookup(&self, shared: &dyn SharedData, digest: &ReviewDigest, now: Duration) -> Lookup {
        let now_ms = millis(now);
        let mut leased = None;
        for read in self.bucket(shared, digest) {
            match read.entry {
                Some(entry) if entry.is_about(digest) && entry.is_live(now_ms) => match entry {
                    Entry::Answered {
                        answer, expires_ms, ..
                    } => {
                        return Lookup::Answer {
                            answer,
                            expires: Duration::from_millis(expires_ms),
                        }
                    }
                    Entry::Leased { until_ms, .. } => leased = Some(until_ms),
                },
                _ => {}
            }
        }
        match leased {
            Some(until_ms) => Lookup::Leased {
                until: Duration::from_millis(until_ms),
            },
            None => Lookup::Vacant,
        }
    }

    /// Takes the lease on the review until `now + ttl`, unless it is answered
    /// or another VM holds a live lease. Only vacant or spent slots are
    /// taken: a lease never pushes out a live answer.
    pub fn lease(
        &self,
        shared: &mut dyn SharedData,
        digest: &ReviewDigest,
        now: Duration,
        ttl: Duration,
    ) -> Claim {
        let now_ms = millis(now);
        let lease = Entry::Leased {
            digest: digest.encode(),
            holder: self.vm,
            until_ms: millis(now.saturating_add(ttl)),
        };
        let Some(bytes) = lease.encode() else {
            return Claim::Alone;
        };
        for _ in 0..ATTEMPTS {
            let reads = self.bucket(shared, digest);
            match known(&reads, digest, now_ms) {
                Some(Entry::Answered {
                    answer, expires_ms, ..
                }) => {
                    return Claim::Answered {
                        answer: answer.clone(),
                        expires: Duration::from_millis(*expires_ms),
                    }
                }
                Some(Entry::Leased { holder, .. }) if *holder == self.vm => return Claim::Won,
                Some(Entry::Leased { until_ms, .. }) => {
                    return Claim::Held {
                        until: Duration::from_millis(*until_ms),
                    }
                }
                None => {}
            }
            let Some(target) = spent_slot(&reads, digest, now_ms) else {
                return Claim::Alone;
            };
            match shared.set(&target.key, &bytes, target.cas) {
                Ok(()) => return Claim::Won,
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Refused) => return Claim::Alone,
            }
        }
        Claim::Alone
    }

    /// Stores the review's answer until `expires`: in the slot about the
    /// review if there is one (this VM's lease, say), else in a vacant or
    /// spent slot, else in place of the bucket's answer that ends first (never
    /// a live lease: workers wait on it). Returns whether it was stored.
    pub fn publish(
        &self,
        shared: &mut dyn SharedData,
        digest: &ReviewDigest,
        answer: Answer,
        expires: Duration,
        now: Duration,
    ) -> bool {
        // An answer of another kind, or one already expired (a zero TTL):
        // nothing to share, and nothing to push out for it.
        if answer.kind() != digest.kind || expires <= now {
            return false;
        }
        let now_ms = millis(now);
        let entry = Entry::Answered {
            digest: digest.encode(),
            answer,
            expires_ms: millis(expires),
        };
        let Some(bytes) = entry.encode() else {
            return false;
        };
        for _ in 0..ATTEMPTS {
            let reads = self.bucket(shared, digest);
            let target = reads
                .iter()
                .find(|read| read.entry.as_ref().is_some_and(|e| e.is_about(digest)))
                .or_else(|| spent_slot(&reads, digest, now_ms))
                .or_else(|| {
                    reads
                        .iter()
                        .filter(|read| !matches!(read.entry, Some(Entry::Leased { .. })))
                        .min_by_key(|read| ends_ms(&read.entry))
                });
            let Some(target) = target else {
                return false;
            };
            match shared.set(&target.key, &bytes, target.cas) {
                Ok(()) => return true,
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Refused) => return false,
            }
        }
        false
    }

    /// Drops this VM's lease on the review (its review failed), so that VMs
    /// waiting on it find the slot vacant and ask for themselves.
    pub fn release(&self, shared: &mut dyn SharedData, digest: &ReviewDigest) {
        for _ in 0..ATTEMPTS {
            let reads = self.bucket(shared, digest);
            let mine = reads.iter().find(|read| match &read.entry {
                Some(entry @ Entry::Leased { holder, .. }) => {
                    *holder == self.vm && entry.is_about(digest)
                }
                _ => false,
            });
            let Some(mine) = mine else {
                return;
            };
            match shared.set(&mine.key, slot::VACANT, mine.cas) {
                Err(WriteError::CasMismatch) => continue,
                Ok(()) | Err(WriteError::Refused) => return,
            }
        }
    }

    /// Which bucket the review's entry goes to.
    fn bucket_index(&self, digest: &ReviewDigest) -> usize {
        let buckets = u64::try_from(self.buckets).unwrap_or(1).max(1);
        let seed = digest.bucket_seed().checked_rem(buckets).unwrap_or(0);
        usize::try_from(seed).unwrap_or(0)
    }

    /// The slots of the review's bucket, as they are now.
    fn bucket(&self, shared: &dyn SharedData, digest: &ReviewDigest) -> Vec<Read> {
        let first = self.bucket_index(digest).saturating_mul(WAYS);
        (first..first.saturating_add(WAYS))
            .map(|index| {
                let key = slot_key(index);
                let (entry, cas) = match shared.get(&key) {
                    Some((bytes, cas)) => (Entry::decode(&bytes), Some(cas)),
                    None => (None, None),
                };
                Read { key, entry, cas }
            })
            .collect()
    }
}

/// The shared-data key of slot `index`.
pub fn slot_key(index: usize) -> String {
    format!("kfauth.decisions|{index}")
}

/// The live entry about the review in its bucket: an answer before a lease.
fn known<'a>(reads: &'a [Read], digest: &ReviewDigest, now_ms: u64) -> Option<&'a Entry> {
    let live = || {
        reads
            .iter()
            .filter_map(|read| read.entry.as_ref())
            .filter(move |entry| entry.is_about(digest) && entry.is_live(now_ms))
    };
    live()
        .find(|entry| matches!(entry, Entry::Answered { .. }))
        .or_else(|| live().next())
}

/// A slot that may be taken without pushing out anything live: the review's
/// own spent entry first, then any vacant, unreadable or spent slot.
fn spent_slot<'a>(reads: &'a [Read], digest: &ReviewDigest, now_ms: u64) -> Option<&'a Read> {
    let spent = |read: &&Read| read.entry.as_ref().is_none_or(|e| !e.is_live(now_ms));
    reads
        .iter()
        .filter(spent)
        .find(|read| read.entry.as_ref().is_some_and(|e| e.is_about(digest)))
        .or_else(|| reads.iter().find(spent))
}

/// When an entry stops counting (vacant: long ago).
fn ends_ms(entry: &Option<Entry>) -> u64 {
    match entry {
        None => 0,
        Some(Entry::Leased { until_ms, .. }) => *until_ms,
        Some(Entry::Answered { expires_ms, .. }) => *expires_ms,
    }
}

#[cfg(test)]
mod tests;
