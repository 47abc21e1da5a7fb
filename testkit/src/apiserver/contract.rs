//! The request bodies of the two review endpoints as kube-apiserver decodes
//! and validates them, built in (no schema file needed): field types (a
//! mistyped field fails decoding: 400), validation (422), unknown fields
//! (the server's default `fieldValidation=Warn` answers them with a
//! `Warning` header), and `apiVersion`/`kind` (the server defaults them from
//! the endpoint when absent, rejects them when wrong).

use serde_json::{Map, Value};

use super::status::ApiError;

pub const SAR_API_VERSION: &str = "authorization.k8s.io/v1";
pub const SAR_KIND: &str = "SubjectAccessReview";
pub const TOKEN_REVIEW_API_VERSION: &str = "authentication.k8s.io/v1";
pub const TOKEN_REVIEW_KIND: &str = "TokenReview";

/// How bad a problem is, from the server's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The body does not decode (wrong JSON type, wrong kind): 400.
    Malformed,
    /// It decodes but fails validation: 422.
    Invalid,
    /// A field the type does not have: a `Warning` header, then ignored.
    UnknownField,
    /// `apiVersion` or `kind` missing: the server defaults them, kfauth's
    /// contract still sends them.
    MissingTypeMeta,
}

/// One problem of a request body, with the field path in its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
}

/// The JSON type of a field, as the Go struct has it.
enum Ty {
    Str,
    StrList,
    /// `map[string][]string` (`extra`).
    StrListMap,
    /// Any object (metadata, selectors, status: not checked further).
    AnyObject,
    Object(&'static [(&'static str, Ty)]),
}

const RESOURCE_ATTRIBUTES: &[(&str, Ty)] = &[
    ("namespace", Ty::Str),
    ("verb", Ty::Str),
    ("group", Ty::Str),
    ("version", Ty::Str),
    ("resource", Ty::Str),
    ("subresource", Ty::Str),
    ("name", Ty::Str),
    ("fieldSelector", Ty::AnyObject),
    ("labelSelector", Ty::AnyObject),
];

const NON_RESOURCE_ATTRIBUTES: &[(&str, Ty)] = &[("path", Ty::Str), ("verb", Ty::Str)];

const SAR_SPEC: &[(&str, Ty)] = &[
    ("resourceAttributes", Ty::Object(RESOURCE_ATTRIBUTES)),
    ("nonResourceAttributes", Ty::Object(NON_RESOURCE_ATTRIBUTES)),
    ("user", Ty::Str),
    ("groups", Ty::StrList),
    ("extra", Ty::StrListMap),
    ("uid", Ty::Str),
];

const SAR: &[(&str, Ty)] = &[
    ("apiVersion", Ty::Str),
    ("kind", Ty::Str),
    ("metadata", Ty::AnyObject),
    ("spec", Ty::Object(SAR_SPEC)),
    ("status", Ty::AnyObject),
];

const TOKEN_REVIEW_SPEC: &[(&str, Ty)] = &[("token", Ty::Str), ("audiences", Ty::StrList)];

const TOKEN_REVIEW: &[(&str, Ty)] = &[
    ("apiVersion", Ty::Str),
    ("kind", Ty::Str),
    ("metadata", Ty::AnyObject),
    ("spec", Ty::Object(TOKEN_REVIEW_SPEC)),
    ("status", Ty::AnyObject),
];

