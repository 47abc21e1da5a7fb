//! One request: read it, let the core decide, and carry the decision out.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, GrpcStatusCode, MapType};

use super::abi;
use super::log;
use super::metrics::Metrics;
use super::state::{
    host_now, PendingReview, PendingTokenReview, ReviewWaiter, SharedState, Waiter,
};
use crate::outcome::{is_grpc_content_type, local_reply, Denial, HeaderEdits, Outcome};
use crate::pipeline::{decide, Caches};
use crate::request::RequestView;

/// How often the root ticks while requests wait for keys: it starts the fetch,
/// or notices that another worker's fetch has finished.
pub const WAITING_TICK: std::time::Duration = std::time::Duration::from_millis(10);
/// The root's tick while a review waits to be sent.
pub const REVIEW_TICK: std::time::Duration = std::time::Duration::from_millis(1);

pub struct KfauthHttp {
    context_id: u32,
    state: SharedState,
}

impl KfauthHttp {
    pub fn new(context_id: u32, state: SharedState) -> Self {
        KfauthHttp { context_id, state }
    }
}

impl Context for KfauthHttp {}

/// The SDK drops the context when Envoy deletes it (`proxy_on_delete`), right
/// after the stream ends. Cleaning up here rather than in `on_done` lets the
/// build drop the `proxy_on_done` export: one VM entry fewer per request.
impl Drop for KfauthHttp {
    fn drop(&mut self) {
        // A request that ends while held for keys no longer wants waking.
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        if let Some(state) = state.as_mut() {
            state
                .waiters
                .retain(|waiter| waiter.context_id != self.context_id);
            for pending in state.reviews.values_mut() {
                pending
                    .waiters
                    .retain(|waiter| waiter.context_id != self.context_id);
            }
            for pending in state.token_reviews.values_mut() {
                pending.waiters.retain(|id| *id != self.context_id);
            }
        }
    }
}

impl HttpContext for KfauthHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        handle_request(&self.state, self.context_id, true)
    }
}

/// Decides and acts on the current request (the effective context). Returns
/// `Continue` when the request may go on, `Pause` when it was answered or is held.
pub fn handle_request(state: &SharedState, context_id: u32, may_wait: bool) -> Action {
    decide_and_act(state, context_id, may_wait, true)
}

/// As `handle_request`; `count_token_hits` is false on the pass right after the
/// request's own TokenReview was answered (that lookup is not a cache hit).
pub fn decide_and_act(
    state: &SharedState,
    context_id: u32,
    may_wait: bool,
    count_token_hits: bool,
) -> Action {
    let view = match abi::get_map(MapType::HttpRequestHeaders) {
        Ok(pairs) => RequestView::from_pairs(pairs),
        Err(status) => {
            // Fail closed: a request whose headers cannot be read could carry
            // a spoofed identity header that would then not be removed.
            log::error(&format!("cannot read request headers ({status:?})"));
            send_denial(
                &RequestView::default(),
                &Denial::because(crate::cause::Cause::HeadersUnreadable, false),
            );
            return Action::Pause;
        }
    };
    let now = host_now();
    let outcome = {
        let guard = state.borrow();
        let Some(filter) = guard.as_ref() else {
            // No accepted configuration: Envoy has refused the filter; fail closed.
            drop(guard);
            send_denial(
                &view,
                &Denial::because(crate::cause::Cause::NotConfigured, false),
            );
            return Action::Pause;
        };
        let caches = Caches {
            keys: &filter.keys,
            verified: &filter.verified,
            decisions: &filter.decisions,
            tokens: &filter.tokens,
        };
        let outcome = decide(&filter.config, &caches, &view, now, may_wait);
        filter
            .metrics
            .authz_cache_hits(filter.decisions.take_hits());
        let token_hits = filter.tokens.take_hits();
        if count_token_hits {
            filter.metrics.token_review_cache_hits(token_hits);
        }
        match &outcome {
            Outcome::Allow {
                identity,
                authorized,
                ..
            } => {
                if identity.is_some() {
                    filter.metrics.allowed();
                } else {
                    filter.metrics.unauthenticated();
                }
                if *authorized {
                    filter.metrics.authz_allowed();
                }
            }
            Outcome::Deny(denial) => {
                filter.metrics.denied(denial.reason);
                filter.metrics.authz_refused(denial.reason);
            }
            Outcome::FetchKeys(_) | Outcome::Review { .. } | Outcome::TokenReview { .. } => {}
        }
        outcome
    };
    match outcome {
        Outcome::Allow { edits, .. } => {
            apply_edits(
                &edits,
                state.borrow().as_ref().map(|filter| &filter.metrics),
            );
            Action::Continue
        }
        Outcome::Deny(denial) => {
            deny(&view, &denial);
            Action::Pause
        }
        Outcome::TokenReview { rule, token } => {
            if let Some(filter) = state.borrow_mut().as_mut() {
                let pending =
                    filter
                        .token_reviews
                        .entry(token)
                        .or_insert_with(|| PendingTokenReview {
                            rule,
                            dispatched: false,
                            waiters: Vec::new(),
                        });
                if pending.waiters.is_empty() {
                    filter.metrics.token_review_cache_miss();
                } else {
                    filter.metrics.token_review_coalesced();
                }
                pending.waiters.push(context_id);
            }
            let _ = abi::set_tick_period(REVIEW_TICK);
            Action::Pause
        }
        Outcome::Review { edits, key, body } => {
            if let Some(filter) = state.borrow_mut().as_mut() {
                let pending = filter.reviews.entry(key).or_insert_with(|| PendingReview {
                    body,
                    dispatched: false,
                    waiters: Vec::new(),
                });
                if pending.waiters.is_empty() {
                    filter.metrics.authz_cache_miss();
                } else {
                    filter.metrics.authz_coalesced();
                }
                pending.waiters.push(ReviewWaiter { context_id, edits });
            }
            // The root sends reviews from its tick; make that tick come now.
            let _ = abi::set_tick_period(REVIEW_TICK);
            Action::Pause
        }
        Outcome::FetchKeys(rule) => {
            if let Some(filter) = state.borrow_mut().as_mut() {
                filter.keys.want_fetch(rule);
                let generation = filter.keys.generation(rule);
                filter.waiters.push(Waiter {
                    context_id,
                    rule,
                    since: now,
                    generation,
                });
            }
            // The root fetches on its next tick; make that tick come now.
            let _ = abi::set_tick_period(WAITING_TICK);
            Action::Pause
        }
    }
}

