//! Authorization with SubjectAccessReviews, end to end: a real Envoy (two
//! workers) with kfauth, the Kubernetes API-server stand-in over TLS (its
//! runtime test CA, SNI `kubernetes.default.svc`) answering from the
//! project's Kubeflow-like RBAC fixtures, the bearer token in the VM
//! environment (`tokenEnv`).
//!
//! `rbac_decides_kubeflow_requests` (cache: allowedTtl 30s, deniedTtl 1s):
//! - KServe (`{isvc}.{namespace}.example.com`, `/v1/models/{model}:predict`
//!   → `get` `serving.kserve.io` `inferenceservices` named after the model):
//!   the profile owner (a user) is allowed in their namespace, denied in
//!   `team-b` (403 `forbidden`, no `detail` when RBAC gives no reason), Bob
//!   is allowed in `team-b`; the Host's port is ignored;
//! - a group (`team-viewers`) grants view; the token's `groups` reach the review;
//! - a service account (`default-editor`, user from `sub`) is allowed in its
//!   namespace and denied elsewhere, another service account is denied;
//! - KFP (`GET /pipeline/apis/v2beta1/runs?namespace=NS` → `list` `runs`
//!   in `pipelines.kubeflow.org`): allowed and denied per namespace; no
//!   `namespace` parameter → 403 with a `detail` naming it; `POST` is not
//!   matched (`methods: [GET]`) and passes;
//! - a non-resource URL (`/metrics`): path and verb from the request;
//! - without a `verb`, the method decides it (GET/HEAD→get, POST→create,
//!   PUT→update, PATCH→patch, DELETE→delete; here on core ConfigMaps, no
//!   `group`): the namespace's editor may do all, a viewer only read;
//! - a denial with the API server's `status.reason` carries it as `detail`;
//! - the user keeps its `outputClaimToHeaders` prefix (`oidc:`);
//! - a guarded route without a token → 401 `token_missing` and no review;
//!   unguarded routes pass without one (`defaultDeny: false`);
//! - a denied gRPC request → HTTP 200 `grpc-status: 7` `grpc-message: forbidden`;
//!   an allowed one reaches the upstream;
//! - answers are cached per worker: once every worker has asked, repeats
//!   ask nothing (`kfauth.authz.cache_hit` grows); a denied answer is
//!   reused within `deniedTtl` and asked again once it passed, an allowed
//!   one is not;
//! - metrics `kfauth.authz.allowed|denied|cache_miss|cache_hit` count decisions;
//! - the API server credential is sent (the stand-in never answered 401) and
//!   reaches neither the upstream, nor the client, nor Envoy's log;
//! - every SubjectAccessReview the filter sent is valid
//!   (`validate_sar_request`: the built-in contract, plus the published
//!   OpenAPI schema when `../shared/data` is there).
//!
//! `an_unavailable_api_server_denies_with_503` (`failureMode: deny`, timeout 1s):
//! the stand-in down, slower than the timeout, answering 500, answering
//! garbage, hanging up, or refusing the credential (another bearer token than
//! the VM's) → 503 `authorizer_unavailable` with `retry-after` (gRPC: status
//! 14), counted in `kfauth.authz.error`; failures are not cached: service
//! resumes with the next request once the stand-in is back.
//!
//! `failure_mode_allow_passes_when_the_api_server_is_unavailable`: the same
//! failures let the request through to the upstream; a real denial still 403s.
//!
//! `an_unset_token_variable_keeps_authentication_and_answers_reviews_unavailable`:
//! `tokenEnv` naming a variable absent from the VM environment (a WasmPlugin
//! applied before the gateway rolled out with its token) → the configuration
//! loads with one warning line per VM naming `authorization.apiserver.tokenEnv`;
//! valid tokens pass with their identity, bad ones get 401; a guarded route
//! and a `tokenReview` token get 503 `authorizer_unavailable` with a `detail`
//! naming the variable, no review reaches the API server, the gauge
//! `kfauth.authz.credential_missing` is 1 (0 with the variable set) and
//! `kfauth.authz.error` counts the refusals.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use std::time::{Duration, Instant};

