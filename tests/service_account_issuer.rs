//! Kubeflow's machine-to-machine setup, as the `m2m-dex-and-kind` overlay of
//! kubeflow/manifests declares it (RequestAuthentications `m2m-token-issuer`
//! and `dex-jwt`, see shared/data/kubeflow-manifests/rendered/
//! m2m-dex-and-kind.auth-policies.yaml), pasted as kfauth rules, in an Envoy
//! with four workers:
//! - a Kubernetes service-account token (issuer
//!   `https://kubernetes.default.svc.cluster.local`, the API server as
//!   audience, the nested `kubernetes.io` claim object) is verified with keys
//!   from `http://cluster-jwks-proxy.istio-system.svc.cluster.local/openid/v1/jwks`
//!   over the cluster Istio names `outbound|80||cluster-jwks-proxy...`; upstream
//!   sees `kubeflow-userid: system:serviceaccount:NAMESPACE:NAME`, no
//!   `kubeflow-groups` (service accounts have none), and the Authorization
//!   header as sent (`forwardOriginalToken: true`); a client's own
//!   `kubeflow-userid` is replaced;
//! - a token of the short issuer `https://kubernetes.default.svc` passes with
//!   the same keys;
//! - a Dex token passes, its keys found by OpenID discovery (the `dex-jwt`
//!   rule has no `jwksUri`) over `outbound|5556||dex.auth.svc.cluster.local`,
//!   with `email` and `groups` mapped;
//! - an expired service-account token gets 401 token_expired;
//! - the rules are the overlay's own: when `../shared/data` is there, they
//!   equal the `jwtRules` of its RequestAuthentications (else that check
//!   reports itself SKIPPED).

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::apiserver::conformance::shared_data_file;
use kfauth_testkit::idp::{now, standard_claims};
use kfauth_testkit::kubeflow_keys::{
    KubeflowKeys, DEX_DISCOVERY_PATH, DEX_ISSUER, JWKS_PROXY_HOST, JWKS_PROXY_PATH,
};
use kfauth_testkit::plugin_config::request_authentication_rules;
use kfauth_testkit::{expect, scenarios, Alg, Gateway, HttpResponse, Idp};
use serde_json::{json, Value};

const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const SA_ISSUER_SHORT: &str = "https://kubernetes.default.svc";
/// The overlay's RequestAuthentications, relative to the shared data.
const M2M_MANIFEST: &str = "kubeflow-manifests/rendered/m2m-dex-and-kind.auth-policies.yaml";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:kubeflow-user-example-com:default-editor";

struct Setup {
    gateway: Gateway,
    keys: KubeflowKeys,
}

/// The Istio rules of the overlay, field for field.
fn plugin_config() -> Value {
    let rule = |issuer: &str, keys: Value, user_claim: &str| {
        let mut rule = json!({
            "issuer": issuer,
            "forwardOriginalToken": true,
            "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}],
            "outputClaimToHeaders": [
                {"claim": user_claim, "header": "kubeflow-userid"},
                {"claim": "groups", "header": "kubeflow-groups"},
            ],
        });
        kfauth_testkit::plugin_config::merge(&mut rule, keys);
        rule
    };
    let proxy = json!({"jwksUri": format!("http://{JWKS_PROXY_HOST}{JWKS_PROXY_PATH}")});
    json!({
        "jwtRules": [
            rule(DEX_ISSUER, json!({}), "email"),
            rule(SA_ISSUER, proxy.clone(), "sub"),
            rule(SA_ISSUER_SHORT, proxy, "sub"),
        ],
    })
}

fn start() -> Setup {
    let keys = KubeflowKeys::start();
    let gateway = Gateway::start_with(plugin_config(), |settings| {
        keys.route(settings).with_concurrency(4)
    });
    Setup { gateway, keys }
}

