//! KServe's in-cluster gateway: the Component
//! `wasmplugin/components/local-gateway` over Kubeflow's own manifests, then
//! its pluginConfig in a real Envoy.
//!
//! Both tests render, with `kubectl kustomize`, a temporary Kustomization of
//! Kubeflow's `common/istio/cluster-local-gateway/overlays/m2m-auth` (from
//! `../shared/data`), `wasmplugin/base` and the Component. Without the shared
//! data or `kubectl`, each reports itself SKIPPED by name.
//!
//! `the_component_replaces_m2m_auth`: the RequestAuthentication
//! `cluster-local-gateway-jwt` and the DENY policy
//! `cluster-local-gateway-require-jwt` are gone; the ALLOW policy
//! `cluster-local-gateway` allows all again; the Deployment's `istio-proxy`
//! gets `KFAUTH_APISERVER_TOKEN` from the Secret
//! `kfauth-local-gateway-apiserver-token`, a token of the Deployment's own
//! service account, which the ClusterRoleBinding lets create reviews; the
//! WasmPlugin `kfauth-local-gateway` (AUTHN, FAIL_CLOSE, the image of
//! `kfauth`, copied by the replacements) and the API-server DestinationRule
//! select exactly the labels of the Deployment's selector, which its pod
//! template carries and which Kubeflow's `knative-local-gateway` Service and
//! Gateway selector patches (common/knative/knative-serving/overlays/
//! gateways/patches) name; `skipPaths` are the DENY policy's `notPaths`
//! translated to anchored regexes, and the service-account `jwtRules` are the
//! deleted RequestAuthentication's.
//!
//! `in_cluster_model_calls_are_authorized_per_namespace`: the rendered
//! pluginConfig, as it is, in one Envoy (two workers) with the built module,
//! the API-server stand-in over TLS answering from the testkit's RBAC
//! fixtures, `cluster-jwks-proxy` and Dex (discovery) on loopback under the
//! cluster names Istio gives them:
//! - `default-editor` of `kubeflow-user-example-com` calls a model of its own
//!   namespace: 200, upstream sees its `kubeflow-userid` and its token; the
//!   review is `get` `inferenceservices` `iris` in that namespace;
//! - every host form (InferenceService and `-predictor`, `-transformer`,
//!   `-explainer`, `-default`, `prev-`/`latest-` tags, `.svc.cluster.local`,
//!   `.svc` and bare; with a port, in upper case, with a trailing dot) on
//!   v1 predict, v2 infer, v1 explain, v1 and v2 metadata: 200 in its own
//!   namespace, 403 `forbidden` in `team-b`, every review naming `iris`;
//! - a Dex token forwarded by the ingress gateway (the second hop of
//!   external inference) is reviewed as its user, with its groups;
//! - no token: 401 `token_missing`, no review; a token of an unknown issuer:
//!   401 `issuer_unknown`;
//! - the health paths (`/healthz`, `/ready`, `/wait-for-drain`, `/metrics`,
//!   `/stats/prometheus`, `*/healthz`, `*/ready`: `/v2/models/iris/ready`,
//!   `/v2/health/ready`) pass without a token and ask nothing; near misses
//!   (`/healthz/x`, `/metricsx`, `/v2/health/live`, a `/ready` in the query
//!   string or behind `%2F`) do not;
//! - spoofed `kubeflow-userid` / `kubeflow-groups` (any spelling) never
//!   reach the upstream, with or without a token;
//! - a host of no known form gets 403 (`defaultDeny`) without a review;
//! - an InferenceService named `foo-predictor` is reviewed as `foo` (the
//!   documented reading of a component suffix);
//! - every SubjectAccessReview sent is valid (`validate_sar_request`) and
//!   asks `get` on `serving.kserve.io` `inferenceservices`.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use authz_support::*;
use kfauth_testkit::apiserver::conformance::{report_skipped, shared_data_dir, shared_data_file};
use kfauth_testkit::apiserver::fixtures::{
    BOB, EDITOR_SERVICE_ACCOUNT, TEAM_B_NAMESPACE, USER, USER_NAMESPACE,
};
use kfauth_testkit::apiserver::validate_sar_request;
use kfauth_testkit::bootstrap::repo_root;
use kfauth_testkit::idp::standard_claims;
use kfauth_testkit::kubeflow_keys::{KubeflowKeys, DEX_DISCOVERY_PATH, DEX_ISSUER};
use kfauth_testkit::kustomize::{build_overlay, find, kubectl_present, read_yaml};
use kfauth_testkit::{expect, scenarios, Alg, Idp};
use serde_json::{json, Value};

