//! The record one issuer's key set has in shared data: the last good JWKS
//! document, when it was fetched, the fetch lease, and the retry schedule.
//! Every VM reads it; only the lease holder fetches and writes the result.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who fetches right now, until when (a holder that dies loses it at expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: u64,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRecord {
    /// Bumped by every finished fetch, good or bad: VMs act when it changes.
    pub generation: u64,
    /// The last good JWKS document.
    pub body: Option<String>,
    pub fetched_at_ms: Option<u64>,
    /// Consecutive failed fetches, for the backoff.
    pub failures: u32,
    pub last_failure_ms: Option<u64>,
    /// When the next background fetch (refresh or retry) is due.
    pub next_due_ms: u64,
    /// When the last fetch started: on-demand refetches are rate-limited by it.
    pub last_attempt_ms: Option<u64>,
    pub lease: Option<Lease>,
    /// The `jwks_uri` found by OpenID discovery, once known.
    pub jwks_uri: Option<String>,
}

pub fn millis(time: Duration) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(u64::MAX)
}

impl SharedRecord {
    pub fn decode(bytes: &[u8]) -> Option<SharedRecord> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Is a fetch running somewhere (a lease that has not expired)?
    pub fn fetch_in_flight(&self, now: Duration) -> bool {
        self.lease
            .is_some_and(|lease| lease.expires_ms > millis(now))
    }

    pub fn failed_within(&self, window: Duration, now: Duration) -> bool {
        self.last_failure_ms
            .is_some_and(|at| millis(now).saturating_sub(at) < millis(window))
    }

    pub fn attempted_within(&self, window: Duration, now: Duration) -> bool {
        self.last_attempt_ms
            .is_some_and(|at| millis(now).saturating_sub(at) < millis(window))
    }

    /// Gives a fetch up unfinished (the VM that started it had its
    /// configuration retired, and its callout will never be answered): the
    /// lease goes, and the next VM to tick fetches at once.
    pub fn abandon(&mut self, now: Duration) {
        self.lease = None;
        self.next_due_ms = self.next_due_ms.min(millis(now));
    }

    /// Records a good fetch and schedules the next refresh.
    pub fn succeed(&mut self, body: String, now: Duration, refresh: Duration) {
        self.generation = self.generation.wrapping_add(1);
        self.body = Some(body);
        self.fetched_at_ms = Some(millis(now));
        self.failures = 0;
        self.next_due_ms = millis(now.saturating_add(refresh));
        self.lease = None;
    }

    /// Records a failed fetch: keeps the last good document and backs off,
    /// 1 s doubling up to the refresh interval.
    pub fn fail(&mut self, now: Duration, refresh: Duration) {
        self.generation = self.generation.wrapping_add(1);
        self.failures = self.failures.saturating_add(1);
        self.last_failure_ms = Some(millis(now));
        self.next_due_ms = millis(now.saturating_add(backoff(self.failures, refresh)));
        self.lease = None;
        // A discovered jwks_uri may be what is wrong: discover again next time.
        self.jwks_uri = None;
    }
}

/// The wait after `failures` consecutive failures: 1 s, 2 s, 4 s, ... capped.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    Duration::from_secs(1u64 << exponent).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(20 * 60);
        let waits: Vec<u64> = (1..=6).map(|n| backoff(n, cap).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32]);
        assert_eq!(backoff(40, cap), cap);
    }

    #[test]
    fn records_round_trip_and_garbage_is_none() {
        let mut record = SharedRecord::default();
        record.succeed(
            "{\"keys\":[]}".into(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        assert_eq!(SharedRecord::decode(&record.encode()), Some(record.clone()));
        assert_eq!(record.next_due_ms, 65_000);
        assert_eq!(SharedRecord::decode(b"garbage"), None);
    }

    #[test]
    fn a_failure_keeps_the_document_and_drops_the_lease() {
        let mut record = SharedRecord::default();
        record.succeed(
            "doc".into(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        record.lease = Some(Lease {
            holder: 1,
            expires_ms: 99_000,
        });
        record.fail(Duration::from_secs(70), Duration::from_secs(60));
        assert_eq!(record.body.as_deref(), Some("doc"));
        assert_eq!(record.lease, None);
        assert_eq!(record.next_due_ms, 71_000);
        assert!(record.failed_within(Duration::from_secs(1), Duration::from_millis(70_500)));
    }
}
