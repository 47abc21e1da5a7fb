//! The root context of one VM: accepts the configuration; on each tick reads
//! the shared key records, starts the fetches that are due (one VM at a time,
//! by lease) and wakes the requests that waited for keys.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

use super::abi;
use super::http::{
    apply_edits, current_view, decide_and_act, deny, handle_request, KfauthHttp, WAITING_TICK,
};
use super::log;
use super::metrics::Metrics;
use super::shared_data::HostSharedData;
use super::state::{host_now, FilterState, SharedState};
use crate::authz::cache::DecisionCache;
use crate::authz::config::{ApiServer, FailureMode};
use crate::authz::review::{parse_answer, ReviewAnswer};
use crate::authz::review_answered;
use crate::authz::token_review::{
    parse_token_review, token_review_body, TokenReviewCache, TokenStatus, TOKEN_REVIEW_TTL,
    UNREVIEWED_TTL,
};
use crate::config::Config;
use crate::keystore::{FetchPlan, FetchResult, FetchStage, KeyStore};
use crate::outcome::{Denial, Reason};
use crate::token_cache::TokenCache;

/// Tick period when no request waits: reads shared records, starts refreshes.
const IDLE_TICK: Duration = Duration::from_secs(1);

const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

pub struct KfauthRoot {
    context_id: u32,
    state: SharedState,
}

/// A random identity for this VM's leases.
fn random_vm_id(context_id: u32) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(context_id);
    hasher.write_u128(host_now().as_nanos());
    hasher.finish()
}

impl KfauthRoot {
    pub fn new(context_id: u32) -> Self {
        KfauthRoot {
            context_id,
            state: Rc::new(RefCell::new(None)),
        }
    }

    /// Sends a planned fetch; a refused dispatch counts as a failed fetch.
    /// Returns the rule whose waiters should be woken when it failed at once.
    fn dispatch(&self, filter: &mut FilterState, plan: FetchPlan, now: Duration) -> Option<usize> {
        let headers = vec![
            (":method", "GET"),
            (":path", plan.endpoint.path.as_str()),
            (":authority", plan.endpoint.authority.as_str()),
            (":scheme", plan.endpoint.scheme.as_str()),
            ("accept", "application/json"),
        ];
        let what = match plan.stage {
            FetchStage::Discovery => "OpenID configuration",
            FetchStage::Jwks => "JWKS",
        };
        match abi::dispatch_http_call(&plan.endpoint.cluster, headers, None, plan.timeout) {
            Ok(token) => {
                filter.callouts.insert(token, plan.rule);
                if plan.unknown_kid {
                    filter.metrics.refetch_for_unknown_kid();
                }
                log::debug(&format!("fetching {what} {}", plan.endpoint.uri));
                None
            }
            Err(status) => {
                let why = format!(
                    "cannot reach cluster `{}` ({status:?}): is it defined?",
                    plan.endpoint.cluster
                );
                let result = filter.keys.fetch_answered(
                    &filter.config,
                    plan.rule,
                    Err(why),
                    &mut HostSharedData,
                    now,
                );
                report(filter, plan.rule, &result);
                Some(plan.rule)
            }
        }
    }

    /// Decides again for the given held requests.
    fn wake(&self, context_ids: Vec<u32>) {
        for context_id in context_ids {
            if abi::set_effective_context(context_id).is_err() {
                continue;
            }
            if handle_request(&self.state, context_id, false) == Action::Continue {
                let _ = abi::resume_http_request();
            }
        }
        let _ = abi::set_effective_context(self.context_id);
    }

    /// Sends every review that waits to be sent.
    fn send_reviews(&self) {
        let mut failed = Vec::new();
        {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let Some(authorization) = filter.config.authorization.as_ref() else {
                return;
            };
            let apiserver = &authorization.apiserver;
            let bearer = apiserver.bearer();
            for (key, pending) in filter.reviews.iter_mut().filter(|(_, p)| !p.dispatched) {
                match post_to_apiserver(
                    apiserver,
                    bearer.as_deref(),
                    SUBJECT_ACCESS_REVIEWS,
                    &pending.body,
                ) {
                    Some(token) => {
                        pending.dispatched = true;
                        filter.review_callouts.insert(token, key.clone());
                    }
                    None => failed.push(key.clone()),
                }
            }
        }
        for key in failed {
            self.resolve_review(&key, ReviewAnswer::Unusable("dispatch refused".into()));
        }
    }

