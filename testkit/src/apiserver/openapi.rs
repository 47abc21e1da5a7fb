//! A validator for the subset of OpenAPI v3 that Kubernetes' published
//! schemas use (`$ref`, `allOf`, `type`, `properties`, `required`, `items`,
//! `additionalProperties`, `x-kubernetes-group-version-kind`), strict about
//! unknown fields the way `fieldValidation=Strict` is: an object schema that
//! lists `properties` and no `additionalProperties` admits no other key.
//! `null` counts as absent, as Go's decoder has it (client-go itself sends
//! `"creationTimestamp": null`).
//!
//! It also reads the `openAPIV3Schema` of a CustomResourceDefinition
//! ([`Schemas::from_crd`]) and checks the value validations CRDs use:
//! `enum`, `pattern`, `minLength`/`maxLength`, `minItems`/`maxItems`,
//! `minProperties`/`maxProperties`, `minimum`/`maximum`, `format: int32`,
//! `oneOf`/`anyOf`/`not` (value checks only, as in a structural schema),
//! `x-kubernetes-preserve-unknown-fields` and `x-kubernetes-int-or-string`.
//! CEL rules (`x-kubernetes-validations`) are not evaluated.

use std::path::Path;

use regex::Regex;
use serde_json::{json, Map, Value};

/// The `components.schemas` of one OpenAPI document.
#[derive(Debug, Clone)]
pub struct Schemas {
    schemas: Map<String, Value>,
}

/// The schema name [`Schemas::from_crd`] gives `metadata`.
pub const OBJECT_META_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

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

    /// The schemas of a CustomResourceDefinition, one per version that has an
    /// `openAPIV3Schema`, each named [`Schemas::crd_schema_name`]. As the API
    /// server does, the root also admits `apiVersion`, `kind` (which must be
    /// the CRD's) and `metadata` (an ObjectMeta).
    pub fn from_crd(crd: &Value) -> Result<Schemas, String> {
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err("not a CustomResourceDefinition".into());
        }
        let field = |pointer: &str| {
            crd.pointer(pointer)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("CustomResourceDefinition without {pointer}"))
        };
        let group = field("/spec/group")?;
        let kind = field("/spec/names/kind")?;
        let mut schemas = Map::new();
        schemas.insert(OBJECT_META_SCHEMA.into(), object_meta_schema());
        for version in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(Value::Object(root))) = (
                version.get("name").and_then(Value::as_str),
                version.pointer("/schema/openAPIV3Schema"),
            ) else {
                continue;
            };
            let mut root = root.clone();
            let properties = root
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or("openAPIV3Schema.properties is not an object")?;
            properties.insert("apiVersion".into(), json!({"type": "string"}));
            properties.insert("kind".into(), json!({"type": "string"}));
            properties.insert(
                "metadata".into(),
                json!({"$ref": format!("#/components/schemas/{OBJECT_META_SCHEMA}")}),
            );
            root.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "version": name, "kind": kind}]),
            );
            schemas.insert(
                Schemas::crd_schema_name(&format!("{group}/{name}"), kind),
                Value::Object(root),
            );
        }
        Ok(Schemas { schemas })
    }

    /// The name [`Schemas::from_crd`] gives the schema of `apiVersion`
    /// (`group/version`) and `kind`: `group/version/Kind`.
    pub fn crd_schema_name(api_version: &str, kind: &str) -> String {
        format!("{api_version}/{kind}")
    }

    /// Adds the schemas of `other` (a later name replaces an earlier one).
    pub fn extend(&mut self, other: Schemas) {
        self.schemas.extend(other.schemas);
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
        self.check(schema, value, "", true, &mut errors);
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

    /// Checks `value` against `schema`. `strict`: unknown fields are errors;
    /// off inside `oneOf`/`anyOf`/`not`, which constrain values and do not
    /// declare fields (as in a CRD's structural schema).
    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        strict: bool,
        errors: &mut Vec<String>,
    ) {
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
            self.check(part, value, path, strict, errors);
        }
        self.check_combinators(schema, value, path, errors);
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!("{}: {value} is not one of {allowed:?}", here(path)));
            }
        }
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            if !(value.is_i64() || value.is_u64() || value.is_string()) {
                errors.push(format!(
                    "{}: expected an integer or a string, got {value}",
                    here(path)
                ));
            }
            return;
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
        check_bounds(schema, value, path, errors);
        if let Some(items) = value.as_array() {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    self.check(
                        item_schema,
                        item,
                        &format!("{path}[{index}]"),
                        strict,
                        errors,
                    );
                }
            }
        }
        if let Some(object) = value.as_object() {
            self.check_object(schema, object, path, strict, errors);
        }
    }

    /// `oneOf` (exactly one branch holds), `anyOf` (at least one), `not`
    /// (the branch must not hold).
    fn check_combinators(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let holds = |branch: &Value| {
            let mut scratch = Vec::new();
            self.check(branch, value, path, false, &mut scratch);
            scratch.is_empty()
        };
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            let holding = branches.iter().filter(|branch| holds(branch)).count();
            if holding != 1 {
                errors.push(format!(
                    "{}: {holding} of the oneOf branches hold, expected exactly one: {}",
                    here(path),
                    Value::Array(branches.clone())
                ));
            }
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            if !branches.iter().any(holds) {
                errors.push(format!(
                    "{}: none of the anyOf branches holds: {}",
                    here(path),
                    Value::Array(branches.clone())
                ));
            }
        }
        if let Some(branch) = schema.get("not") {
            if holds(branch) {
                errors.push(format!("{}: must not match {branch}", here(path)));
            }
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        object: &Map<String, Value>,
        path: &str,
        strict: bool,
        errors: &mut Vec<String>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let preserve_unknown =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
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
                self.check(child_schema, child, &child_path, strict, errors);
            } else if let Some(additional) = additional {
                if additional.is_object() {
                    self.check(additional, child, &child_path, strict, errors);
                } else if additional == &Value::Bool(false) && strict && !preserve_unknown {
                    errors.push(format!("{child_path}: unknown field"));
                }
            } else if properties.is_some() && strict && !preserve_unknown {
                errors.push(format!("{child_path}: unknown field"));
            }
        }
    }
}

