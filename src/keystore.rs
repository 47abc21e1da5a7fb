//! The key sets of every rule: inline ones from the configuration, remote ones as
//! fetched. Sans-IO: the host performs the fetch and reports the result here.

use std::time::Duration;

use crate::config::{Config, KeySource};
use crate::jwks::{parse_jwks, KeySet};

/// After a failed fetch, requests needing those keys are answered 503 at once
/// for this long instead of each waiting for a fetch of its own.
pub const FAILED_FETCH_HOLD: Duration = Duration::from_secs(1);

/// What a request can count on for a rule's keys right now.
#[derive(Debug)]
pub enum KeyState<'a> {
    Ready(&'a KeySet),
    /// Not there yet: a fetch is running or should start; the request may wait.
    Pending,
    /// The last fetch failed moments ago and there are no keys to fall back on.
    Unavailable,
}

#[derive(Debug, Default)]
struct RemoteSlot {
    keys: Option<KeySet>,
    fetched_at: Option<Duration>,
    in_flight: bool,
    last_failure: Option<Duration>,
    /// When the last fetch started: refetches on an unknown `kid` are rate-limited.
    last_attempt: Option<Duration>,
    /// A request asked for a fresh fetch (a `kid` not in the set).
    refetch_wanted: bool,
}

/// A successful fetch: how many keys were usable, and notes on those skipped.
#[derive(Debug, PartialEq, Eq)]
pub struct FetchReport {
    pub keys: usize,
    pub skipped: Vec<String>,
}

/// Per-VM key state, one slot per rule (unused for inline rules).
#[derive(Debug, Default)]
pub struct KeyStore {
    slots: Vec<RemoteSlot>,
}

impl KeyStore {
    pub fn new(config: &Config) -> KeyStore {
        KeyStore {
            slots: config.rules.iter().map(|_| RemoteSlot::default()).collect(),
        }
    }

    pub fn state<'a>(&'a self, config: &'a Config, rule: usize, now: Duration) -> KeyState<'a> {
        if let Some(KeySource::Inline(keys)) = config.rules.get(rule).map(|rule| &rule.keys) {
            return KeyState::Ready(keys);
        }
        let Some(slot) = self.slots.get(rule) else {
            return KeyState::Unavailable;
        };
        if let Some(keys) = &slot.keys {
            return KeyState::Ready(keys);
        }
        if slot.in_flight {
            return KeyState::Pending;
        }
        match slot.last_failure {
            Some(failed_at) if now.saturating_sub(failed_at) < FAILED_FETCH_HOLD => {
                KeyState::Unavailable
            }
            _ => KeyState::Pending,
        }
    }

    /// Marks a fetch as started; false when one is already running (join it).
    pub fn start_fetch(&mut self, rule: usize, now: Duration) -> bool {
        match self.slots.get_mut(rule) {
            Some(slot) if !slot.in_flight => {
                slot.in_flight = true;
                slot.refetch_wanted = false;
                slot.last_attempt = Some(now);
                true
            }
            _ => false,
        }
    }

    /// May a request whose `kid` is not in the current set wait for a fresh
    /// fetch? Yes when one is running, or the last one started at least
    /// `min_interval` ago: a flood of unknown `kid`s causes no more fetches.
    pub fn may_refetch(&self, config: &Config, rule: usize, now: Duration) -> bool {
        let remote = matches!(
            config.rules.get(rule).map(|rule| &rule.keys),
            Some(KeySource::Remote(_))
        );
        remote
            && self.slots.get(rule).is_some_and(|slot| {
                slot.in_flight
                    || slot
                        .last_attempt
                        .is_none_or(|at| now.saturating_sub(at) >= config.jwks_refetch_min_interval)
            })
    }

    /// Asks for a fetch of `rule`'s keys at the next opportunity.
    pub fn want_fetch(&mut self, rule: usize) {
        if let Some(slot) = self.slots.get_mut(rule) {
            slot.refetch_wanted = true;
        }
    }

    pub fn is_fetching(&self, rule: usize) -> bool {
        self.slots.get(rule).is_some_and(|slot| slot.in_flight)
    }

    /// Remote rules to fetch now: no keys yet, a request asked for a refetch,
    /// or the keys are older than `jwksRefreshInterval` (and no fetch is running,
    /// and none failed a moment ago).
    pub fn rules_to_fetch(&self, config: &Config, now: Duration) -> Vec<usize> {
        (0..config.rules.len())
            .filter(|&rule| {
                matches!(
                    config.rules.get(rule).map(|rule| &rule.keys),
                    Some(KeySource::Remote(_))
                ) && self.slots.get(rule).is_some_and(|slot| {
                    let stale = slot
                        .fetched_at
                        .is_none_or(|at| now.saturating_sub(at) >= config.jwks_refresh_interval);
                    !slot.in_flight
                        && (slot.keys.is_none() || slot.refetch_wanted || stale)
                        && slot
                            .last_failure
                            .is_none_or(|at| now.saturating_sub(at) >= FAILED_FETCH_HOLD)
                })
            })
            .collect()
    }

