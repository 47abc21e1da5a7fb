//! Keys found by OpenID Connect discovery: a rule with an `issuer` and
//! neither `jwks` nor `jwksUri` reads `{issuer}/.well-known/openid-configuration`
//! and fetches the `jwks_uri` it names (four workers, one Envoy):
//! - issuer `http://127.0.0.1:PORT` whose document names itself and
//!   `/keys` on the same server: RS256 and ES256 tokens pass, over the
//!   Istio-named cluster of the issuer; a kid outside the discovered set gets
//!   401 key_unknown;
//! - a `jwks_uri` on another host is fetched over that host's own
//!   Istio-named cluster;
//! - with `jwksCluster`, both the document and the keys go through that
//!   cluster (the issuer's host has no cluster of its own);
//! - a document whose `issuer` differs from the rule's, by host or by a
//!   trailing slash, is refused: tokens get 503 jwks_unavailable with
//!   retry-after, and the `jwks_uri` it names is never fetched.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::idp::standard_claims;
use kfauth_testkit::jwks_server::{discovery_document, DISCOVERY_PATH};
use kfauth_testkit::plugin_config::{kubeflow_rule, with_rules, AUDIENCE};
use kfauth_testkit::{expect, scenarios, Alg, Cluster, Gateway, HttpResponse, Idp};
use kfauth_testkit::{JwksMode, JwksServer};
use serde_json::json;

/// An issuer without a cluster of its own: only `jwksCluster` reaches it.
const ISSUER_VIA_CLUSTER: &str = "http://idp-c.kfauth.test";
const CLUSTER: &str = "idp-c-keys";

struct Setup {
    gateway: Gateway,
    /// Discovery and keys on one server; the issuer is its origin.
    same_host: JwksServer,
    /// Discovery only; its document points at `keys_host`.
    split: JwksServer,
    keys_host: JwksServer,
    /// Reached through `jwksCluster` only.
    via_cluster: JwksServer,
    /// Documents naming another issuer.
    impostor: JwksServer,
    trailing_slash: JwksServer,
}

fn token(issuer: &str, idp: &Idp, alg: Alg) -> String {
    idp.sign(
        alg,
        &standard_claims(issuer, AUDIENCE, "alice@example.com", &["a"]),
    )
}

fn send(setup: &Setup, token: &str) -> HttpResponse {
    setup.gateway.get_bearer_fresh("/echo", token)
}

fn start() -> Setup {
    let shared = Idp::shared().jwks_json();
    let same_host = JwksServer::start_discoverable(&shared);

    let keys_host = JwksServer::start_with(
        "127.0.0.1:0",
        "/jwks",
        JwksMode::Serve(Idp::shared_second().jwks_json()),
    );
    let split = JwksServer::start_with("127.0.0.1:0", DISCOVERY_PATH, JwksMode::Fail);
    split.set_mode(JwksMode::Serve(discovery_document(
        &split.origin(),
        &keys_host.uri(),
    )));

    let via_cluster = JwksServer::start(&shared);
    via_cluster.route(
        DISCOVERY_PATH,
        JwksMode::Serve(discovery_document(
            ISSUER_VIA_CLUSTER,
            &format!("{ISSUER_VIA_CLUSTER}/keys"),
        )),
    );

    let impostor = JwksServer::start_discoverable(&shared);
    impostor.route(
        DISCOVERY_PATH,
        JwksMode::Serve(discovery_document(
            "https://impostor.kfauth.test",
            &impostor.uri(),
        )),
    );
    let trailing_slash = JwksServer::start_discoverable(&shared);
    trailing_slash.route(
        DISCOVERY_PATH,
        JwksMode::Serve(discovery_document(
            &format!("{}/", trailing_slash.origin()),
            &trailing_slash.uri(),
        )),
    );

    let mut cluster_rule = kubeflow_rule(ISSUER_VIA_CLUSTER, json!({"jwksCluster": CLUSTER}));
    cluster_rule["outputClaimToHeaders"][0]["prefix"] = json!("c:");
    let config = with_rules(
        vec![
            kubeflow_rule(&same_host.origin(), json!({})),
            kubeflow_rule(&split.origin(), json!({})),
            cluster_rule,
            kubeflow_rule(&impostor.origin(), json!({})),
            kubeflow_rule(&trailing_slash.origin(), json!({})),
        ],
        json!({}),
    );
    let ports = [
        same_host.port(),
        split.port(),
        keys_host.port(),
        impostor.port(),
        trailing_slash.port(),
    ];
    let cluster_port = via_cluster.port();
    let gateway = Gateway::start_with(config, |mut settings| {
        for port in ports {
            settings = settings.with_jwks_cluster(port);
        }
        settings
            .with_cluster(Cluster::loopback(CLUSTER, cluster_port))
            .with_concurrency(4)
    });
    Setup {
        gateway,
        same_host,
        split,
        keys_host,
        via_cluster,
        impostor,
        trailing_slash,
    }
}

