//! What Istio makes of its security objects on a gateway, as Envoy filter
//! configurations: `RequestAuthentication.jwtRules` become the
//! `envoy.filters.http.jwt_authn` filter, an `AuthorizationPolicy` becomes a
//! policy of the `envoy.filters.http.rbac` filter. With them a test runs
//! Istio's native authentication in the same Envoy as kfauth (the migration
//! state of a running Kubeflow) or instead of it (a rollback).
//!
//! The translation follows istio/istio at 86c9f01fd735 (main, August 2026;
//! the shape has been the same since #47407, Istio 1.21, which replaced the
//! `istio_authn` filter with upstream `jwt_authn` metadata):
//!
//! - `pilot/pkg/security/authn/policy_applier.go`, `newPolicyApplier` (the
//!   rules of every RequestAuthentication of the workload, sorted by issuer)
//!   and `convertToEnvoyJwtConfig` (one provider `origins-N` per rule,
//!   `payload_in_metadata: payload`, the requirement: a token, if present,
//!   must be valid; a missing one is allowed);
//! - `pilot/pkg/networking/plugin/authn/authentication.go` (gateways clear
//!   the route cache);
//! - `pilot/pkg/xds/filters/filters.go` (`EnvoyJwtFilterPayload = "payload"`);
//! - `pilot/pkg/security/authz/model/model.go` (`Generate`: one permission per
//!   `to`, one principal per `from`, each an AND of its fields; a `notX` field
//!   is NOT(OR of its values)), `model/generator.go`
//!   (`requestPrincipalGenerator`: a request principal `ISS/SUB` is the
//!   jwt_authn metadata `payload.iss` AND `payload.sub`, `*` is `.+` for
//!   both) and `pilot/pkg/security/authz/matcher/string.go`
//!   (`StringMatcherWithPrefix`: `*` is `.+`, `*x` a suffix, `x*` a prefix).
//!
//! Only what Kubeflow's objects use is translated (`jwks`/`jwksUri`, not
//! OpenID discovery, which istiod does itself; `paths`/`notPaths` and
//! `requestPrincipals`/`notRequestPrincipals`); anything else is an error,
//! never silently dropped.

use serde_json::{json, Map, Value};

use crate::bootstrap::istio_cluster_name;

/// Envoy's JWT filter, the one Istio configures for RequestAuthentication.
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";
/// Envoy's RBAC filter, the one Istio configures for AuthorizationPolicy.
pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// Where jwt_authn puts a verified payload in the dynamic metadata (Istio's
/// `EnvoyJwtFilterPayload`); the RBAC principal matchers read it there.
pub const PAYLOAD_METADATA_KEY: &str = "payload";

/// Fields of a `jwtRules` item this translation knows.
const JWT_RULE_FIELDS: &[&str] = &[
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

/// The `typed_config` of the `jwt_authn` filter Istio generates on a gateway
/// for `rules` (the `jwtRules` of every RequestAuthentication selecting it).
/// A `jwksUri` is fetched by Envoy over the cluster Istio names for its host
/// (`outbound|PORT||HOST`, port 80/443 by scheme); an inline `jwks` becomes
/// `local_jwks`.
pub fn jwt_authn_config(rules: &[Value]) -> Result<Value, String> {
    if rules.is_empty() {
        return Err("no jwtRules: Istio adds no jwt_authn filter".into());
    }
    let mut rules: Vec<&Value> = rules.iter().collect();
    rules.sort_by_key(|rule| rule["issuer"].as_str().unwrap_or_default().to_string());
    let mut providers = Map::new();
    let mut each_valid_or_missing = Vec::new();
    let mut any_provider = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let name = format!("origins-{index}");
        providers.insert(name.clone(), jwt_provider(rule)?);
        each_valid_or_missing.push(json!({"requires_any": {"requirements": [
            {"provider_name": name},
            {"allow_missing": {}},
        ]}}));
        any_provider.push(json!({"provider_name": name}));
    }
    // One provider: {provider OR allow_missing}. More: any provider, OR every
    // provider's {provider OR allow_missing} (so that providers sharing a
    // token location still pass).
    let requires = if each_valid_or_missing.len() == 1 {
        each_valid_or_missing.remove(0)
    } else {
        any_provider.push(json!({"requires_all": {"requirements": each_valid_or_missing}}));
        json!({"requires_any": {"requirements": any_provider}})
    };
    Ok(json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": providers,
        "rules": [{"match": {"prefix": "/"}, "requires": requires}],
        "bypass_cors_preflight": true,
    }))
}