/// Kubeflow's overlay this Component replaces, relative to the shared data.
const M2M_AUTH: &str = "kubeflow-manifests/common/istio/cluster-local-gateway/overlays/m2m-auth";
/// Kubeflow's patches pointing Knative's local gateway at cluster-local-gateway.
const KNATIVE_GATEWAY_PATCHES: &str =
    "kubeflow-manifests/common/knative/knative-serving/overlays/gateways/patches";
const PLUGIN: &str = "kfauth-local-gateway";
const GATEWAY: &str = "cluster-local-gateway";
const TOKEN_SECRET: &str = "kfauth-local-gateway-apiserver-token";

// ---------------------------------------------------------------------------
// Rendering

/// Kubeflow's m2m-auth overlay + `wasmplugin/base` + the Component, rendered;
/// `None` (reported as skipped) without the shared data or `kubectl`.
fn rendered(test: &str) -> Option<Vec<Value>> {
    if shared_data_file(&format!("{M2M_AUTH}/kustomization.yaml")).is_none() {
        report_skipped(
            test,
            "../shared/data absent (Kubeflow's cluster-local-gateway m2m-auth overlay)",
        );
        return None;
    }
    if !kubectl_present() {
        report_skipped(test, "kubectl not found (rendering with kubectl kustomize)");
        return None;
    }
    let wasmplugin = repo_root().join("wasmplugin");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "kserve-local-gateway-{test}-{}",
        std::process::id()
    ));
    let objects = build_overlay(
        &dir,
        &[&shared_data_dir().join(M2M_AUTH), &wasmplugin.join("base")],
        &[&wasmplugin.join("components/local-gateway")],
    );
    let _ = std::fs::remove_dir_all(&dir);
    Some(objects.unwrap_or_else(|e| panic!("{e}")))
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind, name).unwrap_or_else(|| panic!("no {kind} {name} in the rendered output"))
}

