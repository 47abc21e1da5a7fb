//! `POST /apis/authentication.k8s.io/v1/tokenreviews`: the tokens a test
//! registered (as a service account token or any user's), their audiences,
//! revocation, and the answer the real server gives: `status.authenticated`,
//! `status.user`, `status.audiences`, or `status.error`.
//!
//! Like the real server (Go's `omitempty`), a token that does not
//! authenticate gets `status: {"user": {}, "error": "..."}` with no
//! `authenticated` field at all: clients must read its absence as false.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::authorizer::service_account_username;
use super::contract::{self, TOKEN_REVIEW_API_VERSION, TOKEN_REVIEW_KIND};
use super::status::ApiError;
use super::subject_access_review::{response_metadata, Answered};

/// The path of the endpoint.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The audience of the API server itself, which a TokenReview without
/// `spec.audiences` asks for and a token registered without audiences has.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a registered token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// The audiences the token was issued for; empty means [`API_AUDIENCE`].
    pub audiences: Vec<String>,
}

/// The tokens the stand-in knows.
#[derive(Debug, Clone, Default)]
pub struct TokenRegistry {
    tokens: HashMap<String, TokenUser>,
    revoked: HashSet<String>,
    issued: u64,
}

impl TokenRegistry {
    /// Makes `token` authenticate as `username` in `groups`, for `audiences`
    /// (none: the API server's own). Registering again replaces it and
    /// lifts a revocation.
    pub fn register(&mut self, token: &str, username: &str, groups: &[&str], audiences: &[&str]) {
        self.issued += 1;
        let user = TokenUser {
            username: username.to_string(),
            uid: format!("00000000-0000-4000-8000-{:012x}", self.issued),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        };
        self.revoked.remove(token);
        self.tokens.insert(token.to_string(), user);
    }

    /// A service account's token, with the groups the service-account
    /// authenticator gives it (`system:serviceaccounts`,
    /// `system:serviceaccounts:NS`, `system:authenticated`).
    pub fn register_service_account(
        &mut self,
        token: &str,
        namespace: &str,
        name: &str,
        audiences: &[&str],
    ) {
        let namespace_group = format!("system:serviceaccounts:{namespace}");
        self.register(
            token,
            &service_account_username(namespace, name),
            &[
                "system:serviceaccounts",
                &namespace_group,
                "system:authenticated",
            ],
            audiences,
        );
    }

    /// From now on `token` no longer authenticates.
    pub fn revoke(&mut self, token: &str) {
        if self.tokens.remove(token).is_some() {
            self.revoked.insert(token.to_string());
        }
    }

    /// Who `token` is, if it is registered and not revoked.
    pub fn user(&self, token: &str) -> Option<&TokenUser> {
        self.tokens.get(token)
    }

    /// Answers a TokenReview body, or the error the real server gives.
    pub fn answer(&self, body: &Value) -> Result<Answered, ApiError> {
        let warnings = contract::preflight(TOKEN_REVIEW_KIND, &contract::check_token_review(body))?;
        let token = body
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let requested: Vec<String> = match body.pointer("/spec/audiences").and_then(Value::as_array)
        {
            Some(audiences) if !audiences.is_empty() => audiences
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![API_AUDIENCE.to_string()],
        };
        let status = match self.authenticate(token, &requested) {
            Ok((user, audiences)) => {
                let mut user_info = Map::new();
                user_info.insert("username".into(), json!(user.username));
                user_info.insert("uid".into(), json!(user.uid));
                if !user.groups.is_empty() {
                    user_info.insert("groups".into(), json!(user.groups));
                }
                json!({"authenticated": true, "user": user_info, "audiences": audiences})
            }
            Err(error) => json!({"user": {}, "error": error}),
        };
        Ok(Answered {
            body: json!({
                "kind": TOKEN_REVIEW_KIND,
                "apiVersion": TOKEN_REVIEW_API_VERSION,
                "metadata": response_metadata(body),
                "spec": body.get("spec").cloned().unwrap_or_else(|| json!({})),
                "status": status,
            }),
            warnings,
        })
    }

    fn authenticate(
        &self,
        token: &str,
        requested: &[String],
    ) -> Result<(&TokenUser, Vec<String>), String> {
        let Some(user) = self.tokens.get(token) else {
            return Err(if self.revoked.contains(token) {
                "[invalid bearer token, service account token has been invalidated]".to_string()
            } else {
                "[invalid bearer token, token lookup failed]".to_string()
            });
        };
        let own: Vec<String> = if user.audiences.is_empty() {
            vec![API_AUDIENCE.to_string()]
        } else {
            user.audiences.clone()
        };
        let common: Vec<String> = requested
            .iter()
            .filter(|a| own.contains(a))
            .cloned()
            .collect();
        if common.is_empty() {
            return Err(format!(
                "[invalid bearer token, token audiences {own:?} is invalid for the target audiences {requested:?}]"
            ));
        }
        Ok((user, common))
    }
}

/// A TokenReview body, as a client sends it.
pub fn request_body(token: &str, audiences: &[&str]) -> Value {
    let mut spec = json!({"token": token});
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    json!({"apiVersion": TOKEN_REVIEW_API_VERSION, "kind": TOKEN_REVIEW_KIND, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_for_their_audiences_until_revoked() {
        let mut registry = TokenRegistry::default();
        registry.register_service_account("sa-token", "ns", "runner", &["kfauth"]);
        registry.register("plain", "alice@example.com", &["team"], &[]);

        let ok = registry
            .answer(&request_body("sa-token", &["other", "kfauth"]))
            .unwrap()
            .body;
        assert_eq!(ok["status"]["authenticated"], true);
        assert_eq!(ok["status"]["audiences"], json!(["kfauth"]));
        assert_eq!(
            ok["status"]["user"]["username"],
            "system:serviceaccount:ns:runner"
        );
        assert_eq!(
            ok["status"]["user"]["groups"],
            json!([
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ])
        );

        let wrong_audience = registry
            .answer(&request_body("sa-token", &[]))
            .unwrap()
            .body;
        assert_eq!(wrong_audience["status"].get("authenticated"), None);
        assert!(wrong_audience["status"]["error"]
            .as_str()
            .unwrap()
            .contains("is invalid for the target audiences"));

        let api = registry.answer(&request_body("plain", &[])).unwrap().body;
        assert_eq!(api["status"]["audiences"], json!([API_AUDIENCE]));

        registry.revoke("sa-token");
        let revoked = registry
            .answer(&request_body("sa-token", &["kfauth"]))
            .unwrap()
            .body;
        assert_eq!(revoked["status"]["user"], json!({}));
        assert!(revoked["status"]["error"]
            .as_str()
            .unwrap()
            .contains("invalidated"));
        let unknown = registry.answer(&request_body("nope", &[])).unwrap().body;
        assert!(unknown["status"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid bearer token"));
        assert_eq!(
            registry.answer(&request_body("", &[])).unwrap_err().code,
            400
        );
    }
}
