//! pluginConfig building blocks for the scenarios: the test issuer, a
//! Kubeflow-style rule, and claims that satisfy it.

use serde::Deserialize as _;
use serde_json::{json, Value};

use crate::idp::{standard_claims, Idp};

/// The issuer most scenarios configure.
pub const ISSUER: &str = "https://idp.kfauth.test";
/// The audience most scenarios require.
pub const AUDIENCE: &str = "kubeflow";

/// A rule for `issuer` with audience `kubeflow`, mapping `email` to
/// `kubeflow-userid` and `groups` to `kubeflow-groups`; `jwks_source` is
/// merged in (`{"jwks": ...}` or `{"jwksUri": ...}`).
pub fn kubeflow_rule(issuer: &str, jwks_source: Value) -> Value {
    let mut rule = json!({
        "issuer": issuer,
        "audiences": [AUDIENCE],
        "outputClaimToHeaders": [
            {"header": "kubeflow-userid", "claim": "email"},
            {"header": "kubeflow-groups", "claim": "groups"},
        ],
    });
    merge(&mut rule, jwks_source);
    rule
}

/// [`kubeflow_rule`] with `idp`'s JWKS inline (a JSON string, as in Istio).
pub fn inline_rule(issuer: &str, idp: &Idp) -> Value {
    kubeflow_rule(issuer, json!({"jwks": idp.jwks_json()}))
}

/// [`kubeflow_rule`] fetching keys from `jwks_uri`.
pub fn uri_rule(issuer: &str, jwks_uri: &str) -> Value {
    kubeflow_rule(issuer, json!({"jwksUri": jwks_uri}))
}

/// A second issuer, with its own keys ([`Idp::shared_second`]) and audience.
pub const OTHER_ISSUER: &str = "https://accounts.other.test";
/// The audience [`other_rule`] requires.
pub const OTHER_AUDIENCE: &str = "other-client";

/// A rule for [`OTHER_ISSUER`]: audience [`OTHER_AUDIENCE`], the second
/// identity provider's keys inline, and `output_claim_to_headers`.
pub fn other_rule(output_claim_to_headers: Value) -> Value {
    json!({
        "issuer": OTHER_ISSUER,
        "audiences": [OTHER_AUDIENCE],
        "jwks": Idp::shared_second().jwks_json(),
        "outputClaimToHeaders": output_claim_to_headers,
    })
}

/// `{"jwtRules": rules}` with `extra` top-level fields merged in.
pub fn with_rules(rules: Vec<Value>, extra: Value) -> Value {
    let mut config = json!({"jwtRules": rules});
    merge(&mut config, extra);
    config
}

/// Copies the fields of object `extra` into object `target`.
pub fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// The `jwtRules` of the Istio `RequestAuthentication` named `name` in a
/// (multi-document) YAML manifest, as JSON: what a user pastes into the
/// pluginConfig. `None` if the manifest has no such object.
pub fn request_authentication_rules(manifest: &str, name: &str) -> Option<Vec<Value>> {
    serde_yaml_ng::Deserializer::from_str(manifest)
        .filter_map(|document| Value::deserialize(document).ok())
        .find(|document| {
            document["kind"] == "RequestAuthentication" && document["metadata"]["name"] == name
        })
        .and_then(|document| document["spec"]["jwtRules"].as_array().cloned())
}

/// Valid claims for [`ISSUER`] / [`AUDIENCE`].
pub fn claims(email: &str, groups: &[&str]) -> Value {
    standard_claims(ISSUER, AUDIENCE, email, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_authentication_rules_are_read_from_a_manifest() {
        let manifest = "kind: AuthorizationPolicy\nmetadata: {name: a}\n---\n\
            kind: RequestAuthentication\nmetadata: {name: other}\nspec: {jwtRules: [{issuer: x}]}\n---\n\
            kind: RequestAuthentication\nmetadata: {name: m2m}\nspec:\n  jwtRules:\n  - issuer: https://k\n    forwardOriginalToken: true\n";
        assert_eq!(
            request_authentication_rules(manifest, "m2m"),
            Some(vec![
                json!({"issuer": "https://k", "forwardOriginalToken": true})
            ])
        );
        assert_eq!(request_authentication_rules(manifest, "a"), None);
    }
}
