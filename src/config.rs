//! pluginConfig: the JSON that Istio's `WasmPlugin.pluginConfig` (or Envoy's
//! `configuration`) hands to the filter. Field names follow Istio's
//! `RequestAuthentication.jwtRules` so existing rules can be pasted in.
//!
//! Parsing is strict: an unknown field, a bad regex or duration, or a key source
//! that is missing or doubled is an error that names the field, so Envoy refuses
//! the configuration instead of serving with a half-understood one.

use std::collections::HashMap;
use std::time::Duration;

use regex_lite::Regex;
use serde::Deserialize;

use crate::config_field::ConfigError;
use crate::config_field::{cookie_names, duration, regexes};
use crate::endpoint::Endpoint;
use crate::jwks::parse_jwks;
use crate::jwt_rule::{ClaimHeader, JwtRule, KeySource};
use crate::signature_host::{SignatureHost, SignatureVerification};
use crate::token::TokenLocation;

/// Istio's default JWKS fetch timeout.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Background refresh of remote key sets (Istio's default JWKS cache duration).
pub const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(20 * 60);
/// At most one on-demand refetch (unknown `kid`) per issuer this often.
pub const DEFAULT_JWKS_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Keys not refreshed for this long are dropped: better 503 than trusting a
/// key set the issuer may have revoked long ago.
pub const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    jwt_rules: Vec<RawJwtRule>,
    #[serde(default)]
    require_jwt: bool,
    #[serde(default = "default_true")]
    bypass_cors_preflight: bool,
    #[serde(default)]
    skip_paths: Vec<String>,
    clock_skew: Option<String>,
    jwks_refresh_interval: Option<String>,
    jwks_refetch_min_interval: Option<String>,
    jwks_max_stale: Option<String>,
    authorization: Option<crate::authz::config::RawAuthorization>,
    grpc: Option<crate::cookie_diet::RawGrpc>,
    session: Option<crate::session::RawSession>,
    #[serde(default)]
    header_budgets: Vec<crate::header_budget::RawHeaderBudget>,
    jwt_cache_size: Option<usize>,
    #[serde(default)]
    signature_verification: SignatureVerification,
    /// Test-only (README): spoils the known-answer check of the host's signatures.
    #[serde(default)]
    test_only_break_signature_check: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawJwtRule {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    /// Istio's other spelling of `jwksUri` (its CRD lists both; at most one
    /// of `jwksUri`, `jwks_uri`, `jwks` may be set).
    #[serde(rename = "jwks_uri")]
    jwks_uri_snake: Option<String>,
    jwks: Option<String>,
    jwks_cluster: Option<String>,
    from_headers: Option<Vec<RawFromHeader>>,
    from_params: Option<Vec<String>>,
    from_cookies: Option<Vec<String>>,
    #[serde(default)]
    forward_original_token: bool,
    output_payload_to_header: Option<String>,
    #[serde(default)]
    output_claim_to_headers: Vec<RawClaimToHeader>,
    timeout: Option<String>,
    presence: Option<Presence>,
    space_delimited_claims: Option<Vec<String>>,
    token_review: Option<RawTokenReview>,
}

