//! `kfauth from-istio FILE...`: RequestAuthentication manifests (and a
//! require-jwt AuthorizationPolicy) to the equivalent pluginConfig.
//!
//! `jwtRules` carry over as they are: kfauth's fields are Istio's. A DENY policy
//! for requests without a principal (`notRequestPrincipals: ["*"]`) becomes
//! `requireJwt: true`, its `notPaths` become `skipPaths`. Everything else is
//! reported as not translated.

use serde_json::{json, Map, Value};

use super::manifests::{documents, kind, name};

/// The Istio JwtRule fields kfauth reads.
const JWT_RULE_FIELDS: [&str; 11] = [
    "issuer",
    "audiences",
    "jwksUri",
    "jwks",
    "fromHeaders",
    "fromParams",
    "fromCookies",
    "forwardOriginalToken",
    "outputPayloadToHeader",
    "outputClaimToHeaders",
    "timeout",
];

#[derive(Debug, Default)]
pub struct Translation {
    pub plugin_config: Value,
    /// What could not be carried over, one line each.
    pub notes: Vec<String>,
}

/// An Istio path pattern (exact, `prefix*`, `*suffix`, `*`) as a regex.
fn path_regex(pattern: &str) -> String {
    if pattern == "*" {
        return ".*".into();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return format!("^{}", regex_lite::escape(prefix.trim_end_matches('*')));
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return format!("{}$", regex_lite::escape(suffix));
    }
    format!("^{}$", regex_lite::escape(pattern))
}

fn is_require_jwt(spec: &Value) -> Option<Vec<String>> {
    if spec.get("action").and_then(Value::as_str) != Some("DENY") {
        return None;
    }
    let rules = spec.get("rules")?.as_array()?;
    let [rule] = rules.as_slice() else {
        return None;
    };
    let sources = rule.get("from")?.as_array()?;
    let requires_principal = sources.iter().any(|source| {
        source
            .pointer("/source/notRequestPrincipals")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|p| p == "*"))
    });
    if !requires_principal || rule.get("when").is_some() {
        return None;
    }
    let mut skips = Vec::new();
    for target in rule
        .get("to")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let operation = target.get("operation")?;
        let keys: Vec<&String> = operation.as_object()?.keys().collect();
        if keys.iter().any(|key| key.as_str() != "notPaths") {
            return None;
        }
        for path in operation.get("notPaths")?.as_array()? {
            let regex = path_regex(path.as_str()?);
            if !skips.contains(&regex) {
                skips.push(regex);
            }
        }
    }
    Some(skips)
}

/// Translates the manifests in `texts` (file name, content).
pub fn translate(texts: &[(String, String)]) -> Result<Translation, String> {
    let mut translation = Translation::default();
    let mut rules: Vec<Value> = Vec::new();
    let mut require_jwt = false;
    let mut skip_paths: Vec<String> = Vec::new();
    for (file, text) in texts {
        for doc in documents(text).map_err(|problem| format!("{file}: {problem}"))? {
            let label = format!("{} {}", kind(&doc).unwrap_or("document"), name(&doc));
            let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
            match kind(&doc) {
                Some("RequestAuthentication") => {
                    if spec.get("selector").is_none() && spec.get("targetRef").is_none() {
                        translation.notes.push(format!(
                            "{label}: no selector, so it applied to every workload of its namespace; kfauth applies where its WasmPlugin does"
                        ));
                    }
                    for rule in spec.get("jwtRules").and_then(Value::as_array).into_iter().flatten() {
                        let mut kept = Map::new();
                        for (field, value) in rule.as_object().into_iter().flatten() {
                            if JWT_RULE_FIELDS.contains(&field.as_str()) {
                                kept.insert(field.clone(), value.clone());
                            } else {
                                translation
                                    .notes
                                    .push(format!("{label}: jwtRules field `{field}` is not translated"));
                            }
                        }
                        let issuer = kept.get("issuer").cloned();
                        if rules.iter().any(|existing| existing.get("issuer") == issuer.as_ref()) {
                            translation.notes.push(format!(
                                "{label}: a second rule for issuer {} is dropped (kfauth chooses the rule by issuer)",
                                issuer.unwrap_or(Value::Null)
                            ));
                            continue;
                        }
                        rules.push(Value::Object(kept));
                    }
                }
                Some("AuthorizationPolicy") => match is_require_jwt(&spec) {
                    Some(skips) => {
                        require_jwt = true;
                        for skip in skips {
                            if !skip_paths.contains(&skip) {
                                skip_paths.push(skip);
                            }
                        }
                    }
                    None => translation.notes.push(format!(
                        "{label}: not a plain require-JWT DENY policy; keep it in Istio (or express it as kfauth `authorization` rules)"
                    )),
                },
                _ => translation
                    .notes
                    .push(format!("{file}: {label} is neither a RequestAuthentication nor an AuthorizationPolicy")),
            }
        }
    }
    if rules.is_empty() {
        return Err("no RequestAuthentication jwtRules found".into());
    }
    let mut config = json!({ "jwtRules": rules });
    if let Some(object) = config.as_object_mut() {
        if require_jwt {
            object.insert("requireJwt".into(), Value::Bool(true));
        }
        if !skip_paths.is_empty() {
            object.insert("skipPaths".into(), json!(skip_paths));
        }
    }
    translation.plugin_config = config;
    Ok(translation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_path_patterns_become_regexes() {
        assert_eq!(path_regex("/dex/*"), "^/dex/");
        assert_eq!(path_regex("/dex/**"), "^/dex/");
        assert_eq!(path_regex("*.css"), "\\.css$");
        assert_eq!(path_regex("/healthz"), "^/healthz$");
        assert_eq!(path_regex("*"), ".*");
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
        assert_eq!(translation.notes.len(), 1, "{:?}", translation.notes);
        assert!(translation.notes[0].contains("oauth2-proxy"));
    }
}
