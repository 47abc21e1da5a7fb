//! `kfauth from-istio FILE...`: RequestAuthentication manifests (and a
//! require-jwt AuthorizationPolicy) to the equivalent pluginConfig.
//!
//! `jwtRules` carry over as they are: kfauth's fields are Istio's, every one
//! of them. A DENY policy for requests without a principal
//! (`notRequestPrincipals: ["*"]`) that applies to the RequestAuthentications'
//! workload becomes `requireJwt: true`, its `notPaths` become `skipPaths`.
//!
//! One pluginConfig is one WasmPlugin on one set of workloads, so what cannot
//! be said in it is an error (the output would mean something else: objects
//! for different workloads, a second rule for an issuer, a placeholder left
//! by an unrendered overlay), a warning (an object that stays in Istio or is
//! not translated), or a note (where the WasmPlugin goes).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::manifests::{documents, kind, name};

/// Every field of Istio's `JWTRule` (the RequestAuthentication CRD's
/// `jwtRules` item schema, v1 and v1beta1): kfauth reads them all.
pub const JWT_RULE_FIELDS: [&str; 14] = [
    "issuer",
    "audiences",
    "jwksUri",
    "jwks_uri",
    "jwks",
    "fromHeaders",
    "fromParams",
    "fromCookies",
    "forwardOriginalToken",
    "outputPayloadToHeader",
    "outputClaimToHeaders",
    "timeout",
    "presence",
    "spaceDelimitedClaims",
];

#[derive(Debug, Default)]
pub struct Translation {
    pub plugin_config: Value,
    /// Where the WasmPlugin goes, what was skipped: one line each.
    pub notes: Vec<String>,
    /// What stays in Istio or is not translated, naming the object (exit 0).
    pub warnings: Vec<String>,
    /// What makes the pluginConfig wrong, naming the object and field (exit 1;
    /// then `plugin_config` must not be used).
    pub errors: Vec<String>,
}

