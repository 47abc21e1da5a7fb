//! The steps of one request, in the pipeline's order, each from the core's
//! own public pieces: what matched, where the token was, which rule and key,
//! each check. Descriptive only: the answer is the broker's.

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::cookie_diet;
use crate::identity::{strip_client_identity, verified_identity_headers};
use crate::jwks::{parse_jwks, Algorithm, KeySet};
use crate::jwt_rule::{JwtRule, KeySource};
use crate::outcome::HeaderEdits;
use crate::request::RequestView;
use crate::session;
use crate::token::{find_token, TokenLocation};
use crate::verify::{candidate_keys, decode, verify, UnverifiedToken};

/// The steps, one line each. `jwks`: the documents given for remote issuers.
pub fn steps(
    config: &Config,
    jwks: &[(String, Vec<u8>)],
    view: &RequestView,
    now: Duration,
) -> Vec<String> {
    let mut lines = Vec::new();
    let stripped = strip_client_identity(config, view).remove;
    if stripped.is_empty() {
        lines.push("identity headers: the client sent none".into());
    } else {
        lines.push(format!(
            "identity headers: the client's copies are removed: {}",
            stripped.join(", ")
        ));
    }
    let path = view.canonical_path();
    let goes_on = if config.bypass_cors_preflight && view.is_cors_preflight() {
        lines.push("CORS preflight: passes without authentication".into());
        true
    } else if let Some(pattern) = config.skip_paths.iter().find(|p| p.is_match(path)) {
        lines.push(format!(
            "skipPaths: `{}` matches `{path}`: no authentication",
            pattern.as_str()
        ));
        true
    } else {
        authentication(&mut lines, config, jwks, view, now)
    };
    if goes_on {
        lines.extend(finishing(config, view, path));
    }
    lines
}

/// A CORS preflight or a skipped path: neither authenticated nor authorized.
pub fn passes_unauthenticated(config: &Config, view: &RequestView) -> bool {
    let path = view.canonical_path();
    (config.bypass_cors_preflight && view.is_cors_preflight())
        || config.skip_paths.iter().any(|p| p.is_match(path))
}

/// The session shield, the gRPC cookie diet and the header budget, as they
/// apply to this request (the edits themselves are the broker's).
fn finishing(config: &Config, view: &RequestView, path: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let session = &config.session;
    if session.cookies.is_empty() {
        lines.push("session: the shield is off".into());
    } else if let Some(pattern) = session.exempt_paths.iter().find(|p| p.is_match(path)) {
        lines.push(format!("session: `{}` exempts this path", pattern.as_str()));
    } else {
        let mut edits = HeaderEdits::default();
        session::apply(session, view, &mut edits);
        lines.push(match edits.session_cookie_bytes {
            0 => format!(
                "session: no {} cookie in the request",
                session.cookies.join("/")
            ),
            bytes => format!("session: {bytes} bytes of session cookies stay at the gateway"),
        });
    }
    if let Some(grpc) = &config.grpc {
        let mut edits = HeaderEdits::default();
        cookie_diet::apply(grpc, view, &mut edits);
        lines.push(match edits.stripped_cookie_bytes {
            0 => "gRPC cookie diet: does not apply (not gRPC, another path, or Cookie within maxCookieBytes)".into(),
            bytes => format!("gRPC cookie diet: removes {bytes} bytes of Cookie"),
        });
    }
    if let Some(budget) = config
        .header_budgets
        .iter()
        .find(|budget| budget.paths.iter().any(|pattern| pattern.is_match(path)))
    {
        lines.push(format!(
            "header budget: {} bytes per header line on this path",
            budget.max_header_bytes
        ));
    }
    lines
}

/// Token, rule, keys and checks; false when the request is refused here.
fn authentication(
    lines: &mut Vec<String>,
    config: &Config,
    jwks: &[(String, Vec<u8>)],
    view: &RequestView,
    now: Duration,
) -> bool {
    let found = match find_token(view, &config.token_locations) {
        Ok(Some(found)) => found,
        Ok(None) => {
            lines.push(format!(
                "token: none found (requireJwt {})",
                config.require_jwt
            ));
            return !config.require_jwt;
        }
        Err(cause) => {
            lines.push(format!("token: refused: {cause}"));
            return false;
        }
    };
    lines.push(format!(
        "token: {} bytes, in {}{}",
        found.value.len(),
        location(&found.location),
        if found.also_at.is_empty() {
            String::new()
        } else {
            format!(" (the same token also in {} place(s))", found.also_at.len())
        }
    ));
    let token = match decode(&found.value) {
        Ok(token) => token,
        Err(cause) => {
            lines.push(format!("decode: refused: {cause}"));
            return false;
        }
    };
    lines.push(format!(
        "decode: alg {}, kid {}, iss {}",
        token.alg,
        token
            .kid
            .as_deref()
            .map_or("(none)".into(), |kid| format!("`{kid}`")),
        token
            .issuer()
            .map_or("(none)".into(), |iss| format!("`{iss}`"))
    ));
    let Some((index, rule)) = token
        .issuer()
        .and_then(|issuer| config.rule_by_issuer.get(issuer))
        .and_then(|&index| Some((index, config.rules.get(index)?)))
    else {
        lines.push("rule: no jwtRules entry has this issuer: issuer_unknown".into());
        return false;
    };
    lines.push(format!(
        "rule: jwtRules[{index}] (issuer `{}`)",
        rule.issuer
    ));
    let fetched;
    let keys = match &rule.keys {
        KeySource::Inline(keys) => {
            lines.push(format!("keys: inline jwks, {} usable key(s)", keys.len()));
            keys
        }
        KeySource::Remote(_) | KeySource::Discovery { .. } => {
            match jwks.iter().find(|(issuer, _)| issuer == &rule.issuer) {
                Some((_, body)) => match parse_jwks(body) {
                    Ok(parsed) => {
                        lines.push(format!(
                            "keys: --jwks, {} usable key(s){}",
                            parsed.keys.len(),
                            skipped(&parsed.skipped)
                        ));
                        fetched = parsed.keys;
                        &fetched
                    }
                    Err(why) => {
                        lines.push(format!("keys: the --jwks file is refused: {why}"));
                        return false;
                    }
                },
                None => {
                    lines.push(format!(
                        "keys: remote ({}), no --jwks given",
                        rule.keys.location()
                    ));
                    return false;
                }
            }
        }
    };
    checks(lines, config, rule, keys, &found.value, &token, now)
}

