//! The only code that calls the host (through `proxy_abi`): the ABI's entry
//! points (exports), configuration, ticks, callouts (root), and one request's
//! effects (http); the broker decides. Compiled for `wasm32-wasip1` only.

mod exports;
mod http;
mod metrics;
mod root;
mod shared_data;
mod signature;
mod state;
