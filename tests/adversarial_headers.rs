//! Header games: the identity a backend reads is exactly the verified one,
//! and a request whose token is ambiguous is refused.
//! - identity headers sent by the client in any case, repeated, or spelled
//!   with `_` for `-` (`kubeflow_userid`, `Kubeflow_Groups`: CGI/WSGI servers
//!   read them as the same variable) never reach the upstream, with or
//!   without a token, on a skipped path too;
//! - a mapped claim holding CR/LF, NUL, a tab, DEL, a C1 control, or
//!   whitespace at either end (a space, NBSP) → 401 token_malformed (never a
//!   split header, never an identity a backend reads differently once it
//!   trims the value); non-ASCII text passes as UTF-8 (`unicode_claims.rs`);
//! - two different tokens (two `Authorization` headers, a header and the
//!   query parameter, the parameter twice) → 401 token_malformed; the same
//!   token in the header and the parameter passes and is removed from both;
//! - the scheme is case-insensitive (`bearer`, `BEARER`, RFC 7235 section 2.1),
//!   more spaces after it pass (`1*SP`); a tab is not a separator: no bearer
//!   token → 401 token_missing.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod adversarial_support;

use adversarial_support::*;
use kfauth_testkit::forge::Signer;
use kfauth_testkit::{expect, scenarios, Echoed, Gateway};
use serde_json::json;

fn token() -> String {
    Signer::shared().sign_standard("ES256", &valid())
}

fn token_for(email: &str) -> String {
    Signer::shared().sign_standard("ES256", &with(json!({"email": email})))
}

const SPOOFED: [(&str, &str); 8] = [
    ("Kubeflow-Userid", "admin@example.com"),
    ("KUBEFLOW-USERID", "root@example.com"),
    ("kubeflow_userid", "admin@example.com"),
    ("KUBEFLOW_USERID", "admin@example.com"),
    ("Kubeflow_Groups", "system:masters"),
    ("kubeflow_groups", "cluster-admins"),
    ("X-Jwt_Payload", "eyJlbWFpbCI6InJvb3QifQ"),
    ("x_unrelated", "kept"),
];

/// No header the upstream received reads, after `_` → `-` and lower-casing,
/// as an identity header, except the verified `expected` ones.
fn assert_identity(seen: &Echoed, expected: &[(&str, &str)]) {
    let identity = ["kubeflow-userid", "kubeflow-groups", "x-jwt-payload"];
    let received: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(name, _)| {
            identity.contains(&name.to_ascii_lowercase().replace('_', "-").as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(received, expected, "identity headers at the upstream");
}

fn spoofed_with(g: &Gateway, path: &str, bearer: Option<&str>) -> Echoed {
    let authorization = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = SPOOFED.to_vec();
    if let Some(authorization) = &authorization {
        headers.push(("Authorization", authorization));
    }
    expect::allowed(&get_verbatim(g, path, &headers))
}

fn spoofed_identity_on_a_skipped_path(g: &Gateway) {
    let seen = spoofed_with(g, "/public/x", None);
    assert_identity(&seen, &[]);
    assert_eq!(seen.header_values("x_unrelated"), vec!["kept"]);
}

fn spoofed_identity_beside_a_valid_token(g: &Gateway) {
    let token = token();
    let seen = spoofed_with(g, "/echo", Some(&token));
    let payload = token.split('.').nth(1).unwrap().to_string();
    assert_identity(
        &seen,
        &[
            ("kubeflow-userid", "alice@example.com"),
            ("kubeflow-groups", "team-a"),
            ("x-jwt-payload", &payload),
        ],
    );
    assert_eq!(seen.header_values("x_unrelated"), vec!["kept"]);
}

fn control_characters_in_a_mapped_claim(g: &Gateway) {
    for email in [
        "alice@example.com\r\nkubeflow-groups: admins",
        "alice@example.com\nx: y",
        "alice@example.com\r",
        "alice\u{0}@example.com",
        "alice\t@example.com",
        "alice\u{7f}@example.com",
        "alice\u{85}@example.com",
    ] {
        rejects(g, &token_for(email), "token_malformed");
    }
    let mut groups = valid();
    groups["groups"] = json!(["team-a", "admins\r\nkubeflow-userid: root"]);
    rejects(
        g,
        &Signer::shared().sign_standard("ES256", &groups),
        "token_malformed",
    );
}

fn whitespace_around_a_mapped_claim(g: &Gateway) {
    for email in [
        "admin@example.com ",
        " admin@example.com",
        "admin@example.com\t",
        "admin@example.com\u{a0}",
    ] {
        rejects(g, &token_for(email), "token_malformed");
    }
}

fn two_authorization_headers(g: &Gateway) {
    let good = token();
    let forged = token_for("root@example.com");
    for (first, second) in [(&good, &forged), (&forged, &good), (&good, &good)] {
        let response = get_verbatim(
            g,
            "/echo",
            &[
                ("Authorization", &format!("Bearer {first}")),
                ("Authorization", &format!("Bearer {second}")),
            ],
        );
        expect::rejected(&response, "token_malformed");
    }
}

fn header_and_query_parameter_disagree(g: &Gateway) {
    let good = token();
    let forged = token_for("root@example.com");
    let response = get(
        g,
        &format!("/echo?access_token={forged}"),
        &[("authorization", &format!("Bearer {good}"))],
    );
    expect::rejected(&response, "token_malformed");
    let response = get(
        g,
        &format!("/echo?access_token={good}&access_token={forged}"),
        &[],
    );
    expect::rejected(&response, "token_malformed");
}

fn the_same_token_in_header_and_parameter(g: &Gateway) {
    let good = token();
    let response = get(
        g,
        &format!("/echo?a=1&access_token={good}"),
        &[("authorization", &format!("Bearer {good}"))],
    );
    let seen = expect::allowed(&response);
    assert_eq!(seen.path, "/echo?a=1");
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
}

fn scheme_in_any_case(g: &Gateway) {
    let good = token();
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let response = get_verbatim(
            g,
            "/echo",
            &[("Authorization", &format!("{scheme} {good}"))],
        );
        let seen = expect::allowed(&response);
        assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    }
}

fn more_spaces_after_the_scheme(g: &Gateway) {
    let good = token();
    let response = get_verbatim(
        g,
        "/echo",
        &[("Authorization", &format!("Bearer   {good}"))],
    );
    assert_eq!(
        expect::allowed(&response).header("kubeflow-userid"),
        Some("alice@example.com")
    );
}

fn a_tab_is_not_the_separator(g: &Gateway) {
    let good = token();
    let response = get_verbatim(g, "/echo", &[("Authorization", &format!("Bearer\t{good}"))]);
    expect::token_missing(&response);
    let response = get_verbatim(g, "/echo", &[("Authorization", &format!("Bearer{good}"))]);
    expect::token_missing(&response);
}

#[test]
fn header_games() {
    let gateway = start(
        json!({"fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}],
               "fromParams": ["access_token"],
               "outputPayloadToHeader": "x-jwt-payload"}),
        json!({"requireJwt": true, "skipPaths": ["^/public/"]}),
    );
    scenarios!(
        &gateway,
        [
            spoofed_identity_on_a_skipped_path,
            spoofed_identity_beside_a_valid_token,
            control_characters_in_a_mapped_claim,
            whitespace_around_a_mapped_claim,
            two_authorization_headers,
            header_and_query_parameter_disagree,
            the_same_token_in_header_and_parameter,
            scheme_in_any_case,
            more_spaces_after_the_scheme,
            a_tab_is_not_the_separator,
        ]
    );
    explain_agrees(&gateway);
}