/// Which workloads an Istio policy object applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// No selector: every workload of the namespace.
    Namespace,
    /// `selector.matchLabels`.
    Selector(BTreeMap<String, String>),
    /// `targetRefs` (and the hidden `targetRef`), as `Kind/name` (group first when set).
    Refs(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attachment {
    namespace: Option<String>,
    target: Target,
}

impl Attachment {
    fn of(doc: &Value) -> Attachment {
        let namespace = doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let spec = doc.get("spec").unwrap_or(&Value::Null);
        let mut refs: Vec<String> = spec
            .get("targetRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(spec.get("targetRef"))
            .map(|reference| {
                let field = |key: &str| reference.get(key).and_then(Value::as_str).unwrap_or("");
                match field("group") {
                    "" => format!("{}/{}", field("kind"), field("name")),
                    group => format!("{group}/{}/{}", field("kind"), field("name")),
                }
            })
            .collect();
        refs.sort();
        let labels: BTreeMap<String, String> = spec
            .pointer("/selector/matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(key, value)| {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                (key.clone(), value)
            })
            .collect();
        let target = if !refs.is_empty() {
            Target::Refs(refs)
        } else if !labels.is_empty() {
            Target::Selector(labels)
        } else {
            Target::Namespace
        };
        Attachment { namespace, target }
    }

    fn describe(&self) -> String {
        let namespace = match &self.namespace {
            Some(namespace) => format!("namespace {namespace}"),
            None => "no namespace given".to_string(),
        };
        match &self.target {
            Target::Namespace => format!(
                "{namespace}, no selector (every workload of the namespace; of the mesh in Istio's root namespace)"
            ),
            Target::Selector(labels) => format!(
                "{namespace}, selector matchLabels {{{}}}",
                labels
                    .iter()
                    .map(|(key, value)| format!("{key}: {value}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Target::Refs(refs) => format!("{namespace}, targetRefs [{}]", refs.join(", ")),
        }
    }

    /// Does a policy attached here apply to every workload `workload` selects?
    fn covers(&self, workload: &Attachment) -> bool {
        self.namespace == workload.namespace
            && match (&self.target, &workload.target) {
                (Target::Namespace, _) => true,
                (Target::Selector(policy), Target::Selector(selected)) => policy
                    .iter()
                    .all(|(key, value)| selected.get(key) == Some(value)),
                (policy, selected) => policy == selected,
            }
    }
}

/// An Istio path pattern (exact, `prefix*`, `*suffix`, `*`) as a regex.
fn path_regex(pattern: &str) -> String {
    if pattern == "*" {
        return "^.*".into();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return format!("^{}", regex_lite::escape(prefix.trim_end_matches('*')));
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return format!("^.*{}$", regex_lite::escape(suffix));
    }
    format!("^{}$", regex_lite::escape(pattern))
}

/// The paths a require-JWT DENY policy exempts (as regexes), when `spec` is
/// exactly one: `action: DENY`, one rule, `from` one source that is only
/// `notRequestPrincipals: ["*"]`, no `when`, and `to` operations with only
/// `notPaths`. A request is exempt when every `to` operation exempts it
/// (operations are ORed, so their exemptions intersect).
fn is_require_jwt(spec: &Value) -> Option<Vec<String>> {
    if spec.get("action").and_then(Value::as_str) != Some("DENY") {
        return None;
    }
    let rules = spec.get("rules")?.as_array()?;
    let [rule] = rules.as_slice() else {
        return None;
    };
    let [source] = rule.get("from")?.as_array()?.as_slice() else {
        return None;
    };
    let source = source.get("source")?.as_object()?;
    if source.len() != 1
        || source.get("notRequestPrincipals")?.as_array()?.as_slice() != [json!("*")]
    {
        return None;
    }
    if rule
        .as_object()?
        .keys()
        .any(|key| key != "from" && key != "to")
    {
        return None;
    }
    let mut exempt: Option<Vec<String>> = None;
    for target in rule
        .get("to")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let operation = target.get("operation")?.as_object()?;
        if operation.keys().any(|key| key != "notPaths") {
            return None;
        }
        let mut paths = Vec::new();
        for path in operation.get("notPaths")?.as_array()? {
            let regex = path_regex(path.as_str()?);
            if !paths.contains(&regex) {
                paths.push(regex);
            }
        }
        exempt = Some(match exempt {
            None => paths,
            Some(before) => before.into_iter().filter(|p| paths.contains(p)).collect(),
        });
    }
    Some(exempt.unwrap_or_default())
}

/// Text someone meant to replace: Kubeflow's `PATCH_ME`, the EKS overlay's
/// `AWS_REGION` / `CLUSTER_ID`, `${VAR}`, `<your-issuer>`.
fn placeholder(text: &str, upper_case_words: bool) -> bool {
    let lower = text.to_ascii_lowercase();
    let marked = [
        "patch_me",
        "patch-me",
        "change_me",
        "changeme",
        "replace_me",
        "replace-me",
        "placeholder",
    ]
    .iter()
    .any(|word| lower.contains(word))
        || text.contains("${")
        || (text.starts_with('<') && text.ends_with('>'));
    let upper = upper_case_words
        && text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| {
                word.contains('_')
                    && word.chars().filter(char::is_ascii_uppercase).count() >= 2
                    && !word.chars().any(|c| c.is_ascii_lowercase())
            });
    marked || upper
}

/// Every string in `value` with its path below `field`.
fn strings<'a>(value: &'a Value, field: String, into: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(text) => into.push((field, text)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                strings(item, format!("{field}[{index}]"), into);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                strings(item, format!("{field}.{key}"), into);
            }
        }
        _ => {}
    }
}

/// A require-JWT AuthorizationPolicy, kept until every RequestAuthentication is read.
struct RequireJwtPolicy {
    label: String,
    attachment: Attachment,
    exempt: Vec<String>,
}

