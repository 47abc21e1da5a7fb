//! Checking request bodies against the real Kubernetes contract: the
//! built-in one ([`super::contract`]) always, and the published OpenAPI
//! schemas in `../shared/data` (relative to the repository root) when that
//! directory is there. E2E tests call [`validate_sar_request`] on the bodies
//! the filter sent (see `ApiServer::sar_requests`).

use std::path::{Path, PathBuf};
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

/// Istio's CustomResourceDefinitions (one YAML file each), relative to the
/// shared data.
pub const ISTIO_CRDS: &str = "istio-crds";

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

/// The schemas of every CustomResourceDefinition in the `*.yaml` files of
/// [`ISTIO_CRDS`], named [`Schemas::crd_schema_name`]
/// (`extensions.istio.io/v1alpha1/WasmPlugin`), when the shared data has
/// that directory. A file that does not parse, or a CRD without a usable
/// schema, is a panic: the data is there but unusable.
pub fn istio_crd_schemas() -> Option<&'static Schemas> {
    static CELL: OnceLock<Option<Schemas>> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = shared_data_dir().join(ISTIO_CRDS);
        let entries = std::fs::read_dir(&dir).ok()?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        let mut all: Option<Schemas> = None;
        for file in files {
            for schemas in crd_schemas_in(&file).unwrap_or_else(|problem| panic!("{problem}")) {
                match all.as_mut() {
                    Some(all) => all.extend(schemas),
                    None => all = Some(schemas),
                }
            }
        }
        all
    })
    .as_ref()
}

/// The schemas of each CustomResourceDefinition in a YAML file.
pub fn crd_schemas_in(file: &Path) -> Result<Vec<Schemas>, String> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(file)
        .map_err(|problem| format!("reading {}: {problem}", file.display()))?;
    let mut found = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(document)
            .map_err(|problem| format!("{}: {problem}", file.display()))?;
        if value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            found.push(
                Schemas::from_crd(&value)
                    .map_err(|problem| format!("{}: {problem}", file.display()))?,
            );
        }
    }
    Ok(found)
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
