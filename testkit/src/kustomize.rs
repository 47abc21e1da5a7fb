//! Rendering Kustomizations with `kubectl kustomize`, for tests of the
//! manifests in `wasmplugin/`: a temporary overlay over chosen resources and
//! components, its output as JSON values.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_json::Value;

/// Whether `kubectl` (with its built-in kustomize) can be run.
pub fn kubectl_present() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The documents of a multi-document YAML text (empty ones left out).
pub fn yaml_documents(text: &str, origin: &str) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| format!("{origin}: not YAML: {e}"))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// The documents of a YAML file.
pub fn read_yaml(path: &Path) -> Result<Vec<Value>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    yaml_documents(&text, &path.display().to_string())
}

/// `to` relative to the directory `from` (kustomize refuses absolute
/// paths); both should be canonical.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf =
        std::iter::repeat_n(Component::ParentDir, from.len() - common).collect();
    path.extend(&to[common..]);
    path
}

/// `kubectl kustomize DIR`; when kustomize refuses a path outside the
/// overlay's root, again with `--load-restrictor LoadRestrictionsNone`.
pub fn build(dir: &Path) -> Result<Vec<Value>, String> {
    let run = |extra: &[&str]| {
        Command::new("kubectl")
            .arg("kustomize")
            .args(extra)
            .arg(dir)
            .output()
            .map_err(|e| format!("running kubectl kustomize: {e}"))
    };
    let mut output = run(&[])?;
    if !output.status.success()
        && String::from_utf8_lossy(&output.stderr).contains("security; file")
    {
        output = run(&["--load-restrictor", "LoadRestrictionsNone"])?;
    }
    if !output.status.success() {
        return Err(format!(
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    yaml_documents(
        &String::from_utf8_lossy(&output.stdout),
        &dir.display().to_string(),
    )
}

/// Writes `dir/kustomization.yaml` listing `resources` and `components`
/// (directories or files, referred to by relative paths) and renders it.
/// `dir` is created if needed and left in place.
pub fn build_overlay(
    dir: &Path,
    resources: &[&Path],
    components: &[&Path],
) -> Result<Vec<Value>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let root = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let list = |paths: &[&Path]| -> Result<String, String> {
        let mut text = String::new();
        for path in paths {
            let target =
                std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
            text.push_str(&format!("- {}\n", relative_path(&root, &target).display()));
        }
        Ok(text)
    };
    let mut kustomization = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    kustomization.push_str(&list(resources)?);
    if !components.is_empty() {
        kustomization.push_str("components:\n");
        kustomization.push_str(&list(components)?);
    }
    std::fs::write(root.join("kustomization.yaml"), kustomization)
        .map_err(|e| format!("writing {}: {e}", root.display()))?;
    build(&root)
}

/// The object of `kind` named `name`, if there is one.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative_path(Path::new("/a/b/c"), Path::new("/a/d/e")),
            PathBuf::from("../../d/e")
        );
        assert_eq!(
            relative_path(Path::new("/a"), Path::new("/a/b")),
            PathBuf::from("b")
        );
    }

    #[test]
    fn documents_skip_empty_ones() {
        let docs = yaml_documents("---\na: 1\n---\n---\nb: [x]\n", "test").unwrap();
        assert_eq!(
            docs,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]
        );
    }
}