fn shared_yaml(relative: &str) -> Vec<Value> {
    let path = shared_data_dir().join(relative);
    read_yaml(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Istio's path matching (exact, `prefix*`, `*suffix`) as an anchored regex.
fn istio_path_regex(path: &str) -> String {
    let escape = |text: &str| -> String {
        text.chars()
            .flat_map(|c| {
                let special = "\\.+*?()|[]{}^$".contains(c);
                special.then_some('\\').into_iter().chain([c])
            })
            .collect()
    };
    if let Some(suffix) = path.strip_prefix('*') {
        format!("^.*{}$", escape(suffix))
    } else if let Some(prefix) = path.strip_suffix('*') {
        format!("^{}", escape(prefix))
    } else {
        format!("^{}$", escape(path))
    }
}

// ---------------------------------------------------------------------------
// The manifests

#[test]
fn the_component_replaces_m2m_auth() {
    let Some(objects) = rendered("the_component_replaces_m2m_auth") else {
        return;
    };

    // What m2m-auth added is gone, what it narrowed allows all again.
    assert!(find(
        &objects,
        "RequestAuthentication",
        "cluster-local-gateway-jwt"
    )
    .is_none());
    assert!(find(
        &objects,
        "AuthorizationPolicy",
        "cluster-local-gateway-require-jwt"
    )
    .is_none());
    assert!(
        !objects.iter().any(|o| o["kind"] == "RequestAuthentication"),
        "no RequestAuthentication is left"
    );
    let allow = object(&objects, "AuthorizationPolicy", GATEWAY);
    assert_eq!(allow["metadata"]["namespace"], "istio-system");
    assert_eq!(allow["spec"]["action"], "ALLOW");
    assert_eq!(
        allow["spec"]["rules"],
        json!([{}]),
        "allow all, as in the base"
    );

    // The gateway's labels, as its Deployment selects its pods.
    let deployment = object(&objects, "Deployment", GATEWAY);
    let labels = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(
        labels,
        &json!({"app": GATEWAY, "istio": GATEWAY}),
        "the Deployment's selector"
    );
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    for (key, value) in labels.as_object().unwrap() {
        assert_eq!(pod_labels.get(key), Some(value), "pod template label {key}");
    }
    assert_eq!(
        object(&objects, "Service", GATEWAY)["spec"]["selector"],
        *labels
    );
    // Kubeflow points Knative's local gateway (Service and Gateway) at them.
    for (file, kind, pointer) in [
        (
            "gateway-selector-in-istio-system.yaml",
            "Service",
            "/spec/selector",
        ),
        (
            "gateway-selector-in-knative-serving.yaml",
            "Gateway",
            "/spec/selector",
        ),
    ] {
        let patch = shared_yaml(&format!("{KNATIVE_GATEWAY_PATCHES}/{file}"));
        let patch = patch
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == "knative-local-gateway")
            .unwrap_or_else(|| panic!("{file}: no {kind} knative-local-gateway"));
        assert_eq!(patch.pointer(pointer), Some(labels), "{file}");
    }

    // The WasmPlugin: those labels, the image of `kfauth`, fail closed in AUTHN.
    let plugin = object(&objects, "WasmPlugin", PLUGIN);
    let base = object(&objects, "WasmPlugin", "kfauth");
    assert_eq!(plugin["metadata"]["namespace"], "istio-system");
    assert_eq!(
        plugin["metadata"]["labels"]["app.kubernetes.io/part-of"], "kfauth",
        "an overlay's image patch selects every kfauth plugin by this label"
    );
    assert_eq!(plugin["spec"]["selector"]["matchLabels"], *labels);
    for field in ["url", "sha256"] {
        assert_eq!(plugin["spec"][field], base["spec"][field], "spec.{field}");
    }
    assert!(
        plugin["spec"]["sha256"].is_string(),
        "sha256 stays a string"
    );
    assert_eq!(plugin["spec"]["phase"], "AUTHN");
    assert_eq!(plugin["spec"]["failStrategy"], "FAIL_CLOSE");
    assert_eq!(
        plugin["spec"]["vmConfig"]["env"],
        json!([{"name": TOKEN_ENV, "valueFrom": "HOST"}])
    );
    let config = &plugin["spec"]["pluginConfig"];
    assert_eq!(config["authorization"]["apiserver"]["tokenEnv"], TOKEN_ENV);

    // The token: the Deployment's env, from the Secret of its service account,
    // which may create reviews.
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    assert_eq!(account, "cluster-local-gateway-service-account");
    let container = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "istio-proxy")
        .expect("container istio-proxy");
    let env: Vec<&Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == TOKEN_ENV)
        .collect();
    assert_eq!(
        env,
        [
            &json!({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}}})
        ]
    );
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "ISTIO_META_ROUTER_MODE"),
        "the gateway's own env is kept"
    );
    let secret = object(&objects, "Secret", TOKEN_SECRET);
    assert_eq!(secret["metadata"]["namespace"], "istio-system");
    assert_eq!(secret["type"], "kubernetes.io/service-account-token");
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        account
    );
    let binding = object(
        &objects,
        "ClusterRoleBinding",
        "kfauth-local-gateway-reviewer",
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": account, "namespace": "istio-system"}])
    );
    let role = object(&objects, "ClusterRole", "kfauth-local-gateway-reviewer");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        ])
    );
    let tls = object(
        &objects,
        "DestinationRule",
        "kfauth-local-gateway-apiserver",
    );
    assert_eq!(tls["spec"]["workloadSelector"]["matchLabels"], *labels);
    assert_eq!(tls["spec"]["host"], "kubernetes.default.svc.cluster.local");
    assert_eq!(tls["spec"]["trafficPolicy"]["tls"]["mode"], "SIMPLE");

    // skipPaths are the DENY policy's notPaths, translated.
    let deny = shared_yaml(&format!(
        "{M2M_AUTH}/cluster-local-gateway-authorizationpolicy-deny.yaml"
    ));
    let not_paths = deny[0]["spec"]["rules"][0]["to"][0]["operation"]["notPaths"]
        .as_array()
        .expect("the DENY policy's notPaths");
    let expected: Vec<Value> = not_paths
        .iter()
        .map(|p| json!(istio_path_regex(p.as_str().unwrap())))
        .collect();
    assert_eq!(config["skipPaths"], json!(expected));
    assert_eq!(config["requireJwt"], true);

    // The service-account rules are the deleted RequestAuthentication's.
    let authentication = shared_yaml(&format!(
        "{M2M_AUTH}/cluster-local-gateway-requestauthentication.yaml"
    ));
    let istio_rules = authentication[0]["spec"]["jwtRules"].as_array().unwrap();
    let rules = config["jwtRules"].as_array().unwrap();
    assert_eq!(istio_rules.len(), 2);
    for (istio, rule) in istio_rules.iter().zip(rules) {
        for field in ["issuer", "jwksUri", "forwardOriginalToken", "fromHeaders"] {
            assert_eq!(
                rule[field], istio[field],
                "jwtRules {}: {field}",
                istio["issuer"]
            );
        }
        for mapping in istio["outputClaimToHeaders"].as_array().unwrap() {
            assert!(
                rule["outputClaimToHeaders"]
                    .as_array()
                    .unwrap()
                    .contains(mapping),
                "{}: {mapping} is kept",
                istio["issuer"]
            );
        }
    }
    assert_eq!(rules[2]["issuer"], DEX_ISSUER, "Dex, for forwarded traffic");
    assert!(rules.iter().all(|r| r["forwardOriginalToken"] == true));
}

