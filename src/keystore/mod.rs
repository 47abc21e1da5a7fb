//! The key sets of every rule, as one VM (one Envoy worker) sees them.
//!
//! Inline key sets come from the configuration. Fetched ones (`jwksUri`, or
//! OpenID discovery) live in a shared-data record per issuer (see `record`):
//! one VM at a time holds the record's lease and fetches; every VM reads the
//! record on its tick and parses a new document once, when the record's
//! generation changes. Sans-IO: the host performs the callouts and hands the
//! answers here, with the shared data behind the `SharedData` trait.

pub mod record;
pub mod shared;
pub mod signature_choice;

use std::time::Duration;

use crate::config::Config;
use crate::discovery::jwks_endpoint;
use crate::endpoint::Endpoint;
use crate::jwks::{parse_jwks, KeySet};
use crate::jwt_rule::KeySource;
use crate::signature_host::SignatureHost;
use record::{millis, Lease, SharedRecord};
use shared::{SharedData, WriteError};

/// Without keys, requests trigger a fetch at most this often (and are answered
/// 503 at once for this long after a failure instead of each waiting).
pub const MISSING_KEYS_RETRY: Duration = Duration::from_secs(1);

/// What a request can count on for a rule's keys right now.
#[derive(Debug)]
pub enum KeyState<'a> {
    Ready(&'a KeySet),
    /// Not there yet: a fetch is running or may start; the request may wait.
    Pending,
    /// The last fetch failed moments ago and there are no keys to fall back on.
    Unavailable,
}

/// Which document a fetch is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchStage {
    Discovery,
    Jwks,
}

/// A callout the host should make for `rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPlan {
    pub rule: usize,
    pub stage: FetchStage,
    pub endpoint: Endpoint,
    pub timeout: Duration,
    /// Started because a token's `kid` was not in the set (for the metric).
    pub unknown_kid: bool,
}

/// How a fetch ended, for logs and metrics.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchResult {
    /// Discovery found the JWKS endpoint: fetch it now (the lease is kept).
    Next(FetchPlan),
    Succeeded {
        keys: usize,
        skipped: Vec<String>,
    },
    Failed(String),
}

/// What a tick's read of the shared record changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// A fetch finished somewhere (good or bad): requests waiting may go on.
    pub generation_changed: bool,
    /// A new key set was installed, with this many usable keys.
    pub installed: Option<usize>,
    /// Keys older than `jwksMaxStale` were dropped.
    pub dropped_stale: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Demand {
    #[default]
    None,
    /// Requests wait for keys that are not there.
    Keys,
    /// Requests carry a `kid` the current set lacks.
    UnknownKid,
}

#[derive(Debug, Default)]
struct Slot {
    keys: Option<KeySet>,
    keys_fetched_at_ms: Option<u64>,
    /// The shared record as last read, without its document.
    record: SharedRecord,
    /// Set while this VM holds the lease and a callout is out.
    fetching: Option<FetchStage>,
    demand: Demand,
}

pub struct KeyStore {
    vm_id: u64,
    slots: Vec<Slot>,
    /// Given to every key set installed here.
    signature_host: Option<&'static dyn SignatureHost>,
}

/// The shared-data key of a rule's record: its issuer and where its keys come from.
pub fn shared_key(config: &Config, rule: usize) -> String {
    match config.rules.get(rule) {
        Some(rule) => format!("kfauth.jwks|{}|{}", rule.issuer, rule.keys.location()),
        None => String::new(),
    }
}

/// Reads, changes and writes a record with compare-and-swap, retrying when
/// another VM wrote in between. Returns the record as written.
fn update_record(
    shared: &mut dyn SharedData,
    key: &str,
    mut change: impl FnMut(&mut SharedRecord) -> bool,
) -> Option<SharedRecord> {
    for _ in 0..8 {
        let (mut record, cas) = match shared.get(key) {
            Some((bytes, cas)) => (SharedRecord::decode(&bytes).unwrap_or_default(), Some(cas)),
            None => (SharedRecord::default(), None),
        };
        if !change(&mut record) {
            return None;
        }
        match shared.set(key, &record.encode(), cas) {
            Ok(()) => return Some(record),
            Err(WriteError::CasMismatch) => continue,
            Err(WriteError::Refused) => return None,
        }
    }
    None
}

