//! One validated `jwtRules` entry: whose tokens it takes, where its keys come
//! from, where its token is found, and which headers its claims become. Apart
//! from `config` (which builds it) so that a feature reading the rules does
//! not import the whole configuration, and the configuration its features.

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::jwks::KeySet;
use crate::token::TokenLocation;

/// Where a rule's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// `jwks`: parsed once, at load time.
    Inline(KeySet),
    /// `jwksUri`: fetched with an HTTP callout.
    Remote(Endpoint),
    /// Neither: OpenID Connect discovery at `{issuer}/.well-known/openid-configuration`,
    /// whose `jwks_uri` is then fetched (through `jwks_cluster` when given).
    Discovery {
        document: Endpoint,
        jwks_cluster: Option<String>,
    },
}

impl KeySource {
    /// Is this key set fetched (and so refreshed, shared and possibly missing)?
    pub fn is_remote(&self) -> bool {
        !matches!(self, KeySource::Inline(_))
    }

    /// The URL that identifies the source (for logs and the shared-data key).
    pub fn location(&self) -> &str {
        match self {
            KeySource::Inline(_) => "inline",
            KeySource::Remote(endpoint) => &endpoint.uri,
            KeySource::Discovery { document, .. } => &document.uri,
        }
    }
}

/// One `outputClaimToHeaders` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// Lower-case header name.
    pub header: String,
    /// Claim name or dotted path (`realm_access.roles`).
    pub claim: String,
    pub prefix: String,
    /// The claim is in the rule's `spaceDelimitedClaims`: a string value is a
    /// list of words, written as an array is (`a,b`).
    pub space_delimited: bool,
}

/// One validated `jwtRules` entry.
#[derive(Debug)]
pub struct JwtRule {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub locations: Vec<TokenLocation>,
    pub forward_original_token: bool,
    pub output_payload_to_header: Option<String>,
    pub claim_headers: Vec<ClaimHeader>,
    pub timeout: Duration,
    /// `presence: REQUIRED`.
    pub required: bool,
    /// `spaceDelimitedClaims`: claims whose string value is a space-delimited list.
    pub space_delimited_claims: Vec<String>,
    /// `tokenReview`: also ask the API server (TokenReview) about each token,
    /// with these audiences.
    pub token_review: Option<Vec<String>>,
}