use authz_support::*;
use kfauth_testkit::apiserver::conformance::{authorization_schemas, report_skipped};
use kfauth_testkit::apiserver::fixtures::{
    role_binding, Subject, BOB, EDITOR_SERVICE_ACCOUNT, METRICS_GROUP, TEAM_B_NAMESPACE, USER,
    USER_NAMESPACE, VIEWER_GROUP,
};
use kfauth_testkit::apiserver::{validate_sar_request, ApiMode, API_SERVER_SNI};
use kfauth_testkit::plugin_config::with_rules;
use kfauth_testkit::{expect, scenarios, wait};
use serde_json::{json, Value};

fn rbac_config() -> Value {
    with_rules(
        vec![dex_rule(), sa_rule(json!({})), prefixed_rule()],
        json!({
            "authorization": authorization(
                vec![kserve_rule(), kfp_rule(), metrics_rule(), configmap_rule()],
                "2s",
                json!({"cache": {"allowedTtl": "30s", "deniedTtl": "1s"}}),
            ),
        }),
    )
}

/// Checks the review the filter sent for `user` last.
fn last_review_for(setup: &Authz, user: &str) -> Value {
    let reviews = setup.reviews_for(user);
    let review = reviews
        .last()
        .unwrap_or_else(|| panic!("no SubjectAccessReview for {user}"))
        .clone();
    validate_sar_request(&review).unwrap_or_else(|e| panic!("{e}: {review}"));
    review
}

fn the_profile_owner_may_predict_in_their_namespace(setup: &Authz) {
    let token = user_token(USER, &["team-a"]);
    let seen = expect::allowed(&setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token)));
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/models/iris:predict");
    assert_eq!(seen.header("kubeflow-userid"), Some(USER));
    assert_eq!(
        seen.header("host"),
        Some(kserve_host("iris", USER_NAMESPACE).as_str())
    );
    let review = last_review_for(setup, USER);
    assert_eq!(
        review,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": USER,
                "groups": ["team-a"],
                "resourceAttributes": {
                    "namespace": USER_NAMESPACE,
                    "group": KSERVE_GROUP,
                    "resource": "inferenceservices",
                    "name": "iris",
                    "verb": "get",
                },
            },
        })
    );
}

fn the_profile_owner_is_denied_in_another_namespace(setup: &Authz) {
    let token = user_token(USER, &["team-a"]);
    let response = setup.send(&Req::kserve("iris", TEAM_B_NAMESPACE).bearer(&token));
    forbidden(&response, None);
    let review = last_review_for(setup, USER);
    assert_eq!(
        review["spec"]["resourceAttributes"]["namespace"],
        TEAM_B_NAMESPACE
    );
    let bob = user_token(BOB, &[]);
    let seen = expect::allowed(&setup.send(&Req::kserve("iris", TEAM_B_NAMESPACE).bearer(&bob)));
    assert_eq!(seen.header("kubeflow-userid"), Some(BOB));
    let review = last_review_for(setup, BOB);
    assert!(
        review["spec"].get("groups").is_none(),
        "no groups claim, no groups: {review}"
    );
    forbidden(
        &setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&bob)),
        None,
    );
}

fn the_host_port_is_ignored(setup: &Authz) {
    let token = user_token(USER, &[]);
    let mut req = Req::kserve("sklearn", USER_NAMESPACE).bearer(&token);
    req.host = format!("{}:8443", req.host);
    expect::allowed(&setup.send(&req));
    assert_eq!(setup.reviews_of(USER, USER_NAMESPACE, "sklearn"), 1);
}

