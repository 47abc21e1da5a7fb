//! What `kfauth check` says of a WasmPlugin around its pluginConfig: an image
//! reference that cannot be the module (a placeholder url, a digest that is
//! no digest) is an error, since a gateway that cannot fetch the module then
//! denies every request (Istio 1.25 and later, `FAIL_CLOSE`) or serves without
//! kfauth (earlier releases; README, "What a refused configuration or module
//! does"); an unpinned image or an API-server token the gateway may not have
//! yet is a warning.

use serde_json::Value;

use crate::config::Config;

/// Problems found in a WasmPlugin's `spec`, outside `pluginConfig`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpecReport {
    /// `spec.FIELD: what is wrong`; any of them makes `check` exit 1.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Hosts that can never be a registry or a download server: RFC 2606's
/// example domains and RFC 6761's reserved top-level names.
fn reserved_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    ["example.com", "example.org", "example.net"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
        || [".invalid", ".example", ".test"]
            .iter()
            .any(|tld| host.ends_with(tld) || host == tld.trim_start_matches('.'))
}

/// Words and characters that mark text someone meant to replace.
fn placeholder_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "patch_me",
        "change_me",
        "changeme",
        "replace_me",
        "replace-me",
        "placeholder",
        "your-registry",
        "your_registry",
    ]
    .iter()
    .any(|word| lower.contains(word))
        || text.contains(['<', '>', '{', '}', '$'])
}

/// The host of `url` after its scheme (Istio takes a url without one as OCI).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.split(':').next().unwrap_or("")
}

fn check_url(url: Option<&str>, report: &mut SpecReport) -> Option<String> {
    let Some(url) = url.filter(|url| !url.is_empty()) else {
        report
            .errors
            .push("spec.url: missing; set it to the image or file of the module".into());
        return None;
    };
    let scheme = url.split_once("://").map_or("oci", |(scheme, _)| scheme);
    if !["oci", "http", "https", "file"].contains(&scheme) {
        report.errors.push(format!(
            "spec.url: scheme `{scheme}` is not one Istio fetches (oci://, https://, http://, file://)"
        ));
        return None;
    }
    let host = url_host(url);
    if placeholder_text(url) || (scheme != "file" && (host.is_empty() || reserved_host(host))) {
        report.errors.push(format!(
            "spec.url: `{url}` is a placeholder; set it to the image you pushed (`make push` prints it)"
        ));
    }
    Some(scheme.to_string())
}

/// SHA-256 of no bytes at all: what a digest of an empty download looks like.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn check_sha256(sha256: Option<&str>, scheme: Option<&str>, report: &mut SpecReport) {
    let sha256 = sha256.unwrap_or("");
    if sha256.is_empty() {
        if scheme.is_some_and(|scheme| scheme != "file") {
            report.warnings.push(
                "spec.sha256: empty, so Istio loads whatever the url serves today; pin the digest `make image` prints".into(),
            );
        }
        return;
    }
    let hex = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let problem = if !hex {
        Some("is not 64 lower-case hex digits")
    } else if sha256
        .bytes()
        .all(|b| Some(&b) == sha256.as_bytes().first())
    {
        Some("is a placeholder (one digit repeated)")
    } else if sha256 == EMPTY_SHA256 {
        Some("is the digest of empty content")
    } else {
        None
    };
    if let Some(problem) = problem {
        let which = match scheme {
            Some("oci") => "the manifest digest `make image` prints for oci://",
            _ => "the module's sha256 `make image` prints for https:// (file:// urls are not checked by Istio)",
        };
        report.errors.push(format!(
            "spec.sha256: `{sha256}` {problem}; set it to {which}"
        ));
    }
}

/// How the VM gets `tokenEnv`: in `spec.vmConfig.env` by value, from the
/// gateway's own environment (`valueFrom: HOST`, the default), or not at all.
fn check_token_env(spec: &Value, config: &Config, report: &mut SpecReport) {
    let Some(authorization) = &config.authorization else {
        return;
    };
    let Some(name) = authorization.apiserver.token_env() else {
        return;
    };
    let entry = spec
        .pointer("/vmConfig/env")
        .and_then(Value::as_array)
        .and_then(|env| {
            env.iter()
                .find(|entry| entry.get("name").and_then(Value::as_str) == Some(name))
        });
    let Some(entry) = entry else {
        report.warnings.push(format!(
            "pluginConfig.authorization.apiserver.tokenEnv: `{name}` is not in spec.vmConfig.env, so the VM never sees it: \
             kfauth authenticates, but every request that needs a review gets 503 authorizer_unavailable"
        ));
        return;
    };
    let from_host = entry.get("valueFrom").and_then(Value::as_str) != Some("INLINE")
        && entry.get("value").is_none();
    if from_host {
        report.warnings.push(format!(
            "pluginConfig.authorization.apiserver.tokenEnv: `{name}` comes from the gateway's environment (valueFrom: HOST): \
             roll the gateway Deployment out with it before applying this WasmPlugin; until then kfauth authenticates, \
             but requests that need a review get 503 authorizer_unavailable"
        ));
    }
}

