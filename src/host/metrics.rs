//! Counters and gauges, visible in Envoy's admin `/stats` and `/stats/prometheus`.
//! Every VM defines the same names; Envoy adds them up.

use proxy_wasm::types::MetricType;

use super::abi;
use crate::config::Config;
use crate::outcome::Reason;

#[derive(Default)]
pub struct Metrics {
    allowed: Option<u32>,
    unauthenticated: Option<u32>,
    denied: Option<u32>,
    denied_by_reason: Vec<(Reason, Option<u32>)>,
    fetch_success: Option<u32>,
    fetch_failed: Option<u32>,
    refetch_unknown_kid: Option<u32>,
    authz_allowed: Option<u32>,
    authz_denied: Option<u32>,
    authz_error: Option<u32>,
    authz_cache_hit: Option<u32>,
    authz_cache_miss: Option<u32>,
    authz_coalesced: Option<u32>,
    token_review_allowed: Option<u32>,
    token_review_denied: Option<u32>,
    token_review_error: Option<u32>,
    token_review_cache_hit: Option<u32>,
    token_review_cache_miss: Option<u32>,
    token_review_coalesced: Option<u32>,
    cookie_stripped: Option<u32>,
    session_cookie_stripped: Option<u32>,
    session_header_too_large: Option<u32>,
    /// Per rule: seconds since its keys were fetched (remote rules only).
    key_age: Vec<Option<u32>>,
}

fn counter(name: &str) -> Option<u32> {
    abi::define_metric(MetricType::Counter, name).ok()
}

/// `kfauth.jwks.age_seconds.<issuer>`, the issuer reduced to `[A-Za-z0-9_]`.
pub fn key_age_metric_name(issuer: &str) -> String {
    let issuer: String = issuer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("kfauth.jwks.age_seconds.{issuer}")
}

fn bump(metric: Option<u32>) {
    if let Some(id) = metric {
        let _ = abi::increment_metric(id, 1);
    }
}

/// `kfauth.authz.credential_missing`: 1 while `tokenEnv` names a variable the
/// VM lacks (every review-needing request then gets `failureMode`'s answer),
/// so an alert can catch an install whose gateway never got its token.
fn record_credential_gauge(config: &Config) {
    let Some(authorization) = &config.authorization else {
        return;
    };
    if let Ok(id) = abi::define_metric(MetricType::Gauge, "kfauth.authz.credential_missing") {
        let missing = authorization.apiserver.missing_credential().is_some();
        let _ = abi::record_metric(id, u64::from(missing));
    }
}

