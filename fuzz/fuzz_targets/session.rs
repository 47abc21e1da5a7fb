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
use kfauth::request::RequestView;
use kfauth::session::apply;
use kfauth_fuzz::cookies::{assert_rewritten, name_of, pairs_of, Input};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 6] = [
    "/jupyter/",
    "/oauth2/callback?code=1",
    "//oauth2/sign_out",
    "/%6Fauth2/start",
    "/x/oauth2/",
    "/",
];

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
    let Some(input) = Input::parse(data) else {
        return;
    };
    let flags = input.flags;
    let names = input.name_list();
    let max = 256 + 64 * usize::from(input.size);
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
        headers: input
            .cookie_headers
            .iter()
            .map(|cookie| ("cookie".to_string(), cookie.clone()))
            .collect(),
        ..RequestView::default()
    };
    let prior = input.prior_edits();
    let mut edits = prior.clone();
    apply(&config.session, &request, &mut edits);

    let current = input.current();
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
        assert_eq!(
            edits.session_cookie_bytes,
            removed.iter().map(|pair| pair.len()).sum::<usize>()
        );
        assert_rewritten(&prior, &edits, &kept, |name| is_session(&names, name));
    }

    // The budget, on what goes upstream.
    let upstream: Vec<(&str, &str)> = if edits.remove.iter().any(|n| n == "cookie") {
        edits
            .set
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    } else {
        request.headers.iter().collect()
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
