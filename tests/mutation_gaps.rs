//! Security checks that a mutation run (issue 17: single-line changes to the
//! checks, the suite run against each) showed no test would notice, now
//! pinned end to end in a real Envoy. Each scenario names the mutation it
//! catches.
//!
//! `one_gateway` (one worker, so one VM and one set of caches; `requireJwt`,
//! `skipPaths: ['^/dex/']`, `grpc.cookiePaths: ['^/ml_metadata']`, the default
//! session shield, a header budget on `^/jupyter/`, the KServe authorization
//! rule; the testkit's bootstrap leaves Envoy's `normalize_path`
//! and `merge_slashes` off, so the filter sees the path as the client wrote it
//! and the upstream echoes it back unchanged):
//! 1. *skipPaths on the canonical path* (mutation: match `skipPaths` on the raw
//!    path): `/dex/../x`, `/dex/%2e%2e/x`, `/dex/%2E%2E/x`, `/dex/./../x` and
//!    `/DEX/x` without a token get 401 `token_missing` and never reach the
//!    upstream, while `/dex/x` and `/x/../dex/y` (canonically `/dex/y`) pass;
//!    the upstream receives the path unchanged (Envoy normalized nothing).
//! 2. *cookiePaths on the canonical path* (mutation: match `cookiePaths` on
//!    the raw path): a gRPC request to `/x/../ml_metadata.MetadataStoreService/Get`
//!    or `//ml_metadata...` loses its cookie; one to `/ml_metadata/../x` keeps it.
//! 3. *authorization rules on the canonical path* (mutation: match rule paths
//!    on the raw path): `//v1/models/iris%3Apredict` and
//!    `/v1/models/../models/iris:predict` in another user's namespace are
//!    reviewed and get 403, as the plain path does.
//!    The same for *session and header-budget paths* (mutations: match
//!    `session.exemptPaths` or `headerBudgets[].paths` on the raw path; each
//!    was tried and caught): the session cookie is removed on `/oauth2/../x`,
//!    `/oauth2/%2e%2e/x` and `//x` and kept on `/oauth2/start`,
//!    `/x/../oauth2/start` and `//oauth2/start`; with a budget of 1,024 bytes
//!    on `^/jupyter/`, a 2,000-byte header gets 431 `header_too_large` on
//!    `/jupyter/`, `/x/../jupyter/`, `//jupyter/` and `/x/%2e%2e/jupyter/` and
//!    passes on `/jupyter/../x`; without it `/jupyter/` passes.
//! 4. *groups in the review cache key* (mutation: a cache key of user and
//!    attributes only): the same user, same request, with groups
//!    `[team-viewers]` (which may view the namespace) then `[team-other]`
//!    gets two reviews, 200 then 403 — and in the other order (a cached
//!    denial) 403 then 200; each review carries its own groups.
//! 5. *time at the edge of `clockSkew: 10s`* (mutations: the skew dropped or
//!    doubled on `exp` or `nbf` at verification; a stricter check on a token
//!    cache hit only costs a re-verification, so it is not seen here):
//!    `exp` = now − 8 s passes, now − 12 s gets 401
//!    `token_expired`; `nbf` = now + 8 s passes, now + 12 s gets 401
//!    `token_not_yet_valid`; each token is sent twice (verified, then from
//!    the token cache) with the same answer. And a token that expires while
//!    cached (mutation: the token cache serving entries past `exp` + skew;
//!    its entry TTL and its `exp` re-check on a hit each mask the other's
//!    removal, both removed are caught): `exp` = now − 7 s
//!    passes and is cached; 4 s later, past the skew, the same token gets 401
//!    `token_expired`.
//! 6. *answers the API server should never give* (stand-in modes
//!    `ForeignAudiences` and `AllowedAndDenied`): a TokenReview that
//!    authenticates a service-account token but whose `status.audiences` holds
//!    none of the rule's `tokenReview.audiences` gets 401 `token_revoked`
//!    (mutation: the client-side audience check removed); a
//!    SubjectAccessReview answered `allowed: true, denied: true` gets 403
//!    `forbidden` (mutation: `allowed` read without `denied`). The same
//!    requests pass with honest answers.
//!
//! `a_cached_token_is_refused_once_its_key_is_gone` (a remote JWKS, one
//! worker, `jwksRefreshInterval: 1s`; mutation: a token cache hit that skips
//! the key-generation check): token T passes twice (the second time from
//! the token cache); the IdP replaces its key set; once the worker holds the
//! new set (a token of the new key passes), the same T gets 401 `key_unknown`,
//! every time.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use authz_support::*;
use kfauth_testkit::apiserver::fixtures::{TEAM_B_NAMESPACE, USER, USER_NAMESPACE, VIEWER_GROUP};
use std::time::{Duration, Instant};