/// Istio's `JWTRule.presence`: must a token of this rule be in every request?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Presence {
    /// The default: a request without this rule's token is not refused for it.
    Optional,
    /// A request without a valid token of this rule's issuer gets 401.
    Required,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTokenReview {
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFromHeader {
    name: String,
    #[serde(default)]
    prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawClaimToHeader {
    header: String,
    claim: String,
    #[serde(default)]
    prefix: String,
}

/// The validated configuration the core works with.
#[derive(Debug)]
pub struct Config {
    pub rules: Vec<JwtRule>,
    /// `iss` -> index into `rules`: the rule is chosen by lookup, not by trial.
    pub rule_by_issuer: HashMap<String, usize>,
    pub require_jwt: bool,
    /// `bypassCorsPreflight`: a CORS preflight ([`RequestView::is_cors_preflight`])
    /// passes as on a skipped path, as Istio configures Envoy's `jwt_authn`.
    ///
    /// [`RequestView::is_cors_preflight`]: crate::request::RequestView::is_cors_preflight
    pub bypass_cors_preflight: bool,
    /// The rule with `presence: REQUIRED` (at most one): a request whose
    /// verified token is not of this rule gets 401 `token_missing`.
    pub required_rule: Option<usize>,
    pub skip_paths: Vec<Regex>,
    pub clock_skew: Duration,
    pub jwks_refresh_interval: Duration,
    pub jwks_refetch_min_interval: Duration,
    pub jwks_max_stale: Duration,
    /// The `authorization` block, when given.
    pub authorization: Option<crate::authz::config::Authorization>,
    /// Verified tokens remembered per worker (0: none).
    pub jwt_cache_size: usize,
    /// The `grpc` block (the cookie diet), when given.
    pub grpc: Option<crate::cookie_diet::GrpcConfig>,
    /// The `session` block: on with its defaults when absent.
    pub session: crate::session::SessionConfig,
    /// `headerBudgets`: none when absent.
    pub header_budgets: Vec<crate::header_budget::HeaderBudget>,
    /// Every header kfauth writes (lower case): removed from every request first.
    pub identity_headers: Vec<String>,
    /// Every place a token may be, in rule order, without duplicates.
    pub token_locations: Vec<TokenLocation>,
    /// Notes for the log (e.g. skipped JWKs of an inline key set); not errors.
    pub warnings: Vec<String>,
    /// `signatureVerification`: may the host check signatures?
    pub signature_verification: SignatureVerification,
    /// `testOnlyBreakSignatureCheck`: the known-answer check is made to fail.
    pub break_signature_check: bool,
}

impl Config {
    /// Lets `host` check the signatures of the inline key sets (the key store
    /// does the same for fetched ones).
    pub fn use_signature_host(&mut self, host: Option<&'static dyn SignatureHost>) {
        for rule in &mut self.rules {
            if let KeySource::Inline(keys) = &mut rule.keys {
                keys.use_signature_host(host);
            }
        }
    }

    /// Parses and validates pluginConfig JSON. An empty configuration is an error:
    /// a filter that guards nothing is a mistake, not a default.
    pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
        Config::parse_with_env(json, &|_| None)
    }

    /// As `parse`, reading environment variables (`authorization.apiserver.tokenEnv`)
    /// through `env`.
    pub fn parse_with_env(
        json: &[u8],
        env: crate::authz::config::EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        // serde reads a struct from a JSON array too (fields by position); a
        // configuration is an object, with its fields named.
        if crate::json::first_byte(json).is_some_and(|byte| byte != b'{') {
            return Err(ConfigError::new("pluginConfig", "must be a JSON object"));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let raw: RawConfig =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|problem| {
                let path = problem.path().to_string();
                // `?`: serde_path_to_error could not tell where (a syntax error);
                // empty: an unknown field whose name is empty.
                let field = if path.is_empty() || path == "." || path == "?" {
                    "pluginConfig".into()
                } else {
                    path
                };
                ConfigError::new(field, strip_position(&problem.inner().to_string()))
            })?;
        // One JSON document, nothing after it (found by the config_parse fuzz target).
        deserializer.end().map_err(|problem| {
            ConfigError::new("pluginConfig", strip_position(&problem.to_string()))
        })?;
        validate(raw, env)
    }
}

/// serde_json appends "at line 1 column 42"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message.get(..index).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

fn validate(
    raw: RawConfig,
    env: crate::authz::config::EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    if raw.jwt_rules.is_empty() {
        return Err(ConfigError::new(
            "jwtRules",
            "at least one rule is required",
        ));
    }
    let clock_skew = duration("clockSkew", raw.clock_skew.as_deref(), DEFAULT_CLOCK_SKEW)?;
    let jwks_refresh_interval = duration(
        "jwksRefreshInterval",
        raw.jwks_refresh_interval.as_deref(),
        DEFAULT_JWKS_REFRESH_INTERVAL,
    )?;
    if jwks_refresh_interval < Duration::from_secs(1) {
        return Err(ConfigError::new(
            "jwksRefreshInterval",
            "must be at least 1s",
        ));
    }
    let jwks_refetch_min_interval = duration(
        "jwksRefetchMinInterval",
        raw.jwks_refetch_min_interval.as_deref(),
        DEFAULT_JWKS_REFETCH_MIN_INTERVAL,
    )?;
    let jwks_max_stale = duration(
        "jwksMaxStale",
        raw.jwks_max_stale.as_deref(),
        DEFAULT_JWKS_MAX_STALE,
    )?;
    if jwks_max_stale < jwks_refresh_interval {
        return Err(ConfigError::new(
            "jwksMaxStale",
            "must be at least jwksRefreshInterval, or keys would be dropped before their refresh",
        ));
    }
    let skip_paths = regexes("skipPaths", &raw.skip_paths)?;

    let mut config = Config {
        rules: Vec::new(),
        rule_by_issuer: HashMap::new(),
        require_jwt: raw.require_jwt,
        bypass_cors_preflight: raw.bypass_cors_preflight,
        required_rule: None,
        skip_paths,
        clock_skew,
        jwks_refresh_interval,
        jwks_refetch_min_interval,
        jwks_max_stale,
        authorization: None,
        grpc: raw.grpc.map(crate::cookie_diet::validate).transpose()?,
        session: crate::session::validate(raw.session.unwrap_or_default())?,
        header_budgets: crate::header_budget::validate(raw.header_budgets)?,
        jwt_cache_size: raw
            .jwt_cache_size
            .unwrap_or(crate::verified_token_cache::DEFAULT_JWT_CACHE_SIZE),
        identity_headers: Vec::new(),
        token_locations: Vec::new(),
        warnings: Vec::new(),
        signature_verification: raw.signature_verification,
        break_signature_check: raw.test_only_break_signature_check,
    };
    for (index, raw_rule) in raw.jwt_rules.into_iter().enumerate() {
        let field = format!("jwtRules[{index}]");
        let rule = validate_rule(&field, raw_rule, &mut config.warnings)?;
        if config
            .rule_by_issuer
            .insert(rule.issuer.clone(), index)
            .is_some()
        {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                format!("issuer `{}` is already used by another rule", rule.issuer),
            ));
        }
        if rule.required {
            if let Some(first) = config.required_rule.replace(index) {
                return Err(ConfigError::new(
                    format!("{field}.presence"),
                    format!(
                        "jwtRules[{first}] is REQUIRED too; kfauth verifies one token per request, so at most one rule can be REQUIRED"
                    ),
                ));
            }
        }
        for header in rule
            .claim_headers
            .iter()
            .map(|claim| &claim.header)
            .chain(rule.output_payload_to_header.iter())
        {
            if !config.identity_headers.contains(header) {
                config.identity_headers.push(header.clone());
            }
        }
        for location in &rule.locations {
            if !config.token_locations.contains(location) {
                config.token_locations.push(location.clone());
            }
        }
        for location in &rule.locations {
            if let TokenLocation::Cookie(name) = location {
                if rule.forward_original_token
                    && crate::session::is_session_cookie(&config.session, name)
                {
                    config.warnings.push(format!(
                        "{field}.fromCookies: `{name}` is a session cookie: its token is verified, then the session shield removes it, so backends never get it although forwardOriginalToken is true"
                    ));
                }
            }
        }
        config.rules.push(rule);
    }
    if raw.authorization.is_none() {
        if let Some(index) = config
            .rules
            .iter()
            .position(|rule| rule.token_review.is_some())
        {
            return Err(ConfigError::new(
                format!("jwtRules[{index}].tokenReview"),
                "needs an `authorization` block (its `apiserver` says where to send reviews)",
            ));
        }
    }
    if let Some(raw_authorization) = raw.authorization {
        let authorization =
            crate::authz::config::validate(raw_authorization, env, &mut config.warnings)?;
        if authorization.user_claim.is_none()
            && config
                .rules
                .iter()
                .any(|rule| rule.claim_headers.is_empty())
        {
            return Err(ConfigError::new(
                "authorization.userClaim",
                "set it, or give every jwt rule an outputClaimToHeaders entry (its first one names the user)",
            ));
        }
        config.authorization = Some(authorization);
    }
    Ok(config)
}

