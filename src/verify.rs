//! Verifying a JWT (RFC 7519) against one rule and its keys, at a given time.
//!
//! Order of checks: size, structure (before any crypto), issuer -> rule (done by
//! the pipeline), algorithm, key by `kid` (see [`candidate_keys`]), signature,
//! then claims. Each failure is one reason word. `decode` reads the header and
//! claims once, for every algorithm and whoever checks the signature; the time
//! claims are checked against the host time passed in, `exp` is required and
//! `aud` is any-of.

use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};

use crate::cause::Cause;
use crate::jwks::{Algorithm, KeySet, VerifyingKey};
use crate::jwt_rule::JwtRule;
use crate::token::MAX_TOKEN_BYTES;

/// The most signatures one token is checked against, whatever the key set
/// holds: the first this many candidate keys (JWKS order) are tried. A token
/// whose `kid` names no key, or that has none, may otherwise make every key of
/// its algorithm be tried, and a forged token is never remembered: with 3,000
/// P-256 keys that was 5 s of a worker per request. An identity provider that
/// leaves `kid` out has a key or two (the current one, the next, the last).
pub const MAX_SIGNATURE_CHECKS: usize = 4;

/// NumericDates (`exp`, `nbf`, `iat`) must be below this (2^32 s, in 2106).
const MAX_NUMERIC_DATE: f64 = 4_294_967_296.0;

/// The longest header segment read (base64url characters): jwt-simple's limit
/// (`token::MAX_HEADER_LENGTH`, 8,192) when kfauth verified with it, kept so that
/// the same tokens are refused.
pub const MAX_HEADER_SEGMENT: usize = 8192;

/// The decoded, not yet verified, parts of a compact JWS.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedToken {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// The payload segment as sent (base64url), for `outputPayloadToHeader`.
    pub payload_segment: String,
}

impl UnverifiedToken {
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, Cause> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Cause::NotBase64url)
}

/// Decodes a compact JWS (`header.payload.signature`) without trusting it.
/// Registered claims must have their RFC 7519 types, so that what is verified
/// later is exactly what was read here.
pub fn decode(token: &str) -> Result<UnverifiedToken, Cause> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Cause::TokenTooLong);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Cause::NotThreeSegments);
    };
    // Whatever the kid: a header this long is no identity provider's.
    if header.len() > MAX_HEADER_SEGMENT {
        return Err(Cause::HeaderTooLong);
    }
    decode_segment(signature)?;
    // Duplicate member names are refused: what kfauth reads must be what
    // the backends read.
    let header =
        crate::claims::parse_unique_object(&decode_segment(header)?).ok_or(Cause::HeaderNotJson)?;
    let claims = crate::claims::parse_unique_object(&decode_segment(payload)?)
        .ok_or(Cause::PayloadNotJson)?;

    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(Cause::AlgNotString),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Cause::KidNotString),
    };
    // RFC 7515 section 4.1.11: a critical extension we do not understand must be refused.
    if header
        .get("crit")
        .is_some_and(|crit| crit.as_array().is_none_or(|list| !list.is_empty()))
    {
        return Err(Cause::CritExtension);
    }
    // Header parameters of the types jwt-simple read them as when kfauth
    // verified with it (it takes `jwk` as a string, though RFC 7515 makes it an
    // object), so that the same tokens are malformed. `jku`, `jwk`, `x5u` and
    // `x5c` are never used to find a key.
    for name in ["cty", "jku", "jwk", "x5u", "x5t", "x5t#S256", "salt"] {
        if header.get(name).is_some_and(|value| !value.is_string()) {
            return Err(Cause::HeaderParameterType);
        }
    }
    if header.get("x5c").is_some_and(|value| {
        value
            .as_array()
            .is_none_or(|list| !list.iter().all(Value::is_string))
    }) {
        return Err(Cause::HeaderParameterType);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case("JWT") || typ.to_ascii_uppercase().ends_with("+JWT") => {}
        Some(_) => return Err(Cause::TypNotJwt),
    }
    for name in ["exp", "nbf", "iat"] {
        if let Some(value) = claims.get(name) {
            // The bound of jwt-simple's clock (it saturates at 2^32 s, in
            // 2106) when kfauth verified with it, kept: the same tokens are
            // malformed.
            if value
                .as_f64()
                .is_none_or(|time| !(0.0..MAX_NUMERIC_DATE).contains(&time))
            {
                return Err(Cause::TimeClaimType);
            }
        }
    }
    for name in ["iss", "sub", "jti", "nonce"] {
        if claims.get(name).is_some_and(|value| !value.is_string()) {
            return Err(Cause::ClaimNotString);
        }
    }
    if let Some(aud) = claims.get("aud") {
        let valid = match aud {
            Value::String(_) => true,
            Value::Array(list) => list.iter().all(Value::is_string),
            _ => false,
        };
        if !valid {
            return Err(Cause::AudienceType);
        }
    }
    Ok(UnverifiedToken {
        alg,
        kid,
        claims,
        payload_segment: payload.to_string(),
    })
}