use kfauth_testkit::apiserver::{ApiMode, Review, FOREIGN_AUDIENCE};
use kfauth_testkit::expect;
use kfauth_testkit::plugin_config::{claims, uri_rule, with_rules, ISSUER};
use kfauth_testkit::{Alg, Gateway, Idp, JwksMode, JwksServer};
use serde_json::{json, Value};

/// The audience service-account tokens are reviewed for.
const SA_AUDIENCE: &str = "pipelines.kubeflow.org";

/// The ml-metadata gRPC service, as the KFP UI calls it.
const MLMD_METHOD: &str = "ml_metadata.MetadataStoreService/GetArtifacts";

fn one_gateway_config() -> Value {
    with_rules(
        vec![
            dex_rule(),
            sa_rule(json!({"tokenReview": {"audiences": [SA_AUDIENCE]}})),
        ],
        json!({
            "requireJwt": true,
            "clockSkew": "10s",
            "skipPaths": ["^/dex/"],
            "grpc": {"cookiePaths": ["^/ml_metadata"]},
            "headerBudgets": [{"paths": ["^/jupyter/"], "maxHeaderBytes": 1024}],
            "authorization": authorization(vec![kserve_rule()], "2s", json!({})),
        }),
    )
}

/// Requests without a token on paths that only look like `/dex/...`.
fn skip_paths_match_the_canonical_path(setup: &Authz) {
    let before = setup.upstream.requests();
    for path in [
        "/dex/../x",
        "/dex/%2e%2e/x",
        "/dex/%2E%2E/x",
        "/dex/./../x",
        "/dex/..",
        "/DEX/x",
    ] {
        let response = setup.send(&Req::new("GET", "gw", path));
        assert_eq!(
            response.status, 401,
            "{path}: escaped the skipPaths through a spelling: {} {:?}",
            response.status, response.body
        );
        expect::token_missing(&response);
    }
    assert_eq!(
        setup.upstream.requests(),
        before,
        "a request without a token reached the upstream"
    );
    for path in ["/dex/x", "/x/../dex/y"] {
        let seen = expect::allowed(&setup.send(&Req::new("GET", "gw", path)));
        assert_eq!(seen.path, path, "Envoy passes the path as written");
    }
}

/// A gRPC request (over HTTP/1.1 to the echo upstream) with a cookie.
fn grpc_with_cookie(path: &str, token: &str) -> Req {
    Req::new("POST", "gw", path)
        .bearer(token)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("cookie", "mlmd_state=abc; other=def")
        .body(b"\0\0\0\0\0")
}

fn cookie_paths_match_the_canonical_path(setup: &Authz) {
    let token = user_token(USER, &[]);
    for path in [
        format!("/{MLMD_METHOD}"),
        format!("/x/../{MLMD_METHOD}"),
        format!("//{MLMD_METHOD}"),
        format!("/x/%2e%2e/{MLMD_METHOD}"),
    ] {
        let seen = expect::allowed(&setup.send(&grpc_with_cookie(&path, &token)));
        assert_eq!(seen.path, path);
        assert_eq!(
            seen.header("cookie"),
            None,
            "{path}: the cookie diet missed a gRPC call to ml-metadata"
        );
    }
    for path in ["/ml_metadata/../x", "/ml_metadata/%2e%2e/x"] {
        let seen = expect::allowed(&setup.send(&grpc_with_cookie(path, &token)));
        assert_eq!(
            seen.header("cookie"),
            Some("mlmd_state=abc; other=def"),
            "{path}: not an ml-metadata call, the cookie stays"
        );
    }
}

/// The session shield's `exemptPaths` (default `^/oauth2/`) on the canonical
/// path: `/oauth2/../x` is `/x`, so the session cookie must not pass there.
fn session_exempt_paths_match_the_canonical_path(setup: &Authz) {
    let token = user_token(USER, &[]);
    let send = |path: &str| {
        let request = Req::new("GET", "gw", path)
            .bearer(&token)
            .header("cookie", "oauth2_proxy_kubeflow=session; other=1");
        expect::allowed(&setup.send(&request))
    };
    for path in ["/oauth2/../x", "/oauth2/%2e%2e/x", "//x"] {
        assert_eq!(
            send(path).header("cookie"),
            Some("other=1"),
            "{path}: the session escaped to a backend through an exempt-looking spelling"
        );
    }
    for path in ["/oauth2/start", "/x/../oauth2/start", "//oauth2/start"] {
        assert_eq!(
            send(path).header("cookie"),
            Some("oauth2_proxy_kubeflow=session; other=1"),
            "{path}: oauth2-proxy's own route keeps the session"
        );
    }
}

