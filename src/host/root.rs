//! The root context of one VM: accepts the configuration, and hands ticks and
//! callout answers to the broker; then sends the callouts it asks for and
//! resumes or answers the requests it releases.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

use super::http::{act, KfauthHttp};
use super::metrics::Metrics;
use super::shared_data::HostSharedData;
use super::signature::ENVOY;
use super::state::{host_logs_debug, host_now, log, report, SharedState, Vm};
use crate::broker::callout::Outgoing;
use crate::broker::event::Level;
use crate::broker::{Broker, Resume};
use crate::config::Config;
use crate::proxy_abi;

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
            state: Rc::new(RefCell::new(None)),
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
                    let headers = outgoing
                        .headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    let sent = proxy_abi::dispatch_http_call(
                        &outgoing.cluster,
                        headers,
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
}

impl Context for KfauthRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
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
}

impl RootContext for KfauthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
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

    fn on_tick(&mut self) {
        if let Some(vm) = self.state.borrow_mut().as_mut() {
            // The log level can change at run time (Envoy's `/logging`).
            vm.broker.set_debug_lines(host_logs_debug());
            vm.broker.on_tick(host_now());
        }
        self.flush();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(KfauthHttp::new(context_id, self.state.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
