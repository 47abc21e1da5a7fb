//! Reading one pluginConfig field: the error that names it by its JSON path,
//! and the readers every block of the configuration shares (regexes,
//! durations), so that each refuses a bad value with the same message shape.
//!
//! This module imports no other part of kfauth: `config` and every feature
//! block it reads (`authz::config`, `cookie_diet`, `session`,
//! `header_budget`) build on it without importing one another.

use std::time::Duration;

use regex_lite::Regex;

use crate::duration::parse_duration;

/// A configuration error: the JSON path of the offending field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid pluginConfig at `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Compiles the list of regexes at `field`; a bad one is named by its index
/// (`skipPaths[1]`). regex-lite's messages are one line; should one ever span
/// more, its lines are joined, so the log keeps one line per error.
pub fn regexes(field: &str, patterns: &[String]) -> Result<Vec<Regex>, ConfigError> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, pattern)| {
            Regex::new(pattern).map_err(|problem| {
                ConfigError::new(
                    format!("{field}[{index}]"),
                    format!("not a valid regex: {}", one_line(&problem.to_string())),
                )
            })
        })
        .collect()
}

/// The duration at `field`, or `default` when the field is absent.
pub fn duration(
    field: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        Some(text) => {
            parse_duration(text).map_err(|problem| ConfigError::new(field, problem.to_string()))
        }
        None => Ok(default),
    }
}

/// Checks the list of cookie names at `field`: a name cannot be empty or hold
/// what separates cookies or their values in a `Cookie` header (RFC 6265
/// section 4.2.1: `;`, `=`, whitespace; `,` which old servers split on).
pub fn cookie_names(field: &str, names: &[String]) -> Result<(), ConfigError> {
    match names
        .iter()
        .position(|name| name.is_empty() || name.contains([';', '=', ' ', ',', '\t']))
    {
        Some(index) => Err(ConfigError::new(
            format!("{field}[{index}]"),
            "not a cookie name",
        )),
        None => Ok(()),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_bad_regex_is_named_by_its_index_with_regex_lites_reason() {
        let patterns = vec!["^/ok".to_string(), "^/(".to_string()];
        let problem = regexes("grpc.cookiePaths", &patterns).unwrap_err();
        assert_eq!(problem.field, "grpc.cookiePaths[1]");
        assert!(
            problem.message.starts_with("not a valid regex: ") && !problem.message.contains('\n'),
            "{problem}"
        );
        assert_eq!(regexes("skipPaths", &patterns[..1]).unwrap().len(), 1);
    }

    #[test]
    fn an_absent_duration_is_the_default_and_a_bad_one_names_its_field() {
        let default = Duration::from_secs(7);
        assert_eq!(duration("timeout", None, default), Ok(default));
        assert_eq!(
            duration("timeout", Some("1.5s"), default),
            Ok(Duration::from_millis(1500))
        );
        let problem = duration("cache.deniedTtl", Some("soon"), default).unwrap_err();
        assert_eq!(problem.field, "cache.deniedTtl");
        assert!(problem.message.contains("`soon`"), "{problem}");
    }

    #[test]
    fn a_cookie_name_without_separators_passes_and_one_with_them_is_named() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cookie_names("session.cookies", &names(&["a_0", "b"])),
            Ok(())
        );
        for bad in ["", "a;b", "a=b", "a b", "a,b", "a\tb"] {
            assert_eq!(
                cookie_names("grpc.stripCookies", &names(&["ok", bad])),
                Err(ConfigError::new(
                    "grpc.stripCookies[1]",
                    "not a cookie name"
                )),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_display_names_the_field() {
        assert_eq!(
            ConfigError::new("clockSkew", "bad").to_string(),
            "invalid pluginConfig at `clockSkew`: bad"
        );
    }
}
