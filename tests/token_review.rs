//! TokenReview of service-account tokens (`jwtRules[].tokenReview`), end to
//! end: a real Envoy (two workers), the API-server stand-in over TLS, a
//! service-account rule with `tokenReview: {audiences: [pipelines.kubeflow.org]}`
//! beside a Dex rule, and the KServe and KFP authorization rules.
//!
//! `service_account_tokens_are_token_reviewed`:
//! - a locally valid token the API server accepts is authorized as the user
//!   the TokenReview names: the SubjectAccessReview carries its `username` and
//!   `groups` (the service-account groups, which the token's claims lack); the
//!   TokenReview the filter sent names the token and the configured audiences
//!   and is valid (`validate_token_review_request`);
//! - the TokenReview's username wins over the token's `sub`;
//! - a token the API server refused (`revoke_token`), or never knew, gets 401
//!   `token_revoked` (`error="invalid_token"`, the API server's error as
//!   `detail`) and no SubjectAccessReview; the token appears in no response;
//! - a token issued for another audience gets 401 `token_revoked`;
//! - answers are cached per worker: once every worker has asked, repeats ask
//!   nothing (`kfauth.tokenreview.cache_hit` grows);
//! - 40 concurrent first uses of a token (the stand-in answering in 500ms)
//!   cost at most one TokenReview per worker (`kfauth.tokenreview.coalesced`);
//! - the TokenReview endpoint failing → 503 `authorizer_unavailable`, counted
//!   in `kfauth.tokenreview.error`, not cached;
//! - Dex tokens (no `tokenReview` on their rule) are not token-reviewed;
//! - `kfauth.tokenreview.allowed|denied|cache_miss` count the answers;
//! - the API server credential is sent with each TokenReview (the stand-in
//!   never answered 401) and reaches neither the client nor Envoy's log.
//!
//! `token_review_needs_an_authorization_block`: `tokenReview` without
//! `authorization` → Envoy refuses the configuration, the log naming
//! `jwtRules[1].tokenReview`.

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
use kfauth_testkit::apiserver::conformance::{authentication_schemas, report_skipped};
use kfauth_testkit::apiserver::fixtures::{
    EDITOR_SERVICE_ACCOUNT, TEAM_B_NAMESPACE, USER, USER_NAMESPACE,
};
use kfauth_testkit::apiserver::{
    validate_sar_request, validate_token_review_request, ApiMode, Review,
};
use kfauth_testkit::expect::CHALLENGE_INVALID_TOKEN;
use kfauth_testkit::plugin_config::with_rules;
use kfauth_testkit::{expect, scenarios, Gateway, HttpResponse};
use serde_json::{json, Value};

const AUDIENCE: &str = "pipelines.kubeflow.org";

fn config() -> Value {
    with_rules(
        vec![
            dex_rule(),
            sa_rule(json!({
                "tokenReview": {"audiences": [AUDIENCE]},
                "forwardOriginalToken": true,
            })),
        ],
        json!({
            "authorization": authorization(vec![kserve_rule(), kfp_rule()], "2s", json!({})),
        }),
    )
}

/// A fresh token of `namespace/name` that the stand-in accepts for [`AUDIENCE`].
fn accepted_token(setup: &Authz, namespace: &str, name: &str) -> String {
    let token = sa_token(namespace, name);
    setup
        .api
        .register_service_account_token(&token, namespace, name, &[AUDIENCE]);
    token
}

fn token_reviews_of(setup: &Authz, token: &str) -> Vec<Value> {
    setup
        .api
        .token_review_requests()
        .into_iter()
        .filter(|body| body["spec"]["token"] == token)
        .collect()
}

fn service_account_groups(namespace: &str) -> Value {
    json!([
        "system:serviceaccounts",
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated"
    ])
}

/// 401 `token_revoked` with the API server's error as `detail`.
fn revoked(response: &HttpResponse, detail_part: &str) {
    assert_eq!(
        response.status, 401,
        "expected 401 token_revoked; got {} {:?}",
        response.status, response.body
    );
    assert_eq!(
        response.header_values("www-authenticate"),
        vec![CHALLENGE_INVALID_TOKEN]
    );
    let body = response.json();
    assert_eq!(body["code"], 401, "{body}");
    assert_eq!(body["reason"], "token_revoked", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(detail_part),
        "detail {detail:?} should contain {detail_part:?}"
    );
}

