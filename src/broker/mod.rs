//! The broker owns everything that waits: every pending callout and every
//! parked request of one VM (one Envoy worker), in the style of quinn-proto's
//! `Connection`. The host feeds it events (a request, a callout's answer or
//! refusal, a tick, a stream's end) and drains what it asks for in return:
//! callouts to send (`poll_callout`), held requests to resume or answer
//! (`poll_resume`), metric changes and log lines (`poll_event`), and the tick
//! period (`poll_tick_period`). Sans-IO: time is an argument, shared data a
//! trait object, so every waiting rule is unit-tested without Envoy.
//!
//! Requests that need the same answer wait on one [`Question`] and it is asked
//! once: the keys of a rule, a SubjectAccessReview, a TokenReview.

pub mod callout;
pub mod event;
pub mod question;
pub mod verdict;

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::Duration;

use crate::authz::cache::DecisionCache;
use crate::authz::config::FailureMode;
use crate::authz::review::{parse_answer, ReviewAnswer};
use crate::authz::token_review::{
    parse_token_review, token_review_body, TokenReviewCache, TokenStatus,
};
use crate::authz::{review_answered, token_review_answered};
use crate::config::Config;
use crate::keystore::shared::SharedData;
use crate::keystore::{FetchResult, KeyStore};
use crate::outcome::{Denial, Outcome, Reason};
use crate::pipeline::{decide, Caches};
use crate::request::RequestView;
use crate::token_cache::TokenCache;
use callout::{Outgoing, SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS};
use event::{Event, Level, Metric};
use question::{Pass, Question, Then, Waiter};
pub use verdict::Verdict;

/// The tick while requests wait for keys: it starts the fetch, or notices
/// that another worker's fetch has finished.
pub const WAITING_TICK: Duration = Duration::from_millis(10);
/// The tick while a review waits to be sent (the root sends callouts).
pub const REVIEW_TICK: Duration = Duration::from_millis(1);
/// The tick when nothing waits: reads shared key records, starts refreshes.
pub const IDLE_TICK: Duration = Duration::from_secs(1);
/// How long past its own timeout a callout may stay unanswered before the
/// broker gives up on it (the host normally answers at the timeout).
pub const CALLOUT_GRACE: Duration = Duration::from_secs(1);

/// A held request, resumed or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub context: u32,
    /// `Continue` or `Reply`, never `Hold`.
    pub verdict: Verdict,
}

/// How a question was answered.
enum Heard<'a> {
    /// An HTTP response (`None`: no response at all, a timeout or reset).
    Response(Option<&'a str>, &'a [u8]),
    /// The host refused to send the callout to `cluster` (with its status).
    NotSent { cluster: String, status: String },
}

struct Callout {
    question: Question,
    deadline: Duration,
}

pub struct Broker {
    config: Config,
    shared: Box<dyn SharedData>,
    keys: KeyStore,
    /// The verified-token cache.
    verified: TokenCache,
    /// SubjectAccessReview answers.
    decisions: DecisionCache,
    /// TokenReview answers.
    token_reviews: TokenReviewCache,
    /// Requests parked per question. A review's question stays until it is
    /// answered (later requests join it); a key question while it has waiters.
    questions: HashMap<Question, Vec<Waiter>>,
    /// Callouts to send.
    unsent: VecDeque<Outgoing>,
    /// Callouts sent, by the host's callout id.
    callouts: HashMap<u32, Callout>,
    resumes: VecDeque<Resume>,
    events: VecDeque<Event>,
    /// The tick period the host was last told.
    tick: Option<Duration>,
    ticked: bool,
}

/// A random identity for this VM's key-fetch leases (std seeds `RandomState`
/// from the host's `random_get`).
fn random_vm_id(now: Duration) -> u64 {
    RandomState::new().hash_one(now.as_nanos())
}

