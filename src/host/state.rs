//! State one VM (one Envoy worker) shares between its root and its requests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use crate::config::Config;
use crate::keystore::KeyStore;
use proxy_wasm::hostcalls;

pub struct FilterState {
    pub config: Config,
    pub keys: KeyStore,
    /// Callout token -> rule whose JWKS it fetches.
    pub callouts: HashMap<u32, usize>,
    /// Requests held for a rule's keys: (http context id, rule).
    pub waiters: Vec<(u32, usize)>,
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
