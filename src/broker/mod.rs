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

mod answer;
pub mod callout;
pub mod event;
mod gateway;
pub mod question;
pub mod verdict;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::Duration;

use crate::authz::subject_access_review::SubjectAccessReviewCache;
use crate::authz::token_review::{token_review_body, TokenReviewCache};
use crate::config::Config;
use crate::config_field::ConfigError;
use crate::keystore::shared::SharedData;
use crate::keystore::signature_choice::choose;
use crate::keystore::KeyStore;
use crate::outcome::{Outcome, Reason};
use crate::pipeline::{decide_noting, Caches, KeyWait, Notes};
use crate::request::RequestView;
use crate::shared_decisions::{DigestKey, Review, ReviewDigest, SharedDecisions, DEFAULT_SLOTS};
use crate::signature_host::{SignatureHost, SignatureVerification};
use crate::verified_token_cache::VerifiedTokenCache;
use answer::Heard;
use callout::{Outgoing, SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS};
use event::{Event, Level, Metric};
use question::{Asking, Pass, Question, Then, Waiter};
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

struct Callout {
    question: Question,
    deadline: Duration,
}

pub struct Broker {
    config: Config,
    shared: Box<dyn SharedData>,
    keys: KeyStore,
    /// The verified-token cache.
    verified_tokens: VerifiedTokenCache,
    /// SubjectAccessReview answers.
    subject_access_reviews: SubjectAccessReviewCache,
    /// TokenReview answers.
    token_reviews: TokenReviewCache,
    /// SubjectAccessReview and TokenReview answers and leases shared with
    /// the other workers (`None` without `authorization` or its cache).
    gateway: Option<SharedDecisions>,
    /// Requests parked per question. A review's question stays until it is
    /// answered (later requests join it); a key question while it has waiters.
    questions: HashMap<Question, Asking>,
    /// Callouts to send.
    unsent: VecDeque<Outgoing>,
    /// Callouts sent, by the host's callout id.
    callouts: HashMap<u32, Callout>,
    resumes: VecDeque<Resume>,
    events: VecDeque<Event>,
    /// The tick period the host was last told.
    tick: Option<Duration>,
    ticked: bool,
    /// Whether the host writes debug lines: when it does not, they are not
    /// even formatted (`set_debug_lines`).
    debug_lines: bool,
}

/// A random identity for this VM's key-fetch leases (std seeds `RandomState`
/// from the host's `random_get`).
fn random_vm_id(now: Duration) -> u64 {
    RandomState::new().hash_one(now.as_nanos())
}

impl Broker {
    /// A broker for a parsed configuration, applying `signatureVerification`:
    /// RS* and ES256/ES384 signatures are checked by `host` when it passes the
    /// known-answer check (see `keystore::signature_choice`), by kfauth's own code
    /// otherwise. `Err` when the configuration must be refused.
    pub fn configure(
        mut config: Config,
        shared: Box<dyn SharedData>,
        host: &'static dyn SignatureHost,
        now: Duration,
    ) -> Result<Broker, ConfigError> {
        let mode = config.signature_verification;
        let choice = choose(mode, host, config.break_signature_check)?;
        config.use_signature_host(choice.host);
        let mut broker = Broker::new(config, shared, now);
        broker.keys.use_signature_host(choice.host);
        let level = match choice.host {
            None if mode == SignatureVerification::Auto => Level::Warn,
            _ => Level::Info,
        };
        let used = u64::from(choice.host.is_some());
        broker
            .events
            .push_front(Event::Record(Metric::SignaturesHost, used));
        broker.events.push_front(Event::Log(level, choice.note));
        Ok(broker)
    }