/// One `JwtProvider` from one `jwtRules` item.
fn jwt_provider(rule: &Value) -> Result<Value, String> {
    let fields = rule.as_object().ok_or("a jwtRules item is not an object")?;
    if let Some(unknown) = fields
        .keys()
        .find(|key| !JWT_RULE_FIELDS.contains(&key.as_str()))
    {
        return Err(format!("jwtRules[].{unknown} is not translated"));
    }
    let issuer = rule["issuer"].as_str().ok_or("jwtRules[].issuer missing")?;
    let timeout = rule["timeout"].as_str().unwrap_or("5s");
    let keys = match (rule["jwksUri"].as_str(), rule["jwks"].as_str()) {
        (Some(uri), None) => json!({"remote_jwks": {
            "http_uri": {"uri": uri, "cluster": jwks_cluster(uri)?, "timeout": timeout},
            "cache_duration": "300s",
        }}),
        (None, Some(jwks)) => json!({"local_jwks": {"inline_string": jwks}}),
        _ => {
            return Err(format!(
                "rule {issuer}: exactly one of jwksUri and jwks (istiod resolves discovery itself)"
            ))
        }
    };
    let list = |field: &str| rule[field].as_array().cloned().unwrap_or_default();
    let mut provider = json!({
        "issuer": issuer,
        "forward": rule["forwardOriginalToken"].as_bool().unwrap_or(false),
        "payload_in_metadata": PAYLOAD_METADATA_KEY,
        "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
        "clear_route_cache": true,
    });
    crate::plugin_config::merge(&mut provider, keys);
    let audiences = list("audiences");
    if !audiences.is_empty() {
        provider["audiences"] = Value::Array(audiences);
    }
    if let Some(header) = rule["outputPayloadToHeader"].as_str() {
        provider["forward_payload_header"] = json!(header);
    }
    let claims: Vec<Value> = list("outputClaimToHeaders")
        .iter()
        .map(|pair| json!({"header_name": pair["header"], "claim_name": pair["claim"]}))
        .collect();
    if !claims.is_empty() {
        provider["claim_to_headers"] = Value::Array(claims);
    }
    // Without from* fields Istio leaves the lists empty, and Envoy uses its
    // defaults: `Authorization: Bearer` and the `access_token` parameter.
    let headers: Vec<Value> = list("fromHeaders")
        .iter()
        .map(|header| {
            let mut out = json!({"name": header["name"]});
            if let Some(prefix) = header["prefix"].as_str() {
                out["value_prefix"] = json!(prefix);
            }
            out
        })
        .collect();
    if !headers.is_empty() {
        provider["from_headers"] = Value::Array(headers);
    }
    for (field, envoy_field) in [
        ("fromParams", "from_params"),
        ("fromCookies", "from_cookies"),
    ] {
        let values = list(field);
        if !values.is_empty() {
            provider[envoy_field] = Value::Array(values);
        }
    }
    Ok(provider)
}

