//! Migrating a running Kubeflow from Istio's authentication to kfauth, in a
//! real Envoy: "both can run". The kfauth pluginConfig is the README's own
//! example, read from README.md (the fenced `yaml` blocks of "Configuration
//! (`pluginConfig`)": the Dex rule with `requireJwt`/`skipPaths`, then the
//! service-account rule), unchanged: its `jwksUri` hosts are served by
//! loopback key servers behind the clusters Istio names for them
//! (`outbound|5556||dex.auth.svc.cluster.local`,
//! `outbound|80||cluster-jwks-proxy.istio-system.svc.cluster.local`), and the
//! tokens carry the README's issuers and audience. Istio's side is what istiod
//! generates (testkit `istio`) from the SAME `jwtRules` (RequestAuthentication
//! → `envoy.filters.http.jwt_authn`) and from Kubeflow's
//! `istio-ingressgateway-require-jwt` AuthorizationPolicy (→
//! `envoy.filters.http.rbac`: DENY without a request principal, except
//! `/dex/*`, `/dex/**`, `/oauth2/*`), in Istio's order: kfauth (a WasmPlugin
//! of phase AUTHN) → jwt_authn → RBAC → router, in front of the echo upstream.
//!
//! - Migration state (kfauth, then jwt_authn and RBAC): a valid Dex or
//!   service-account token passes kfauth, which forwards it
//!   (`forwardOriginalToken: true` on both README rules); jwt_authn verifies
//!   it again, and RBAC finds the principal. jwt_authn REPLACES kfauth's
//!   identity headers: Envoy removes every header named in a provider's
//!   `claim_to_headers` from each request it checks (`headers_to_sanitize_`
//!   in envoyproxy/envoy `source/extensions/filters/http/jwt_authn/extractor.cc`),
//!   then adds its own (`addCopy` in `authenticator.cc`). So the upstream
//!   gets exactly one `kubeflow-userid` and one `kubeflow-groups`, with
//!   jwt_authn's values: the same user, and the groups as base64 of their
//!   JSON (`WyJ0ZWFtLWEiLCJ0ZWFtLWIiXQ==`), Istio's format, not kfauth's
//!   `team-a,team-b`. Spoofed identity headers never arrive; expired,
//!   tampered and unknown-issuer tokens get kfauth's 401 with its reason
//!   word; no token on a protected path gets kfauth's 401 `token_missing`;
//!   `/dex/` and `/oauth2/` pass without a token.
//! - Migration state with the README's old Dex rule (no
//!   `forwardOriginalToken: true`): kfauth removes the Dex token, so jwt_authn
//!   sees none and RBAC denies every valid browser request (403 `RBAC: access
//!   denied`); service-account tokens (forwarded) still pass.
//! - Rollback state (jwt_authn + RBAC, no kfauth): valid tokens pass with
//!   jwt_authn's headers (one copy each, groups base64 JSON), the token
//!   forwarded; spoofed identity headers never arrive (jwt_authn removes
//!   them, with or without a token); invalid tokens get jwt_authn's 401
//!   (`Jwt is expired`, `Jwt verification fails`, `Jwt issuer is not
//!   configured`); no token gets RBAC's 403 `RBAC: access denied`; `/dex/`
//!   and `/oauth2/` pass.
//! - kfauth alone (the end state): valid tokens pass with one copy of each
//!   identity header, kfauth's (`team-a,team-b`); invalid ones get 401 with
//!   kfauth's reason words.
//!
//! Four Envoys, one per state, started by tests that run in parallel.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use kfauth_testkit::apiserver::conformance::shared_data_file;
use kfauth_testkit::bootstrap::repo_root;
use kfauth_testkit::echo::Echoed;
use kfauth_testkit::forge::{signature_of, with_signature};
use kfauth_testkit::idp::{now, standard_claims};
use kfauth_testkit::istio::{jwks_cluster, jwt_authn_config, rbac_config};
use kfauth_testkit::istio::{JWT_AUTHN_FILTER, RBAC_FILTER};
use kfauth_testkit::{expect, scenarios, Alg, Cluster, Gateway, HttpResponse, Idp};
use kfauth_testkit::{JwksMode, JwksServer};
use serde_json::{json, Value};