/// Verifies the signature and claims of `token` (already decoded as `unverified`)
/// for `rule` with `keys`, at `now` (seconds since the epoch, from the host clock).
pub fn verify(
    token: &str,
    unverified: &UnverifiedToken,
    rule: &JwtRule,
    keys: &KeySet,
    now: Duration,
    clock_skew: Duration,
) -> Result<(), Cause> {
    // `none`, `HS*` and unknown algorithms: no key of ours can vouch for them.
    let algorithm = Algorithm::from_name(&unverified.alg).ok_or(Cause::AlgorithmUnsupported)?;
    let (candidates, failure) = candidate_keys(keys, unverified.kid.as_deref(), algorithm);
    if candidates.is_empty() {
        return Err(failure);
    }

    let host = keys.signature_host();
    if !candidates
        .iter()
        .any(|key| key.verify_signature(token, host))
    {
        return Err(failure);
    }
    check_times(&unverified.claims, now, clock_skew)?;

    // A token that never expires is refused.
    if !unverified.claims.contains_key("exp") {
        return Err(Cause::ExpMissing);
    }
    if !rule.audiences.is_empty() && !audience_matches(&unverified.claims, &rule.audiences) {
        return Err(Cause::AudienceMismatch);
    }
    Ok(())
}

/// The keys `token` may be checked against, at most [`MAX_SIGNATURE_CHECKS`]
/// of them in JWKS order, and the cause to answer when none verifies.
///
/// As Envoy's jwt_authn (google/jwt_verify_lib `src/verify.cc`,
/// `verifyJwtWithoutTimeChecking`), a key is passed over only when both it and
/// the token have a `kid` and the two differ, and only keys that fit the
/// token's algorithm are tried. kfauth prefers an exact match: when keys carry
/// the token's `kid`, only they are tried (the token names its key; a bad
/// signature is `signature_invalid`). When none does, the keys without `kid`
/// are tried, and failing them the answer stays `key_unknown`, so that the
/// pipeline may refetch the set (the `kid` may be a key the issuer just added).
/// A token without `kid` tries every key that fits its algorithm.
pub fn candidate_keys<'a>(
    keys: &'a KeySet,
    kid: Option<&str>,
    algorithm: Algorithm,
) -> (Vec<&'a VerifyingKey>, Cause) {
    let named = kid.filter(|kid| keys.has_kid(kid));
    let tried = |jwk_kid: Option<&str>| match (kid, named) {
        (_, Some(named)) => jwk_kid == Some(named),
        (Some(_), None) => jwk_kid.is_none(),
        (None, _) => true,
    };
    let candidates: Vec<_> = keys
        .iter()
        .filter(|jwk| tried(jwk.kid.as_deref()))
        .filter_map(|jwk| jwk.key_for(algorithm))
        .take(MAX_SIGNATURE_CHECKS)
        .collect();
    // A `kid` nothing carries is an unknown key; a named key of another
    // type, or no key of the token's type: the algorithm does not fit.
    let failure = if kid.is_some() && named.is_none() {
        Cause::KidUnknown
    } else if candidates.is_empty() {
        Cause::NoKeyForAlgorithm
    } else {
        Cause::SignatureMismatch
    };
    (candidates, failure)
}

/// The time claims of a token whose signature is good (RFC 7519 sections
/// 4.1.4-4.1.6), each allowed `clock_skew`, in jwt-simple's order: `iat` in the
/// future or `nbf` not reached is `token_not_yet_valid`, `exp` passed is
/// `token_expired`. The verified-token cache re-checks `exp` and `nbf` the same way.
fn check_times(
    claims: &Map<String, Value>,
    now: Duration,
    clock_skew: Duration,
) -> Result<(), Cause> {
    let time = |name| claims.get(name).and_then(Value::as_f64);
    let now = now.as_secs_f64();
    let skew = clock_skew.as_secs_f64();
    if time("iat").is_some_and(|iat| iat > now + skew)
        || time("nbf").is_some_and(|nbf| nbf > now + skew)
    {
        return Err(Cause::NotYetValid);
    }
    if time("exp").is_some_and(|exp| now - skew > exp) {
        return Err(Cause::Expired);
    }
    Ok(())
}