/// `outbound|PORT||HOST` for a `jwksUri` (Istio's `ParseJwksURI`: port 80
/// for http, 443 for https unless the URI names one).
pub fn jwks_cluster(uri: &str) -> Result<String, String> {
    let (default_port, rest) = if let Some(rest) = uri.strip_prefix("http://") {
        (80, rest)
    } else if let Some(rest) = uri.strip_prefix("https://") {
        (443, rest)
    } else {
        return Err(format!("jwksUri {uri}: not http(s)"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((host, port)) => port
            .parse()
            .map(|port| istio_cluster_name(host, port))
            .map_err(|_| format!("jwksUri {uri}: bad port")),
        None => Ok(istio_cluster_name(authority, default_port)),
    }
}

/// The `typed_config` of the RBAC filter for one AuthorizationPolicy
/// (`metadata` and `spec` as in the manifest), as Istio generates it:
/// one policy `ns[NAMESPACE]-policy[NAME]-rule[N]` per rule.
pub fn rbac_config(policy: &Value) -> Result<Value, String> {
    let namespace = policy["metadata"]["namespace"]
        .as_str()
        .ok_or("metadata.namespace missing")?;
    let name = policy["metadata"]["name"]
        .as_str()
        .ok_or("metadata.name missing")?;
    let spec = &policy["spec"];
    let action = spec["action"].as_str().unwrap_or("ALLOW");
    if action != "ALLOW" && action != "DENY" {
        return Err(format!("action {action} is not translated"));
    }
    let mut policies = Map::new();
    for (index, rule) in spec["rules"]
        .as_array()
        .ok_or("spec.rules missing")?
        .iter()
        .enumerate()
    {
        if rule.get("when").is_some() {
            return Err("rules[].when is not translated".into());
        }
        let permissions = each_or_one(&rule["to"])
            .iter()
            .map(|to| permission(&to["operation"]))
            .collect::<Result<Vec<_>, _>>()?;
        let principals = each_or_one(&rule["from"])
            .iter()
            .map(|from| principal(&from["source"]))
            .collect::<Result<Vec<_>, _>>()?;
        policies.insert(
            format!("ns[{namespace}]-policy[{name}]-rule[{index}]"),
            json!({"permissions": permissions, "principals": principals}),
        );
    }
    Ok(json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": action, "policies": policies},
    }))
}

/// The items of a `to`/`from` list, or one empty item when there is none
/// (which matches anything).
fn each_or_one(list: &Value) -> Vec<Value> {
    match list.as_array() {
        Some(items) if !items.is_empty() => items.clone(),
        _ => vec![json!({})],
    }
}

/// The fields of `object` other than `known`, as an error.
fn only(object: &Value, known: &[&str], what: &str) -> Result<(), String> {
    match object
        .as_object()
        .and_then(|fields| fields.keys().find(|key| !known.contains(&key.as_str())))
    {
        Some(unknown) => Err(format!("{what}.{unknown} is not translated")),
        None => Ok(()),
    }
}

/// The strings of a list field.
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// One `to.operation`: AND of its fields.
fn permission(operation: &Value) -> Result<Value, String> {
    only(operation, &["paths", "notPaths"], "operation")?;
    let path = |value: &str| -> Result<Value, String> {
        if value.contains("{*}") || value.contains("{**}") {
            return Err(format!("path template {value} is not translated"));
        }
        Ok(json!({"url_path": {"path": string_matcher(value)}}))
    };
    let mut and = Vec::new();
    let paths = strings(&operation["paths"]);
    if !paths.is_empty() {
        let or = paths
            .iter()
            .map(|p| path(p))
            .collect::<Result<Vec<_>, _>>()?;
        and.push(json!({"or_rules": {"rules": or}}));
    }
    let not_paths = strings(&operation["notPaths"]);
    if !not_paths.is_empty() {
        let or = not_paths
            .iter()
            .map(|p| path(p))
            .collect::<Result<Vec<_>, _>>()?;
        and.push(json!({"not_rule": {"or_rules": {"rules": or}}}));
    }
    if and.is_empty() {
        and.push(json!({"any": true}));
    }
    Ok(json!({"and_rules": {"rules": and}}))
}

/// One `from.source`: AND of its fields.
fn principal(source: &Value) -> Result<Value, String> {
    only(
        source,
        &["requestPrincipals", "notRequestPrincipals"],
        "source",
    )?;
    let mut and = Vec::new();
    let principals = strings(&source["requestPrincipals"]);
    if !principals.is_empty() {
        and.push(request_principals(&principals));
    }
    let not_principals = strings(&source["notRequestPrincipals"]);
    if !not_principals.is_empty() {
        and.push(json!({"not_id": request_principals(&not_principals)}));
    }
    if and.is_empty() {
        and.push(json!({"any": true}));
    }
    Ok(json!({"and_ids": {"ids": and}}))
}

