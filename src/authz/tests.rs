//! Rules to reviews, the cache, and the answers, without any host.

use super::*;
use crate::config::Config;
use crate::testutil::DEX;
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const NOW: Duration = Duration::from_secs(1_800_000_000);

/// [`super::authorize`] without the access log's record.
fn authorize(
    authz: &Authorization,
    jwt_rules: &[JwtRule],
    request: &RequestView,
    identity: Option<&Identity>,
    cache: &SubjectAccessReviewCache,
    now: Duration,
) -> AuthzStep {
    super::authorize(
        authz,
        jwt_rules,
        request,
        identity,
        cache,
        now,
        &mut Access::default(),
    )
}

#[test]
fn the_review_is_noted_for_the_access_log() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    let cache = SubjectAccessReviewCache::new(10);
    let noted = |path: &str| {
        let mut access = Access::default();
        let view = request("GET", "kubeflow.example.com", path);
        super::authorize(
            authz,
            &config.rules,
            &view,
            Some(&alice()),
            &cache,
            NOW,
            &mut access,
        );
        (access.verb, access.resource, access.namespace)
    };
    let some = |text: &str| Some(text.to_string());
    assert_eq!(
        noted("/pipeline/apis/v2beta1/runs?namespace=team-a"),
        (some("list"), some("runs"), some("team-a"))
    );
    // A non-resource URL: its path stands for the resource.
    assert_eq!(noted("/metrics"), (some("get"), some("/metrics"), None));
    assert_eq!(noted("/unguarded"), (None, None, None));
}

fn config(authorization: Value) -> Config {
    let env = |name: &str| (name == "APISERVER_TOKEN").then(|| "secret".to_string());
    Config::parse_with_env(
        json!({
            "jwtRules": [{"issuer": DEX, "jwksUri": "http://dex/keys",
                "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}]}],
            "authorization": authorization,
        })
        .to_string()
        .as_bytes(),
        &env,
    )
    .unwrap()
}

fn kserve_and_kfp() -> Value {
    json!({
        "apiserver": {"tokenEnv": "APISERVER_TOKEN"},
        "groupsClaim": "groups",
        "rules": [
            {"match": {"hosts": ["^(?P<model>[^.]+)\\.(?P<namespace>[^.]+)\\.example\\.com$"],
                       "paths": ["^/v1/models/(?P<name>[^/:]+):predict$"]},
             "resourceAttributes": {"namespace": "{host.namespace}", "group": "serving.kserve.io",
                                    "resource": "inferenceservices", "name": "{path.name}", "verb": "get"}},
            {"match": {"paths": ["^/pipeline/apis/v2beta1/runs$"], "methods": ["get"]},
             "resourceAttributes": {"namespace": "{query.namespace}", "group": "pipelines.kubeflow.org",
                                    "resource": "runs", "verb": "list"}},
            {"match": {"paths": ["^/metrics$"]}, "nonResourceAttributes": {}},
        ]
    })
}

fn request(method: &str, authority: &str, path: &str) -> RequestView {
    RequestView {
        method: method.into(),
        path: path.into(),
        authority: authority.into(),
        ..RequestView::default()
    }
}

fn alice() -> Identity {
    Identity {
        reviewed: None,
        rule: 0,
        claims: std::rc::Rc::new(
            json!({"email": "alice@example.com", "groups": ["team-a", "ml"]})
                .as_object()
                .cloned()
                .unwrap(),
        ),
    }
}

fn review_spec_of(step: &AuthzStep) -> Value {
    let AuthzStep::SubjectAccessReview { body, key } = step else {
        panic!("no review: {step:?}")
    };
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["spec"].to_string(), *key, "the key is the whole spec");
    body["spec"].clone()
}

#[test]
fn kserve_predict_becomes_an_inferenceservice_get() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    assert_eq!(
        authz.apiserver.credential,
        config::Credential::Bearer {
            env: "APISERVER_TOKEN".into(),
            token: "secret".into()
        }
    );
    assert_eq!(authz.apiserver.bearer().as_deref(), Some("Bearer secret"));
    let step = authorize(
        authz,
        &config.rules,
        &request(
            "POST",
            "iris.team-a.example.com:443",
            "/v1/models/iris:predict",
        ),
        Some(&alice()),
        &SubjectAccessReviewCache::new(10),
        NOW,
    );
    assert_eq!(
        review_spec_of(&step),
        json!({"user": "alice@example.com", "groups": ["team-a", "ml"],
               "resourceAttributes": {"namespace": "team-a", "group": "serving.kserve.io",
                   "resource": "inferenceservices", "name": "iris", "verb": "get"}})
    );
}