/// The problems of a SubjectAccessReview body.
pub fn check_subject_access_review(body: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !check_top(body, SAR, SAR_API_VERSION, SAR_KIND, &mut problems) {
        return problems;
    }
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let present = |key: &str| spec.get(key).is_some_and(|v| !v.is_null());
    match (present("resourceAttributes"), present("nonResourceAttributes")) {
        (true, true) => problems.push(invalid(
            "spec.nonResourceAttributes: Invalid value: cannot be specified in combination with resourceAttributes",
        )),
        (false, false) => problems.push(invalid(
            "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
    let groups = spec
        .get("groups")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if user.is_empty() && groups == 0 {
        problems.push(invalid(
            "spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    problems
}

/// The problems of a TokenReview body.
pub fn check_token_review(body: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !check_top(
        body,
        TOKEN_REVIEW,
        TOKEN_REVIEW_API_VERSION,
        TOKEN_REVIEW_KIND,
        &mut problems,
    ) {
        return problems;
    }
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        // The TokenReview REST storage answers this with 400, not 422.
        problems.push(Problem {
            severity: Severity::Malformed,
            message: "token is required for TokenReview in authentication".to_string(),
        });
    }
    problems
}

/// Checks the object, its type meta and its fields; false when it is not
/// worth looking further.
fn check_top(
    body: &Value,
    fields: &[(&str, Ty)],
    api_version: &str,
    kind: &str,
    problems: &mut Vec<Problem>,
) -> bool {
    let Some(object) = body.as_object() else {
        problems.push(malformed(format!(
            "the body is not a JSON object: cannot be handled as a {kind}"
        )));
        return false;
    };
    for (field, expected) in [("apiVersion", api_version), ("kind", kind)] {
        match object.get(field) {
            None | Some(Value::Null) => problems.push(Problem {
                severity: Severity::MissingTypeMeta,
                message: format!("{field} is missing (expected {expected:?})"),
            }),
            Some(Value::String(found)) if found == expected => {}
            Some(other) => problems.push(malformed(format!(
                "{field} {other} is not {expected:?}: the object provided is unrecognized (must be of type {kind})"
            ))),
        }
    }
    check_object(object, fields, "", kind, problems);
    !problems.iter().any(|p| p.severity == Severity::Malformed)
}

fn check_object(
    object: &Map<String, Value>,
    fields: &[(&str, Ty)],
    path: &str,
    kind: &str,
    problems: &mut Vec<Problem>,
) {
    for (key, value) in object {
        let field_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match fields.iter().find(|(name, _)| name == key) {
            None => problems.push(Problem {
                severity: Severity::UnknownField,
                message: format!("unknown field {field_path:?}"),
            }),
            Some((_, ty)) => check_value(value, ty, &field_path, kind, problems),
        }
    }
}

fn check_value(value: &Value, ty: &Ty, path: &str, kind: &str, problems: &mut Vec<Problem>) {
    if value.is_null() {
        return; // Go's decoder leaves the field at its zero value.
    }
    let ok = match ty {
        Ty::Str => value.is_string(),
        Ty::StrList => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        Ty::StrListMap => value.as_object().is_some_and(|map| {
            map.values().all(|v| {
                v.is_null()
                    || v.as_array()
                        .is_some_and(|items| items.iter().all(Value::is_string))
            })
        }),
        Ty::AnyObject => value.is_object(),
        Ty::Object(fields) => match value.as_object() {
            Some(object) => {
                check_object(object, fields, path, kind, problems);
                true
            }
            None => false,
        },
    };
    if !ok {
        let expected = match ty {
            Ty::Str => "string",
            Ty::StrList => "[]string",
            Ty::StrListMap => "map[string][]string",
            Ty::AnyObject | Ty::Object(_) => "object",
        };
        problems.push(malformed(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: json: cannot unmarshal {} into field {path} of type {expected}",
            json_type(value)
        )));
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn malformed(message: String) -> Problem {
    Problem {
        severity: Severity::Malformed,
        message,
    }
}

fn invalid(message: &str) -> Problem {
    Problem {
        severity: Severity::Invalid,
        message: message.to_string(),
    }
}

/// What the server does with a body's problems before answering it: an
/// error for the first malformed or invalid ones, else the warnings to send.
pub fn preflight(kind: &str, problems: &[Problem]) -> Result<Vec<String>, ApiError> {
    let malformed = messages(problems, Severity::Malformed);
    if let Some(first) = malformed.first() {
        return Err(ApiError::bad_request(first.clone()));
    }
    let invalid = messages(problems, Severity::Invalid);
    if !invalid.is_empty() {
        return Err(ApiError::invalid(kind, &invalid));
    }
    Ok(messages(problems, Severity::UnknownField))
}

/// The messages of the problems of `severity`.
pub fn messages(problems: &[Problem], severity: Severity) -> Vec<String> {
    problems
        .iter()
        .filter(|p| p.severity == severity)
        .map(|p| p.message.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn severities(problems: &[Problem]) -> Vec<Severity> {
        problems.iter().map(|p| p.severity).collect()
    }

    #[test]
    fn a_well_formed_review_has_no_problems() {
        let sar = json!({"apiVersion": SAR_API_VERSION, "kind": SAR_KIND,
            "spec": {"user": "u", "groups": ["g"], "extra": {"k": ["v"]},
                     "resourceAttributes": {"namespace": "ns", "verb": "get", "resource": "pods"}}});
        assert_eq!(check_subject_access_review(&sar), vec![]);
        let tr = json!({"apiVersion": TOKEN_REVIEW_API_VERSION, "kind": TOKEN_REVIEW_KIND,
            "spec": {"token": "t", "audiences": ["a"]}});
        assert_eq!(check_token_review(&tr), vec![]);
    }

    #[test]
    fn each_kind_of_problem_is_told_apart() {
        let typed =
            json!({"spec": {"user": 7, "nonResourceAttributes": {"path": "/", "verb": "get"}}});
        assert_eq!(
            severities(&check_subject_access_review(&typed)),
            [
                Severity::MissingTypeMeta,
                Severity::MissingTypeMeta,
                Severity::Malformed
            ]
        );
        let wrong_kind = json!({"apiVersion": SAR_API_VERSION, "kind": "TokenReview", "spec": {}});
        assert_eq!(
            severities(&check_subject_access_review(&wrong_kind)),
            [Severity::Malformed]
        );
        let both = json!({"apiVersion": SAR_API_VERSION, "kind": SAR_KIND,
            "spec": {"groups": ["g"], "resourceAttributes": {"verbb": "get"},
                     "nonResourceAttributes": {"path": "/"}}});
        let problems = check_subject_access_review(&both);
        assert_eq!(
            severities(&problems),
            [Severity::UnknownField, Severity::Invalid]
        );
        assert!(problems[0]
            .message
            .contains("spec.resourceAttributes.verbb"));
        let nobody = json!({"apiVersion": SAR_API_VERSION, "kind": SAR_KIND,
            "spec": {"user": "", "groups": [], "nonResourceAttributes": {"path": "/"}}});
        assert_eq!(
            severities(&check_subject_access_review(&nobody)),
            [Severity::Invalid]
        );
        let empty_token =
            json!({"apiVersion": TOKEN_REVIEW_API_VERSION, "kind": TOKEN_REVIEW_KIND, "spec": {}});
        assert_eq!(
            severities(&check_token_review(&empty_token)),
            [Severity::Malformed]
        );
        assert_eq!(
            severities(&check_token_review(&json!([]))),
            [Severity::Malformed]
        );
    }
}