/// Request principals `ISS/SUB` (with Istio's `*` forms) as jwt_authn
/// metadata matchers: each one `payload.iss` AND `payload.sub`; several, OR.
fn request_principals(values: &[&str]) -> Value {
    let any = json!({"safe_regex": {"regex": ".+"}});
    let mut or: Vec<Value> = values
        .iter()
        .map(|value| {
            let split = value.rfind('/').map(|at| (&value[..at], &value[at + 1..]));
            let (iss, sub) = match (*value, split) {
                ("*", _) => (any.clone(), any.clone()),
                (v, Some((iss, sub))) if v.starts_with('*') => (
                    if iss == "*" {
                        any.clone()
                    } else {
                        json!({"suffix": &iss[1..]})
                    },
                    json!({"exact": sub}),
                ),
                (v, None) if v.starts_with('*') => (any.clone(), json!({"suffix": &v[1..]})),
                (v, Some((iss, sub))) if v.ends_with('*') => (
                    json!({"exact": iss}),
                    if sub == "*" {
                        any.clone()
                    } else {
                        json!({"prefix": &sub[..sub.len() - 1]})
                    },
                ),
                (v, None) if v.ends_with('*') => {
                    (json!({"prefix": &v[..v.len() - 1]}), any.clone())
                }
                (_, Some((iss, sub))) => (json!({"exact": iss}), json!({"exact": sub})),
                (v, None) => (json!({"exact": v}), json!({"exact": ""})),
            };
            json!({"and_ids": {"ids": [
                {"metadata": jwt_claim_matcher("iss", iss)},
                {"metadata": jwt_claim_matcher("sub", sub)},
            ]}})
        })
        .collect();
    if or.len() == 1 {
        or.remove(0)
    } else {
        json!({"or_ids": {"ids": or}})
    }
}

/// A metadata matcher on claim `claim` of the payload jwt_authn verified.
fn jwt_claim_matcher(claim: &str, string_match: Value) -> Value {
    json!({
        "filter": JWT_AUTHN_FILTER,
        "path": [{"key": PAYLOAD_METADATA_KEY}, {"key": claim}],
        "value": {"string_match": string_match},
    })
}

