//! Identical SubjectAccessReviews in flight are coalesced, per worker: 100
//! identical first requests (same token, same KServe model), each on its own
//! connection, released at once while the API server stand-in takes 500ms to
//! answer:
//! - with two workers (`--concurrency 2`), the stand-in is asked at most
//!   twice (once per worker VM that received requests), every request is
//!   allowed, and `kfauth.authz.cache_miss` + `.coalesced` + `.cache_hit`
//!   account for all 100 (misses = reviews sent);
//! - with one worker, it is asked exactly once.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use std::time::Duration;

use authz_support::*;
use kfauth_testkit::apiserver::fixtures::{USER, USER_NAMESPACE};
use kfauth_testkit::apiserver::{validate_sar_request, ApiMode, Review};
use kfauth_testkit::expect;
use kfauth_testkit::plugin_config::with_rules;
use serde_json::json;

const REQUESTS: usize = 100;

/// Sends the 100 requests; returns the reviews the stand-in received.
fn hundred_identical_first_requests(workers: u32) -> usize {
    let config = with_rules(
        vec![dex_rule()],
        json!({"authorization": authorization(vec![kserve_rule()], "5s", json!({}))}),
    );
    let setup = Authz::start(config, workers);
    setup.api.set_mode_for(
        Review::SubjectAccess,
        ApiMode::Slow(Duration::from_millis(500)),
    );
    let token = user_token(USER, &["team-a"]);
    let req = Req::kserve("iris", USER_NAMESPACE).bearer(&token);
    let names = [
        "kfauth.authz.cache_miss",
        "kfauth.authz.coalesced",
        "kfauth.authz.cache_hit",
        "kfauth.authz.allowed",
    ];
    assert_eq!(setup.api.sar_count(), 0);

    let responses = concurrently(setup.envoy.port(), vec![req; REQUESTS]);

    for response in &responses {
        let seen = expect::allowed(response);
        assert_eq!(seen.header("kubeflow-userid"), Some(USER));
    }
    let reviews = setup.api.sar_count();
    let stats = setup.envoy.stats();
    let counts = names.map(|name| stats.counter(name));
    let per_worker = stats.connections_per_worker();
    eprintln!(
        "{REQUESTS} concurrent identical first requests, {workers} worker(s) \
         (connections per worker {per_worker:?}): {reviews} SubjectAccessReview(s); \
         {names:?} = {counts:?}"
    );
    for body in setup.api.sar_requests() {
        validate_sar_request(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    }
    let [misses, coalesced, hits, allowed] = counts;
    assert_eq!(misses as usize, reviews, "one cache miss per review sent");
    assert_eq!(
        (misses + coalesced + hits) as usize,
        REQUESTS,
        "each request missed, joined a review in flight, or hit the cache"
    );
    assert!(
        coalesced > 0,
        "requests joined the review in flight: {counts:?}"
    );
    assert_eq!(allowed as usize, REQUESTS);
    reviews
}

#[test]
fn two_workers_ask_at_most_once_each() {
    let reviews = hundred_identical_first_requests(2);
    assert!(
        (1..=2).contains(&reviews),
        "{REQUESTS} identical requests over 2 workers asked {reviews} reviews (at most one per worker)"
    );
}

#[test]
fn one_worker_asks_exactly_once() {
    let reviews = hundred_identical_first_requests(1);
    assert_eq!(
        reviews, 1,
        "{REQUESTS} identical requests on one worker ask one review"
    );
}