fn a_group_grants_view(setup: &Authz) {
    let carol = "carol@example.com";
    let token = user_token(carol, &["team-x", VIEWER_GROUP]);
    expect::allowed(&setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token)));
    let review = last_review_for(setup, carol);
    assert_eq!(review["spec"]["groups"], json!(["team-x", VIEWER_GROUP]));
    let dave = user_token("dave@example.com", &["team-x"]);
    forbidden(
        &setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&dave)),
        None,
    );
}

fn a_service_account_is_authorized_as_itself(setup: &Authz) {
    let user = sa_username(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let token = sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT);
    let seen = expect::allowed(&setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token)));
    assert_eq!(seen.header("kubeflow-userid"), Some(user.as_str()));
    let review = last_review_for(setup, &user);
    assert!(review["spec"].get("groups").is_none(), "{review}");
    forbidden(
        &setup.send(&Req::kserve("iris", TEAM_B_NAMESPACE).bearer(&token)),
        None,
    );
    let runner = sa_token(USER_NAMESPACE, "pipeline-runner");
    forbidden(
        &setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&runner)),
        None,
    );
    assert_eq!(
        setup
            .reviews_for(&sa_username(USER_NAMESPACE, "pipeline-runner"))
            .len(),
        1
    );
}

fn kfp_runs_are_listed_per_namespace(setup: &Authz) {
    let token = user_token(USER, &[]);
    let seen = expect::allowed(&setup.send(&Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&token)));
    assert_eq!(
        seen.path,
        format!("{KFP_RUNS}?namespace={USER_NAMESPACE}&page_size=10")
    );
    let review = last_review_for(setup, USER);
    assert_eq!(
        review["spec"]["resourceAttributes"],
        json!({"namespace": USER_NAMESPACE, "group": KFP_GROUP, "resource": "runs", "verb": "list"})
    );
    forbidden(
        &setup.send(&Req::kfp_runs(Some(TEAM_B_NAMESPACE)).bearer(&token)),
        None,
    );
    let viewer = user_token("victor@example.com", &[VIEWER_GROUP]);
    expect::allowed(&setup.send(&Req::kfp_runs(Some(USER_NAMESPACE)).bearer(&viewer)));

    let before = setup.api.sar_count();
    forbidden_with_detail_containing(
        &setup.send(&Req::kfp_runs(None).bearer(&token)),
        "namespace",
    );
    let create = Req::new("POST", "kubeflow.example.com", KFP_RUNS)
        .bearer(&token)
        .header("content-type", "application/json")
        .body(b"{}");
    expect::allowed(&setup.send(&create));
    assert_eq!(
        setup.api.sar_count(),
        before,
        "neither a missing parameter nor an unmatched method asks the API server"
    );
}

fn a_non_resource_url_is_reviewed_by_path(setup: &Authz) {
    let reader = "mona@example.com";
    let token = user_token(reader, &[METRICS_GROUP]);
    expect::allowed(
        &setup.send(&Req::new("GET", "kubeflow.example.com", "/metrics").bearer(&token)),
    );
    let review = last_review_for(setup, reader);
    assert_eq!(
        review["spec"]["nonResourceAttributes"],
        json!({"path": "/metrics", "verb": "get"})
    );
    assert!(review["spec"].get("resourceAttributes").is_none());
    let other = user_token(USER, &[]);
    forbidden(
        &setup.send(&Req::new("GET", "kubeflow.example.com", "/metrics?x=1").bearer(&other)),
        None,
    );
}

