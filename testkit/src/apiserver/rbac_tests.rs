//! The RBAC evaluator, rule by rule, on the project's fixtures and on small
//! hand-written policies.

use super::authorizer::AccessRequest;
use super::fixtures::*;
use super::rbac::{Loaded, Rbac};

fn fixtures() -> Rbac {
    Rbac::kubeflow_fixtures()
}

fn user() -> AccessRequest {
    AccessRequest::user(USER)
}

const RUNS: (&str, &str) = ("pipelines.kubeflow.org", "runs");
const ISVC: (&str, &str) = ("serving.kserve.io", "inferenceservices");

#[test]
fn a_user_subject_edits_through_a_role_binding_of_a_cluster_role() {
    let rbac = fixtures();
    let create_run = user()
        .can("create", RUNS.0, RUNS.1)
        .in_namespace(USER_NAMESPACE);
    let decision = rbac.authorize(&create_run);
    assert!(decision.allowed);
    assert_eq!(
        decision.reason,
        r#"RBAC: allowed by RoleBinding "owner-edit/kubeflow-user-example-com" of ClusterRole "kubeflow-edit" to User "user@example.com""#
    );
    // The binding grants in its own namespace only, and not cluster-wide.
    let elsewhere = user()
        .can("create", RUNS.0, RUNS.1)
        .in_namespace(TEAM_B_NAMESPACE);
    assert!(!rbac.authorize(&elsewhere).allowed);
    assert_eq!(rbac.authorize(&elsewhere).reason, "");
    assert!(!rbac.allows(&user().can("create", RUNS.0, RUNS.1)));
    // User names are matched exactly.
    let shouting = AccessRequest::user("USER@example.com")
        .can("get", RUNS.0, RUNS.1)
        .in_namespace(USER_NAMESPACE);
    assert!(!rbac.allows(&shouting));
    // team-b is bob's alone.
    let bob = AccessRequest::user(BOB)
        .can("delete", ISVC.0, ISVC.1)
        .in_namespace(TEAM_B_NAMESPACE);
    assert!(rbac.allows(&bob));
    assert!(!rbac.allows(&bob.in_namespace(USER_NAMESPACE)));
}

#[test]
fn a_group_subject_matches_one_of_the_review_groups() {
    let rbac = fixtures();
    let viewer = AccessRequest::user("carol@example.com")
        .groups(&["other", VIEWER_GROUP])
        .can("get", ISVC.0, ISVC.1)
        .in_namespace(USER_NAMESPACE);
    let decision = rbac.authorize(&viewer);
    assert!(decision.allowed);
    assert_eq!(
        decision.reason,
        r#"RBAC: allowed by RoleBinding "team-viewers-view/kubeflow-user-example-com" of ClusterRole "kubeflow-view" to Group "team-viewers""#
    );
    assert!(rbac.allows(
        &AccessRequest::groups_only(&[VIEWER_GROUP])
            .can("list", RUNS.0, RUNS.1)
            .in_namespace(USER_NAMESPACE)
    ));
    // View is not edit.
    for verb in ["create", "update", "patch", "delete"] {
        assert!(
            !rbac.allows(&viewer.clone().can(verb, ISVC.0, ISVC.1)),
            "{verb}"
        );
    }
    assert!(!rbac.allows(&viewer.clone().can("create", RUNS.0, RUNS.1)));
    // Without the group, carol is nobody.
    assert!(!rbac.allows(&viewer.groups(&["other"])));
}