    /// Records a fetch's answer body. A document that is not a JWKS, or holds no
    /// usable key, is a failure: the keys already held (if any) stay.
    pub fn fetch_succeeded(
        &mut self,
        rule: usize,
        body: &[u8],
        now: Duration,
    ) -> Result<FetchReport, String> {
        let parsed = parse_jwks(body).and_then(|parsed| {
            if parsed.keys.is_empty() {
                Err(format!("no usable key ({})", parsed.skipped.join("; ")))
            } else {
                Ok(parsed)
            }
        });
        let Some(slot) = self.slots.get_mut(rule) else {
            return Err("no such rule".into());
        };
        slot.in_flight = false;
        match parsed {
            Ok(parsed) => {
                let report = FetchReport {
                    keys: parsed.keys.len(),
                    skipped: parsed.skipped,
                };
                slot.keys = Some(parsed.keys);
                slot.fetched_at = Some(now);
                slot.last_failure = None;
                Ok(report)
            }
            Err(problem) => {
                slot.last_failure = Some(now);
                Err(problem)
            }
        }
    }

    /// Records a fetch that failed (HTTP error, timeout, reset, dispatch refused).
    pub fn fetch_failed(&mut self, rule: usize, now: Duration) {
        if let Some(slot) = self.slots.get_mut(rule) {
            slot.in_flight = false;
            slot.last_failure = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{rsa_jwks_json, DEX, NOW};
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn config() -> Config {
        Config::parse(
            json!({"jwtRules": [
                {"issuer": DEX, "jwksUri": "http://dex/keys"},
                {"issuer": "inline", "jwks": rsa_jwks_json()},
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn inline_keys_are_always_ready() {
        let config = config();
        let store = KeyStore::new(&config);
        assert!(matches!(store.state(&config, 1, NOW), KeyState::Ready(_)));
        assert_eq!(store.rules_to_fetch(&config, NOW), [0]);
    }

    #[test]
    fn remote_keys_are_pending_until_fetched() {
        let config = config();
        let mut store = KeyStore::new(&config);
        assert!(matches!(store.state(&config, 0, NOW), KeyState::Pending));
        assert!(store.start_fetch(0, NOW));
        assert!(!store.start_fetch(0, NOW), "a second fetch joins the first");
        assert!(store.rules_to_fetch(&config, NOW).is_empty());
        let report = store
            .fetch_succeeded(0, rsa_jwks_json().as_bytes(), NOW)
            .unwrap();
        assert_eq!(report.keys, 1);
        assert!(matches!(store.state(&config, 0, NOW), KeyState::Ready(_)));
        assert!(store.rules_to_fetch(&config, NOW).is_empty());
    }

    #[test]
    fn a_failed_fetch_answers_unavailable_for_a_moment_then_retries() {
        let config = config();
        let mut store = KeyStore::new(&config);
        store.start_fetch(0, NOW);
        store.fetch_failed(0, NOW);
        assert!(matches!(
            store.state(&config, 0, NOW),
            KeyState::Unavailable
        ));
        let later = NOW + FAILED_FETCH_HOLD;
        assert!(matches!(store.state(&config, 0, later), KeyState::Pending));
        assert_eq!(store.rules_to_fetch(&config, later), [0]);
    }

    #[test]
    fn refetches_on_demand_are_rate_limited() {
        let config = config();
        let mut store = KeyStore::new(&config);
        store.start_fetch(0, NOW);
        assert!(
            store.may_refetch(&config, 0, NOW),
            "joins the running fetch"
        );
        store
            .fetch_succeeded(0, rsa_jwks_json().as_bytes(), NOW)
            .unwrap();
        let soon = NOW + Duration::from_secs(1);
        assert!(!store.may_refetch(&config, 0, soon));
        let later = NOW + config.jwks_refetch_min_interval;
        assert!(store.may_refetch(&config, 0, later));
        store.want_fetch(0);
        assert_eq!(store.rules_to_fetch(&config, later), [0]);
        assert!(
            !store.may_refetch(&config, 1, later),
            "inline keys never refetch"
        );
    }

    #[test]
    fn keys_are_refreshed_after_the_refresh_interval() {
        let config = config();
        let mut store = KeyStore::new(&config);
        store.start_fetch(0, NOW);
        store
            .fetch_succeeded(0, rsa_jwks_json().as_bytes(), NOW)
            .unwrap();
        assert!(store
            .rules_to_fetch(&config, NOW + Duration::from_secs(60))
            .is_empty());
        assert_eq!(
            store.rules_to_fetch(&config, NOW + config.jwks_refresh_interval),
            [0]
        );
    }

    #[test]
    fn garbage_keeps_the_last_good_keys() {
        let config = config();
        let mut store = KeyStore::new(&config);
        store.start_fetch(0, NOW);
        store
            .fetch_succeeded(0, rsa_jwks_json().as_bytes(), NOW)
            .unwrap();
        store.start_fetch(0, NOW);
        assert!(store.fetch_succeeded(0, b"<html>", NOW).is_err());
        assert!(store.fetch_succeeded(0, br#"{"keys":[]}"#, NOW).is_err());
        assert!(matches!(store.state(&config, 0, NOW), KeyState::Ready(_)));
    }
}
