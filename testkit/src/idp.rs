//! An identity provider for tests: signing keys, their JWKS, and properly
//! signed tokens minted from any claims object.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

/// Key id of the shared provider's RSA key.
pub const RSA_KID: &str = "rsa-1";
/// Key id of the shared provider's P-256 key.
pub const EC_KID: &str = "ec-1";

/// Signature algorithms the provider signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    ES256,
}

/// Holds one RS256 and one ES256 key pair, each with a key id.
pub struct Idp {
    rsa: RS256KeyPair,
    ec: ES256KeyPair,
    rsa_kid: String,
    ec_kid: String,
}

impl Idp {
    /// Generates fresh keys (RSA-2048 takes a moment; prefer [`Idp::shared`]).
    pub fn generate(rsa_kid: &str, ec_kid: &str) -> Idp {
        let rsa = RS256KeyPair::generate(2048)
            .expect("RSA key generation")
            .with_key_id(rsa_kid);
        let ec = ES256KeyPair::generate().with_key_id(ec_kid);
        Idp {
            rsa,
            ec,
            rsa_kid: rsa_kid.to_string(),
            ec_kid: ec_kid.to_string(),
        }
    }

    /// The provider shared by every test of a process (kids `rsa-1`, `ec-1`).
    pub fn shared() -> &'static Idp {
        static SHARED: OnceLock<Idp> = OnceLock::new();
        SHARED.get_or_init(|| Idp::generate(RSA_KID, EC_KID))
    }

    /// A second, independent provider per process (kids `rsa-2`, `ec-2`),
    /// for multi-issuer scenarios.
    pub fn shared_second() -> &'static Idp {
        static SECOND: OnceLock<Idp> = OnceLock::new();
        SECOND.get_or_init(|| Idp::generate("rsa-2", "ec-2"))
    }

    pub fn kid(&self, alg: Alg) -> &str {
        match alg {
            Alg::RS256 => &self.rsa_kid,
            Alg::ES256 => &self.ec_kid,
        }
    }

    /// The public JWK of one key. The RSA JWK carries `alg` and `use`; the EC
    /// JWK carries neither, so a verifier must infer the algorithm from
    /// `kty`/`crv`.
    pub fn jwk(&self, alg: Alg) -> Value {
        match alg {
            Alg::RS256 => {
                let exported: Value = serde_json::from_str(&self.rsa.public_key().to_jwk())
                    .expect("jwt-simple exports JSON");
                json!({
                    "kty": "RSA",
                    "kid": self.rsa_kid,
                    "use": "sig",
                    "alg": "RS256",
                    "n": exported["n"],
                    "e": exported["e"],
                })
            }
            Alg::ES256 => {
                let exported: Value = serde_json::from_str(&self.ec.public_key().to_jwk())
                    .expect("jwt-simple exports JSON");
                json!({
                    "kty": "EC",
                    "kid": self.ec_kid,
                    "crv": "P-256",
                    "x": exported["x"],
                    "y": exported["y"],
                })
            }
        }
    }

    /// The standard JWKS document with both public keys.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk(Alg::RS256), self.jwk(Alg::ES256)] })
    }

    /// [`Idp::jwks`] serialized, as served by a JWKS endpoint or given inline
    /// in the `jwks` field of a rule.
    pub fn jwks_json(&self) -> String {
        self.jwks().to_string()
    }

    /// The public key for `alg` as DER SubjectPublicKeyInfo, in base64
    /// (standard alphabet): the key `bench/least-filter` is configured with.
    pub fn public_der_base64(&self, alg: Alg) -> String {
        use base64::Engine;
        let der = match alg {
            Alg::RS256 => self.rsa.public_key().to_der(),
            Alg::ES256 => self.ec.public_key().to_der(),
        };
        base64::engine::general_purpose::STANDARD.encode(der.expect("DER export"))
    }

    /// The RSA public key as PEM (SubjectPublicKeyInfo), e.g. as the secret of
    /// an algorithm-confusion attack.
    pub fn rsa_public_pem(&self) -> String {
        self.rsa.public_key().to_pem().expect("PEM export")
    }

    /// Signs `claims` (a JSON object, written as given: no claim is added)
    /// with the key for `alg`, header `{"typ":"JWT","alg":..,"kid":..}`.
    pub fn sign(&self, alg: Alg, claims: &Value) -> String {
        self.sign_with_kid(alg, self.kid(alg), claims)
    }

    /// Like [`Idp::sign`], but the header names `kid` (the signature is still
    /// made with this provider's key for `alg`).
    pub fn sign_with_kid(&self, alg: Alg, kid: &str, claims: &Value) -> String {
        let claims = exact_claims(claims);
        match alg {
            // The key's own kid: sign with it directly (a DER round trip costs
            // more than the signature, which matters when minting thousands).
            Alg::RS256 if kid == self.rsa_kid => self.rsa.sign(claims).expect("RS256 signing"),
            Alg::ES256 if kid == self.ec_kid => self.ec.sign(claims).expect("ES256 signing"),
            Alg::RS256 => {
                let key = RS256KeyPair::from_der(&self.rsa.to_der().expect("DER export"))
                    .expect("DER import")
                    .with_key_id(kid);
                key.sign(claims).expect("RS256 signing")
            }
            Alg::ES256 => {
                let key = ES256KeyPair::from_der(&self.ec.to_der().expect("DER export"))
                    .expect("DER import")
                    .with_key_id(kid);
                key.sign(claims).expect("ES256 signing")
            }
        }
    }
}