fn an_accepted_token_is_authorized_as_the_reviewed_user(setup: &Authz) {
    let user = sa_username(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let token = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let seen = expect::allowed(&setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token)));
    assert_eq!(seen.header("kubeflow-userid"), Some(user.as_str()));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "forwardOriginalToken"
    );

    let reviews = token_reviews_of(setup, &token);
    assert_eq!(reviews.len(), 1, "one TokenReview for the token");
    let review = &reviews[0];
    validate_token_review_request(review).unwrap_or_else(|e| panic!("{e}: {review}"));
    assert_eq!(
        review,
        &json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [AUDIENCE]},
        })
    );

    let sars = setup.reviews_for(&user);
    let sar = sars
        .last()
        .expect("a SubjectAccessReview for the service account");
    validate_sar_request(sar).unwrap_or_else(|e| panic!("{e}: {sar}"));
    assert_eq!(
        sar["spec"]["groups"],
        service_account_groups(USER_NAMESPACE),
        "the groups come from the TokenReview: {sar}"
    );
    assert_eq!(
        sar["spec"]["resourceAttributes"]["namespace"],
        USER_NAMESPACE
    );

    let bearer = Req::kfp_runs(Some(TEAM_B_NAMESPACE)).bearer(&token);
    forbidden(&setup.send(&bearer), None);
}

fn the_reviewed_username_wins_over_the_claims(setup: &Authz) {
    // The token says team-b/impostor; the API server says default-editor.
    let token = sa_token(TEAM_B_NAMESPACE, "impostor");
    setup.api.register_service_account_token(
        &token,
        USER_NAMESPACE,
        EDITOR_SERVICE_ACCOUNT,
        &[AUDIENCE],
    );
    expect::allowed(&setup.send(&Req::kserve("reviewed", USER_NAMESPACE).bearer(&token)));
    assert_eq!(
        setup.reviews_of(
            &sa_username(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT),
            USER_NAMESPACE,
            "reviewed"
        ),
        1
    );
    assert!(setup
        .reviews_for(&sa_username(TEAM_B_NAMESPACE, "impostor"))
        .is_empty());
}

fn a_revoked_token_gets_401_token_revoked(setup: &Authz) {
    let token = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    setup.api.revoke_token(&token);
    let sars_before = setup.api.sar_count();
    let response = setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token));
    revoked(&response, "service account token has been invalidated");
    assert_eq!(token_reviews_of(setup, &token).len(), 1);
    expect::no_leak(
        &token,
        &[&response.body, &format!("{:?}", response.headers)],
    );

    let unknown = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let response = setup.send(&Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&unknown));
    revoked(&response, "token lookup failed");
    assert_eq!(setup.api.sar_count(), sars_before, "no SubjectAccessReview");
}

fn a_token_for_another_audience_gets_401(setup: &Authz) {
    let token = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    setup.api.register_service_account_token(
        &token,
        USER_NAMESPACE,
        EDITOR_SERVICE_ACCOUNT,
        &["https://kubernetes.default.svc.cluster.local"],
    );
    let response = setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token));
    revoked(&response, "audiences");
}

fn token_review_answers_are_cached(setup: &Authz) {
    let token = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let req = Req::kserve("iris", USER_NAMESPACE).bearer(&token);
    let hits_before = setup.counter("kfauth.tokenreview.cache_hit");
    for response in setup.spread(&req) {
        expect::allowed(&response);
    }
    let asked = token_reviews_of(setup, &token).len();
    let workers = setup.envoy.stats().connections_per_worker().len();
    assert!(
        (1..=workers).contains(&asked),
        "at most one TokenReview per worker: {asked}"
    );
    let mut conn = setup.conn();
    for _ in 0..5 {
        expect::allowed(&conn.send(&req));
    }
    for response in setup.spread(&req) {
        expect::allowed(&response);
    }
    assert_eq!(token_reviews_of(setup, &token).len(), asked);
    let hits = setup.counter("kfauth.tokenreview.cache_hit") - hits_before;
    assert!(hits >= 6, "kfauth.tokenreview.cache_hit grew by {hits}");
}

fn concurrent_first_uses_are_coalesced(setup: &Authz) {
    let token = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let coalesced_before = setup.counter("kfauth.tokenreview.coalesced");
    setup
        .api
        .set_mode_for(Review::Token, ApiMode::Slow(Duration::from_millis(500)));
    let req = Req::kserve("coalesced", USER_NAMESPACE).bearer(&token);
    let responses = concurrently(setup.envoy.port(), vec![req; 40]);
    setup.api.set_mode_for(Review::Token, ApiMode::Answer);
    for response in &responses {
        expect::allowed(response);
    }
    let asked = token_reviews_of(setup, &token).len();
    let coalesced = setup.counter("kfauth.tokenreview.coalesced") - coalesced_before;
    eprintln!("40 concurrent first uses of a token: {asked} TokenReview(s), {coalesced} coalesced");
    assert!((1..=2).contains(&asked), "{asked} TokenReviews");
    assert!(coalesced > 0);
}