    /// Sends every TokenReview that waits to be sent.
    fn send_token_reviews(&self) {
        let mut failed = Vec::new();
        {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let Some(authorization) = filter.config.authorization.as_ref() else {
                return;
            };
            let apiserver = &authorization.apiserver;
            let bearer = apiserver.bearer();
            let config = &filter.config;
            for (token, pending) in filter
                .token_reviews
                .iter_mut()
                .filter(|(_, pending)| !pending.dispatched)
            {
                let audiences = config
                    .rules
                    .get(pending.rule)
                    .and_then(|rule| rule.token_review.clone())
                    .unwrap_or_default();
                let body = token_review_body(token, &audiences);
                match post_to_apiserver(apiserver, bearer.as_deref(), TOKEN_REVIEWS, &body) {
                    Some(callout) => {
                        pending.dispatched = true;
                        filter.token_review_callouts.insert(callout, token.clone());
                    }
                    None => failed.push(token.clone()),
                }
            }
        }
        for token in failed {
            self.resolve_token_review(&token, None);
        }
    }

    /// Caches a TokenReview's answer (`None`: no answer at all) and decides
    /// again for the requests that waited for it.
    fn resolve_token_review(&self, token: &str, answer: Option<(Option<&str>, &[u8])>) {
        let now = host_now();
        let (waiters, unavailable) = {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let Some(pending) = filter.token_reviews.remove(token) else {
                return;
            };
            let audiences = filter
                .config
                .rules
                .get(pending.rule)
                .and_then(|rule| rule.token_review.clone())
                .unwrap_or_default();
            let parsed = match answer {
                Some((status, body)) => parse_token_review(status, body, &audiences),
                None => Err("dispatch refused".to_string()),
            };
            let failure_mode = filter
                .config
                .authorization
                .as_ref()
                .map_or(FailureMode::Deny, |authorization| {
                    authorization.failure_mode
                });
            let (status, ttl) = match parsed {
                Ok(status) => (Some(status), TOKEN_REVIEW_TTL),
                Err(why) => {
                    log::warn(&format!("TokenReview failed: {why}"));
                    match failure_mode {
                        FailureMode::Allow => (Some(TokenStatus::Unreviewed), UNREVIEWED_TTL),
                        FailureMode::Deny => (None, Duration::ZERO),
                    }
                }
            };
            filter.metrics.token_review_answered(status.as_ref());
            let unavailable = status.is_none();
            if let Some(status) = status {
                filter.tokens.insert(token.to_string(), status, ttl, now);
            }
            (pending.waiters, unavailable)
        };
        for context_id in waiters {
            if abi::set_effective_context(context_id).is_err() {
                continue;
            }
            if unavailable {
                if let Some(filter) = self.state.borrow().as_ref() {
                    filter.metrics.denied(Reason::AuthorizerUnavailable);
                    filter.metrics.authz_refused(Reason::AuthorizerUnavailable);
                }
                deny(
                    &current_view(),
                    &Denial::new(Reason::AuthorizerUnavailable, true),
                );
            } else if decide_and_act(&self.state, context_id, true, false) == Action::Continue {
                let _ = abi::resume_http_request();
            }
        }
        let _ = abi::set_effective_context(self.context_id);
    }

    fn review_answered(&self, token_id: u32, answer: ReviewAnswer) {
        let key = self
            .state
            .borrow_mut()
            .as_mut()
            .and_then(|filter| filter.review_callouts.remove(&token_id));
        if let Some(key) = key {
            self.resolve_review(&key, answer);
        }
    }

