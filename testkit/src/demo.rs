//! The local demo (`make run`, `envoy/envoy.yaml`): fixed ports, its
//! pluginConfig, and a small identity provider that serves its JWKS and mints
//! tokens on request.

use serde_json::{json, Value};

use crate::bootstrap::{
    AccessLog, Cluster, EnvoySettings, KFAUTH_ACCESS_LOG_FORMAT, WASM_RELATIVE_PATH,
};
use crate::idp::{now, Alg, Idp};
use crate::serve::{HttpServer, Reply};

pub const LISTENER_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9901;
pub const IDP_PORT: u16 = 9000;
pub const UPSTREAM_PORT: u16 = 9001;
pub const ISSUER: &str = "http://127.0.0.1:9000";
pub const AUDIENCE: &str = "kubeflow";
pub const JWKS_URI: &str = "http://127.0.0.1:9000/keys";

/// The demo pluginConfig embedded in `envoy/envoy.yaml`.
pub fn plugin_config() -> Value {
    json!({
        "jwtRules": [{
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwksUri": JWKS_URI,
            "outputClaimToHeaders": [
                {"header": "kubeflow-userid", "claim": "email"},
                {"header": "kubeflow-groups", "claim": "groups"},
            ],
        }],
        "requireJwt": true,
        "skipPaths": ["^/dex/"],
    })
}

/// The settings `envoy/envoy.yaml` is rendered from: fixed ports and the
/// module path relative to the repository root (Envoy runs from there).
pub fn envoy_settings() -> EnvoySettings {
    EnvoySettings {
        listener_port: LISTENER_PORT,
        admin_port: ADMIN_PORT,
        upstream_port: UPSTREAM_PORT,
        wasm_path: WASM_RELATIVE_PATH.to_string(),
        remote_code: None,
        extra_args: Vec::new(),
        plugin_config: plugin_config(),
        clusters: vec![Cluster::istio_loopback(IDP_PORT)],
        raw_clusters: Vec::new(),
        concurrency: crate::bootstrap::DEFAULT_CONCURRENCY,
        vm_env: Vec::new(),
        routes: Vec::new(),
        kfauth_filter: true,
        http_filters: Vec::new(),
        access_log: Some(AccessLog {
            path: None,
            format: KFAUTH_ACCESS_LOG_FORMAT.to_string(),
        }),
        listener_file: false,
        filter_file: false,
    }
}

/// Claims of a demo token: issuer, audience, `email`, `groups`, 1 h expiry.
pub fn demo_claims(email: &str, groups: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": email,
        "email": email,
        "groups": groups,
        "iat": now,
        "exp": now + 3600,
    })
}

/// Mints an RS256 demo token.
pub fn mint(idp: &Idp, email: &str, groups: &[&str]) -> String {
    idp.sign(Alg::RS256, &demo_claims(email, groups))
}

/// Serves `GET /keys` (the JWKS) and `GET /token?email=..&groups=a,b` (a
/// fresh RS256 token as text) for `idp` on `addr`.
pub fn start_idp_server(addr: &str, idp: &'static Idp) -> std::io::Result<HttpServer> {
    let jwks = idp.jwks();
    HttpServer::start(addr, move |request| match request.path() {
        "/keys" => Reply::json(200, &jwks),
        "/token" => {
            let email = request
                .query_param("email")
                .unwrap_or_else(|| "user@example.com".to_string());
            let groups = request.query_param("groups").unwrap_or_default();
            let groups: Vec<&str> = groups.split(',').filter(|g| !g.is_empty()).collect();
            Reply::text(200, &format!("{}\n", mint(idp, &email, &groups)))
        }
        _ => Reply::text(
            404,
            "try /keys or /token?email=user@example.com&groups=a,b\n",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{embedded_plugin_config, render_envoy_yaml, repo_root};

    #[test]
    fn committed_envoy_yaml_is_the_demo_rendering() {
        let path = repo_root().join("envoy/envoy.yaml");
        let committed = std::fs::read_to_string(&path).expect("envoy/envoy.yaml exists");
        assert!(
            committed == render_envoy_yaml(&envoy_settings()),
            "{} is stale; regenerate it with\n  cargo run -p kfauth-testkit --bin kfauth-demo -- --print-envoy-yaml > envoy/envoy.yaml",
            path.display()
        );
        assert_eq!(embedded_plugin_config(&committed), Some(plugin_config()));
        assert!(committed.contains(r#"name: "outbound|9000||127.0.0.1""#));
    }

    #[test]
    fn docker_compose_runs_the_same_file_from_the_repo_root() {
        let compose = std::fs::read_to_string(repo_root().join("envoy/docker-compose.yaml"))
            .expect("envoy/docker-compose.yaml exists");
        assert!(compose.contains("envoyproxy/envoy:v1.40"));
        assert!(compose.contains("network_mode: host"));
        assert!(compose.contains("working_dir: /kfauth"));
        assert!(compose.contains("/kfauth/envoy/envoy.yaml"));
        assert!(compose.contains("--no-envoy"));
    }

    #[test]
    fn the_idp_server_serves_keys_and_tokens() {
        let idp = Idp::shared();
        let server = start_idp_server("127.0.0.1:0", idp).unwrap();
        let keys = crate::client::get(&server.url("/keys"), &[]);
        assert_eq!(keys.status, 200);
        assert_eq!(keys.json(), idp.jwks());
        let token = crate::client::get(
            &server.url("/token?email=bob%40example.com&groups=a,b"),
            &[],
        );
        assert_eq!(token.status, 200);
        let claims = crate::forge::segment_json(token.body.trim(), 1);
        assert_eq!(claims["email"], "bob@example.com");
        assert_eq!(claims["groups"], json!(["a", "b"]));
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
    }
}