#[test]
fn kfp_runs_list_reads_the_namespace_from_the_query() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    let cache = SubjectAccessReviewCache::new(10);
    let step = authorize(
        authz,
        &config.rules,
        &request(
            "GET",
            "kubeflow.example.com",
            "/pipeline/apis/v2beta1/runs?page_size=10&namespace=team-a",
        ),
        Some(&alice()),
        &cache,
        NOW,
    );
    assert_eq!(
        review_spec_of(&step)["resourceAttributes"]["namespace"],
        "team-a"
    );
    let missing = authorize(
        authz,
        &config.rules,
        &request("GET", "kubeflow.example.com", "/pipeline/apis/v2beta1/runs"),
        Some(&alice()),
        &cache,
        NOW,
    );
    assert!(
        matches!(missing, AuthzStep::Deny(Denial { reason: Reason::Forbidden, detail: Some(ref d), .. }) if d.contains("namespace"))
    );
    // Method filter: a POST does not match the GET rule, and no rule means allow.
    let post = authorize(
        authz,
        &config.rules,
        &request(
            "POST",
            "kubeflow.example.com",
            "/pipeline/apis/v2beta1/runs?namespace=team-a",
        ),
        Some(&alice()),
        &cache,
        NOW,
    );
    assert_eq!(post, AuthzStep::NotGuarded);
}

#[test]
fn non_resource_reviews_default_to_the_path_and_method() {
    let config = config(kserve_and_kfp());
    let step = authorize(
        config.authorization.as_ref().unwrap(),
        &config.rules,
        &request("GET", "gw", "/metrics"),
        Some(&alice()),
        &SubjectAccessReviewCache::new(10),
        NOW,
    );
    assert_eq!(
        review_spec_of(&step)["nonResourceAttributes"],
        json!({"path": "/metrics", "verb": "get"})
    );
}

#[test]
fn no_identity_on_a_guarded_route_is_401_and_unguarded_routes_follow_default_deny() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    let cache = SubjectAccessReviewCache::new(10);
    let guarded = request("GET", "gw", "/metrics");
    assert_eq!(
        authorize(authz, &config.rules, &guarded, None, &cache, NOW),
        AuthzStep::Deny(Denial::new(Reason::TokenMissing, false))
    );
    let open = request("GET", "gw", "/elsewhere");
    assert_eq!(
        authorize(authz, &config.rules, &open, Some(&alice()), &cache, NOW),
        AuthzStep::NotGuarded
    );
    let mut strict = kserve_and_kfp();
    strict["defaultDeny"] = true.into();
    let config = self::config(strict);
    assert!(matches!(
        authorize(
            config.authorization.as_ref().unwrap(),
            &config.rules,
            &open,
            Some(&alice()),
            &cache,
            NOW
        ),
        AuthzStep::Deny(Denial {
            reason: Reason::Forbidden,
            ..
        })
    ));
}

#[test]
fn answers_are_cached_with_their_own_ttls() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    let mut cache = SubjectAccessReviewCache::new(10);
    let view = request("GET", "gw", "/metrics");
    let AuthzStep::SubjectAccessReview { key, .. } =
        authorize(authz, &config.rules, &view, Some(&alice()), &cache, NOW)
    else {
        panic!("no review")
    };
    assert_eq!(
        subject_access_review_answered(
            authz,
            &mut cache,
            &key,
            &SubjectAccessReviewAnswer::Denied(Some("no".into())),
            NOW
        ),
        Some(Denial {
            reason: Reason::Forbidden,
            cause: None,
            token_sent: true,
            detail: Some("no".into())
        })
    );
    let denied = authorize(
        authz,
        &config.rules,
        &view,
        Some(&alice()),
        &cache,
        NOW + Duration::from_secs(29),
    );
    assert!(matches!(denied, AuthzStep::Cached(Some(_))));
    let expired = authorize(
        authz,
        &config.rules,
        &view,
        Some(&alice()),
        &cache,
        NOW + Duration::from_secs(31),
    );
    assert!(matches!(expired, AuthzStep::SubjectAccessReview { .. }));
    assert_eq!(
        subject_access_review_answered(
            authz,
            &mut cache,
            &key,
            &SubjectAccessReviewAnswer::Allowed,
            NOW
        ),
        None
    );
    let later = NOW + Duration::from_secs(299);
    assert_eq!(
        authorize(authz, &config.rules, &view, Some(&alice()), &cache, later),
        AuthzStep::Cached(None)
    );
}

