//! kfauth's metrics in Envoy's admin statistics, summed over four workers
//! (Envoy may prefix the names, e.g. `wasmcustom.`; lookups match the end):
//! - `kfauth.jwt.allowed` counts tokens that passed;
//! - `kfauth.jwt.denied` counts refusals, and `kfauth.jwt.denied.<reason>`
//!   counts them by reason word;
//! - `kfauth.jwks.fetch_success` counts key fetches (`fetch_failed` stays at
//!   0 while the endpoint is healthy);
//! - the gauge `kfauth.jwks.age_seconds.<issuer, non-alphanumerics as _>`
//!   tells how old an issuer's keys are, and grows as they age;
//! - `/stats/prometheus` carries the same metrics.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kfauth_testkit::forge::replace_payload;
use kfauth_testkit::idp::{now, standard_claims};
use kfauth_testkit::plugin_config::{claims, uri_rule, with_rules, ISSUER};
use kfauth_testkit::stats::{issuer_metric_suffix, prometheus_samples};
use kfauth_testkit::{expect, Alg, Gateway, Idp, JwksServer};
use serde_json::json;

const ALLOWED: u64 = 6;
const EXPIRED: u64 = 3;
const WRONG_AUDIENCE: u64 = 2;
const TAMPERED: u64 = 1;
const DENIED: u64 = EXPIRED + WRONG_AUDIENCE + TAMPERED;

#[test]
fn metrics_count_decisions_and_fetches() {
    let idp = Idp::shared();
    let jwks = JwksServer::start(&idp.jwks_json());
    let port = jwks.port();
    let gateway = Gateway::start_with(
        with_rules(vec![uri_rule(ISSUER, &jwks.uri())], json!({})),
        |s| s.with_jwks_cluster(port).with_concurrency(4),
    );
    let send = |token: &str| gateway.get_bearer_fresh("/echo", token);

    let good = idp.sign(Alg::RS256, &claims("alice@example.com", &["a"]));
    for _ in 0..ALLOWED {
        expect::allowed(&send(&good));
    }
    let mut expired = claims("alice@example.com", &[]);
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    for _ in 0..EXPIRED {
        expect::rejected(&send(&idp.sign(Alg::ES256, &expired)), "token_expired");
    }
    let other_audience = standard_claims(ISSUER, "someone-else", "alice@example.com", &[]);
    for _ in 0..WRONG_AUDIENCE {
        expect::rejected(
            &send(&idp.sign(Alg::RS256, &other_audience)),
            "audience_mismatch",
        );
    }
    let tampered = replace_payload(&good, &claims("mallory@example.com", &["admin"]));
    expect::rejected(&send(&tampered), "signature_invalid");

    let stats = gateway.stats();
    let kfauth = stats.containing("kfauth.j");
    eprintln!("kfauth statistics: {kfauth:?}");
    let get = |name: &str| {
        stats
            .get(name)
            .unwrap_or_else(|| panic!("no statistic {name}; kfauth's are {kfauth:?}"))
    };
    assert!(get("kfauth.jwt.allowed") >= ALLOWED, "{kfauth:?}");
    assert!(get("kfauth.jwt.denied") >= DENIED, "{kfauth:?}");
    assert_eq!(
        get("kfauth.jwt.denied.token_expired"),
        EXPIRED,
        "{kfauth:?}"
    );
    assert_eq!(
        get("kfauth.jwt.denied.audience_mismatch"),
        WRONG_AUDIENCE,
        "{kfauth:?}"
    );
    assert_eq!(
        get("kfauth.jwt.denied.signature_invalid"),
        TAMPERED,
        "{kfauth:?}"
    );
    assert_eq!(stats.counter("kfauth.jwt.denied.key_unknown"), 0);
    assert!(get("kfauth.jwks.fetch_success") >= 1, "{kfauth:?}");
    assert_eq!(stats.counter("kfauth.jwks.fetch_failed"), 0, "{kfauth:?}");
    let age_gauge = format!("kfauth.jwks.age_seconds.{}", issuer_metric_suffix(ISSUER));
    let age = get(&age_gauge);
    assert!(
        age < 600,
        "the keys were fetched moments ago, yet {age_gauge} = {age}"
    );
    // The gauge follows the keys' age.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut later = age;
    while later <= age && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        later = gateway.stats().counter(&age_gauge);
    }
    assert!(later > age, "{age_gauge} stayed at {age} for 5 s");

    let prometheus = gateway.prometheus();
    for (name, at_least) in [
        ("kfauth.jwt.allowed", ALLOWED),
        ("kfauth.jwt.denied.token_expired", EXPIRED),
        ("kfauth.jwks.fetch_success", 1),
    ] {
        let samples = prometheus_samples(&prometheus, name);
        assert!(
            samples.iter().any(|(_, value)| *value >= at_least as f64),
            "/stats/prometheus has no {name} >= {at_least}: {samples:?}; kfauth lines: {:?}",
            prometheus
                .lines()
                .filter(|line| line.contains("kfauth"))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        !prometheus_samples(&prometheus, &age_gauge).is_empty(),
        "/stats/prometheus has no {age_gauge}"
    );
}