fn skipped(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join("; "))
    }
}

fn location(location: &TokenLocation) -> String {
    match location {
        TokenLocation::Header { name, prefix } => format!("header `{name}` (prefix `{prefix}`)"),
        TokenLocation::Param(name) => format!("query parameter `{name}`"),
        TokenLocation::Cookie(name) => format!("cookie `{name}`"),
    }
}

/// Signature, time claims and audience, each on its line, then `verify`'s
/// verdict (the one the filter acts on) and the identity headers.
fn checks(
    lines: &mut Vec<String>,
    config: &Config,
    rule: &JwtRule,
    keys: &KeySet,
    raw: &str,
    token: &UnverifiedToken,
    now: Duration,
) -> bool {
    let Some(algorithm) = Algorithm::from_name(&token.alg) else {
        lines.push(format!(
            "signature: alg `{}` is not one kfauth verifies with a key",
            token.alg
        ));
        let verdict = verdict(raw, token, rule, keys, now, config.clock_skew);
        lines.push(verdict.unwrap_or_else(|refused| refused));
        return false;
    };
    let (candidates, failure) = candidate_keys(keys, token.kid.as_deref(), algorithm);
    let name_of = |candidate: &crate::jwks::VerifyingKey| {
        keys.iter()
            .find(|jwk| {
                jwk.key_for(algorithm)
                    .is_some_and(|key| std::ptr::eq(key, candidate))
            })
            .and_then(|jwk| jwk.kid.clone())
            .map_or("(no kid)".to_string(), |kid| format!("kid `{kid}`"))
    };
    if candidates.is_empty() {
        lines.push(format!(
            "signature: no key to try for {}: {}",
            algorithm.name(),
            failure.reason()
        ));
    }
    for candidate in &candidates {
        // Offline there is no Envoy: kfauth's own code checks the signature.
        let result = if candidate.verify_signature(raw, None) {
            "verifies"
        } else {
            "does not verify"
        };
        lines.push(format!(
            "signature: key {} ({}) {result}",
            name_of(candidate),
            candidate.algorithm().name()
        ));
    }
    let skew = config.clock_skew.as_secs_f64();
    let at = now.as_secs_f64();
    let time = |name: &str| token.claims.get(name).and_then(Value::as_f64);
    match time("exp") {
        Some(exp) => lines.push(format!(
            "exp: {exp} ({:+.0} s from now, clock skew {skew} s): {}",
            exp - at,
            if at - skew > exp { "passed" } else { "ok" }
        )),
        None => lines.push("exp: missing (kfauth requires it)".into()),
    }
    for name in ["nbf", "iat"] {
        if let Some(value) = time(name) {
            lines.push(format!(
                "{name}: {value} ({:+.0} s from now, clock skew {skew} s): {}",
                value - at,
                if value > at + skew {
                    "in the future"
                } else {
                    "ok"
                }
            ));
        }
    }
    if rule.audiences.is_empty() {
        lines.push("audience: the rule names none: not checked".into());
    } else {
        let aud = token.claims.get("aud");
        let listed = |value: &Value| {
            value
                .as_str()
                .is_some_and(|aud| rule.audiences.iter().any(|wanted| wanted == aud))
        };
        let matches = aud.is_some_and(|aud| {
            listed(aud) || aud.as_array().is_some_and(|list| list.iter().any(listed))
        });
        lines.push(format!(
            "audience: aud {} against {}: {}",
            aud.map_or("(none)".into(), Value::to_string),
            rule.audiences.join(", "),
            if matches { "ok" } else { "no match" }
        ));
    }
    let verdict = verdict(raw, token, rule, keys, now, config.clock_skew);
    let valid = verdict.is_ok();
    lines.push(verdict.unwrap_or_else(|refused| refused));
    if !valid {
        return false;
    }
    match verified_identity_headers(rule, &token.claims, &token.payload_segment) {
        Ok(headers) => {
            for (name, value) in headers {
                lines.push(format!("identity: `{name}` = `{value}`"));
            }
            true
        }
        Err(cause) => {
            lines.push(format!("identity: refused: {cause}"));
            false
        }
    }
}

fn verdict(
    raw: &str,
    token: &UnverifiedToken,
    rule: &JwtRule,
    keys: &KeySet,
    now: Duration,
    skew: Duration,
) -> Result<String, String> {
    match verify(raw, token, rule, keys, now, skew) {
        Ok(()) => Ok("verify: the token is valid for this rule".into()),
        Err(cause) => Err(format!("verify: refused: {cause}")),
    }
}
