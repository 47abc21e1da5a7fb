//! Sorts every answer into what the documented behaviour allows and what it
//! does not (README, "Keys: fetching, sharing, outages", and
//! `jwksRefetchMinInterval`):
//!
//! - a valid token must pass with exactly its identity, through the outage
//!   too (the last good keys are kept), with two documented exceptions, both
//!   401 `key_unknown` (or 503 `jwks_unavailable`) for a token whose key kfauth
//!   has not fetched yet:
//!   - after a rotation, an unknown `kid` makes kfauth refetch at most once
//!     per `jwksRefetchMinInterval` (any fetch attempt counts, a refresh or a
//!     refetch for a made-up `kid`); until the refetch the rate limit allows,
//!     tokens of the new key are refused;
//!   - a key rotated in *during* the outage cannot be known before kfauth's
//!     first fetch after the IdP is back (which must come within
//!     `jwksRefetchMinInterval` of the return);
//! - a token whose key the issuer removed may still pass until kfauth has
//!   fetched the set without it, and must be refused after that;
//! - an invalid token must never pass.
//!
//! "Fetched" is the arrival of a JWKS request at the IdP plus [`PROPAGATION`]:
//! the worker that fetched publishes the set at once and the other workers
//! read it on their next tick (every second).

use std::collections::BTreeMap;
use std::time::Duration;

use super::driver::{Identity, Record};
use super::timeline::Pick;
use super::tokens::Invalid;

/// Time from a JWKS request reaching the IdP to every worker using the
/// answer: the fetch itself and a one-second tick, with slack for a busy
/// machine.
pub const PROPAGATION: Duration = Duration::from_secs(2);

/// kfauth's `jwksRefetchMinInterval`, which the soak sets explicitly.
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// The generation rotated in while the IdP is up (see `timeline`).
const ROTATED: usize = 1;
/// The generation rotated in while the IdP is down.
const ROTATED_IN_OUTAGE: usize = 2;

/// When things actually happened, from the start of the load.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub rotated: Duration,
    pub removed_old: Duration,
    pub outage_start: Duration,
    pub rotated_in_outage: Duration,
    pub outage_end: Duration,
    /// Arrivals of JWKS requests at the IdP (each one answered with the set).
    pub jwks_hits: Vec<Duration>,
}

impl Observed {
    fn first_hit_after(&self, at: Duration) -> Option<Duration> {
        self.jwks_hits.iter().copied().find(|hit| *hit >= at)
    }

    fn last_hit_before(&self, at: Duration) -> Option<Duration> {
        self.jwks_hits.iter().copied().rfind(|hit| *hit < at)
    }

    /// From when a token of the key rotated in while the IdP is up must pass:
    /// the first fetch after the rotation, which may come no later than the
    /// refetch rate limit allows.
    pub fn rotated_key_known_from(&self) -> Duration {
        let allowed = self
            .last_hit_before(self.rotated)
            .map_or(self.rotated, |hit| {
                (hit + REFETCH_MIN_INTERVAL).max(self.rotated)
            });
        self.first_hit_after(self.rotated)
            .map_or(allowed, |hit| hit.min(allowed))
            + PROPAGATION
    }

    /// From when a token of the removed key must be refused.
    pub fn retired_refused_from(&self) -> Option<Duration> {
        self.first_hit_after(self.removed_old)
            .map(|hit| hit + PROPAGATION)
    }

    /// From when a token of the key rotated in during the outage must pass:
    /// the first fetch after the IdP is back, within the refetch rate limit
    /// of the return (the last failed attempt was before it).
    pub fn outage_key_known_from(&self) -> Duration {
        let allowed = self.outage_end + REFETCH_MIN_INTERVAL;
        self.first_hit_after(self.outage_end)
            .map_or(allowed, |hit| hit.min(allowed))
            + PROPAGATION
    }
}

