//! The `authorization` block of pluginConfig: where the API server is, which
//! requests need which SubjectAccessReview, and how answers are cached.

use std::time::Duration;

use regex_lite::Regex;
use serde::Deserialize;

use super::template::Template;
use crate::config_field::{duration, regexes, ConfigError};

/// The Kubernetes webhook authorizer's cache defaults.
pub const DEFAULT_ALLOWED_TTL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_DENIED_TTL: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
pub const DEFAULT_APISERVER_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_APISERVER_CLUSTER: &str = "outbound|443||kubernetes.default.svc.cluster.local";
pub const DEFAULT_APISERVER_AUTHORITY: &str = "kubernetes.default.svc";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawAuthorization {
    apiserver: Option<RawApiServer>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    default_deny: bool,
    user_claim: Option<String>,
    groups_claim: Option<String>,
    cache: Option<RawCache>,
    failure_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawApiServer {
    cluster: Option<String>,
    authority: Option<String>,
    token_env: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCache {
    allowed_ttl: Option<String>,
    denied_ttl: Option<String>,
    max_entries: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match", default)]
    matcher: RawMatch,
    resource_attributes: Option<RawResourceAttributes>,
    non_resource_attributes: Option<RawNonResourceAttributes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawResourceAttributes {
    namespace: Option<String>,
    group: Option<String>,
    version: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
    name: Option<String>,
    verb: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNonResourceAttributes {
    path: Option<String>,
    verb: Option<String>,
}

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServer {
    pub cluster: String,
    pub authority: String,
    pub credential: Credential,
    pub timeout: Duration,
}

/// What kfauth shows the API server with each review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No `tokenEnv`: nothing is sent (an authenticating local proxy such as
    /// a `kubectl proxy` sidecar).
    Anonymous,
    /// The token read from variable `env`, sent as `Authorization: Bearer`.
    Bearer { env: String, token: String },
    /// `tokenEnv` names a variable the VM does not have (the gateway's
    /// Deployment has not rolled out with it yet). Authentication goes on;
    /// requests that need a review get `failureMode`'s answer, none is sent.
    Missing { env: String },
}

impl ApiServer {
    /// The variable `tokenEnv` names, when the VM does not have it.
    pub fn missing_credential(&self) -> Option<&str> {
        match &self.credential {
            Credential::Missing { env } => Some(env),
            Credential::Anonymous | Credential::Bearer { .. } => None,
        }
    }

    /// The variable `tokenEnv` names, if any.
    pub fn token_env(&self) -> Option<&str> {
        match &self.credential {
            Credential::Bearer { env, .. } | Credential::Missing { env } => Some(env),
            Credential::Anonymous => None,
        }
    }

    /// The `authorization` header value of a review, when one is sent.
    pub fn bearer(&self) -> Option<String> {
        match &self.credential {
            Credential::Bearer { token, .. } => Some(format!("Bearer {token}")),
            Credential::Anonymous | Credential::Missing { .. } => None,
        }
    }
}

/// What to do when the API server cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    Deny,
    Allow,
}

/// The attributes of a review, as templates over the request.
#[derive(Debug, Clone)]
pub enum Attributes {
    Resource {
        namespace: Option<Template>,
        group: Option<Template>,
        version: Option<Template>,
        resource: Option<Template>,
        subresource: Option<Template>,
        name: Option<Template>,
        /// `None`: the HTTP method, mapped as kube-rbac-proxy does.
        verb: Option<Template>,
    },
    NonResource {
        /// `None`: the request path.
        path: Option<Template>,
        verb: Option<Template>,
    },
}

#[derive(Debug, Clone)]
pub struct AuthzRule {
    pub hosts: Vec<Regex>,
    pub paths: Vec<Regex>,
    /// Upper case; empty matches every method.
    pub methods: Vec<String>,
    pub attributes: Attributes,
}

#[derive(Debug, Clone)]
pub struct Authorization {
    pub apiserver: ApiServer,
    pub rules: Vec<AuthzRule>,
    pub default_deny: bool,
    pub user_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub allowed_ttl: Duration,
    pub denied_ttl: Duration,
    pub max_entries: usize,
    pub failure_mode: FailureMode,
}

fn capture_names(patterns: &[Regex]) -> Vec<String> {
    patterns
        .iter()
        .flat_map(|pattern| pattern.capture_names().flatten().map(str::to_string))
        .collect()
}

/// Reads the VM environment; `None` when the variable is unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The load-time warning for a missing credential: one loud line, since a
/// gateway that refuses its whole configuration for it would deny every request.
fn missing_credential_warning(name: &str, failure_mode: FailureMode) -> String {
    let answer = match failure_mode {
        FailureMode::Deny => "get 503 authorizer_unavailable",
        FailureMode::Allow => "pass unreviewed (failureMode: allow)",
    };
    format!(
        "authorization.apiserver.tokenEnv: environment variable `{name}` is not set in the Wasm VM \
         (vm_config.environment_variables, or WasmPlugin vmConfig.env and the gateway Deployment's env): \
         JWT authentication works, but every request that needs a SubjectAccessReview or TokenReview will {answer} \
         until the gateway restarts with it"
    )
}

pub(crate) fn validate(
    raw: RawAuthorization,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Authorization, ConfigError> {
    let field = "authorization";
    let raw_apiserver = raw.apiserver.unwrap_or(RawApiServer {
        cluster: None,
        authority: None,
        token_env: None,
        timeout: None,
    });
    let failure_mode = match raw.failure_mode.as_deref() {
        None | Some("deny") => FailureMode::Deny,
        Some("allow") => FailureMode::Allow,
        Some(other) => {
            return Err(ConfigError::new(
                format!("{field}.failureMode"),
                format!("`{other}` is neither `deny` nor `allow`"),
            ))
        }
    };
    let credential = match &raw_apiserver.token_env {
        Some(name) if name.is_empty() => {
            return Err(ConfigError::new(
                format!("{field}.apiserver.tokenEnv"),
                "must not be empty",
            ))
        }
        Some(name) => match env(name) {
            Some(value) if !value.trim().is_empty() => Credential::Bearer {
                env: name.clone(),
                token: value.trim().to_string(),
            },
            _ => {
                warnings.push(missing_credential_warning(name, failure_mode));
                Credential::Missing { env: name.clone() }
            }
        },
        None => Credential::Anonymous,
    };
    let apiserver = ApiServer {
        cluster: raw_apiserver
            .cluster
            .unwrap_or_else(|| DEFAULT_APISERVER_CLUSTER.to_string()),
        authority: raw_apiserver
            .authority
            .unwrap_or_else(|| DEFAULT_APISERVER_AUTHORITY.to_string()),
        credential,
        timeout: duration(
            &format!("{field}.apiserver.timeout"),
            raw_apiserver.timeout.as_deref(),
            DEFAULT_APISERVER_TIMEOUT,
        )?,
    };
    if apiserver.cluster.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.apiserver.cluster"),
            "must not be empty",
        ));
    }
    let cache = raw.cache.unwrap_or(RawCache {
        allowed_ttl: None,
        denied_ttl: None,
        max_entries: None,
    });
    let max_entries = cache.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    let mut rules = Vec::new();
    for (index, rule) in raw.rules.into_iter().enumerate() {
        rules.push(validate_rule(&format!("{field}.rules[{index}]"), rule)?);
    }
    Ok(Authorization {
        apiserver,
        rules,
        default_deny: raw.default_deny,
        user_claim: raw.user_claim,
        groups_claim: raw.groups_claim,
        allowed_ttl: duration(
            &format!("{field}.cache.allowedTtl"),
            cache.allowed_ttl.as_deref(),
            DEFAULT_ALLOWED_TTL,
        )?,
        denied_ttl: duration(
            &format!("{field}.cache.deniedTtl"),
            cache.denied_ttl.as_deref(),
            DEFAULT_DENIED_TTL,
        )?,
        max_entries,
        failure_mode,
    })
}

