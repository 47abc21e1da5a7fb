//! Shared by the authorization suites (`authorization*.rs`, `token_review.rs`):
//! the `authorization` block and its rules (KServe, KFP, a non-resource URL),
//! tokens for Dex users and service accounts, an Envoy wired to the API
//! server stand-in (its TLS cluster, the bearer token in the VM environment),
//! and the testkit's raw HTTP/1.1 client, which sets `Host` (KServe routes on
//! it) and can keep a connection alive or open a fresh one per request (the
//! kernel spreads fresh connections over Envoy's workers, each with its own
//! VM and cache).

#![allow(dead_code)]

use kfauth_testkit::apiserver::fixtures::{self, Subject};
use kfauth_testkit::apiserver::API_SERVER_CLUSTER;
use kfauth_testkit::idp::now;
use kfauth_testkit::plugin_config::{claims, inline_rule, ISSUER};
use kfauth_testkit::{Alg, ApiServer, Envoy, EnvoySettings, HttpResponse, Idp};
use serde_json::{json, Value};

/// The VM environment variable holding the API server bearer token.
pub const TOKEN_ENV: &str = "KFAUTH_APISERVER_TOKEN";
/// The issuer of Kubernetes service-account tokens.
pub const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// A second OIDC issuer whose user claim carries a prefix (`oidc:`).
pub const PREFIXED_ISSUER: &str = "https://prefixed.kfauth.test";
pub const USER_PREFIX: &str = "oidc:";
/// The KServe inference domain: `{isvc}.{namespace}.example.com`.
pub const KSERVE_DOMAIN: &str = "example.com";
pub const KFP_RUNS: &str = "/pipeline/apis/v2beta1/runs";
pub const KSERVE_GROUP: &str = "serving.kserve.io";
pub const KFP_GROUP: &str = "pipelines.kubeflow.org";

/// `authorization.apiserver` pointing at the stand-in's cluster.
pub fn apiserver_block(timeout: &str) -> Value {
    json!({
        "cluster": API_SERVER_CLUSTER,
        "authority": "kubernetes.default.svc",
        "tokenEnv": TOKEN_ENV,
        "timeout": timeout,
    })
}

/// KServe: `POST https://{isvc}.{namespace}.example.com/v1/models/{model}:predict`
/// needs `get` on the InferenceService.
pub fn kserve_rule() -> Value {
    json!({
        "match": {
            "hosts": [r"^(?P<isvc>[^.]+)\.(?P<namespace>[^.]+)\.example\.com$"],
            "paths": [r"^/v1/models/(?P<model>[^/:]+):predict$"],
        },
        "resourceAttributes": {
            "namespace": "{host.namespace}",
            "group": KSERVE_GROUP,
            "resource": "inferenceservices",
            "name": "{path.model}",
            "verb": "get",
        },
    })
}

/// KFP: `GET /pipeline/apis/v2beta1/runs?namespace=NS` needs `list` on runs.
pub fn kfp_rule() -> Value {
    json!({
        "match": {"paths": [r"^/pipeline/apis/v2beta1/runs$"], "methods": ["GET"]},
        "resourceAttributes": {
            "namespace": "{query.namespace}",
            "group": KFP_GROUP,
            "resource": "runs",
            "verb": "list",
        },
    })
}

/// Core ConfigMaps at their API path, the verb left to the method:
/// `/api/v1/namespaces/{namespace}/configmaps/{name}`.
pub fn configmap_rule() -> Value {
    json!({
        "match": {"paths": [r"^/api/v1/namespaces/(?P<namespace>[^/]+)/configmaps/(?P<name>[^/]+)$"]},
        "resourceAttributes": {
            "namespace": "{path.namespace}",
            "resource": "configmaps",
            "name": "{path.name}",
        },
    })
}

/// `GET /metrics`: a non-resource URL (path and verb from the request).
pub fn metrics_rule() -> Value {
    json!({"match": {"paths": ["^/metrics$"]}, "nonResourceAttributes": {}})
}

/// The `authorization` block: the stand-in, `rules`, `groupsClaim: groups`,
/// with `extra` fields merged in.
pub fn authorization(rules: Vec<Value>, timeout: &str, extra: Value) -> Value {
    let mut block = json!({
        "apiserver": apiserver_block(timeout),
        "rules": rules,
        "groupsClaim": "groups",
    });
    kfauth_testkit::plugin_config::merge(&mut block, extra);
    block
}

/// The Dex-like rule: `email` → `kubeflow-userid`, `groups` → `kubeflow-groups`.
pub fn dex_rule() -> Value {
    inline_rule(ISSUER, Idp::shared())
}