/// Checks `spec` of a WasmPlugin whose pluginConfig parsed as `config`
/// (`None` when it did not).
pub fn check_spec(spec: &Value, config: Option<&Config>) -> SpecReport {
    let mut report = SpecReport::default();
    let scheme = check_url(spec.get("url").and_then(Value::as_str), &mut report);
    check_sha256(
        spec.get("sha256").and_then(Value::as_str),
        scheme.as_deref(),
        &mut report,
    );
    if let Some(config) = config {
        check_token_env(spec, config, &mut report);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "5f0f9e1b3a2c4d6e8f7a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6";

    fn errors(spec: Value) -> Vec<String> {
        check_spec(&spec, None).errors
    }

    #[test]
    fn placeholder_urls_and_digests_are_errors_naming_the_field() {
        for url in [
            "oci://registry.invalid/kfauth:0.1.0",
            "oci://REGISTRY.example.com/kfauth:0.1.0",
            "https://example.org/kfauth.wasm",
            "oci://PATCH_ME/kfauth:0.1.0",
            "oci://<registry>/kfauth:0.1.0",
            "oci://${REGISTRY}/kfauth",
            "ftp://files.corp/kfauth.wasm",
            "",
        ] {
            let found = errors(json!({"url": url, "sha256": DIGEST}));
            assert_eq!(found.len(), 1, "{url}: {found:?}");
            assert!(found[0].starts_with("spec.url: "), "{url}: {found:?}");
        }
        for sha256 in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            EMPTY_SHA256,
            "5F0F9E1B3A2C4D6E8F7A9B0C1D2E3F405162738495A6B7C8D9E0F1A2B3C4D5E6",
            "sha256:5f0f9e1b3a2c4d6e8f7a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6",
            "abc",
        ] {
            let found = errors(json!({"url": "oci://ghcr.io/acme/kfauth:0.1.0", "sha256": sha256}));
            assert_eq!(found.len(), 1, "{sha256}: {found:?}");
            assert!(found[0].starts_with("spec.sha256: "), "{found:?}");
            assert!(found[0].contains("manifest digest"), "{found:?}");
        }
    }

    #[test]
    fn real_references_pass_and_an_unpinned_one_is_a_warning() {
        for url in [
            "oci://ghcr.io/acme/kfauth:0.1.0",
            "oci://registry.corp:5000/kfauth@sha256:5f0f",
            "ghcr.io/acme/kfauth:0.1.0",
            "https://github.com/acme/kfauth/releases/download/v0.1.0/kfauth.wasm",
            "file:///var/local/lib/wasm/kfauth.wasm",
        ] {
            let report = check_spec(&json!({"url": url, "sha256": DIGEST}), None);
            assert_eq!(report, SpecReport::default(), "{url}");
        }
        let report = check_spec(&json!({"url": "oci://ghcr.io/acme/kfauth:0.1.0"}), None);
        assert!(report.errors.is_empty());
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].starts_with("spec.sha256: empty"));
        let report = check_spec(&json!({"url": "file:///wasm/kfauth.wasm"}), None);
        assert_eq!(report, SpecReport::default(), "a local file needs no pin");
    }

    #[test]
    fn the_token_variable_must_reach_the_vm_and_be_rolled_out_first() {
        let config = Config::parse_with_env(
            json!({"jwtRules": [{"issuer": "https://dex.example.com", "jwksUri": "https://dex.example.com/keys",
                   "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}]}],
                   "authorization": {"apiserver": {"tokenEnv": "KFAUTH_APISERVER_TOKEN"}}})
            .to_string()
            .as_bytes(),
            &|_| Some("set".into()),
        )
        .unwrap();
        let warnings = |env: Value| {
            let spec = json!({"url": "oci://ghcr.io/acme/kfauth:0.1.0", "sha256": DIGEST, "vmConfig": {"env": env}});
            check_spec(&spec, Some(&config)).warnings
        };
        let host = warnings(json!([{"name": "KFAUTH_APISERVER_TOKEN", "valueFrom": "HOST"}]));
        assert_eq!(host.len(), 1, "{host:?}");
        assert!(
            host[0].contains("before applying this WasmPlugin"),
            "{host:?}"
        );
        assert_eq!(warnings(json!([{"name": "KFAUTH_APISERVER_TOKEN"}])), host);
        let absent = warnings(json!([{"name": "OTHER", "valueFrom": "HOST"}]));
        assert!(absent[0].contains("not in spec.vmConfig.env"), "{absent:?}");
        assert!(warnings(json!([{"name": "KFAUTH_APISERVER_TOKEN", "value": "t"}])).is_empty());
    }
}