fn audience_matches(claims: &Map<String, Value>, allowed: &[String]) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => allowed.contains(aud),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| allowed.iter().any(|allowed| allowed == aud)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn check(token: &str, config_json: serde_json::Value) -> Result<(), Cause> {
        let config = crate::config::Config::parse(config_json.to_string().as_bytes()).unwrap();
        let unverified = decode(token)?;
        let rule = &config.rules[0];
        let crate::jwt_rule::KeySource::Inline(keys) = &rule.keys else {
            panic!("inline keys expected")
        };
        verify(token, &unverified, rule, keys, NOW, config.clock_skew)
    }

    #[test]
    fn valid_tokens_of_every_key_type_pass() {
        for (alg, kid) in [
            ("RS256", "rsa-1"),
            ("PS384", "rsa-1"),
            ("ES256", "ec-1"),
            ("EdDSA", "ed-1"),
        ] {
            let token = sign(alg, Some(kid), &standard_claims());
            assert_eq!(check(&token, all_keys_config()), Ok(()), "{alg}");
        }
    }

    #[test]
    fn a_token_without_kid_tries_each_key() {
        let token = sign("RS256", None, &standard_claims());
        assert_eq!(check(&token, all_keys_config()), Ok(()));
    }

    #[test]
    fn time_claims_are_checked_against_the_given_time_with_skew() {
        let mut claims = standard_claims();
        claims["exp"] = (NOW_SECS - 61).into();
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), all_keys_config()),
            Err(Cause::Expired)
        );
        claims["exp"] = (NOW_SECS - 30).into();
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), all_keys_config()),
            Ok(())
        );

        let mut claims = standard_claims();
        claims["nbf"] = (NOW_SECS + 120).into();
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), all_keys_config()),
            Err(Cause::NotYetValid)
        );
        let mut claims = standard_claims();
        claims["iat"] = (NOW_SECS + 120).into();
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), all_keys_config()),
            Err(Cause::NotYetValid)
        );

        let mut claims = standard_claims();
        claims.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), all_keys_config()),
            Err(Cause::ExpMissing)
        );
    }

    #[test]
    fn audiences_are_any_of() {
        let mut config = all_keys_config();
        config["jwtRules"][0]["audiences"] = serde_json::json!(["other", "kubeflow"]);
        let mut claims = standard_claims();
        claims["aud"] = serde_json::json!(["x", "kubeflow"]);
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), config.clone()),
            Ok(())
        );
        claims["aud"] = "x".into();
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), config.clone()),
            Err(Cause::AudienceMismatch)
        );
        claims.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            check(&sign("RS256", Some("rsa-1"), &claims), config),
            Err(Cause::AudienceMismatch)
        );
    }

    #[test]
    fn forged_and_confused_tokens_are_refused() {
        let claims = standard_claims();
        // Payload altered after signing.
        let good = sign("RS256", Some("rsa-1"), &claims);
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut altered_claims = claims.clone();
        altered_claims["email"] = "admin@example.com".into();
        let altered = b64(&altered_claims.to_string());
        parts[1] = &altered;
        assert_eq!(
            check(&parts.join("."), all_keys_config()),
            Err(Cause::SignatureMismatch)
        );
        // Signed by another key that claims a known kid.
        assert_eq!(
            check(
                &sign_with_other_rsa_key("rsa-1", &claims),
                all_keys_config()
            ),
            Err(Cause::SignatureMismatch)
        );
        // Unknown kid.
        assert_eq!(
            check(&sign("RS256", Some("nope"), &claims), all_keys_config()),
            Err(Cause::KidUnknown)
        );
        // alg: none.
        assert_eq!(
            check(&unsigned_token(Some("rsa-1"), &claims), all_keys_config()),
            Err(Cause::AlgorithmUnsupported)
        );
        // HS256 with the RSA public key as the HMAC secret.
        assert_eq!(
            check(&hs256_with_public_key("rsa-1", &claims), all_keys_config()),
            Err(Cause::AlgorithmUnsupported)
        );
        // An EC algorithm on an RSA key.
        let signed = sign("ES256", Some("ec-1"), &claims);
        let (header, rest) = signed.split_once('.').unwrap();
        let header = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap()
        .replace("ec-1", "rsa-1");
        let header_swapped = format!("{}.{rest}", b64(&header));
        assert_eq!(
            check(&header_swapped, all_keys_config()),
            Err(Cause::NoKeyForAlgorithm)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_before_crypto() {
        let good = sign("RS256", Some("rsa-1"), &standard_claims());
        let (head, _) = good.rsplit_once('.').unwrap();
        for (bad, cause) in [
            (head.to_string(), Cause::NotThreeSegments),
            (good[..good.len() / 3].to_string(), Cause::NotThreeSegments),
            ("not-a-jwt".to_string(), Cause::NotThreeSegments),
            ("a.b.c".to_string(), Cause::NotBase64url),
            ("%%%.$$$.***".to_string(), Cause::NotBase64url),
            (
                format!("{}.{}.sig", b64("{\"alg\":\"RS256\"}"), b64("[1,2]")),
                Cause::PayloadNotJson,
            ),
            (
                format!("{}.{}.sig", b64("[\"RS256\"]"), b64("{}")),
                Cause::HeaderNotJson,
            ),
            (
                format!("{}.{}.sig", b64("{\"alg\":256}"), b64("{}")),
                Cause::AlgNotString,
            ),
            (
                format!("{}.{}.sig", b64("{\"alg\":\"RS256\",\"kid\":1}"), b64("{}")),
                Cause::KidNotString,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"RS256\"}"),
                    b64("{\"exp\":\"tomorrow\"}")
                ),
                Cause::TimeClaimType,
            ),
            (
                format!("{}.{}.sig", b64("{\"alg\":\"RS256\"}"), b64("{\"sub\":7}")),
                Cause::ClaimNotString,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"RS256\"}"),
                    b64("{\"aud\":[7]}")
                ),
                Cause::AudienceType,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"RS256\",\"crit\":[\"x\"]}"),
                    b64("{}")
                ),
                Cause::CritExtension,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"RS256\",\"typ\":\"JWE\"}"),
                    b64("{}")
                ),
                Cause::TypNotJwt,
            ),
            ("x".repeat(MAX_TOKEN_BYTES + 1), Cause::TokenTooLong),
        ] {
            assert_eq!(decode(&bad).err(), Some(cause), "{bad:.60}");
            assert_eq!(cause.reason(), crate::outcome::Reason::TokenMalformed);
        }
    }

    #[test]
    fn signed_but_ambiguous_or_unreadable_tokens_are_malformed() {
        let claims = standard_claims();
        let inner = claims.to_string();
        let inner = inner.strip_prefix('{').unwrap();
        let header = b64("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}");
        let mut far_future = standard_claims();
        far_future["exp"] = 1e300.into();
        for (bad, cause) in [
            // Duplicate members, in the payload and in the header.
            (
                format!("{header}.{}.sig", b64(&format!("{{\"iss\":\"x\",{inner}"))),
                Cause::PayloadNotJson,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"none\",\"alg\":\"RS256\"}"),
                    b64(&claims.to_string())
                ),
                Cause::HeaderNotJson,
            ),
            // Header parameters of a type jwt-simple cannot read.
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"RSA\"}}"),
                    b64(&claims.to_string())
                ),
                Cause::HeaderParameterType,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64("{\"alg\":\"RS256\",\"x5c\":\"MII\"}"),
                    b64(&claims.to_string())
                ),
                Cause::HeaderParameterType,
            ),
            // A header longer than jwt-simple reads.
            (
                format!(
                    "{}.{}.sig",
                    b64(&format!(
                        "{{\"alg\":\"RS256\",\"kid\":\"{}\"}}",
                        "k".repeat(8192)
                    )),
                    b64(&claims.to_string())
                ),
                Cause::HeaderTooLong,
            ),
            // NumericDates jwt-simple's clock cannot hold.
            (
                format!("{header}.{}.sig", b64(&far_future.to_string())),
                Cause::TimeClaimType,
            ),
        ] {
            assert_eq!(decode(&bad).err(), Some(cause), "{bad:.80}");
        }
        let mut fractional = standard_claims();
        fractional["exp"] = (NOW_SECS as f64 + 0.5).into();
        let token = sign("RS256", Some("rsa-1"), &fractional);
        assert!(decode(&token).is_ok());
    }
}
