//! Authorization in the gateway: the first `authorization.rules` entry that
//! matches a request names a SubjectAccessReview; its answer comes from the
//! cache or from the API server (through the host's callout).

pub mod config;
pub mod subject_access_review;
pub mod template;
pub mod token_review;

use std::time::Duration;

use serde_json::{Map, Value};

use crate::access::Access;
use crate::claims::{header_value, lookup, lookup_list};
use crate::jwt_rule::JwtRule;
use crate::outcome::{Denial, Identity, Reason, Subject};
use crate::request::RequestView;
use crate::verified_token_cache::TokenDigest;
use config::{Attributes, Authorization, AuthzRule, FailureMode};
use subject_access_review::{
    subject_access_review_body, subject_access_review_spec, CachedDecision,
    SubjectAccessReviewAnswer, SubjectAccessReviewCache,
};
use template::{Captures, Template};
use token_review::{TokenReviewCache, TokenStatus, TOKEN_REVIEW_TTL, UNREVIEWED_TTL};

/// What authorization decides before any callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzStep {
    /// No rule matched and `defaultDeny` is off.
    NotGuarded,
    /// Allowed unreviewed: `failureMode: allow` with no credential to ask with.
    Allow,
    Deny(Denial),
    /// The cache held the review's answer: allowed (`None`) or this refusal.
    Cached(Option<Denial>),
    /// Ask the API server: `key` identifies the review (and its cached answer).
    SubjectAccessReview {
        key: String,
        body: Vec<u8>,
    },
}

