//! The SubjectAccessReview cache under load: 10,000 KServe predictions over
//! 50 users × 5 models (250 distinct reviews) in namespace `load-test`, where
//! every other user may view InferenceServices (a RoleBinding added with
//! `apply_yaml`), from four client threads on keep-alive connections (Envoy
//! closes one after a 403 answered before the request body was read; the
//! client then reconnects, so requests spread over the workers), through
//! Envoy with two workers and the default TTLs (5m allowed, 30s denied):
//! - every answer is right (bound users 200 from the upstream, the others 403);
//! - the stand-in answers at most 250 reviews per VM (≤ 750 with two workers
//!   and the main thread's VM); the figure is printed.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use std::time::Instant;

use authz_support::*;
use kfauth_testkit::apiserver::fixtures::{namespace, role_binding, Subject};
use kfauth_testkit::expect;
use kfauth_testkit::plugin_config::with_rules;
use serde_json::json;

const USERS: usize = 50;
const MODELS: usize = 5;
const REQUESTS: usize = 10_000;
const THREADS: usize = 4;
const WORKERS: u32 = 2;
const NAMESPACE: &str = "load-test";

fn email(user: usize) -> String {
    format!("load-user-{user:02}@example.com")
}

/// Even users are bound to `kubeflow-view` in [`NAMESPACE`].
fn allowed(user: usize) -> bool {
    user.is_multiple_of(2)
}

fn bindings() -> String {
    let users: Vec<String> = (0..USERS)
        .filter(|user| allowed(*user))
        .map(email)
        .collect();
    let subjects: Vec<Subject> = users.iter().map(|user| Subject::User(user)).collect();
    [
        namespace(NAMESPACE),
        role_binding(NAMESPACE, "load-viewers", "kubeflow-view", &subjects),
    ]
    .join("---\n")
}

#[test]
fn ten_thousand_requests_over_250_reviews() {
    let config = with_rules(
        vec![dex_rule()],
        json!({"authorization": authorization(vec![kserve_rule()], "2s", json!({}))}),
    );
    let setup = Authz::start(config, WORKERS);
    setup.api.apply_yaml(&bindings()).unwrap();
    let tokens: Vec<String> = (0..USERS)
        .map(|user| user_token(&email(user), &["load-testers"]))
        .collect();

    let started = Instant::now();
    let port = setup.envoy.port();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let tokens = tokens.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::new(port);
                let mut wrong = Vec::new();
                // Request i goes to thread i % THREADS; (user, model) cycle with
                // co-prime strides so every pair recurs throughout the run.
                for i in (thread..REQUESTS).step_by(THREADS) {
                    let user = (i * 7) % USERS;
                    let model = (i / USERS + i) % MODELS;
                    let req =
                        Req::kserve(&format!("model-{model}"), NAMESPACE).bearer(&tokens[user]);
                    let response = conn.send(&req);
                    let expected = if allowed(user) { 200 } else { 403 };
                    if response.status != expected {
                        wrong.push(format!(
                            "request {i} (user {user}, model {model}): {} {}",
                            response.status, response.body
                        ));
                    }
                }
                wrong
            })
        })
        .collect();
    let wrong: Vec<String> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("client thread"))
        .collect();
    let elapsed = started.elapsed();

    let reviews = setup.api.sar_count();
    let stats = setup.envoy.stats();
    let per_worker = stats.connections_per_worker();
    let distinct: std::collections::HashSet<String> = setup
        .api
        .sar_requests()
        .iter()
        .map(|body| body["spec"].to_string())
        .collect();
    eprintln!(
        "{REQUESTS} requests over {USERS} users × {MODELS} models, {THREADS} client threads, \
         {WORKERS} workers (connections per worker {per_worker:?}) in {elapsed:.1?}: \
         the stand-in answered {reviews} SubjectAccessReviews ({} distinct); \
         authz cache_hit {} cache_miss {} coalesced {}",
        distinct.len(),
        stats.counter("kfauth.authz.cache_hit"),
        stats.counter("kfauth.authz.cache_miss"),
        stats.counter("kfauth.authz.coalesced"),
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(distinct.len(), USERS * MODELS, "every review was asked");
    let vms = WORKERS as usize + 1;
    assert!(
        reviews <= USERS * MODELS * vms,
        "{reviews} reviews for {} distinct ones over {vms} VMs",
        USERS * MODELS
    );
    assert_eq!(setup.api.unauthorized_count(), 0);
    // One allowed answer still reaches the upstream as usual.
    let seen = expect::allowed(&setup.send(&Req::kserve("model-0", NAMESPACE).bearer(&tokens[0])));
    assert_eq!(seen.header("kubeflow-userid"), Some(email(0).as_str()));
}