    /// Caches the answer of review `key` and lets every request waiting for it go
    /// on or be refused.
    fn resolve_review(&self, key: &str, answer: ReviewAnswer) {
        let now = host_now();
        let (verdict, waiters) = {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let Some(pending) = filter.reviews.remove(key) else {
                return;
            };
            let Some(authorization) = filter.config.authorization.as_ref() else {
                return;
            };
            if let ReviewAnswer::Unusable(why) = &answer {
                log::warn(&format!("SubjectAccessReview failed: {why}"));
            }
            let verdict = review_answered(authorization, &mut filter.decisions, key, &answer, now);
            for _ in &pending.waiters {
                match &verdict {
                    None => {
                        filter.metrics.authz_allowed();
                        filter.metrics.allowed();
                    }
                    Some(denial) => {
                        filter.metrics.authz_refused(denial.reason);
                        filter.metrics.denied(denial.reason);
                    }
                }
            }
            (verdict, pending.waiters)
        };
        for waiter in waiters {
            if abi::set_effective_context(waiter.context_id).is_err() {
                continue;
            }
            match &verdict {
                None => {
                    apply_edits(
                        &waiter.edits,
                        self.state.borrow().as_ref().map(|filter| &filter.metrics),
                    );
                    let _ = abi::resume_http_request();
                }
                Some(denial) => deny(&current_view(), denial),
            }
        }
        let _ = abi::set_effective_context(self.context_id);
    }

    fn take_waiters(&self, rule: usize) -> Vec<u32> {
        let mut guard = self.state.borrow_mut();
        let Some(filter) = guard.as_mut() else {
            return Vec::new();
        };
        let (woken, kept) = filter
            .waiters
            .drain(..)
            .partition(|waiter| waiter.rule == rule);
        filter.waiters = kept;
        woken.into_iter().map(|waiter| waiter.context_id).collect()
    }
}

/// POSTs a review to the API server; `None` (after a log line) when the host
/// refuses the callout, e.g. because the cluster is not defined.
fn post_to_apiserver(
    apiserver: &ApiServer,
    bearer: Option<&str>,
    path: &str,
    body: &[u8],
) -> Option<u32> {
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", apiserver.authority.as_str()),
        (":scheme", "https"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ];
    if let Some(bearer) = bearer {
        headers.push(("authorization", bearer));
    }
    match abi::dispatch_http_call(&apiserver.cluster, headers, Some(body), apiserver.timeout) {
        Ok(token) => Some(token),
        Err(status) => {
            log::warn(&format!(
                "cannot reach the API server through cluster `{}` ({status:?}): is it defined?",
                apiserver.cluster
            ));
            None
        }
    }
}

/// One log line (and a metric) for how a fetch ended.
fn report(filter: &FilterState, rule: usize, result: &FetchResult) {
    let source = filter
        .config
        .rules
        .get(rule)
        .map(|rule| format!("{} ({})", rule.issuer, rule.keys.location()))
        .unwrap_or_default();
    match result {
        FetchResult::Next(_) => {}
        FetchResult::Succeeded { keys, skipped } => {
            filter.metrics.fetch_succeeded();
            log::info(&format!("fetched keys of {source}: {keys} usable"));
            for note in skipped {
                log::warn(&format!("keys of {source}: skipped a key: {note}"));
            }
        }
        FetchResult::Failed(why) => {
            filter.metrics.fetch_failed();
            log::warn(&format!(
                "fetching keys of {source} failed: {why}; keeping the last good keys, if any"
            ));
        }
    }
}

impl Context for KfauthRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let now = host_now();
        // A callout that failed after its response began (the peer closed or
        // reset the connection mid-body) arrives with no headers, and Envoy
        // then has no response map at all: asking for `:status` answers
        // BadArgument (on which the SDK's hostcalls panicked, a VM trap seen
        // with a JWKS endpoint that hangs up halfway, tests/faults_jwks.rs;
        // `abi` answers Err). No headers is "no response".
        let (status, body) = if num_headers == 0 {
            (None, Vec::new())
        } else {
            let status = abi::get_map_value(MapType::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten();
            let body =
                abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
            (status, body)
        };
        let is_review = self
            .state
            .borrow()
            .as_ref()
            .is_some_and(|filter| filter.review_callouts.contains_key(&token_id));
        if is_review {
            let answer = parse_answer(status.as_deref(), &body);
            self.review_answered(token_id, answer);
            return;
        }
        let reviewed_token = self
            .state
            .borrow_mut()
            .as_mut()
            .and_then(|filter| filter.token_review_callouts.remove(&token_id));
        if let Some(token) = reviewed_token {
            self.resolve_token_review(&token, Some((status.as_deref(), &body)));
            return;
        }
        let finished = {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let Some(rule) = filter.callouts.remove(&token_id) else {
                return;
            };
            let answer = match status.as_deref() {
                Some("200") => Ok(body.as_slice()),
                Some(code) => Err(format!("HTTP {code}")),
                None => Err("no response (timeout or connection failure)".into()),
            };
            let result =
                filter
                    .keys
                    .fetch_answered(&filter.config, rule, answer, &mut HostSharedData, now);
            report(filter, rule, &result);
            match result {
                FetchResult::Next(plan) => self.dispatch(filter, plan, now),
                _ => Some(rule),
            }
        };
        if let Some(rule) = finished {
            let waiting = self.take_waiters(rule);
            self.wake(waiting);
        }
    }
}