#[test]
fn a_service_account_subject_matches_its_user_name_only() {
    let rbac = fixtures();
    let editor = AccessRequest::service_account(USER_NAMESPACE, EDITOR_SERVICE_ACCOUNT)
        .can("create", RUNS.0, RUNS.1)
        .in_namespace(USER_NAMESPACE);
    assert_eq!(
        editor.user,
        "system:serviceaccount:kubeflow-user-example-com:default-editor"
    );
    let decision = rbac.authorize(&editor);
    assert!(decision.allowed);
    assert_eq!(
        decision.reason,
        r#"RBAC: allowed by RoleBinding "default-editor-edit/kubeflow-user-example-com" of ClusterRole "kubeflow-edit" to ServiceAccount "default-editor/kubeflow-user-example-com""#
    );
    // The same name in another namespace is another account.
    let impostor = AccessRequest::service_account(TEAM_B_NAMESPACE, EDITOR_SERVICE_ACCOUNT)
        .can("create", RUNS.0, RUNS.1)
        .in_namespace(USER_NAMESPACE);
    assert!(!rbac.allows(&impostor));
    // Service-account groups are not subjects here, and are not implied.
    let groups_only = AccessRequest::groups_only(&[
        "system:serviceaccounts",
        "system:serviceaccounts:kubeflow-user-example-com",
    ])
    .can("create", RUNS.0, RUNS.1)
    .in_namespace(USER_NAMESPACE);
    assert!(!rbac.allows(&groups_only));
}

#[test]
fn a_service_account_subject_without_namespace_takes_the_binding_s() {
    let rbac = Rbac::from_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: ns}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads, namespace: ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: robot}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads-missing, namespace: other}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: robot, namespace: ns}]
"#,
    )
    .unwrap();
    let robot = AccessRequest::service_account("ns", "robot").can("get", "", "configmaps");
    let decision = rbac.authorize(&robot.clone().in_namespace("ns"));
    assert_eq!(
        decision.reason,
        r#"RBAC: allowed by RoleBinding "robot-reads/ns" of Role "reader" to ServiceAccount "robot/ns""#
    );
    // A Role is looked up in the binding's namespace: `other` has none.
    let missing = rbac.authorize(&robot.in_namespace("other"));
    assert!(!missing.allowed);
    assert_eq!(
        missing.reason,
        r#"RBAC: role.rbac.authorization.k8s.io "reader" not found"#
    );
}

#[test]
fn aggregation_builds_admin_over_edit_over_view() {
    let rbac = fixtures();
    let in_ns = |verb: &str, (group, resource): (&str, &str)| {
        user()
            .can(verb, group, resource)
            .in_namespace(USER_NAMESPACE)
    };
    // Edit has what view aggregates (KServe and KFP read access)...
    assert!(rbac.allows(&in_ns("get", ISVC)));
    assert!(rbac.allows(&in_ns("watch", ISVC)));
    assert!(rbac.allows(&in_ns("list", RUNS)));
    assert!(rbac.allows(&in_ns("readArtifact", RUNS)));
    // ... plus its own ...
    for verb in ["create", "delete", "archive", "retry", "terminate"] {
        assert!(rbac.allows(&in_ns(verb, RUNS)), "{verb} runs");
    }
    assert!(rbac.allows(&in_ns(
        "unarchive",
        ("pipelines.kubeflow.org", "experiments")
    )));
    assert!(rbac.allows(&in_ns("update", ("pipelines.kubeflow.org", "pipelines"))));
    // ... but not admin's.
    assert!(!rbac.allows(&in_ns(
        "create",
        ("rbac.authorization.k8s.io", "rolebindings")
    )));
    let admin_rules = rbac.cluster_role_rules("kubeflow-admin").unwrap();
    let edit_rules = rbac.cluster_role_rules("kubeflow-edit").unwrap();
    let view_rules = rbac.cluster_role_rules("kubeflow-view").unwrap();
    assert!(view_rules.iter().all(|rule| edit_rules.contains(rule)));
    assert!(edit_rules.iter().all(|rule| admin_rules.contains(rule)));
    assert!(admin_rules.len() > edit_rules.len() && edit_rules.len() > view_rules.len());
}

const WILDCARDS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: wild}
rules:
- {apiGroups: ["*"], resources: [widgets], verbs: [get]}
- {apiGroups: [apps], resources: ["*"], verbs: [list]}
- {apiGroups: [batch], resources: [jobs], verbs: ["*"]}
- {apiGroups: [""], resources: ["*/scale"], verbs: [update]}
- {apiGroups: [""], resources: [secrets], resourceNames: [token-a, token-b], verbs: [get]}
- {apiGroups: [""], resources: [pods/log, services/proxy], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: wild-for-w}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wild}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: w}]
"#;

