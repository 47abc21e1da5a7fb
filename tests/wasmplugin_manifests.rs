//! The deployable manifests in `wasmplugin/` (no Envoy, no cluster):
//!
//! `manifests_parse_and_match_istios_crds`: every YAML file under
//! `wasmplugin/` parses and is a kustomization, a resource or a patch that a
//! kustomization names (no stray file, no missing one); every Istio object
//! (and the WasmPlugin after the Azure patch) validates against its CRD's
//! `openAPIV3Schema` from `../shared/data/istio-crds` (a kind without a CRD
//! there is reported skipped by name; without the directory, the schema step
//! is), plus the few CEL rules that matter here and structural checks of the
//! ServiceEntry and DestinationRules, checked by hand.
//!
//! `the_base_is_authentication_only`: `wasmplugin/base` is one WasmPlugin and
//! nothing else (no Secret, RBAC, DestinationRule or patch), without
//! `vmConfig.env` or `authorization`; it loads with no environment and no
//! warning; its placeholder url and sha256 are what `kfauth check` refuses.
//!
//! `plugin_configs_are_accepted_by_kfauth`: the base WasmPlugin with
//! `components/authorization`'s patch merged in is accepted by
//! `Config::parse_with_env` (and, without `KFAUTH_APISERVER_TOKEN`, loads with
//! the credential missing); the callout clusters it names are the ones the
//! manifests create (Dex, cluster-jwks-proxy, the API server with its TLS
//! DestinationRule, Azure AD with its ServiceEntry and DestinationRule); the
//! KServe rule turns inference requests, and only them, into a valid
//! SubjectAccessReview that Kubeflow's real roles answer (when
//! `../shared/data` is there).
//!
//! `plugin_config_is_kubeflows_request_authentications`: `jwtRules`,
//! `requireJwt` and `skipPaths` are what `kfauth from-istio` makes of
//! Kubeflow's rendered `dex-jwt`, `m2m-token-issuer` and require-jwt policy,
//! and `skipPaths` exempts what the policy's `notPaths` exempt.
//!
//! `the_gateway_may_review_and_gets_its_token`: the credential's ClusterRole
//! and binding let the gateway's service account create SubjectAccessReviews
//! and TokenReviews and nothing else (the testkit's RBAC authorizer); the
//! token Secret, the Deployment patch, `vmConfig.env` and `tokenEnv` name the
//! same things; the Kubeflow component includes base, authorization and the
//! local gateway.
//!
//! `kubeflow_component_deletes_exactly_what_kfauth_replaces`: its `$patch:
//! delete` patches remove `dex-jwt`, `m2m-token-issuer` and
//! `istio-ingressgateway-require-jwt`, the local gateway's remove m2m-auth's
//! `cluster-local-gateway-jwt` and `cluster-local-gateway-require-jwt`; each
//! targets exactly what it deletes, and (with `../shared/data`) they are every
//! RequestAuthentication and require-JWT policy of Kubeflow's rendered auth
//! policies and of the m2m-auth overlay, leaving the oauth2-proxy one.
//!
//! `the_session_shield_names_kubeflows_oauth2_proxy_cookie`: the base
//! WasmPlugin (and so every overlay and the Kubeflow component) has a
//! `session` block naming `cookie_name` from Kubeflow's
//! `common/oauth2-proxy/base/oauth2_proxy.cfg` (with `../shared/data`); its
//! split parts are session cookies, `NAME_csrf` is not, and oauth2-proxy's
//! routes (its `redirect_url` among them) are exempt, no other Kubeflow path.
//!
//! `kustomizations_render_with_kubectl` (skipped by name without `kubectl`):
//! `kubectl kustomize` of the base, the credential, `overlays/authorization`,
//! the Azure overlay, and a temporary overlay using the Kubeflow component
//! over Kubeflow's policies and both gateway Deployments with README's image
//! patch; every rendered document is validated as above; the patched
//! WasmPlugins equal the ones merged here, both carry the image, both
//! Deployments get their own token, the replaced objects are gone and the
//! local gateway's ALLOW policy allows all again; the rendered ingress
//! plugin has the session block as above.
//!
//! `the_readme_install_overlay_renders_and_passes_check` (skipped by name
//! without `kubectl`): README's `my-kfauth` overlay, as written, renders for
//! step 4 (one WasmPlugin) and step 5 (with the credential, no Deployment),
//! carries the image, and `kfauth check` of the rendered output exits 0
//! (warning of the token's rollout order only in step 5); the shipped base
//! exits 1 naming `spec.url` and `spec.sha256`.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod readme_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kfauth::access::Access;
use kfauth::authz::subject_access_review::SubjectAccessReviewCache;
use kfauth::authz::{authorize, AuthzStep};
use kfauth::config::Config;
use kfauth::jwt_rule::KeySource;
use kfauth::outcome::Identity;
use kfauth::request::RequestView;
use kfauth_testkit::apiserver::conformance::{
    istio_crd_schemas, report_skipped, shared_data_file, KUBEFLOW_ROLE_MANIFESTS,
};
use kfauth_testkit::apiserver::fixtures::{role_binding, Subject};
use kfauth_testkit::apiserver::openapi::Schemas;
use kfauth_testkit::apiserver::{validate_sar_request, AccessRequest, Rbac};
use kfauth_testkit::kustomize::{build, kubectl_present, relative_path, yaml_documents};
use readme_support::readme_block;
use serde_json::{json, Value};

const TOKEN_ENV: &str = "KFAUTH_APISERVER_TOKEN";
const GATEWAY_NAMESPACE: &str = "istio-system";
const GATEWAY_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";
/// Kubeflow's auth policies, rendered (relative to the shared data).
const KUBEFLOW_AUTH_POLICIES: &str =
    "kubeflow-manifests/rendered/m2m-dex-and-kind.auth-policies.yaml";
/// What the Kubeflow component deletes: (kind, namespace, name).
const REPLACED: [(&str, &str, &str); 3] = [
    (
        "AuthorizationPolicy",
        "istio-system",
        "istio-ingressgateway-require-jwt",
    ),
    ("RequestAuthentication", "istio-system", "dex-jwt"),
    ("RequestAuthentication", "istio-system", "m2m-token-issuer"),
];

// ---------------------------------------------------------------------------
// Reading the manifests

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn wasmplugin_dir() -> PathBuf {
    repo_root().join("wasmplugin")
}

fn documents(text: &str, origin: &str) -> Vec<Value> {
    yaml_documents(text, origin).unwrap_or_else(|e| panic!("{e}"))
}

fn read_documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    documents(&text, &path.display().to_string())
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(yaml_files(&path));
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A patch a kustomization applies: its file's documents and its `target`.
struct Patch {
    file: PathBuf,
    target: Value,
    documents: Vec<Value>,
}

impl Patch {
    /// A JSON patch (RFC 6902): the file is one list of operations.
    fn json_operations(&self) -> Option<&Vec<Value>> {
        match self.documents.as_slice() {
            [Value::Array(operations)] => Some(operations),
            _ => None,
        }
    }
}

/// One kustomization.yaml, its references resolved and read.
struct Kustomization {
    dir: PathBuf,
    kind: String,
    /// Objects from the files it lists under `resources` (not directories).
    resources: Vec<(PathBuf, Value)>,
    /// Directories it lists under `resources` and `components`.
    directories: Vec<PathBuf>,
    patches: Vec<Patch>,
}

