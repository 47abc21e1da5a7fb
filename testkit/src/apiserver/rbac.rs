//! The RBAC objects of `rbac.authorization.k8s.io/v1` (Role, ClusterRole,
//! RoleBinding, ClusterRoleBinding) and the store that holds them, loaded from
//! Kubernetes YAML the way `kubectl apply` would take it: multi-document
//! files, `List` objects, other kinds ignored, a later object of the same
//! name replacing an earlier one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::aggregation;

/// The API group of RBAC objects and of User/Group subjects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The namespace `kubectl apply` puts a namespaced object in when neither the
/// object nor the command names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The part of `metadata` RBAC looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

/// A label selector requirement (`matchExpressions` item).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector as in `aggregationRule.clusterRoleSelectors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// `aggregationRule` of a ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregationRule {
    #[serde(default)]
    pub cluster_role_selectors: Vec<LabelSelector>,
}

/// A Role (namespaced) or a ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub rules: Option<Vec<PolicyRule>>,
    /// ClusterRoles only. When set, the aggregation controller owns `rules`:
    /// whatever the manifest wrote there is replaced.
    #[serde(default)]
    pub aggregation_rule: Option<AggregationRule>,
}

impl Role {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.metadata.labels.clone().unwrap_or_default()
    }

    /// The rules as written in the manifest.
    pub fn written_rules(&self) -> &[PolicyRule] {
        self.rules.as_deref().unwrap_or_default()
    }
}

/// `roleRef` of a binding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    pub kind: String,
    pub name: String,
}

/// A subject of a binding: `User`, `Group` or `ServiceAccount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub api_group: Option<String>,
}

/// A RoleBinding (namespaced) or a ClusterRoleBinding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    pub metadata: ObjectMeta,
    pub role_ref: RoleRef,
    #[serde(default)]
    pub subjects: Option<Vec<Subject>>,
}

impl Binding {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The namespace of a RoleBinding; empty for a ClusterRoleBinding.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub fn subjects(&self) -> &[Subject] {
        self.subjects.as_deref().unwrap_or_default()
    }
}

/// Every RBAC object the stand-in knows, keyed the way the API server keys
/// them, so iteration order is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rbac {
    /// Roles by (namespace, name).
    pub roles: BTreeMap<(String, String), Role>,
    /// ClusterRoles by name.
    pub cluster_roles: BTreeMap<String, Role>,
    /// RoleBindings by (namespace, name).
    pub role_bindings: BTreeMap<(String, String), Binding>,
    /// ClusterRoleBindings by name.
    pub cluster_role_bindings: BTreeMap<String, Binding>,
    /// The rules of each aggregated ClusterRole, as the aggregation
    /// controller would have written them; recomputed on every load.
    aggregated: BTreeMap<String, Vec<PolicyRule>>,
}

/// What one load took in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// RBAC objects stored.
    pub objects: usize,
    /// Documents of other kinds (Namespaces, ServiceAccounts, ...), skipped.
    pub ignored: usize,
}

impl Rbac {
    /// No roles, no bindings: every review is denied.
    pub fn new() -> Rbac {
        Rbac::default()
    }

    /// Parses multi-document YAML; namespaced objects without a namespace go
    /// to `default`.
    pub fn from_yaml(yaml: &str) -> Result<Rbac, String> {
        let mut rbac = Rbac::new();
        rbac.load_yaml(yaml)?;
        Ok(rbac)
    }

    /// Loads every file in order (a later object replaces an earlier one).
    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Rbac, String> {
        let mut rbac = Rbac::new();
        for path in paths {
            rbac.load_file(path.as_ref())?;
        }
        Ok(rbac)
    }

    /// Adds the objects of a multi-document YAML text (`kubectl apply -f`).
    pub fn load_yaml(&mut self, yaml: &str) -> Result<Loaded, String> {
        self.load_yaml_in(yaml, DEFAULT_NAMESPACE)
    }