/// Translates the manifests in `texts` (file name, content).
pub fn translate(texts: &[(String, String)]) -> Result<Translation, String> {
    let mut translation = Translation::default();
    // Each rule with the object and index it came from.
    let mut rules: Vec<(Value, String)> = Vec::new();
    // The workload of the RequestAuthentications, and who set it.
    let mut workload: Option<(Attachment, Vec<String>)> = None;
    let mut policies: Vec<RequireJwtPolicy> = Vec::new();
    for (file, text) in texts {
        for doc in documents(text).map_err(|problem| format!("{file}: {problem}"))? {
            let label = format!("{} {}", kind(&doc).unwrap_or("document"), name(&doc));
            let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
            match kind(&doc) {
                Some("RequestAuthentication") => {
                    let attachment = Attachment::of(&doc);
                    match &mut workload {
                        None => workload = Some((attachment, vec![label.clone()])),
                        Some((first, labels)) if *first == attachment => labels.push(label.clone()),
                        Some((first, labels)) => {
                            translation.errors.push(format!(
                                "{label} ({}) and {} ({}) apply to different workloads; one pluginConfig is one WasmPlugin on one set of workloads: run from-istio once per workload",
                                attachment.describe(),
                                labels.join(", "),
                                first.describe()
                            ));
                            // Its rules belong to another pluginConfig.
                            continue;
                        }
                    }
                    translate_rules(&label, &spec, &mut rules, &mut translation);
                }
                Some("AuthorizationPolicy") => match is_require_jwt(&spec) {
                    Some(exempt) => policies.push(RequireJwtPolicy {
                        label,
                        attachment: Attachment::of(&doc),
                        exempt,
                    }),
                    None => translation.warnings.push(format!(
                        "{label} ({}): not a plain require-JWT DENY policy, not translated; keep it in Istio (or express it as kfauth `authorization` rules)",
                        Attachment::of(&doc).describe()
                    )),
                },
                _ => translation.notes.push(format!(
                    "{file}: {label} is neither a RequestAuthentication nor an AuthorizationPolicy; skipped"
                )),
            }
        }
    }
    let Some((workload, sources)) = workload.filter(|_| !rules.is_empty()) else {
        translation
            .errors
            .push("no RequestAuthentication jwtRules found".into());
        return Ok(translation);
    };
    let place = format!(
        "the WasmPlugin with this pluginConfig goes where {} applied: {} (set the WasmPlugin's metadata.namespace and selector or targetRefs the same way)",
        sources.join(", "),
        workload.describe()
    );
    if translation.errors.is_empty() {
        translation.notes.push(place);
    }

    // DENY policies add up: a request is exempt only where every one exempts it.
    let mut require_jwt = false;
    let mut exempt: Option<Vec<String>> = None;
    for policy in &policies {
        if !policy.attachment.covers(&workload) {
            translation.warnings.push(format!(
                "{} ({}) does not apply to every workload of the RequestAuthentications ({}); not turned into requireJwt",
                policy.label,
                policy.attachment.describe(),
                workload.describe()
            ));
            continue;
        }
        require_jwt = true;
        exempt = Some(match exempt {
            None => policy.exempt.clone(),
            Some(before) => {
                for path in before.iter().chain(&policy.exempt) {
                    if !(before.contains(path) && policy.exempt.contains(path)) {
                        translation.warnings.push(format!(
                            "{}: `{path}` is exempt in only some of the require-JWT policies, so a token is required there",
                            policy.label
                        ));
                    }
                }
                before
                    .into_iter()
                    .filter(|path| policy.exempt.contains(path))
                    .collect()
            }
        });
    }
    let mut config = json!({
        "jwtRules": rules.into_iter().map(|(rule, _)| rule).collect::<Vec<_>>()
    });
    if let Some(object) = config.as_object_mut() {
        if require_jwt {
            object.insert("requireJwt".into(), Value::Bool(true));
        }
        if let Some(paths) = exempt.filter(|paths| !paths.is_empty()) {
            object.insert("skipPaths".into(), json!(paths));
        }
    }
    translation.plugin_config = config;
    Ok(translation)
}

