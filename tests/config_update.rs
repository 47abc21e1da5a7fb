//! A configuration update while Envoy serves, as Istio pushes one for every
//! change to a WasmPlugin's `pluginConfig`: a listener update (LDS, here from
//! a watched file) whose kfauth filter has a new configuration and the same
//! module and `vm_config`. Envoy keeps the worker's VM and creates a second
//! root context in it with the new configuration; connections opened before
//! the update stay on the old filter chain, and so on the old root, until
//! they close. kfauth must send each request to the root context it belongs
//! to (`src/host/exports.rs`):
//! - before the update, configuration A (issuer A's rule only): a token of
//!   issuer A is allowed, one of issuer B is `issuer_unknown`;
//! - after it, on new connections, configuration B (issuer B's rule only):
//!   the other way round;
//! - on a connection opened before the update, still configuration A;
//! - the VM was kept (as many VMs alive after the update as before, while
//!   the kept connection still used the old configuration): both roots lived
//!   in one VM.
//!
//! Istio sends a WasmPlugin as an ECDS extension configuration instead, which
//! Envoy uses for the requests that start after it: the third test updates
//! the filter by ECDS (from a watched file) while a request under the old
//! configuration waits for its issuer's keys, and that request still
//! finishes under the old configuration when they come, while new requests,
//! on the same connection too, get the new one. Envoy deletes the old root of
//! the main thread's VM at the update; when that VM held the fetch's lease,
//! the fetch was lost with it and the waiting request got 503 after the
//! rule's timeout, until a retired configuration handed its leases on.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kfauth_testkit::bootstrap::EnvoySettings;
use kfauth_testkit::client::{send_fresh, Connection, Request};
use kfauth_testkit::echo::EchoServer;
use kfauth_testkit::idp::standard_claims;
use kfauth_testkit::plugin_config::{
    claims, inline_rule, other_rule, uri_rule, with_rules, ISSUER, OTHER_AUDIENCE, OTHER_ISSUER,
};
use kfauth_testkit::{expect, Alg, Envoy, HttpResponse, Idp, JwksMode, JwksServer};
use serde_json::{json, Value};

fn config_a() -> Value {
    with_rules(vec![inline_rule(ISSUER, Idp::shared())], json!({}))
}

fn config_b() -> Value {
    let rule_b = other_rule(json!([{"header": "kubeflow-userid", "claim": "email"}]));
    with_rules(vec![rule_b], json!({}))
}

fn token_a() -> String {
    Idp::shared().sign(Alg::RS256, &claims("alice@example.com", &[]))
}

fn token_b() -> String {
    let claims = standard_claims(OTHER_ISSUER, OTHER_AUDIENCE, "bea@other.test", &[]);
    Idp::shared_second().sign(Alg::RS256, &claims)
}

fn request(token: &str) -> Request {
    Request::new("GET", "kubeflow.example.com", "/echo").bearer(token)
}

/// Who a configuration lets in: `allowed` is that configuration's user.
fn judged_by(response_a: &HttpResponse, response_b: &HttpResponse, allowed: &str) {
    let (allowed_response, refused) = match allowed {
        "alice@example.com" => (response_a, response_b),
        _ => (response_b, response_a),
    };
    let seen = expect::allowed(allowed_response);
    assert_eq!(seen.header("kubeflow-userid"), Some(allowed));
    expect::rejected(refused, "issuer_unknown");
}

/// Wasm VMs alive in Envoy (`wasm.envoy.wasm.runtime.v8.active`). Envoy
/// also makes and drops a VM on the main thread for each new configuration
/// (`...created` moves by one), which is why `created` is not the measure.
fn vms_alive(envoy: &Envoy) -> u64 {
    envoy
        .stats()
        .get("wasm.envoy.wasm.runtime.v8.active")
        .expect("Envoy's count of live Wasm VMs")
}