/// The README section whose fenced `yaml` blocks are the tested pluginConfig.
const CONFIG_SECTION: &str = "## Configuration (`pluginConfig`)";

/// Kubeflow's require-JWT policy, verbatim from kubeflow/manifests
/// (`common/oauth2-proxy`, rendered in the shared data's
/// `kubeflow-manifests/rendered/m2m-dex-and-kind.auth-policies.yaml`;
/// `policy_is_kubeflows` checks it against that file when present).
const REQUIRE_JWT_POLICY: &str = r#"
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: istio-ingressgateway-require-jwt
  namespace: istio-system
spec:
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals:
        - '*'
    to:
    - operation:
        notPaths:
        - /dex/*
        - /dex/**
        - /oauth2/*
  selector:
    matchLabels:
      app: istio-ingressgateway
"#;
const KUBEFLOW_POLICIES: &str = "kubeflow-manifests/rendered/m2m-dex-and-kind.auth-policies.yaml";

const SERVICE_ACCOUNT: &str = "system:serviceaccount:kubeflow-user-example-com:default-editor";
const EMAIL: &str = "alice@example.com";
const GROUPS: [&str; 2] = ["team-a", "team-b"];

/// The README's pluginConfig: the first `yaml` block of the Configuration
/// section is the whole config (Dex rule, `requireJwt`, `skipPaths`), the
/// second the service-account rule "beside Dex's".
fn readme_plugin_config() -> Value {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n{CONFIG_SECTION}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {CONFIG_SECTION}"));
    let section = &readme[start + 1..];
    let end = section.find("\n### ").unwrap_or(section.len());
    let blocks = yaml_blocks(&section[..end]);
    assert_eq!(
        blocks.len(),
        2,
        "{CONFIG_SECTION} (up to its first ### heading) should hold two ```yaml blocks: the config and the service-account rule"
    );
    let mut config: Value = serde_yaml_ng::from_str(&blocks[0]).unwrap();
    let more: Vec<Value> = serde_yaml_ng::from_str(&blocks[1]).unwrap();
    config["jwtRules"].as_array_mut().unwrap().extend(more);
    config
}

/// The bodies of the ```yaml fenced blocks of `markdown`, in order.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The README's rule for `issuer_part` (a substring of its issuer).
fn rule<'a>(config: &'a Value, issuer_part: &str) -> &'a Value {
    config["jwtRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["issuer"].as_str().unwrap().contains(issuer_part))
        .unwrap_or_else(|| panic!("no README rule with an issuer containing {issuer_part}"))
}

/// The README config with the Dex rule as the README had it before the fix:
/// without `forwardOriginalToken`.
fn old_readme_plugin_config() -> Value {
    let mut config = readme_plugin_config();
    for rule in config["jwtRules"].as_array_mut().unwrap() {
        if rule["issuer"].as_str().unwrap().contains("dex") {
            rule.as_object_mut().unwrap().remove("forwardOriginalToken");
        }
    }
    config
}

struct Setup {
    gateway: Gateway,
    config: Value,
    /// `kubeflow-groups` as the upstream gets it for a Dex token with groups
    /// `team-a`, `team-b`: kfauth's `team-a,team-b`, or, wherever jwt_authn
    /// runs with `claim_to_headers`, jwt_authn's, which replaces kfauth's.
    dex_groups_upstream: String,
    _key_servers: Vec<JwksServer>,
}

/// Envoy with kfauth (`plugin_config`, or none) and, with `istio`, Istio's
/// filters built from the same rules and Kubeflow's require-JWT policy; each
/// rule's `jwksUri` is served on loopback under its Istio cluster name, with
/// the Dex rule's keys from [`Idp::shared`] and the service-account rule's
/// from [`Idp::shared_second`].
fn start(plugin_config: Option<Value>, istio: bool) -> Setup {
    let config = plugin_config.clone().unwrap_or_else(readme_plugin_config);
    let rules = config["jwtRules"].as_array().unwrap().clone();
    let mut key_servers = Vec::new();
    let mut clusters = Vec::new();
    for rule in &rules {
        let uri = rule["jwksUri"].as_str().expect("README rules name jwksUri");
        let path = &uri[uri.find("://").unwrap() + 3..];
        let path = &path[path.find('/').unwrap()..];
        let idp = idp_of(rule);
        let server = JwksServer::start_with("127.0.0.1:0", path, JwksMode::Serve(idp.jwks_json()));
        clusters.push(Cluster::loopback(
            &jwks_cluster(uri).unwrap(),
            server.port(),
        ));
        key_servers.push(server);
    }
    let policy: Value = serde_yaml_ng::from_str(REQUIRE_JWT_POLICY).unwrap();
    let gateway = Gateway::start_with(plugin_config.unwrap_or(Value::Null), |settings| {
        let mut settings = clusters
            .into_iter()
            .fold(settings, |settings, cluster| settings.with_cluster(cluster));
        if istio {
            settings = settings
                .with_http_filter(JWT_AUTHN_FILTER, &jwt_authn_config(&rules).unwrap())
                .with_http_filter(RBAC_FILTER, &rbac_config(&policy).unwrap());
        }
        if settings.plugin_config.is_null() {
            settings = settings.without_kfauth();
        }
        settings
    });
    Setup {
        gateway,
        config,
        dex_groups_upstream: if istio {
            jwt_authn_groups()
        } else {
            GROUPS.join(",")
        },
        _key_servers: key_servers,
    }
}

/// The Dex rule's keys are the shared provider's, the service-account rule's
/// the second provider's.
fn idp_of(rule: &Value) -> &'static Idp {
    if rule["issuer"].as_str().unwrap().contains("dex") {
        Idp::shared()
    } else {
        Idp::shared_second()
    }
}

impl Setup {
    fn dex_claims(&self) -> Value {
        let dex = rule(&self.config, "dex");
        standard_claims(
            dex["issuer"].as_str().unwrap(),
            dex["audiences"][0].as_str().unwrap(),
            EMAIL,
            &GROUPS,
        )
    }

    /// An ID token as Dex issues it (and oauth2-proxy injects it).
    fn dex_token(&self) -> String {
        Idp::shared().sign(Alg::RS256, &self.dex_claims())
    }

    /// A Kubernetes service-account token (no groups claim).
    fn service_account_token(&self) -> String {
        let issuer = rule(&self.config, "kubernetes")["issuer"].as_str().unwrap();
        let now = now();
        Idp::shared_second().sign(
            Alg::RS256,
            &json!({
                "iss": issuer,
                "aud": [issuer],
                "sub": SERVICE_ACCOUNT,
                "iat": now,
                "exp": now + 3600,
                "kubernetes.io": {"namespace": "kubeflow-user-example-com",
                                  "serviceaccount": {"name": "default-editor"}},
            }),
        )
    }

    fn expired_token(&self) -> String {
        let mut claims = self.dex_claims();
        claims["iat"] = json!(now() - 7200);
        claims["exp"] = json!(now() - 3600);
        Idp::shared().sign(Alg::RS256, &claims)
    }

    fn tampered_token(&self) -> String {
        let token = self.dex_token();
        let mut signature = signature_of(&token);
        signature[10] ^= 0x01;
        with_signature(&token, &signature)
    }

    fn unknown_issuer_token(&self) -> String {
        let mut claims = self.dex_claims();
        claims["iss"] = json!("https://evil.example/dex");
        Idp::shared().sign(Alg::RS256, &claims)
    }

    fn get(&self, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> HttpResponse {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        self.gateway.get(path, &headers)
    }
}

/// [`GROUPS`] as Envoy's jwt_authn writes an array claim to a header:
/// base64 of its compact JSON.
fn jwt_authn_groups() -> String {
    base64::engine::general_purpose::STANDARD.encode(json!(GROUPS).to_string())
}

const SPOOFED: [(&str, &str); 2] = [
    ("kubeflow-userid", "admin@example.com"),
    ("kubeflow-groups", "cluster-admins"),
];

/// Exactly one copy of each identity header, with the verified values, and
/// the token forwarded.
fn verified_once(seen: &Echoed, user: &str, groups: Option<&str>, token: &str) {
    assert_eq!(seen.header_values("kubeflow-userid"), vec![user]);
    assert_eq!(
        seen.header_values("kubeflow-groups"),
        groups.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(
        seen.header_values("authorization"),
        vec![format!("Bearer {token}")]
    );
}

// --- scenarios shared by the states ------------------------------------------

fn a_dex_token_passes_once(setup: &Setup) {
    let token = setup.dex_token();
    let seen = expect::allowed(&setup.get("/jupyter/api/namespaces", Some(&token), &[]));
    verified_once(&seen, EMAIL, Some(&setup.dex_groups_upstream), &token);
}

fn a_service_account_token_passes_and_is_forwarded(setup: &Setup) {
    let token = setup.service_account_token();
    let seen = expect::allowed(&setup.get(
        "/pipeline/apis/v2beta1/pipelines?namespace=kubeflow-user-example-com",
        Some(&token),
        &[],
    ));
    verified_once(&seen, SERVICE_ACCOUNT, None, &token);
}

/// With a valid token, and without one where no token is needed.
fn spoofed_identity_headers_never_arrive(setup: &Setup) {
    let dex = setup.dex_token();
    let seen = expect::allowed(&setup.get("/pipeline/", Some(&dex), &SPOOFED));
    verified_once(&seen, EMAIL, Some(&setup.dex_groups_upstream), &dex);
    let sa = setup.service_account_token();
    let seen = expect::allowed(&setup.get("/pipeline/", Some(&sa), &SPOOFED));
    verified_once(&seen, SERVICE_ACCOUNT, None, &sa);
    let seen = expect::allowed(&setup.get("/dex/auth", None, &SPOOFED));
    assert!(seen.header_values("kubeflow-userid").is_empty());
    assert!(seen.header_values("kubeflow-groups").is_empty());
}

fn dex_and_oauth2_paths_pass_without_a_token(setup: &Setup) {
    for path in [
        "/dex/auth?client_id=kubeflow-oidc-authservice",
        "/oauth2/callback",
    ] {
        let seen = expect::allowed(&setup.get(path, None, &[]));
        assert_eq!(seen.path, path);
    }
}

/// kfauth answers first wherever it runs.
fn invalid_tokens_get_kfauths_reasons(setup: &Setup) {
    let path = "/pipeline/";
    expect::rejected(
        &setup.get(path, Some(&setup.expired_token()), &[]),
        "token_expired",
    );
    expect::rejected(
        &setup.get(path, Some(&setup.tampered_token()), &[]),
        "signature_invalid",
    );
    expect::rejected(
        &setup.get(path, Some(&setup.unknown_issuer_token()), &[]),
        "issuer_unknown",
    );
}

fn no_token_is_refused_by_kfauth(setup: &Setup) {
    expect::token_missing(&setup.get("/pipeline/", None, &[]));
    expect::token_missing(&setup.get("/", None, &[]));
}

// --- migration state: kfauth, then Istio's jwt_authn and RBAC ----------------

#[test]
fn migration_kfauth_before_istio() {
    let setup = start(Some(readme_plugin_config()), true);
    scenarios!(
        &setup,
        [
            a_dex_token_passes_once,
            a_service_account_token_passes_and_is_forwarded,
            spoofed_identity_headers_never_arrive,
            invalid_tokens_get_kfauths_reasons,
            no_token_is_refused_by_kfauth,
            dex_and_oauth2_paths_pass_without_a_token,
        ]
    );
}

// --- migration state with the README's old Dex rule --------------------------

fn old_example_denies_every_valid_browser_request(setup: &Setup) {
    let response = setup.get("/jupyter/", Some(&setup.dex_token()), &[]);
    assert_eq!(
        (response.status, response.body.as_str()),
        (403, "RBAC: access denied"),
        "kfauth removed the Dex token, so jwt_authn saw none and RBAC denied"
    );
    // Service-account tokens are forwarded by their rule: they still pass.
    let token = setup.service_account_token();
    expect::allowed(&setup.get("/pipeline/", Some(&token), &[]));
}

#[test]
fn migration_with_the_old_readme_example_denies_browsers() {
    let setup = start(Some(old_readme_plugin_config()), true);
    scenarios!(&setup, [old_example_denies_every_valid_browser_request]);
}

// --- rollback state: Istio alone ---------------------------------------------

fn istio_alone_refuses_invalid_tokens_with_401(setup: &Setup) {
    for (token, message) in [
        (setup.expired_token(), "Jwt is expired"),
        (setup.tampered_token(), "Jwt verification fails"),
        (setup.unknown_issuer_token(), "Jwt issuer is not configured"),
    ] {
        let response = setup.get("/pipeline/", Some(&token), &[]);
        assert_eq!(
            (response.status, response.body.as_str()),
            (401, message),
            "jwt_authn's answer"
        );
    }
}

fn istio_alone_refuses_no_token_with_rbac_403(setup: &Setup) {
    let response = setup.get("/pipeline/", None, &[]);
    assert_eq!(
        (response.status, response.body.as_str()),
        (403, "RBAC: access denied")
    );
}

#[test]
fn rollback_to_istio_alone() {
    let setup = start(None, true);
    scenarios!(
        &setup,
        [
            a_dex_token_passes_once,
            a_service_account_token_passes_and_is_forwarded,
            spoofed_identity_headers_never_arrive,
            istio_alone_refuses_invalid_tokens_with_401,
            istio_alone_refuses_no_token_with_rbac_403,
            dex_and_oauth2_paths_pass_without_a_token,
        ]
    );
}

// --- end state: kfauth alone -------------------------------------------------

#[test]
fn kfauth_alone_after_the_migration() {
    let setup = start(Some(readme_plugin_config()), false);
    scenarios!(
        &setup,
        [
            a_dex_token_passes_once,
            a_service_account_token_passes_and_is_forwarded,
            spoofed_identity_headers_never_arrive,
            invalid_tokens_get_kfauths_reasons,
            no_token_is_refused_by_kfauth,
            dex_and_oauth2_paths_pass_without_a_token,
        ]
    );
}

// --- the configurations are the README's and Kubeflow's ----------------------

#[test]
fn the_readme_dex_rule_forwards_the_token() {
    let config = readme_plugin_config();
    assert_eq!(
        rule(&config, "dex")["forwardOriginalToken"],
        json!(true),
        "while Istio's RequestAuthentication runs after kfauth it needs the token"
    );
    assert_eq!(config["requireJwt"], json!(true));
}

#[test]
fn policy_is_kubeflows() {
    let Some(path) = shared_data_file(KUBEFLOW_POLICIES) else {
        eprintln!("SKIPPED policy_is_kubeflows: {KUBEFLOW_POLICIES} not found in the shared data");
        return;
    };
    let manifest = std::fs::read_to_string(&path).unwrap();
    let ours: Value = serde_yaml_ng::from_str(REQUIRE_JWT_POLICY).unwrap();
    let theirs = manifest
        .split("\n---\n")
        .filter_map(|document| serde_yaml_ng::from_str::<Value>(document).ok())
        .find(|document| document["metadata"]["name"] == ours["metadata"]["name"])
        .unwrap_or_else(|| panic!("{} has no require-jwt policy", path.display()));
    assert_eq!(ours, theirs);
}