fn without_body(record: &SharedRecord) -> SharedRecord {
    SharedRecord {
        body: None,
        ..record.clone()
    }
}

impl KeyStore {
    /// `vm_id` tells this VM's leases from the others'; make it random.
    pub fn new(config: &Config, vm_id: u64) -> KeyStore {
        KeyStore {
            vm_id,
            slots: config.rules.iter().map(|_| Slot::default()).collect(),
            signature_host: None,
        }
    }

    /// Lets `host` check the signatures of the key sets fetched from now on
    /// (see [`signature_choice::choose`]).
    pub fn use_signature_host(&mut self, host: Option<&'static dyn SignatureHost>) {
        self.signature_host = host;
    }

    /// Creates the shared records that do not exist yet, so that leases are
    /// taken with a real compare-and-swap from the start.
    pub fn ensure_records(&self, config: &Config, shared: &mut dyn SharedData) {
        for (index, rule) in config.rules.iter().enumerate() {
            let key = shared_key(config, index);
            if rule.keys.is_remote() && shared.get(&key).is_none() {
                let _ = shared.set(&key, &SharedRecord::default().encode(), None);
            }
        }
    }

    fn is_fresh(&self, config: &Config, slot: &Slot, now: Duration) -> bool {
        slot.keys_fetched_at_ms
            .is_some_and(|at| millis(now).saturating_sub(at) < millis(config.jwks_max_stale))
    }

    pub fn state<'a>(&'a self, config: &'a Config, rule: usize, now: Duration) -> KeyState<'a> {
        if let Some(KeySource::Inline(keys)) = config.rules.get(rule).map(|rule| &rule.keys) {
            return KeyState::Ready(keys);
        }
        let Some(slot) = self.slots.get(rule) else {
            return KeyState::Unavailable;
        };
        if let Some(keys) = &slot.keys {
            if self.is_fresh(config, slot, now) {
                return KeyState::Ready(keys);
            }
        }
        if slot.fetching.is_some() || slot.record.fetch_in_flight(now) {
            KeyState::Pending
        } else if slot.record.failed_within(MISSING_KEYS_RETRY, now) {
            KeyState::Unavailable
        } else {
            KeyState::Pending
        }
    }

    /// May a request whose `kid` is not in the current set wait for a fresh
    /// fetch? Yes when one is running, or the last one started at least
    /// `jwksRefetchMinInterval` ago: a flood of unknown `kid`s fetches no more.
    pub fn may_refetch(&self, config: &Config, rule: usize, now: Duration) -> bool {
        let remote = config
            .rules
            .get(rule)
            .is_some_and(|rule| rule.keys.is_remote());
        remote
            && self.slots.get(rule).is_some_and(|slot| {
                slot.fetching.is_some()
                    || slot.record.fetch_in_flight(now)
                    || !slot
                        .record
                        .attempted_within(config.jwks_refetch_min_interval, now)
            })
    }

    /// Records that requests wait for `rule`'s keys (missing, or an unknown `kid`).
    pub fn want_fetch(&mut self, rule: usize) {
        if let Some(slot) = self.slots.get_mut(rule) {
            if slot.demand == Demand::None {
                slot.demand = if slot.keys.is_some() {
                    Demand::UnknownKid
                } else {
                    Demand::Keys
                };
            }
        }
    }

    /// The generation of the record as last seen (waiters note it to know when
    /// a fetch has finished).
    pub fn generation(&self, rule: usize) -> u64 {
        self.slots
            .get(rule)
            .map_or(0, |slot| slot.record.generation)
    }

    /// How old the installed keys are.
    pub fn age(&self, rule: usize, now: Duration) -> Option<Duration> {
        let at = self.slots.get(rule)?.keys_fetched_at_ms?;
        Some(Duration::from_millis(millis(now).saturating_sub(at)))
    }

