//! A pluginConfig kfauth does not fully understand is refused: Envoy does not
//! serve it, and kfauth's log line names the offending field:
//! - an unknown top-level field, and an unknown field in a rule;
//! - a skipPaths entry that is not a regex;
//! - a rule with both `jwks` and `jwksUri`, or with neither;
//! - an inline `jwks` that does not parse;
//! - a duration that does not parse;
//! - a pluginConfig that is not a JSON object.
//!
//! A minimal valid config, by contrast, is served.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::plugin_config::{inline_rule, merge, with_rules, ISSUER};
use kfauth_testkit::{envoy, expect, Gateway, Idp};
use serde_json::{json, Value};

fn good_rule() -> Value {
    inline_rule(ISSUER, Idp::shared())
}

/// Starts Envoy with `config`, expects it refused, and expects a kfauth log
/// line naming every one of `fields`.
fn refused_naming(config: Value, fields: &[&str]) {
    let logs = Gateway::start_expect_rejected(config.clone());
    let lines = envoy::wasm_lines(&logs);
    assert!(
        lines
            .iter()
            .any(|line| fields.iter().all(|field| line.contains(field))),
        "no kfauth log line names {fields:?} for config {config}\nkfauth log lines: {lines:#?}"
    );
}

#[test]
fn unknown_top_level_field() {
    refused_naming(
        with_rules(vec![good_rule()], json!({"requireJWT": true})),
        &["requireJWT"],
    );
}

#[test]
fn unknown_rule_field() {
    let mut rule = good_rule();
    merge(&mut rule, json!({"jwks_uri": "http://127.0.0.1:1/keys"}));
    refused_naming(with_rules(vec![rule], json!({})), &["jwks_uri"]);
}

#[test]
fn skip_path_that_is_not_a_regex() {
    refused_naming(
        with_rules(
            vec![good_rule()],
            json!({"skipPaths": ["^/dex/", "^/oauth2/(" ]}),
        ),
        &["skipPaths"],
    );
}

#[test]
fn rule_with_both_jwks_and_jwks_uri() {
    let mut rule = good_rule();
    merge(&mut rule, json!({"jwksUri": "http://127.0.0.1:9/keys"}));
    refused_naming(with_rules(vec![rule], json!({})), &["jwksUri"]);
}

#[test]
fn rule_with_neither_jwks_nor_jwks_uri_and_no_url_issuer_for_discovery() {
    // Without jwks/jwksUri the keys come from OpenID discovery, which needs an
    // http(s) issuer.
    let mut rule = good_rule();
    rule.as_object_mut().unwrap().remove("jwks");
    rule["issuer"] = json!("dex");
    refused_naming(with_rules(vec![rule], json!({})), &["jwtRules[0].issuer"]);
}

#[test]
fn inline_jwks_that_does_not_parse() {
    let mut rule = good_rule();
    rule["jwks"] = json!("{\"keys\": [");
    refused_naming(with_rules(vec![rule], json!({})), &["jwks"]);
}

#[test]
fn duration_that_does_not_parse() {
    refused_naming(
        with_rules(vec![good_rule()], json!({"clockSkew": "a minute"})),
        &["clockSkew"],
    );
    let mut rule = good_rule();
    merge(&mut rule, json!({"timeout": "5 parsecs"}));
    refused_naming(with_rules(vec![rule], json!({})), &["timeout"]);
}

#[test]
fn plugin_config_that_is_not_an_object() {
    let logs = Gateway::start_expect_rejected(json!("jwtRules: []"));
    assert!(
        !envoy::wasm_lines(&logs).is_empty(),
        "kfauth should say why it refused a pluginConfig that is a JSON string"
    );
}

#[test]
fn minimal_valid_config_is_served() {
    let rule = json!({"issuer": ISSUER, "jwks": Idp::shared().jwks_json()});
    let gateway = Gateway::start(with_rules(vec![rule], json!({})));
    expect::allowed(&gateway.get("/echo", &[]));
}