#[test]
fn wildcards_match_any_group_resource_or_verb() {
    let rbac = Rbac::from_yaml(WILDCARDS).unwrap();
    let w = || AccessRequest::user("w").in_namespace("any");
    assert!(rbac.allows(&w().can("get", "example.com", "widgets")));
    assert!(rbac.allows(&w().can("get", "", "widgets")));
    assert!(!rbac.allows(&w().can("list", "example.com", "widgets")));
    assert!(rbac.allows(&w().can("list", "apps", "deployments")));
    assert!(rbac.allows(&w().can("list", "apps", "deployments").subresource("status")));
    assert!(!rbac.allows(&w().can("get", "apps", "deployments")));
    assert!(rbac.allows(&w().can("deletecollection", "batch", "jobs")));
    assert!(!rbac.allows(&w().can("get", "batch", "cronjobs")));
    // `*/scale` is any resource's scale subresource, not the resource.
    assert!(rbac.allows(
        &w().can("update", "", "replicationcontrollers")
            .subresource("scale")
    ));
    assert!(!rbac.allows(&w().can("update", "", "replicationcontrollers")));
    assert!(!rbac.allows(&w().can("update", "", "pods").subresource("status")));
    // A request verb "*" is not a wildcard: it needs a rule verb "*".
    assert!(!rbac.allows(&w().can("*", "apps", "deployments")));
    assert!(rbac.allows(&w().can("*", "batch", "jobs")));
    // Cluster-scoped requests are served by ClusterRoleBindings too.
    assert!(rbac.allows(&AccessRequest::user("w").can("list", "apps", "deployments")));
}

#[test]
fn resource_names_limit_a_rule_to_named_objects() {
    let rbac = Rbac::from_yaml(WILDCARDS).unwrap();
    let secret = |name: &str| {
        AccessRequest::user("w")
            .can("get", "", "secrets")
            .in_namespace("ns")
            .named(name)
    };
    assert!(rbac.allows(&secret("token-a")));
    assert!(rbac.allows(&secret("token-b")));
    assert!(!rbac.allows(&secret("token-c")));
    // Asking for all of them (no name) is not asking for the named ones.
    assert!(!rbac.allows(&secret("")));
}

#[test]
fn subresources_are_separate_resources() {
    let rbac = Rbac::from_yaml(WILDCARDS).unwrap();
    let w = || AccessRequest::user("w").in_namespace("ns");
    assert!(rbac.allows(&w().can("get", "", "pods").subresource("log")));
    assert!(!rbac.allows(&w().can("get", "", "pods")));
    assert!(!rbac.allows(&w().can("get", "", "pods").subresource("exec")));
    let fixtures = fixtures();
    let viewer = AccessRequest::groups_only(&[VIEWER_GROUP]).in_namespace(USER_NAMESPACE);
    assert!(fixtures.allows(&viewer.clone().can("get", "", "pods").subresource("log")));
    assert!(fixtures.allows(
        &viewer
            .clone()
            .can("get", ISVC.0, ISVC.1)
            .subresource("status")
    ));
    assert!(!fixtures.allows(&viewer.clone().can("create", "", "pods").subresource("exec")));
    assert!(fixtures.allows(
        &user()
            .in_namespace(USER_NAMESPACE)
            .can("create", "", "pods")
            .subresource("exec")
    ));
}