/// Istio's `StringMatcher` for an AuthorizationPolicy value: `*` is any
/// non-empty value, `*x` a suffix, `x*` a prefix, else exact.
fn string_matcher(value: &str) -> Value {
    if value == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(suffix) = value.strip_prefix('*') {
        json!({"suffix": suffix})
    } else if let Some(prefix) = value.strip_suffix('*') {
        json!({"prefix": prefix})
    } else {
        json!({"exact": value})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_is_its_provider_or_no_token() {
        let config = jwt_authn_config(&[json!({
            "issuer": "http://dex.auth.svc.cluster.local:5556/dex",
            "audiences": ["kubeflow-oidc-authservice"],
            "jwksUri": "http://dex.auth.svc.cluster.local:5556/dex/keys",
            "forwardOriginalToken": true,
            "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}],
        })])
        .unwrap();
        let provider = &config["providers"]["origins-0"];
        assert_eq!(
            provider["remote_jwks"]["http_uri"]["cluster"],
            "outbound|5556||dex.auth.svc.cluster.local"
        );
        assert_eq!(provider["remote_jwks"]["http_uri"]["timeout"], "5s");
        assert_eq!(provider["forward"], true);
        assert_eq!(provider["payload_in_metadata"], "payload");
        assert_eq!(provider["audiences"], json!(["kubeflow-oidc-authservice"]));
        assert_eq!(
            provider["claim_to_headers"],
            json!([{"header_name": "kubeflow-userid", "claim_name": "email"}])
        );
        assert!(provider.get("from_headers").is_none());
        assert_eq!(
            config["rules"][0]["requires"],
            json!({"requires_any": {"requirements": [
                {"provider_name": "origins-0"}, {"allow_missing": {}}
            ]}})
        );
    }

    #[test]
    fn several_rules_are_sorted_by_issuer_and_each_may_be_missing() {
        let config = jwt_authn_config(&[
            json!({"issuer": "https://b", "jwks": "{\"keys\":[]}",
                   "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}]}),
            json!({"issuer": "http://a", "jwksUri": "https://keys.example/jwks"}),
        ])
        .unwrap();
        assert_eq!(config["providers"]["origins-0"]["issuer"], "http://a");
        assert_eq!(
            config["providers"]["origins-0"]["remote_jwks"]["http_uri"]["cluster"],
            "outbound|443||keys.example"
        );
        let b = &config["providers"]["origins-1"];
        assert_eq!(b["local_jwks"]["inline_string"], "{\"keys\":[]}");
        assert_eq!(
            b["from_headers"],
            json!([{"name": "Authorization", "value_prefix": "Bearer "}])
        );
        let requirements = &config["rules"][0]["requires"]["requires_any"]["requirements"];
        assert_eq!(requirements[0], json!({"provider_name": "origins-0"}));
        assert_eq!(requirements[1], json!({"provider_name": "origins-1"}));
        assert_eq!(
            requirements[2]["requires_all"]["requirements"][1],
            json!({"requires_any": {"requirements": [
                {"provider_name": "origins-1"}, {"allow_missing": {}}
            ]}})
        );
        assert!(jwt_authn_config(&[json!({"issuer": "x"})]).is_err());
        assert!(jwt_authn_config(&[json!({"issuer": "x", "jwks": "{}", "typo": 1})]).is_err());
    }

    #[test]
    fn require_jwt_denies_requests_without_a_principal_outside_the_paths() {
        let policy = json!({
            "metadata": {"name": "require-jwt", "namespace": "istio-system"},
            "spec": {"action": "DENY", "rules": [{
                "from": [{"source": {"notRequestPrincipals": ["*"]}}],
                "to": [{"operation": {"notPaths": ["/dex/*", "/oauth2/*"]}}],
            }]},
        });
        let config = rbac_config(&policy).unwrap();
        assert_eq!(config["rules"]["action"], "DENY");
        let rule = &config["rules"]["policies"]["ns[istio-system]-policy[require-jwt]-rule[0]"];
        assert_eq!(
            rule["permissions"],
            json!([{"and_rules": {"rules": [{"not_rule": {"or_rules": {"rules": [
                {"url_path": {"path": {"prefix": "/dex/"}}},
                {"url_path": {"path": {"prefix": "/oauth2/"}}},
            ]}}}]}}])
        );
        let any = json!({"string_match": {"safe_regex": {"regex": ".+"}}});
        assert_eq!(
            rule["principals"],
            json!([{"and_ids": {"ids": [{"not_id": {"and_ids": {"ids": [
                {"metadata": {"filter": JWT_AUTHN_FILTER,
                              "path": [{"key": "payload"}, {"key": "iss"}], "value": any}},
                {"metadata": {"filter": JWT_AUTHN_FILTER,
                              "path": [{"key": "payload"}, {"key": "sub"}], "value": any}},
            ]}}}]}}])
        );
    }

    #[test]
    fn request_principal_forms_follow_istio() {
        let matchers = |value: &str| {
            let ids = request_principals(&[value])["and_ids"]["ids"].clone();
            (
                ids[0]["metadata"]["value"]["string_match"].clone(),
                ids[1]["metadata"]["value"]["string_match"].clone(),
            )
        };
        assert_eq!(
            matchers("https://iss/alice"),
            (json!({"exact": "https://iss"}), json!({"exact": "alice"}))
        );
        assert_eq!(
            matchers("https://iss/*"),
            (
                json!({"exact": "https://iss"}),
                json!({"safe_regex": {"regex": ".+"}})
            )
        );
        assert_eq!(
            matchers("*/alice"),
            (
                json!({"safe_regex": {"regex": ".+"}}),
                json!({"exact": "alice"})
            )
        );
        assert!(
            rbac_config(&json!({"metadata": {"name": "n", "namespace": "s"},
            "spec": {"action": "CUSTOM", "rules": []}}))
            .is_err()
        );
    }
}
