//! Claims to header values: dotted paths for nested claims, and how each JSON
//! type is written into a header.

use serde_json::{Map, Value};

/// Looks a claim up. A claim whose name contains dots (`https://example.com/groups`)
/// is found by its full name first; otherwise the dots walk nested objects
/// (`realm_access.roles`).
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    // A nested key may itself contain dots (Kubernetes' `kubernetes.io`): try
    // every split, the shortest first.
    path.match_indices('.').find_map(|(index, _)| {
        let head = path.get(..index)?;
        let rest = path.get(index + 1..)?;
        lookup(claims.get(head)?.as_object()?, rest)
    })
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON,
/// arrays joined with `,` (what Kubeflow's `kubeflow-groups` readers expect),
/// objects as compact JSON. `null`, an empty array, and anything that would put a
/// control character into a header give no value.
pub fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => value.to_string(),
        Value::Array(items) => {
            if items.is_empty() {
                return None;
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    // A header value may not carry CR, LF or NUL (RFC 9110 section 5.5).
    (!text.chars().any(|c| c.is_control() && c != '\t')).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn claims() -> Map<String, Value> {
        json!({
            "email": "alice@example.com",
            "groups": ["a", "b", "c"],
            "realm_access": {"roles": ["admin", "viewer"], "level": {"n": 3}},
            "https://example.com/team": "ml",
            "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "runner"}},
            "admin": true,
            "age": 42,
            "mixed": ["x", 1, true],
            "nothing": null,
            "evil": "alice\r\nkubeflow-userid: root",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn rendered(path: &str) -> Option<String> {
        lookup(&claims(), path).and_then(header_value)
    }

    #[test]
    fn renders_each_json_type() {
        assert_eq!(rendered("email").as_deref(), Some("alice@example.com"));
        assert_eq!(rendered("groups").as_deref(), Some("a,b,c"));
        assert_eq!(rendered("admin").as_deref(), Some("true"));
        assert_eq!(rendered("age").as_deref(), Some("42"));
        assert_eq!(rendered("mixed").as_deref(), Some("x,1,true"));
        assert_eq!(
            rendered("realm_access.level").as_deref(),
            Some(r#"{"n":3}"#)
        );
    }

    #[test]
    fn walks_nested_claims_and_prefers_full_names() {
        assert_eq!(
            rendered("realm_access.roles").as_deref(),
            Some("admin,viewer")
        );
        assert_eq!(rendered("realm_access.level.n").as_deref(), Some("3"));
        assert_eq!(rendered("https://example.com/team").as_deref(), Some("ml"));
        assert_eq!(
            rendered("kubernetes.io.namespace").as_deref(),
            Some("team-a")
        );
        assert_eq!(
            rendered("kubernetes.io.serviceaccount.name").as_deref(),
            Some("runner")
        );
    }

    #[test]
    fn missing_null_and_unsafe_values_give_no_header() {
        assert_eq!(rendered("missing"), None);
        assert_eq!(rendered("realm_access.missing"), None);
        assert_eq!(rendered("email.inner"), None);
        assert_eq!(rendered("nothing"), None);
        assert_eq!(rendered("evil"), None);
    }
}