/// `headerBudgets[].paths` on the canonical path: `/x/../jupyter/` is
/// budgeted, `/jupyter/../x` is not.
fn header_budget_paths_match_the_canonical_path(setup: &Authz) {
    let token = user_token(USER, &[]);
    let big = "v".repeat(2000);
    let send = |path: &str| {
        setup.send(
            &Req::new("GET", "gw", path)
                .bearer(&token)
                .header("x-large", &big),
        )
    };
    for path in [
        "/jupyter/",
        "/x/../jupyter/",
        "//jupyter/",
        "/x/%2e%2e/jupyter/",
    ] {
        let response = send(path);
        assert_eq!(
            response.status, 431,
            "{path}: a budgeted path escaped its budget: {:?}",
            response.body
        );
        assert_eq!(response.json()["reason"], "header_too_large");
    }
    for path in ["/jupyter/../x", "/jupyter/%2e%2e/x"] {
        expect::allowed(&send(path));
    }
    // Within budget on a budgeted path: it is the large header that counts.
    expect::allowed(&setup.send(&Req::new("GET", "gw", "/jupyter/").bearer(&token)));
}

fn authorization_rules_match_the_canonical_path(setup: &Authz) {
    let token = user_token(USER, &[]);
    let host = kserve_host("iris", TEAM_B_NAMESPACE);
    for path in [
        "/v1/models/iris:predict",
        "//v1/models/iris%3Apredict",
        "/v1/models/../models/iris:predict",
        "/v1/./models//iris%3apredict",
    ] {
        let before = setup.reviews_of(USER, TEAM_B_NAMESPACE, "iris");
        let response = setup.send(
            &Req::new("POST", &host, path)
                .bearer(&token)
                .header("content-type", "application/json")
                .body(b"{}"),
        );
        forbidden(&response, None);
        // The denial was cached by the first request; the others ask nothing
        // new, or ask again once deniedTtl passed: either way, no pass.
        assert!(setup.reviews_of(USER, TEAM_B_NAMESPACE, "iris") >= before.max(1));
    }
    // The allowed control: the same spellings in the user's own namespace pass.
    let seen = expect::allowed(
        &setup.send(
            &Req::new(
                "POST",
                &kserve_host("iris", USER_NAMESPACE),
                "//v1/models/iris%3Apredict",
            )
            .bearer(&token)
            .header("content-type", "application/json")
            .body(b"{}"),
        ),
    );
    assert_eq!(seen.header("kubeflow-userid"), Some(USER));
    assert!(setup.reviews_of(USER, USER_NAMESPACE, "iris") >= 1);
}

/// The same user and request with two group sets: two reviews, two answers.
fn groups_are_part_of_the_review_cache_key(setup: &Authz) {
    let predict = |token: &str| setup.send(&Req::kserve("iris", USER_NAMESPACE).bearer(token));
    for (user, first, second) in [
        ("carol@example.com", VIEWER_GROUP, "team-other"),
        ("dave@example.com", "team-other", VIEWER_GROUP),
    ] {
        for groups in [first, second] {
            let response = predict(&user_token(user, &[groups]));
            if groups == VIEWER_GROUP {
                let seen = expect::allowed(&response);
                assert_eq!(seen.header("kubeflow-userid"), Some(user));
            } else {
                forbidden(&response, None);
            }
        }
        let reviews = setup.reviews_for(user);
        let groups: Vec<&Value> = reviews.iter().map(|r| &r["spec"]["groups"]).collect();
        assert_eq!(
            groups,
            vec![&json!([first]), &json!([second])],
            "{user}: one review per group set"
        );
    }
}

/// `exp` and `nbf` 2 s inside and outside the 10 s clock skew.
fn exp_and_nbf_at_the_edge_of_the_clock_skew(setup: &Authz) {
    let at = |field: &str, offset: i64| {
        let mut claims = claims("erin@example.com", &[]);
        let now = i64::try_from(kfauth_testkit::idp::now()).unwrap();
        claims[field] = json!(now + offset);
        Idp::shared().sign(Alg::ES256, &claims)
    };
    let expiring = at("exp", -7);
    let issued = Instant::now();
    expect::allowed(&setup.send(&Req::new("GET", "gw", "/echo").bearer(&expiring)));
    for (field, offset, refusal) in [
        ("exp", -8, None),
        ("exp", -12, Some("token_expired")),
        ("nbf", 8, None),
        ("nbf", 12, Some("token_not_yet_valid")),
    ] {
        let token = at(field, offset);
        // Verified, then served from the token cache: the same answer.
        for attempt in ["verified", "cached"] {
            let response = setup.send(&Req::new("GET", "gw", "/echo").bearer(&token));
            match refusal {
                None => {
                    assert_eq!(
                        response.status, 200,
                        "{field} = now {offset:+} s ({attempt}) is within clockSkew 10s: {:?}",
                        response.body
                    );
                }
                Some(reason) => {
                    assert_eq!(
                        response.status, 401,
                        "{field} = now {offset:+} s ({attempt}) is beyond clockSkew 10s: {:?}",
                        response.body
                    );
                    expect::rejected(&response, reason);
                }
            }
        }
    }
    // Cached at now − 7 s; 4 s later it is 11 s past `exp`.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(issued.elapsed()));
    expect::rejected(
        &setup.send(&Req::new("GET", "gw", "/echo").bearer(&expiring)),
        "token_expired",
    );
}

