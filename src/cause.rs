//! Why, within its reason word, a request was refused: `token_malformed`
//! alone has a dozen causes. The cause goes to the denial's log line
//! (`token_malformed: header not a JSON object`); the wire keeps the reason
//! word alone, so a client learns no more than before. A cause never holds
//! token material.

use crate::reason::Reason;

/// One cause of a refusal; [`Cause::reason`] is its reason word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    // token_missing
    /// No token, and `requireJwt` is true.
    NoToken,
    /// No valid token of the rule with `presence: REQUIRED`.
    RequiredRuleTokenAbsent,

    // token_malformed: the token cannot be read as a JWT kfauth accepts.
    /// The same request carries two different tokens.
    TokensDiffer,
    /// Longer than `token::MAX_TOKEN_BYTES`.
    TokenTooLong,
    /// Not `header.payload.signature`.
    NotThreeSegments,
    HeaderTooLong,
    /// A segment is not unpadded base64url.
    NotBase64url,
    /// Not a JSON object, or a member name repeated.
    HeaderNotJson,
    PayloadNotJson,
    /// `alg` absent or not a string.
    AlgNotString,
    KidNotString,
    /// `crit` names an extension (RFC 7515 section 4.1.11).
    CritExtension,
    /// `cty`, `jku`, `jwk`, `x5u`, `x5t`, `x5t#S256`, `salt` or `x5c` of the wrong type.
    HeaderParameterType,
    TypNotJwt,
    /// `exp`, `nbf` or `iat` not a number from 0 to 2^32.
    TimeClaimType,
    /// `iss`, `sub`, `jti` or `nonce` not a string.
    ClaimNotString,
    /// `aud` neither a string nor a list of strings.
    AudienceType,
    /// No `exp`: a token that never expires.
    ExpMissing,
    /// A mapped claim is no safe header value (a control character, or
    /// whitespace at either end).
    UnsafeClaimValue,

    // token_expired, token_not_yet_valid, audience_mismatch
    Expired,
    NotYetValid,
    AudienceMismatch,

    // issuer_unknown
    /// No `iss`, or one no rule has.
    IssuerNotConfigured,

    // signature_invalid
    /// `none`, `HS*` or an algorithm kfauth does not verify.
    AlgorithmUnsupported,
    /// No key of the set fits the token's algorithm (and `kid`).
    NoKeyForAlgorithm,
    /// The keys tried do not verify the signature.
    SignatureMismatch,

    // key_unknown
    /// The token's `kid` names no key of the set, and no key without `kid` verifies it.
    KidUnknown,

    // jwks_unavailable
    /// The rule's keys are not fetched yet, or were dropped as stale.
    KeysNotFetched,
    /// Envoy could not hand over the request headers: fail closed.
    HeadersUnreadable,
    /// No accepted configuration on this worker: fail closed.
    NotConfigured,
}

impl Cause {
    /// The reason word on the wire.
    pub fn reason(self) -> Reason {
        match self {
            Cause::NoToken | Cause::RequiredRuleTokenAbsent => Reason::TokenMissing,
            Cause::TokensDiffer
            | Cause::TokenTooLong
            | Cause::NotThreeSegments
            | Cause::HeaderTooLong
            | Cause::NotBase64url
            | Cause::HeaderNotJson
            | Cause::PayloadNotJson
            | Cause::AlgNotString
            | Cause::KidNotString
            | Cause::CritExtension
            | Cause::HeaderParameterType
            | Cause::TypNotJwt
            | Cause::TimeClaimType
            | Cause::ClaimNotString
            | Cause::AudienceType
            | Cause::ExpMissing
            | Cause::UnsafeClaimValue => Reason::TokenMalformed,
            Cause::Expired => Reason::TokenExpired,
            Cause::NotYetValid => Reason::TokenNotYetValid,
            Cause::AudienceMismatch => Reason::AudienceMismatch,
            Cause::IssuerNotConfigured => Reason::IssuerUnknown,
            Cause::AlgorithmUnsupported | Cause::NoKeyForAlgorithm | Cause::SignatureMismatch => {
                Reason::SignatureInvalid
            }
            Cause::KidUnknown => Reason::KeyUnknown,
            Cause::KeysNotFetched | Cause::HeadersUnreadable | Cause::NotConfigured => {
                Reason::JwksUnavailable
            }
        }
    }

    /// What the log line says after the reason word.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NoToken => "no token, and requireJwt",
            Cause::RequiredRuleTokenAbsent => "no token of the REQUIRED rule",
            Cause::TokensDiffer => "two different tokens in one request",
            Cause::TokenTooLong => "token over 64 KiB",
            Cause::NotThreeSegments => "not three dot-separated segments",
            Cause::HeaderTooLong => "header segment too long",
            Cause::NotBase64url => "a segment is not base64url",
            Cause::HeaderNotJson => "header not a JSON object",
            Cause::PayloadNotJson => "payload not a JSON object",
            Cause::AlgNotString => "alg missing or not a string",
            Cause::KidNotString => "kid not a string",
            Cause::CritExtension => "crit names an extension",
            Cause::HeaderParameterType => "a header parameter of the wrong type",
            Cause::TypNotJwt => "typ not JWT",
            Cause::TimeClaimType => "exp, nbf or iat not a NumericDate",
            Cause::ClaimNotString => "iss, sub, jti or nonce not a string",
            Cause::AudienceType => "aud not a string or a list of strings",
            Cause::ExpMissing => "no exp",
            Cause::UnsafeClaimValue => "a mapped claim is no safe header value",
            Cause::Expired => "exp passed",
            Cause::NotYetValid => "nbf or iat in the future",
            Cause::AudienceMismatch => "aud names none of the rule's audiences",
            Cause::IssuerNotConfigured => "no rule for its iss",
            Cause::AlgorithmUnsupported => "alg not one kfauth verifies",
            Cause::NoKeyForAlgorithm => "no key fits its alg",
            Cause::SignatureMismatch => "no key verifies the signature",
            Cause::KidUnknown => "no key has its kid",
            Cause::KeysNotFetched => "the rule's keys are not fetched",
            Cause::HeadersUnreadable => "request headers unreadable",
            Cause::NotConfigured => "no accepted configuration",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason().as_str(), self.as_str())
    }
}

impl std::error::Error for Cause {}

impl From<Cause> for Reason {
    fn from(cause: Cause) -> Reason {
        cause.reason()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_cause_prints_its_reason_word_first() {
        assert_eq!(
            Cause::HeaderNotJson.to_string(),
            "token_malformed: header not a JSON object"
        );
        assert_eq!(
            Cause::HeadersUnreadable.to_string(),
            "jwks_unavailable: request headers unreadable"
        );
    }
}
