//! The `kfauth` command-line tool: check a configuration before it reaches a
//! gateway, translate Istio's RequestAuthentication into pluginConfig, mint
//! test tokens, and explain a request with the filter's own decision. Native
//! only; it shares the filter's configuration parser and core.

pub mod check;
pub mod explain;
pub mod from_istio;
pub mod lint;
pub mod manifests;
pub mod mint;
pub mod wasmplugin_spec;
