//! `kfauth token`: a signed test token from a local private key, for trying a
//! gateway out (never for production identities).

use std::time::Duration;

use jwt_simple::prelude::*;
use serde_json::{Map, Value};

/// What to put in the token.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub algorithm: String,
    pub key_pem: String,
    pub kid: Option<String>,
    pub issuer: String,
    pub subject: Option<String>,
    pub audiences: Vec<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub extra: Map<String, Value>,
    pub ttl: Duration,
    pub now: Duration,
}

pub fn mint(request: &TokenRequest) -> Result<String, String> {
    let mut claims = request.extra.clone();
    claims.insert("iss".into(), Value::String(request.issuer.clone()));
    if let Some(subject) = &request.subject {
        claims.insert("sub".into(), Value::String(subject.clone()));
    }
    match request.audiences.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), Value::String(one.clone()));
        }
        many => {
            claims.insert("aud".into(), serde_json::json!(many));
        }
    }
    if let Some(email) = &request.email {
        claims.insert("email".into(), Value::String(email.clone()));
    }
    if !request.groups.is_empty() {
        claims.insert("groups".into(), serde_json::json!(request.groups));
    }
    let now = request.now.as_secs();
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        now.saturating_add(request.ttl.as_secs()).into(),
    );
    let claims = JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom: claims,
    };
    let problem = |what: jwt_simple::Error| format!("{what}");
    match request.algorithm.as_str() {
        "RS256" => {
            let mut key = RS256KeyPair::from_pem(&request.key_pem).map_err(problem)?;
            if let Some(kid) = &request.kid {
                key = key.with_key_id(kid);
            }
            key.sign(claims).map_err(problem)
        }
        "ES256" => {
            let mut key = ES256KeyPair::from_pem(&request.key_pem).map_err(problem)?;
            if let Some(kid) = &request.kid {
                key = key.with_key_id(kid);
            }
            key.sign(claims).map_err(problem)
        }
        other => Err(format!("unsupported algorithm `{other}` (RS256 or ES256)")),
    }
}
