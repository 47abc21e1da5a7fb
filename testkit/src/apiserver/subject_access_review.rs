//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: decode and
//! validate the review as kube-apiserver does, ask the RBAC authorizer, and
//! answer the same object with its `status` filled in (201 Created).

use serde_json::{json, Map, Value};

use super::authorizer::{AccessRequest, Action, NonResourceAttributes, ResourceAttributes};
use super::contract::{self, SAR_API_VERSION, SAR_KIND};
use super::rbac::Rbac;
use super::status::ApiError;

/// The path of the endpoint.
pub const SAR_PATH: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// An answer of a review endpoint: the object to send back with 201, and
/// the `Warning` header values (unknown fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub body: Value,
    pub warnings: Vec<String>,
}

/// Answers a SubjectAccessReview body, or the error the real server gives.
pub fn answer(rbac: &Rbac, body: &Value) -> Result<Answered, ApiError> {
    let warnings = contract::preflight(SAR_KIND, &contract::check_subject_access_review(body))?;
    let request = access_request(body);
    let decision = rbac.authorize(&request);
    let mut status = Map::new();
    status.insert("allowed".into(), Value::Bool(decision.allowed));
    if !decision.reason.is_empty() {
        status.insert("reason".into(), Value::String(decision.reason));
    }
    Ok(Answered {
        body: json!({
            "kind": SAR_KIND,
            "apiVersion": SAR_API_VERSION,
            "metadata": response_metadata(body),
            "spec": body.get("spec").cloned().unwrap_or_else(|| json!({})),
            "status": Value::Object(status),
        }),
        warnings,
    })
}

/// What the server echoes as `metadata`: what was sent, with
/// `creationTimestamp: null` as a never-stored object has it.
pub fn response_metadata(body: &Value) -> Value {
    let mut metadata = body
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    metadata.insert("creationTimestamp".into(), Value::Null);
    Value::Object(metadata)
}

/// The authorizer's view of a (validated) review.
pub fn access_request(body: &Value) -> AccessRequest {
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let text = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let groups = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|groups| {
            groups
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let action = match spec.get("resourceAttributes").filter(|v| v.is_object()) {
        Some(attrs) => Action::Resource(ResourceAttributes {
            namespace: text(attrs, "namespace"),
            verb: text(attrs, "verb"),
            group: text(attrs, "group"),
            version: text(attrs, "version"),
            resource: text(attrs, "resource"),
            subresource: text(attrs, "subresource"),
            name: text(attrs, "name"),
        }),
        None => {
            let attrs = spec
                .get("nonResourceAttributes")
                .cloned()
                .unwrap_or(Value::Null);
            Action::NonResource(NonResourceAttributes {
                path: text(&attrs, "path"),
                verb: text(&attrs, "verb"),
            })
        }
    };
    AccessRequest {
        user: text(&spec, "user"),
        groups,
        action,
    }
}

/// A SubjectAccessReview body for `request`, as a client sends it.
pub fn request_body(request: &AccessRequest) -> Value {
    let mut spec = Map::new();
    if !request.user.is_empty() {
        spec.insert("user".into(), json!(request.user));
    }
    if !request.groups.is_empty() {
        spec.insert("groups".into(), json!(request.groups));
    }
    match &request.action {
        Action::Resource(attrs) => {
            let mut fields = Map::new();
            for (key, value) in [
                ("namespace", &attrs.namespace),
                ("verb", &attrs.verb),
                ("group", &attrs.group),
                ("version", &attrs.version),
                ("resource", &attrs.resource),
                ("subresource", &attrs.subresource),
                ("name", &attrs.name),
            ] {
                if !value.is_empty() {
                    fields.insert(key.into(), json!(value));
                }
            }
            spec.insert("resourceAttributes".into(), Value::Object(fields));
        }
        Action::NonResource(attrs) => {
            spec.insert(
                "nonResourceAttributes".into(),
                json!({"path": attrs.path, "verb": attrs.verb}),
            );
        }
    }
    json!({"apiVersion": SAR_API_VERSION, "kind": SAR_KIND, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_round_trips_and_gets_a_status() {
        let rbac = Rbac::from_yaml(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: health}
rules: [{nonResourceURLs: ["/healthz"], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: health-for-all}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: health}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: everyone}]
"#,
        )
        .unwrap();
        let request = AccessRequest::user("u")
            .groups(&["everyone"])
            .non_resource("get", "/healthz");
        let body = request_body(&request);
        assert_eq!(access_request(&body), request);
        let answered = answer(&rbac, &body).unwrap();
        assert_eq!(answered.body["status"]["allowed"], true);
        assert_eq!(
            answered.body["status"]["reason"],
            r#"RBAC: allowed by ClusterRoleBinding "health-for-all" of ClusterRole "health" to Group "everyone""#
        );
        assert_eq!(
            answered.body["metadata"],
            json!({"creationTimestamp": null})
        );
        let denied = answer(&rbac, &request_body(&request.clone().groups(&[]))).unwrap();
        assert_eq!(denied.body["status"], json!({"allowed": false}));

        let resource = AccessRequest::user("u")
            .can("get", "apps", "deployments")
            .in_namespace("ns")
            .subresource("scale")
            .named("web");
        assert_eq!(access_request(&request_body(&resource)), resource);
    }

    #[test]
    fn bad_bodies_get_the_real_errors() {
        let rbac = Rbac::new();
        let no_action =
            json!({"apiVersion": SAR_API_VERSION, "kind": SAR_KIND, "spec": {"user": "u"}});
        assert_eq!(answer(&rbac, &no_action).unwrap_err().code, 422);
        let typed = json!({"spec": {"user": ["u"], "nonResourceAttributes": {}}});
        assert_eq!(answer(&rbac, &typed).unwrap_err().code, 400);
        let unknown = json!({"spec": {"user": "u", "nonResourceAttributes": {"path": "/", "verb": "get"}, "usr": "x"}});
        assert_eq!(
            answer(&rbac, &unknown).unwrap().warnings,
            vec![r#"unknown field "spec.usr""#]
        );
    }
}