    /// Reads `rule`'s shared record and installs a newly published key set.
    pub fn sync(
        &mut self,
        config: &Config,
        rule: usize,
        shared: &dyn SharedData,
        now: Duration,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        let fresh_limit = config.jwks_max_stale;
        let signature_host = self.signature_host;
        let Some(slot) = self.slots.get_mut(rule) else {
            return report;
        };
        if let Some(record) = shared
            .get(&shared_key(config, rule))
            .and_then(|(bytes, _)| SharedRecord::decode(&bytes))
        {
            if record.generation != slot.record.generation {
                report.generation_changed = true;
                slot.demand = Demand::None;
            }
            if record.fetched_at_ms != slot.keys_fetched_at_ms {
                if let Some(keys) = record
                    .body
                    .as_deref()
                    .and_then(|body| parse_jwks(body.as_bytes()).ok())
                    .filter(|parsed| !parsed.keys.is_empty())
                {
                    report.installed = Some(keys.keys.len());
                    let mut keys = keys.keys;
                    keys.use_signature_host(signature_host);
                    slot.keys = Some(keys);
                    slot.keys_fetched_at_ms = record.fetched_at_ms;
                }
            }
            slot.record = without_body(&record);
        }
        let stale = slot
            .keys_fetched_at_ms
            .is_some_and(|at| millis(now).saturating_sub(at) >= millis(fresh_limit));
        if stale && slot.keys.is_some() {
            slot.keys = None;
            report.dropped_stale = true;
        }
        report
    }

