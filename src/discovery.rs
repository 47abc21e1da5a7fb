//! OpenID Connect Discovery 1.0: the issuer's configuration document, read for
//! its `jwks_uri` after checking that it speaks for the configured issuer.

use serde::Deserialize;

use crate::endpoint::Endpoint;

#[derive(Deserialize)]
struct ProviderMetadata {
    issuer: String,
    jwks_uri: String,
}

/// The JWKS endpoint of a discovery document fetched for `issuer`. Section 4.3:
/// the document's `issuer` must be identical to the one it was fetched for.
pub fn jwks_endpoint(
    document: &[u8],
    issuer: &str,
    jwks_cluster: Option<&str>,
) -> Result<Endpoint, String> {
    let metadata: ProviderMetadata = serde_json::from_slice(document)
        .map_err(|problem| format!("not an OpenID configuration document ({problem})"))?;
    if metadata.issuer != issuer {
        return Err(format!(
            "the document's issuer `{}` is not `{issuer}`",
            metadata.issuer
        ));
    }
    Endpoint::from_url(&metadata.jwks_uri, jwks_cluster)
        .map_err(|problem| format!("jwks_uri: {problem}"))
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
        assert!(jwks_endpoint(other, ISSUER, None)
            .unwrap_err()
            .contains("evil"));
        assert!(jwks_endpoint(br#"{"issuer":"https://login.example.com"}"#, ISSUER, None).is_err());
        assert!(jwks_endpoint(b"<html>", ISSUER, None).is_err());
        let relative = br#"{"issuer":"https://login.example.com","jwks_uri":"/jwks"}"#;
        assert!(jwks_endpoint(relative, ISSUER, None).is_err());
    }
}