/// Counts for the report.
#[derive(Debug, Default)]
pub struct Tally {
    pub total: u64,
    pub transport_errors: u64,
    pub spoofed: u64,
    pub valid: u64,
    pub valid_passed: u64,
    /// Refusals of tokens of the key rotated in while the IdP is up that the
    /// refetch rate limit allows, by status and reason.
    pub rotation_refused_allowed: BTreeMap<String, u64>,
    /// Refusals of tokens of the key rotated in during the outage that the
    /// outage policy allows, by status and reason.
    pub valid_refused_allowed: BTreeMap<String, u64>,
    /// Refusals of valid tokens it does not allow, by status and reason.
    pub valid_refused: BTreeMap<String, u64>,
    /// First refusals outside the policy, for the report.
    pub valid_refused_examples: Vec<String>,
    pub rotated_key_sent: u64,
    pub rotated_key_passed: u64,
    pub outage_key_sent: u64,
    pub outage_key_passed: u64,
    pub wrong_identities: u64,
    pub wrong_identity_examples: Vec<String>,
    pub retired: u64,
    pub retired_passed_before_refetch: u64,
    pub retired_refused: u64,
    pub invalid: u64,
    /// Answers to invalid tokens, by kind then status and reason.
    pub invalid_answers: BTreeMap<String, u64>,
    /// Invalid tokens (and retired ones after the refetch) that passed.
    pub invalid_accepted: u64,
    pub invalid_accepted_examples: Vec<String>,
}

impl Tally {
    pub fn valid_refused_total(&self) -> u64 {
        self.valid_refused.values().sum()
    }

    pub fn valid_refused_allowed_total(&self) -> u64 {
        self.valid_refused_allowed.values().sum()
    }

    pub fn rotation_refused_allowed_total(&self) -> u64 {
        self.rotation_refused_allowed.values().sum()
    }
}

fn answer(record: &Record) -> String {
    format!(
        "{} {}",
        record.status,
        record.reason.as_deref().unwrap_or_default()
    )
}

fn example(record: &Record, what: &str) -> String {
    format!(
        "t={:.3}s {:?} {what}",
        record.sent.as_secs_f64(),
        record.pick
    )
}

fn push_example(list: &mut Vec<String>, line: String) {
    if list.len() < 8 {
        list.push(line);
    }
}

