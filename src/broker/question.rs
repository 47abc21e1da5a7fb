//! What a callout asks, and the requests parked until it is answered.

use std::time::Duration;

use super::callout::Outgoing;
use crate::access::Access;
use crate::outcome::HeaderEdits;
use crate::request::RequestView;
use crate::shared_decisions::ReviewDigest;
use crate::verified_token_cache::TokenDigest;

/// What a callout is about: requests that need the same answer wait on the
/// same question, and it is asked once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Question {
    /// The keys of a rule (index into `jwtRules`): a JWKS or discovery fetch.
    Jwks(usize),
    /// A SubjectAccessReview, by its spec's compact JSON (the decision cache's key).
    SubjectAccessReview(String),
    /// A TokenReview of one bearer token (by its keyed digest) for its rule.
    TokenReview { rule: usize, digest: TokenDigest },
}

/// Which decision a request is at: the first, or one after a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    First,
    /// After waiting for keys: answered now, never held for keys again.
    AfterKeys,
    /// After its TokenReview was answered (that lookup is no cache hit).
    AfterTokenReview,
}

/// What a parked request does once its question is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// A SubjectAccessReview: go on with these edits if allowed; the access
    /// log's fields so far.
    Allow(HeaderEdits, Box<Access>),
    /// A TokenReview: decide again.
    DecideAgain,
    /// Keys: decide again once the key record's generation moves past this
    /// one (a fetch finished, here or in another VM), or at the rule's timeout.
    DecideWithKeys { generation: u64 },
}

/// A request held by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub context: u32,
    pub view: RequestView,
    pub since: Duration,
    pub then: Then,
}

/// The requests parked on one question, and where its answer will come from.
#[derive(Debug, Default)]
pub struct Asking {
    pub waiters: Vec<Waiter>,
    /// A review's digest in the gateway-wide table, when it takes part.
    pub digest: Option<ReviewDigest>,
    /// Another worker holds the review's lease: the callout to send here
    /// should that lease lapse.
    pub elsewhere: Option<Outgoing>,
}
