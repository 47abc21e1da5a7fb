//! OpenID Connect Discovery 1.0: the issuer's configuration document, read for
//! its `jwks_uri` after checking that it speaks for the configured issuer.

use serde::Deserialize;

use crate::endpoint::{Endpoint, EndpointError};

#[derive(Deserialize)]
struct ProviderMetadata {
    issuer: String,
    jwks_uri: String,
}

/// Why a discovery document gives no JWKS endpoint.
#[derive(Debug)]
pub enum DiscoveryError {
    NotADocument(serde_json::Error),
    /// The document speaks for another issuer: `found`, not `expected`.
    OtherIssuer {
        found: String,
        expected: String,
    },
    JwksUri(EndpointError),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::NotADocument(problem) => {
                write!(f, "not an OpenID configuration document ({problem})")
            }
            DiscoveryError::OtherIssuer { found, expected } => {
                write!(f, "the document's issuer `{found}` is not `{expected}`")
            }
            DiscoveryError::JwksUri(problem) => write!(f, "jwks_uri: {problem}"),
        }
    }
}

impl std::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DiscoveryError::NotADocument(problem) => Some(problem),
            DiscoveryError::OtherIssuer { .. } => None,
            DiscoveryError::JwksUri(problem) => Some(problem),
        }
    }
}

/// The JWKS endpoint of a discovery document fetched for `issuer`. Section 4.3:
/// the document's `issuer` must be identical to the one it was fetched for.
pub fn jwks_endpoint(
    document: &[u8],
    issuer: &str,
    jwks_cluster: Option<&str>,
) -> Result<Endpoint, DiscoveryError> {
    let metadata: ProviderMetadata =
        crate::json::read_object(document).map_err(DiscoveryError::NotADocument)?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::OtherIssuer {
            found: metadata.issuer,
            expected: issuer.into(),
        });
    }
    Endpoint::from_url(&metadata.jwks_uri, jwks_cluster).map_err(DiscoveryError::JwksUri)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const ISSUER: &str = "https://login.example.com";

    #[test]
    fn finds_the_jwks_uri_of_a_matching_document() {
        let document = br#"{"issuer":"https://login.example.com","jwks_uri":"https://keys.example.com:8443/jwks","response_types_supported":["code"]}"#;
        let endpoint = jwks_endpoint(document, ISSUER, None).unwrap();
        assert_eq!(endpoint.cluster, "outbound|8443||keys.example.com");
        assert_eq!(endpoint.path, "/jwks");
        let endpoint = jwks_endpoint(document, ISSUER, Some("idp")).unwrap();
        assert_eq!(endpoint.cluster, "idp");
    }

    #[test]
    fn refuses_a_document_for_another_issuer_or_without_keys() {
        let other =
            br#"{"issuer":"https://evil.example.com","jwks_uri":"https://evil.example.com/jwks"}"#;
        assert_eq!(
            jwks_endpoint(other, ISSUER, None).unwrap_err().to_string(),
            "the document's issuer `https://evil.example.com` is not `https://login.example.com`"
        );
        assert!(jwks_endpoint(br#"{"issuer":"https://login.example.com"}"#, ISSUER, None).is_err());
        assert!(jwks_endpoint(b"<html>", ISSUER, None).is_err());
        // Read as JSON whole: serde alone would skip the unnamed member's escape.
        let not_json = br#"{"issuer":"https://login.example.com","jwks_uri":"https://keys.example.com/jwks","x":"\udc00"}"#;
        assert!(jwks_endpoint(not_json, ISSUER, None).is_err());
        // serde reads a struct from an array too (fields by position).
        let array = br#"["https://login.example.com","https://keys.example.com/jwks"]"#;
        assert!(jwks_endpoint(array, ISSUER, None).is_err());
        let relative = br#"{"issuer":"https://login.example.com","jwks_uri":"/jwks"}"#;
        assert_eq!(
            jwks_endpoint(relative, ISSUER, None)
                .unwrap_err()
                .to_string(),
            "jwks_uri: `/jwks` is not an absolute http(s) URL"
        );
    }
}
