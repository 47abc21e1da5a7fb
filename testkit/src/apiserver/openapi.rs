//! A validator for the subset of OpenAPI v3 that Kubernetes' published
//! schemas use (`$ref`, `allOf`, `type`, `properties`, `required`, `items`,
//! `additionalProperties`, `x-kubernetes-group-version-kind`), strict about
//! unknown fields the way `fieldValidation=Strict` is: an object schema that
//! lists `properties` and no `additionalProperties` admits no other key.
//! `null` counts as absent, as Go's decoder has it (client-go itself sends
//! `"creationTimestamp": null`).

use std::path::Path;

use serde_json::{Map, Value};

/// The `components.schemas` of one OpenAPI document.
#[derive(Debug, Clone)]
pub struct Schemas {
    schemas: Map<String, Value>,
}

/// Schema names of the two reviews.
pub const SAR_SCHEMA: &str = "io.k8s.api.authorization.v1.SubjectAccessReview";
pub const TOKEN_REVIEW_SCHEMA: &str = "io.k8s.api.authentication.v1.TokenReview";

impl Schemas {
    /// Reads an OpenAPI v3 JSON document.
    pub fn load(path: &Path) -> Result<Schemas, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        Schemas::from_document(&document)
            .ok_or_else(|| format!("{} has no components.schemas", path.display()))
    }

    pub fn from_document(document: &Value) -> Option<Schemas> {
        let schemas = document
            .pointer("/components/schemas")?
            .as_object()?
            .clone();
        Some(Schemas { schemas })
    }

    /// Whether the document defines `name`.
    pub fn has(&self, name: &str) -> bool {
        self.schemas.contains_key(name)
    }

    /// Every violation of schema `name` by `value`, each with its field path.
    pub fn validate(&self, name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(schema) = self.schemas.get(name) else {
            return vec![format!("no schema named {name}")];
        };
        self.check_group_version_kind(schema, value, &mut errors);
        self.check(schema, value, "", &mut errors);
        errors
    }

    /// `apiVersion` and `kind`, when given, must be what the schema is of.
    fn check_group_version_kind(&self, schema: &Value, value: &Value, errors: &mut Vec<String>) {
        let Some(gvks) = schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
        else {
            return;
        };
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        let kind = value.get("kind").and_then(Value::as_str);
        let matches = gvks.iter().any(|gvk| {
            let field = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or_default();
            let expected_version = match field("group") {
                "" => field("version").to_string(),
                group => format!("{group}/{}", field("version")),
            };
            api_version.is_none_or(|v| v == expected_version)
                && kind.is_none_or(|k| k == field("kind"))
        });
        if !matches {
            errors.push(format!(
                "apiVersion {api_version:?} / kind {kind:?} is not one of {}",
                Value::Array(gvks.clone())
            ));
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        // A few hops at most; the bound guards against a reference loop.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let name = reference.trim_start_matches("#/components/schemas/");
            match self.schemas.get(name) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if schema.get("$ref").is_some() {
            errors.push(format!("{}: unresolved {}", here(path), schema["$ref"]));
            return;
        }
        if value.is_null() {
            return;
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(part, value, path, errors);
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!("{}: {value} is not one of {allowed:?}", here(path)));
            }
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        let type_ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => true,
        };
        if !type_ok {
            errors.push(format!("{}: expected {ty}, got {value}", here(path)));
            return;
        }
        if let Some(items) = value.as_array() {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{path}[{index}]"), errors);
                }
            }
        }
        if let Some(object) = value.as_object() {
            self.check_object(schema, object, path, errors);
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        object: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if object.get(required).is_none_or(Value::is_null) {
                errors.push(format!(
                    "{}: missing required field {required:?}",
                    here(path)
                ));
            }
        }
        for (key, child) in object {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                self.check(child_schema, child, &child_path, errors);
            } else if let Some(additional) = additional {
                if additional.is_object() {
                    self.check(additional, child, &child_path, errors);
                } else if additional == &Value::Bool(false) {
                    errors.push(format!("{child_path}: unknown field"));
                }
            } else if properties.is_some() {
                errors.push(format!("{child_path}: unknown field"));
            }
        }
    }
}

fn here(path: &str) -> &str {
    if path.is_empty() {
        "(root)"
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> Schemas {
        Schemas::from_document(&json!({"components": {"schemas": {
            "T": {"type": "object", "required": ["spec"],
                  "x-kubernetes-group-version-kind": [{"group": "g.io", "kind": "T", "version": "v1"}],
                  "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                 "spec": {"allOf": [{"$ref": "#/components/schemas/S"}]}}},
            "S": {"type": "object", "properties": {
                "names": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                "free": {"type": "object"},
                "n": {"type": "integer"}}}
        }}}))
        .unwrap()
    }

    #[test]
    fn types_required_fields_and_unknown_fields_are_checked() {
        let s = schemas();
        let good = json!({"apiVersion": "g.io/v1", "kind": "T",
            "spec": {"names": ["a"], "extra": {"k": ["v"]}, "free": {"any": 1}, "n": 3}});
        assert_eq!(s.validate("T", &good), Vec::<String>::new());
        let bad = json!({"apiVersion": "g.io/v2", "kind": "T",
            "spec": {"names": [1], "extra": {"k": "v"}, "n": 1.5, "odd": true}});
        let errors = s.validate("T", &bad);
        assert_eq!(errors.len(), 5, "{errors:?}");
        for needle in [
            "apiVersion",
            "spec.names[0]",
            "spec.extra.k",
            "spec.n",
            "spec.odd",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{needle}: {errors:?}"
            );
        }
        assert_eq!(s.validate("T", &json!({"spec": null})).len(), 1);
        assert_eq!(
            s.validate("T", &json!({"spec": {"names": null}})),
            Vec::<String>::new()
        );
    }
}
