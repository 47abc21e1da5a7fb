//! Identity isolation under load: Envoy with four workers (four VMs, each
//! with its own verified-token and decision caches) takes 4,000 requests
//! from 200 keep-alive connections at once, from 300 distinct users, with
//! forged tokens mixed in and spoofed identity headers on every request
//! (`kubeflow-userid` and `kubeflow-groups` in odd cases, repeated, and
//! `kubeflow_userid` with an underscore). Part of the traffic is KServe
//! predictions guarded by a SubjectAccessReview rule, where every other
//! user has access, interleaved on each connection so that a user without
//! access follows one with access on the same model, connection and worker.
//! - every valid request reaches the upstream with exactly its own user and
//!   groups, once each, and none of the spoofed values;
//! - every forged token gets 401 and reaches nothing;
//! - every guarded request gets its user's own answer: 200 with access, 403
//!   without, never the neighbour's;
//! - the API server is never asked about a spoofed identity;
//! - the upstream answered exactly as many requests as got 200.
//!
//! The counts are printed.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use authz_support::*;
use kfauth_testkit::apiserver::fixtures::{namespace, role_binding, Subject};
use kfauth_testkit::plugin_config::{claims, with_rules};
use kfauth_testkit::{forge, Alg, HttpResponse, Idp};
use serde_json::json;

const WORKERS: u32 = 4;
const USERS: usize = 300;
const CONNECTIONS: usize = 200;
const PER_CONNECTION: usize = 20;
const NAMESPACE: &str = "isolation";
/// A host no authorization rule matches.
const PLAIN_HOST: &str = "gateway.kfauth.test";
/// Markers of every spoofed value; none may reach the upstream or the API server.
const SPOOF: &str = "spoofed";

fn email(user: usize) -> String {
    format!("iso-user-{user:03}@example.com")
}

fn groups(user: usize) -> Vec<String> {
    vec![format!("team-{}", user % 7), format!("solo-{user:03}")]
}

/// Even users may view InferenceServices in [`NAMESPACE`].
fn has_access(user: usize) -> bool {
    user.is_multiple_of(2)
}

fn bindings() -> String {
    let users: Vec<String> = (0..USERS)
        .filter(|user| has_access(*user))
        .map(email)
        .collect();
    let subjects: Vec<Subject> = users.iter().map(|user| Subject::User(user)).collect();
    [
        namespace(NAMESPACE),
        role_binding(NAMESPACE, "iso-viewers", "kubeflow-view", &subjects),
    ]
    .join("---\n")
}

/// What one request is, and so what its answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A valid token on an unguarded route: 200 as its user.
    Plain,
    /// A valid token on the guarded KServe route: 200 or 403 by RBAC.
    Guarded,
    /// A forged token: 401.
    Forged,
}

struct Plan {
    index: usize,
    user: usize,
    kind: Kind,
    req: Req,
}

/// Request `r` of connection `c`: users rotate so that neighbours on a
/// connection differ (and alternate access on guarded requests); one in ten
/// is forged, three in ten guarded.
fn plan(c: usize, r: usize, tokens: &[String], forgeries: &[String]) -> Plan {
    let index = c * PER_CONNECTION + r;
    let user = (c * 37 + r) % USERS;
    let kind = match index % 10 {
        0 => Kind::Forged,
        1..=3 => Kind::Guarded,
        _ => Kind::Plain,
    };
    let mut req = match kind {
        // Two models: identical reviews for many users, back to back.
        Kind::Guarded => {
            let model = format!("model-{}", r % 2);
            Req::kserve(&model, NAMESPACE).bearer(&tokens[user])
        }
        Kind::Plain => Req::new("GET", PLAIN_HOST, &format!("/iso/{index}")).bearer(&tokens[user]),
        Kind::Forged => Req::new("GET", PLAIN_HOST, &format!("/iso/{index}"))
            .bearer(&forgeries[index % forgeries.len()]),
    };
    // Spoofed identity on every request: odd case, repeated, underscored.
    req = req
        .header(
            "Kubeflow-Userid",
            &format!("{SPOOF}-{index}@evil.example.com"),
        )
        .header(
            "KUBEFLOW-USERID",
            &format!("{SPOOF}-again@evil.example.com"),
        )
        .header("kubeflow-GROUPS", &format!("{SPOOF}-admins"))
        .header(
            "kubeflow_userid",
            &format!("{SPOOF}-underscore@evil.example.com"),
        )
        .header("Kubeflow_Groups", &format!("{SPOOF}-underscore-admins"))
        .header("x-request-index", &index.to_string());
    Plan {
        index,
        user,
        kind,
        req,
    }
}

