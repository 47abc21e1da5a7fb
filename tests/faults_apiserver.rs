//! An API server that misbehaves while kfauth asks it SubjectAccessReviews
//! and TokenReviews, in an Envoy with two workers. In every case no request
//! passes that the policy does not let through, the answers are the
//! documented ones, and the VM never traps (the testkit's Envoy checks its
//! log when it stops):
//! - `failureMode: deny` (timeout 300 ms): the API server is slow past the
//!   timeout, resets the connection, hangs up, answers 500, answers garbage,
//!   or is down: a user with access and a user without both get 503
//!   `authorizer_unavailable`, a forged token 401. Afterwards the same
//!   reviews get their real answers (200 and 403): failures are not cached;
//! - `failureMode: allow`: during a reset, a hangup and a 500 both users
//!   pass, each with exactly their own identity (a spoofed `kubeflow-userid`
//!   is replaced), forged tokens still get 401, and once the API server
//!   answers again the user without access gets 403 for the very request
//!   that passed during the fault;
//! - TokenReview (`tokenReview` on the service-account rule, `failureMode:
//!   deny`): a reset, a hangup or a 500 gives 503 `authorizer_unavailable`,
//!   then the token passes once the API server answers;
//! - a 20 MB answer (the right decision, padded; `timeout: 5s`): Envoy 1.40
//!   delivers the whole body to the callout and kfauth uses the decision in
//!   it: 200 with access, 403 without, a TokenReview that authenticates
//!   passes and one that does not is 401 `token_revoked`. (With a short
//!   `timeout` a body that size may not arrive in time: then it is a timeout,
//!   as above.)

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
use kfauth_testkit::apiserver::fixtures::{BOB, EDITOR_SERVICE_ACCOUNT, USER, USER_NAMESPACE};
use kfauth_testkit::apiserver::{ApiMode, Review};
use kfauth_testkit::plugin_config::{claims, with_rules};
use kfauth_testkit::{expect, forge, Alg, HttpResponse, Idp};
use serde_json::{json, Value};

const WORKERS: u32 = 2;
/// Past kube-apiserver's 3 MiB request limit and any review answer.
const HUGE: usize = 20 * 1024 * 1024;

fn config(failure_mode: &str) -> Value {
    with_rules(
        vec![dex_rule()],
        json!({
            "authorization": authorization(
                vec![kserve_rule()],
                "300ms",
                json!({"failureMode": failure_mode}),
            ),
        }),
    )
}

/// The faults, by name; `None` is "down" (connections refused).
fn faults() -> Vec<(&'static str, Option<ApiMode>)> {
    vec![
        ("slow", Some(ApiMode::Slow(Duration::from_millis(1500)))),
        ("reset", Some(ApiMode::Reset)),
        ("hangup", Some(ApiMode::Hangup)),
        ("500", Some(ApiMode::Fail)),
        ("garbage", Some(ApiMode::Garbage)),
        ("down", None),
    ]
}

fn start_fault(setup: &mut Authz, fault: Option<ApiMode>) {
    match fault {
        Some(mode) => setup.api.set_mode(mode),
        None => setup.api.stop(),
    }
}

fn end_fault(setup: &mut Authz) {
    setup.api.restart();
    setup.api.set_mode(ApiMode::Answer);
}

/// A KServe prediction by `token` on a model of its own (its own review,
/// never answered from the cache).
fn predict(setup: &Authz, model: &str, token: &str) -> HttpResponse {
    setup.send(&Req::kserve(model, USER_NAMESPACE).bearer(token))
}

/// The request reached the upstream as exactly `user`.
fn passes_as(response: &HttpResponse, user: &str, what: &str) {
    assert_eq!(
        response.status, 200,
        "{what}: expected 200; got {} {:?}",
        response.status, response.body
    );
    let seen = expect::allowed(response);
    assert_eq!(seen.header("kubeflow-userid"), Some(user), "{what}");
}

fn forged() -> String {
    forge::impostor_es256(Idp::shared().kid(Alg::ES256), &claims(USER, &["admins"]))
}

#[test]
fn failure_mode_deny_answers_503_to_everyone_and_caches_nothing() {
    let mut setup = Authz::start(config("deny"), WORKERS);
    let user = user_token(USER, &[]);
    let bob = user_token(BOB, &[]);
    passes_as(&predict(&setup, "warmup", &user), USER, "before any fault");
    for (name, fault) in faults() {
        let model = format!("m-{}", name.replace(' ', "-"));
        let errors_before = setup.counter("kfauth.authz.error");
        start_fault(&mut setup, fault);
        for round in 0..2 {
            let what = format!("{name}, round {round}");
            expect::unavailable(&predict(&setup, &model, &user), "authorizer_unavailable");
            let denied = predict(&setup, &model, &bob);
            assert_ne!(denied.status, 200, "{what}: bob passed");
            expect::unavailable(&denied, "authorizer_unavailable");
            expect::rejected(&predict(&setup, &model, &forged()), "signature_invalid");
        }
        end_fault(&mut setup);
        let errors = setup.counter("kfauth.authz.error") - errors_before;
        assert!(errors >= 4, "{name}: kfauth.authz.error rose by {errors}");
        // The same reviews, now answered: nothing was cached during the fault.
        passes_as(&predict(&setup, &model, &user), USER, name);
        forbidden(&predict(&setup, &model, &bob), None);
        println!("{name}: 4 reviews refused with 503, then answered 200 / 403");
    }
    setup.envoy.assert_no_vm_trap();
}