#[test]
fn an_unusable_answer_follows_the_failure_mode_and_is_not_cached() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    let mut cache = SubjectAccessReviewCache::new(10);
    let broken = SubjectAccessReviewAnswer::Unusable("HTTP 500".into());
    assert_eq!(
        subject_access_review_answered(authz, &mut cache, "k", &broken, NOW),
        Some(Denial::new(Reason::AuthorizerUnavailable, true))
    );
    assert!(cache.is_empty());
    let mut open = kserve_and_kfp();
    open["failureMode"] = "allow".into();
    let config = self::config(open);
    assert_eq!(
        subject_access_review_answered(
            config.authorization.as_ref().unwrap(),
            &mut cache,
            "k",
            &broken,
            NOW
        ),
        None
    );
}

#[test]
fn a_missing_credential_keeps_the_config_and_follows_the_failure_mode() {
    // The gateway's Deployment has not rolled out with the token yet: the
    // configuration is kept (authentication must go on), with one warning.
    let mut missing = kserve_and_kfp();
    missing["apiserver"]["tokenEnv"] = "NOT_ROLLED_OUT".into();
    let config = self::config(missing.clone());
    let authz = config.authorization.as_ref().unwrap();
    assert_eq!(
        authz.apiserver.credential,
        config::Credential::Missing {
            env: "NOT_ROLLED_OUT".into()
        }
    );
    assert_eq!(authz.apiserver.missing_credential(), Some("NOT_ROLLED_OUT"));
    assert_eq!(authz.apiserver.bearer(), None);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0].starts_with("authorization.apiserver.tokenEnv:")
            && config.warnings[0].contains("`NOT_ROLLED_OUT`")
            && config.warnings[0].contains("503 authorizer_unavailable"),
        "{:?}",
        config.warnings
    );
    let predict = request("POST", "iris.team-a.example.com", "/v1/models/iris:predict");
    let cache = SubjectAccessReviewCache::new(10);
    let step = authorize(authz, &config.rules, &predict, Some(&alice()), &cache, NOW);
    assert_eq!(
        step,
        AuthzStep::Deny(Denial {
            reason: Reason::AuthorizerUnavailable,
            cause: None,
            token_sent: true,
            detail: Some("no API server credential: `NOT_ROLLED_OUT` is not set".into()),
        })
    );
    // Unguarded routes and rules still decide as before; no token is still 401.
    let unguarded = request("GET", "kubeflow.example.com", "/");
    assert_eq!(
        authorize(
            authz,
            &config.rules,
            &unguarded,
            Some(&alice()),
            &cache,
            NOW
        ),
        AuthzStep::NotGuarded
    );
    assert_eq!(
        authorize(authz, &config.rules, &predict, None, &cache, NOW),
        AuthzStep::Deny(Denial::new(Reason::TokenMissing, false))
    );

    missing["failureMode"] = "allow".into();
    let config = self::config(missing);
    let authz = config.authorization.as_ref().unwrap();
    assert!(
        config.warnings[0].contains("pass unreviewed"),
        "{:?}",
        config.warnings
    );
    assert_eq!(
        authorize(authz, &config.rules, &predict, Some(&alice()), &cache, NOW),
        AuthzStep::Allow
    );
    assert!(cache.is_empty(), "nothing is cached without an answer");

    // No tokenEnv at all: nothing is sent, nothing is missing.
    let config = self::config(json!({"rules": []}));
    let authz = config.authorization.as_ref().unwrap();
    assert_eq!(authz.apiserver.credential, config::Credential::Anonymous);
    assert_eq!(authz.apiserver.missing_credential(), None);
    assert!(config.warnings.is_empty());
}