fn the_verb_defaults_to_the_method(setup: &Authz) {
    let editor = user_token(USER, &[]);
    let path = format!("/api/v1/namespaces/{USER_NAMESPACE}/configmaps/settings");
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
    for method in methods {
        let mut req = Req::new(method, "kubeflow.example.com", &path).bearer(&editor);
        if matches!(method, "POST" | "PUT" | "PATCH") {
            req = req.header("content-type", "application/json").body(b"{}");
        }
        let response = setup.send(&req);
        assert_eq!(response.status, 200, "{method}: {}", response.body);
    }
    let verbs: Vec<Value> = setup
        .reviews_for(USER)
        .iter()
        .filter(|review| review["spec"]["resourceAttributes"]["resource"] == "configmaps")
        .map(|review| {
            let attributes = &review["spec"]["resourceAttributes"];
            assert_eq!(
                attributes,
                &json!({
                    "namespace": USER_NAMESPACE,
                    "resource": "configmaps",
                    "name": "settings",
                    "verb": attributes["verb"],
                }),
                "no group: the core API group"
            );
            attributes["verb"].clone()
        })
        .collect();
    // HEAD asks the same review as GET: answered from the cache when it
    // reaches the same worker, asked again when not.
    let mut distinct = verbs.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        json!(["get", "create", "update", "patch", "delete"])
            .as_array()
            .unwrap()
            .clone(),
        "verbs asked: {verbs:?}"
    );

    let viewer = user_token("vera@example.com", &[VIEWER_GROUP]);
    expect::allowed(&setup.send(&Req::new("GET", "kubeflow.example.com", &path).bearer(&viewer)));
    forbidden(
        &setup.send(&Req::new("DELETE", "kubeflow.example.com", &path).bearer(&viewer)),
        None,
    );
}