// ---------------------------------------------------------------------------
// Envoy

struct Setup {
    // Field order matters: Envoy goes down before the servers it calls.
    authz: Authz,
    keys: KubeflowKeys,
}

fn start(plugin_config: Value) -> Setup {
    let keys = KubeflowKeys::start();
    let authz = Authz::start_with(plugin_config, 2, |settings| keys.route(settings));
    Setup { authz, keys }
}

fn editor() -> String {
    sa_username(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT)
}

fn editor_token() -> String {
    sa_token(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT)
}

fn dex_token(email: &str, groups: &[&str]) -> String {
    let claims = standard_claims(DEX_ISSUER, "kubeflow-oidc-authservice", email, groups);
    Idp::shared().sign(Alg::ES256, &claims)
}

const BODY: &[u8] = br#"{"instances": [[6.8, 2.8, 4.8, 1.4]]}"#;

/// The calls a model server answers: (method, path).
const MODEL_CALLS: [(&str, &str); 5] = [
    ("POST", "/v1/models/iris:predict"),
    ("POST", "/v2/models/iris/infer"),
    ("GET", "/v1/models/iris"),
    ("POST", "/v1/models/iris:explain"),
    ("GET", "/v2/models/iris"),
];

fn call(method: &str, host: &str, path: &str) -> Req {
    let req = Req::new(method, host, path);
    if method == "POST" {
        req.header("content-type", "application/json").body(BODY)
    } else {
        req
    }
}

fn predict(host: &str) -> Req {
    call("POST", host, "/v1/models/iris:predict")
}