    /// Starts a fetch of `rule`'s keys if one is due and no VM is fetching:
    /// takes the lease and says what to fetch.
    pub fn begin_fetch(
        &mut self,
        config: &Config,
        rule: usize,
        shared: &mut dyn SharedData,
        now: Duration,
    ) -> Option<FetchPlan> {
        let rule_config = config.rules.get(rule)?;
        if !rule_config.keys.is_remote() {
            return None;
        }
        let vm_id = self.vm_id;
        let slot = self.slots.get_mut(rule)?;
        if slot.fetching.is_some() {
            return None;
        }
        let demand = slot.demand;
        let lease_for = rule_config
            .timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1));
        let mut for_unknown_kid = false;
        let written = update_record(shared, &shared_key(config, rule), |record| {
            if record.fetch_in_flight(now) {
                return false;
            }
            let wanted = match demand {
                Demand::None => false,
                Demand::Keys => !record.attempted_within(MISSING_KEYS_RETRY, now),
                Demand::UnknownKid => {
                    !record.attempted_within(config.jwks_refetch_min_interval, now)
                }
            };
            let background = millis(now) >= record.next_due_ms;
            if !(wanted || background) {
                return false;
            }
            for_unknown_kid = wanted && demand == Demand::UnknownKid;
            record.lease = Some(Lease {
                holder: vm_id,
                expires_ms: millis(now.saturating_add(lease_for)),
            });
            record.last_attempt_ms = Some(millis(now));
            true
        })?;
        let (stage, endpoint) = match &rule_config.keys {
            KeySource::Inline(_) => return None,
            KeySource::Remote(endpoint) => (FetchStage::Jwks, endpoint.clone()),
            KeySource::Discovery {
                document,
                jwks_cluster,
            } => match written
                .jwks_uri
                .as_deref()
                .and_then(|uri| Endpoint::from_url(uri, jwks_cluster.as_deref()).ok())
            {
                Some(endpoint) => (FetchStage::Jwks, endpoint),
                None => (FetchStage::Discovery, document.clone()),
            },
        };
        slot.record = without_body(&written);
        slot.fetching = Some(stage);
        slot.demand = Demand::None;
        Some(FetchPlan {
            rule,
            stage,
            endpoint,
            timeout: rule_config.timeout,
            unknown_kid: for_unknown_kid,
        })
    }

    /// Gives up the fetches this VM has out, handing their leases back (see
    /// [`SharedRecord::abandon`]).
    pub fn abandon_fetches(&mut self, config: &Config, shared: &mut dyn SharedData, now: Duration) {
        let vm_id = self.vm_id;
        for (rule, slot) in self.slots.iter_mut().enumerate() {
            if slot.fetching.take().is_none() {
                continue;
            }
            let _ = update_record(shared, &shared_key(config, rule), |record| {
                let mine = record.lease.is_some_and(|lease| lease.holder == vm_id);
                if mine {
                    record.abandon(now);
                }
                mine
            });
        }
    }

    /// Hands over the answer of a fetch this VM started: `Ok(body)` for an
    /// HTTP 200, `Err(why)` otherwise.
    pub fn fetch_answered(
        &mut self,
        config: &Config,
        rule: usize,
        answer: Result<&[u8], String>,
        shared: &mut dyn SharedData,
        now: Duration,
    ) -> FetchResult {
        let Some(rule_config) = config.rules.get(rule) else {
            return FetchResult::Failed("no such rule".into());
        };
        let key = shared_key(config, rule);
        let refresh = config.jwks_refresh_interval;
        let stage = self.slots.get(rule).and_then(|slot| slot.fetching);
        let outcome = match (stage, answer) {
            (None, _) => return FetchResult::Failed("no fetch was running".into()),
            (Some(_), Err(why)) => Err(why),
            (Some(FetchStage::Discovery), Ok(body)) => {
                let jwks_cluster = match &rule_config.keys {
                    KeySource::Discovery { jwks_cluster, .. } => jwks_cluster.as_deref(),
                    _ => None,
                };
                match jwks_endpoint(body, &rule_config.issuer, jwks_cluster) {
                    Ok(endpoint) => {
                        let written = update_record(shared, &key, |record| {
                            record.jwks_uri = Some(endpoint.uri.clone());
                            true
                        });
                        if let Some(slot) = self.slots.get_mut(rule) {
                            if let Some(written) = written {
                                slot.record = without_body(&written);
                            }
                            slot.fetching = Some(FetchStage::Jwks);
                        }
                        return FetchResult::Next(FetchPlan {
                            rule,
                            stage: FetchStage::Jwks,
                            endpoint,
                            timeout: rule_config.timeout,
                            unknown_kid: false,
                        });
                    }
                    Err(why) => Err(format!("discovery: {why}")),
                }
            }
            (Some(FetchStage::Jwks), Ok(body)) => match parse_jwks(body) {
                Ok(parsed) if !parsed.keys.is_empty() => Ok((parsed, body)),
                Ok(parsed) => Err(format!("no usable key ({})", parsed.skipped.join("; "))),
                Err(why) => Err(why.to_string()),
            },
        };
        let signature_host = self.signature_host;
        let Some(slot) = self.slots.get_mut(rule) else {
            return FetchResult::Failed("no such rule".into());
        };
        slot.fetching = None;
        match outcome {
            Ok((parsed, body)) => {
                let text = String::from_utf8_lossy(body).into_owned();
                if let Some(written) = update_record(shared, &key, |record| {
                    record.succeed(text.clone(), now, refresh);
                    true
                }) {
                    slot.record = without_body(&written);
                    slot.keys_fetched_at_ms = written.fetched_at_ms;
                } else {
                    slot.keys_fetched_at_ms = Some(millis(now));
                }
                let count = parsed.keys.len();
                let mut keys = parsed.keys;
                keys.use_signature_host(signature_host);
                slot.keys = Some(keys);
                slot.demand = Demand::None;
                FetchResult::Succeeded {
                    keys: count,
                    skipped: parsed.skipped,
                }
            }
            Err(why) => {
                if let Some(written) = update_record(shared, &key, |record| {
                    record.fail(now, refresh);
                    true
                }) {
                    slot.record = without_body(&written);
                } else {
                    slot.record.fail(now, refresh);
                }
                slot.demand = Demand::None;
                FetchResult::Failed(why)
            }
        }
    }
}

#[cfg(test)]
mod tests;