fn a_denial_carries_the_api_servers_reason(setup: &Authz) {
    setup
        .api
        .apply_yaml(&role_binding(
            "team-broken",
            "broken",
            "kubeflow-missing",
            &[Subject::User("nina@example.com")],
        ))
        .unwrap();
    let token = user_token("nina@example.com", &[]);
    let response = setup.send(&Req::kserve("iris", "team-broken").bearer(&token));
    forbidden(
        &response,
        Some(r#"RBAC: clusterrole.rbac.authorization.k8s.io "kubeflow-missing" not found"#),
    );
}

fn the_user_keeps_its_claim_prefix(setup: &Authz) {
    let user = format!("{USER_PREFIX}erin@example.com");
    setup
        .api
        .apply_yaml(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\n\
             kind: RoleBinding\n\
             metadata: {{name: erin-view, namespace: team-oidc}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-view}}\n\
             subjects:\n\
             - {{apiGroup: rbac.authorization.k8s.io, kind: User, name: \"{user}\"}}\n",
        ))
        .unwrap();
    let token = prefixed_token("erin@example.com");
    let seen = expect::allowed(&setup.send(&Req::kserve("iris", "team-oidc").bearer(&token)));
    assert_eq!(seen.header("kubeflow-userid"), Some(user.as_str()));
    last_review_for(setup, &user);
    assert!(setup.reviews_for("erin@example.com").is_empty());
}

fn a_guarded_route_needs_a_token(setup: &Authz) {
    let before = setup.api.sar_count();
    expect::token_missing(&setup.send(&Req::kserve("iris", USER_NAMESPACE)));
    expect::token_missing(&setup.send(&Req::kfp_runs(Some(USER_NAMESPACE))));
    let seen = expect::allowed(&setup.send(&Req::new("GET", "kubeflow.example.com", "/healthz")));
    assert_eq!(seen.header("kubeflow-userid"), None);
    assert_eq!(setup.api.sar_count(), before);
}

fn a_denied_grpc_request_gets_permission_denied(setup: &Authz) {
    let token = user_token(USER, &[]);
    let grpc = |namespace: &str| {
        Req::new(
            "POST",
            &kserve_host("iris", namespace),
            &predict_path("iris"),
        )
        .bearer(&token)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(b"\0\0\0\0\0")
    };
    let response = setup.send(&grpc(TEAM_B_NAMESPACE));
    expect::grpc_status(&response, 7, "forbidden");
    let seen = expect::allowed(&setup.send(&grpc(USER_NAMESPACE)));
    assert_eq!(seen.header("content-type"), Some("application/grpc"));
}

fn answers_are_cached_per_worker(setup: &Authz) {
    let token = user_token(USER, &[]);
    let req = Req::kserve("cached", USER_NAMESPACE).bearer(&token);
    let hits_before = setup.counter("kfauth.authz.cache_hit");
    for response in setup.spread(&req) {
        expect::allowed(&response);
    }
    let asked = setup.reviews_of(USER, USER_NAMESPACE, "cached");
    let workers = setup.envoy.stats().connections_per_worker().len();
    assert!(
        (1..=workers).contains(&asked),
        "each of {workers} workers asks at most once; asked {asked}"
    );
    let mut conn = setup.conn();
    for _ in 0..10 {
        expect::allowed(&conn.send(&req));
    }
    for response in setup.spread(&req) {
        expect::allowed(&response);
    }
    assert_eq!(
        setup.reviews_of(USER, USER_NAMESPACE, "cached"),
        asked,
        "repeats are answered from the cache"
    );
    let hits = setup.counter("kfauth.authz.cache_hit") - hits_before;
    assert!(hits >= 11, "kfauth.authz.cache_hit grew by {hits}");
}

fn denied_answers_expire_sooner_than_allowed_ones(setup: &Authz) {
    let user = "tom@example.com";
    let token = user_token(user, &[VIEWER_GROUP]);
    let allowed = Req::kserve("ttl", USER_NAMESPACE).bearer(&token);
    let denied = Req::kserve("ttl", TEAM_B_NAMESPACE).bearer(&token);
    let round = || {
        for response in setup.spread(&allowed) {
            expect::allowed(&response);
        }
        for response in setup.spread(&denied) {
            forbidden(&response, None);
        }
        (
            setup.reviews_of(user, USER_NAMESPACE, "ttl"),
            setup.reviews_of(user, TEAM_B_NAMESPACE, "ttl"),
        )
    };
    let denied_reviews = || setup.reviews_of(user, TEAM_B_NAMESPACE, "ttl");
    let started = Instant::now();
    let (allowed_first, denied_first) = round();
    assert!(allowed_first >= 1 && denied_first >= 1);
    // Within the denied TTL (1s) a repeat is answered from the cache: of
    // three denials back to back on one connection (so one worker; GET, no
    // body, so Envoy keeps the connection after the 403), at most one asks
    // again, when the cached answer expired between two of them.
    let repeat = Req::new(
        "GET",
        &kserve_host("ttl", TEAM_B_NAMESPACE),
        &predict_path("ttl"),
    )
    .bearer(&token);
    let mut conn = setup.conn();
    forbidden(&conn.send(&repeat), None);
    let asked = denied_reviews();
    let repeated = Instant::now();
    forbidden(&conn.send(&repeat), None);
    forbidden(&conn.send(&repeat), None);
    let took = repeated.elapsed();
    assert_eq!(conn.reconnects(), 0, "one connection, one worker");
    assert!(
        denied_reviews() <= asked + 1,
        "two repeats within {took:?} asked {} more reviews",
        denied_reviews() - asked
    );
    // ...after it, the denied review is asked again (never sooner than 1s
    // after the first round began), the allowed one is not.
    let asked = denied_reviews();
    wait::within(Duration::from_secs(10), || {
        forbidden(&setup.send(&denied), None);
        denied_reviews() > asked
    })
    .unwrap_or_else(|| panic!("deniedTtl 1s: the denied review was not asked again"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the denied answer expired {:?} after it was cached",
        started.elapsed()
    );
    let (allowed_then, denied_then) = round();
    assert_eq!(allowed_then, allowed_first, "allowedTtl 30s has not passed");
    assert!(
        denied_then > denied_first,
        "deniedTtl 1s passed: the denied review is asked again ({denied_first} → {denied_then})"
    );
}

fn metrics_count_authorization_decisions(setup: &Authz) {
    let names = [
        "kfauth.authz.allowed",
        "kfauth.authz.denied",
        "kfauth.authz.cache_miss",
        "kfauth.authz.cache_hit",
    ];
    let read = || names.map(|name| setup.counter(name));
    let before = read();
    let token = user_token("mia@example.com", &[VIEWER_GROUP]);
    let mut conn = setup.conn();
    expect::allowed(&conn.send(&Req::kserve("metrics", USER_NAMESPACE).bearer(&token)));
    expect::allowed(&conn.send(&Req::kserve("metrics", USER_NAMESPACE).bearer(&token)));
    forbidden(
        &conn.send(&Req::kserve("metrics", TEAM_B_NAMESPACE).bearer(&token)),
        None,
    );
    let after = read();
    let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    eprintln!("authz metric deltas {names:?}: {delta:?}");
    assert_eq!(delta, vec![2, 1, 2, 1], "{names:?}");
    let stats = setup.envoy.stats();
    assert!(
        stats
            .matching("kfauth.authz.allowed")
            .iter()
            .all(|(name, _)| name.starts_with("wasmcustom.")),
        "Envoy prefixes wasm metrics: {:?}",
        stats.containing("kfauth.authz")
    );
}

fn the_credential_is_sent_and_never_leaks(setup: &Authz) {
    let secret = setup.api.bearer_token();
    assert_eq!(
        setup.api.unauthorized_count(),
        0,
        "every review carried the right bearer token"
    );
    assert!(setup.api.sar_count() > 0);
    let names = setup.api.server_names_seen();
    assert!(
        !names.is_empty() && names.iter().all(|name| name == API_SERVER_SNI),
        "Envoy's TLS to the API server sends SNI {API_SERVER_SNI}: {names:?}"
    );
    let token = user_token(USER, &[]);
    let allowed = setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token));
    let seen = expect::allowed(&allowed);
    let denied = setup.send(&Req::kserve("leak", TEAM_B_NAMESPACE).bearer(&token));
    forbidden(&denied, None);
    let echoed = format!("{:?}", seen.headers);
    assert_eq!(
        seen.header("authorization"),
        None,
        "the caller's token is removed"
    );
    for response in [&allowed, &denied] {
        assert_secret_absent(
            &secret,
            "the API server token",
            &[&format!("{:?}", response.headers), &response.body],
        );
    }
    assert_secret_absent(&secret, "the API server token", &[&echoed]);
    assert_secret_absent(&secret, "the API server token", &[&setup.envoy.logs()]);
    expect::no_leak(&token, &[&allowed.body, &denied.body, &setup.envoy.logs()]);
}

