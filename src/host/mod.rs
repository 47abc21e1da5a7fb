//! The only code that calls proxy-wasm (through `proxy_abi`): configuration,
//! ticks, callouts (root), and one request's effects (http); the broker
//! decides. Compiled for `wasm32-wasip1` only.

mod http;
mod metrics;
mod root;
mod shared_data;
mod signature;
mod state;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| Box::new(root::KfauthRoot::new(context_id)));
}}