fn validate_rule(
    field: &str,
    raw: RawJwtRule,
    warnings: &mut Vec<String>,
) -> Result<JwtRule, ConfigError> {
    if raw.issuer.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.issuer"),
            "must not be empty",
        ));
    }
    let jwks_uri = match (&raw.jwks_uri, &raw.jwks_uri_snake) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("{field}.jwks_uri"),
                "give at most one of `jwksUri`, `jwks_uri` (its other spelling) and `jwks`",
            ))
        }
        (Some(uri), None) | (None, Some(uri)) => Some(uri),
        (None, None) => None,
    };
    let keys = match (&raw.jwks, jwks_uri) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("{field}.jwks"),
                "give either `jwks` or `jwksUri` (or `jwks_uri`), not both",
            ))
        }
        (None, None) => KeySource::Discovery {
            document: Endpoint::from_url(
                &discovery_url(&raw.issuer),
                raw.jwks_cluster.as_deref(),
            )
            .map_err(|message| {
                ConfigError::new(
                    format!("{field}.issuer"),
                    format!("no jwks or jwksUri, and OpenID discovery needs an http(s) issuer: {message}"),
                )
            })?,
            jwks_cluster: raw.jwks_cluster.clone(),
        },
        (Some(inline), None) => {
            if raw.jwks_cluster.is_some() {
                return Err(ConfigError::new(
                    format!("{field}.jwksCluster"),
                    "only meaningful with `jwksUri` or OpenID discovery",
                ));
            }
            let parsed = parse_jwks(inline.as_bytes())
                .map_err(|problem| ConfigError::new(format!("{field}.jwks"), problem.to_string()))?;
            if parsed.keys.is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.jwks"),
                    format!("no usable key ({})", parsed.skipped.join("; ")),
                ));
            }
            warnings.extend(
                parsed
                    .skipped
                    .iter()
                    .map(|note| format!("{field}.jwks: skipped a key: {note}")),
            );
            KeySource::Inline(parsed.keys)
        }
        (None, Some(uri)) => KeySource::Remote(
            Endpoint::from_url(uri, raw.jwks_cluster.as_deref()).map_err(|message| {
                let name = if raw.jwks_uri.is_some() {
                    "jwksUri"
                } else {
                    "jwks_uri"
                };
                ConfigError::new(format!("{field}.{name}"), message.to_string())
            })?,
        ),
    };
    let timeout = duration(
        &format!("{field}.timeout"),
        raw.timeout.as_deref(),
        DEFAULT_FETCH_TIMEOUT,
    )?;
    // Istio's CRD: `duration(self) >= duration('1ms')`.
    if timeout < Duration::from_millis(1) {
        return Err(ConfigError::new(
            format!("{field}.timeout"),
            "must be at least 1ms",
        ));
    }
    let space_delimited_claims = raw.space_delimited_claims.clone().unwrap_or_default();
    // Istio's CRD: at most 64 entries, none empty.
    if space_delimited_claims.len() > 64 {
        return Err(ConfigError::new(
            format!("{field}.spaceDelimitedClaims"),
            "at most 64 claims",
        ));
    }
    if let Some(index) = space_delimited_claims.iter().position(String::is_empty) {
        return Err(ConfigError::new(
            format!("{field}.spaceDelimitedClaims[{index}]"),
            "must not be empty",
        ));
    }
    let locations = token_locations(field, &raw)?;
    Ok(JwtRule {
        issuer: raw.issuer,
        audiences: raw.audiences,
        keys,
        locations,
        forward_original_token: raw.forward_original_token,
        output_payload_to_header: raw
            .output_payload_to_header
            .filter(|name| !name.is_empty())
            .map(|name| header_name(&format!("{field}.outputPayloadToHeader"), &name))
            .transpose()?,
        claim_headers: raw
            .output_claim_to_headers
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let entry_field = format!("{field}.outputClaimToHeaders[{index}]");
                if entry.claim.is_empty() {
                    return Err(ConfigError::new(
                        format!("{entry_field}.claim"),
                        "must not be empty",
                    ));
                }
                Ok(ClaimHeader {
                    header: header_name(&format!("{entry_field}.header"), &entry.header)?,
                    claim: entry.claim.clone(),
                    prefix: entry.prefix.clone(),
                    space_delimited: space_delimited_claims.contains(&entry.claim),
                })
            })
            .collect::<Result<_, _>>()?,
        timeout,
        required: raw.presence == Some(Presence::Required),
        space_delimited_claims,
        token_review: raw.token_review.map(|review| review.audiences),
    })
}

