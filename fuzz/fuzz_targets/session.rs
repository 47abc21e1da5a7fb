//! The session shield (`session::apply`) and the header budget
//! (`header_budget::check`) on what it leaves.
//!
//! Input: a flags byte (path: bits 0-2, what token removal already did: bits
//! 6-7), a budget byte (maxHeaderBytes = 256 + 64 x byte), then text: the first
//! line lists the session cookie names (`,`-separated; empty: the default,
//! `oauth2_proxy_kubeflow`), each further line is a Cookie header (with "set
//! by token removal", the last line is the Cookie that removal left).
//! Invariants: no panic; on an exempt path nothing changes; elsewhere every
//! cookie-pair (RFC 6265 section 4.2.1) whose name is a session name, or a
//! session name, `_` and ASCII digits, is gone, every other pair is kept byte
//! for byte and in order (no empty header is set), and the removed bytes are
//! counted; the budget answers exactly when a header line (`name: value` and
//! CRLF) that goes upstream is over it, and names that header.
#![no_main]

use kfauth::config::Config;
use kfauth::header_budget::{check, line_bytes};
use kfauth::outcome::HeaderEdits;
use kfauth::request::RequestView;
use kfauth::session::apply;
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 6] = [
    "/jupyter/",
    "/oauth2/callback?code=1",
    "//oauth2/sign_out",
    "/%6Fauth2/start",
    "/x/oauth2/",
    "/",
];

/// RFC 6265's OWS: SP and HTAB.
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

fn pairs_of(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(';')
        .map(trim_ows)
        .filter(|pair| !pair.is_empty())
}

fn name_of(pair: &str) -> &str {
    trim_ows(pair.split_once('=').map_or(pair, |(name, _)| name))
}

/// An independent statement of the rule: `NAME`, or `NAME_` then digits.
fn is_session(names: &[&str], name: &str) -> bool {
    names.iter().any(|session| {
        name == *session
            || (name.len() > session.len() + 1
                && name.starts_with(&format!("{session}_"))
                && name[session.len() + 1..]
                    .chars()
                    .all(|c| c.is_ascii_digit()))
    })
}

fuzz_target!(|data: &[u8]| {
    let [flags, budget, rest @ ..] = data else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let names: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|name| !name.is_empty())
        .collect();
    let mut cookie_headers: Vec<&str> = lines.collect();
    let prior_set = match flags >> 6 {
        0 | 1 => None,
        2 => Some(None),
        _ => Some(Some(cookie_headers.pop().unwrap_or_default())),
    };
    let max = 256 + 64 * usize::from(*budget);
    let mut config = serde_json::json!({
        "jwtRules": [{"issuer": "https://issuer.example.test", "jwksUri": "https://issuer.example.test/keys"}],
        "headerBudgets": [{"paths": ["^/"], "maxHeaderBytes": max}],
    });
    if !names.is_empty() {
        config["session"] = serde_json::json!({"cookies": names});
    }
    let config = match Config::parse(config.to_string().as_bytes()) {
        Ok(config) => config,
        Err(error) => {
            assert!(error.field.starts_with("session.cookies["), "{error:?}");
            return;
        }
    };
    let names = if names.is_empty() {
        vec!["oauth2_proxy_kubeflow"]
    } else {
        names
    };
    let path = PATHS[usize::from(flags & 7) % PATHS.len()];
    let request = RequestView {
        method: "GET".into(),
        path: path.into(),
        authority: "kubeflow.example.test".into(),
        headers: cookie_headers
            .iter()
            .map(|cookie| ("cookie".to_string(), cookie.to_string()))
            .collect(),
        ..RequestView::default()
    };
    let prior = match prior_set {
        None => HeaderEdits::default(),
        Some(None) => HeaderEdits {
            remove: vec!["cookie".into()],
            ..HeaderEdits::default()
        },
        Some(Some(cookie)) => HeaderEdits {
            remove: vec!["cookie".into()],
            set: vec![
                ("x-other".into(), "1".into()),
                ("cookie".into(), cookie.to_string()),
            ],
            ..HeaderEdits::default()
        },
    };
    let mut edits = prior.clone();
    apply(&config.session, &request, &mut edits);

    let current: Vec<String> = match prior_set {
        None => cookie_headers.iter().map(|c| c.to_string()).collect(),
        Some(None) => vec![],
        Some(Some(cookie)) => vec![cookie.to_string()],
    };
    let exempt = path.starts_with("/oauth2/")
        || path.starts_with("//oauth2/")
        || path.starts_with("/%6Fauth2/");
    let pairs: Vec<&str> = current.iter().flat_map(|header| pairs_of(header)).collect();
    let (removed, kept): (Vec<&str>, Vec<&str>) = pairs
        .iter()
        .copied()
        .partition(|pair| is_session(&names, name_of(pair)));
    if exempt || removed.is_empty() {
        assert_eq!(edits, prior, "changed cookies it should have left alone");
    } else {
        assert!(edits.remove.iter().any(|name| name == "cookie"));
        assert_eq!(
            edits.session_cookie_bytes,
            removed.iter().map(|pair| pair.len()).sum::<usize>()
        );
        let others: Vec<_> = prior.set.iter().filter(|(n, _)| n != "cookie").collect();
        let set_others: Vec<_> = edits.set.iter().filter(|(n, _)| n != "cookie").collect();
        assert_eq!(set_others, others);
        let cookies: Vec<&str> = edits
            .set
            .iter()
            .filter(|(name, _)| name == "cookie")
            .map(|(_, value)| value.as_str())
            .collect();
        if kept.is_empty() {
            assert!(cookies.is_empty(), "an empty Cookie header was set");
        } else {
            assert_eq!(cookies.len(), 1, "{cookies:?}");
            let sent: Vec<&str> = cookies[0].split("; ").collect();
            assert_eq!(sent, kept, "kept cookies changed");
            for pair in pairs_of(cookies[0]) {
                assert!(
                    !is_session(&names, name_of(pair)),
                    "a session cookie is left: {pair}"
                );
            }
        }
    }

    // The budget, on what goes upstream.
    let upstream: Vec<(&str, &str)> = if edits.remove.iter().any(|n| n == "cookie") {
        edits
            .set
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    } else {
        request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    };
    let over = std::iter::once(("host", request.authority.as_str()))
        .chain(upstream)
        .find(|(name, value)| line_bytes(name, value) > max);
    let found = check(&config.header_budgets, &request, &edits);
    assert_eq!(
        found.as_ref().map(|o| o.name.as_str()),
        over.map(|(n, _)| n)
    );
    if let Some(oversized) = found {
        assert!(oversized.bytes > max && oversized.max_header_bytes == max);
    }
});
