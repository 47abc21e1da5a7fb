//! The stand-in against the real thing, from `../shared/data` (relative to
//! the repository root): Kubeflow's own role manifests evaluated by the
//! stand-in's RBAC, and review bodies checked against Kubernetes' published
//! OpenAPI schemas. Where the data is absent each test says it is SKIPPED,
//! by name, and returns.

use kfauth_testkit::apiserver::conformance::{
    self, report_skipped, shared_data_dir, shared_data_file, AUTHENTICATION_OPENAPI,
    AUTHORIZATION_OPENAPI, KUBEFLOW_ROLE_MANIFESTS,
};
use kfauth_testkit::apiserver::fixtures::{role_binding, Subject};
use kfauth_testkit::apiserver::openapi::{Schemas, SAR_SCHEMA, TOKEN_REVIEW_SCHEMA};
use kfauth_testkit::apiserver::{
    subject_access_review, token_review, validate_sar_request, validate_token_review_request,
    AccessRequest, ApiServer, Rbac, SAR_PATH, TOKEN_REVIEW_PATH,
};
use serde_json::{json, Value};

/// The files, or None after printing why the test is skipped.
fn shared_files(test: &str, relative: &[&str]) -> Option<Vec<std::path::PathBuf>> {
    let files: Option<Vec<_>> = relative.iter().map(|r| shared_data_file(r)).collect();
    if files.is_none() {
        let why = format!(
            "../shared/data absent ({} lacks {})",
            shared_data_dir().display(),
            relative.join(", ")
        );
        report_skipped(test, &why);
    }
    files
}

const NAMESPACE: &str = "conformance-ns";

/// Our own bindings over Kubeflow's real roles.
fn bindings() -> String {
    [
        role_binding(
            NAMESPACE,
            "editor",
            "kubeflow-edit",
            &[Subject::User("editor@example.com")],
        ),
        role_binding(
            NAMESPACE,
            "viewers",
            "kubeflow-view",
            &[Subject::Group("viewers")],
        ),
        role_binding(
            NAMESPACE,
            "admin",
            "kubeflow-admin",
            &[Subject::ServiceAccount("profile-admin")],
        ),
    ]
    .join("---\n")
}

#[test]
fn conformance_kubeflow_roles() {
    let Some(files) = shared_files("conformance_kubeflow_roles", &KUBEFLOW_ROLE_MANIFESTS) else {
        return;
    };
    let mut rbac = Rbac::from_files(&files).unwrap();
    rbac.load_yaml(&bindings()).unwrap();
    for role in [
        "kubeflow-admin",
        "kubeflow-edit",
        "kubeflow-view",
        "kubeflow-pipelines-edit",
    ] {
        assert!(
            !rbac.cluster_role_rules(role).unwrap_or_default().is_empty(),
            "{role} aggregates nothing"
        );
    }
    let editor = || AccessRequest::user("editor@example.com").in_namespace(NAMESPACE);
    let viewer = || {
        AccessRequest::user("v@example.com")
            .groups(&["viewers"])
            .in_namespace(NAMESPACE)
    };
    let admin =
        || AccessRequest::service_account(NAMESPACE, "profile-admin").in_namespace(NAMESPACE);
    let kfp = "pipelines.kubeflow.org";
    let kserve = "serving.kserve.io";

    // kubeflow-edit: KFP's edit verbs and KServe, through two levels of aggregation.
    for (verb, resource) in [
        ("create", "runs"),
        ("archive", "runs"),
        ("retry", "runs"),
        ("terminate", "runs"),
        ("get", "runs"),
        ("list", "experiments"),
        ("create", "experiments"),
        ("delete", "pipelines"),
    ] {
        assert!(
            rbac.allows(&editor().can(verb, kfp, resource)),
            "edit: {verb} {resource}"
        );
    }
    for verb in ["get", "list", "create", "patch", "delete"] {
        assert!(
            rbac.allows(&editor().can(verb, kserve, "inferenceservices")),
            "edit: {verb} isvc"
        );
    }
    assert!(rbac.allows(&editor().can("create", "", "pods").subresource("exec")));
    let reason = rbac.authorize(&editor().can("create", kfp, "runs")).reason;
    assert_eq!(
        reason,
        r#"RBAC: allowed by RoleBinding "editor/conformance-ns" of ClusterRole "kubeflow-edit" to User "editor@example.com""#
    );

    // kubeflow-view: reads, never writes.
    for (group, resource) in [
        (kfp, "runs"),
        (kfp, "experiments"),
        (kfp, "pipelines"),
        (kserve, "inferenceservices"),
    ] {
        assert!(
            rbac.allows(&viewer().can("get", group, resource)),
            "view: get {resource}"
        );
        assert!(
            rbac.allows(&viewer().can("list", group, resource)),
            "view: list {resource}"
        );
        assert!(
            !rbac.allows(&viewer().can("create", group, resource)),
            "view: create {resource}"
        );
        assert!(
            !rbac.allows(&viewer().can("delete", group, resource)),
            "view: delete {resource}"
        );
    }
    assert!(!rbac.allows(&viewer().can("archive", kfp, "runs")));

    // kubeflow-admin ⊇ edit, plus managing access; edit may not.
    assert!(rbac.allows(&admin().can("create", kfp, "runs")));
    assert!(rbac.allows(&admin().can("create", "rbac.authorization.k8s.io", "rolebindings")));
    assert!(!rbac.allows(&editor().can("create", "rbac.authorization.k8s.io", "rolebindings")));

    // Only in the bound namespace, and only for the bound subjects.
    assert!(!rbac.allows(
        &editor()
            .can("create", kfp, "runs")
            .in_namespace("elsewhere")
    ));
    assert!(!rbac.allows(
        &AccessRequest::user("nobody@example.com")
            .can("get", kfp, "runs")
            .in_namespace(NAMESPACE)
    ));

    // And over the wire, as the filter will ask.
    let api = ApiServer::start_with_rbac(rbac);
    let answer = api.post_json(
        SAR_PATH,
        &subject_access_review::request_body(&editor().can("get", kserve, "inferenceservices")),
    );
    assert_eq!(answer.status, 201);
    assert_eq!(answer.json()["status"]["allowed"], true);
}

