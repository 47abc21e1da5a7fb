//! `kfauth check FILE`: is this pluginConfig (or the one inside a WasmPlugin
//! manifest) one the filter accepts? A config Envoy refuses is a gateway that
//! fails closed, so find out before it gets there.

use serde_json::Value;

use super::manifests::{documents, kind, name};
use crate::config::Config;

/// One configuration found in a file, and what the parser says of it.
#[derive(Debug)]
pub struct Checked {
    pub label: String,
    pub result: Result<Config, crate::config::ConfigError>,
}

/// Environment variables do not exist here: `tokenEnv` names are taken as set.
fn any_env(_: &str) -> Option<String> {
    Some("checked-at-runtime".into())
}

/// Checks every pluginConfig in `text`: a bare pluginConfig, or each WasmPlugin's.
pub fn check_text(text: &str) -> Result<Vec<Checked>, String> {
    let docs = documents(text)?;
    let mut checked = Vec::new();
    for doc in &docs {
        let (label, config) = match kind(doc) {
            Some("WasmPlugin") => (
                format!("WasmPlugin {}", name(doc)),
                doc.pointer("/spec/pluginConfig")
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
            Some(_) => continue,
            None => ("pluginConfig".to_string(), doc.clone()),
        };
        let bytes = serde_json::to_vec(&config).map_err(|problem| problem.to_string())?;
        checked.push(Checked {
            label,
            result: Config::parse_with_env(&bytes, &any_env),
        });
    }
    if checked.is_empty() {
        return Err("no pluginConfig or WasmPlugin found".into());
    }
    Ok(checked)
}