/// Claims for jwt-simple that serialize to exactly `claims`: every standard
/// field is left unset and the whole object goes through the flattened
/// custom part.
pub fn exact_claims(claims: &Value) -> JWTClaims<Map<String, Value>> {
    JWTClaims {
        custom: claims
            .as_object()
            .cloned()
            .expect("claims must be a JSON object"),
        ..JWTClaims::new()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Claims of a typical ID token: `iss`, `aud`, `sub` (derived from the
/// email), `email`, `groups`, `iat` = now, `exp` = now + 1 h.
pub fn standard_claims(issuer: &str, audience: &str, email: &str, groups: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": format!("user-{}", email.split('@').next().unwrap_or(email)),
        "email": email,
        "groups": groups,
        "iat": now,
        "exp": now + 3600,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::{b64url_decode, segment_json};

    fn claims() -> Value {
        standard_claims(
            "https://issuer.test",
            "kubeflow",
            "alice@example.com",
            &["a", "b"],
        )
    }

    #[test]
    fn signed_tokens_carry_exactly_the_given_claims_and_the_key_id() {
        let idp = Idp::shared();
        for alg in [Alg::RS256, Alg::ES256] {
            let token = idp.sign(alg, &claims());
            assert_eq!(segment_json(&token, 1), claims());
            let header = segment_json(&token, 0);
            assert_eq!(header["kid"], idp.kid(alg));
            assert_eq!(header["alg"], format!("{alg:?}"));
        }
        let no_exp = json!({"iss": "x", "sub": "y"});
        assert_eq!(segment_json(&idp.sign(Alg::RS256, &no_exp), 1), no_exp);
    }

    #[test]
    fn jwks_keys_verify_the_tokens() {
        let idp = Idp::shared();
        let jwks = idp.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let decode = |v: &Value| b64url_decode(v.as_str().unwrap()).unwrap();

        let rsa = &keys[0];
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["kid"], RSA_KID);
        assert_eq!(rsa["use"], "sig");
        assert_eq!(decode(&rsa["n"]).len(), 256);
        assert_eq!(decode(&rsa["e"]), vec![1, 0, 1]);
        let public =
            RS256PublicKey::from_components(&decode(&rsa["n"]), &decode(&rsa["e"])).unwrap();
        let token = idp.sign(Alg::RS256, &claims());
        public
            .verify_token::<Map<String, Value>>(&token, None)
            .unwrap();

        let ec = &keys[1];
        assert_eq!(ec["kty"], "EC");
        assert_eq!(ec["crv"], "P-256");
        assert_eq!(ec["kid"], EC_KID);
        assert!(ec.get("alg").is_none(), "one key leaves alg to be inferred");
        let mut point = vec![4u8];
        point.extend(decode(&ec["x"]));
        point.extend(decode(&ec["y"]));
        let public = ES256PublicKey::from_bytes(&point).unwrap();
        let token = idp.sign(Alg::ES256, &claims());
        public
            .verify_token::<Map<String, Value>>(&token, None)
            .unwrap();

        for value in [&rsa["n"], &ec["x"], &ec["y"]] {
            let text = value.as_str().unwrap();
            assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        }
    }

    #[test]
    fn another_kid_in_the_header_keeps_the_same_key() {
        let idp = Idp::shared();
        let token = idp.sign_with_kid(Alg::ES256, "nope", &claims());
        assert_eq!(segment_json(&token, 0)["kid"], "nope");
        let rebuilt = ES256KeyPair::from_der(&idp.ec.to_der().unwrap())
            .unwrap()
            .public_key();
        rebuilt
            .verify_token::<Map<String, Value>>(&token, None)
            .unwrap();
    }

    #[test]
    fn standard_claims_expire_in_an_hour() {
        let c = claims();
        let exp = c["exp"].as_u64().unwrap();
        let iat = c["iat"].as_u64().unwrap();
        assert_eq!(exp - iat, 3600);
        assert_eq!(c["groups"], json!(["a", "b"]));
        assert_eq!(c["sub"], "user-alice");
    }
}
