//! Reading JSON or (multi-document) YAML files into JSON values.

use serde::Deserialize;
use serde_json::Value;

/// Every document of a JSON or YAML text (YAML is a superset of JSON).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|problem| problem.to_string())?;
        if !value.is_null() {
            found.push(value);
        }
    }
    Ok(found)
}

/// `kind` of a Kubernetes object, if it is one.
pub fn kind(value: &Value) -> Option<&str> {
    value.get("kind").and_then(Value::as_str)
}

pub fn name(value: &Value) -> &str {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
}