/// Answers the current request with a refusal, and logs one line.
pub fn deny(view: &RequestView, denial: &Denial) {
    log::info(&format!(
        "denied {} {} {}: {denial}",
        denial.reason.http_status(),
        view.method,
        view.path_only(),
    ));
    send_denial(view, denial);
}

/// The current request's method, path and content type, for a late refusal.
pub fn current_view() -> RequestView {
    let header = |name: &str| {
        abi::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    RequestView {
        method: header(":method"),
        path: header(":path"),
        authority: header(":authority"),
        headers: vec![("content-type".to_string(), header("content-type"))],
    }
}

pub fn apply_edits(edits: &HeaderEdits, metrics: Option<&Metrics>) {
    if edits.stripped_cookie_bytes > 0 {
        if let Some(metrics) = metrics {
            metrics.cookie_stripped();
        }
        log::debug(&format!(
            "gRPC cookie diet: removed {} bytes of Cookie",
            edits.stripped_cookie_bytes
        ));
    }
    if edits.session_cookie_bytes > 0 {
        if let Some(metrics) = metrics {
            metrics.session_cookie_stripped();
        }
        log::debug(&format!(
            "session: removed {} bytes of session cookies",
            edits.session_cookie_bytes
        ));
    }
    for name in &edits.remove {
        let _ = abi::remove_map_value(MapType::HttpRequestHeaders, name);
    }
    for (name, value) in &edits.set {
        let _ = abi::replace_map_value(MapType::HttpRequestHeaders, name, value);
    }
    if let Some(path) = &edits.path {
        let _ = abi::replace_map_value(MapType::HttpRequestHeaders, ":path", path);
    }
}

fn send_denial(view: &RequestView, denial: &Denial) {
    let is_grpc = is_grpc_content_type(view.header("content-type"));
    let reply = local_reply(denial, is_grpc);
    let result = match &reply.grpc {
        Some((code, message)) => abi::send_grpc_response(grpc_code(*code), message),
        None => abi::send_http_response(
            reply.status,
            &reply
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect::<Vec<_>>(),
            &reply.body,
        ),
    };
    if let Err(status) = result {
        log::error(&format!("cannot send the local reply ({status:?})"));
    }
}

fn grpc_code(code: u32) -> GrpcStatusCode {
    match code {
        7 => GrpcStatusCode::PermissionDenied,
        8 => GrpcStatusCode::ResourceExhausted,
        14 => GrpcStatusCode::Unavailable,
        _ => GrpcStatusCode::Unauthenticated,
    }
}
