//! State one VM (one Envoy worker) shares between its root and its requests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;

use super::metrics::Metrics;
use crate::config::Config;
use crate::keystore::KeyStore;

/// A request held until a rule's keys arrive (or its `timeout` passes).
pub struct Waiter {
    pub context_id: u32,
    pub rule: usize,
    pub since: Duration,
    /// The key record's generation when the request began to wait: any
    /// finished fetch after that (here or in another VM) wakes it.
    pub generation: u64,
}

pub struct FilterState {
    pub config: Config,
    pub keys: KeyStore,
    pub metrics: Metrics,
    /// Callout token -> rule whose keys it fetches.
    pub callouts: HashMap<u32, usize>,
    pub waiters: Vec<Waiter>,
}

/// `None` until the first configuration is accepted.
pub type SharedState = Rc<RefCell<Option<FilterState>>>;

/// The host clock as time since the epoch; never a library's own clock.
pub fn host_now() -> Duration {
    hostcalls::get_current_time()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}