/// The service-account rule: `sub` → `kubeflow-userid`, keys of the second
/// provider inline; `extra` is merged in (e.g. `tokenReview`).
pub fn sa_rule(extra: Value) -> Value {
    let mut rule = json!({
        "issuer": SA_ISSUER,
        "jwks": Idp::shared_second().jwks_json(),
        "outputClaimToHeaders": [
            {"header": "kubeflow-userid", "claim": "sub"},
            {"header": "kubeflow-groups", "claim": "groups"},
        ],
    });
    kfauth_testkit::plugin_config::merge(&mut rule, extra);
    rule
}

/// A rule whose user header carries the prefix `oidc:`.
pub fn prefixed_rule() -> Value {
    json!({
        "issuer": PREFIXED_ISSUER,
        "jwks": Idp::shared().jwks_json(),
        "outputClaimToHeaders": [
            {"header": "kubeflow-userid", "claim": "email", "prefix": USER_PREFIX},
            {"header": "kubeflow-groups", "claim": "groups"},
        ],
    })
}

/// A Dex token (ES256: cheap to verify in wasm).
pub fn user_token(email: &str, groups: &[&str]) -> String {
    Idp::shared().sign(Alg::ES256, &claims(email, groups))
}

/// A token of [`PREFIXED_ISSUER`].
pub fn prefixed_token(email: &str) -> String {
    let mut claims = claims(email, &[]);
    claims["iss"] = json!(PREFIXED_ISSUER);
    Idp::shared().sign(Alg::ES256, &claims)
}

/// `system:serviceaccount:NS:NAME`.
pub fn sa_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A projected service-account token for `namespace/name`, as the API
/// server signs it (no `groups` claim); `jti` makes each token unique.
pub fn sa_token(namespace: &str, name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let issued = now();
    let claims = json!({
        "aud": [SA_ISSUER, "pipelines.kubeflow.org"],
        "exp": issued + 3600,
        "iat": issued,
        "nbf": issued,
        "iss": SA_ISSUER,
        "jti": format!("jti-{}-{}", std::process::id(), SERIAL.fetch_add(1, Ordering::SeqCst)),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"},
        },
        "sub": sa_username(namespace, name),
    });
    Idp::shared_second().sign(Alg::ES256, &claims)
}

/// RBAC as Kubernetes YAML: namespace `namespace` and a RoleBinding `name`
/// in it granting the ClusterRole `kubeflow-view` to each of `users`.
pub fn viewers_yaml(
    namespace: &str,
    name: &str,
    users: impl IntoIterator<Item = String>,
) -> String {
    let users: Vec<String> = users.into_iter().collect();
    let subjects: Vec<Subject> = users.iter().map(|user| Subject::User(user)).collect();
    [
        fixtures::namespace(namespace),
        fixtures::role_binding(namespace, name, "kubeflow-view", &subjects),
    ]
    .join("---\n")
}

/// The KServe host of an InferenceService.
pub fn kserve_host(isvc: &str, namespace: &str) -> String {
    format!("{isvc}.{namespace}.{KSERVE_DOMAIN}")
}

/// The KServe v1 predict path of a model.
pub fn predict_path(model: &str) -> String {
    format!("/v1/models/{model}:predict")
}

/// The raw client of the testkit: a request sets its own `Host`, a
/// connection is kept alive or opened fresh per request (not every suite
/// uses each).
#[allow(unused_imports)]
pub use kfauth_testkit::client::{concurrently, send_fresh, Connection as Conn, Request as Req};

/// Kubeflow requests, as constructors of [`Req`].
pub trait KubeflowRequests {
    /// KServe predict of `model` (InferenceService of the same name) in `namespace`.
    fn kserve(model: &str, namespace: &str) -> Req;
    /// KFP's list of runs, `?namespace=NS` when given.
    fn kfp_runs(namespace: Option<&str>) -> Req;
}

impl KubeflowRequests for Req {
    fn kserve(model: &str, namespace: &str) -> Req {
        Req::new("POST", &kserve_host(model, namespace), &predict_path(model))
            .header("content-type", "application/json")
            .body(br#"{"instances": [[6.8, 2.8, 4.8, 1.4]]}"#)
    }

    fn kfp_runs(namespace: Option<&str>) -> Req {
        let path = match namespace {
            Some(ns) => format!("{KFP_RUNS}?namespace={ns}&page_size=10"),
            None => format!("{KFP_RUNS}?page_size=10"),
        };
        Req::new("GET", "kubeflow.example.com", &path)
    }
}

/// The upstream: the testkit's echo, a thread per connection.
pub use kfauth_testkit::EchoServer as Upstream;

/// Envoy (with its echo upstream) in front of the API server stand-in.
pub struct Authz {
    // Field order matters: Envoy goes down before its upstream and the stand-in.
    pub envoy: Envoy,
    pub upstream: Upstream,
    pub api: ApiServer,
}

impl Authz {
    /// Starts the stand-in with the project's RBAC fixtures, then Envoy with
    /// `plugin_config`, `workers` worker threads, the stand-in's TLS cluster,
    /// and the stand-in's bearer token in the VM environment ([`TOKEN_ENV`]).
    pub fn start(plugin_config: Value, workers: u32) -> Authz {
        Authz::start_with(plugin_config, workers, |settings| settings)
    }