/// `pattern`, lengths, item and property counts, numeric bounds, `format: int32`.
fn check_bounds(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let limit = |key: &str| schema.get(key).and_then(Value::as_u64);
    let mut count_check = |what: &str, count: usize, min_key: &str, max_key: &str| {
        let count = count as u64;
        if let Some(min) = limit(min_key).filter(|min| count < *min) {
            errors.push(format!(
                "{}: {what} {count} is under {min_key} {min}",
                here(path)
            ));
        }
        if let Some(max) = limit(max_key).filter(|max| count > *max) {
            errors.push(format!(
                "{}: {what} {count} is over {max_key} {max}",
                here(path)
            ));
        }
    };
    match value {
        Value::String(text) => {
            count_check("length", text.chars().count(), "minLength", "maxLength");
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                match Regex::new(pattern) {
                    Ok(regex) if regex.is_match(text) => {}
                    Ok(_) => errors.push(format!(
                        "{}: {text:?} does not match pattern {pattern:?}",
                        here(path)
                    )),
                    Err(problem) => errors.push(format!(
                        "{}: the schema's pattern {pattern:?} does not compile: {problem}",
                        here(path)
                    )),
                }
            }
        }
        Value::Array(items) => count_check("item count", items.len(), "minItems", "maxItems"),
        Value::Object(object) => count_check(
            "property count",
            object.len(),
            "minProperties",
            "maxProperties",
        ),
        Value::Number(number) => {
            let Some(n) = number.as_f64() else { return };
            let exclusive = |key: &str| schema.get(key) == Some(&Value::Bool(true));
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min || (exclusive("exclusiveMinimum") && n == min) {
                    errors.push(format!(
                        "{}: {number} is under the minimum {min}",
                        here(path)
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max || (exclusive("exclusiveMaximum") && n == max) {
                    errors.push(format!(
                        "{}: {number} is over the maximum {max}",
                        here(path)
                    ));
                }
            }
            if schema.get("format").and_then(Value::as_str) == Some("int32")
                && number.as_i64().is_none_or(|n| i32::try_from(n).is_err())
            {
                errors.push(format!("{}: {number} is not an int32", here(path)));
            }
        }
        _ => {}
    }
}

/// The fields of `metadata` (ObjectMeta) a manifest may set.
fn object_meta_schema() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "type": "object",
        "properties": {
            "name": string, "namespace": string, "generateName": string,
            "uid": string, "resourceVersion": string, "selfLink": string,
            "creationTimestamp": string, "deletionTimestamp": string,
            "generation": {"type": "integer"},
            "deletionGracePeriodSeconds": {"type": "integer"},
            "labels": strings, "annotations": strings,
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "ownerReferences": {"type": "array", "items": {"type": "object"}},
            "managedFields": {"type": "array", "items": {"type": "object"}},
        },
    })
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

    fn crd() -> Schemas {
        Schemas::from_crd(&json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "spec": {"group": "x.io", "names": {"kind": "Thing"}, "versions": [{"name": "v1",
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object",
                    "oneOf": [{"not": {"anyOf": [{"required": ["provider"]}]}},
                              {"required": ["provider"]}],
                    "properties": {
                        "sha": {"type": "string", "pattern": "(^$|^[a-f0-9]{4}$)"},
                        "name": {"type": "string", "minLength": 1, "maxLength": 3},
                        "n": {"type": "integer", "format": "int32", "minimum": 1},
                        "list": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true,
                                 "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "provider": {"type": "object", "properties": {"name": {"type": "string"}}}
                    }}}}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn crd_schemas_check_value_validations() {
        let s = crd();
        let name = Schemas::crd_schema_name("x.io/v1", "Thing");
        let good = json!({"apiVersion": "x.io/v1", "kind": "Thing",
            "metadata": {"name": "a", "namespace": "b", "labels": {"k": "v"}},
            "spec": {"sha": "ab12", "name": "abc", "n": 3, "list": ["x"],
                     "free": {"anything": {"goes": [1]}}, "port": "http",
                     "provider": {"name": "p"}}});
        assert_eq!(s.validate(&name, &good), Vec::<String>::new());
        let bad = json!({"apiVersion": "x.io/v2", "kind": "Thing",
            "metadata": {"name": "a", "nickname": "b"},
            "spec": {"sha": "AB12", "name": "abcd", "n": 4294967296_u64, "list": ["x", "y"],
                     "port": true, "odd": 1}});
        let errors = s.validate(&name, &bad);
        for needle in [
            "apiVersion",
            "metadata.nickname",
            "spec.sha",
            "spec.name",
            "spec.n",
            "spec.list",
            "spec.port",
            "spec.odd",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{needle}: {errors:?}"
            );
        }
        // `port` breaks both its anyOf and x-kubernetes-int-or-string.
        assert_eq!(errors.len(), 9, "{errors:?}");
        // oneOf: a provider, or none; the branches declare no fields.
        let without = json!({"spec": {"name": "a"}});
        assert_eq!(s.validate(&name, &without), Vec::<String>::new());
        let zero = json!({"spec": {"n": 0}});
        assert_eq!(s.validate(&name, &zero).len(), 1);
    }
}