/// Every host under which KServe and Knative route InferenceService `iris`
/// of `namespace` on the local gateway, as a client may spell it.
fn host_forms(namespace: &str) -> Vec<String> {
    let ns = namespace;
    let mut hosts: Vec<String> = [
        "iris.{ns}.svc.cluster.local",
        "iris.{ns}.svc",
        "iris.{ns}",
        "iris-predictor.{ns}.svc.cluster.local",
        "iris-predictor.{ns}.svc",
        "iris-predictor.{ns}",
        "iris-transformer.{ns}.svc.cluster.local",
        "iris-explainer.{ns}.svc.cluster.local",
        "iris-predictor-default.{ns}.svc.cluster.local",
        "iris-transformer-default.{ns}.svc",
        "prev-iris-predictor.{ns}.svc.cluster.local",
        "latest-iris-predictor.{ns}",
        "iris.{ns}.svc.cluster.local:80",
        "iris-predictor.{ns}.svc.cluster.local:8080",
        "iris-predictor.{ns}.svc.cluster.local.",
        "iris.{ns}.svc.cluster.local.:80",
        "Iris-Predictor.{ns}.Svc.Cluster.Local",
    ]
    .iter()
    .map(|form| form.replace("{ns}", ns))
    .collect();
    hosts.push(format!("iris.{ns}.svc.cluster.local").to_ascii_uppercase());
    hosts
}

fn a_service_account_calls_a_model_of_its_own_namespace(setup: &Setup) {
    let token = editor_token();
    let host = format!("iris.{USER_NAMESPACE}.svc.cluster.local");
    let seen = expect::allowed(&setup.authz.send(&predict(&host).bearer(&token)));
    assert_eq!(seen.path, "/v1/models/iris:predict");
    assert_eq!(seen.header("host"), Some(host.as_str()));
    assert_eq!(seen.header("kubeflow-userid"), Some(editor().as_str()));
    assert_eq!(seen.header("kubeflow-groups"), None);
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "forwarded: the request comes back through this gateway as -predictor"
    );
    let reviews = setup.authz.reviews_for(&editor());
    let review = reviews.last().expect("a review for the service account");
    assert_eq!(
        review,
        &json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": editor(),
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
    assert!(
        setup.keys.jwks_proxy.hits() >= 1,
        "keys from cluster-jwks-proxy"
    );
}