#[test]
fn a_configuration_update_applies_to_new_connections_and_old_ones_finish_on_the_old() {
    let echo = EchoServer::start();
    // One worker, so the kept connection and the new ones meet the same VM;
    // a long drain, so the kept connection is not closed during the test.
    let settings = |config: Value| {
        EnvoySettings::for_test(config, echo.port())
            .with_concurrency(1)
            .with_listener_file()
            .with_args(&["--drain-time-s", "3600"])
    };
    let envoy = Envoy::start(&settings(config_a()));
    let mut kept = Connection::new(envoy.port());
    judged_by(
        &kept.send(&request(&token_a())),
        &kept.send(&request(&token_b())),
        "alice@example.com",
    );
    let alive = vms_alive(&envoy);

    envoy.update_listener(&settings(config_b()));
    until_allowed(envoy.port(), &token_b());

    judged_by(
        &send_fresh(envoy.port(), &request(&token_a())),
        &send_fresh(envoy.port(), &request(&token_b())),
        "bea@other.test",
    );
    judged_by(
        &kept.send(&request(&token_a())),
        &kept.send(&request(&token_b())),
        "alice@example.com",
    );
    assert_eq!(kept.reconnects(), 0, "the kept connection was closed");
    // A new VM for the update would be alive beside the one the kept
    // connection still uses.
    assert_eq!(
        vms_alive(&envoy),
        alive,
        "Envoy made a new VM for the update; the two roots did not share one"
    );
}

/// The old configuration's root context goes once its filter chain has
/// drained (Envoy deletes it in the VM); the VM goes on with the new one, and
/// takes a third.
#[test]
fn a_drained_configuration_leaves_and_the_next_update_still_applies() {
    let echo = EchoServer::start();
    let settings = |config: Value| {
        EnvoySettings::for_test(config, echo.port())
            .with_concurrency(1)
            .with_listener_file()
            .with_args(&["--drain-time-s", "1"])
    };
    let envoy = Envoy::start(&settings(config_a()));
    let alive = vms_alive(&envoy);
    let fresh = |token: &str| send_fresh(envoy.port(), &request(token));
    judged_by(&fresh(&token_a()), &fresh(&token_b()), "alice@example.com");

    envoy.update_listener(&settings(config_b()));
    until_allowed(envoy.port(), &token_b());
    wait_drained(&envoy);
    judged_by(&fresh(&token_a()), &fresh(&token_b()), "bea@other.test");

    envoy.update_listener(&settings(config_a()));
    until_allowed(envoy.port(), &token_a());
    judged_by(&fresh(&token_a()), &fresh(&token_b()), "alice@example.com");
    wait_drained(&envoy);
    judged_by(&fresh(&token_a()), &fresh(&token_b()), "alice@example.com");
    assert_eq!(vms_alive(&envoy), alive);
}

/// Waits until a new request with `token` is let in: Envoy counts an update
/// applied as it hands it to the workers, a moment before they have it.
fn until_allowed(port: u16, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while send_fresh(port, &request(token)).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the update never reached the worker"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no filter chain is draining (the old one is gone).
fn wait_drained(envoy: &Envoy) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while envoy
        .stats()
        .counter("listener_manager.total_filter_chains_draining")
        > 0
    {
        assert!(Instant::now() < deadline, "still draining");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_ecds_update_applies_to_the_next_requests_and_a_waiting_one_finishes_under_the_old() {
    let echo = EchoServer::start();
    // Issuer A's keys come from a server that takes 1.5 s to answer.
    let jwks = JwksServer::start_with(
        "127.0.0.1:0",
        "/keys",
        JwksMode::Stall(Duration::from_millis(1500), Idp::shared().jwks_json()),
    );
    let config_a = with_rules(vec![uri_rule(ISSUER, &jwks.url("/keys"))], json!({}));
    let settings = |config: Value| {
        EnvoySettings::for_test(config, echo.port())
            .with_concurrency(1)
            .with_filter_file()
            .with_jwks_cluster(jwks.port())
    };
    let envoy = Envoy::start(&settings(config_a));
    let alive = vms_alive(&envoy);
    let port = envoy.port();
    let mut kept = Connection::new(port);
    // Opened before the update; the first request on it waits for the keys.
    let started = Instant::now();
    let waiting = std::thread::spawn(move || {
        let response = kept.send(&request(&token_a()));
        (kept, response)
    });
    std::thread::sleep(Duration::from_millis(300));

    envoy.update_filter(&settings(config_b()));
    until_allowed(port, &token_b());
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "the update came after the keys"
    );
    judged_by(
        &send_fresh(port, &request(&token_a())),
        &send_fresh(port, &request(&token_b())),
        "bea@other.test",
    );

    let (mut kept, waited) = waiting.join().unwrap();
    let seen = expect::allowed(&waited);
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "it did not wait for the keys"
    );
    // The next request on that connection starts after the update.
    judged_by(
        &kept.send(&request(&token_a())),
        &kept.send(&request(&token_b())),
        "bea@other.test",
    );
    assert_eq!(kept.reconnects(), 0);
    assert_eq!(vms_alive(&envoy), alive);
}
