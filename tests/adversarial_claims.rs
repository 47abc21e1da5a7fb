//! Claim games, each on a correctly signed token:
//! - `exp`/`nbf`/`iat` a string, a bool, an object, null, negative → 401 token_malformed;
//! - `exp` missing → token_malformed; `nbf`/`iat` missing → passes;
//! - fractional NumericDates (RFC 7519 section 2 allows them) → read to the
//!   second below: a valid one passes, an expired one is token_expired;
//! - 1e300 or anything from 2^32 s (2106) on → token_malformed;
//! - issuer near-misses (case, trailing slash, whitespace, missing) → issuer_unknown;
//!   an array or a number → token_malformed;
//! - audience near-misses (substring, superstring, case, missing, empty array,
//!   array without a match) → audience_mismatch; a number or a list holding
//!   a non-string → token_malformed.

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
use kfauth_testkit::idp::now;
use kfauth_testkit::plugin_config::ISSUER;
use kfauth_testkit::{scenarios, Gateway};
use serde_json::{json, Value};

fn sign(claims: &Value) -> String {
    Signer::shared().sign_standard("RS256", claims)
}

fn time_claims_of_the_wrong_type(g: &Gateway) {
    for name in ["exp", "nbf", "iat"] {
        for value in [
            json!("2099-01-01"),
            json!(true),
            json!({"t": 1}),
            json!(null),
        ] {
            let mut claims = valid();
            claims[name] = value;
            rejects(g, &sign(&claims), "token_malformed");
        }
    }
}

fn exp_missing(g: &Gateway) {
    rejects(g, &sign(&without("exp")), "token_malformed");
}

fn nbf_and_iat_missing_pass(g: &Gateway) {
    let mut claims = without("iat");
    claims.as_object_mut().unwrap().remove("nbf");
    accepts_as(g, &sign(&claims), "alice@example.com");
}

fn negative_times(g: &Gateway) {
    for name in ["exp", "nbf", "iat"] {
        rejects(g, &sign(&with(json!({name: -1}))), "token_malformed");
    }
}

fn fractional_times_are_read_to_the_second(g: &Gateway) {
    let now = now() as f64;
    accepts_as(
        g,
        &sign(&with(
            json!({"exp": now + 3600.75, "iat": now - 0.5, "nbf": now - 10.25}),
        )),
        "alice@example.com",
    );
    rejects(
        g,
        &sign(&with(json!({"exp": now - 3600.5, "iat": now - 7200.5}))),
        "token_expired",
    );
    rejects(
        g,
        &sign(&with(json!({"nbf": now + 3600.5}))),
        "token_not_yet_valid",
    );
}

fn huge_times(g: &Gateway) {
    for name in ["exp", "nbf", "iat"] {
        rejects(g, &sign(&with(json!({name: 1e300}))), "token_malformed");
    }
    // 2^32 s, where jwt-simple's clock saturates.
    rejects(
        g,
        &sign(&with(json!({"exp": 4_294_967_296_u64}))),
        "token_malformed",
    );
    rejects(
        g,
        &sign(&with(json!({"exp": 18_446_744_073_709_551_615_u64}))),
        "token_malformed",
    );
}

fn issuer_near_misses(g: &Gateway) {
    for iss in [
        ISSUER.to_uppercase(),
        "https://IDP.kfauth.test".to_string(),
        format!("{ISSUER}/"),
        format!(" {ISSUER}"),
        format!("{ISSUER}\t"),
        format!("{ISSUER}#"),
        "http://idp.kfauth.test".to_string(),
    ] {
        rejects(g, &sign(&with(json!({"iss": iss}))), "issuer_unknown");
    }
    rejects(g, &sign(&without("iss")), "issuer_unknown");
}

fn issuer_of_the_wrong_type(g: &Gateway) {
    for iss in [
        json!([ISSUER]),
        json!(1),
        json!(null),
        json!({"iss": ISSUER}),
    ] {
        rejects(g, &sign(&with(json!({"iss": iss}))), "token_malformed");
    }
}

fn audience_near_misses(g: &Gateway) {
    for aud in [
        json!("kube"),
        json!("kubeflow-x"),
        json!("Kubeflow"),
        json!(" kubeflow"),
        json!([]),
        json!(["kube", "flow", "kubeflow "]),
    ] {
        rejects(g, &sign(&with(json!({"aud": aud}))), "audience_mismatch");
    }
    rejects(g, &sign(&without("aud")), "audience_mismatch");
}

fn audience_of_the_wrong_type(g: &Gateway) {
    for aud in [
        json!(5),
        json!(["kubeflow", 5]),
        json!({"kubeflow": true}),
        json!(null),
    ] {
        rejects(g, &sign(&with(json!({"aud": aud}))), "token_malformed");
    }
}

fn one_matching_audience_in_a_list_passes(g: &Gateway) {
    accepts_as(
        g,
        &sign(&with(json!({"aud": ["other", "kubeflow"]}))),
        "alice@example.com",
    );
}

#[test]
fn claim_games() {
    let gateway = start(json!({}), json!({}));
    scenarios!(
        &gateway,
        [
            time_claims_of_the_wrong_type,
            exp_missing,
            nbf_and_iat_missing_pass,
            negative_times,
            fractional_times_are_read_to_the_second,
            huge_times,
            issuer_near_misses,
            issuer_of_the_wrong_type,
            audience_near_misses,
            audience_of_the_wrong_type,
            one_matching_audience_in_a_list_passes,
        ]
    );
    explain_agrees(&gateway);
}