/// `kfauth.signatures.host`: 1 while Envoy's `verify_signature` checks RS*
/// and ES256/ES384 signatures, 0 while kfauth's own code in Wasm does.
pub fn record_signature_gauge(host: bool) {
    if let Ok(id) = abi::define_metric(MetricType::Gauge, "kfauth.signatures.host") {
        let _ = abi::record_metric(id, u64::from(host));
    }
}

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        record_credential_gauge(config);
        Metrics {
            allowed: counter("kfauth.jwt.allowed"),
            unauthenticated: counter("kfauth.jwt.unauthenticated"),
            denied: counter("kfauth.jwt.denied"),
            denied_by_reason: Reason::ALL
                .iter()
                .map(|reason| {
                    (
                        *reason,
                        counter(&format!("kfauth.jwt.denied.{}", reason.as_str())),
                    )
                })
                .collect(),
            fetch_success: counter("kfauth.jwks.fetch_success"),
            fetch_failed: counter("kfauth.jwks.fetch_failed"),
            refetch_unknown_kid: counter("kfauth.jwks.refetch_unknown_kid"),
            authz_allowed: counter("kfauth.authz.allowed"),
            authz_denied: counter("kfauth.authz.denied"),
            authz_error: counter("kfauth.authz.error"),
            authz_cache_hit: counter("kfauth.authz.cache_hit"),
            authz_cache_miss: counter("kfauth.authz.cache_miss"),
            authz_coalesced: counter("kfauth.authz.coalesced"),
            token_review_allowed: counter("kfauth.tokenreview.allowed"),
            token_review_denied: counter("kfauth.tokenreview.denied"),
            token_review_error: counter("kfauth.tokenreview.error"),
            token_review_cache_hit: counter("kfauth.tokenreview.cache_hit"),
            token_review_cache_miss: counter("kfauth.tokenreview.cache_miss"),
            token_review_coalesced: counter("kfauth.tokenreview.coalesced"),
            cookie_stripped: counter("kfauth.grpc.cookie_stripped"),
            session_cookie_stripped: counter("kfauth.session.cookie_stripped"),
            session_header_too_large: counter("kfauth.session.header_too_large"),
            key_age: config
                .rules
                .iter()
                .map(|rule| {
                    if rule.keys.is_remote() {
                        abi::define_metric(MetricType::Gauge, &key_age_metric_name(&rule.issuer))
                            .ok()
                    } else {
                        None
                    }
                })
                .collect(),
        }
    }

    pub fn allowed(&self) {
        bump(self.allowed);
    }

    pub fn unauthenticated(&self) {
        bump(self.unauthenticated);
    }

    pub fn denied(&self, reason: Reason) {
        bump(self.denied);
        if reason == Reason::HeaderTooLarge {
            bump(self.session_header_too_large);
        }
        if let Some((_, id)) = self.denied_by_reason.iter().find(|(r, _)| *r == reason) {
            bump(*id);
        }
    }

    pub fn fetch_succeeded(&self) {
        bump(self.fetch_success);
    }

    pub fn fetch_failed(&self) {
        bump(self.fetch_failed);
    }

    pub fn refetch_for_unknown_kid(&self) {
        bump(self.refetch_unknown_kid);
    }

    pub fn authz_allowed(&self) {
        bump(self.authz_allowed);
    }

    /// A refusal by authorization (forbidden, or the API server unavailable).
    pub fn authz_refused(&self, reason: Reason) {
        match reason {
            Reason::Forbidden => bump(self.authz_denied),
            Reason::AuthorizerUnavailable => bump(self.authz_error),
            _ => {}
        }
    }

    pub fn authz_cache_hits(&self, hits: u64) {
        if let (Some(id), Ok(hits)) = (self.authz_cache_hit, i64::try_from(hits)) {
            if hits > 0 {
                let _ = abi::increment_metric(id, hits);
            }
        }
    }

    pub fn authz_cache_miss(&self) {
        bump(self.authz_cache_miss);
    }

    pub fn authz_coalesced(&self) {
        bump(self.authz_coalesced);
    }

    pub fn token_review_answered(&self, status: Option<&crate::authz::token_review::TokenStatus>) {
        use crate::authz::token_review::TokenStatus;
        match status {
            Some(TokenStatus::Authenticated(_)) => bump(self.token_review_allowed),
            Some(TokenStatus::Rejected(_)) => bump(self.token_review_denied),
            Some(TokenStatus::Unreviewed) | None => bump(self.token_review_error),
        }
    }

    pub fn token_review_cache_hits(&self, hits: u64) {
        if let (Some(id), Ok(hits)) = (self.token_review_cache_hit, i64::try_from(hits)) {
            if hits > 0 {
                let _ = abi::increment_metric(id, hits);
            }
        }
    }

    pub fn token_review_cache_miss(&self) {
        bump(self.token_review_cache_miss);
    }

    pub fn token_review_coalesced(&self) {
        bump(self.token_review_coalesced);
    }

    pub fn cookie_stripped(&self) {
        bump(self.cookie_stripped);
    }

    pub fn session_cookie_stripped(&self) {
        bump(self.session_cookie_stripped);
    }

    pub fn key_age(&self, rule: usize, seconds: u64) {
        if let Some(Some(id)) = self.key_age.get(rule) {
            let _ = abi::record_metric(*id, seconds);
        }
    }
}