fn every_host_form_and_path_is_reviewed_in_the_hosts_namespace(setup: &Setup) {
    let token = editor_token();
    let mut conn = setup.authz.conn();
    let mut failures = Vec::new();
    for (namespace, allowed) in [(USER_NAMESPACE, true), (TEAM_B_NAMESPACE, false)] {
        for host in host_forms(namespace) {
            for (method, path) in MODEL_CALLS {
                let response = conn.send(&call(method, &host, path).bearer(&token));
                let ok = if allowed {
                    response.status == 200
                        && response.echoed().header("kubeflow-userid") == Some(editor().as_str())
                } else {
                    response.status == 403 && response.json()["reason"] == "forbidden"
                };
                if !ok {
                    failures.push(format!(
                        "{method} {host}{path}: {} {}",
                        response.status, response.body
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "expected 200 in {USER_NAMESPACE}, 403 in {TEAM_B_NAMESPACE}:\n  {}",
        failures.join("\n  ")
    );
    // Every form named InferenceService `iris` of the host's namespace.
    let asked: BTreeSet<String> = setup
        .authz
        .reviews_for(&editor())
        .iter()
        .map(|review| review["spec"]["resourceAttributes"].to_string())
        .collect();
    let expected: BTreeSet<String> = [USER_NAMESPACE, TEAM_B_NAMESPACE]
        .iter()
        .map(|namespace| {
            json!({"namespace": namespace, "group": KSERVE_GROUP, "resource": "inferenceservices", "name": "iris", "verb": "get"})
                .to_string()
        })
        .collect();
    assert_eq!(asked, expected);
}

fn a_dex_user_forwarded_by_the_ingress_gateway_is_reviewed_as_themselves(setup: &Setup) {
    // The ingress gateway forwards the user's token; KServe's route sends
    // the request here with Host `{isvc}-predictor.{namespace}.svc.cluster.local`.
    let token = dex_token(USER, &["team-a"]);
    let host = |ns: &str| format!("iris-predictor.{ns}.svc.cluster.local");
    let seen = expect::allowed(
        &setup
            .authz
            .send(&predict(&host(USER_NAMESPACE)).bearer(&token)),
    );
    assert_eq!(seen.header("kubeflow-userid"), Some(USER));
    assert_eq!(seen.header("kubeflow-groups"), Some("team-a"));
    let review = setup.authz.reviews_for(USER).last().cloned().unwrap();
    assert_eq!(review["spec"]["groups"], json!(["team-a"]));
    assert_eq!(
        review["spec"]["resourceAttributes"]["namespace"],
        USER_NAMESPACE
    );
    forbidden(
        &setup
            .authz
            .send(&predict(&host(TEAM_B_NAMESPACE)).bearer(&token)),
        None,
    );
    let bob = dex_token(BOB, &[]);
    let seen = expect::allowed(
        &setup
            .authz
            .send(&predict(&host(TEAM_B_NAMESPACE)).bearer(&bob)),
    );
    assert_eq!(seen.header("kubeflow-userid"), Some(BOB));
    assert!(setup.keys.dex.hits_at(DEX_DISCOVERY_PATH) >= 1);
}

fn a_call_without_a_token_is_refused(setup: &Setup) {
    let before = setup.authz.api.sar_count();
    for namespace in [USER_NAMESPACE, TEAM_B_NAMESPACE] {
        for host in [
            format!("iris.{namespace}.svc.cluster.local"),
            format!("iris-predictor.{namespace}.svc.cluster.local"),
        ] {
            for (method, path) in MODEL_CALLS {
                expect::token_missing(&setup.authz.send(&call(method, &host, path)));
            }
        }
    }
    assert_eq!(
        setup.authz.api.sar_count(),
        before,
        "no review without a token"
    );
}

fn a_token_of_an_unknown_issuer_is_refused(setup: &Setup) {
    let host = format!("iris.{USER_NAMESPACE}.svc.cluster.local");
    // The testkit's own issuer: not one of the gateway's rules.
    let stranger = user_token(USER, &[]);
    expect::rejected(
        &setup.authz.send(&predict(&host).bearer(&stranger)),
        "issuer_unknown",
    );
    // A service-account token signed with a key cluster-jwks-proxy does not serve.
    let claims = json!({
        "iss": SA_ISSUER,
        "sub": editor(),
        "aud": [SA_ISSUER],
        "iat": kfauth_testkit::idp::now(),
        "exp": kfauth_testkit::idp::now() + 600,
    });
    let response = setup
        .authz
        .send(&predict(&host).bearer(&Idp::shared().sign(Alg::ES256, &claims)));
    assert_eq!(response.status, 401, "{}", response.body);
}

fn health_paths_pass_without_a_token(setup: &Setup) {
    let before = setup.authz.api.sar_count();
    let hosts = [
        format!("iris.{TEAM_B_NAMESPACE}.svc.cluster.local"),
        format!("iris-predictor.{TEAM_B_NAMESPACE}.svc.cluster.local"),
        "10.96.0.10:80".to_string(),
    ];
    for host in &hosts {
        for path in [
            "/healthz",
            "/ready",
            "/wait-for-drain",
            "/metrics",
            "/stats/prometheus",
            "/v2/models/iris/ready",
            "/v2/health/ready",
            "/healthz?probe=1",
            "//healthz",
        ] {
            let req = Req::new("GET", host, path).header("k-network-probe", "probe");
            let seen = expect::allowed(&setup.authz.send(&req));
            assert_eq!(seen.header("kubeflow-userid"), None, "{host}{path}");
        }
        for path in [
            "/healthz/x",
            "/metricsx",
            "/stats/prometheus/x",
            "/wait-for-drain/x",
            "/v2/health/live",
            "/v1/models/iris:predict?x=/ready",
            "/v1/models/iris:predict%2F..%2Fready",
        ] {
            expect::token_missing(&setup.authz.send(&Req::new("GET", host, path)));
        }
    }
    assert_eq!(
        setup.authz.api.sar_count(),
        before,
        "health paths ask nothing"
    );
}

fn spoofed_identity_headers_never_reach_the_model(setup: &Setup) {
    let spoofs = [
        ("kubeflow-userid", "bob@example.com"),
        ("Kubeflow-Userid", "admin@example.com"),
        ("kubeflow_userid", "admin@example.com"),
        ("kubeflow-groups", "admins"),
    ];
    let host = format!("iris-predictor.{USER_NAMESPACE}.svc.cluster.local");
    let mut req = predict(&host).bearer(&editor_token());
    let mut health = Req::new("GET", &host, "/v2/models/iris/ready");
    for (name, value) in spoofs {
        req = req.header(name, value);
        health = health.header(name, value);
    }
    let seen = expect::allowed(&setup.authz.send(&req));
    assert_eq!(
        seen.header_values("kubeflow-userid"),
        vec![editor().as_str()]
    );
    assert_eq!(seen.header("kubeflow-groups"), None);
    assert_eq!(seen.header("kubeflow_userid"), None);
    let seen = expect::allowed(&setup.authz.send(&health));
    for (name, _) in spoofs {
        assert_eq!(seen.header(name), None, "{name} on a skipped path");
    }
    forbidden(
        &setup.authz.send(
            &predict(&format!("iris.{TEAM_B_NAMESPACE}.svc.cluster.local"))
                .bearer(&editor_token())
                .header("kubeflow-userid", BOB),
        ),
        None,
    );
}

fn hosts_of_no_known_form_are_denied(setup: &Setup) {
    let before = setup.authz.api.sar_count();
    for host in [
        "10.96.0.10",
        "10.96.0.10:80",
        "iris.team-b.svc.cluster.local.evil.example",
        "a.iris.team-b.svc.cluster.local",
        "iris_model.team-b.svc",
    ] {
        let response = setup.authz.send(&predict(host).bearer(&editor_token()));
        assert_eq!(response.status, 403, "{host}: {}", response.body);
        assert_eq!(response.json()["reason"], "forbidden", "{host}");
    }
    assert_eq!(
        setup.authz.api.sar_count(),
        before,
        "defaultDeny asks nothing"
    );
}

fn an_isvc_named_like_a_component_is_reviewed_under_the_shortened_name(setup: &Setup) {
    let host = format!("foo-predictor.{USER_NAMESPACE}.svc.cluster.local");
    expect::allowed(&setup.authz.send(&predict(&host).bearer(&editor_token())));
    assert_eq!(setup.authz.reviews_of(&editor(), USER_NAMESPACE, "foo"), 1);
    assert_eq!(
        setup
            .authz
            .reviews_of(&editor(), USER_NAMESPACE, "foo-predictor"),
        0
    );
}

fn every_review_sent_is_valid(setup: &Setup) {
    let reviews = setup.authz.api.sar_requests();
    assert!(!reviews.is_empty());
    for review in &reviews {
        validate_sar_request(review).unwrap_or_else(|e| panic!("{e}: {review}"));
        let attributes = &review["spec"]["resourceAttributes"];
        assert_eq!(attributes["group"], KSERVE_GROUP, "{review}");
        assert_eq!(attributes["resource"], "inferenceservices", "{review}");
        assert_eq!(attributes["verb"], "get", "{review}");
        assert!(review["spec"].get("nonResourceAttributes").is_none());
    }
    assert!(
        setup
            .authz
            .envoy
            .logs()
            .lines()
            .all(|line| !line.contains(&setup.authz.api.bearer_token())),
        "the API server token stays out of Envoy's log"
    );
}

#[test]
fn in_cluster_model_calls_are_authorized_per_namespace() {
    let Some(objects) = rendered("in_cluster_model_calls_are_authorized_per_namespace") else {
        return;
    };
    let plugin_config = object(&objects, "WasmPlugin", PLUGIN)["spec"]["pluginConfig"].clone();
    let setup = start(plugin_config);
    scenarios!(
        &setup,
        [
            a_service_account_calls_a_model_of_its_own_namespace,
            every_host_form_and_path_is_reviewed_in_the_hosts_namespace,
            a_dex_user_forwarded_by_the_ingress_gateway_is_reviewed_as_themselves,
            a_call_without_a_token_is_refused,
            a_token_of_an_unknown_issuer_is_refused,
            health_paths_pass_without_a_token,
            spoofed_identity_headers_never_reach_the_model,
            hosts_of_no_known_form_are_denied,
            an_isvc_named_like_a_component_is_reviewed_under_the_shortened_name,
            every_review_sent_is_valid,
        ]
    );
}
