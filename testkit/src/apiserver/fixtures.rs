//! The project's own RBAC fixtures (`testkit/fixtures/rbac/*.yaml`),
//! modelled on Kubeflow: `kubeflow-{admin,edit,view}` aggregated from KServe
//! and Pipelines roles, and two profile namespaces with their bindings. The
//! names scenarios refer to are constants here.

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
