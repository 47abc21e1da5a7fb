//! Checking request bodies against the real Kubernetes contract: the
//! built-in one ([`super::contract`]) always, and the published OpenAPI
//! schemas in `../shared/data` (relative to the repository root) when that
//! directory is there. E2E tests call [`validate_sar_request`] on the bodies
//! the filter sent (see `ApiServer::sar_requests`).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use super::contract::{self, Problem};
use super::openapi::{Schemas, SAR_SCHEMA, TOKEN_REVIEW_SCHEMA};
use crate::bootstrap::repo_root;

/// The schema of `authorization.k8s.io/v1`, relative to the shared data.
pub const AUTHORIZATION_OPENAPI: &str = "k8s-openapi/authorization.k8s.io_v1.json";
/// The schema of `authentication.k8s.io/v1`, relative to the shared data.
pub const AUTHENTICATION_OPENAPI: &str = "k8s-openapi/authentication.k8s.io_v1.json";

/// Kubeflow's RBAC role manifests, relative to the shared data: the
/// `kubeflow-{admin,edit,view}` roles, KFP's and KServe's aggregated roles.
pub const KUBEFLOW_ROLE_MANIFESTS: [&str; 3] = [
    "kubeflow-manifests/common/kubeflow-roles/base/cluster-roles.yaml",
    "kubeflow-manifests/applications/pipeline/upstream/base/installs/multi-user/view-edit-cluster-roles.yaml",
    "kubeflow-manifests/applications/kserve/kserve/aggregated-roles.yaml",
];

/// `$KFAUTH_SHARED_DATA`, else `../shared/data` beside the repository.
pub fn shared_data_dir() -> PathBuf {
    match std::env::var_os("KFAUTH_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let root = repo_root();
            root.parent()
                .map_or(root.clone(), PathBuf::from)
                .join("shared/data")
        }
    }
}

/// Says that `test` was skipped and why, as `SKIPPED <test>: <why>` on
/// the process's stderr: written directly, not with `eprintln!`, so the test
/// harness does not swallow it when the (returning) test passes.
pub fn report_skipped(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The path of `relative` in the shared data, if that file exists.
pub fn shared_data_file(relative: &str) -> Option<PathBuf> {
    let path = shared_data_dir().join(relative);
    path.is_file().then_some(path)
}

fn cached(cell: &'static OnceLock<Option<Schemas>>, relative: &str) -> Option<&'static Schemas> {
    cell.get_or_init(|| shared_data_file(relative).and_then(|path| Schemas::load(&path).ok()))
        .as_ref()
}

/// The authorization schemas, when the shared data has them.
pub fn authorization_schemas() -> Option<&'static Schemas> {
    static CELL: OnceLock<Option<Schemas>> = OnceLock::new();
    cached(&CELL, AUTHORIZATION_OPENAPI)
}

/// The authentication schemas, when the shared data has them.
pub fn authentication_schemas() -> Option<&'static Schemas> {
    static CELL: OnceLock<Option<Schemas>> = OnceLock::new();
    cached(&CELL, AUTHENTICATION_OPENAPI)
}

/// Whether `body` is a SubjectAccessReview kfauth may send: it decodes and
/// validates as kube-apiserver would, names its `apiVersion` and `kind`, has
/// no unknown fields, and (when `../shared/data` is there) conforms to the
/// published schema. The error lists every problem.
pub fn validate_sar_request(body: &Value) -> Result<(), String> {
    let problems = contract::check_subject_access_review(body);
    let schema_errors = authorization_schemas()
        .map(|schemas| schemas.validate(SAR_SCHEMA, body))
        .unwrap_or_default();
    verdict("SubjectAccessReview", &problems, &schema_errors)
}

/// Like [`validate_sar_request`], for a TokenReview.
pub fn validate_token_review_request(body: &Value) -> Result<(), String> {
    let problems = contract::check_token_review(body);
    let schema_errors = authentication_schemas()
        .map(|schemas| schemas.validate(TOKEN_REVIEW_SCHEMA, body))
        .unwrap_or_default();
    verdict("TokenReview", &problems, &schema_errors)
}

fn verdict(kind: &str, problems: &[Problem], schema_errors: &[String]) -> Result<(), String> {
    let mut all: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
    all.extend(schema_errors.iter().map(|e| format!("schema: {e}")));
    all.dedup();
    if all.is_empty() {
        Ok(())
    } else {
        Err(format!("not a valid {kind} request: {}", all.join("; ")))
    }
}
