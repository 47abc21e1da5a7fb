//! The `kfauth` command-line tool: check a configuration before it reaches a
//! gateway, translate Istio's RequestAuthentication into pluginConfig, and mint
//! test tokens. Native only; it shares the filter's configuration parser.

pub mod check;
pub mod explain;
pub mod from_istio;
pub mod lint;
pub mod manifests;
pub mod mint;
pub mod wasmplugin_spec;
