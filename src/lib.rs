//! kfauth: JWT authentication for Kubeflow's Istio gateway, as one Proxy-Wasm filter.
//!
//! The core (every module but `host`) is sans-IO: it takes the request view, the
//! time and the key caches as arguments and returns an [`outcome::Outcome`]. Only
//! `host` calls proxy-wasm (through `proxy_abi`, the ABI's bindings), and both
//! are compiled for `wasm32-wasip1` alone.

// A panic traps the Wasm VM and fails every request of that Envoy worker.
// `arithmetic_side_effects` too: integers only wrap in release, but `Duration`
// arithmetic panics on overflow in every build, and a wrapped offset is a bug.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod access;
pub mod authz;
pub mod broker;
pub mod cause;
pub mod claims;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod config;
pub mod config_field;
pub mod cookie_diet;
pub mod cookie_header;
pub mod discovery;
pub mod duration;
pub mod endpoint;
pub mod header_budget;
pub mod header_list;
pub mod header_pairs;
pub mod identity;
pub mod json;
pub mod jwks;
pub mod jwt_rule;
pub mod keystore;
pub mod outcome;
pub mod pipeline;
pub mod reason;
pub mod request;
pub mod rsa_pkcs1;
pub mod session;
pub mod shared_decisions;
pub mod signature_host;
pub mod token;
pub mod ttl_cache;
pub mod verified_token_cache;
pub mod verify;

#[cfg(target_os = "wasi")]
mod host;
#[cfg(target_os = "wasi")]
mod proxy_abi;

#[cfg(test)]
mod peer_vectors;
#[cfg(test)]
pub(crate) mod testutil;
