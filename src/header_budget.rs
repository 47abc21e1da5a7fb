//! Header budgets: on chosen paths, a request one of whose headers would still
//! be too large for the backend (after every other edit) gets 431
//! `header_too_large` from kfauth instead of an obscure failure upstream.
//!
//! The size is counted the way gunicorn (Kubeflow's web apps) counts it
//! against `limit_request_field_size` (default 8,190): the whole header line,
//! `Name: value` plus its CRLF (gunicorn `http/message.py`, `parse_headers`:
//! `header_length = len(curr) + len("\r\n")`, where `curr` is the line), as an
//! HTTP/1.1 upstream receives it from Envoy (`name: value\r\n`).

use regex_lite::Regex;
use serde::Deserialize;

use crate::config_field::{regexes, ConfigError};
use crate::outcome::HeaderEdits;
use crate::request::RequestView;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawHeaderBudget {
    paths: Vec<String>,
    max_header_bytes: usize,
}

/// One validated `headerBudgets` entry.
#[derive(Debug, Clone)]
pub struct HeaderBudget {
    pub paths: Vec<Regex>,
    /// Largest header line (`name: value` and CRLF) a backend on these paths takes.
    pub max_header_bytes: usize,
}

/// The smallest budget accepted: below it ordinary requests would be refused.
pub const MIN_HEADER_BYTES: usize = 256;

pub(crate) fn validate(raw: Vec<RawHeaderBudget>) -> Result<Vec<HeaderBudget>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let field = format!("headerBudgets[{index}]");
            if entry.paths.is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.paths"),
                    "at least one path regex is required",
                ));
            }
            if entry.max_header_bytes < MIN_HEADER_BYTES {
                return Err(ConfigError::new(
                    format!("{field}.maxHeaderBytes"),
                    format!("must be at least {MIN_HEADER_BYTES}"),
                ));
            }
            let paths = regexes(&format!("{field}.paths"), &entry.paths)?;
            Ok(HeaderBudget {
                paths,
                max_header_bytes: entry.max_header_bytes,
            })
        })
        .collect()
}

/// A header over its budget: its name (never its value) and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversized {
    pub name: String,
    /// The header line's bytes: name, `: `, value, CRLF.
    pub bytes: usize,
    pub max_header_bytes: usize,
}

impl Oversized {
    /// For the body's `detail` and the log line: the name and sizes only.
    pub fn detail(&self) -> String {
        format!(
            "header `{}` is {} bytes, over maxHeaderBytes {}",
            self.name, self.bytes, self.max_header_bytes
        )
    }
}

/// The bytes of a header line `name: value\r\n`.
pub fn line_bytes(name: &str, value: &str) -> usize {
    name.len().saturating_add(value.len()).saturating_add(4)
}

/// The first budget whose paths match the request's (canonical) path; the
/// first header, as the backend would receive it after `edits`, over it.
pub fn check(
    budgets: &[HeaderBudget],
    request: &RequestView,
    edits: &HeaderEdits,
) -> Option<Oversized> {
    if budgets.is_empty() {
        return None;
    }
    let path = request.canonical_path();
    let budget = budgets
        .iter()
        .find(|budget| budget.paths.iter().any(|pattern| pattern.is_match(path)))?;
    let replaced = |name: &str| {
        edits.remove.iter().any(|removed| removed == name)
            || edits.set.iter().any(|(set, _)| set == name)
    };
    let kept = request.headers.iter().filter(|(name, _)| !replaced(name));
    let set = edits
        .set
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    // `:authority` reaches an HTTP/1.1 backend as `Host`.
    let host = std::iter::once(("host", request.authority.as_str()));
    host.chain(kept)
        .chain(set)
        .map(|(name, value)| (name, line_bytes(name, value)))
        .find(|(_, bytes)| *bytes > budget.max_header_bytes)
        .map(|(name, bytes)| Oversized {
            name: name.to_string(),
            bytes,
            max_header_bytes: budget.max_header_bytes,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn budgets(max: usize) -> Vec<HeaderBudget> {
        validate(vec![RawHeaderBudget {
            paths: vec!["^/jupyter/".into()],
            max_header_bytes: max,
        }])
        .unwrap()
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestView {
        crate::testutil::get_request("kubeflow.example.com", path, headers)
    }

    #[test]
    fn a_line_counts_name_separator_value_and_crlf() {
        // gunicorn: len("Cookie: " + value) + len("\r\n").
        assert_eq!(line_bytes("cookie", "a=1"), "cookie: a=1\r\n".len());
        let limit = 8190;
        let fits = "x".repeat(limit - 4 - "x-big".len());
        let view = request("/jupyter/", &[("x-big", &fits)]);
        assert_eq!(check(&budgets(limit), &view, &HeaderEdits::default()), None);
        let over = format!("{fits}y");
        let view = request("/jupyter/", &[("x-big", &over)]);
        assert_eq!(
            check(&budgets(limit), &view, &HeaderEdits::default()),
            Some(Oversized {
                name: "x-big".into(),
                bytes: 8191,
                max_header_bytes: limit
            })
        );
    }

    #[test]
    fn what_goes_upstream_is_measured_after_the_edits() {
        let big = "v".repeat(1000);
        let view = request("/jupyter/lab", &[("cookie", &big), ("x-small", "1")]);
        // The big cookie was rewritten (session shield) or removed: fits.
        let rewritten = HeaderEdits {
            remove: vec!["cookie".into()],
            set: vec![("cookie".into(), "a=1".into())],
            ..HeaderEdits::default()
        };
        assert_eq!(check(&budgets(512), &view, &rewritten), None);
        let removed = HeaderEdits {
            remove: vec!["cookie".into()],
            ..HeaderEdits::default()
        };
        assert_eq!(check(&budgets(512), &view, &removed), None);
        // Untouched: too large, named.
        let found = check(&budgets(512), &view, &HeaderEdits::default()).unwrap();
        assert_eq!(found.name, "cookie");
        assert_eq!(found.bytes, 1010);
        assert!(!found.detail().contains(&big));
        // A header kfauth sets (e.g. a long kubeflow-groups) counts too.
        let groups = HeaderEdits {
            set: vec![("kubeflow-groups".into(), big.clone())],
            ..HeaderEdits::default()
        };
        let view = request("/jupyter/", &[]);
        assert_eq!(
            check(&budgets(512), &view, &groups).unwrap().name,
            "kubeflow-groups"
        );
    }

    #[test]
    fn only_the_budgets_paths_are_checked() {
        let big = "v".repeat(1000);
        let view = request("/pipeline/", &[("x-big", &big)]);
        assert_eq!(check(&budgets(512), &view, &HeaderEdits::default()), None);
        let view = request("//jupyter/./x", &[("x-big", &big)]);
        assert!(check(&budgets(512), &view, &HeaderEdits::default()).is_some());
        assert_eq!(check(&[], &view, &HeaderEdits::default()), None);
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let bad = |paths: Vec<&str>, max| {
            validate(vec![RawHeaderBudget {
                paths: paths.into_iter().map(String::from).collect(),
                max_header_bytes: max,
            }])
            .unwrap_err()
            .field
        };
        assert_eq!(bad(vec![], 8190), "headerBudgets[0].paths");
        assert_eq!(bad(vec!["("], 8190), "headerBudgets[0].paths[0]");
        assert_eq!(bad(vec!["^/"], 10), "headerBudgets[0].maxHeaderBytes");
    }
}
