//! The reason words of a refusal: the wire contract (the response body's
//! `reason`, the gRPC message), and the HTTP and gRPC status of each.

/// Why a request was refused. The words are part of the contract: stable, snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    TokenMissing,
    /// The API server's TokenReview refused a token whose signature is good.
    TokenRevoked,
    TokenMalformed,
    TokenExpired,
    TokenNotYetValid,
    IssuerUnknown,
    AudienceMismatch,
    SignatureInvalid,
    KeyUnknown,
    JwksUnavailable,
    Forbidden,
    AuthorizerUnavailable,
    /// A header the backend would receive is over the path's `headerBudgets`
    /// entry (`maxHeaderBytes`): 431 rather than the backend's own failure.
    HeaderTooLarge,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::TokenMissing,
        Reason::TokenRevoked,
        Reason::TokenMalformed,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::IssuerUnknown,
        Reason::AudienceMismatch,
        Reason::SignatureInvalid,
        Reason::KeyUnknown,
        Reason::JwksUnavailable,
        Reason::Forbidden,
        Reason::AuthorizerUnavailable,
        Reason::HeaderTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TokenMissing => "token_missing",
            Reason::TokenRevoked => "token_revoked",
            Reason::TokenMalformed => "token_malformed",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::IssuerUnknown => "issuer_unknown",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::KeyUnknown => "key_unknown",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::Forbidden => "forbidden",
            Reason::AuthorizerUnavailable => "authorizer_unavailable",
            Reason::HeaderTooLarge => "header_too_large",
        }
    }

    /// The HTTP status of a plain HTTP refusal.
    pub fn http_status(self) -> u32 {
        match self {
            Reason::Forbidden => 403,
            Reason::JwksUnavailable | Reason::AuthorizerUnavailable => 503,
            // RFC 6585 section 5: Request Header Fields Too Large.
            Reason::HeaderTooLarge => 431,
            _ => 401,
        }
    }

    /// The gRPC status code of a refusal of a gRPC request:
    /// 16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14 UNAVAILABLE,
    /// 8 RESOURCE_EXHAUSTED (what gRPC servers answer to metadata over their limit).
    pub fn grpc_status(self) -> u32 {
        match self.http_status() {
            403 => 7,
            503 => 14,
            431 => 8,
            _ => 16,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