fn every_review_sent_is_a_valid_subject_access_review(setup: &Authz) {
    if authorization_schemas().is_none() {
        report_skipped(
            "every_review_sent_is_a_valid_subject_access_review (OpenAPI part)",
            "../shared/data/k8s-openapi/authorization.k8s.io_v1.json not found; the built-in contract still applies",
        );
    }
    let reviews = setup.api.sar_requests();
    assert!(reviews.len() >= 10, "{} reviews", reviews.len());
    for review in &reviews {
        validate_sar_request(review).unwrap_or_else(|e| panic!("{e}: {review}"));
    }
    eprintln!("{} SubjectAccessReviews validated", reviews.len());
}

#[test]
fn rbac_decides_kubeflow_requests() {
    let setup = Authz::start(rbac_config(), 2);
    scenarios!(
        &setup,
        [
            the_profile_owner_may_predict_in_their_namespace,
            the_profile_owner_is_denied_in_another_namespace,
            the_host_port_is_ignored,
            a_group_grants_view,
            a_service_account_is_authorized_as_itself,
            kfp_runs_are_listed_per_namespace,
            a_non_resource_url_is_reviewed_by_path,
            the_verb_defaults_to_the_method,
            a_denial_carries_the_api_servers_reason,
            the_user_keeps_its_claim_prefix,
            a_guarded_route_needs_a_token,
            a_denied_grpc_request_gets_permission_denied,
            answers_are_cached_per_worker,
            denied_answers_expire_sooner_than_allowed_ones,
            metrics_count_authorization_decisions,
            the_credential_is_sent_and_never_leaks,
            every_review_sent_is_a_valid_subject_access_review,
        ]
    );
}

