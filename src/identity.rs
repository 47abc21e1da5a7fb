//! Identity headers: whatever the client sent under the names kfauth writes is
//! dropped from every request, and only verified claims are written back.

use serde_json::{Map, Value};

use crate::claims::{header_value, lookup};
use crate::config::{Config, JwtRule};
use crate::outcome::HeaderEdits;

/// Edits that drop every identity header a client may have sent (any case, any
/// count: Envoy stores names in lower case and removal takes every copy).
pub fn strip_client_identity(config: &Config) -> HeaderEdits {
    HeaderEdits {
        remove: config.identity_headers.clone(),
        ..HeaderEdits::default()
    }
}

/// Adds the headers a verified token maps to under `rule`.
pub fn add_verified_identity(
    rule: &JwtRule,
    claims: &Map<String, Value>,
    payload_segment: &str,
    edits: &mut HeaderEdits,
) {
    for mapping in &rule.claim_headers {
        if let Some(value) = lookup(claims, &mapping.claim).and_then(header_value) {
            edits.set.push((
                mapping.header.clone(),
                format!("{}{}", mapping.prefix, value),
            ));
        }
    }
    if let Some(header) = &rule.output_payload_to_header {
        // The payload segment is already base64url (RFC 7515), as Istio forwards it.
        edits
            .set
            .push((header.clone(), payload_segment.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::DEX;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn config() -> Config {
        Config::parse(
            json!({"jwtRules": [{
                "issuer": DEX, "jwksUri": "http://dex/keys",
                "outputPayloadToHeader": "X-Jwt-Payload",
                "outputClaimToHeaders": [
                    {"header": "Kubeflow-UserID", "claim": "email", "prefix": "accounts.google.com:"},
                    {"header": "kubeflow-groups", "claim": "groups"},
                    {"header": "x-missing", "claim": "nope"}
                ]
            }]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn every_written_header_is_stripped_first() {
        assert_eq!(
            strip_client_identity(&config()).remove,
            [
                "kubeflow-userid",
                "kubeflow-groups",
                "x-missing",
                "x-jwt-payload"
            ]
        );
    }

    #[test]
    fn verified_claims_become_headers() {
        let config = config();
        let claims = json!({"email": "a@b.c", "groups": ["g1", "g2"]});
        let mut edits = HeaderEdits::default();
        add_verified_identity(
            &config.rules[0],
            claims.as_object().unwrap(),
            "eyJwYXkiOjF9",
            &mut edits,
        );
        assert_eq!(
            edits.set,
            [
                (
                    "kubeflow-userid".to_string(),
                    "accounts.google.com:a@b.c".to_string()
                ),
                ("kubeflow-groups".to_string(), "g1,g2".to_string()),
                ("x-jwt-payload".to_string(), "eyJwYXkiOjF9".to_string()),
            ]
        );
    }
}
