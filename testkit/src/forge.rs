//! Hand-made and malicious tokens: any header, no signature, algorithm
//! confusion, altered payloads, truncations.

use base64::engine::general_purpose::{URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

use crate::idp::exact_claims;

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, with or without padding.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD_INDIFFERENT.decode(text).ok()
}

/// `b64(header).b64(claims).b64(signature)`, exactly as given.
pub fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

/// An unsecured JWT: header `{"alg":"none","typ":"JWT"}`, empty signature
/// (the token ends with a dot).
pub fn alg_none(claims: &Value) -> String {
    assemble(&json!({"alg": "none", "typ": "JWT"}), claims, b"")
}

/// An HS256 token whose HMAC secret is `secret`, header naming `kid`. With
/// the RSA public key (PEM, or the JWK's modulus bytes) as the secret, this is
/// the classic algorithm-confusion attack.
pub fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    HS256Key::from_bytes(secret)
        .with_key_id(kid)
        .authenticate(exact_claims(claims))
        .expect("HS256 signing")
}

/// An ES256 token signed by a freshly generated key, not the provider's,
/// under the provider's `kid`: a valid signature by the wrong key.
pub fn impostor_es256(kid: &str, claims: &Value) -> String {
    ES256KeyPair::generate()
        .with_key_id(kid)
        .sign(exact_claims(claims))
        .expect("ES256 signing")
}

/// Keeps the header and signature of `token` but swaps in other claims.
pub fn replace_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    let _payload = parts.next();
    let signature = parts.next().unwrap_or_default();
    format!(
        "{header}.{}.{signature}",
        b64url(claims.to_string().as_bytes())
    )
}

/// The JSON of segment `index` (0 header, 1 payload) of a compact token.
pub fn segment_json(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("segment present");
    let bytes = b64url_decode(segment).expect("segment is base64url");
    serde_json::from_slice(&bytes).expect("segment is JSON")
}

/// `header.payload`: the signature part dropped.
pub fn without_signature_part(token: &str) -> String {
    let mut parts = token.split('.');
    format!(
        "{}.{}",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    )
}

/// The token cut in the middle of its payload segment.
pub fn cut_in_payload(token: &str) -> String {
    let header_len = token.find('.').expect("a compact token");
    let payload_len = token[header_len + 1..].find('.').expect("a compact token");
    token[..header_len + 1 + payload_len / 2].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::{standard_claims, Alg, Idp, RSA_KID};
    use serde_json::Map;

    fn claims() -> Value {
        standard_claims("https://issuer.test", "kubeflow", "alice@example.com", &[])
    }

    #[test]
    fn alg_none_has_an_empty_signature() {
        let token = alg_none(&claims());
        assert!(token.ends_with('.'));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(segment_json(&token, 0)["alg"], "none");
        assert_eq!(segment_json(&token, 1), claims());
    }

    #[test]
    fn hs256_with_the_rsa_public_key_is_a_valid_hmac_token() {
        let pem = Idp::shared().rsa_public_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let token = hs256(pem.as_bytes(), RSA_KID, &claims());
        let header = segment_json(&token, 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], RSA_KID);
        HS256Key::from_bytes(pem.as_bytes())
            .verify_token::<Map<String, Value>>(&token, None)
            .unwrap();
    }

    #[test]
    fn payload_swaps_and_truncations() {
        let token = Idp::shared().sign(Alg::ES256, &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let other = json!({"iss": "https://issuer.test", "email": "mallory@example.com"});
        let swapped = replace_payload(&token, &other);
        let swapped_parts: Vec<&str> = swapped.split('.').collect();
        assert_eq!(swapped_parts[0], parts[0]);
        assert_eq!(swapped_parts[2], parts[2]);
        assert_eq!(segment_json(&swapped, 1), other);

        assert_eq!(
            without_signature_part(&token),
            format!("{}.{}", parts[0], parts[1])
        );
        let cut = cut_in_payload(&token);
        assert_eq!(cut.split('.').count(), 2);
        assert!(token.starts_with(&cut));
        assert!(cut.len() < parts[0].len() + 1 + parts[1].len());
    }
}