    pub fn start_with(
        plugin_config: Value,
        workers: u32,
        customize: impl FnOnce(EnvoySettings) -> EnvoySettings,
    ) -> Authz {
        let api = ApiServer::start_with_fixtures();
        let upstream = Upstream::start();
        let settings = EnvoySettings::for_test(plugin_config, upstream.port())
            .with_cluster(api.envoy_cluster())
            .with_vm_env(TOKEN_ENV, &api.bearer_token())
            .with_concurrency(workers);
        let envoy = Envoy::start(&customize(settings));
        Authz {
            envoy,
            upstream,
            api,
        }
    }

    /// `req` over a fresh connection.
    pub fn send(&self, req: &Req) -> HttpResponse {
        send_fresh(self.envoy.port(), req)
    }

    /// A keep-alive connection to the listener.
    pub fn conn(&self) -> Conn {
        Conn::new(self.envoy.port())
    }

    /// Sends `req` on fresh connections until every worker has accepted at
    /// least one of them (so every worker's VM has seen the request); returns
    /// the responses.
    pub fn spread(&self, req: &Req) -> Vec<HttpResponse> {
        let before = self.envoy.stats().connections_per_worker();
        let mut responses = Vec::new();
        for _ in 0..64 {
            responses.push(self.send(req));
            let after = self.envoy.stats().connections_per_worker();
            let every_worker = !after.is_empty()
                && after
                    .iter()
                    .enumerate()
                    .all(|(worker, n)| *n > before.get(worker).copied().unwrap_or(0));
            if every_worker {
                return responses;
            }
        }
        panic!("64 fresh connections did not reach every worker: {before:?}");
    }

    /// The SubjectAccessReviews the stand-in received for `user`.
    pub fn reviews_for(&self, user: &str) -> Vec<Value> {
        self.api
            .sar_requests()
            .into_iter()
            .filter(|body| body["spec"]["user"] == user)
            .collect()
    }

    /// The SubjectAccessReviews the stand-in received for `user` about
    /// resource `name` in `namespace`.
    pub fn reviews_of(&self, user: &str, namespace: &str, name: &str) -> usize {
        self.reviews_for(user)
            .iter()
            .filter(|body| {
                let attributes = &body["spec"]["resourceAttributes"];
                attributes["namespace"] == namespace && attributes["name"] == name
            })
            .count()
    }

    /// A kfauth counter summed over workers (0 when it has not moved).
    pub fn counter(&self, name: &str) -> u64 {
        self.envoy.stats().counter(name)
    }
}

/// 403 `forbidden` with the API server's reason as `detail`, or no `detail`.
pub fn forbidden(response: &HttpResponse, detail: Option<&str>) {
    assert_eq!(
        response.status, 403,
        "expected 403 forbidden; got {} {:?}",
        response.status, response.body
    );
    let mut expected = json!({"code": 403, "reason": "forbidden"});
    if let Some(detail) = detail {
        expected["detail"] = json!(detail);
    }
    assert_eq!(response.json(), expected, "body of the 403");
    assert_eq!(
        response.header("www-authenticate"),
        None,
        "a 403 is no challenge"
    );
}

/// 403 `forbidden` whose `detail` contains `part`.
pub fn forbidden_with_detail_containing(response: &HttpResponse, part: &str) {
    assert_eq!(
        response.status, 403,
        "expected 403 forbidden; got {} {:?}",
        response.status, response.body
    );
    let body = response.json();
    assert_eq!(body["code"], 403, "{body}");
    assert_eq!(body["reason"], "forbidden", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(part),
        "detail {detail:?} should mention {part:?}"
    );
}

/// No response header or body, no upstream-received header, and no Envoy
/// log line contains `secret`.
pub fn assert_secret_absent(secret: &str, what: &str, texts: &[&str]) {
    for text in texts {
        assert!(
            !text.contains(secret),
            "{what} leaked: {}",
            &text[..text.len().min(400)]
        );
    }
}