#[test]
fn failure_mode_allow_passes_each_user_as_themselves_and_caches_nothing() {
    let mut setup = Authz::start(config("allow"), WORKERS);
    let user = user_token(USER, &[]);
    let bob = user_token(BOB, &[]);
    for (name, mode) in [
        ("reset", ApiMode::Reset),
        ("hangup", ApiMode::Hangup),
        ("500", ApiMode::Fail),
    ] {
        let model = format!("allow-{}", name.replace(' ', "-"));
        start_fault(&mut setup, Some(mode));
        for _ in 0..2 {
            passes_as(&predict(&setup, &model, &user), USER, name);
            passes_as(&predict(&setup, &model, &bob), BOB, name);
            expect::rejected(&predict(&setup, &model, &forged()), "signature_invalid");
            // A spoofed identity header is still replaced by the token's.
            let spoofed = Req::kserve(&model, USER_NAMESPACE)
                .bearer(&bob)
                .header("kubeflow-userid", USER);
            passes_as(&setup.send(&spoofed), BOB, name);
        }
        end_fault(&mut setup);
        passes_as(&predict(&setup, &model, &user), USER, name);
        forbidden(&predict(&setup, &model, &bob), None);
    }
    setup.envoy.assert_no_vm_trap();
}

#[test]
fn token_review_faults_answer_503() {
    let config = with_rules(
        vec![
            dex_rule(),
            sa_rule(json!({"tokenReview": {"audiences": ["pipelines.kubeflow.org"]}})),
        ],
        json!({
            "authorization": authorization(vec![], "300ms", json!({"failureMode": "deny"})),
        }),
    );
    let setup = Authz::start(config, WORKERS);
    let username = sa_username(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    for (name, mode) in [
        ("reset", ApiMode::Reset),
        ("hangup", ApiMode::Hangup),
        ("500", ApiMode::Fail),
    ] {
        let token = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
        setup.api.register_service_account_token(
            &token,
            USER_NAMESPACE,
            EDITOR_SERVICE_ACCOUNT,
            &["pipelines.kubeflow.org"],
        );
        let req = Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&token);
        setup.api.set_mode_for(Review::Token, mode);
        for round in 0..2 {
            let response = setup.send(&req);
            assert_eq!(
                response.status, 503,
                "{name}, round {round}: {:?}",
                response.body
            );
            expect::unavailable(&response, "authorizer_unavailable");
        }
        setup.api.set_mode_for(Review::Token, ApiMode::Answer);
        passes_as(&setup.send(&req), &username, name);
    }
    // The issuer check still comes first: a forged service-account token.
    let forged = forge::impostor_es256(
        Idp::shared_second().kid(Alg::ES256),
        &json!({"iss": SA_ISSUER, "sub": username, "exp": kfauth_testkit::idp::now() + 600}),
    );
    expect::rejected(
        &setup.send(&Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&forged)),
        "signature_invalid",
    );
    setup.envoy.assert_no_vm_trap();
}

#[test]
fn a_twenty_megabyte_answer_is_read_for_its_decision() {
    let config = with_rules(
        vec![
            dex_rule(),
            sa_rule(json!({"tokenReview": {"audiences": ["pipelines.kubeflow.org"]}})),
        ],
        json!({
            "authorization": authorization(vec![kserve_rule()], "5s", json!({"failureMode": "deny"})),
        }),
    );
    let setup = Authz::start(config, WORKERS);
    setup.api.set_mode(ApiMode::Huge(HUGE));
    let user = user_token(USER, &[]);
    let bob = user_token(BOB, &[]);
    passes_as(
        &predict(&setup, "huge", &user),
        USER,
        "20 MB allowed review",
    );
    forbidden(&predict(&setup, "huge", &bob), None);
    expect::rejected(&predict(&setup, "huge", &forged()), "signature_invalid");

    let token = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    setup.api.register_service_account_token(
        &token,
        USER_NAMESPACE,
        EDITOR_SERVICE_ACCOUNT,
        &["pipelines.kubeflow.org"],
    );
    let username = sa_username(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let req = Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&token);
    passes_as(&setup.send(&req), &username, "20 MB TokenReview");
    let unknown = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let response = setup.send(&Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&unknown));
    assert_eq!(response.status, 401, "{:?}", response.body);
    assert_eq!(response.json()["reason"], "token_revoked");
    assert!(setup.api.sar_count() >= 2 && setup.api.token_review_count() >= 2);
    setup.envoy.assert_no_vm_trap();
}
