//! One slot of the shared table, as stored: empty (vacant), a lease on a
//! review, or a review's answer, always with the full digest of the review
//! it is about. A slot is written whole in one shared-data write, so a
//! reader never sees one review's digest with another's answer.

use serde::{Deserialize, Serialize};

use super::digest::{ReviewDigest, ReviewKind};

/// A vacant slot's bytes. Never empty: the proxy-wasm ABI hands an empty
/// value back as no memory at all (`copyToPointerSize` in proxy-wasm-cpp-host
/// writes a null pointer for it), which an SDK may read as no value and no
/// compare-and-swap token, and a write without a token always lands. A
/// vacant slot must keep its token, or two VMs could both take it.
pub const VACANT: &[u8] = b"vacant";

/// A slot's bytes are at most this long; a longer answer (a TokenReview
/// with hundreds of groups) is not shared, so the table's memory is bounded
/// by its slot count times this.
pub const MAX_SLOT_BYTES: usize = 4096;

/// What the API server answered, as workers share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// SubjectAccessReview: allowed.
    Allowed,
    /// SubjectAccessReview: not allowed, with the API server's `status.reason`.
    Denied { reason: Option<String> },
    /// TokenReview: the token is good and belongs to this user.
    Authenticated { user: String, groups: Vec<String> },
    /// TokenReview: the API server refused the token, and why.
    Rejected { why: String },
}

impl Answer {
    /// Which reviews give such an answer.
    pub fn kind(&self) -> ReviewKind {
        match self {
            Answer::Allowed | Answer::Denied { .. } => ReviewKind::SubjectAccess,
            Answer::Authenticated { .. } | Answer::Rejected { .. } => ReviewKind::Token,
        }
    }
}

/// A slot's content (a vacant slot is stored as [`VACANT`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// VM `holder` asks the API server about `digest` until `until_ms`.
    Leased {
        digest: String,
        holder: u64,
        until_ms: u64,
    },
    /// The answer about `digest`, good until `expires_ms`.
    Answered {
        digest: String,
        answer: Answer,
        expires_ms: u64,
    },
}

impl Entry {
    /// The slot's content, or `None` for a vacant slot and for bytes that do
    /// not read as an entry (a reader treats both as vacant).
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        if bytes.is_empty() || bytes == VACANT || bytes.len() > MAX_SLOT_BYTES {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    /// The bytes to store, or `None` when they would not fit a slot.
    pub fn encode(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(self)
            .ok()
            .filter(|bytes| bytes.len() <= MAX_SLOT_BYTES)
    }

    /// Is this entry about `digest` (the whole digest, and an answer of its kind)?
    pub fn is_about(&self, digest: &ReviewDigest) -> bool {
        let (stored, kind) = match self {
            Entry::Leased { digest, .. } => (digest, None),
            Entry::Answered { digest, answer, .. } => (digest, Some(answer.kind())),
        };
        kind.is_none_or(|kind| kind == digest.kind)
            && ReviewDigest::decode(digest.kind, stored).is_some_and(|stored| stored == *digest)
    }

    /// Does it still count at `now_ms` (an unexpired lease or answer)?
    pub fn is_live(&self, now_ms: u64) -> bool {
        match self {
            Entry::Leased { until_ms, .. } => *until_ms > now_ms,
            Entry::Answered { expires_ms, .. } => *expires_ms > now_ms,
        }
    }
}
