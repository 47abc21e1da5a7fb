//! The project's own RBAC fixtures (`testkit/fixtures/rbac/*.yaml`),
//! modelled on Kubeflow: `kubeflow-{admin,edit,view}` aggregated from KServe
//! and Pipelines roles, and two profile namespaces with their bindings. The
//! names scenarios refer to are constants here, and scenarios write their
//! own objects with [`namespace`] and [`role_binding`].

use std::path::PathBuf;

use super::rbac::Rbac;

/// The profile namespace of [`USER`].
pub const USER_NAMESPACE: &str = "kubeflow-user-example-com";
/// Edits [`USER_NAMESPACE`] (RoleBinding `owner-edit` of `kubeflow-edit`).
pub const USER: &str = "user@example.com";
/// Views [`USER_NAMESPACE`] (RoleBinding `team-viewers-view` of `kubeflow-view`).
pub const VIEWER_GROUP: &str = "team-viewers";
/// The service account that edits [`USER_NAMESPACE`]: `default-editor`.
pub const EDITOR_SERVICE_ACCOUNT: &str = "default-editor";
/// A second namespace, where only [`BOB`] (edit) has access.
pub const TEAM_B_NAMESPACE: &str = "team-b";
pub const BOB: &str = "bob@example.com";
/// May `get` the non-resource URLs `/metrics` and `/debug/*`.
pub const METRICS_GROUP: &str = "metrics-readers";

/// `testkit/fixtures/rbac`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/rbac")
}

/// The fixture files, in name order.
pub fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Who a binding grants its role to.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    User(&'a str),
    Group(&'a str),
    /// A service account of the binding's namespace.
    ServiceAccount(&'a str),
}

impl Subject<'_> {
    fn yaml(self) -> String {
        // A JSON string is a YAML scalar, whatever the name holds.
        let (kind, name) = match self {
            Subject::User(name) => ("User", name),
            Subject::Group(name) => ("Group", name),
            Subject::ServiceAccount(name) => {
                return format!("{{kind: ServiceAccount, name: {}}}", json_string(name))
            }
        };
        format!(
            "{{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: {}}}",
            json_string(name)
        )
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A Namespace object, as YAML (for [`Rbac::load_yaml`] and
/// `ApiServer::apply_yaml`; objects join with `---`).
pub fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// A RoleBinding `name` in `namespace` of ClusterRole `cluster_role` to
/// `subjects`, as YAML.
pub fn role_binding(
    namespace: &str,
    name: &str,
    cluster_role: &str,
    subjects: &[Subject],
) -> String {
    let subjects: String = subjects
        .iter()
        .map(|subject| format!("- {}\n", subject.yaml()))
        .collect();
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {cluster_role}}}\n\
         subjects:\n{subjects}"
    )
}

impl Rbac {
    /// Every fixture loaded; panics (naming the file) if one does not load.
    pub fn kubeflow_fixtures() -> Rbac {
        let files = fixture_files();
        assert!(
            !files.is_empty(),
            "no RBAC fixtures in {}",
            fixtures_dir().display()
        );
        Rbac::from_files(&files).unwrap_or_else(|e| panic!("RBAC fixtures: {e}"))
    }
}

impl super::server::ApiServer {
    /// A stand-in answering from the project's RBAC fixtures.
    pub fn start_with_fixtures() -> super::server::ApiServer {
        super::server::ApiServer::start_with_rbac(Rbac::kubeflow_fixtures())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::AccessRequest;

    #[test]
    fn generated_bindings_load_and_grant_their_role() {
        let mut rbac = Rbac::kubeflow_fixtures();
        let yaml = [
            namespace("generated"),
            role_binding(
                "generated",
                "mixed",
                "kubeflow-view",
                &[
                    Subject::User("a \"quoted\" user"),
                    Subject::Group("viewers"),
                    Subject::ServiceAccount("runner"),
                ],
            ),
        ]
        .join("---\n");
        rbac.load_yaml(&yaml).unwrap();
        let view = |request: AccessRequest| {
            rbac.allows(
                &request
                    .can("get", "serving.kserve.io", "inferenceservices")
                    .in_namespace("generated"),
            )
        };
        assert!(view(AccessRequest::user("a \"quoted\" user")));
        assert!(view(AccessRequest::user("x").groups(&["viewers"])));
        assert!(view(AccessRequest::user(
            "system:serviceaccount:generated:runner"
        )));
        assert!(!view(AccessRequest::user("someone-else")));
    }
}