#[test]
fn conformance_review_bodies() {
    let Some(files) = shared_files(
        "conformance_review_bodies",
        &[AUTHORIZATION_OPENAPI, AUTHENTICATION_OPENAPI],
    ) else {
        return;
    };
    let authorization = Schemas::load(&files[0]).unwrap();
    let authentication = Schemas::load(&files[1]).unwrap();
    assert!(authorization.has(SAR_SCHEMA) && authentication.has(TOKEN_REVIEW_SCHEMA));
    // validate_sar_request uses the same files.
    assert!(conformance::authorization_schemas().is_some());
    assert!(conformance::authentication_schemas().is_some());

    // What the stand-in receives, as recorded from real requests.
    let api = ApiServer::start_with_fixtures();
    api.register_token("t", "u", &["g"], &["kfauth"]);
    let sar_bodies = [
        subject_access_review::request_body(
            &AccessRequest::user("user@example.com")
                .groups(&["a", "b"])
                .can("create", "pipelines.kubeflow.org", "runs")
                .in_namespace("kubeflow-user-example-com")
                .subresource("status")
                .named("run-1"),
        ),
        subject_access_review::request_body(
            &AccessRequest::groups_only(&["metrics-readers"]).non_resource("get", "/metrics"),
        ),
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "metadata": {"creationTimestamp": null},
               "spec": {"user": "u", "uid": "1", "extra": {"scopes": ["a"]},
                        "resourceAttributes": {"verb": "get", "version": "v1beta1", "resource": "inferenceservices", "group": "serving.kserve.io", "namespace": "ns"}}}),
    ];
    for body in &sar_bodies {
        assert_eq!(api.post_json(SAR_PATH, body).status, 201);
    }
    let tr_bodies = [
        token_review::request_body("t", &["kfauth"]),
        token_review::request_body("t", &[]),
    ];
    for body in &tr_bodies {
        assert_eq!(api.post_json(TOKEN_REVIEW_PATH, body).status, 201);
    }
    assert_eq!(api.sar_requests(), sar_bodies);
    for body in api.sar_requests() {
        assert_eq!(
            authorization.validate(SAR_SCHEMA, &body),
            Vec::<String>::new(),
            "{body}"
        );
        validate_sar_request(&body).unwrap();
    }
    for body in api.token_review_requests() {
        assert_eq!(
            authentication.validate(TOKEN_REVIEW_SCHEMA, &body),
            Vec::<String>::new(),
            "{body}"
        );
        validate_token_review_request(&body).unwrap();
    }

    // The answers conform too.
    let answer = api.post_json(SAR_PATH, &sar_bodies[0]).json();
    assert_eq!(
        authorization.validate(SAR_SCHEMA, &answer),
        Vec::<String>::new()
    );
    let answer = api.post_json(TOKEN_REVIEW_PATH, &tr_bodies[1]).json();
    assert_eq!(
        authentication.validate(TOKEN_REVIEW_SCHEMA, &answer),
        Vec::<String>::new()
    );

    // And what a buggy filter might send is caught, by the schema itself.
    let bad_sars: [(Value, &str); 5] = [
        (
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"}),
            "spec",
        ),
        (
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": "u", "groups": "a,b", "nonResourceAttributes": {"path": "/", "verb": "get"}}}),
            "spec.groups",
        ),
        (
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": "u", "resourceAttributes": {"verb": "get", "apiGroup": "x"}}}),
            "spec.resourceAttributes.apiGroup",
        ),
        (
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"userName": "u", "nonResourceAttributes": {"path": "/", "verb": "get"}}}),
            "spec.userName",
        ),
        (
            json!({"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview",
                "spec": {"user": "u", "nonResourceAttributes": {"path": "/", "verb": "get"}}}),
            "apiVersion",
        ),
    ];
    for (body, field) in &bad_sars {
        let errors = authorization.validate(SAR_SCHEMA, body);
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{field}: {errors:?}"
        );
        let verdict = validate_sar_request(body).unwrap_err();
        assert!(verdict.contains(field), "{field}: {verdict}");
    }
    let bad_token_reviews: [(Value, &str); 3] = [
        (
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}),
            "token",
        ),
        (
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t", "audiences": "kfauth"}}),
            "spec.audiences",
        ),
        (
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t", "audience": ["kfauth"]}}),
            "spec.audience",
        ),
    ];
    for (body, field) in &bad_token_reviews {
        let errors = authentication.validate(TOKEN_REVIEW_SCHEMA, body);
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{field}: {errors:?}"
        );
        assert!(validate_token_review_request(body).is_err());
    }
}
