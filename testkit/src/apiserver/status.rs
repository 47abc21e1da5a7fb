//! The `Status` object kube-apiserver answers errors with
//! (`{"kind":"Status","apiVersion":"v1","status":"Failure",...}`).

use serde_json::{json, Value};

/// An error answer: HTTP status code, `reason` word and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    /// `Unauthorized`, `BadRequest`, `Invalid`, `NotFound`, ...
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn unauthorized() -> ApiError {
        ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".to_string(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// 422: the object decoded but failed validation.
    pub fn invalid(kind: &str, causes: &[String]) -> ApiError {
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!(
                "{kind}.{} \"\" is invalid: {}",
                group_of(kind),
                causes.join(", ")
            ),
        }
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
        }
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method on the requested resource ({method})"
            ),
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/cbor (got {content_type:?})"),
        }
    }

    pub fn too_large() -> ApiError {
        ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: "the request entity is too large".to_string(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            code: 500,
            reason: "InternalError",
            message: message.into(),
        }
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

fn group_of(kind: &str) -> &'static str {
    match kind {
        "TokenReview" => "authentication.k8s.io",
        _ => "authorization.k8s.io",
    }
}