/// Where the rule looks for tokens; `Authorization: Bearer` when nothing is given.
fn token_locations(field: &str, raw: &RawJwtRule) -> Result<Vec<TokenLocation>, ConfigError> {
    let mut locations = Vec::new();
    for (index, from) in raw.from_headers.iter().flatten().enumerate() {
        locations.push(TokenLocation::Header {
            name: header_name(&format!("{field}.fromHeaders[{index}].name"), &from.name)?,
            prefix: from.prefix.clone(),
        });
    }
    for (index, name) in raw.from_params.iter().flatten().enumerate() {
        if name.is_empty() || name.contains(['&', '=', '#']) {
            return Err(ConfigError::new(
                format!("{field}.fromParams[{index}]"),
                "not a query parameter name",
            ));
        }
        locations.push(TokenLocation::Param(name.clone()));
    }
    if let Some(names) = &raw.from_cookies {
        cookie_names(&format!("{field}.fromCookies"), names)?;
        locations.extend(names.iter().cloned().map(TokenLocation::Cookie));
    }
    if locations.is_empty() {
        locations.push(TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        });
    }
    Ok(locations)
}

/// Validates an HTTP field name (RFC 9110 token) and lower-cases it, the form Envoy stores.
fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(ConfigError::new(
            field,
            format!("`{name}` is not a valid header name"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection" | "te" | "upgrade"
    ) {
        return Err(ConfigError::new(
            field,
            format!("`{name}` cannot be used here"),
        ));
    }
    Ok(lower)
}

/// OpenID Connect Discovery 1.0 section 4: the configuration document of an issuer.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{rsa_jwks_json, DEX};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse(json: serde_json::Value) -> Result<Config, ConfigError> {
        Config::parse(json.to_string().as_bytes())
    }

    fn rule() -> serde_json::Value {
        serde_json::json!({"issuer": DEX, "jwksUri": "http://dex.auth.svc.cluster.local:5556/dex/keys"})
    }

    fn field_of(result: Result<Config, ConfigError>) -> String {
        result.unwrap_err().field
    }

    #[test]
    fn accepts_istio_jwt_rules_with_defaults() {
        let config = parse(serde_json::json!({
            "jwtRules": [{
                "issuer": DEX,
                "audiences": ["kubeflow-oidc-authservice"],
                "jwksUri": "http://dex.auth.svc.cluster.local:5556/dex/keys",
                "outputClaimToHeaders": [
                    {"header": "Kubeflow-UserID", "claim": "email"},
                    {"header": "kubeflow-groups", "claim": "groups"}
                ]
            }]
        }))
        .unwrap();
        let rule = &config.rules[0];
        let KeySource::Remote(remote) = &rule.keys else {
            panic!("not remote")
        };
        assert_eq!(remote.cluster, "outbound|5556||dex.auth.svc.cluster.local");
        assert_eq!(remote.authority, "dex.auth.svc.cluster.local:5556");
        assert_eq!(remote.path, "/dex/keys");
        assert_eq!(rule.timeout, Duration::from_secs(5));
        assert_eq!(config.clock_skew, Duration::from_secs(60));
        assert!(!rule.forward_original_token);
        assert_eq!(
            rule.locations,
            vec![TokenLocation::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            }]
        );
        assert_eq!(
            config.identity_headers,
            vec!["kubeflow-userid", "kubeflow-groups"]
        );
        assert_eq!(config.rule_by_issuer[DEX], 0);
        assert!(config.bypass_cors_preflight, "Istio's jwt_authn default");
    }

    #[test]
    fn cors_preflights_bypass_unless_turned_off() {
        let off = parse(serde_json::json!({"jwtRules": [rule()], "bypassCorsPreflight": false}));
        assert!(!off.unwrap().bypass_cors_preflight);
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [rule()], "bypassCorsPreflight": "yes"})
            )),
            "bypassCorsPreflight"
        );
    }

    #[test]
    fn signature_verification_is_auto_unless_set() {
        let config = parse(serde_json::json!({"jwtRules": [rule()]})).unwrap();
        assert_eq!(config.signature_verification, SignatureVerification::Auto);
        assert!(!config.break_signature_check);
        let config = parse(serde_json::json!({
            "jwtRules": [rule()],
            "signatureVerification": "wasm",
            "testOnlyBreakSignatureCheck": true
        }))
        .unwrap();
        assert_eq!(config.signature_verification, SignatureVerification::Wasm);
        assert!(config.break_signature_check);
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [rule()], "signatureVerification": "boringssl"})
            )),
            "signatureVerification"
        );
    }

    #[test]
    fn inline_jwks_is_parsed_at_load() {
        let config = parse(serde_json::json!({
            "jwtRules": [{"issuer": DEX, "jwks": rsa_jwks_json()}]
        }))
        .unwrap();
        let KeySource::Inline(keys) = &config.rules[0].keys else {
            panic!("not inline")
        };
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        // Text after the document is refused, not ignored.
        let text = format!("{} x", serde_json::json!({"jwtRules": [rule()]}));
        let trailing = Config::parse(text.as_bytes()).unwrap_err();
        assert_eq!(trailing.field, "pluginConfig");
        assert!(trailing.message.contains("trailing"), "{trailing:?}");
        assert!(Config::parse(text.trim_end_matches(" x").as_bytes()).is_ok());
        // A struct could be read from an array, fields by position; not a config.
        let array = Config::parse(b" [[]]").unwrap_err();
        assert_eq!(
            (array.field.as_str(), array.message.as_str()),
            ("pluginConfig", "must be a JSON object")
        );
        let mut unknown = rule();
        unknown["jwksUrl"] = "x".into();
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [unknown]}))),
            "jwtRules[0].jwksUrl"
        );
        assert!(
            parse(serde_json::json!({"jwtRules": [rule()], "requireJWT": true}))
                .unwrap_err()
                .message
                .contains("requireJWT")
        );
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [rule()], "skipPaths": ["("]})
            )),
            "skipPaths[0]"
        );
        // The regex dialect (regex-lite; README, `skipPaths`): Perl classes
        // and case folding are ASCII-only, Unicode property classes and class
        // set operations are refused at load with the field named.
        let skip = |pattern: &str| {
            parse(serde_json::json!({"jwtRules": [rule()], "skipPaths": ["^/ok", pattern]}))
        };
        assert!(skip(r"^/v\d+/\w+\s?\b").is_ok());
        let folded = skip(r"(?i)^/DEX/").unwrap();
        assert!(folded.skip_paths[1].is_match("/dex/auth"));
        let ascii = skip(r"(?i)^/\w+/Ä$").unwrap();
        assert!(ascii.skip_paths[1].is_match("/Notebooks/Ä"));
        assert!(!ascii.skip_paths[1].is_match("/é/Ä"));
        assert!(!ascii.skip_paths[1].is_match("/a/ä"));
        assert!(skip("^/caf[é]/").unwrap().skip_paths[1].is_match("/café/"));
        let greek = skip(r"^/\p{Greek}").unwrap_err();
        assert_eq!(greek.field, "skipPaths[1]");
        assert!(greek
            .message
            .contains("Unicode character classes are not supported"));
        assert_eq!(field_of(skip(r"^/\pL")), "skipPaths[1]");
        assert_eq!(field_of(skip(r"^/[a-z&&[^q]]")), "skipPaths[1]");
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [rule()], "clockSkew": "soon"})
            )),
            "clockSkew"
        );
        let mut both = rule();
        both["jwks"] = rsa_jwks_json().into();
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [both]}))),
            "jwtRules[0].jwks"
        );
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [{"issuer": "not-a-url"}]})
            )),
            "jwtRules[0].issuer"
        );
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [rule()], "jwksMaxStale": "1m"})
            )),
            "jwksMaxStale"
        );
        assert_eq!(
            field_of(parse(
                serde_json::json!({"jwtRules": [{"issuer": DEX, "jwks": "{not json"}]})
            )),
            "jwtRules[0].jwks"
        );
        let mut timeout = rule();
        timeout["timeout"] = "5 seconds".into();
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [timeout]}))),
            "jwtRules[0].timeout"
        );
        let mut header = rule();
        header["outputClaimToHeaders"] =
            serde_json::json!([{"header": "bad header", "claim": "email"}]);
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [header]}))),
            "jwtRules[0].outputClaimToHeaders[0].header"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [rule(), rule()]}))),
            "jwtRules[1].issuer"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": []}))),
            "jwtRules"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [{"issuer": 5}]}))),
            "jwtRules[0].issuer"
        );
        assert_eq!(field_of(Config::parse(b"not json")), "pluginConfig");
        // Found by the config_parse fuzz target: a syntax error after the
        // last top-level field has the path `?`, which names no field.
        assert_eq!(
            field_of(Config::parse(br#"{"requireJwt":true]"#)),
            "pluginConfig"
        );
        assert_eq!(field_of(Config::parse(br#"{"":1}"#)), "pluginConfig");
    }

    #[test]
    fn accepts_the_istio_fields_kfauth_once_refused() {
        let config = parse(serde_json::json!({"jwtRules": [
            {"issuer": DEX, "jwks_uri": "http://dex.auth.svc.cluster.local:5556/dex/keys",
             "presence": "REQUIRED", "spaceDelimitedClaims": ["scope", "custom_scope"],
             "timeout": "1.5s",
             "outputClaimToHeaders": [{"header": "x-scope", "claim": "scope"},
                                      {"header": "x-sub", "claim": "sub"}]},
            {"issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/keys",
             "presence": "OPTIONAL", "timeout": "1500us"},
        ]}))
        .unwrap();
        let KeySource::Remote(remote) = &config.rules[0].keys else {
            panic!("not remote")
        };
        assert_eq!(remote.cluster, "outbound|5556||dex.auth.svc.cluster.local");
        assert!(config.rules[0].required);
        assert!(!config.rules[1].required);
        assert_eq!(config.required_rule, Some(0));
        assert_eq!(config.rules[0].timeout, Duration::from_millis(1500));
        assert_eq!(config.rules[1].timeout, Duration::from_micros(1500));
        assert_eq!(
            config.rules[0].space_delimited_claims,
            ["scope", "custom_scope"]
        );
        let spaced: Vec<bool> = config.rules[0]
            .claim_headers
            .iter()
            .map(|claim| claim.space_delimited)
            .collect();
        assert_eq!(spaced, [true, false]);
        for (timeout, accepted) in [("1ms", true), ("999us", false), ("0", false), ("1h", true)] {
            let mut rule = rule();
            rule["timeout"] = timeout.into();
            let result = parse(serde_json::json!({"jwtRules": [rule]}));
            assert_eq!(result.is_ok(), accepted, "{timeout}: {result:?}");
        }
    }

    #[test]
    fn istio_field_errors_name_the_field() {
        let with = |extra: serde_json::Value| {
            let mut rule = rule();
            for (key, value) in extra.as_object().unwrap() {
                rule[key] = value.clone();
            }
            field_of(parse(serde_json::json!({"jwtRules": [rule]})))
        };
        // Istio's CEL rule: at most one of jwksUri, jwks_uri, jwks.
        assert_eq!(
            with(serde_json::json!({"jwks_uri": "http://dex/keys"})),
            "jwtRules[0].jwks_uri"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [
                {"issuer": DEX, "jwks_uri": "http://dex/keys", "jwks": rsa_jwks_json()}]}))),
            "jwtRules[0].jwks"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"jwtRules": [
                {"issuer": DEX, "jwks_uri": "ftp://dex/keys"}]}))),
            "jwtRules[0].jwks_uri"
        );
        assert_eq!(
            with(serde_json::json!({"presence": "MANDATORY"})),
            "jwtRules[0].presence"
        );
        assert_eq!(
            with(serde_json::json!({"presence": "required"})),
            "jwtRules[0].presence"
        );
        assert_eq!(
            with(serde_json::json!({"spaceDelimitedClaims": ["scope", ""]})),
            "jwtRules[0].spaceDelimitedClaims[1]"
        );
        assert_eq!(
            with(serde_json::json!({"spaceDelimitedClaims": vec!["c"; 65]})),
            "jwtRules[0].spaceDelimitedClaims"
        );
        assert_eq!(
            with(serde_json::json!({"spaceDelimitedClaims": "scope"})),
            "jwtRules[0].spaceDelimitedClaims"
        );
        let two_required = parse(serde_json::json!({"jwtRules": [
            {"issuer": "a", "jwksUri": "http://a/keys", "presence": "REQUIRED"},
            {"issuer": "b", "jwksUri": "http://b/keys", "presence": "OPTIONAL"},
            {"issuer": "c", "jwksUri": "http://c/keys", "presence": "REQUIRED"},
        ]}))
        .unwrap_err();
        assert_eq!(two_required.field, "jwtRules[2].presence");
        assert!(
            two_required.message.contains("jwtRules[0]"),
            "{two_required}"
        );
    }

    #[test]
    fn a_rule_without_keys_uses_openid_discovery() {
        let config = parse(serde_json::json!({"jwtRules": [
            {"issuer": "https://login.example.com/tenant/"},
            {"issuer": DEX, "jwksCluster": "dex-cluster"},
        ]}))
        .unwrap();
        let KeySource::Discovery {
            document,
            jwks_cluster,
        } = &config.rules[0].keys
        else {
            panic!("not discovery")
        };
        assert_eq!(
            document.uri,
            "https://login.example.com/tenant/.well-known/openid-configuration"
        );
        assert_eq!(document.cluster, "outbound|443||login.example.com");
        assert_eq!(*jwks_cluster, None);
        let KeySource::Discovery {
            document,
            jwks_cluster,
        } = &config.rules[1].keys
        else {
            panic!("not discovery")
        };
        assert_eq!(document.cluster, "dex-cluster");
        assert_eq!(jwks_cluster.as_deref(), Some("dex-cluster"));
        assert_eq!(document.path, "/dex/.well-known/openid-configuration");
    }

    #[test]
    fn token_locations_are_collected_without_duplicates() {
        let config = parse(serde_json::json!({"jwtRules": [
            {"issuer": "a", "jwksUri": "http://a/keys", "fromParams": ["access_token"]},
            {"issuer": "b", "jwksUri": "http://b/keys", "fromCookies": ["id_token"], "fromParams": ["access_token"]},
        ]}))
        .unwrap();
        assert_eq!(
            config.token_locations,
            vec![
                TokenLocation::Param("access_token".into()),
                TokenLocation::Cookie("id_token".into())
            ]
        );
    }
}