fn unavailable_config(failure_mode: &str) -> Value {
    with_rules(
        vec![dex_rule()],
        json!({
            "authorization": authorization(
                vec![kserve_rule()],
                "1s",
                json!({"failureMode": failure_mode}),
            ),
        }),
    )
}

/// Each failure: what the stand-in does, and how to undo it.
fn with_failure(setup: &mut Authz, failure: &str, check: impl Fn(&Authz, &str)) {
    match failure {
        "down" => setup.api.stop(),
        "slow" => setup
            .api
            .set_mode(ApiMode::Slow(Duration::from_millis(3000))),
        "500" => setup.api.set_mode(ApiMode::Fail),
        "garbage" => setup.api.set_mode(ApiMode::Garbage),
        "hangup" => setup.api.set_mode(ApiMode::Hangup),
        "credential" => setup.api.set_bearer_token("not-the-token-in-the-vm"),
        other => panic!("unknown failure {other}"),
    }
    check(setup, failure);
    match failure {
        "down" => setup.api.restart(),
        "credential" => setup
            .api
            .set_bearer_token(kfauth_testkit::apiserver::DEFAULT_BEARER_TOKEN),
        _ => setup.api.set_mode(ApiMode::Answer),
    }
}

const FAILURES: [&str; 6] = ["down", "slow", "500", "garbage", "hangup", "credential"];

