//! Identity headers: whatever the client sent under the names kfauth writes is
//! dropped from every request, and only verified claims are written back.

use serde_json::{Map, Value};

use crate::cause::Cause;
use crate::claims::{is_safe_header_value, lookup_list, rendered};
use crate::config::Config;
use crate::jwt_rule::JwtRule;
use crate::outcome::HeaderEdits;
use crate::request::RequestView;

/// Edits that drop every identity header a client may have sent: any case, any
/// count (Envoy stores names in lower case and removal takes every copy), and
/// any spelling with `_` for `-`, which CGI/WSGI servers (Python's, PHP's) turn
/// into the same variable (`HTTP_KUBEFLOW_USERID`) as the real header.
pub fn strip_client_identity(config: &Config, request: &RequestView) -> HeaderEdits {
    // The view holds every header the request has, so only identity headers
    // it carries need a removal (each one a host call).
    let mut remove: Vec<String> = config
        .identity_headers
        .iter()
        .filter(|header| request.header(header).is_some())
        .cloned()
        .collect();
    // Only a name with `_` can be a CGI alias; most requests have none, and
    // this runs on every request, so nothing is allocated to find out.
    for name in request.headers.names().filter(|name| name.contains('_')) {
        if !remove.iter().any(|removed| removed == name)
            && config
                .identity_headers
                .iter()
                .any(|header| same_cgi_name(header, name))
        {
            remove.push(name.to_owned());
        }
    }
    HeaderEdits {
        remove,
        ..HeaderEdits::default()
    }
}

/// Whether two header names are one variable to CGI-style servers: equal
/// ignoring ASCII case, with `_` read as `-`.
fn same_cgi_name(a: &str, b: &str) -> bool {
    let fold = |byte: u8| match byte {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
    };
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(left, right)| fold(left) == fold(right))
}

/// The headers a verified token maps to under `rule`, computed once per token
/// (the verified-token cache keeps them). Values are UTF-8 text, written as
/// their bytes; a mapped value that [`is_safe_header_value`] refuses (a
/// control character such as CR, LF or tab; whitespace at either end) refuses
/// the whole token, `token_malformed`, rather than dropping one header.
pub fn verified_identity_headers(
    rule: &JwtRule,
    claims: &Map<String, Value>,
    payload_segment: &str,
) -> Result<Vec<(String, String)>, Cause> {
    let mut headers = Vec::with_capacity(rule.claim_headers.len().saturating_add(1));
    for mapping in &rule.claim_headers {
        let value = lookup_list(claims, &mapping.claim, mapping.space_delimited);
        if let Some(value) = value.as_deref().and_then(rendered) {
            let value = format!("{}{}", mapping.prefix, value);
            if !is_safe_header_value(&value) {
                return Err(Cause::UnsafeClaimValue);
            }
            headers.push((mapping.header.clone(), value));
        }
    }
    if let Some(header) = &rule.output_payload_to_header {
        // The payload segment is already base64url (RFC 7515), as Istio forwards it.
        headers.push((header.clone(), payload_segment.to_string()));
    }
    Ok(headers)
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
    fn every_identity_header_the_client_sent_is_stripped_first() {
        let request = RequestView::from_pairs(vec![
            ("X-Jwt-Payload".into(), "e30".into()),
            ("kubeflow-userid".into(), "root".into()),
            ("x-missing".into(), "a".into()),
            ("x-missing".into(), "b".into()),
            ("kubeflow-groupsx".into(), "not an identity header".into()),
        ]);
        assert_eq!(
            strip_client_identity(&config(), &request).remove,
            ["kubeflow-userid", "x-missing", "x-jwt-payload"]
        );
        // Nothing sent, nothing to remove (each removal is a host call).
        assert!(strip_client_identity(&config(), &RequestView::default())
            .remove
            .is_empty());
    }

    #[test]
    fn verified_claims_become_headers() {
        let config = config();
        let claims = json!({"email": "a@b.c", "groups": ["g1", "g2"]});
        let headers = verified_identity_headers(
            &config.rules[0],
            claims.as_object().unwrap(),
            "eyJwYXkiOjF9",
        )
        .unwrap();
        assert_eq!(
            headers,
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

    #[test]
    fn underscore_spellings_of_identity_headers_are_stripped_too() {
        let request = RequestView::from_pairs(vec![
            ("kubeflow_userid".into(), "root".into()),
            ("Kubeflow_Groups".into(), "admins".into()),
            ("x_jwt_payload".into(), "e30".into()),
            ("x-jwt_payload".into(), "e30".into()),
            ("kubeflow-userid".into(), "root".into()),
            ("x_unrelated".into(), "kept".into()),
        ]);
        assert_eq!(
            strip_client_identity(&config(), &request).remove,
            [
                "kubeflow-userid",
                "kubeflow_userid",
                "kubeflow_groups",
                "x_jwt_payload",
                "x-jwt_payload",
            ]
        );
    }

    #[test]
    fn a_claim_that_would_not_reach_the_backend_intact_refuses_the_token() {
        let config = config();
        for email in [
            "a@b.c\r\nkubeflow-groups: admins",
            "a@b.c\u{0}",
            "admin ",
            "admin\u{a0}",
            "a\tb",
            "a\u{85}b",
            "a\u{7f}b",
        ] {
            let claims = json!({"email": email});
            assert_eq!(
                verified_identity_headers(&config.rules[0], claims.as_object().unwrap(), "e30"),
                Err(Cause::UnsafeClaimValue),
                "{email:?}"
            );
        }
        // One bad group refuses the token too.
        let claims = json!({"email": "a@b.c", "groups": ["ok", "x\ny"]});
        assert_eq!(
            verified_identity_headers(&config.rules[0], claims.as_object().unwrap(), "e30"),
            Err(Cause::UnsafeClaimValue)
        );
        let claims = json!({"email": "jose@example.com", "groups": ["a b", "c"]});
        let headers =
            verified_identity_headers(&config.rules[0], claims.as_object().unwrap(), "e30")
                .unwrap();
        assert_eq!(headers[0].1, "accounts.google.com:jose@example.com");
        assert_eq!(headers[1].1, "a b,c");
    }

    #[test]
    fn non_ascii_claims_become_their_utf8_bytes() {
        let config = config();
        let claims = json!({"email": "zoë@example.com", "groups": ["équipe-a", "команда", "用户"]});
        let headers =
            verified_identity_headers(&config.rules[0], claims.as_object().unwrap(), "e30")
                .unwrap();
        assert_eq!(headers[0].1, "accounts.google.com:zoë@example.com");
        assert_eq!(
            headers[0].1.as_bytes(),
            b"accounts.google.com:zo\xc3\xab@example.com"
        );
        assert_eq!(headers[1].1, "équipe-a,команда,用户");
    }
}