fn kustomization(dir: &Path) -> Kustomization {
    let file = dir.join("kustomization.yaml");
    let [spec] = read_documents(&file)
        .try_into()
        .unwrap_or_else(|docs: Vec<Value>| {
            panic!("{}: {} documents, expected one", file.display(), docs.len())
        });
    let kind = spec["kind"].as_str().unwrap_or("Kustomization").to_string();
    let list = |key: &str| -> Vec<Value> { spec[key].as_array().cloned().unwrap_or_default() };
    let mut resources = Vec::new();
    let mut directories = Vec::new();
    for entry in list("resources").iter().chain(list("components").iter()) {
        let path = dir.join(entry.as_str().unwrap());
        assert!(
            path.exists(),
            "{}: {} does not exist",
            file.display(),
            path.display()
        );
        if path.is_dir() {
            assert!(
                path.join("kustomization.yaml").is_file(),
                "{}: {} has no kustomization.yaml",
                file.display(),
                path.display()
            );
            directories.push(path);
        } else {
            resources.extend(
                read_documents(&path)
                    .into_iter()
                    .map(|doc| (path.clone(), doc)),
            );
        }
    }
    let patches = list("patches")
        .iter()
        .map(|patch| {
            let path = dir.join(patch["path"].as_str().expect("patches are files (path)"));
            Patch {
                documents: read_documents(&path),
                file: path,
                target: patch["target"].clone(),
            }
        })
        .collect();
    assert!(
        list("patchesStrategicMerge").is_empty() && list("patchesJson6902").is_empty(),
        "{}: use `patches`",
        file.display()
    );
    Kustomization {
        dir: dir.to_path_buf(),
        kind,
        resources,
        directories,
        patches,
    }
}

fn all_kustomizations() -> Vec<Kustomization> {
    yaml_files(&wasmplugin_dir())
        .iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name == "kustomization.yaml")
        })
        .map(|path| kustomization(path.parent().unwrap()))
        .collect()
}