/// A registered service-account token of `team-ci/runner`.
fn registered_sa_token(setup: &Authz) -> String {
    let token = sa_token("team-ci", "runner");
    setup
        .api
        .register_service_account_token(&token, "team-ci", "runner", &[SA_AUDIENCE]);
    token
}

fn answers_the_api_server_should_never_give_are_refused(setup: &Authz) {
    let echo = |token: &str| setup.send(&Req::new("GET", "gw", "/echo").bearer(token));
    let honest = expect::allowed(&echo(&registered_sa_token(setup)));
    assert_eq!(
        honest.header("kubeflow-userid"),
        Some(sa_username("team-ci", "runner").as_str())
    );

    setup
        .api
        .set_mode_for(Review::Token, ApiMode::ForeignAudiences);
    let reviews = setup.api.token_review_count();
    let before = setup.upstream.requests();
    let response = echo(&registered_sa_token(setup));
    setup.api.set_mode_for(Review::Token, ApiMode::Answer);
    assert_eq!(
        setup.api.token_review_count(),
        reviews + 1,
        "the token was reviewed"
    );
    assert_eq!(
        response.status, 401,
        "a TokenReview for {FOREIGN_AUDIENCE} only authenticated the token: {:?}",
        response.body
    );
    assert_eq!(response.json()["reason"], "token_revoked");
    assert_eq!(
        setup.upstream.requests(),
        before,
        "the upstream was reached"
    );

    let predict = |model: &str| {
        setup.send(
            &Req::new(
                "POST",
                &kserve_host(model, USER_NAMESPACE),
                &predict_path(model),
            )
            .bearer(&user_token(USER, &[]))
            .header("content-type", "application/json")
            .body(b"{}"),
        )
    };
    expect::allowed(&predict("honest"));
    setup
        .api
        .set_mode_for(Review::SubjectAccess, ApiMode::AllowedAndDenied);
    let response = predict("contradiction");
    setup
        .api
        .set_mode_for(Review::SubjectAccess, ApiMode::Answer);
    assert_eq!(setup.reviews_of(USER, USER_NAMESPACE, "contradiction"), 1);
    assert_eq!(
        response.status, 403,
        "allowed and denied at once was read as allowed: {:?}",
        response.body
    );
    // The stand-in's `status.reason` speaks for the allowed half: not passed on.
    assert_eq!(
        response.json(),
        serde_json::json!({"code": 403, "reason": "forbidden",
                           "detail": "the API server answered both allowed and denied"})
    );
}

#[test]
fn one_gateway() {
    let setup = Authz::start(one_gateway_config(), 1);
    skip_paths_match_the_canonical_path(&setup);
    cookie_paths_match_the_canonical_path(&setup);
    authorization_rules_match_the_canonical_path(&setup);
    session_exempt_paths_match_the_canonical_path(&setup);
    header_budget_paths_match_the_canonical_path(&setup);
    groups_are_part_of_the_review_cache_key(&setup);
    answers_the_api_server_should_never_give_are_refused(&setup);
    exp_and_nbf_at_the_edge_of_the_clock_skew(&setup);
    setup.envoy.assert_no_vm_trap();
}

#[test]
fn a_cached_token_is_refused_once_its_key_is_gone() {
    let old_idp = Idp::shared();
    let new_idp = Idp::shared_second();
    let jwks = JwksServer::start(&old_idp.jwks_json());
    let config = with_rules(
        vec![uri_rule(ISSUER, &jwks.uri())],
        json!({"jwksRefreshInterval": "1s", "jwksRefetchMinInterval": "1s"}),
    );
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| s.with_jwks_cluster(port).with_concurrency(1));
    let t = old_idp.sign(Alg::ES256, &claims("alice@example.com", &["a"]));
    for _ in 0..2 {
        let seen = expect::allowed(&gateway.get_bearer_fresh("/echo", &t));
        assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    }

    jwks.set_mode(JwksMode::Serve(new_idp.jwks_json()));
    let fresh = new_idp.sign(Alg::ES256, &claims("bob@example.com", &[]));
    let started = Instant::now();
    while gateway.get_bearer_fresh("/echo", &fresh).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the rotated key set never reached the worker"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..3 {
        expect::rejected(&gateway.get_bearer_fresh("/echo", &t), "key_unknown");
    }
    gateway.assert_no_vm_trap();
}