impl RootContext for KfauthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes =
            abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
        let mut config = match Config::parse_with_env(&bytes, &|name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(problem) => {
                log::error(&problem.to_string());
                return false;
            }
        };
        for warning in &config.warnings {
            log::warn(warning);
        }
        let Some(signatures) = super::signature::configure(&mut config) else {
            return false;
        };
        log::info(&format!(
            "configured: {} rule(s), requireJwt {}",
            config.rules.len(),
            config.require_jwt
        ));
        let mut keys = KeyStore::new(&config, random_vm_id(self.context_id));
        keys.use_signature_host(signatures);
        keys.ensure_records(&config, &mut HostSharedData);
        let metrics = Metrics::define(&config);
        let config_max_entries = config
            .authorization
            .as_ref()
            .map_or(0, |authorization| authorization.max_entries);
        let decisions = DecisionCache::new(config_max_entries);
        let verified = TokenCache::new(config.jwt_cache_size);
        *self.state.borrow_mut() = Some(FilterState {
            config,
            keys,
            verified,
            metrics,
            callouts: HashMap::new(),
            waiters: Vec::new(),
            decisions,
            reviews: HashMap::new(),
            review_callouts: HashMap::new(),
            tokens: TokenReviewCache::new(config_max_entries),
            token_reviews: HashMap::new(),
            token_review_callouts: HashMap::new(),
        });
        // The first tick comes at once: fetch before the first request needs keys.
        let _ = abi::set_tick_period(WAITING_TICK);
        true
    }

    fn on_tick(&mut self) {
        self.send_token_reviews();
        self.send_reviews();
        let now = host_now();
        let mut woken = Vec::new();
        let mut failed_rules = Vec::new();
        let waiting = {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let mut plans = Vec::new();
            for rule in 0..filter.config.rules.len() {
                let remote = filter
                    .config
                    .rules
                    .get(rule)
                    .is_some_and(|rule| rule.keys.is_remote());
                if !remote {
                    continue;
                }
                let synced = filter.keys.sync(&filter.config, rule, &HostSharedData, now);
                if synced.dropped_stale {
                    log::warn(&format!(
                        "dropped the keys of rule {rule}: older than jwksMaxStale"
                    ));
                }
                if let Some(plan) =
                    filter
                        .keys
                        .begin_fetch(&filter.config, rule, &mut HostSharedData, now)
                {
                    plans.push(plan);
                }
                if let Some(age) = filter.keys.age(rule, now) {
                    filter.metrics.key_age(rule, age.as_secs());
                }
            }
            for plan in plans {
                failed_rules.extend(self.dispatch(filter, plan, now));
            }
            // Wake requests whose fetch finished elsewhere, or that waited long enough.
            let keys = &filter.keys;
            let config = &filter.config;
            let (ready, kept): (Vec<_>, Vec<_>) = filter.waiters.drain(..).partition(|waiter| {
                let timeout = config
                    .rules
                    .get(waiter.rule)
                    .map_or(Duration::ZERO, |rule| rule.timeout);
                keys.generation(waiter.rule) != waiter.generation
                    || now.saturating_sub(waiter.since) >= timeout
                    || failed_rules.contains(&waiter.rule)
            });
            filter.waiters = kept;
            woken.extend(ready.into_iter().map(|waiter| waiter.context_id));
            !filter.waiters.is_empty()
                || filter.reviews.values().any(|review| !review.dispatched)
                || filter
                    .token_reviews
                    .values()
                    .any(|review| !review.dispatched)
        };
        self.wake(woken);
        let period = if waiting { WAITING_TICK } else { IDLE_TICK };
        let _ = abi::set_tick_period(period);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(KfauthHttp::new(context_id, self.state.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