#[test]
fn non_resource_urls_match_exactly_or_by_trailing_star() {
    let rbac = fixtures();
    let reader = AccessRequest::groups_only(&[METRICS_GROUP]);
    assert!(rbac.allows(&reader.clone().non_resource("get", "/metrics")));
    assert!(rbac.allows(&reader.clone().non_resource("get", "/debug/pprof/heap")));
    assert!(rbac.allows(&reader.clone().non_resource("get", "/debug/")));
    assert!(!rbac.allows(&reader.clone().non_resource("get", "/debug")));
    assert!(!rbac.allows(&reader.clone().non_resource("get", "/metrics/extra")));
    assert!(!rbac.allows(&reader.clone().non_resource("post", "/metrics")));
    // Resource rules never grant URLs, and URL rules never grant resources.
    assert!(!rbac.allows(&user().non_resource("get", "/metrics")));
    assert!(!rbac.allows(&reader.can("get", "", "metrics")));
    let all = Rbac::from_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: any-url}
rules: [{nonResourceURLs: ["*"], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: any-url}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: any-url}
subjects: [{kind: ServiceAccount, name: probe, namespace: monitoring}]
"#,
    )
    .unwrap();
    let probe = AccessRequest::service_account("monitoring", "probe");
    assert!(all.allows(&probe.clone().non_resource("get", "/anything/at/all")));
    assert_eq!(
        all.authorize(&probe.non_resource("get", "/x")).reason,
        r#"RBAC: allowed by ClusterRoleBinding "any-url" of ClusterRole "any-url" to ServiceAccount "probe/monitoring""#
    );
}

#[test]
fn everything_is_denied_by_default() {
    let empty = Rbac::new();
    let decision = empty.authorize(&user().can("get", "", "pods").in_namespace("ns"));
    assert_eq!((decision.allowed, decision.reason.as_str()), (false, ""));
    assert!(!empty.allows(&user().non_resource("get", "/healthz")));
    let rbac = fixtures();
    assert!(!rbac.allows(
        &AccessRequest::user("stranger@example.com")
            .can("get", ISVC.0, ISVC.1)
            .in_namespace(USER_NAMESPACE)
    ));
    assert!(!rbac.allows(&user().can("get", "", "nodes")));
    assert!(!rbac.allows(
        &user()
            .can("escalate", RUNS.0, RUNS.1)
            .in_namespace(USER_NAMESPACE)
    ));
}

#[test]
fn a_binding_to_a_missing_role_is_an_evaluation_error() {
    let rbac = Rbac::from_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gone}
subjects: [{kind: User, name: u}]
"#,
    )
    .unwrap();
    let decision = rbac.authorize(&AccessRequest::user("u").can("get", "", "pods"));
    assert_eq!(
        (decision.allowed, decision.reason.as_str()),
        (
            false,
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#
        )
    );
    // Only bindings that apply to the user are looked at.
    assert_eq!(
        rbac.authorize(&AccessRequest::user("v").can("get", "", "pods"))
            .reason,
        ""
    );
}

#[test]
fn loading_takes_lists_skips_other_kinds_and_rejects_bad_bindings() {
    let mut rbac = Rbac::new();
    let loaded = rbac
        .load_yaml_in(
            r#"
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata: {name: r}
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: sa}
---
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
"#,
            "chosen",
        )
        .unwrap();
    assert_eq!(
        loaded,
        Loaded {
            objects: 2,
            ignored: 1
        }
    );
    assert!(rbac.role_rules("chosen", "r").is_some());
    assert_eq!(rbac.role_bindings_in("chosen").count(), 1);
    assert_eq!(
        Rbac::from_yaml(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: d}\n"
        )
        .unwrap()
        .role_rules("default", "d"),
        Some(&[][..])
    );

    let bad_ref = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {kind: Role, name: r}\n";
    assert!(Rbac::from_yaml(bad_ref)
        .unwrap_err()
        .contains("roleRef.kind"));
    let bad_sa = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {kind: ClusterRole, name: r}\nsubjects: [{kind: ServiceAccount, name: s}]\n";
    assert!(Rbac::from_yaml(bad_sa)
        .unwrap_err()
        .contains("needs a namespace"));
    assert!(Rbac::from_yaml("kind: [").is_err());
    assert!(Rbac::from_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {}\n"
    )
    .is_err());
}