/// A projected service-account token's claims, as the API server issues them.
fn sa_claims(issuer: &str, issued: u64, lifetime: u64) -> Value {
    json!({
        "aud": [SA_ISSUER],
        "exp": issued + lifetime,
        "iat": issued,
        "nbf": issued,
        "iss": issuer,
        "jti": "7f0c3f0e-5f7a-4c1e-9a51-2f7b1d6c9e10",
        "kubernetes.io": {
            "namespace": "kubeflow-user-example-com",
            "node": {"name": "kind-control-plane", "uid": "0b8f6c5e-1d2a-4e3b-8c7d-6a5b4c3d2e1f"},
            "pod": {"name": "notebook-0", "uid": "5c2d7e1a-3b4f-4a6c-9d8e-7f6a5b4c3d2e"},
            "serviceaccount": {"name": "default-editor", "uid": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"},
            "warnafter": issued + 3607,
        },
        "sub": SERVICE_ACCOUNT,
    })
}

fn sa_token(issuer: &str) -> String {
    Idp::shared_second().sign(Alg::RS256, &sa_claims(issuer, now(), 3600))
}

fn send(setup: &Setup, token: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    setup
        .gateway
        .get_verbatim("/pipeline/apis/v2beta1/runs", &headers)
}

fn a_service_account_token_becomes_kubeflow_userid(setup: &Setup) {
    let token = sa_token(SA_ISSUER);
    let seen = expect::allowed(&send(
        setup,
        &token,
        &[("kubeflow-userid", "admin@example.com")],
    ));
    assert_eq!(seen.header("kubeflow-userid"), Some(SERVICE_ACCOUNT));
    assert_eq!(seen.header("kubeflow-groups"), None);
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "forwardOriginalToken keeps the token for the backends"
    );
    assert!(
        setup.keys.jwks_proxy.hits() >= 1,
        "keys came from the cluster-jwks-proxy"
    );
}

fn the_short_api_server_issuer_passes_too(setup: &Setup) {
    let seen = expect::allowed(&send(setup, &sa_token(SA_ISSUER_SHORT), &[]));
    assert_eq!(seen.header("kubeflow-userid"), Some(SERVICE_ACCOUNT));
}

fn a_dex_token_passes_with_discovered_keys(setup: &Setup) {
    let claims = standard_claims(
        DEX_ISSUER,
        "kubeflow-oidc-authservice",
        "user@example.com",
        &["team-a", "team-b"],
    );
    let seen = expect::allowed(&send(setup, &Idp::shared().sign(Alg::ES256, &claims), &[]));
    assert_eq!(seen.header("kubeflow-userid"), Some("user@example.com"));
    assert_eq!(seen.header("kubeflow-groups"), Some("team-a,team-b"));
    assert!(setup.keys.dex.hits_at(DEX_DISCOVERY_PATH) >= 1);
    assert!(setup.keys.dex.hits() >= 1);
}

fn an_expired_service_account_token_is_rejected(setup: &Setup) {
    let expired = sa_claims(SA_ISSUER, now() - 7200, 3600);
    let token = Idp::shared_second().sign(Alg::RS256, &expired);
    expect::rejected(&send(setup, &token, &[]), "token_expired");
}

#[test]
fn kubeflow_m2m_service_account_tokens() {
    let setup = start();
    scenarios!(
        &setup,
        [
            a_service_account_token_becomes_kubeflow_userid,
            the_short_api_server_issuer_passes_too,
            a_dex_token_passes_with_discovered_keys,
            an_expired_service_account_token_is_rejected,
        ]
    );
}

#[test]
fn the_rules_are_kubeflows_m2m_rules() {
    let Some(path) = shared_data_file(M2M_MANIFEST) else {
        eprintln!(
            "SKIPPED the_rules_are_kubeflows_m2m_rules: {M2M_MANIFEST} not found in the shared data"
        );
        return;
    };
    let manifest = std::fs::read_to_string(&path).unwrap();
    let istio_rules = |name: &str| {
        request_authentication_rules(&manifest, name)
            .unwrap_or_else(|| panic!("{} has no RequestAuthentication {name}", path.display()))
    };
    let ours = plugin_config()["jwtRules"].as_array().unwrap().clone();
    assert_eq!(ours[..1], istio_rules("dex-jwt")[..], "the dex-jwt rule");
    assert_eq!(
        ours[1..],
        istio_rules("m2m-token-issuer")[..],
        "the m2m-token-issuer rules"
    );
}