    /// Like [`Rbac::load_yaml`], with `namespace` for namespaced objects that
    /// name none (`kubectl apply -n NAMESPACE -f`).
    pub fn load_yaml_in(&mut self, yaml: &str, namespace: &str) -> Result<Loaded, String> {
        let mut loaded = Loaded::default();
        for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
            let value = Value::deserialize(document)
                .map_err(|e| format!("YAML document {}: {e}", index + 1))?;
            self.load_value(value, namespace, &mut loaded)
                .map_err(|e| format!("YAML document {}: {e}", index + 1))?;
        }
        self.aggregated = aggregation::aggregate(&self.cluster_roles);
        Ok(loaded)
    }

    /// Adds the objects of a YAML file.
    pub fn load_file(&mut self, path: &Path) -> Result<Loaded, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        self.load_yaml(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn load_value(
        &mut self,
        value: Value,
        namespace: &str,
        loaded: &mut Loaded,
    ) -> Result<(), String> {
        if value.is_null() {
            return Ok(());
        }
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("an object without \"kind\"")?
            .to_string();
        if kind.ends_with("List") {
            if let Some(Value::Array(items)) = value.get("items") {
                for item in items {
                    self.load_value(item.clone(), namespace, loaded)?;
                }
            }
            return Ok(());
        }
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        let is_rbac = api_version.is_some_and(|v| v.starts_with(&format!("{RBAC_GROUP}/")));
        if !is_rbac {
            loaded.ignored += 1;
            return Ok(());
        }
        match kind.as_str() {
            "Role" => {
                let mut role = parse::<Role>(value, &kind)?;
                let ns = place(&mut role.metadata, namespace);
                self.roles.insert((ns, role.metadata.name.clone()), role);
            }
            "ClusterRole" => {
                let role = parse::<Role>(value, &kind)?;
                self.cluster_roles.insert(role.metadata.name.clone(), role);
            }
            "RoleBinding" => {
                let mut binding = parse::<Binding>(value, &kind)?;
                check_binding(&binding, &["Role", "ClusterRole"])?;
                let ns = place(&mut binding.metadata, namespace);
                self.role_bindings
                    .insert((ns, binding.metadata.name.clone()), binding);
            }
            "ClusterRoleBinding" => {
                let binding = parse::<Binding>(value, &kind)?;
                check_binding(&binding, &["ClusterRole"])?;
                self.cluster_role_bindings
                    .insert(binding.metadata.name.clone(), binding);
            }
            _ => {
                loaded.ignored += 1;
                return Ok(());
            }
        }
        loaded.objects += 1;
        Ok(())
    }

    /// The rules a ClusterRole grants: its own, or for an aggregated one the
    /// union of the rules of the ClusterRoles its selectors match.
    pub fn cluster_role_rules(&self, name: &str) -> Option<&[PolicyRule]> {
        let role = self.cluster_roles.get(name)?;
        if role.aggregation_rule.is_some() {
            return Some(self.aggregated.get(name).map_or(&[], Vec::as_slice));
        }
        Some(role.written_rules())
    }

    /// The rules of Role `name` in `namespace`.
    pub fn role_rules(&self, namespace: &str, name: &str) -> Option<&[PolicyRule]> {
        self.roles
            .get(&(namespace.to_string(), name.to_string()))
            .map(Role::written_rules)
    }

    /// The RoleBindings of `namespace`, in name order.
    pub fn role_bindings_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Binding> {
        self.role_bindings
            .iter()
            .filter(move |((ns, _), _)| ns == namespace)
            .map(|(_, binding)| binding)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(value: Value, kind: &str) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let object: T = serde_json::from_value(value).map_err(|e| format!("{kind} {name:?}: {e}"))?;
    if name.is_empty() || name == "?" {
        return Err(format!("a {kind} without metadata.name"));
    }
    Ok(object)
}

/// Puts a namespaced object in its namespace, or in `default_namespace`.
fn place(metadata: &mut ObjectMeta, default_namespace: &str) -> String {
    let ns = match metadata.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => default_namespace.to_string(),
    };
    metadata.namespace = Some(ns.clone());
    ns
}

/// What API validation rejects in a binding.
fn check_binding(binding: &Binding, role_kinds: &[&str]) -> Result<(), String> {
    let name = binding.name();
    if !role_kinds.contains(&binding.role_ref.kind.as_str()) {
        return Err(format!(
            "binding {name:?}: roleRef.kind {:?} is not one of {role_kinds:?}",
            binding.role_ref.kind
        ));
    }
    let cluster_wide = role_kinds.len() == 1;
    for subject in binding.subjects() {
        match subject.kind.as_str() {
            "User" | "Group" => {}
            "ServiceAccount" => {
                if cluster_wide && subject.namespace.as_deref().unwrap_or_default().is_empty() {
                    return Err(format!(
                        "binding {name:?}: ServiceAccount subject {:?} needs a namespace",
                        subject.name
                    ));
                }
            }
            other => {
                return Err(format!(
                    "binding {name:?}: subject kind {other:?} is not User, Group or ServiceAccount"
                ))
            }
        }
    }
    Ok(())
}