impl Broker {
    /// A broker for an accepted configuration; creates the shared key records.
    pub fn new(config: Config, mut shared: Box<dyn SharedData>, now: Duration) -> Broker {
        let keys = KeyStore::new(&config, random_vm_id(now));
        keys.ensure_records(&config, shared.as_mut());
        let max_entries = config.authorization.as_ref().map_or(0, |a| a.max_entries);
        let mut events = VecDeque::new();
        for warning in &config.warnings {
            events.push_back(Event::Log(Level::Warn, warning.clone()));
        }
        events.push_back(Event::Log(
            Level::Info,
            format!(
                "configured: {} rule(s), requireJwt {}",
                config.rules.len(),
                config.require_jwt
            ),
        ));
        if let Some(authorization) = &config.authorization {
            let missing = authorization.apiserver.missing_credential().is_some();
            events.push_back(Event::Record(Metric::CredentialMissing, u64::from(missing)));
        }
        Broker {
            verified: TokenCache::new(config.jwt_cache_size),
            decisions: DecisionCache::new(max_entries),
            token_reviews: TokenReviewCache::new(max_entries),
            config,
            shared,
            keys,
            questions: HashMap::new(),
            unsent: VecDeque::new(),
            callouts: HashMap::new(),
            resumes: VecDeque::new(),
            events,
            tick: None,
            ticked: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A request's headers arrived: go on, answer, or hold it (the broker then
    /// resumes or answers it later through `poll_resume`).
    pub fn on_request(&mut self, context: u32, view: RequestView, now: Duration) -> Verdict {
        self.decide(context, view, now, Pass::First)
    }

    /// A request ended (or was answered): it no longer waits for anything.
    pub fn on_stream_end(&mut self, context: u32) {
        for waiters in self.questions.values_mut() {
            waiters.retain(|waiter| waiter.context != context);
        }
        self.questions.retain(|question, waiters| {
            !(matches!(question, Question::Jwks(_)) && waiters.is_empty())
        });
    }

    /// The host's periodic tick: read the shared key records, start the key
    /// fetches that are due, wake requests whose keys came (or whose wait
    /// timed out), and give up on callouts long past their timeout.
    pub fn on_tick(&mut self, now: Duration) {
        self.ticked = true;
        let overdue: Vec<u32> = self
            .callouts
            .iter()
            .filter(|(_, callout)| callout.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            if let Some(callout) = self.callouts.remove(&id) {
                self.heard(callout.question, Heard::Response(None, &[]), now);
            }
        }
        for rule in 0..self.config.rules.len() {
            if !self
                .config
                .rules
                .get(rule)
                .is_some_and(|r| r.keys.is_remote())
            {
                continue;
            }
            let synced = self
                .keys
                .sync(&self.config, rule, self.shared.as_ref(), now);
            if synced.dropped_stale {
                self.log(
                    Level::Warn,
                    format!("dropped the keys of rule {rule}: older than jwksMaxStale"),
                );
            }
            if let Some(plan) = self
                .keys
                .begin_fetch(&self.config, rule, self.shared.as_mut(), now)
            {
                self.unsent.push_back(callout::fetch(plan));
            }
            if let Some(age) = self.keys.age(rule, now) {
                self.events
                    .push_back(Event::Record(Metric::KeyAge(rule), age.as_secs()));
            }
        }
        let rules: Vec<usize> = self
            .questions
            .keys()
            .filter_map(|question| match question {
                Question::Jwks(rule) => Some(*rule),
                _ => None,
            })
            .collect();
        for rule in rules {
            let timeout = self
                .config
                .rules
                .get(rule)
                .map_or(Duration::ZERO, |r| r.timeout);
            let generation = self.keys.generation(rule);
            let Some(waiters) = self.questions.remove(&Question::Jwks(rule)) else {
                continue;
            };
            let (ready, kept): (Vec<Waiter>, Vec<Waiter>) =
                waiters.into_iter().partition(|waiter| {
                    matches!(waiter.then, Then::DecideWithKeys { generation: g } if g != generation)
                        || now.saturating_sub(waiter.since) >= timeout
                });
            if !kept.is_empty() {
                self.questions.insert(Question::Jwks(rule), kept);
            }
            self.decide_again(ready, Pass::AfterKeys, now);
        }
    }

    /// The next callout to send (only from the root context: its answer
    /// comes back to the context that sent it).
    pub fn poll_callout(&mut self) -> Option<Outgoing> {
        self.unsent.pop_front()
    }

    /// The host sent `outgoing` as callout `sent`, or refused it (`Err`: the
    /// host's status, e.g. an undefined cluster).
    pub fn on_dispatched(&mut self, outgoing: Outgoing, sent: Result<u32, String>, now: Duration) {
        match sent {
            Ok(id) => {
                if let Some(plan) = &outgoing.fetch {
                    if plan.unknown_kid {
                        self.count(Metric::RefetchUnknownKid);
                    }
                    self.log(Level::Debug, callout::fetch_line(plan));
                }
                let deadline = now
                    .saturating_add(outgoing.timeout)
                    .saturating_add(CALLOUT_GRACE);
                self.callouts.insert(
                    id,
                    Callout {
                        question: outgoing.question,
                        deadline,
                    },
                );
            }
            Err(status) => {
                let cluster = outgoing.cluster;
                self.heard(outgoing.question, Heard::NotSent { cluster, status }, now);
            }
        }
    }

    /// Callout `id` was answered (`status` `None`: no response at all). An
    /// answer nobody waits for (unknown, or given up on) is dropped.
    pub fn on_answer(&mut self, id: u32, status: Option<&str>, body: &[u8], now: Duration) {
        if let Some(callout) = self.callouts.remove(&id) {
            self.heard(callout.question, Heard::Response(status, body), now);
        }
    }

    pub fn poll_resume(&mut self) -> Option<Resume> {
        self.resumes.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The tick period to set, when it differs from the last one returned:
    /// 1 ms while a review waits to be sent, 10 ms while requests wait for
    /// keys (and until the first tick, to fetch before the first request), 1 s
    /// otherwise. Ask after draining the callouts.
    pub fn poll_tick_period(&mut self) -> Option<Duration> {
        let keys_awaited = self.questions.iter().any(|(question, waiters)| {
            matches!(question, Question::Jwks(_)) && !waiters.is_empty()
        });
        let wanted = if !self.unsent.is_empty() {
            REVIEW_TICK
        } else if keys_awaited || !self.ticked {
            WAITING_TICK
        } else {
            IDLE_TICK
        };
        (self.tick != Some(wanted)).then(|| {
            self.tick = Some(wanted);
            wanted
        })
    }

    /// The audiences a rule's TokenReviews ask for.
    fn audiences(&self, rule: usize) -> &[String] {
        self.config
            .rules
            .get(rule)
            .and_then(|rule| rule.token_review.as_deref())
            .unwrap_or_default()
    }

    fn count(&mut self, metric: Metric) {
        self.events.push_back(Event::Count(metric, 1));
    }

    fn log(&mut self, level: Level, line: String) {
        self.events.push_back(Event::Log(level, line));
    }

    /// Every refusal counts once in total, once by reason, and by what it says
    /// of authorization.
    fn count_refusal(&mut self, reason: Reason) {
        self.count(Metric::Denied);
        self.count(Metric::DeniedFor(reason));
        match reason {
            Reason::HeaderTooLarge => self.count(Metric::SessionHeaderTooLarge),
            Reason::Forbidden => self.count(Metric::AuthzDenied),
            Reason::AuthorizerUnavailable => self.count(Metric::AuthzError),
            _ => {}
        }
    }

    /// Decides for a request and carries out what waiting needs.
    fn decide(&mut self, context: u32, view: RequestView, now: Duration, pass: Pass) -> Verdict {
        let caches = Caches {
            keys: &self.keys,
            verified: &self.verified,
            decisions: &self.decisions,
            tokens: &self.token_reviews,
        };
        let outcome = decide(&self.config, &caches, &view, now, pass != Pass::AfterKeys);
        let hits = self.decisions.take_hits();
        if hits > 0 {
            self.events
                .push_back(Event::Count(Metric::AuthzCacheHit, hits));
        }
        let hits = self.token_reviews.take_hits();
        if hits > 0 && pass != Pass::AfterTokenReview {
            self.events
                .push_back(Event::Count(Metric::TokenReviewCacheHit, hits));
        }
        let waiter = |view, then| Waiter {
            context,
            view,
            since: now,
            then,
        };
        match outcome {
            Outcome::Allow {
                edits,
                identity,
                authorized,
            } => {
                self.count(if identity.is_some() {
                    Metric::Allowed
                } else {
                    Metric::Unauthenticated
                });
                if authorized {
                    self.count(Metric::AuthzAllowed);
                }
                self.proceed(edits)
            }
            Outcome::Deny(denial) => {
                self.count_refusal(denial.reason);
                self.refuse(&view, &denial)
            }
            Outcome::FetchKeys(rule) => {
                self.keys.want_fetch(rule);
                let generation = self.keys.generation(rule);
                self.questions
                    .entry(Question::Jwks(rule))
                    .or_default()
                    .push(waiter(view, Then::DecideWithKeys { generation }));
                Verdict::Hold
            }
            Outcome::TokenReview { rule, token } => {
                let question = Question::TokenReview {
                    rule,
                    digest: self.verified.digest(&token),
                };
                let audiences = self.audiences(rule).to_vec();
                let body = || token_review_body(&token, &audiences);
                let first = self.park(
                    question,
                    TOKEN_REVIEWS,
                    body,
                    waiter(view, Then::DecideAgain),
                );
                self.count(if first {
                    Metric::TokenReviewCacheMiss
                } else {
                    Metric::TokenReviewCoalesced
                });
                Verdict::Hold
            }
            Outcome::Review { edits, key, body } => {
                let question = Question::SubjectAccessReview(key);
                let first = self.park(
                    question,
                    SUBJECT_ACCESS_REVIEWS,
                    || body,
                    waiter(view, Then::Allow(edits)),
                );
                self.count(if first {
                    Metric::AuthzCacheMiss
                } else {
                    Metric::AuthzCoalesced
                });
                Verdict::Hold
            }
        }
    }

    /// Parks a request on a review, asking it unless it is already pending.
    /// True when the request is its only waiter (a cache miss, not coalesced).
    fn park(
        &mut self,
        question: Question,
        path: &str,
        body: impl FnOnce() -> Vec<u8>,
        waiter: Waiter,
    ) -> bool {
        let waiters = match self.questions.entry(question) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                // Only a configuration with `authorization` asks for reviews.
                if let Some(authorization) = &self.config.authorization {
                    let question = entry.key().clone();
                    self.unsent.push_back(callout::review(
                        &authorization.apiserver,
                        question,
                        path,
                        body(),
                    ));
                }
                entry.insert(Vec::new())
            }
        };
        let first = waiters.is_empty();
        waiters.push(waiter);
        first
    }

    fn decide_again(&mut self, waiters: Vec<Waiter>, pass: Pass, now: Duration) {
        for waiter in waiters {
            let context = waiter.context;
            let verdict = self.decide(context, waiter.view, now, pass);
            if verdict != Verdict::Hold {
                self.resumes.push_back(Resume { context, verdict });
            }
        }
    }

    /// A question was answered (or could not be asked).
    fn heard(&mut self, question: Question, heard: Heard, now: Duration) {
        match question {
            Question::Jwks(rule) => self.keys_heard(rule, heard, now),
            Question::SubjectAccessReview(key) => {
                let answer = match heard {
                    Heard::Response(status, body) => parse_answer(status, body),
                    Heard::NotSent { cluster, status } => {
                        self.warn_not_sent(&cluster, &status);
                        ReviewAnswer::Unusable("dispatch refused".into())
                    }
                };
                self.review_heard(key, answer, now);
            }
            Question::TokenReview { rule, digest } => {
                let audiences = self.audiences(rule);
                let parsed = match heard {
                    Heard::Response(status, body) => parse_token_review(status, body, audiences),
                    Heard::NotSent { cluster, status } => {
                        self.warn_not_sent(&cluster, &status);
                        Err("dispatch refused".to_string())
                    }
                };
                self.token_review_heard(Question::TokenReview { rule, digest }, parsed, now);
            }
        }
    }

    fn warn_not_sent(&mut self, cluster: &str, status: &str) {
        self.log(
            Level::Warn,
            format!("cannot reach the API server through cluster `{cluster}` ({status}): is it defined?"),
        );
    }

    fn keys_heard(&mut self, rule: usize, heard: Heard, now: Duration) {
        let answer = match heard {
            Heard::Response(Some("200"), body) => Ok(body),
            Heard::Response(Some(code), _) => Err(format!("HTTP {code}")),
            Heard::Response(None, _) => Err("no response (timeout or connection failure)".into()),
            Heard::NotSent { cluster, status } => Err(format!(
                "cannot reach cluster `{cluster}` ({status}): is it defined?"
            )),
        };
        let result =
            self.keys
                .fetch_answered(&self.config, rule, answer, self.shared.as_mut(), now);
        let source = self
            .config
            .rules
            .get(rule)
            .map(|rule| format!("{} ({})", rule.issuer, rule.keys.location()))
            .unwrap_or_default();
        match result {
            FetchResult::Next(plan) => {
                self.unsent.push_back(callout::fetch(plan));
                return;
            }
            FetchResult::Succeeded { keys, skipped } => {
                self.count(Metric::FetchSucceeded);
                self.log(
                    Level::Info,
                    format!("fetched keys of {source}: {keys} usable"),
                );
                for note in skipped {
                    self.log(
                        Level::Warn,
                        format!("keys of {source}: skipped a key: {note}"),
                    );
                }
            }
            FetchResult::Failed(why) => {
                self.count(Metric::FetchFailed);
                self.log(
                    Level::Warn,
                    format!(
                        "fetching keys of {source} failed: {why}; keeping the last good keys, if any"
                    ),
                );
            }
        }
        let waiters = self
            .questions
            .remove(&Question::Jwks(rule))
            .unwrap_or_default();
        self.decide_again(waiters, Pass::AfterKeys, now);
    }

    /// Caches a SubjectAccessReview's verdict and lets its waiters go on or
    /// answers them.
    fn review_heard(&mut self, key: String, answer: ReviewAnswer, now: Duration) {
        let waiters = self
            .questions
            .remove(&Question::SubjectAccessReview(key.clone()))
            .unwrap_or_default();
        if let ReviewAnswer::Unusable(why) = &answer {
            self.log(Level::Warn, format!("SubjectAccessReview failed: {why}"));
        }
        let Some(authorization) = self.config.authorization.as_ref() else {
            return;
        };
        let verdict = review_answered(authorization, &mut self.decisions, &key, &answer, now);
        for waiter in waiters {
            let verdict = match (&verdict, waiter.then) {
                (None, Then::Allow(edits)) => {
                    self.count(Metric::AuthzAllowed);
                    self.count(Metric::Allowed);
                    self.proceed(edits)
                }
                (Some(denial), _) => {
                    self.count_refusal(denial.reason);
                    self.refuse(&waiter.view, denial)
                }
                // Only SubjectAccessReview waiters wait here.
                (None, _) => continue,
            };
            self.resumes.push_back(Resume {
                context: waiter.context,
                verdict,
            });
        }
    }

    /// Applies `failureMode` to a TokenReview's answer, caches what is known
    /// of the token, and decides again for its waiters.
    fn token_review_heard(
        &mut self,
        question: Question,
        parsed: Result<TokenStatus, String>,
        now: Duration,
    ) {
        let Question::TokenReview { digest, .. } = question else {
            return;
        };
        let waiters = self.questions.remove(&question).unwrap_or_default();
        if let Err(why) = &parsed {
            self.log(Level::Warn, format!("TokenReview failed: {why}"));
        }
        let failure_mode = self
            .config
            .authorization
            .as_ref()
            .map_or(FailureMode::Deny, |authorization| {
                authorization.failure_mode
            });
        let status =
            token_review_answered(failure_mode, &mut self.token_reviews, digest, parsed, now);
        self.count(match status {
            Some(TokenStatus::Authenticated(_)) => Metric::TokenReviewAllowed,
            Some(TokenStatus::Rejected(_)) => Metric::TokenReviewDenied,
            Some(TokenStatus::Unreviewed) | None => Metric::TokenReviewError,
        });
        if status.is_some() {
            self.decide_again(waiters, Pass::AfterTokenReview, now);
            return;
        }
        let denial = Denial::new(Reason::AuthorizerUnavailable, true);
        for waiter in waiters {
            self.count_refusal(denial.reason);
            let verdict = self.refuse(&waiter.view, &denial);
            self.resumes.push_back(Resume {
                context: waiter.context,
                verdict,
            });
        }
    }
}

#[cfg(test)]
mod tests;
