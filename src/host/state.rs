//! State one VM (one Envoy worker) shares between its root and its requests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::abi;
use super::metrics::Metrics;
use crate::authz::cache::DecisionCache;
use crate::authz::token_review::TokenReviewCache;
use crate::config::Config;
use crate::keystore::KeyStore;
use crate::outcome::HeaderEdits;
use crate::token_cache::TokenCache;

/// A request held until a rule's keys arrive (or its `timeout` passes).
pub struct Waiter {
    pub context_id: u32,
    pub rule: usize,
    pub since: Duration,
    /// The key record's generation when the request began to wait: any
    /// finished fetch after that (here or in another VM) wakes it.
    pub generation: u64,
}

/// A request held for a SubjectAccessReview's answer, with what it will do if allowed.
pub struct ReviewWaiter {
    pub context_id: u32,
    pub edits: HeaderEdits,
}

/// One review on its way to the API server, and every request that waits for
/// it (identical reviews are coalesced into one callout).
pub struct PendingReview {
    pub body: Vec<u8>,
    pub dispatched: bool,
    pub waiters: Vec<ReviewWaiter>,
}

/// One TokenReview on its way (identical tokens coalesced), and the requests
/// that wait for it.
pub struct PendingTokenReview {
    pub rule: usize,
    pub dispatched: bool,
    pub waiters: Vec<u32>,
}

pub struct FilterState {
    pub config: Config,
    pub keys: KeyStore,
    /// Verified tokens, until they expire.
    pub verified: TokenCache,
    pub metrics: Metrics,
    /// Callout token -> rule whose keys it fetches.
    pub callouts: HashMap<u32, usize>,
    pub waiters: Vec<Waiter>,
    /// Review answers by review.
    pub decisions: DecisionCache,
    /// Reviews asked or to ask, by review key.
    pub reviews: HashMap<String, PendingReview>,
    /// Callout token -> review key.
    pub review_callouts: HashMap<u32, String>,
    /// TokenReview answers by token.
    pub tokens: TokenReviewCache,
    /// TokenReviews asked or to ask, by token.
    pub token_reviews: HashMap<String, PendingTokenReview>,
    /// Callout token -> reviewed token.
    pub token_review_callouts: HashMap<u32, String>,
}

/// `None` until the first configuration is accepted.
pub type SharedState = Rc<RefCell<Option<FilterState>>>;

/// The host clock as time since the epoch; never a library's own clock.
pub fn host_now() -> Duration {
    abi::current_time().unwrap_or_default()
}
