//! The root context of one VM: accepts the configuration, fetches JWKS with
//! HTTP callouts from its tick, and wakes the requests that waited for them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

use super::http::{handle_request, KfauthHttp};
use super::log;
use super::state::{host_now, FilterState, SharedState};
use crate::config::{Config, KeySource};
use crate::keystore::KeyStore;

/// Tick period when nothing waits: the root checks for keys still to fetch.
const IDLE_TICK: Duration = Duration::from_secs(1);

pub struct KfauthRoot {
    state: SharedState,
}

impl KfauthRoot {
    pub fn new(_context_id: u32) -> Self {
        KfauthRoot {
            state: Rc::new(RefCell::new(None)),
        }
    }

    fn start_fetches(&mut self) {
        let now = host_now();
        let mut failed = Vec::new();
        let mut guard = self.state.borrow_mut();
        let Some(filter) = guard.as_mut() else {
            return;
        };
        for rule_index in filter.keys.rules_to_fetch(&filter.config, now) {
            let Some(KeySource::Remote(remote)) =
                filter.config.rules.get(rule_index).map(|rule| &rule.keys)
            else {
                continue;
            };
            let timeout = filter
                .config
                .rules
                .get(rule_index)
                .map_or(Duration::from_secs(5), |rule| rule.timeout);
            let headers = vec![
                (":method", "GET"),
                (":path", remote.path.as_str()),
                (":authority", remote.authority.as_str()),
                (":scheme", remote.scheme.as_str()),
                ("accept", "application/json"),
            ];
            match hostcalls::dispatch_http_call(&remote.cluster, headers, None, vec![], timeout) {
                Ok(token) => {
                    filter.keys.start_fetch(rule_index, now);
                    filter.callouts.insert(token, rule_index);
                    log::debug(&format!("fetching JWKS {}", remote.uri));
                }
                Err(status) => {
                    log::warn(&format!(
                        "cannot fetch JWKS {} through cluster `{}` ({status:?}): is the cluster defined?",
                        remote.uri, remote.cluster
                    ));
                    filter.keys.fetch_failed(rule_index, now);
                    failed.push(rule_index);
                }
            }
        }
        drop(guard);
        for rule_index in failed {
            self.wake_waiters(rule_index);
        }
    }

    /// Decides again for every request held for `rule`'s keys.
    fn wake_waiters(&self, rule: usize) {
        let woken: Vec<u32> = {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let (woken, kept): (Vec<_>, Vec<_>) = filter
                .waiters
                .drain(..)
                .partition(|(_, waiting_for)| *waiting_for == rule);
            filter.waiters = kept;
            woken.into_iter().map(|(id, _)| id).collect()
        };
        for context_id in woken {
            if hostcalls::set_effective_context(context_id).is_err() {
                continue;
            }
            if handle_request(&self.state, context_id, false) == Action::Continue {
                let _ = hostcalls::resume_http_request();
            }
        }
    }
}

impl Context for KfauthRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let now = host_now();
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten();
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let rule = {
            let mut guard = self.state.borrow_mut();
            let Some(filter) = guard.as_mut() else {
                return;
            };
            let Some(rule) = filter.callouts.remove(&token_id) else {
                return;
            };
            let uri = match filter.config.rules.get(rule).map(|rule| &rule.keys) {
                Some(KeySource::Remote(remote)) => remote.uri.clone(),
                _ => String::new(),
            };
            match status.as_deref() {
                Some("200") => match filter.keys.fetch_succeeded(rule, &body, now) {
                    Ok(report) => {
                        log::info(&format!("fetched JWKS {uri}: {} usable keys", report.keys));
                        for note in report.skipped {
                            log::warn(&format!("JWKS {uri}: skipped a key: {note}"));
                        }
                    }
                    Err(problem) => log::warn(&format!("JWKS {uri} is unusable: {problem}")),
                },
                other => {
                    filter.keys.fetch_failed(rule, now);
                    log::warn(&format!(
                        "JWKS fetch {uri} failed: {}",
                        match other {
                            Some(code) => format!("HTTP {code}"),
                            None => "no response (timeout or connection failure)".into(),
                        }
                    ));
                }
            }
            rule
        };
        self.wake_waiters(rule);
    }
}

impl RootContext for KfauthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = match Config::parse(&bytes) {
            Ok(config) => config,
            Err(problem) => {
                log::error(&problem.to_string());
                return false;
            }
        };
        for warning in &config.warnings {
            log::warn(warning);
        }
        let has_remote = config
            .rules
            .iter()
            .any(|rule| matches!(rule.keys, KeySource::Remote(_)));
        log::info(&format!(
            "configured: {} rule(s), requireJwt {}",
            config.rules.len(),
            config.require_jwt
        ));
        let keys = KeyStore::new(&config);
        *self.state.borrow_mut() = Some(FilterState {
            config,
            keys,
            callouts: HashMap::new(),
            waiters: Vec::new(),
        });
        if has_remote {
            // Fetch at once, before the first request needs the keys.
            let _ = hostcalls::set_tick_period(super::http::WAITING_TICK);
        }
        true
    }

    fn on_tick(&mut self) {
        self.start_fetches();
        let _ = hostcalls::set_tick_period(IDLE_TICK);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(KfauthHttp::new(context_id, self.state.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