#[test]
fn configuration_errors_name_the_field() {
    let env = |_: &str| None;
    let parse = |authorization: Value| {
        Config::parse_with_env(
            json!({"jwtRules": [{"issuer": DEX, "jwksUri": "http://dex/keys"}], "authorization": authorization})
                .to_string()
                .as_bytes(),
            &env,
        )
        .unwrap_err()
        .field
    };
    assert_eq!(
        parse(json!({"apiserver": {"tokenEnv": ""}})),
        "authorization.apiserver.tokenEnv"
    );
    assert_eq!(
        parse(json!({"failureMode": "maybe"})),
        "authorization.failureMode"
    );
    assert_eq!(
        parse(json!({"rules": [{"match": {"paths": ["("]}, "nonResourceAttributes": {}}]})),
        "authorization.rules[0].match.paths[0]"
    );
    assert_eq!(
        parse(json!({"rules": [{"resourceAttributes": {"name": "{path.model}"}}]})),
        "authorization.rules[0].resourceAttributes.name"
    );
    assert_eq!(
        parse(json!({"rules": [{"match": {}}]})),
        "authorization.rules[0].resourceAttributes"
    );
    assert_eq!(
        parse(json!({"cache": {"allowedTtl": "long"}})),
        "authorization.cache.allowedTtl"
    );
    assert_eq!(parse(json!({"rules": []})), "authorization.userClaim");
    assert_eq!(parse(json!({"rulez": []})), "authorization.rulez");
}

#[test]
fn verbs_follow_kube_rbac_proxy() {
    for (method, verb) in [
        ("GET", "get"),
        ("HEAD", "get"),
        ("POST", "create"),
        ("PUT", "update"),
        ("PATCH", "patch"),
        ("DELETE", "delete"),
    ] {
        assert_eq!(verb_of(method), verb);
    }
}

#[test]
fn spelling_tricks_do_not_dodge_a_rule() {
    let config = config(kserve_and_kfp());
    let authz = config.authorization.as_ref().unwrap();
    let cache = SubjectAccessReviewCache::new(10);
    for (method, authority, path) in [
        ("POST", "IRIS.TEAM-A.EXAMPLE.COM", "/v1/models/iris:predict"),
        (
            "POST",
            "iris.team-a.example.com.",
            "/v1/models/iris:predict",
        ),
        (
            "POST",
            "iris.team-a.example.com",
            "/v1/models/iris%3Apredict",
        ),
        (
            "POST",
            "iris.team-a.example.com",
            "//v1/models/iris:predict",
        ),
        (
            "POST",
            "iris.team-a.example.com",
            "/x/../v1/models/iris:predict",
        ),
    ] {
        let step = authorize(
            authz,
            &config.rules,
            &request(method, authority, path),
            Some(&alice()),
            &cache,
            NOW,
        );
        let spec = review_spec_of(&step);
        assert_eq!(
            spec["resourceAttributes"]["namespace"], "team-a",
            "{authority}{path}"
        );
        assert_eq!(spec["resourceAttributes"]["name"], "iris");
    }
    // HEAD is reviewed like GET.
    let head = authorize(
        authz,
        &config.rules,
        &request(
            "HEAD",
            "kubeflow",
            "/pipeline/apis/v2beta1/runs?namespace=team-a",
        ),
        Some(&alice()),
        &cache,
        NOW,
    );
    assert!(matches!(head, AuthzStep::SubjectAccessReview { .. }));
    // A templated parameter given twice is refused, not guessed.
    let twice = authorize(
        authz,
        &config.rules,
        &request(
            "GET",
            "kubeflow",
            "/pipeline/apis/v2beta1/runs?namespace=team-b&namespace=team-a",
        ),
        Some(&alice()),
        &cache,
        NOW,
    );
    assert!(matches!(
        twice,
        AuthzStep::Deny(Denial {
            reason: Reason::Forbidden,
            ..
        })
    ));
}