/// Carries `spec.jwtRules` of RequestAuthentication `label` over into `rules`.
fn translate_rules(
    label: &str,
    spec: &Value,
    rules: &mut Vec<(Value, String)>,
    translation: &mut Translation,
) {
    for (index, rule) in spec
        .get("jwtRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.jwtRules[{index}]");
        let Some(object) = rule.as_object() else {
            translation
                .errors
                .push(format!("{label}: {field} is not an object"));
            continue;
        };
        let mut kept = Map::new();
        for (key, value) in object {
            if JWT_RULE_FIELDS.contains(&key.as_str()) {
                kept.insert(key.clone(), value.clone());
            } else {
                translation.errors.push(format!(
                    "{label}: {field}.{key} is not a field of Istio's JWTRule"
                ));
            }
        }
        let mut texts = Vec::new();
        strings(rule, field.clone(), &mut texts);
        for (path, text) in texts {
            let urls = [".issuer", ".jwksUri", ".jwks_uri"]
                .iter()
                .any(|end| path.ends_with(end))
                || path.contains(".audiences[");
            if placeholder(text, urls) && !path.ends_with(".jwks") {
                translation.errors.push(format!(
                    "{label}: {path} is `{text}`, a placeholder; translate the rendered manifests (kubectl kustomize OVERLAY) where an overlay sets it"
                ));
            }
        }
        let issuer = kept.get("issuer").cloned().unwrap_or(Value::Null);
        if let Some((_, first)) = rules
            .iter()
            .find(|(existing, _)| existing.get("issuer") == Some(&issuer))
        {
            translation.errors.push(format!(
                "{label}: {field}.issuer {issuer} is also the issuer of {first}; kfauth chooses the rule by issuer, so merge the two rules into one"
            ));
            continue;
        }
        rules.push((Value::Object(kept), format!("{label} {field}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_path_patterns_become_regexes() {
        assert_eq!(path_regex("/dex/*"), "^/dex/");
        assert_eq!(path_regex("/dex/**"), "^/dex/");
        assert_eq!(path_regex("*.css"), "^.*\\.css$");
        assert_eq!(path_regex("/healthz"), "^/healthz$");
        assert_eq!(path_regex("*"), "^.*");
    }

    #[test]
    fn translates_rules_and_a_require_jwt_policy() {
        let manifests = r#"
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: dex-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {app: istio-ingressgateway}}
  jwtRules:
  - issuer: http://dex.auth.svc.cluster.local:5556/dex
    forwardOriginalToken: true
    outputClaimToHeaders: [{header: kubeflow-userid, claim: email}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: istio-system}
spec:
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {notPaths: ["/dex/*", "/dex/**", "/oauth2/*"]}}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: oauth2-proxy, namespace: istio-system}
spec: {action: CUSTOM, provider: {name: oauth2-proxy}}
"#;
        let translation = translate(&[("f.yaml".into(), manifests.into())]).unwrap();
        assert_eq!(
            translation.plugin_config,
            json!({
                "jwtRules": [{"issuer": "http://dex.auth.svc.cluster.local:5556/dex",
                    "forwardOriginalToken": true,
                    "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}]}],
                "requireJwt": true,
                "skipPaths": ["^/dex/", "^/oauth2/"],
            })
        );
        assert!(translation.errors.is_empty(), "{:?}", translation.errors);
        assert_eq!(translation.warnings.len(), 1, "{:?}", translation.warnings);
        assert!(translation.warnings[0].contains("AuthorizationPolicy oauth2-proxy"));
        assert_eq!(translation.notes.len(), 1, "{:?}", translation.notes);
        assert!(
            translation.notes[0].contains(
                "RequestAuthentication dex-jwt applied: namespace istio-system, selector matchLabels {app: istio-ingressgateway}"
            ),
            "{:?}",
            translation.notes
        );
    }

    fn run(manifests: &str) -> Translation {
        translate(&[("f.yaml".into(), manifests.into())]).unwrap()
    }

    const INGRESS_RA: &str = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: dex-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {app: istio-ingressgateway}}
  jwtRules:
  - issuer: http://dex.auth.svc.cluster.local:5556/dex
    jwks_uri: http://dex.auth.svc.cluster.local:5556/dex/keys
    presence: REQUIRED
    spaceDelimitedClaims: [scope]
    timeout: 1.5s
"#;

    #[test]
    fn every_istio_field_carries_over() {
        let translation = run(INGRESS_RA);
        assert!(translation.errors.is_empty(), "{:?}", translation.errors);
        assert_eq!(
            translation.plugin_config["jwtRules"][0],
            json!({"issuer": "http://dex.auth.svc.cluster.local:5556/dex",
                "jwks_uri": "http://dex.auth.svc.cluster.local:5556/dex/keys",
                "presence": "REQUIRED", "spaceDelimitedClaims": ["scope"], "timeout": "1.5s"})
        );
    }

    #[test]
    fn objects_for_different_workloads_are_an_error_naming_both() {
        let other = r#"
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: local-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {app: cluster-local-gateway, istio: cluster-local-gateway}}
  jwtRules: [{issuer: https://kubernetes.default.svc}]
"#;
        let translation = run(&format!("{INGRESS_RA}{other}"));
        assert_eq!(translation.errors.len(), 1, "{:?}", translation.errors);
        let error = &translation.errors[0];
        assert!(error.contains("RequestAuthentication local-jwt (namespace istio-system, selector matchLabels {app: cluster-local-gateway, istio: cluster-local-gateway})"), "{error}");
        assert!(error.contains("RequestAuthentication dex-jwt (namespace istio-system, selector matchLabels {app: istio-ingressgateway})"), "{error}");
        // The same selector in another namespace is another workload too; so
        // are targetRefs and no selector at all.
        for attached in [
            "metadata: {name: b, namespace: kubeflow}\nspec:\n  selector: {matchLabels: {app: istio-ingressgateway}}",
            "metadata: {name: b, namespace: istio-system}\nspec:\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]",
            "metadata: {name: b, namespace: istio-system}\nspec:",
        ] {
            let second = format!("---\nkind: RequestAuthentication\n{attached}\n  jwtRules: [{{issuer: https://b.example.com}}]\n");
            let translation = run(&format!("{INGRESS_RA}{second}"));
            assert_eq!(translation.errors.len(), 1, "{attached}: {:?}", translation.errors);
        }
        // The same workload: one config.
        let same = "---\nkind: RequestAuthentication\nmetadata: {name: b, namespace: istio-system}\nspec:\n  selector: {matchLabels: {app: istio-ingressgateway}}\n  jwtRules: [{issuer: https://b.example.com}]\n";
        let translation = run(&format!("{INGRESS_RA}{same}"));
        assert!(translation.errors.is_empty(), "{:?}", translation.errors);
        assert_eq!(
            translation.plugin_config["jwtRules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_policy_for_another_workload_is_not_require_jwt() {
        let policy = |selector: &str| {
            format!(
                "{INGRESS_RA}---\nkind: AuthorizationPolicy\nmetadata: {{name: require-jwt, namespace: istio-system}}\nspec:\n  {selector}\n  action: DENY\n  rules:\n  - from: [{{source: {{notRequestPrincipals: ['*']}}}}]\n"
            )
        };
        let other = run(&policy(
            "selector: {matchLabels: {app: cluster-local-gateway}}",
        ));
        assert!(other.errors.is_empty(), "{:?}", other.errors);
        assert_eq!(other.plugin_config.get("requireJwt"), None);
        assert_eq!(other.warnings.len(), 1, "{:?}", other.warnings);
        assert!(other.warnings[0].contains("AuthorizationPolicy require-jwt (namespace istio-system, selector matchLabels {app: cluster-local-gateway}) does not apply"));
        // Fewer labels select more workloads, the RequestAuthentications' among them.
        for covering in [
            "selector: {matchLabels: {app: istio-ingressgateway}}",
            "selector: {}",
            "# no selector",
        ] {
            let translated = run(&policy(covering));
            assert_eq!(translated.plugin_config["requireJwt"], true, "{covering}");
            assert!(translated.warnings.is_empty(), "{:?}", translated.warnings);
        }
        let more = run(&policy(
            "selector: {matchLabels: {app: istio-ingressgateway, istio: ingressgateway}}",
        ));
        assert_eq!(more.plugin_config.get("requireJwt"), None);
    }

    #[test]
    fn deny_policies_exempt_only_what_every_one_exempts() {
        let policy = |name: &str, to: &str| {
            format!("---\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n  action: DENY\n  rules:\n  - from: [{{source: {{notRequestPrincipals: ['*']}}}}]\n    to: {to}\n")
        };
        let translation = run(&format!(
            "{INGRESS_RA}{}{}",
            policy("a", "[{operation: {notPaths: [/dex/*, /healthz]}}]"),
            policy("b", "[{operation: {notPaths: [/healthz, /ready]}}, {operation: {notPaths: [/healthz, /dex/*]}}]"),
        ));
        assert_eq!(translation.plugin_config["requireJwt"], true);
        assert_eq!(
            translation.plugin_config["skipPaths"],
            json!(["^/healthz$"])
        );
        assert!(
            translation.warnings.iter().any(|w| w.contains("`^/dex/`")),
            "{:?}",
            translation.warnings
        );
        // A source beside notRequestPrincipals denies less (or more): not require-JWT.
        let narrower = run(&format!(
            "{INGRESS_RA}---\nkind: AuthorizationPolicy\nmetadata: {{name: c, namespace: istio-system}}\nspec:\n  action: DENY\n  rules:\n  - from: [{{source: {{notRequestPrincipals: ['*'], namespaces: [x]}}}}]\n"
        ));
        assert_eq!(narrower.plugin_config.get("requireJwt"), None);
        assert!(narrower.warnings[0].contains("AuthorizationPolicy c"));
    }

    #[test]
    fn a_second_rule_for_an_issuer_placeholders_and_unknown_fields_are_errors() {
        let translation = run(r#"
kind: RequestAuthentication
metadata: {name: a, namespace: istio-system}
spec:
  jwtRules:
  - issuer: https://kubernetes.default.svc
  - issuer: https://kubernetes.default.svc
    fromHeaders: [{name: x-token}]
  - issuer: PATCH_ME
  - issuer: https://oidc.eks.AWS_REGION.amazonaws.com/id/CLUSTER_ID
  - issuer: https://c.example.com
    jwksUri: https://${HOST}/keys
    jwksUrl: https://c.example.com/keys
"#);
        let errors = translation.errors.join("\n");
        assert!(errors.contains("RequestAuthentication a: spec.jwtRules[1].issuer \"https://kubernetes.default.svc\" is also the issuer of RequestAuthentication a spec.jwtRules[0]"), "{errors}");
        assert!(
            errors.contains(
                "RequestAuthentication a: spec.jwtRules[2].issuer is `PATCH_ME`, a placeholder"
            ),
            "{errors}"
        );
        assert!(errors.contains("spec.jwtRules[3].issuer is `https://oidc.eks.AWS_REGION.amazonaws.com/id/CLUSTER_ID`, a placeholder"), "{errors}");
        assert!(
            errors.contains("spec.jwtRules[4].jwksUri is `https://${HOST}/keys`, a placeholder"),
            "{errors}"
        );
        assert!(
            errors.contains("spec.jwtRules[4].jwksUrl is not a field of Istio's JWTRule"),
            "{errors}"
        );
        assert_eq!(translation.errors.len(), 5, "{errors}");
        // Not placeholders: real issuers, header names, claims.
        assert!(!placeholder(
            "https://kubernetes.default.svc.cluster.local",
            true
        ));
        assert!(!placeholder(
            "https://login.microsoftonline.com/TENANT/v2.0",
            true
        ));
        assert!(!placeholder("X_USER_ID", false));
    }

    #[test]
    fn nothing_to_translate_is_an_error() {
        let translation =
            run("kind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: ALLOW}\n");
        assert_eq!(
            translation.errors,
            ["no RequestAuthentication jwtRules found"]
        );
    }
}