fn kustomization_at(relative: &str) -> Kustomization {
    kustomization(&wasmplugin_dir().join(relative))
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

fn label(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn base_objects() -> Vec<Value> {
    kustomization_at("base")
        .resources
        .into_iter()
        .map(|(_, doc)| doc)
        .collect()
}

fn objects_of(relative: &str) -> Vec<Value> {
    kustomization_at(relative)
        .resources
        .into_iter()
        .map(|(_, doc)| doc)
        .collect()
}

/// RFC 7386 merge: objects merge member by member, anything else replaces.
/// What kustomize's strategic merge does to a CRD object, which has no merge keys.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The base WasmPlugin with ../components/authorization's patch merged in.
fn authorization_wasmplugin() -> Value {
    let component = kustomization_at("components/authorization");
    let mut plugin = find(&base_objects(), "WasmPlugin", "kfauth").clone();
    let patches: Vec<&Patch> = component
        .patches
        .iter()
        .filter(|patch| patch.target["kind"] == "WasmPlugin" && patch.target["name"] == "kfauth")
        .collect();
    let [patch] = patches.as_slice() else {
        panic!("the authorization component patches the WasmPlugin once");
    };
    merge_patch(&mut plugin, &patch.documents[0]);
    plugin
}

/// The base WasmPlugin with the Azure overlay's patches applied.
fn azure_wasmplugin() -> Value {
    let azure = kustomization_at("overlays/azure");
    let mut plugin = find(&base_objects(), "WasmPlugin", "kfauth").clone();
    let mut applied = 0;
    for patch in &azure.patches {
        if patch.target["kind"] == "WasmPlugin" && patch.target["name"] == "kfauth" {
            let operations = patch
                .json_operations()
                .expect("the Azure patch is a JSON patch");
            apply_json_patch(&mut plugin, operations)
                .unwrap_or_else(|e| panic!("{}: {e}", patch.file.display()));
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "the Azure overlay patches the WasmPlugin once");
    plugin
}

// ---------------------------------------------------------------------------
// JSON patch (RFC 6902): add, remove, replace, test

fn pointer_tokens(pointer: &str) -> Result<Vec<String>, String> {
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("{pointer:?} does not start with /"))?;
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn apply_json_patch(document: &mut Value, operations: &[Value]) -> Result<(), String> {
    for operation in operations {
        let op = operation["op"].as_str().ok_or("an operation without op")?;
        let path = operation["path"]
            .as_str()
            .ok_or("an operation without path")?;
        let mut tokens = pointer_tokens(path)?;
        let last = tokens.pop().ok_or("empty path")?;
        let parent_pointer: String = tokens.iter().map(|t| format!("/{t}")).collect();
        if op == "test" {
            let found = document.pointer(path);
            if found != Some(&operation["value"]) {
                return Err(format!("test {path}: found {found:?}"));
            }
            continue;
        }
        let parent = document
            .pointer_mut(&parent_pointer)
            .ok_or_else(|| format!("{op} {path}: no {parent_pointer}"))?;
        let value = operation.get("value").cloned();
        match (op, parent) {
            ("add", Value::Array(items)) => {
                let index = if last == "-" {
                    items.len()
                } else {
                    last.parse().map_err(|_| format!("{path}: bad index"))?
                };
                if index > items.len() {
                    return Err(format!("{path}: index out of range"));
                }
                items.insert(index, value.ok_or("add without value")?);
            }
            ("add", Value::Object(map)) => {
                map.insert(last, value.ok_or("add without value")?);
            }
            ("replace", Value::Array(items)) => {
                let slot = last.parse::<usize>().ok().and_then(|i| items.get_mut(i));
                *slot.ok_or_else(|| format!("replace {path}: no such item"))? =
                    value.ok_or("replace without value")?;
            }
            ("replace", Value::Object(map)) => {
                let slot = map.get_mut(&last);
                *slot.ok_or_else(|| format!("replace {path}: no such field"))? =
                    value.ok_or("replace without value")?;
            }
            ("remove", Value::Array(items)) => {
                let index: usize = last.parse().map_err(|_| format!("{path}: bad index"))?;
                if index >= items.len() {
                    return Err(format!("remove {path}: no such item"));
                }
                items.remove(index);
            }
            ("remove", Value::Object(map)) => {
                map.remove(&last)
                    .ok_or_else(|| format!("remove {path}: no such field"))?;
            }
            (op, _) => return Err(format!("{op} {path}: unsupported here")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Checking objects

fn is_istio(object: &Value) -> bool {
    object["apiVersion"].as_str().is_some_and(|v| {
        v.split('/')
            .next()
            .is_some_and(|g| g.ends_with(".istio.io"))
    })
}

/// What the schema step saw: the kinds that had no CRD in the shared data.
#[derive(Default)]
struct SchemaReport {
    without_crd: BTreeSet<String>,
}

/// Every problem of an Istio object: its CRD schema (when the shared data has
/// it), the CEL rules that matter here, and structural checks by hand.
fn istio_object_problems(
    object: &Value,
    schemas: Option<&Schemas>,
    report: &mut SchemaReport,
) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    if let Some(schemas) = schemas {
        let name = Schemas::crd_schema_name(object["apiVersion"].as_str().unwrap_or(""), kind);
        if schemas.has(&name) {
            problems.extend(schemas.validate(&name, object));
        } else {
            report.without_crd.insert(name);
        }
    }
    let spec = &object["spec"];
    match kind {
        "WasmPlugin" => problems.extend(wasmplugin_rules(spec)),
        "ServiceEntry" => problems.extend(service_entry_rules(spec)),
        "DestinationRule" => problems.extend(destination_rule_rules(spec)),
        _ => {}
    }
    if object["metadata"]["name"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        problems.push("metadata.name is missing".into());
    }
    problems
}

/// The WasmPlugin CRD's CEL rules (x-kubernetes-validations) that the schema
/// step does not evaluate, plus what kfauth needs of the plugin.
fn wasmplugin_rules(spec: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let url = spec["url"].as_str().unwrap_or_default();
    if !["oci://", "http://", "https://", "file://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        problems.push(format!("url {url:?}: scheme must be oci, http(s) or file"));
    }
    let targets = ["selector", "targetRef", "targetRefs"]
        .iter()
        .filter(|key| spec.get(**key).is_some())
        .count();
    if targets > 1 {
        problems.push("only one of selector, targetRef, targetRefs".into());
    }
    for (key, value) in spec["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if key.is_empty() || key.contains('*') || value.as_str().is_none_or(|v| v.contains('*')) {
            problems.push(format!(
                "selector label {key}={value}: no wildcards, no empty key"
            ));
        }
    }
    for env in spec["vmConfig"]["env"].as_array().into_iter().flatten() {
        if env["valueFrom"] == "HOST" && env.get("value").is_some() {
            problems.push(format!(
                "vmConfig.env {}: value with valueFrom HOST",
                env["name"]
            ));
        }
    }
    if spec["phase"] != "AUTHN" {
        problems.push("kfauth replaces jwt_authn: phase must be AUTHN".into());
    }
    if spec["failStrategy"] != "FAIL_CLOSE" {
        problems.push("an authentication filter must fail closed".into());
    }
    problems
}

/// ServiceEntry, checked by hand (the shared data has no CRD for it).
fn service_entry_rules(spec: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let hosts = spec["hosts"].as_array().cloned().unwrap_or_default();
    if hosts.is_empty() || hosts.iter().any(|h| h.as_str().is_none_or(str::is_empty)) {
        problems.push("hosts: a non-empty list of names".into());
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() {
        problems.push("ports: at least one".into());
    }
    for port in &ports {
        if port["number"].as_u64().is_none_or(|n| n == 0 || n > 65535) {
            problems.push(format!("port {port}: number 1-65535"));
        }
        if port["name"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("port {port}: needs a name"));
        }
        let protocols = ["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"];
        if !port["protocol"]
            .as_str()
            .is_some_and(|p| protocols.contains(&p))
        {
            problems.push(format!("port {port}: protocol one of {protocols:?}"));
        }
    }
    if !["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]
        .contains(&spec["resolution"].as_str().unwrap_or(""))
    {
        problems.push("resolution: NONE, STATIC, DNS or DNS_ROUND_ROBIN".into());
    }
    if !["MESH_EXTERNAL", "MESH_INTERNAL"]
        .contains(&spec["location"].as_str().unwrap_or("MESH_EXTERNAL"))
    {
        problems.push("location: MESH_EXTERNAL or MESH_INTERNAL".into());
    }
    problems
}

/// DestinationRule, checked by hand (the shared data has no CRD for it).
fn destination_rule_rules(spec: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if spec["host"].as_str().is_none_or(str::is_empty) {
        problems.push("host is required".into());
    }
    let tls = &spec["trafficPolicy"]["tls"];
    if !["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
        .contains(&tls["mode"].as_str().unwrap_or(""))
    {
        problems.push(format!(
            "trafficPolicy.tls.mode {}: DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL",
            tls["mode"]
        ));
    }
    let known = [
        "host",
        "trafficPolicy",
        "subsets",
        "exportTo",
        "workloadSelector",
    ];
    for key in spec.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !known.contains(&key.as_str()) {
            problems.push(format!("spec.{key}: unknown field"));
        }
    }
    problems
}

/// Checks every object; returns the kinds that had no CRD.
fn check_objects(objects: &[(String, Value)], schemas: Option<&Schemas>) -> SchemaReport {
    let mut report = SchemaReport::default();
    let mut problems = Vec::new();
    for (origin, object) in objects {
        assert!(
            object["apiVersion"].is_string() && object["kind"].is_string(),
            "{origin}: not a Kubernetes object: {object}"
        );
        if is_istio(object) {
            for problem in istio_object_problems(object, schemas, &mut report) {
                problems.push(format!("{origin}: {}: {problem}", label(object)));
            }
        }
        if object["kind"] == "WasmPlugin" {
            if let Err(e) = parse_plugin_config(object) {
                problems.push(format!("{origin}: {}: {e}", label(object)));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    report
}

fn report_schema_skips(test: &str, schemas: Option<&Schemas>, report: &SchemaReport) {
    match schemas {
        None => report_skipped(test, "../shared/data absent (schema validation)"),
        Some(_) if !report.without_crd.is_empty() => report_skipped(
            test,
            &format!(
                "no CRD in ../shared/data/istio-crds for {} (schema validation of those; checked by hand)",
                report.without_crd.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        ),
        Some(_) => {}
    }
}

// ---------------------------------------------------------------------------
// pluginConfig

fn env(name: &str) -> Option<String> {
    Some("test-token".to_string()).filter(|_| name == TOKEN_ENV)
}

fn plugin_config_bytes(plugin: &Value) -> Vec<u8> {
    let config = &plugin["spec"]["pluginConfig"];
    assert!(config.is_object(), "{}: no pluginConfig", label(plugin));
    serde_json::to_vec(config).unwrap()
}

fn parse_plugin_config(plugin: &Value) -> Result<Config, String> {
    Config::parse_with_env(&plugin_config_bytes(plugin), &env).map_err(|e| e.to_string())
}

fn remote_cluster(keys: &KeySource) -> &str {
    match keys {
        KeySource::Remote(endpoint) => &endpoint.cluster,
        KeySource::Discovery { document, .. } => &document.cluster,
        KeySource::Inline(_) => panic!("inline keys"),
    }
}

/// Istio's name for the outbound cluster of `host:port`.
fn outbound(port: u64, host: &str) -> String {
    format!("outbound|{port}||{host}")
}

fn request(method: &str, host: &str, path: &str) -> RequestView {
    RequestView {
        method: method.into(),
        path: path.into(),
        authority: host.into(),
        ..RequestView::default()
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn manifests_parse_and_match_istios_crds() {
    let test = "manifests_parse_and_match_istios_crds";
    let kustomizations = all_kustomizations();
    assert!(
        kustomizations.len() >= 4,
        "base, two components, the Azure overlay"
    );

    // Every YAML file is a kustomization, or a resource or patch one of them names.
    let mut named: BTreeSet<PathBuf> = BTreeSet::new();
    for k in &kustomizations {
        assert!(
            k.kind == "Kustomization" || k.kind == "Component",
            "{}: kind {}",
            k.dir.display(),
            k.kind
        );
        named.insert(k.dir.join("kustomization.yaml"));
        named.extend(k.resources.iter().map(|(path, _)| path.clone()));
        named.extend(k.patches.iter().map(|patch| patch.file.clone()));
    }
    for file in yaml_files(&wasmplugin_dir()) {
        assert!(
            !read_documents(&file).is_empty(),
            "{}: empty",
            file.display()
        );
        assert!(
            named.contains(&file),
            "{} is used by no kustomization",
            file.display()
        );
    }

    // Resources: Kubernetes objects; Istio ones valid.
    let mut objects: Vec<(String, Value)> = Vec::new();
    for k in &kustomizations {
        for (path, object) in &k.resources {
            objects.push((path.display().to_string(), object.clone()));
        }
        // Patches: strategic merge patches name their target; JSON patches are operations.
        for patch in &k.patches {
            let origin = patch.file.display().to_string();
            if let Some(operations) = patch.json_operations() {
                for operation in operations {
                    assert!(
                        ["add", "remove", "replace", "test"]
                            .contains(&operation["op"].as_str().unwrap_or(""))
                            && operation["path"].is_string(),
                        "{origin}: {operation}"
                    );
                }
                continue;
            }
            let [document] = patch.documents.as_slice() else {
                panic!("{origin}: one document per patch file");
            };
            for (field, pointer) in [
                ("kind", "/kind"),
                ("name", "/metadata/name"),
                ("namespace", "/metadata/namespace"),
            ] {
                assert_eq!(
                    document.pointer(pointer),
                    patch.target.get(field),
                    "{origin}: the patch's {field} is not its target's"
                );
            }
            let group = str_at(document, "/apiVersion")
                .split('/')
                .rev()
                .nth(1)
                .unwrap_or("");
            assert_eq!(
                patch.target["group"].as_str().unwrap_or(""),
                group,
                "{origin}: target group"
            );
        }
    }
    objects.push(("the Azure overlay's WasmPlugin".into(), azure_wasmplugin()));
    let kinds: BTreeSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| o["kind"].as_str())
        .collect();
    for kind in [
        "WasmPlugin",
        "ServiceEntry",
        "DestinationRule",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ] {
        assert!(kinds.contains(kind), "no {kind} in wasmplugin/");
    }
    let schemas = istio_crd_schemas();
    let report = check_objects(&objects, schemas);
    if let Some(schemas) = schemas {
        assert!(schemas.has(&Schemas::crd_schema_name(
            "extensions.istio.io/v1alpha1",
            "WasmPlugin"
        )));
    }
    report_schema_skips(test, schemas, &report);
}

#[test]
fn plugin_configs_are_accepted_by_kfauth() {
    let credential = objects_of("components/authorization/credential");
    let plugin = &authorization_wasmplugin();
    let config = parse_plugin_config(plugin).unwrap_or_else(|e| panic!("authorization: {e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // Without the gateway's token in the environment the configuration still
    // loads (authentication goes on), its reviews answered as unavailable.
    let early = Config::parse(&plugin_config_bytes(plugin)).unwrap();
    let early_authz = early.authorization.as_ref().unwrap();
    assert_eq!(early_authz.apiserver.missing_credential(), Some(TOKEN_ENV));

    // Dex by discovery, service-account keys from cluster-jwks-proxy.
    let issuers: Vec<&str> = config.rules.iter().map(|r| r.issuer.as_str()).collect();
    assert_eq!(
        issuers,
        [
            "http://dex.auth.svc.cluster.local:5556/dex",
            "https://kubernetes.default.svc.cluster.local",
            "https://kubernetes.default.svc"
        ]
    );
    assert!(matches!(config.rules[0].keys, KeySource::Discovery { .. }));
    assert_eq!(
        remote_cluster(&config.rules[0].keys),
        outbound(5556, "dex.auth.svc.cluster.local")
    );
    for rule in &config.rules[1..] {
        assert_eq!(
            remote_cluster(&rule.keys),
            outbound(80, "cluster-jwks-proxy.istio-system.svc.cluster.local")
        );
    }
    assert!(config.require_jwt);
    let skipped = |path: &str| config.skip_paths.iter().any(|r| r.is_match(path));
    assert!(skipped("/dex/auth") && skipped("/oauth2/callback"));
    assert!(!skipped("/") && !skipped("/dexter") && !skipped("/pipeline/"));
    let grpc = config.grpc.as_ref().expect("the cookie diet");
    assert!(grpc
        .cookie_paths
        .iter()
        .any(|r| r.is_match("/ml_metadata.MetadataStoreService/GetArtifacts")));

    // The API server: the token from the environment, TLS by the component's DestinationRule.
    let authz = config.authorization.as_ref().expect("authorization");
    assert_eq!(
        authz.apiserver.bearer().as_deref(),
        Some("Bearer test-token")
    );
    let apiserver_rule = find(&credential, "DestinationRule", "kfauth-apiserver");
    assert_eq!(
        authz.apiserver.cluster,
        outbound(443, str_at(apiserver_rule, "/spec/host"))
    );
    assert_eq!(
        str_at(apiserver_rule, "/spec/trafficPolicy/tls/mode"),
        "SIMPLE"
    );
    assert_eq!(
        str_at(apiserver_rule, "/spec/trafficPolicy/tls/sni"),
        authz.apiserver.authority
    );
    assert_eq!(
        apiserver_rule["spec"]["workloadSelector"]["matchLabels"],
        plugin["spec"]["selector"]["matchLabels"]
    );

    // The KServe rule: inference requests, and only them, need `get` on the InferenceService.
    let identity = Identity {
        rule: 0,
        claims: std::rc::Rc::new(
            json!({"email": "alice@example.com", "groups": ["team-a-viewers"]})
                .as_object()
                .unwrap()
                .clone(),
        ),
        reviewed: None,
    };
    let cache = SubjectAccessReviewCache::new(16);
    let step = |request: &RequestView| {
        authorize(
            authz,
            &config.rules,
            request,
            Some(&identity),
            &cache,
            Duration::ZERO,
            &mut Access::default(),
        )
    };
    let host = "iris.team-a.example.com";
    for path in [
        "/v1/models/iris:predict",
        "/v2/models/iris/infer",
        "/v2/models/iris/versions/1/infer",
        "//v1/models/iris%3Apredict",
    ] {
        let AuthzStep::SubjectAccessReview { body, .. } = step(&request("POST", host, path)) else {
            panic!("{path}: no review");
        };
        let review: Value = serde_json::from_slice(&body).unwrap();
        validate_sar_request(&review).unwrap();
        assert_eq!(review["spec"]["user"], "alice@example.com");
        assert_eq!(review["spec"]["groups"], json!(["team-a-viewers"]));
        assert_eq!(
            review["spec"]["resourceAttributes"],
            json!({"namespace": "team-a", "group": "serving.kserve.io", "resource": "inferenceservices", "name": "iris", "verb": "get"}),
            "{path}"
        );
    }
    for (host, path) in [
        (host, "/v1/models/iris"),
        (host, "/"),
        ("kubeflow.example.com", "/v1/models/iris:predict"),
        ("iris.team-a.example.org", "/v1/models/iris:predict"),
        ("kubeflow.example.com", "/pipeline/apis/v2beta1/runs"),
    ] {
        assert_eq!(
            step(&request("POST", host, path)),
            AuthzStep::NotGuarded,
            "{host}{path}"
        );
    }
    // Kubeflow's roles grant it to a contributor (kubeflow-view) of the namespace.
    let role_files: Vec<PathBuf> = KUBEFLOW_ROLE_MANIFESTS
        .iter()
        .filter_map(|f| shared_data_file(f))
        .collect();
    if role_files.len() == KUBEFLOW_ROLE_MANIFESTS.len() {
        let mut rbac = Rbac::from_files(&role_files).unwrap();
        rbac.load_yaml(&role_binding(
            "team-a",
            "user-alice",
            "kubeflow-view",
            &[Subject::User("alice@example.com")],
        ))
        .unwrap();
        let ask = |namespace: &str| {
            AccessRequest::user("alice@example.com")
                .can("get", "serving.kserve.io", "inferenceservices")
                .in_namespace(namespace)
                .named("iris")
        };
        assert!(rbac.allows(&ask("team-a")));
        assert!(!rbac.allows(&ask("team-b")));
    } else {
        report_skipped(
            "plugin_configs_are_accepted_by_kfauth",
            "../shared/data absent (Kubeflow's roles)",
        );
    }

    // The Azure overlay: its rule's JWKS cluster is the one its ServiceEntry creates.
    let azure = parse_plugin_config(&azure_wasmplugin()).unwrap_or_else(|e| panic!("Azure: {e}"));
    assert!(
        azure.authorization.is_none(),
        "the Azure overlay is over the JWT-only base"
    );
    assert_eq!(azure.rules.len(), config.rules.len() + 1);
    let rule = azure.rules.last().unwrap();
    assert!(
        rule.issuer
            .starts_with("https://login.microsoftonline.com/"),
        "{}",
        rule.issuer
    );
    let headers: Vec<(&str, &str)> = rule
        .claim_headers
        .iter()
        .map(|h| (h.header.as_str(), h.claim.as_str()))
        .collect();
    assert!(
        matches!(
            headers[0],
            ("kubeflow-userid", "preferred_username" | "email")
        ),
        "{headers:?}"
    );
    assert_eq!(headers[1], ("kubeflow-groups", "groups"));
    let overlay: Vec<Value> = kustomization_at("overlays/azure")
        .resources
        .into_iter()
        .map(|(_, doc)| doc)
        .collect();
    let entry = find(&overlay, "ServiceEntry", "kfauth-azure-ad");
    let destination = find(&overlay, "DestinationRule", "kfauth-azure-ad");
    let host = str_at(entry, "/spec/hosts/0");
    let port = &entry["spec"]["ports"][0];
    assert_eq!(
        remote_cluster(&rule.keys),
        outbound(port["number"].as_u64().unwrap(), host)
    );
    assert_eq!(port["protocol"], "TLS");
    assert_eq!(str_at(entry, "/spec/resolution"), "DNS");
    assert_eq!(str_at(destination, "/spec/host"), host);
    assert_eq!(
        str_at(destination, "/spec/trafficPolicy/tls/mode"),
        "SIMPLE"
    );
    assert_eq!(str_at(destination, "/spec/trafficPolicy/tls/sni"), host);
    assert_eq!(
        destination["spec"]["workloadSelector"]["matchLabels"],
        plugin["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn plugin_config_is_kubeflows_request_authentications() {
    let test = "plugin_config_is_kubeflows_request_authentications";
    let Some(path) = shared_data_file(KUBEFLOW_AUTH_POLICIES) else {
        report_skipped(test, "../shared/data absent");
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let translation =
        kfauth::cli::from_istio::translate(&[(path.display().to_string(), text.clone())]).unwrap();
    let base = base_objects();
    let plugin = find(&base, "WasmPlugin", "kfauth");
    let ours = &plugin["spec"]["pluginConfig"];
    for field in ["jwtRules", "requireJwt", "skipPaths"] {
        assert_eq!(ours[field], translation.plugin_config[field], "{field}");
    }
    // The skipped paths are the ones the require-jwt policy exempts, no more.
    let policy = documents(&text, KUBEFLOW_AUTH_POLICIES)
        .into_iter()
        .find(|doc| doc["metadata"]["name"] == "istio-ingressgateway-require-jwt")
        .expect("the require-jwt policy");
    let not_paths: Vec<&str> = policy["spec"]["rules"][0]["to"][0]["operation"]["notPaths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(not_paths, ["/dex/*", "/dex/**", "/oauth2/*"]);
    let config = parse_plugin_config(plugin).unwrap();
    let skipped = |path: &str| config.skip_paths.iter().any(|r| r.is_match(path));
    // Istio: a pattern ending in `*` is a prefix match.
    let exempt = |path: &str| {
        not_paths
            .iter()
            .any(|p| path.starts_with(p.trim_end_matches('*')))
    };
    for path in [
        "/dex/auth",
        "/dex/auth/local/login",
        "/oauth2/callback",
        "/oauth2/start",
        "/",
        "/dex",
        "/oauth2",
        "/pipeline/",
        "/dexter/x",
        "/jupyter/",
    ] {
        assert_eq!(skipped(path), exempt(path), "{path}");
    }
}

#[test]
fn the_gateway_may_review_and_gets_its_token() {
    let credential = objects_of("components/authorization/credential");
    let rbac_yaml = credential
        .iter()
        .filter(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"))
        })
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let rbac = Rbac::from_yaml(&rbac_yaml).unwrap();
    let gateway = || AccessRequest::service_account(GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT);
    assert!(rbac.allows(&gateway().can("create", "authorization.k8s.io", "subjectaccessreviews")));
    assert!(rbac.allows(&gateway().can("create", "authentication.k8s.io", "tokenreviews")));
    for (verb, group, resource) in [
        ("get", "authorization.k8s.io", "subjectaccessreviews"),
        (
            "create",
            "authorization.k8s.io",
            "localsubjectaccessreviews",
        ),
        ("get", "", "secrets"),
        ("create", "serving.kserve.io", "inferenceservices"),
    ] {
        assert!(
            !rbac.allows(&gateway().can(verb, group, resource)),
            "{verb} {group} {resource}"
        );
    }
    assert!(!rbac.allows(
        &AccessRequest::service_account("kubeflow", "default-editor").can(
            "create",
            "authorization.k8s.io",
            "subjectaccessreviews"
        )
    ));

    // The token: a service-account token Secret of the same account, put into
    // the gateway's environment under the name the plugin reads.
    let secret = find(&credential, "Secret", "kfauth-apiserver-token");
    assert_eq!(
        str_at(secret, "/type"),
        "kubernetes.io/service-account-token"
    );
    assert_eq!(str_at(secret, "/metadata/namespace"), GATEWAY_NAMESPACE);
    assert_eq!(
        str_at(
            secret,
            "/metadata/annotations/kubernetes.io~1service-account.name"
        ),
        GATEWAY_SERVICE_ACCOUNT
    );
    let plugin = &authorization_wasmplugin();
    assert_eq!(
        plugin["spec"]["vmConfig"]["env"],
        json!([{"name": TOKEN_ENV, "valueFrom": "HOST"}])
    );
    assert_eq!(
        str_at(
            plugin,
            "/spec/pluginConfig/authorization/apiserver/tokenEnv"
        ),
        TOKEN_ENV
    );
    let component = kustomization_at("components/authorization");
    assert_eq!(component.kind, "Component");
    let deployment_patches: Vec<&Patch> = component
        .patches
        .iter()
        .filter(|patch| patch.target["kind"] == "Deployment")
        .collect();
    let [patch] = deployment_patches.as_slice() else {
        panic!("one Deployment patch: the gateway's");
    };
    assert_eq!(
        patch.target,
        json!({"group": "apps", "kind": "Deployment", "name": "istio-ingressgateway", "namespace": GATEWAY_NAMESPACE})
    );
    let container = &patch.documents[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "istio-proxy");
    assert_eq!(
        container["env"],
        json!([{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": "kfauth-apiserver-token", "key": "token"}}}])
    );
    // The Kubeflow component brings the base, authorization and the local gateway.
    let kubeflow = kustomization_at("components/kubeflow");
    for dir in [
        "base",
        "components/authorization",
        "components/local-gateway",
    ] {
        let expected = std::fs::canonicalize(wasmplugin_dir().join(dir)).unwrap();
        assert!(
            kubeflow
                .directories
                .iter()
                .any(|d| std::fs::canonicalize(d).unwrap() == expected),
            "components/kubeflow does not include {dir}"
        );
    }
}

/// (kind, namespace, name) of every object a kustomization's `$patch: delete` patches remove.
fn deletions(k: &Kustomization) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    for patch in &k.patches {
        for document in &patch.documents {
            if document["$patch"] == "delete" {
                let key = (
                    str_at(document, "/kind").to_string(),
                    str_at(document, "/metadata/namespace").to_string(),
                    str_at(document, "/metadata/name").to_string(),
                );
                let target = (
                    patch.target["kind"].as_str().unwrap_or("").to_string(),
                    patch.target["namespace"].as_str().unwrap_or("").to_string(),
                    patch.target["name"].as_str().unwrap_or("").to_string(),
                );
                assert_eq!(
                    key,
                    target,
                    "{}: the target is not what it deletes",
                    patch.file.display()
                );
                assert!(found.insert(key), "{}: deleted twice", patch.file.display());
            }
        }
    }
    found
}

fn replaced() -> BTreeSet<(String, String, String)> {
    REPLACED
        .iter()
        .map(|(k, ns, n)| (k.to_string(), ns.to_string(), n.to_string()))
        .collect()
}

#[test]
fn kubeflow_component_deletes_exactly_what_kfauth_replaces() {
    let test = "kubeflow_component_deletes_exactly_what_kfauth_replaces";
    let component = kustomization_at("components/kubeflow");
    assert_eq!(component.kind, "Component");
    assert_eq!(deletions(&component), replaced());
    // The local gateway's component deletes what Kubeflow's m2m-auth overlay adds.
    let local = kustomization_at("components/local-gateway");
    let local_replaced: BTreeSet<(String, String, String)> = LOCAL_REPLACED
        .iter()
        .map(|(k, ns, n)| (k.to_string(), ns.to_string(), n.to_string()))
        .collect();
    assert_eq!(deletions(&local), local_replaced);
    for k in all_kustomizations() {
        if k.dir != component.dir && k.dir != local.dir {
            assert!(
                deletions(&k).is_empty(),
                "{} deletes something",
                k.dir.display()
            );
        }
    }

    let Some(path) = shared_data_file(KUBEFLOW_AUTH_POLICIES) else {
        report_skipped(test, "../shared/data absent (Kubeflow's rendered policies)");
        return;
    };
    // In Kubeflow's policies: every RequestAuthentication and every require-JWT
    // DENY policy is deleted, the CUSTOM oauth2-proxy policy stays.
    let policies = read_documents(&path);
    let key = |o: &Value| {
        (
            str_at(o, "/kind").to_string(),
            str_at(o, "/metadata/namespace").to_string(),
            str_at(o, "/metadata/name").to_string(),
        )
    };
    let require_jwt = |o: &Value| {
        o["kind"] == "AuthorizationPolicy"
            && o["spec"]["action"] == "DENY"
            && o["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| {
                    rule["from"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|from| from["source"]["notRequestPrincipals"] == json!(["*"]))
                })
    };
    let expected: BTreeSet<_> = policies
        .iter()
        .filter(|o| o["kind"] == "RequestAuthentication" || require_jwt(o))
        .map(key)
        .collect();
    assert_eq!(expected, replaced());
    let kept: Vec<String> = policies
        .iter()
        .filter(|o| !replaced().contains(&key(o)))
        .map(label)
        .collect();
    assert_eq!(
        kept,
        ["AuthorizationPolicy istio-system/istio-ingressgateway-oauth2-proxy"]
    );

    // On the cluster-local gateway: every RequestAuthentication and require-JWT
    // policy of the m2m-auth overlay; its ALLOW policy is patched, not deleted.
    let mut m2m = Vec::new();
    for file in M2M_AUTH_FILES {
        let path = shared_data_file(&format!("{M2M_AUTH}/{file}")).expect("m2m-auth overlay");
        m2m.extend(read_documents(&path));
    }
    let expected: BTreeSet<_> = m2m
        .iter()
        .filter(|o| o["kind"] == "RequestAuthentication" || require_jwt(o))
        .map(key)
        .collect();
    assert_eq!(expected, deletions(&local));
}

// ---------------------------------------------------------------------------
// Rendering with kubectl

fn kustomize(dir: &Path) -> Vec<Value> {
    build(dir).unwrap_or_else(|e| panic!("{e}"))
}

fn check_rendered(origin: &str, objects: &[Value]) {
    let labelled: Vec<(String, Value)> = objects
        .iter()
        .map(|o| (origin.to_string(), o.clone()))
        .collect();
    check_objects(&labelled, istio_crd_schemas());
}

fn as_set(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(|o| o.to_string()).collect()
}

/// A minimal gateway Deployment: its `istio-proxy` container with one env entry.
fn gateway_deployment(name: &str, service_account: &str) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: istio-system}}\n\
         spec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n\
         \x20   spec:\n      serviceAccountName: {service_account}\n      containers:\n      - name: istio-proxy\n        image: auto\n        env:\n        - {{name: ISTIO_META_ROUTER_MODE, value: standard}}\n"
    )
}

/// Kubeflow's m2m-auth overlay of the cluster-local gateway, as kustomize
/// renders it: its RequestAuthentication, its DENY policy and the ALLOW
/// policy its patch makes require a request principal.
const M2M_AUTH: &str = "kubeflow-manifests/common/istio/cluster-local-gateway/overlays/m2m-auth";
const M2M_AUTH_FILES: [&str; 3] = [
    "cluster-local-gateway-requestauthentication.yaml",
    "cluster-local-gateway-authorizationpolicy-deny.yaml",
    "cluster-local-gateway-authorizationpolicy-patch.yaml",
];
/// What the local-gateway component deletes: (kind, namespace, name).
const LOCAL_REPLACED: [(&str, &str, &str); 2] = [
    (
        "AuthorizationPolicy",
        "istio-system",
        "cluster-local-gateway-require-jwt",
    ),
    (
        "RequestAuthentication",
        "istio-system",
        "cluster-local-gateway-jwt",
    ),
];

/// Kubeflow's auth policies of both gateways and their Deployments, for the
/// Kubeflow component to work on.
fn kubeflow_stand_in() -> String {
    let policies = match shared_data_file(KUBEFLOW_AUTH_POLICIES) {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => {
            let mut text = String::new();
            for (kind, namespace, name) in REPLACED.iter().chain([&(
                "AuthorizationPolicy",
                "istio-system",
                "istio-ingressgateway-oauth2-proxy",
            )]) {
                text.push_str(&format!(
                    "---\napiVersion: security.istio.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{selector: {{matchLabels: {{app: istio-ingressgateway}}}}}}\n"
                ));
            }
            text
        }
    };
    let mut local = String::new();
    for file in M2M_AUTH_FILES {
        match shared_data_file(&format!("{M2M_AUTH}/{file}")) {
            Some(path) => {
                local.push_str("---\n");
                local.push_str(&std::fs::read_to_string(path).unwrap());
                local.push('\n');
            }
            None => {
                let (kind, name) = match file {
                    "cluster-local-gateway-requestauthentication.yaml" => {
                        ("RequestAuthentication", "cluster-local-gateway-jwt")
                    }
                    "cluster-local-gateway-authorizationpolicy-deny.yaml" => {
                        ("AuthorizationPolicy", "cluster-local-gateway-require-jwt")
                    }
                    _ => ("AuthorizationPolicy", "cluster-local-gateway"),
                };
                local.push_str(&format!(
                    "---\napiVersion: security.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: istio-system}}\n\
                     spec: {{selector: {{matchLabels: {{app: cluster-local-gateway}}}}, rules: [{{from: [{{source: {{requestPrincipals: ['*']}}}}]}}]}}\n"
                ));
            }
        }
    }
    format!(
        "{policies}\n{local}{}{}",
        gateway_deployment("istio-ingressgateway", GATEWAY_SERVICE_ACCOUNT),
        gateway_deployment(
            "cluster-local-gateway",
            "cluster-local-gateway-service-account"
        ),
    )
}

/// Renders a Kustomization written into a new temporary directory (with
/// `files` beside it); `{kfauth}` in any text is the path from there to this
/// repository.
fn kustomize_temp(name: &str, kustomization: &str, files: &[(&str, String)]) -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wasmplugin-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kfauth = relative_path(
        &std::fs::canonicalize(&dir).unwrap(),
        &std::fs::canonicalize(repo_root()).unwrap(),
    );
    let kfauth = kfauth.display().to_string();
    std::fs::write(
        dir.join("kustomization.yaml"),
        kustomization.replace("{kfauth}", &kfauth),
    )
    .unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text.replace("{kfauth}", &kfauth)).unwrap();
    }
    let rendered = kustomize(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    rendered
}

fn container_env<'a>(objects: &'a [Value], deployment: &str) -> &'a Value {
    &find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]["env"]
}

#[test]
fn the_base_is_authentication_only() {
    // Applying it needs nothing from the cluster and nothing rolled out first.
    let k = kustomization_at("base");
    assert_eq!(k.kind, "Kustomization");
    assert!(k.patches.is_empty(), "the base patches nothing");
    assert!(k.directories.is_empty(), "the base includes nothing");
    let objects = base_objects();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["WasmPlugin"], "no Secret, RBAC or DestinationRule");
    let plugin = find(&objects, "WasmPlugin", "kfauth");
    assert!(plugin["spec"].get("vmConfig").is_none(), "no vmConfig.env");
    assert!(plugin["spec"]["pluginConfig"]
        .get("authorization")
        .is_none());
    assert_eq!(
        plugin["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "kfauth"
    );
    // Without any environment it loads with nothing missing.
    let config = Config::parse(&plugin_config_bytes(plugin)).unwrap();
    assert!(config.authorization.is_none());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    // Its image is a placeholder `kfauth check` refuses, naming the fields.
    let report = kfauth::cli::wasmplugin_spec::check_spec(&plugin["spec"], Some(&config));
    let fields: Vec<&str> = report
        .errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(fields, ["spec.url", "spec.sha256"], "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

/// oauth2-proxy's `NAME = "value"` setting in Kubeflow's `oauth2_proxy.cfg`,
/// when `../shared/data` is there.
fn oauth2_proxy_setting(name: &str) -> Option<String> {
    let path = shared_data_file(OAUTH2_PROXY_CFG)?;
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Kubeflow's oauth2-proxy configuration (relative to the shared data).
const OAUTH2_PROXY_CFG: &str = "kubeflow-manifests/common/oauth2-proxy/base/oauth2_proxy.cfg";

/// The session block of a kfauth WasmPlugin names oauth2-proxy's cookie as
/// Kubeflow configures it, and exempts oauth2-proxy's own routes.
fn assert_session_shield(plugin: &Value) {
    let cookie_name = oauth2_proxy_setting("cookie_name").unwrap_or_else(|| {
        report_skipped(
            "the_session_shield_names_kubeflows_oauth2_proxy_cookie",
            "../shared/data absent (oauth2_proxy.cfg): checked against the name written here",
        );
        "oauth2_proxy_kubeflow".to_string()
    });
    let session = &plugin["spec"]["pluginConfig"]["session"];
    assert_eq!(
        session["cookies"],
        json!([cookie_name]),
        "{}: the session block must name oauth2-proxy's cookie_name",
        label(plugin)
    );
    let config = parse_plugin_config(plugin).unwrap_or_else(|e| panic!("{}: {e}", label(plugin)));
    for part in [
        cookie_name.clone(),
        format!("{cookie_name}_0"),
        format!("{cookie_name}_1"),
    ] {
        assert!(
            kfauth::session::is_session_cookie(&config.session, &part),
            "{part}"
        );
    }
    assert!(!kfauth::session::is_session_cookie(
        &config.session,
        &format!("{cookie_name}_csrf")
    ));
    // oauth2-proxy's routes keep it: its callback (`redirect_url`) among them.
    let callback =
        oauth2_proxy_setting("redirect_url").unwrap_or_else(|| "/oauth2/callback".to_string());
    for path in [callback.as_str(), "/oauth2/start", "/oauth2/sign_out"] {
        assert!(
            config.session.exempt_paths.iter().any(|r| r.is_match(path)),
            "{path} is not exempt"
        );
    }
    for path in ["/", "/jupyter/", "/pipeline/", "/dex/auth", "/ml_metadata"] {
        assert!(
            !config.session.exempt_paths.iter().any(|r| r.is_match(path)),
            "{path} is exempt"
        );
    }
}

#[test]
fn the_session_shield_names_kubeflows_oauth2_proxy_cookie() {
    // In the base (it needs nothing from the cluster), so in every overlay
    // and in the Kubeflow component's ingress-gateway plugin.
    assert_session_shield(find(&base_objects(), "WasmPlugin", "kfauth"));
    assert_session_shield(&authorization_wasmplugin());
    assert_session_shield(&azure_wasmplugin());
}

#[test]
fn kustomizations_render_with_kubectl() {
    let test = "kustomizations_render_with_kubectl";
    if !kubectl_present() {
        report_skipped(test, "kubectl not found (rendering with kubectl kustomize)");
        return;
    }
    let schemas = istio_crd_schemas();
    if schemas.is_none() {
        report_skipped(
            test,
            "../shared/data absent (schema validation of the rendered objects)",
        );
    }

    // The base renders to exactly its resources: one WasmPlugin.
    let base = kustomize(&wasmplugin_dir().join("base"));
    check_rendered("kubectl kustomize wasmplugin/base", &base);
    assert_eq!(as_set(&base), as_set(&base_objects()));

    // The credential alone (what a running cluster applies first).
    let credential = kustomize(&wasmplugin_dir().join("components/authorization/credential"));
    check_rendered("the credential", &credential);
    assert_eq!(
        as_set(&credential),
        as_set(&objects_of("components/authorization/credential"))
    );

    // Base + authorization: the credential and the WasmPlugin as this test
    // merges the component's patch; no Deployment to patch there.
    let authorization = kustomize(&wasmplugin_dir().join("overlays/authorization"));
    check_rendered(
        "kubectl kustomize wasmplugin/overlays/authorization",
        &authorization,
    );
    assert_eq!(
        find(&authorization, "WasmPlugin", "kfauth"),
        &authorization_wasmplugin()
    );
    assert_eq!(authorization.len(), credential.len() + 1);
    for object in &credential {
        assert!(
            authorization.contains(object),
            "{} is missing",
            label(object)
        );
    }

    // The Azure overlay: the base, its ServiceEntry and DestinationRule, and the
    // WasmPlugin patched as this test patches it.
    let azure = kustomize(&wasmplugin_dir().join("overlays/azure"));
    check_rendered("kubectl kustomize wasmplugin/overlays/azure", &azure);
    assert_eq!(find(&azure, "WasmPlugin", "kfauth"), &azure_wasmplugin());
    assert_eq!(azure.len(), base.len() + 2);

    // The Kubeflow component over Kubeflow's policies and both gateways, with
    // README's image patch selecting the plugins by label ("New installs").
    let image = readme_block("# my-kfauth/kfauth-image.yaml");
    let rendered = kustomize_temp(
        "kubeflow",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- kubeflow.yaml\n\
         components:\n- {kfauth}/wasmplugin/components/kubeflow\npatches:\n- path: kfauth-image.yaml\n\
         \x20 target:\n    group: extensions.istio.io\n    kind: WasmPlugin\n    labelSelector: app.kubernetes.io/part-of=kfauth\n",
        &[("kubeflow.yaml", kubeflow_stand_in()), ("kfauth-image.yaml", image.clone())],
    );
    let operations: Vec<Value> = serde_yaml_ng::from_str(&image).unwrap();
    check_rendered("the Kubeflow component", &rendered);
    let labels: BTreeSet<String> = rendered.iter().map(label).collect();
    for (kind, namespace, name) in REPLACED.iter().chain(LOCAL_REPLACED.iter()) {
        assert!(
            !labels.contains(&format!("{kind} {namespace}/{name}")),
            "{kind} {name} is still there"
        );
    }
    assert!(labels.contains("AuthorizationPolicy istio-system/istio-ingressgateway-oauth2-proxy"));
    // Without a request principal the m2m ALLOW policy would let only health
    // checks through: it is allow-all again, as in Kubeflow's base.
    assert_eq!(
        find(&rendered, "AuthorizationPolicy", "cluster-local-gateway")["spec"]["rules"],
        json!([{}])
    );
    let mut expected = authorization_wasmplugin();
    apply_json_patch(&mut expected, &operations).unwrap();
    assert_eq!(find(&rendered, "WasmPlugin", "kfauth"), &expected);
    // The ingress gateway's plugin shields the session by default.
    assert_session_shield(find(&rendered, "WasmPlugin", "kfauth"));
    for object in &credential {
        assert!(rendered.contains(object), "{} is missing", label(object));
    }
    for (deployment, secret) in [
        ("istio-ingressgateway", "kfauth-apiserver-token"),
        (
            "cluster-local-gateway",
            "kfauth-local-gateway-apiserver-token",
        ),
    ] {
        assert_eq!(
            container_env(&rendered, deployment),
            &json!([
                {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}},
                {"name": "ISTIO_META_ROUTER_MODE", "value": "standard"}
            ]),
            "{deployment}"
        );
        let secret = find(&rendered, "Secret", secret);
        let account = &find(&rendered, "Deployment", deployment)["spec"]["template"]["spec"]
            ["serviceAccountName"];
        assert_eq!(
            &secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
            account
        );
    }
    let plugins: Vec<&Value> = rendered
        .iter()
        .filter(|o| o["kind"] == "WasmPlugin")
        .collect();
    assert_eq!(plugins.len(), 2, "one per gateway");
    for plugin in plugins {
        assert_eq!(
            plugin["spec"]["url"],
            operations[0]["value"],
            "{}",
            label(plugin)
        );
        assert_eq!(
            plugin["spec"]["sha256"],
            operations[1]["value"],
            "{}",
            label(plugin)
        );
        let config =
            parse_plugin_config(plugin).unwrap_or_else(|e| panic!("{}: {e}", label(plugin)));
        assert!(config.authorization.is_some(), "{}", label(plugin));
        assert_eq!(
            plugin["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "kfauth",
            "{}: the image patch selects it",
            label(plugin)
        );
    }
}

#[test]
fn the_readme_install_overlay_renders_and_passes_check() {
    let test = "the_readme_install_overlay_renders_and_passes_check";
    if !kubectl_present() {
        report_skipped(test, "kubectl not found (rendering with kubectl kustomize)");
        return;
    }
    // README "Install on a running Kubeflow", steps 2, 3 and 5, as written:
    // my-kfauth/ beside the kfauth checkout (here a link to this repository).
    let kustomization = readme_block("# my-kfauth/kustomization.yaml");
    let image = readme_block("# my-kfauth/kfauth-image.yaml");
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("readme-install-{}", std::process::id()));
    let overlay = root.join("my-kfauth");
    std::fs::create_dir_all(&overlay).unwrap();
    std::os::unix::fs::symlink(repo_root(), root.join("kfauth")).unwrap();
    std::fs::write(overlay.join("kfauth-image.yaml"), &image).unwrap();
    let operations: Vec<Value> = serde_yaml_ng::from_str(&image).unwrap();
    let (url, sha256) = (&operations[0]["value"], &operations[1]["value"]);

    let step5 = kustomization.replace(
        "- ../kfauth/wasmplugin/base",
        "- ../kfauth/wasmplugin/overlays/authorization",
    );
    assert_ne!(
        step5, kustomization,
        "step 5 swaps the base for overlays/authorization"
    );
    for (step, text, plugins) in [(4, &kustomization, 1), (5, &step5, 1)] {
        std::fs::write(overlay.join("kustomization.yaml"), text).unwrap();
        let rendered = kustomize(&overlay);
        check_rendered(&format!("README step {step}"), &rendered);
        let found: Vec<&Value> = rendered
            .iter()
            .filter(|o| o["kind"] == "WasmPlugin")
            .collect();
        assert_eq!(found.len(), plugins);
        for plugin in found {
            assert_eq!(&plugin["spec"]["url"], url, "step {step}");
            assert_eq!(&plugin["spec"]["sha256"], sha256, "step {step}");
        }
        let kinds: BTreeSet<&str> = rendered.iter().filter_map(|o| o["kind"].as_str()).collect();
        if step == 4 {
            assert_eq!(kinds, BTreeSet::from(["WasmPlugin"]));
        } else {
            assert!(
                kinds.contains("Secret") && !kinds.contains("Deployment"),
                "{kinds:?}"
            );
        }
        // `kfauth check` on what kubectl rendered: 0, warning only of the
        // token's rollout order once authorization is in.
        let file = root.join(format!("step{step}.rendered.yaml"));
        std::fs::write(
            &file,
            rendered
                .iter()
                .map(|o| serde_yaml_ng::to_string(o).unwrap())
                .collect::<Vec<_>>()
                .join("---\n"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kfauth"))
            .arg("check")
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "step {step}: {said}");
        assert!(!said.contains("error"), "step {step}: {said}");
        assert_eq!(
            said.contains("warning: pluginConfig.authorization.apiserver.tokenEnv"),
            step == 5,
            "step {step}: {said}"
        );
    }
    // As shipped, without the image patch, check refuses the placeholders.
    let out = Command::new(env!("CARGO_BIN_EXE_kfauth"))
        .arg("check")
        .arg(wasmplugin_dir().join("base/wasmplugin.yaml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("error: spec.url: `oci://registry.invalid/kfauth:0.1.0` is a placeholder"),
        "{said}"
    );
    assert!(said.contains("error: spec.sha256: "), "{said}");
    std::fs::remove_dir_all(&root).unwrap();
}