    /// A broker for an accepted configuration, every signature checked by
    /// kfauth's own code; creates the shared key records.
    pub fn new(config: Config, mut shared: Box<dyn SharedData>, now: Duration) -> Broker {
        let vm_id = random_vm_id(now);
        let keys = KeyStore::new(&config, vm_id);
        keys.ensure_records(&config, shared.as_mut());
        // Plugins that share a `vm_id` but ask another API server share nothing.
        let gateway = config
            .authorization
            .as_ref()
            .filter(|authorization| authorization.max_entries > 0)
            .map(|authorization| {
                let apiserver = &authorization.apiserver;
                let scope = format!("{}|{}", apiserver.cluster, apiserver.authority);
                let table = SharedDecisions::new(vm_id, DEFAULT_SLOTS, &scope);
                table.prepare(shared.as_mut(), DigestKey::fresh());
                table
            });
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
            verified_tokens: VerifiedTokenCache::new(config.jwt_cache_size),
            subject_access_reviews: SubjectAccessReviewCache::new(max_entries),
            token_reviews: TokenReviewCache::new(max_entries),
            config,
            shared,
            keys,
            gateway,
            questions: HashMap::new(),
            unsent: VecDeque::new(),
            callouts: HashMap::new(),
            resumes: VecDeque::new(),
            events,
            tick: None,
            ticked: false,
            debug_lines: true,
        }
    }

    /// A request's headers arrived: go on, answer, or hold it (the broker then
    /// resumes or answers it later through `poll_resume`).
    pub fn on_request(&mut self, context: u32, view: RequestView, now: Duration) -> Verdict {
        self.decide(context, view, now, Pass::First)
    }

    /// This configuration is retired: Envoy deleted its root context (after
    /// a configuration update), and its callouts will never be answered. It
    /// hands back the key-fetch and review leases it holds, so that the
    /// other workers' VMs fetch or ask at their next tick rather than wait
    /// the leases out while their requests time out (`tests/config_update.rs`).
    pub fn retire(&mut self, now: Duration) {
        self.keys
            .abandon_fetches(&self.config, self.shared.as_mut(), now);
        let asked_here: Vec<ReviewDigest> = self
            .questions
            .values()
            .filter(|asking| asking.elsewhere.is_none())
            .filter_map(|asking| asking.digest)
            .collect();
        for digest in asked_here {
            self.share(Some(digest), None, None, now);
        }
    }

    /// A request ended (or was answered): it no longer waits for anything.
    /// A question nobody waits for any more is dropped, unless this worker
    /// asks it (its answer is still cached and shared).
    pub fn on_stream_end(&mut self, context: u32) {
        for asking in self.questions.values_mut() {
            asking.waiters.retain(|waiter| waiter.context != context);
        }
        self.questions.retain(|question, asking| {
            let asked_here = !matches!(question, Question::Jwks(_)) && asking.elsewhere.is_none();
            asked_here || !asking.waiters.is_empty()
        });
    }

    /// The host's periodic tick: read the shared key records, start the key
    /// fetches that are due, wake requests whose keys came (or whose wait
    /// timed out), give up on callouts long past their timeout, and look up
    /// the reviews other workers ask.
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
            let Some(asking) = self.questions.remove(&Question::Jwks(rule)) else {
                continue;
            };
            let (ready, kept): (Vec<Waiter>, Vec<Waiter>) =
                asking.waiters.into_iter().partition(|waiter| {
                    matches!(waiter.then, Then::DecideWithKeys { generation: g } if g != generation)
                        || now.saturating_sub(waiter.since) >= timeout
                });
            if !kept.is_empty() {
                let asking = Asking {
                    waiters: kept,
                    ..Asking::default()
                };
                self.questions.insert(Question::Jwks(rule), asking);
            }
            self.decide_again(ready, Pass::AfterKeys, now);
        }
        self.poll_gateway(now);
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
                    self.debug(|| callout::fetch_line(plan));
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

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The tick period to set, when it differs from the last one returned:
    /// 1 ms while a review waits to be sent, 10 ms while requests wait for
    /// keys or for another worker's review (and until the first tick, to
    /// fetch before the first request), 1 s otherwise. Ask after draining
    /// the callouts.
    pub fn poll_tick_period(&mut self) -> Option<Duration> {
        // Requests wait for keys, or for a review another worker asks.
        let keys_awaited = self.questions.iter().any(|(question, asking)| {
            (matches!(question, Question::Jwks(_)) && !asking.waiters.is_empty())
                || asking.elsewhere.is_some()
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

    /// A debug line, made only if the host will write it: browser requests
    /// carry a session cookie, and a line formatted and handed to a host that
    /// drops it cost each of them a host call (BENCHMARKS.md).
    fn debug(&mut self, line: impl FnOnce() -> String) {
        if self.debug_lines {
            self.log(Level::Debug, line());
        }
    }

    /// Whether the host writes debug lines, as it says on each tick (its
    /// level can change at run time); until told, the broker assumes so.
    pub fn set_debug_lines(&mut self, wanted: bool) {
        self.debug_lines = wanted;
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
        let mut notes = Notes::default();
        let mut outcome = self.run_pipeline(&view, now, pass, &mut notes);
        if self.adopt(&outcome, now) {
            // Another worker's answer: the decision is made again with it,
            // and only that decision's cache hits count.
            notes = Notes::default();
            outcome = self.run_pipeline(&view, now, pass, &mut notes);
        }
        if notes.cached.subject_access_review {
            self.count(Metric::AuthzCacheHit);
        }
        // A request resumed by its TokenReview's answer reads that answer
        // from the cache: not a hit.
        if notes.cached.token_review && pass != Pass::AfterTokenReview {
            self.count(Metric::TokenReviewCacheHit);
        }
        let access = notes.access;
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
                self.proceed(&view, edits, access)
            }
            Outcome::Deny(denial) => {
                self.count_refusal(denial.reason);
                self.refuse(&view, &denial, access)
            }
            Outcome::FetchKeys(rule) => {
                self.keys.want_fetch(rule);
                let generation = self.keys.generation(rule);
                self.questions
                    .entry(Question::Jwks(rule))
                    .or_default()
                    .waiters
                    .push(waiter(view, Then::DecideWithKeys { generation }));
                Verdict::Hold
            }
            Outcome::TokenReview { rule, token } => {
                let question = Question::TokenReview {
                    rule,
                    digest: self.verified_tokens.digest(&token),
                };
                let audiences = self.audiences(rule).to_vec();
                let review = Review::Token {
                    token: &token,
                    audiences: &audiences,
                };
                let body = || token_review_body(&token, &audiences);
                let first = self.park(
                    question,
                    review,
                    TOKEN_REVIEWS,
                    body,
                    waiter(view, Then::DecideAgain),
                    now,
                );
                self.count(if first {
                    Metric::TokenReviewCacheMiss
                } else {
                    Metric::TokenReviewCoalesced
                });
                Verdict::Hold
            }
            Outcome::SubjectAccessReview { edits, key, body } => {
                let question = Question::SubjectAccessReview(key.clone());
                let first = self.park(
                    question,
                    Review::Access { spec: &key },
                    SUBJECT_ACCESS_REVIEWS,
                    || body,
                    waiter(view, Then::Allow(edits, Box::new(access))),
                    now,
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

    fn run_pipeline(
        &self,
        view: &RequestView,
        now: Duration,
        pass: Pass,
        notes: &mut Notes,
    ) -> Outcome {
        let caches = Caches {
            keys: &self.keys,
            verified_tokens: &self.verified_tokens,
            subject_access_reviews: &self.subject_access_reviews,
            token_reviews: &self.token_reviews,
        };
        let key_wait = match pass {
            Pass::AfterKeys => KeyWait::Spent,
            Pass::First | Pass::AfterTokenReview => KeyWait::May,
        };
        decide_noting(&self.config, &caches, view, now, key_wait, notes)
    }

    /// Parks a request on a review, asking it unless it is already pending.
    /// True when the request is its only waiter and this worker asks it (a
    /// cache miss: one per review sent), false when it joins one in flight.
    fn park(
        &mut self,
        question: Question,
        review: Review,
        path: &str,
        body: impl FnOnce() -> Vec<u8>,
        waiter: Waiter,
        now: Duration,
    ) -> bool {
        let mut asking = match self.questions.remove(&question) {
            Some(asking) => asking,
            // Only a configuration with `authorization` asks for reviews.
            None => match &self.config.authorization {
                Some(authorization) => {
                    let outgoing =
                        callout::review(&authorization.apiserver, question.clone(), path, body());
                    self.ask(review, outgoing, now)
                }
                None => Asking::default(),
            },
        };
        // Joining a review another worker asks is joining a review in flight.
        let first = asking.waiters.is_empty() && asking.elsewhere.is_none();
        asking.waiters.push(waiter);
        self.questions.insert(question, asking);
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
}

#[cfg(test)]
mod tests;