fn validate_rule(field: &str, raw: RawRule) -> Result<AuthzRule, ConfigError> {
    let hosts = regexes(&format!("{field}.match.hosts"), &raw.matcher.hosts)?;
    let paths = regexes(&format!("{field}.match.paths"), &raw.matcher.paths)?;
    let host_names = capture_names(&hosts);
    let path_names = capture_names(&paths);
    let template = |name: &str, value: &Option<String>| -> Result<Option<Template>, ConfigError> {
        value
            .as_deref()
            .map(|text| {
                Template::parse(text, &host_names, &path_names).map_err(|problem| {
                    ConfigError::new(format!("{field}.{name}"), problem.to_string())
                })
            })
            .transpose()
    };
    let attributes = match (raw.resource_attributes, raw.non_resource_attributes) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("{field}.resourceAttributes"),
                "give either resourceAttributes or nonResourceAttributes, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                format!("{field}.resourceAttributes"),
                "one of resourceAttributes or nonResourceAttributes is required",
            ))
        }
        (Some(attributes), None) => Attributes::Resource {
            namespace: template("resourceAttributes.namespace", &attributes.namespace)?,
            group: template("resourceAttributes.group", &attributes.group)?,
            version: template("resourceAttributes.version", &attributes.version)?,
            resource: template("resourceAttributes.resource", &attributes.resource)?,
            subresource: template("resourceAttributes.subresource", &attributes.subresource)?,
            name: template("resourceAttributes.name", &attributes.name)?,
            verb: template("resourceAttributes.verb", &attributes.verb)?,
        },
        (None, Some(attributes)) => Attributes::NonResource {
            path: template("nonResourceAttributes.path", &attributes.path)?,
            verb: template("nonResourceAttributes.verb", &attributes.verb)?,
        },
    };
    Ok(AuthzRule {
        hosts,
        paths,
        methods: raw
            .matcher
            .methods
            .iter()
            .map(|method| method.to_ascii_uppercase())
            .collect(),
        attributes,
    })
}
