//! What the broker reports to the host as it goes: metric changes and log
//! lines. The host turns them into proxy-wasm calls; the broker keeps no
//! counters of its own.

use crate::config::Config;
use crate::outcome::Reason;

/// One metric kfauth defines in Envoy (every VM defines the same names; Envoy
/// adds them up). The names are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Allowed,
    Unauthenticated,
    Denied,
    DeniedFor(Reason),
    FetchSucceeded,
    FetchFailed,
    RefetchUnknownKid,
    AuthzAllowed,
    AuthzDenied,
    AuthzError,
    AuthzCacheHit,
    AuthzCacheMiss,
    AuthzCoalesced,
    TokenReviewAllowed,
    TokenReviewDenied,
    TokenReviewError,
    TokenReviewCacheHit,
    TokenReviewCacheMiss,
    TokenReviewCoalesced,
    CookieStripped,
    SessionCookieStripped,
    SessionHeaderTooLarge,
    /// Gauge: seconds since rule `n`'s keys were fetched (remote rules only).
    KeyAge(usize),
    /// Gauge: 1 while `tokenEnv` names a variable the VM lacks (every
    /// review-needing request then gets `failureMode`'s answer), so an alert
    /// can catch an install whose gateway never got its token.
    CredentialMissing,
    /// Gauge: 1 while Envoy's `verify_signature` checks RS* and ES256/ES384
    /// signatures, 0 while kfauth's own code in Wasm does.
    SignaturesHost,
}

/// Every metric but those of a reason or a rule.
const FIXED: [Metric; 23] = [
    Metric::Allowed,
    Metric::Unauthenticated,
    Metric::Denied,
    Metric::FetchSucceeded,
    Metric::FetchFailed,
    Metric::RefetchUnknownKid,
    Metric::AuthzAllowed,
    Metric::AuthzDenied,
    Metric::AuthzError,
    Metric::AuthzCacheHit,
    Metric::AuthzCacheMiss,
    Metric::AuthzCoalesced,
    Metric::TokenReviewAllowed,
    Metric::TokenReviewDenied,
    Metric::TokenReviewError,
    Metric::TokenReviewCacheHit,
    Metric::TokenReviewCacheMiss,
    Metric::TokenReviewCoalesced,
    Metric::CookieStripped,
    Metric::SessionCookieStripped,
    Metric::SessionHeaderTooLarge,
    Metric::CredentialMissing,
    Metric::SignaturesHost,
];

impl Metric {
    /// Every metric a configuration defines.
    pub fn defined(config: &Config) -> Vec<Metric> {
        let mut all: Vec<Metric> = FIXED
            .iter()
            .copied()
            .filter(|metric| *metric != Metric::CredentialMissing || config.authorization.is_some())
            .collect();
        all.extend(Reason::ALL.iter().map(|reason| Metric::DeniedFor(*reason)));
        all.extend(
            config
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.keys.is_remote())
                .map(|(index, _)| Metric::KeyAge(index)),
        );
        all
    }

    /// A gauge is set; every other metric is a counter.
    pub fn is_gauge(self) -> bool {
        matches!(
            self,
            Metric::KeyAge(_) | Metric::CredentialMissing | Metric::SignaturesHost
        )
    }

    pub fn name(self, config: &Config) -> String {
        let name = match self {
            Metric::Allowed => "kfauth.jwt.allowed",
            Metric::Unauthenticated => "kfauth.jwt.unauthenticated",
            Metric::Denied => "kfauth.jwt.denied",
            Metric::DeniedFor(reason) => return format!("kfauth.jwt.denied.{}", reason.as_str()),
            Metric::FetchSucceeded => "kfauth.jwks.fetch_success",
            Metric::FetchFailed => "kfauth.jwks.fetch_failed",
            Metric::RefetchUnknownKid => "kfauth.jwks.refetch_unknown_kid",
            Metric::AuthzAllowed => "kfauth.authz.allowed",
            Metric::AuthzDenied => "kfauth.authz.denied",
            Metric::AuthzError => "kfauth.authz.error",
            Metric::AuthzCacheHit => "kfauth.authz.cache_hit",
            Metric::AuthzCacheMiss => "kfauth.authz.cache_miss",
            Metric::AuthzCoalesced => "kfauth.authz.coalesced",
            Metric::TokenReviewAllowed => "kfauth.tokenreview.allowed",
            Metric::TokenReviewDenied => "kfauth.tokenreview.denied",
            Metric::TokenReviewError => "kfauth.tokenreview.error",
            Metric::TokenReviewCacheHit => "kfauth.tokenreview.cache_hit",
            Metric::TokenReviewCacheMiss => "kfauth.tokenreview.cache_miss",
            Metric::TokenReviewCoalesced => "kfauth.tokenreview.coalesced",
            Metric::CookieStripped => "kfauth.grpc.cookie_stripped",
            Metric::SessionCookieStripped => "kfauth.session.cookie_stripped",
            Metric::SessionHeaderTooLarge => "kfauth.session.header_too_large",
            Metric::KeyAge(rule) => {
                let issuer = config
                    .rules
                    .get(rule)
                    .map_or("", |rule| rule.issuer.as_str());
                return key_age_metric_name(issuer);
            }
            Metric::CredentialMissing => "kfauth.authz.credential_missing",
            Metric::SignaturesHost => "kfauth.signatures.host",
        };
        name.to_string()
    }
}

/// `kfauth.jwks.age_seconds.<issuer>`, the issuer reduced to `[A-Za-z0-9_]`.
pub fn key_age_metric_name(issuer: &str) -> String {
    let issuer: String = issuer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("kfauth.jwks.age_seconds.{issuer}")
}

/// Log levels, as Envoy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Add to a counter.
    Count(Metric, u64),
    /// Set a gauge.
    Record(Metric, u64),
    /// One log line (never a token or a cookie value).
    Log(Level, String),
}