fn discovered_keys_verify_tokens(setup: &Setup) {
    let issuer = setup.same_host.origin();
    for alg in [Alg::RS256, Alg::ES256] {
        let seen = expect::allowed(&send(setup, &token(&issuer, Idp::shared(), alg)));
        assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
        assert_eq!(seen.header("kubeflow-groups"), Some("a"));
    }
    assert!(setup.same_host.hits_at(DISCOVERY_PATH) >= 1);
    assert!(
        setup.same_host.hits() >= 1,
        "the discovered jwks_uri was fetched"
    );
    // Verification uses the discovered set, and only it.
    let foreign = token(&issuer, Idp::shared_second(), Alg::RS256);
    expect::rejected(&send(setup, &foreign), "key_unknown");
}

fn a_jwks_uri_on_another_host_uses_that_hosts_cluster(setup: &Setup) {
    let issuer = setup.split.origin();
    for alg in [Alg::RS256, Alg::ES256] {
        let seen = expect::allowed(&send(setup, &token(&issuer, Idp::shared_second(), alg)));
        assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    }
    assert!(setup.split.hits_at(DISCOVERY_PATH) >= 1);
    assert!(setup.keys_host.hits() >= 1);
}

fn jwks_cluster_carries_discovery_and_keys(setup: &Setup) {
    let seen = expect::allowed(&send(
        setup,
        &token(ISSUER_VIA_CLUSTER, Idp::shared(), Alg::RS256),
    ));
    assert_eq!(seen.header("kubeflow-userid"), Some("c:alice@example.com"));
    assert!(setup.via_cluster.hits_at(DISCOVERY_PATH) >= 1);
    assert!(setup.via_cluster.hits() >= 1);
}

fn a_document_for_another_issuer_is_refused(setup: &Setup) {
    for (server, what) in [
        (&setup.impostor, "another host"),
        (&setup.trailing_slash, "a trailing slash"),
    ] {
        let t = token(&server.origin(), Idp::shared(), Alg::RS256);
        for _ in 0..3 {
            let response = send(setup, &t);
            assert_eq!(
                response.status, 503,
                "document naming {what} as issuer: got {} {:?}",
                response.status, response.body
            );
            expect::unavailable(&response, "jwks_unavailable");
        }
        assert!(
            server.hits_at(DISCOVERY_PATH) >= 1,
            "the document ({what}) was fetched"
        );
        assert_eq!(
            server.hits(),
            0,
            "the jwks_uri of a document naming {what} as issuer was fetched"
        );
    }
}

#[test]
fn keys_are_found_by_openid_discovery() {
    let setup = start();
    scenarios!(
        &setup,
        [
            discovered_keys_verify_tokens,
            a_jwks_uri_on_another_host_uses_that_hosts_cluster,
            jwks_cluster_carries_discovery_and_keys,
            a_document_for_another_issuer_is_refused,
        ]
    );
}