/// Checks one answer against its plan; returns a label for the tally.
fn check(plan: &Plan, response: &HttpResponse) -> &'static str {
    let what = format!(
        "request {} ({:?}, user {})",
        plan.index, plan.kind, plan.user
    );
    match plan.kind {
        Kind::Forged => {
            assert_eq!(
                response.status, 401,
                "{what}: a forged token got {} {:?}",
                response.status, response.body
            );
            return "forged: 401";
        }
        Kind::Guarded if !has_access(plan.user) => {
            forbidden(response, None);
            return "guarded, no access: 403";
        }
        _ => {}
    }
    assert_eq!(
        response.status, 200,
        "{what}: expected 200, got {} {:?}",
        response.status, response.body
    );
    let seen = response.echoed();
    assert_eq!(
        seen.header("x-request-index"),
        Some(plan.index.to_string().as_str()),
        "{what}: the upstream's answer is for another request"
    );
    assert_eq!(
        seen.header("kubeflow-userid"),
        Some(email(plan.user).as_str()),
        "{what}: wrong identity upstream"
    );
    assert_eq!(
        seen.header("kubeflow-groups"),
        Some(groups(plan.user).join(",").as_str()),
        "{what}: wrong groups upstream"
    );
    for (name, value) in &seen.headers {
        assert!(
            !value.contains(SPOOF),
            "{what}: a spoofed header reached the upstream: {name}: {value}"
        );
        assert!(
            !name.eq_ignore_ascii_case("authorization"),
            "{what}: the token was forwarded"
        );
    }
    match plan.kind {
        Kind::Guarded => "guarded, access: 200",
        _ => "plain: 200",
    }
}

#[test]
fn four_thousand_requests_keep_every_identity_apart() {
    let config = with_rules(
        vec![dex_rule()],
        json!({"authorization": authorization(vec![kserve_rule()], "2s", json!({}))}),
    );
    let setup = Authz::start(config, WORKERS);
    setup.api.apply_yaml(&bindings()).unwrap();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..USERS)
            .map(|user| {
                let groups = groups(user);
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                user_token(&email(user), &groups)
            })
            .collect(),
    );
    // Forgeries naming real users: another key under the provider's kid,
    // `alg: none`, one user's signature over another's claims.
    let forgeries: Arc<Vec<String>> = Arc::new(
        (0..30)
            .flat_map(|i| {
                let victim = claims(&email(i), &["admins"]);
                [
                    forge::impostor_es256(Idp::shared().kid(Alg::ES256), &victim),
                    forge::alg_none(&victim),
                    forge::replace_payload(&tokens[(i + 1) % USERS], &victim),
                ]
            })
            .collect(),
    );

    // Envoy's readiness probe reached the upstream too.
    let upstream_before = setup.upstream.requests();
    let port = setup.envoy.port();
    let barrier = Arc::new(std::sync::Barrier::new(CONNECTIONS));
    let started = Instant::now();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let tokens = Arc::clone(&tokens);
            let forgeries = Arc::clone(&forgeries);
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut conn = Conn::new(port);
                    let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
                    barrier.wait();
                    for r in 0..PER_CONNECTION {
                        let plan = plan(c, r, &tokens, &forgeries);
                        let response = conn.send(&plan.req);
                        *tally.entry(check(&plan, &response)).or_default() += 1;
                    }
                    tally
                })
                .unwrap()
        })
        .collect();
    let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
    for thread in threads {
        for (label, n) in thread.join().expect("a client thread failed") {
            *tally.entry(label).or_default() += n;
        }
    }
    let took = started.elapsed();
    let total: usize = tally.values().sum();
    println!(
        "{total} requests over {CONNECTIONS} connections, {USERS} users, {WORKERS} workers, in {took:?}: {tally:?}"
    );
    assert_eq!(total, CONNECTIONS * PER_CONNECTION);
    let passed = tally["plain: 200"] + tally["guarded, access: 200"];
    assert_eq!(
        setup.upstream.requests() - upstream_before,
        passed,
        "the upstream saw exactly the requests that got 200"
    );
    assert!(tally["forged: 401"] >= 400, "{tally:?}");
    assert!(tally["guarded, no access: 403"] >= 500, "{tally:?}");

    let reviews = setup.api.sar_requests();
    println!(
        "{} SubjectAccessReviews for {} guarded requests",
        reviews.len(),
        tally["guarded, access: 200"] + tally["guarded, no access: 403"]
    );
    for review in &reviews {
        let text = review.to_string();
        assert!(
            !text.contains(SPOOF),
            "a spoofed identity was reviewed: {text}"
        );
        let user = review["spec"]["user"].as_str().unwrap_or_default();
        assert!(
            user.starts_with("iso-user-"),
            "a review for an unexpected user: {text}"
        );
    }
    let per_worker = setup.envoy.stats().connections_per_worker();
    println!("connections per worker: {per_worker:?}");
    assert!(
        per_worker.iter().filter(|n| **n > 0).count() >= 2,
        "the load reached {per_worker:?}"
    );
    setup.envoy.assert_no_vm_trap();
}
