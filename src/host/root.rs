//! The root context of one VM: accepts the configuration, and hands ticks and
//! callout answers to the broker; then sends the callouts it asks for and
//! resumes or answers the requests it releases.

use super::http::act;
use super::metrics::Metrics;
use super::shared_data::HostSharedData;
use super::signature::ENVOY;
use super::state::{host_logs_debug, host_now, log, report, SharedState, Vm};
use crate::broker::callout::Outgoing;
use crate::broker::event::Level;
use crate::broker::{Broker, Resume};
use crate::config::Config;
use crate::proxy_abi::{self, Action, BufferType, MapType};

pub struct KfauthRoot {
    context_id: u32,
    state: SharedState,
}

enum Step {
    Send(Outgoing),
    Resume(Resume),
}

impl KfauthRoot {
    pub fn new(context_id: u32) -> Self {
        KfauthRoot {
            context_id,
            state: SharedState::default(),
        }
    }

    pub fn context_id(&self) -> u32 {
        self.context_id
    }

    /// What this root's requests share: the broker, once configured.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Envoy deleted this root context: its configuration is retired.
    pub fn on_retire(&self) {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            if let Some(vm) = state.as_mut() {
                vm.broker.retire(host_now());
                report(vm);
            }
        }
    }

    /// A request of this root has ended (Envoy deleted its context).
    pub fn on_stream_end(&self, context_id: u32) {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            if let Some(vm) = state.as_mut() {
                vm.broker.on_stream_end(context_id);
            }
        }
    }

    /// Does what the broker asks for until it asks for nothing. The state is
    /// not borrowed while a host call may re-enter the VM.
    fn flush(&self) {
        loop {
            let step = {
                let mut guard = self.state.borrow_mut();
                let Some(vm) = guard.as_mut() else {
                    return;
                };
                if let Some(outgoing) = vm.broker.poll_callout() {
                    Step::Send(outgoing)
                } else if let Some(resume) = vm.broker.poll_resume() {
                    Step::Resume(resume)
                } else {
                    report(vm);
                    return;
                }
            };
            match step {
                Step::Send(outgoing) => {
                    let headers: Vec<(&str, &str)> = outgoing
                        .headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    let sent = proxy_abi::dispatch_http_call(
                        &outgoing.cluster,
                        &headers,
                        outgoing.body.as_deref(),
                        outgoing.timeout,
                    )
                    .map_err(|status| format!("{status:?}"));
                    if let Some(vm) = self.state.borrow_mut().as_mut() {
                        vm.broker.on_dispatched(outgoing, sent, host_now());
                    }
                }
                Step::Resume(resume) => {
                    if proxy_abi::set_effective_context(resume.context).is_ok()
                        && act(resume.verdict) == Action::Continue
                    {
                        let _ = proxy_abi::resume_http_request();
                    }
                    let _ = proxy_abi::set_effective_context(self.context_id);
                }
            }
        }
    }

    pub fn on_http_call_response(&self, token_id: u32, num_headers: usize, body_size: usize) {
        // A callout that failed after its response began (the peer closed or
        // reset the connection mid-body) arrives with no headers, and Envoy
        // then has no response map at all: asking for `:status` answers
        // BadArgument (on which the SDK's hostcalls panicked, a VM trap seen
        // with a JWKS endpoint that hangs up halfway, tests/faults_jwks.rs;
        // `proxy_abi` answers Err). No headers is "no response".
        let (status, body) = if num_headers == 0 {
            (None, Vec::new())
        } else {
            let status = proxy_abi::get_map_value(MapType::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten();
            let body = proxy_abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .unwrap_or_default();
            (status, body)
        };
        if let Some(vm) = self.state.borrow_mut().as_mut() {
            vm.broker
                .on_answer(token_id, status.as_deref(), &body, host_now());
        }
        self.flush();
    }

    pub fn on_configure(&self) -> bool {
        let bytes = proxy_abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .unwrap_or_default();
        let configured =
            Config::parse_with_env(&bytes, &|name| std::env::var(name).ok()).and_then(|config| {
                Broker::configure(config, Box::new(HostSharedData), &ENVOY, host_now())
            });
        let broker = match configured {
            Ok(broker) => broker,
            Err(problem) => {
                log(Level::Error, &problem.to_string());
                return false;
            }
        };
        let metrics = Metrics::define(broker.config());
        let mut vm = Vm { broker, metrics };
        vm.broker.set_debug_lines(host_logs_debug());
        // The first tick comes at once: fetch before the first request needs keys.
        report(&mut vm);
        *self.state.borrow_mut() = Some(vm);
        true
    }

    pub fn on_tick(&self) {
        if let Some(vm) = self.state.borrow_mut().as_mut() {
            // The log level can change at run time (Envoy's `/logging`).
            vm.broker.set_debug_lines(host_logs_debug());
            vm.broker.on_tick(host_now());
        }
        self.flush();
    }
}