#[test]
fn an_unavailable_api_server_denies_with_503() {
    let mut setup = Authz::start(unavailable_config("deny"), 2);
    let token = user_token(USER, &[]);
    let req = Req::kserve("iris", USER_NAMESPACE).bearer(&token);
    expect::allowed(&setup.send(&req));
    let mut failed = Vec::new();
    for failure in FAILURES {
        let model = format!("model-{failure}");
        let req = Req::kserve(&model, USER_NAMESPACE).bearer(&token);
        let errors_before = setup.counter("kfauth.authz.error");
        let unauthorized_before = setup.api.unauthorized_count();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_failure(&mut setup, failure, |setup, failure| {
                let started = Instant::now();
                let response = setup.send(&req);
                let took = started.elapsed();
                expect::unavailable(&response, "authorizer_unavailable");
                assert!(
                    took < Duration::from_millis(2500),
                    "{failure}: answered after {took:?}; the timeout is 1s, the stand-in answers after 3s"
                );
                if failure == "slow" {
                    assert!(took >= Duration::from_millis(950), "{took:?}");
                }
                let grpc = Req::new(
                    "POST",
                    &kserve_host(&model, USER_NAMESPACE),
                    &predict_path(&model),
                )
                .bearer(&token)
                .header("content-type", "application/grpc")
                .body(b"\0\0\0\0\0");
                expect::grpc_status(&setup.send(&grpc), 14, "authorizer_unavailable");
            });
            if failure == "credential" {
                assert!(
                    setup.api.unauthorized_count() >= unauthorized_before + 2,
                    "the stand-in refused the VM's token"
                );
            }
            assert!(
                setup.counter("kfauth.authz.error") >= errors_before + 2,
                "{failure}: kfauth.authz.error"
            );
            // Not cached: the next request asks again and is allowed.
            expect::allowed(&setup.send(&req));
        }));
        match outcome {
            Ok(()) => eprintln!("scenario api_server_{failure} ... ok"),
            Err(_) => {
                eprintln!("scenario api_server_{failure} ... FAILED");
                failed.push(failure);
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

#[test]
fn failure_mode_allow_passes_when_the_api_server_is_unavailable() {
    let mut setup = Authz::start(unavailable_config("allow"), 2);
    let token = user_token(USER, &[]);
    let mut failed = Vec::new();
    for failure in FAILURES {
        let req = Req::kserve(&format!("model-{failure}"), USER_NAMESPACE).bearer(&token);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_failure(&mut setup, failure, |setup, _| {
                let seen = expect::allowed(&setup.send(&req));
                assert_eq!(seen.header("kubeflow-userid"), Some(USER));
                let denied = Req::kserve("iris", TEAM_B_NAMESPACE).bearer(&token);
                expect::allowed(&setup.send(&denied));
            });
            forbidden(
                &setup.send(&Req::kserve("other", TEAM_B_NAMESPACE).bearer(&token)),
                None,
            );
        }));
        match outcome {
            Ok(()) => eprintln!("scenario allow_when_{failure} ... ok"),
            Err(_) => {
                eprintln!("scenario allow_when_{failure} ... FAILED");
                failed.push(failure);
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

#[test]
fn an_unset_token_variable_keeps_authentication_and_answers_reviews_unavailable() {
    // The WasmPlugin was applied before the gateway Deployment rolled out
    // with the token: the filter must load and keep authenticating.
    const UNSET: &str = "KFAUTH_TOKEN_NOT_ROLLED_OUT";
    assert!(std::env::var_os(UNSET).is_none(), "{UNSET} must not be set");
    let mut config = with_rules(
        vec![dex_rule(), sa_rule(json!({"tokenReview": {}}))],
        json!({"authorization": authorization(vec![kserve_rule()], "1s", json!({}))}),
    );
    config["authorization"]["apiserver"]["tokenEnv"] = json!(UNSET);
    let setup = Authz::start(config, 1);
    let warning =
        format!("authorization.apiserver.tokenEnv: environment variable `{UNSET}` is not set");
    let warned = || {
        setup
            .envoy
            .wasm_logs()
            .iter()
            .filter(|line| line.contains(&warning))
            .count()
    };
    let at_load = warned();
    assert!(
        at_load >= 1,
        "one warning per VM at load: {}",
        kfauth_testkit::envoy::log_excerpt(&setup.envoy.logs())
    );

    // Authentication is untouched: a valid token passes with its identity,
    // a bad one is 401, no token on a guarded route is 401.
    let token = user_token(USER, &["team-a"]);
    let plain = Req::new("GET", "kubeflow.example.com", "/jupyter/");
    let seen = expect::allowed(&setup.send(&plain.clone().bearer(&token)));
    assert_eq!(seen.header("kubeflow-userid"), Some(USER));
    expect::rejected(
        &setup.send(&plain.clone().bearer("not.a.token")),
        "token_malformed",
    );
    expect::token_missing(&setup.send(&Req::kserve("iris", USER_NAMESPACE)));

    // What needs a review gets failureMode's answer (deny: 503), saying why.
    let unavailable = |response: &kfauth_testkit::HttpResponse| {
        assert_eq!(response.status, 503, "{:?}", response.body);
        assert!(response.header("retry-after").is_some());
        assert_eq!(
            response.json(),
            json!({"code": 503, "reason": "authorizer_unavailable",
                   "detail": format!("no API server credential: `{UNSET}` is not set")})
        );
    };
    unavailable(&setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(&token)));
    // A service-account token of a `tokenReview` rule needs a TokenReview.
    unavailable(
        &setup.send(
            &plain
                .clone()
                .bearer(&sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT)),
        ),
    );

    assert_eq!(setup.api.sar_count(), 0, "no review without a credential");
    assert_eq!(setup.api.token_review_count(), 0);
    let stats = setup.envoy.stats();
    assert_eq!(stats.get("kfauth.authz.credential_missing"), Some(1));
    assert_eq!(stats.counter("kfauth.authz.error"), 2);
    assert_eq!(stats.counter("kfauth.jwt.denied.authorizer_unavailable"), 2);
    assert_eq!(warned(), at_load, "requests add no warning lines");
}

#[test]
fn a_present_token_variable_reports_no_missing_credential() {
    let setup = Authz::start(unavailable_config("deny"), 1);
    assert_eq!(
        setup.envoy.stats().get("kfauth.authz.credential_missing"),
        Some(0)
    );
}