/// Sorts `records` given what happened when.
pub fn tally(records: &[Record], observed: &Observed, invalid_kinds: &[Invalid]) -> Tally {
    let mut tally = Tally::default();
    let retired_refused_from = observed.retired_refused_from();
    let outage_key_known_from = observed.outage_key_known_from();
    let rotated_key_known_from = observed.rotated_key_known_from();
    for record in records {
        tally.total += 1;
        tally.spoofed += u64::from(record.spoofed);
        tally.transport_errors += u64::from(record.status == 0);
        let passed = (200..300).contains(&record.status);
        if let Identity::Wrong(seen) = &record.identity {
            if !matches!(record.pick, Pick::Invalid { .. }) {
                tally.wrong_identities += 1;
                push_example(&mut tally.wrong_identity_examples, example(record, seen));
            }
        }
        match record.pick {
            Pick::Valid { generation, .. } => {
                tally.valid += 1;
                let outage_key = generation == ROTATED_IN_OUTAGE;
                let rotated_key = generation == ROTATED;
                tally.outage_key_sent += u64::from(outage_key);
                tally.rotated_key_sent += u64::from(rotated_key);
                if passed {
                    tally.valid_passed += 1;
                    tally.outage_key_passed += u64::from(outage_key);
                    tally.rotated_key_passed += u64::from(rotated_key);
                    continue;
                }
                let not_fetched_yet = matches!(
                    (record.status, record.reason.as_deref()),
                    (401, Some("key_unknown")) | (503, Some("jwks_unavailable"))
                );
                let key = answer(record);
                if not_fetched_yet && outage_key && record.sent < outage_key_known_from {
                    *tally.valid_refused_allowed.entry(key).or_default() += 1;
                } else if not_fetched_yet && rotated_key && record.sent < rotated_key_known_from {
                    *tally.rotation_refused_allowed.entry(key).or_default() += 1;
                } else {
                    push_example(&mut tally.valid_refused_examples, example(record, &key));
                    *tally.valid_refused.entry(key).or_default() += 1;
                }
            }
            Pick::Retired { .. } => {
                tally.retired += 1;
                if !passed {
                    tally.retired_refused += 1;
                } else if retired_refused_from.is_none_or(|from| record.sent < from) {
                    tally.retired_passed_before_refetch += 1;
                } else {
                    tally.invalid_accepted += 1;
                    push_example(
                        &mut tally.invalid_accepted_examples,
                        example(record, "removed key accepted after the refetch"),
                    );
                }
            }
            Pick::Invalid { index, .. } => {
                tally.invalid += 1;
                let kind = invalid_kinds
                    .get(index)
                    .map_or("?".to_string(), |kind| format!("{kind:?}"));
                *tally
                    .invalid_answers
                    .entry(format!("{kind}: {}", answer(record)))
                    .or_default() += 1;
                if passed {
                    tally.invalid_accepted += 1;
                    push_example(
                        &mut tally.invalid_accepted_examples,
                        example(record, &format!("{kind} accepted")),
                    );
                }
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn record(sent: f64, pick: Pick, status: u16, reason: &str) -> Record {
        Record {
            sent: s(sent),
            pick,
            status,
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            identity: if status == 200 {
                Identity::Correct
            } else {
                Identity::NotForwarded
            },
            spoofed: false,
            took: Duration::ZERO,
        }
    }

    fn observed() -> Observed {
        Observed {
            rotated: s(150.0),
            removed_old: s(210.0),
            outage_start: s(300.0),
            rotated_in_outage: s(330.0),
            outage_end: s(360.0),
            jwks_hits: vec![s(0.0), s(123.6), s(153.6), s(213.9), s(365.5)],
        }
    }

    const G2: Pick = Pick::Valid {
        generation: 1,
        index: 0,
    };
    const G3: Pick = Pick::Valid {
        generation: 2,
        index: 0,
    };

    #[test]
    fn new_key_refusals_are_allowed_only_until_the_refetch_the_rate_limit_permits() {
        let observed = observed();
        // Last attempt 123.6 s: a refetch may happen from 153.6 s, and did.
        assert_eq!(observed.rotated_key_known_from(), s(155.6));
        let records = [
            record(150.1, G2, 401, "key_unknown"),
            record(155.0, G2, 401, "key_unknown"),
            record(155.7, G2, 401, "key_unknown"),
            record(151.0, G2, 403, "forbidden"),
        ];
        let tally = tally(&records, &observed, &[]);
        assert_eq!(tally.rotation_refused_allowed_total(), 2);
        assert_eq!(tally.valid_refused_total(), 2);
        // A refetch later than the rate limit allows does not move the bound.
        let late = Observed {
            jwks_hits: vec![s(123.6), s(170.0)],
            ..observed
        };
        assert_eq!(late.rotated_key_known_from(), s(155.6));
    }

    #[test]
    fn outage_key_refusals_end_with_the_first_fetch_after_the_return() {
        let observed = observed();
        assert_eq!(observed.outage_key_known_from(), s(367.5));
        let records = [
            record(331.0, G3, 401, "key_unknown"),
            record(367.0, G3, 503, "jwks_unavailable"),
            record(368.0, G3, 401, "key_unknown"),
            // A token of a key kfauth had is never refused in the outage.
            record(320.0, G2, 401, "key_unknown"),
        ];
        let tally = tally(&records, &observed, &[]);
        assert_eq!(tally.valid_refused_allowed_total(), 2);
        assert_eq!(tally.valid_refused_total(), 2);
    }

    #[test]
    fn removed_keys_and_invalid_tokens_must_not_pass() {
        let observed = observed();
        assert_eq!(observed.retired_refused_from(), Some(s(215.9)));
        let retired = Pick::Retired { index: 0 };
        let invalid = Pick::Invalid {
            generation: 1,
            index: 0,
        };
        let mut wrong = record(400.0, G2, 200, "");
        wrong.identity = Identity::Wrong("userid [\"other\"]".into());
        let records = [
            record(212.0, retired, 200, ""),
            record(216.0, retired, 200, ""),
            record(216.5, retired, 401, "key_unknown"),
            record(400.0, invalid, 200, ""),
            record(400.0, invalid, 401, "signature_invalid"),
            wrong,
        ];
        let tally = tally(&records, &observed, &[Invalid::Forged]);
        assert_eq!(tally.retired_passed_before_refetch, 1);
        assert_eq!(tally.retired_refused, 1);
        assert_eq!(tally.invalid_accepted, 2);
        assert_eq!(tally.wrong_identities, 1);
        assert_eq!(tally.invalid_answers.get("Forged: 200 "), Some(&1));
    }
}