/// The verb kube-rbac-proxy derives from an HTTP method.
pub fn verb_of(method: &str) -> String {
    match method {
        "GET" | "HEAD" => "get".into(),
        "POST" => "create".into(),
        "PUT" => "update".into(),
        "PATCH" => "patch".into(),
        "DELETE" => "delete".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Query parameters; a parameter given twice is left out (backends disagree on
/// which copy counts, so a review must not be built from either).
fn query_parameters(path: &str) -> std::collections::HashMap<String, String> {
    let mut seen = std::collections::HashMap::new();
    let mut repeated = std::collections::HashSet::new();
    let pairs = path
        .split_once('?')
        .map(|(_, query)| query.split('#').next().unwrap_or(""))
        .into_iter()
        .flat_map(|query| query.split('&'));
    for pair in pairs {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.is_empty() {
            continue;
        }
        if seen.insert(key.to_string(), value.to_string()).is_some() {
            repeated.insert(key.to_string());
        }
    }
    seen.retain(|key, _| !repeated.contains(key));
    seen
}

/// The first rule that matches, with the named captures of its regexes.
fn matching_rule<'a>(
    authz: &'a Authorization,
    request: &RequestView,
) -> Option<(&'a AuthzRule, Captures)> {
    let host = request.canonical_host();
    let path = request.canonical_path();
    // HEAD reads what GET reads (kube-rbac-proxy maps both to `get`).
    let method = if request.method == "HEAD" {
        "GET"
    } else {
        request.method.as_str()
    };
    authz.rules.iter().find_map(|rule| {
        if !rule.methods.is_empty()
            && !rule
                .methods
                .iter()
                .any(|m| m == method || *m == request.method)
        {
            return None;
        }
        let mut captures = Captures::default();
        for (patterns, subject, into) in [
            (&rule.hosts, host.as_str(), &mut captures.host),
            (&rule.paths, path, &mut captures.path),
        ] {
            if patterns.is_empty() {
                continue;
            }
            let found = patterns
                .iter()
                .find_map(|pattern| pattern.captures(subject).map(|c| (pattern, c)))?;
            let (pattern, groups) = found;
            for name in pattern.capture_names().flatten() {
                if let Some(value) = groups.name(name) {
                    into.insert(name.to_string(), value.as_str().to_string());
                }
            }
        }
        captures.query = query_parameters(&request.path);
        Some((rule, captures))
    })
}

fn subject(authz: &Authorization, jwt_rules: &[JwtRule], identity: &Identity) -> Option<Subject> {
    if let Some(reviewed) = &identity.reviewed {
        return Some(reviewed.clone());
    }
    let user = match &authz.user_claim {
        Some(claim) => lookup(&identity.claims, claim).and_then(header_value)?,
        None => {
            let mapping = jwt_rules.get(identity.rule)?.claim_headers.first()?;
            let value = lookup_list(&identity.claims, &mapping.claim, mapping.space_delimited)?;
            let value = header_value(&value)?;
            format!("{}{}", mapping.prefix, value)
        }
    };
    // A claim in the rule's `spaceDelimitedClaims` is a list of words.
    let space_delimited = |claim: &str| {
        jwt_rules
            .get(identity.rule)
            .is_some_and(|rule| rule.space_delimited_claims.iter().any(|c| c == claim))
    };
    let groups = authz
        .groups_claim
        .as_deref()
        .and_then(|claim| lookup_list(&identity.claims, claim, space_delimited(claim)));
    let groups = match groups.as_deref() {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|group| !group.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Some(Subject { user, groups })
}

fn render(
    fields: &[(&str, &Option<Template>)],
    captures: &Captures,
) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (name, template) in fields {
        if let Some(template) = template {
            map.insert(
                (*name).to_string(),
                Value::String(template.render(captures)?),
            );
        }
    }
    Ok(map)
}

/// The attributes of the review for this request.
fn attributes(
    rule: &AuthzRule,
    captures: &Captures,
    request: &RequestView,
) -> Result<(&'static str, Map<String, Value>), String> {
    match &rule.attributes {
        Attributes::Resource {
            namespace,
            group,
            version,
            resource,
            subresource,
            name,
            verb,
        } => {
            let mut map = render(
                &[
                    ("namespace", namespace),
                    ("group", group),
                    ("version", version),
                    ("resource", resource),
                    ("subresource", subresource),
                    ("name", name),
                    ("verb", verb),
                ],
                captures,
            )?;
            map.entry("verb")
                .or_insert_with(|| Value::String(verb_of(&request.method)));
            Ok(("resourceAttributes", map))
        }
        Attributes::NonResource { path, verb } => {
            let mut map = render(&[("path", path), ("verb", verb)], captures)?;
            map.entry("path")
                .or_insert_with(|| Value::String(request.path_only().to_string()));
            map.entry("verb")
                .or_insert_with(|| Value::String(verb_of(&request.method)));
            Ok(("nonResourceAttributes", map))
        }
    }
}

/// Decides what authorization needs for a request whose identity (if any) is
/// verified, noting the review's verb, resource and namespace in `access`.
pub fn authorize(
    authz: &Authorization,
    jwt_rules: &[JwtRule],
    request: &RequestView,
    identity: Option<&Identity>,
    cache: &SubjectAccessReviewCache,
    now: Duration,
    access: &mut Access,
) -> AuthzStep {
    let Some((rule, captures)) = matching_rule(authz, request) else {
        return if !authz.default_deny {
            AuthzStep::NotGuarded
        } else if identity.is_none() {
            AuthzStep::Deny(Denial::new(Reason::TokenMissing, false))
        } else {
            AuthzStep::Deny(Denial::new(Reason::Forbidden, true))
        };
    };
    let Some(identity) = identity else {
        return AuthzStep::Deny(Denial::new(Reason::TokenMissing, false));
    };
    let forbidden = |detail: String| {
        AuthzStep::Deny(Denial {
            reason: Reason::Forbidden,
            cause: None,
            token_sent: true,
            detail: Some(detail),
        })
    };
    let Some(subject) = subject(authz, jwt_rules, identity) else {
        return forbidden("the token has no user claim".into());
    };
    let (field, attributes) = match attributes(rule, &captures, request) {
        Ok(found) => found,
        Err(missing) => return forbidden(format!("the request has no {missing}")),
    };
    let attribute = |name| attributes.get(name).and_then(Value::as_str);
    access.reviewed(
        attribute("verb"),
        attribute("resource").or(attribute("path")),
        attribute("namespace"),
    );
    if let Some(env) = authz.apiserver.missing_credential() {
        return match unavailable(authz, env) {
            None => AuthzStep::Allow,
            Some(denial) => AuthzStep::Deny(denial),
        };
    }
    let spec = subject_access_review_spec(&subject, field, attributes);
    let key = spec.to_string();
    match cache.get(key.as_str(), now) {
        Some(CachedDecision { allowed: true, .. }) => AuthzStep::Cached(None),
        Some(CachedDecision {
            allowed: false,
            reason,
        }) => AuthzStep::Cached(Some(Denial {
            reason: Reason::Forbidden,
            cause: None,
            token_sent: true,
            detail: reason.clone(),
        })),
        None => AuthzStep::SubjectAccessReview {
            body: subject_access_review_body(&spec),
            key,
        },
    }
}

/// What `failureMode` answers when no review can be sent because the API
/// server credential (variable `env`) is missing: `None` lets the request
/// through. Nothing is cached: the gateway's next restart may bring it.
pub fn unavailable(authz: &Authorization, env: &str) -> Option<Denial> {
    match authz.failure_mode {
        FailureMode::Allow => None,
        FailureMode::Deny => Some(Denial {
            reason: Reason::AuthorizerUnavailable,
            cause: None,
            token_sent: true,
            detail: Some(format!("no API server credential: `{env}` is not set")),
        }),
    }
}

/// How long an answer stands: `allowedTtl` or `deniedTtl`; `None` for no
/// usable answer (never cached).
pub fn subject_access_review_ttl(
    authz: &Authorization,
    answer: &SubjectAccessReviewAnswer,
) -> Option<Duration> {
    match answer {
        SubjectAccessReviewAnswer::Allowed => Some(authz.allowed_ttl),
        SubjectAccessReviewAnswer::Denied(_) => Some(authz.denied_ttl),
        SubjectAccessReviewAnswer::Unusable(_) => None,
    }
}

/// Caches an answer for `ttl` (an unusable one is not cached).
pub fn remember_subject_access_review(
    cache: &mut SubjectAccessReviewCache,
    key: &str,
    answer: &SubjectAccessReviewAnswer,
    ttl: Duration,
    now: Duration,
) {
    let decision = match answer {
        SubjectAccessReviewAnswer::Allowed => CachedDecision {
            allowed: true,
            reason: None,
        },
        SubjectAccessReviewAnswer::Denied(reason) => CachedDecision {
            allowed: false,
            reason: reason.clone(),
        },
        SubjectAccessReviewAnswer::Unusable(_) => return,
    };
    cache.insert(key.to_string(), decision, ttl, now);
}

/// The verdict on an answer. `None`: allow (an allowed review, or the API
/// server failed with `failureMode: allow`).
pub fn subject_access_review_verdict(
    authz: &Authorization,
    answer: &SubjectAccessReviewAnswer,
) -> Option<Denial> {
    match answer {
        SubjectAccessReviewAnswer::Allowed => None,
        SubjectAccessReviewAnswer::Denied(reason) => Some(Denial {
            reason: Reason::Forbidden,
            cause: None,
            token_sent: true,
            detail: reason.clone(),
        }),
        SubjectAccessReviewAnswer::Unusable(_) => match authz.failure_mode {
            FailureMode::Allow => None,
            FailureMode::Deny => Some(Denial::new(Reason::AuthorizerUnavailable, true)),
        },
    }
}

/// The verdict on an answer, after caching it for its configured TTL.
pub fn subject_access_review_answered(
    authz: &Authorization,
    cache: &mut SubjectAccessReviewCache,
    key: &str,
    answer: &SubjectAccessReviewAnswer,
    now: Duration,
) -> Option<Denial> {
    if let Some(ttl) = subject_access_review_ttl(authz, answer) {
        remember_subject_access_review(cache, key, answer, ttl, now);
    }
    subject_access_review_verdict(authz, answer)
}

/// What is known of a token after its TokenReview, cached for its lifetime:
/// the answer; or, when there was none (`Err`), with `failureMode: allow` the
/// token goes on unreviewed for a while, with `deny` nothing is known (`None`:
/// its requests are refused as unavailable, and the next one asks again).
pub fn token_review_answered(
    failure_mode: FailureMode,
    cache: &mut TokenReviewCache,
    digest: TokenDigest,
    answer: Result<TokenStatus, String>,
    now: Duration,
) -> Option<TokenStatus> {
    let (status, ttl) = match (answer, failure_mode) {
        (Ok(status), _) => (status, TOKEN_REVIEW_TTL),
        (Err(_), FailureMode::Allow) => (TokenStatus::Unreviewed, UNREVIEWED_TTL),
        (Err(_), FailureMode::Deny) => return None,
    };
    cache.insert(digest, status.clone(), ttl, now);
    Some(status)
}

#[cfg(test)]
mod tests;
