//! `kfauth check FILE`: is this pluginConfig (or the one inside a WasmPlugin
//! manifest) one the filter accepts? A config Envoy refuses is a gateway that
//! fails closed, so find out before it gets there.

use serde_json::Value;

use super::lint::lint_config;
use super::manifests::{documents, kind, name};
use super::wasmplugin_spec::{check_spec, SpecReport};
use crate::config::Config;
use crate::config_field::ConfigError;

/// One configuration found in a file, and what the parser says of it.
#[derive(Debug)]
pub struct Checked {
    pub label: String,
    pub result: Result<Config, Vec<ConfigError>>,
    /// A WasmPlugin's `spec` around its pluginConfig (url, sha256, vmConfig).
    pub spec: SpecReport,
    /// Path and host regexes that look like Istio globs or are not anchored
    /// (`lint`): warnings, whether the configuration parsed or not.
    pub patterns: Vec<String>,
}

impl Checked {
    pub fn failed(&self) -> bool {
        self.result.is_err() || !self.spec.errors.is_empty()
    }
}

/// `jwtRules[0].jwks` as JSON-pointer tokens: `["jwtRules", "0", "jwks"]`.
fn pointer_tokens(field: &str) -> Vec<String> {
    field
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|token| !token.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes the value at `tokens`; false when there is nothing there.
fn remove_at(value: &mut Value, tokens: &[String]) -> bool {
    let Some((last, parents)) = tokens.split_last() else {
        return false;
    };
    let mut current = value;
    for token in parents {
        let next = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        current = next;
    }
    match current {
        Value::Object(map) => map.remove(last).is_some(),
        // Removing an element shifts the later ones: a later problem in the same
        // list may then be reported one index early.
        Value::Array(items) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Every problem of a configuration, not just the first: after each error the
/// offending field is taken out and the rest parsed again, until it passes or
/// an error is only a consequence of what was taken out.
pub fn all_problems(config: &Value) -> Result<Config, Vec<ConfigError>> {
    let mut candidate = config.clone();
    let mut problems: Vec<ConfigError> = Vec::new();
    let mut removed: Vec<Vec<String>> = Vec::new();
    for _ in 0..64 {
        let bytes = serde_json::to_vec(&candidate).unwrap_or_default();
        let problem = match Config::parse_with_env(&bytes, &any_env) {
            Ok(parsed) if problems.is_empty() => return Ok(parsed),
            Ok(_) => break,
            Err(problem) => problem,
        };
        let tokens = pointer_tokens(&problem.field);
        // An error about something that contains a removed field follows from the removal.
        let consequence = removed
            .iter()
            .any(|gone| gone.len() > tokens.len() && gone.starts_with(&tokens));
        if consequence || problems.contains(&problem) {
            break;
        }
        problems.push(problem);
        if !remove_at(&mut candidate, &tokens) {
            break;
        }
        removed.push(tokens);
    }
    Err(problems)
}

/// Environment variables do not exist here: `tokenEnv` names are taken as set.
pub(crate) fn any_env(_: &str) -> Option<String> {
    Some("checked-at-runtime".into())
}

/// Checks every pluginConfig in `text`: a bare pluginConfig, or each WasmPlugin's.
pub fn check_text(text: &str) -> Result<Vec<Checked>, String> {
    let docs = documents(text)?;
    let mut checked = Vec::new();
    for doc in &docs {
        let (label, config, spec) = match kind(doc) {
            Some("WasmPlugin") => (
                format!("WasmPlugin {}", name(doc)),
                doc.pointer("/spec/pluginConfig")
                    .cloned()
                    .unwrap_or(Value::Null),
                doc.get("spec"),
            ),
            Some(_) => continue,
            None => ("pluginConfig".to_string(), doc.clone(), None),
        };
        let result = all_problems(&config);
        let patterns = lint_config(&config);
        let spec = spec.map_or_else(SpecReport::default, |spec| {
            check_spec(spec, result.as_ref().ok())
        });
        checked.push(Checked {
            label,
            result,
            spec,
            patterns,
        });
    }
    if checked.is_empty() {
        return Err("no pluginConfig or WasmPlugin found".into());
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_independent_problem() {
        let config = json!({
            "jwtRules": [
                {"issuer": "https://a.example.com", "jwksUrl": "x"},
                {"issuer": "https://b.example.com", "jwksUri": "https://b.example.com/k", "timeout": "soon"}
            ],
            "skipPaths": ["("],
            "clockSkew": "1 minute"
        });
        let problems = all_problems(&config).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "jwtRules[0].jwksUrl",
                "clockSkew",
                "skipPaths[0]",
                "jwtRules[1].timeout"
            ],
            "{problems:?}"
        );
        assert!(all_problems(&json!({"jwtRules": [{"issuer": "https://a.example.com"}]})).is_ok());
    }
}