fn an_unavailable_token_review_gives_503(setup: &Authz) {
    let token = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let req = Req::kserve("iris", USER_NAMESPACE).bearer(&token);
    let errors_before = setup.counter("kfauth.tokenreview.error");
    setup.api.set_mode_for(Review::Token, ApiMode::Fail);
    let response = setup.send(&req);
    setup.api.set_mode_for(Review::Token, ApiMode::Answer);
    expect::unavailable(&response, "authorizer_unavailable");
    assert!(setup.counter("kfauth.tokenreview.error") > errors_before);
    let mut conn = setup.conn();
    expect::allowed(&conn.send(&req));
    assert_eq!(
        token_reviews_of(setup, &token).len(),
        2,
        "a failure is not cached"
    );
}

fn dex_tokens_are_not_token_reviewed(setup: &Authz) {
    let before = setup.api.token_review_count();
    let token = user_token(USER, &[]);
    let seen = expect::allowed(&setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token)));
    assert_eq!(seen.header("kubeflow-userid"), Some(USER));
    assert_eq!(setup.api.token_review_count(), before);
}

fn metrics_count_token_reviews(setup: &Authz) {
    let names = [
        "kfauth.tokenreview.allowed",
        "kfauth.tokenreview.denied",
        "kfauth.tokenreview.cache_miss",
        "kfauth.tokenreview.cache_hit",
    ];
    let read = || names.map(|name| setup.counter(name));
    let before = read();
    let good = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let bad = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let mut conn = setup.conn();
    expect::allowed(&conn.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&good)));
    expect::allowed(&conn.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&good)));
    revoked(
        &conn.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&bad)),
        "token lookup failed",
    );
    revoked(
        &conn.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&bad)),
        "token lookup failed",
    );
    let after = read();
    let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    eprintln!("tokenreview metric deltas {names:?}: {delta:?}");
    assert_eq!(delta, vec![1, 1, 2, 2], "{names:?}");
}

fn the_credential_is_sent_and_never_leaks(setup: &Authz) {
    let secret = setup.api.bearer_token();
    assert!(setup.api.token_review_count() > 0);
    assert_eq!(setup.api.unauthorized_count(), 0);
    let token = accepted_token(setup, USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let allowed = setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token));
    let seen = expect::allowed(&allowed);
    let revoked_token = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let refused = setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&revoked_token));
    assert_eq!(refused.status, 401);
    let logs = setup.envoy.logs();
    assert_secret_absent(
        &secret,
        "the API server token",
        &[
            &format!("{:?}", seen.headers),
            &format!("{:?}", allowed.headers),
            &allowed.body,
            &format!("{:?}", refused.headers),
            &refused.body,
            &logs,
        ],
    );
    expect::no_leak(&revoked_token, &[&refused.body, &logs]);
    expect::no_leak(&token, &[&logs]);
}

fn every_token_review_sent_is_valid(setup: &Authz) {
    if authentication_schemas().is_none() {
        report_skipped(
            "every_token_review_sent_is_valid (OpenAPI part)",
            "../shared/data/k8s-openapi/authentication.k8s.io_v1.json not found; the built-in contract still applies",
        );
    }
    let reviews = setup.api.token_review_requests();
    for review in &reviews {
        validate_token_review_request(review).unwrap_or_else(|e| panic!("{e}: {review}"));
    }
    for review in setup.api.sar_requests() {
        validate_sar_request(&review).unwrap_or_else(|e| panic!("{e}: {review}"));
    }
    eprintln!("{} TokenReviews validated", reviews.len());
}

#[test]
fn service_account_tokens_are_token_reviewed() {
    let setup = Authz::start(config(), 2);
    scenarios!(
        &setup,
        [
            an_accepted_token_is_authorized_as_the_reviewed_user,
            the_reviewed_username_wins_over_the_claims,
            a_revoked_token_gets_401_token_revoked,
            a_token_for_another_audience_gets_401,
            token_review_answers_are_cached,
            concurrent_first_uses_are_coalesced,
            an_unavailable_token_review_gives_503,
            dex_tokens_are_not_token_reviewed,
            metrics_count_token_reviews,
            the_credential_is_sent_and_never_leaks,
            every_token_review_sent_is_valid,
        ]
    );
}

#[test]
fn token_review_needs_an_authorization_block() {
    let config = with_rules(
        vec![
            dex_rule(),
            sa_rule(json!({"tokenReview": {"audiences": [AUDIENCE]}})),
        ],
        json!({}),
    );
    let log = Gateway::start_expect_rejected(config);
    assert!(
        log.contains("jwtRules[1].tokenReview"),
        "the log names the field: {}",
        kfauth_testkit::envoy::log_excerpt(&log)
    );
}
