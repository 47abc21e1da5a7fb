//! The Envoy bootstrap that loads kfauth: one listener whose HTTP filters are
//! the wasm filter then the router, a route to the `upstream` cluster, and
//! the clusters kfauth calls out to. The same renderer produces the committed
//! `envoy/envoy.yaml` (fixed ports) and the per-test configurations (free
//! ports), so the two cannot drift.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The wasm module as `make build` leaves it, relative to the repository root.
pub const WASM_RELATIVE_PATH: &str = "target/wasm32-wasip1/release/kfauth.wasm";

/// The repository root (the parent of the testkit crate).
pub fn repo_root() -> PathBuf {
    let testkit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().map(PathBuf::from).unwrap_or(testkit)
}

/// Absolute path of the module the tests load: `$KFAUTH_WASM` if set (e.g. a
/// release artifact), else the one `make build` leaves in `target/`.
pub fn wasm_path() -> PathBuf {
    match std::env::var_os("KFAUTH_WASM") {
        Some(path) => repo_root().join(path),
        None => repo_root().join(WASM_RELATIVE_PATH),
    }
}

/// The cluster name Istio gives the outbound cluster of `host:port`, which is
/// what kfauth derives from a `jwksUri` by default: `outbound|PORT||HOST`.
pub fn istio_cluster_name(host: &str, port: u16) -> String {
    format!("outbound|{port}||{host}")
}

/// TLS towards a cluster (for HTTPS callouts such as the API server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// SNI to send, if any.
    pub sni: Option<String>,
    /// PEM file of the CA that signs the server certificate; with neither
    /// this nor `ca_pem`, any certificate is accepted.
    pub ca_file: Option<String>,
    /// The CA certificate itself, PEM, rendered inline
    /// (`trusted_ca.inline_string`); takes precedence over `ca_file`.
    pub ca_pem: Option<String>,
}

impl ClusterTls {
    /// TLS that checks the server certificate against the CA in `ca_pem`.
    pub fn trusting_pem(sni: Option<&str>, ca_pem: &str) -> ClusterTls {
        ClusterTls {
            sni: sni.map(str::to_string),
            ca_file: None,
            ca_pem: Some(ca_pem.to_string()),
        }
    }

    /// TLS that checks the server certificate against the CA file `ca_file`.
    pub fn trusting_file(sni: Option<&str>, ca_file: &str) -> ClusterTls {
        ClusterTls {
            sni: sni.map(str::to_string),
            ca_file: Some(ca_file.to_string()),
            ca_pem: None,
        }
    }
}

/// A STATIC cluster with one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tls: Option<ClusterTls>,
    /// Speak HTTP/2 to the endpoint (gRPC upstreams).
    pub http2: bool,
}

impl Cluster {
    /// A plain HTTP/1.1 cluster to `127.0.0.1:port`.
    pub fn loopback(name: &str, port: u16) -> Cluster {
        Cluster {
            name: name.to_string(),
            address: "127.0.0.1".to_string(),
            port,
            tls: None,
            http2: false,
        }
    }

    /// The cluster Istio would name for `127.0.0.1:port`.
    pub fn istio_loopback(port: u16) -> Cluster {
        Cluster::loopback(&istio_cluster_name("127.0.0.1", port), port)
    }

    pub fn with_tls(mut self, tls: ClusterTls) -> Cluster {
        self.tls = Some(tls);
        self
    }

    pub fn with_http2(mut self) -> Cluster {
        self.http2 = true;
        self
    }
}

/// A route tried before the catch-all route to the `upstream` cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path prefix to match.
    pub prefix: String,
    /// Match only gRPC requests (Envoy's `grpc: {}` route match:
    /// `content-type: application/grpc` or `application/grpc+...`).
    pub grpc_only: bool,
    /// The cluster the matching requests go to.
    pub cluster: String,
}

impl Route {
    /// gRPC requests under `prefix` go to `cluster` (plain HTTP on the same
    /// paths still goes to `upstream`).
    pub fn grpc(prefix: &str, cluster: &str) -> Route {
        Route {
            prefix: prefix.to_string(),
            grpc_only: true,
            cluster: cluster.to_string(),
        }
    }
}

/// Everything that varies between bootstraps.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoySettings {
    /// Listener port; 0 lets the kernel choose (tests).
    pub listener_port: u16,
    /// Admin port; 0 lets the kernel choose (tests).
    pub admin_port: u16,
    /// Port of the `upstream` cluster (the echo server).
    pub upstream_port: u16,
    /// Path of kfauth.wasm, absolute or relative to Envoy's working directory.
    pub wasm_path: String,
    /// Where the VM's code comes from instead of `wasm_path`: fetched by
    /// Envoy over HTTP and checked against a sha256 (`code.remote`).
    pub remote_code: Option<RemoteCode>,
    /// More command-line arguments for Envoy (e.g. `--component-log-level`).
    /// Not part of the YAML.
    pub extra_args: Vec<String>,
    /// The pluginConfig, passed to the filter as JSON.
    pub plugin_config: Value,
    /// Clusters besides `upstream` (JWKS endpoints, API server, ...).
    pub clusters: Vec<Cluster>,
    /// Clusters as raw YAML list items (`- name: ...`, indented for
    /// `static_resources.clusters`), for what [`Cluster`] cannot express.
    pub raw_clusters: Vec<String>,
    /// Worker threads (`--concurrency`); each runs its own wasm VM, and the
    /// main thread runs one more. Not part of the YAML.
    pub concurrency: u32,
    /// Environment variables of the wasm VM
    /// (`vm_config.environment_variables.key_values`), e.g. the API server
    /// token kfauth reads through `authorization.apiserver.tokenEnv`.
    pub vm_env: Vec<(String, String)>,
    /// Routes tried in order before the catch-all route to `upstream`.
    pub routes: Vec<Route>,
    /// Whether the kfauth wasm filter is in the chain (`false`: a chain of
    /// Envoy's own filters only, e.g. Istio's `jwt_authn` + RBAC for comparison).
    pub kfauth_filter: bool,
    /// HTTP filters after kfauth and before the router, as raw YAML list
    /// items (`- name: ...`, indented for `http_filters`), in order.
    pub http_filters: Vec<String>,
    /// A file access log on the listener's HTTP connection manager.
    pub access_log: Option<AccessLog>,
    /// The listener comes from a file Envoy watches (LDS from the
    /// filesystem) instead of the bootstrap, so that a test can change it
    /// while Envoy runs ([`crate::Envoy::update_listener`]), as Istio
    /// pushes a changed WasmPlugin.
    pub listener_file: bool,
    /// The kfauth filter's configuration comes from a file Envoy watches
    /// (ECDS from the filesystem), as Istio sends a WasmPlugin, so that a
    /// test can change it while Envoy runs ([`crate::Envoy::update_filter`]).
    pub filter_file: bool,
}

/// The access-log format the README documents (its *Access log* section,
/// without the final newline): the request, the status, and kfauth's filter
/// state. `make run`'s Envoy prints it; `tests/access_log.rs` checks the
/// README against it.
pub const KFAUTH_ACCESS_LOG_FORMAT: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% "%REQ(:AUTHORITY)%" kfauth=%FILTER_STATE(wasm.kfauth.decision:PLAIN)% user="%FILTER_STATE(wasm.kfauth.user:PLAIN)%" issuer=%FILTER_STATE(wasm.kfauth.issuer:PLAIN)% reason=%FILTER_STATE(wasm.kfauth.reason:PLAIN)% detail="%FILTER_STATE(wasm.kfauth.detail:PLAIN)%" verb=%FILTER_STATE(wasm.kfauth.verb:PLAIN)% resource=%FILTER_STATE(wasm.kfauth.resource:PLAIN)% namespace=%FILTER_STATE(wasm.kfauth.namespace:PLAIN)%"#;

/// Envoy's file access log (`envoy.access_loggers.file`) with a text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// The file; `None`: a test's Envoy writes `access.log` in its scratch
    /// directory ([`crate::Envoy::access_log`] reads it), a rendered
    /// bootstrap writes to `/dev/stdout`.
    pub path: Option<String>,
    /// The format line (command operators such as `%FILTER_STATE(...)%`),
    /// without the newline Envoy needs at its end.
    pub format: String,
}

/// Worker threads unless a scenario asks for more: enough to exercise
/// per-worker VMs, few enough for a 2-core machine running suites in parallel.
pub const DEFAULT_CONCURRENCY: u32 = 2;

/// When set (`auto`, `host` or `wasm`), the `signatureVerification` of every
/// test configuration that sets none: `make e2e` runs the signature suites
/// once more with `wasm`, so kfauth's own code is tested end to end as well as
/// Envoy's `verify_signature` (which `auto` picks in Envoy 1.40).
pub const SIGNATURE_VERIFICATION_ENV: &str = "KFAUTH_SIGNATURE_VERIFICATION";

fn with_signature_verification(mut plugin_config: Value) -> Value {
    if let (Ok(mode), Some(config)) = (
        std::env::var(SIGNATURE_VERIFICATION_ENV),
        plugin_config.as_object_mut(),
    ) {
        config
            .entry("signatureVerification")
            .or_insert(Value::String(mode));
    }
    plugin_config
}

impl EnvoySettings {
    /// Settings for a test: free ports, the absolute module path, and the
    /// plugin config with [`SIGNATURE_VERIFICATION_ENV`] applied.
    pub fn for_test(plugin_config: Value, upstream_port: u16) -> EnvoySettings {
        let plugin_config = with_signature_verification(plugin_config);
        EnvoySettings {
            listener_port: 0,
            admin_port: 0,
            upstream_port,
            wasm_path: wasm_path().display().to_string(),
            remote_code: None,
            extra_args: Vec::new(),
            plugin_config,
            clusters: Vec::new(),
            raw_clusters: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            vm_env: Vec::new(),
            routes: Vec::new(),
            kfauth_filter: true,
            http_filters: Vec::new(),
            access_log: None,
            listener_file: false,
            filter_file: false,
        }
    }

    /// Runs Envoy with `workers` worker threads (`--concurrency`).
    pub fn with_concurrency(mut self, workers: u32) -> EnvoySettings {
        self.concurrency = workers;
        self
    }

    pub fn with_cluster(mut self, cluster: Cluster) -> EnvoySettings {
        self.clusters.push(cluster);
        self
    }

    /// Adds the Istio-named cluster for a JWKS server on `127.0.0.1:port`.
    pub fn with_jwks_cluster(self, port: u16) -> EnvoySettings {
        self.with_cluster(Cluster::istio_loopback(port))
    }

    pub fn with_raw_cluster(mut self, yaml: &str) -> EnvoySettings {
        self.raw_clusters.push(yaml.to_string());
        self
    }

    /// Adds a route tried before the catch-all route to `upstream`.
    pub fn with_route(mut self, route: Route) -> EnvoySettings {
        self.routes.push(route);
        self
    }

    /// Adds an HTTP filter after kfauth (and after the filters added before
    /// it), before the router; `name` and `typed_config` as in Envoy's
    /// `HttpFilter` (see [`http_filter_yaml`]).
    pub fn with_http_filter(mut self, name: &str, typed_config: &Value) -> EnvoySettings {
        self.http_filters.push(http_filter_yaml(name, typed_config));
        self
    }

    /// Logs every request to a file access log with `format` (see [`AccessLog`]).
    pub fn with_access_log(mut self, format: &str) -> EnvoySettings {
        self.access_log = Some(AccessLog {
            path: None,
            format: format.to_string(),
        });
        self
    }

    /// Leaves the kfauth wasm filter out of the chain.
    pub fn without_kfauth(mut self) -> EnvoySettings {
        self.kfauth_filter = false;
        self
    }

    /// Sets the wasm VM's environment variable `name` to `value`.
    pub fn with_vm_env(mut self, name: &str, value: &str) -> EnvoySettings {
        self.vm_env.push((name.to_string(), value.to_string()));
        self
    }

    /// Loads the module from `code` (a cluster the settings must also name)
    /// instead of the local file.
    pub fn with_remote_code(mut self, code: RemoteCode) -> EnvoySettings {
        self.remote_code = Some(code);
        self
    }

    /// Serves the listener from a watched file (see [`EnvoySettings::listener_file`]).
    pub fn with_listener_file(mut self) -> EnvoySettings {
        self.listener_file = true;
        self
    }

    /// Serves the kfauth filter's configuration from a watched file (see
    /// [`EnvoySettings::filter_file`]).
    pub fn with_filter_file(mut self) -> EnvoySettings {
        self.filter_file = true;
        self
    }

    /// Adds command-line arguments for Envoy.
    pub fn with_args(mut self, args: &[&str]) -> EnvoySettings {
        self.extra_args
            .extend(args.iter().map(|arg| arg.to_string()));
        self
    }
}

/// A module Envoy fetches itself (`config.core.v3.RemoteDataSource`): `uri`
/// through `cluster`, refused unless its sha256 is `sha256` (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCode {
    pub uri: String,
    pub cluster: String,
    pub sha256: String,
}

/// The `vm_config.code` flow mapping: the local file, or the remote source.
fn render_code(settings: &EnvoySettings) -> String {
    match &settings.remote_code {
        None => format!(
            "{{ local: {{ filename: {} }} }}",
            quoted(&settings.wasm_path)
        ),
        Some(remote) => format!(
            "{{ remote: {{ http_uri: {{ uri: {}, cluster: {}, timeout: 10s }}, sha256: {} }} }}",
            quoted(&remote.uri),
            quoted(&remote.cluster),
            quoted(&remote.sha256),
        ),
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// Renders the bootstrap YAML.
pub fn render_envoy_yaml(settings: &EnvoySettings) -> String {
    render_bootstrap(settings, None)
}

/// The listener's file in a watched directory (LDS), with `listener_file`.
pub const LISTENER_FILE: &str = "lds.yaml";
/// The kfauth filter's file in a watched directory (ECDS), with `filter_file`.
pub const FILTER_FILE: &str = "ecds.yaml";

/// The bootstrap YAML. With `watched` (a directory Envoy watches), the
/// listener is read from [`LISTENER_FILE`] there if the settings ask for a
/// `listener_file`, and the kfauth filter from [`FILTER_FILE`] if they ask
/// for a `filter_file`.
pub fn render_bootstrap(settings: &EnvoySettings, watched: Option<&Path>) -> String {
    let mut yaml = String::new();
    let _ = write!(
        yaml,
        r#"# Envoy with the kfauth wasm filter in front of one upstream.
# Rendered by kfauth-testkit (bootstrap.rs, render_envoy_yaml); the e2e tests
# render the same shape with free ports. Regenerate this file with:
#   cargo run -p kfauth-testkit --bin kfauth-demo -- --print-envoy-yaml > envoy/envoy.yaml
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}
"#,
        admin_port = settings.admin_port,
    );
    if let Some(dir) = watched.filter(|_| settings.listener_file || settings.filter_file) {
        // Configuration from files needs a node to speak for (any name).
        yaml.push_str("node: { id: kfauth-test, cluster: kfauth-test }\n");
        if settings.listener_file {
            let _ = write!(
                yaml,
                "dynamic_resources:\n  lds_config: {}\n",
                watched_source(dir, LISTENER_FILE)
            );
        }
    }
    yaml.push_str("static_resources:\n");
    if !(settings.listener_file && watched.is_some()) {
        yaml.push_str("  listeners:\n");
        yaml.push_str(&render_listener(settings, watched));
    }
    yaml.push_str("  clusters:\n");
    render_cluster(
        &mut yaml,
        &Cluster::loopback("upstream", settings.upstream_port),
    );
    for cluster in &settings.clusters {
        render_cluster(&mut yaml, cluster);
    }
    for raw in &settings.raw_clusters {
        yaml.push_str(raw.trim_end());
        yaml.push('\n');
    }
    yaml
}

/// A `ConfigSource` (flow mapping) reading `file` in the watched `dir`: a
/// file swapped in by a rename is read again.
fn watched_source(dir: &Path, file: &str) -> String {
    format!(
        "{{ resource_api_version: V3, path_config_source: {{ path: {}, watched_directory: {{ path: {} }} }} }}",
        quoted(&dir.join(file).display().to_string()),
        quoted(&dir.display().to_string()),
    )
}

/// The listener, as a `static_resources.listeners` list item.
fn render_listener(settings: &EnvoySettings, watched: Option<&Path>) -> String {
    let kfauth = match watched.filter(|_| settings.filter_file) {
        _ if !settings.kfauth_filter => String::new(),
        None => render_kfauth_filter(settings),
        // Istio's shape: the filter's configuration by ECDS, named `kfauth`.
        Some(dir) => format!(
            "          - name: kfauth\n            config_discovery:\n              config_source: {}\n              type_urls: [\"{WASM_FILTER_TYPE}\"]\n",
            watched_source(dir, FILTER_FILE)
        ),
    };
    format!(
        r#"  - name: kfauth
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listener_port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: kfauth
          codec_type: AUTO
          # Room for tokens beyond kfauth's 64 KiB limit, so the filter sees them.
          max_request_headers_kb: 96
{access_log}          route_config:
            name: local
            virtual_hosts:
            - name: upstream
              domains: ["*"]
              routes:
{routes}              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
          http_filters:
{kfauth}{http_filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        listener_port = settings.listener_port,
        routes = render_routes(&settings.routes),
        http_filters = settings.http_filters.concat(),
        access_log = render_access_log(settings.access_log.as_ref()),
    )
}

const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// `item` (a YAML list item indented by `indent` spaces) as the one resource
/// of a file a `path_config_source` reads (`DiscoveryResponse` YAML), its
/// first line replaced by `@type` and `head`.
fn resource_file(item: &str, indent: usize, resource_type: &str, head: &str) -> String {
    let margin = " ".repeat(indent);
    let mut lines = item
        .lines()
        .map(|line| line.strip_prefix(&margin).unwrap_or(line));
    let _first = lines.next();
    let mut file = format!("resources:\n- \"@type\": {resource_type}\n  {head}\n");
    for line in lines {
        file.push_str(line);
        file.push('\n');
    }
    file
}

/// The listener as an LDS resource file, for settings with `listener_file`.
pub fn render_listener_file(settings: &EnvoySettings, watched: &Path) -> String {
    resource_file(
        &render_listener(settings, Some(watched)),
        2,
        "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name: kfauth",
    )
}

/// The kfauth filter as an ECDS resource file (a `TypedExtensionConfig`
/// named `kfauth`), for settings with `filter_file`.
pub fn render_filter_file(settings: &EnvoySettings) -> String {
    resource_file(
        &render_kfauth_filter(settings),
        10,
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name: kfauth",
    )
}

/// The kfauth wasm filter as an `http_filters` list item.
fn render_kfauth_filter(settings: &EnvoySettings) -> String {
    let plugin_config = serde_json::to_string_pretty(&settings.plugin_config)
        .unwrap_or_else(|_| settings.plugin_config.to_string());
    let plugin_config: String = plugin_config
        .lines()
        .map(|line| format!("                    {line}\n"))
        .collect();
    format!(
        r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": {WASM_FILTER_TYPE}
              config:
                name: kfauth
                root_id: kfauth
                fail_open: false
                vm_config:
                  vm_id: kfauth
                  runtime: envoy.wasm.runtime.v8
                  code: {code}
{vm_env}                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: |
{plugin_config}"#,
        code = render_code(settings),
        vm_env = render_vm_env(&settings.vm_env),
    )
}

/// One `http_filters` list item: `name` with `typed_config` (which carries
/// its `@type`), written as a JSON flow mapping (valid YAML).
pub fn http_filter_yaml(name: &str, typed_config: &Value) -> String {
    format!(
        "          - name: {}\n            typed_config: {typed_config}\n",
        quoted(name)
    )
}

/// The routes before the catch-all one (nothing when there are none).
fn render_routes(routes: &[Route]) -> String {
    let mut yaml = String::new();
    for route in routes {
        let grpc = if route.grpc_only { ", grpc: {}" } else { "" };
        let _ = writeln!(
            yaml,
            "              - match: {{ prefix: {}{grpc} }}\n                route: {{ cluster: {} }}",
            quoted(&route.prefix),
            quoted(&route.cluster),
        );
    }
    yaml
}

/// The connection manager's `access_log` (nothing without one).
fn render_access_log(access_log: Option<&AccessLog>) -> String {
    let Some(access_log) = access_log else {
        return String::new();
    };
    format!(
        r#"          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {path}
              log_format:
                text_format_source:
                  inline_string: {format}
"#,
        path = quoted(access_log.path.as_deref().unwrap_or("/dev/stdout")),
        format = quoted(&format!("{}\n", access_log.format)),
    )
}

/// `environment_variables` of `vm_config` (nothing when there are none).
fn render_vm_env(variables: &[(String, String)]) -> String {
    if variables.is_empty() {
        return String::new();
    }
    let mut yaml =
        String::from("                  environment_variables:\n                    key_values:\n");
    for (name, value) in variables {
        let _ = writeln!(
            yaml,
            "                      {}: {}",
            quoted(name),
            quoted(value)
        );
    }
    yaml
}

/// One cluster as a `static_resources.clusters` list item (indented two
/// spaces), for bootstraps written by hand around it.
pub fn cluster_yaml(cluster: &Cluster) -> String {
    let mut yaml = String::new();
    render_cluster(&mut yaml, cluster);
    yaml
}

fn render_cluster(yaml: &mut String, cluster: &Cluster) {
    let name = quoted(&cluster.name);
    let _ = write!(
        yaml,
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {address}, port_value: {port} }}
"#,
        address = quoted(&cluster.address),
        port = cluster.port,
    );
    if cluster.http2 {
        yaml.push_str(
            r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#,
        );
    }
    if let Some(tls) = &cluster.tls {
        yaml.push_str(
            r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
"#,
        );
        if let Some(sni) = &tls.sni {
            let _ = writeln!(yaml, "        sni: {}", quoted(sni));
        }
        let trusted_ca = match (&tls.ca_pem, &tls.ca_file) {
            (Some(pem), _) => Some(format!("inline_string: {}", quoted(pem))),
            (None, Some(file)) => Some(format!("filename: {}", quoted(file))),
            (None, None) => None,
        };
        if let Some(trusted_ca) = trusted_ca {
            let _ = write!(
                yaml,
                "        common_tls_context:\n          validation_context:\n            trusted_ca: {{ {trusted_ca} }}\n",
            );
        }
    }
}

/// The pluginConfig JSON embedded in a rendered bootstrap (the literal block
/// after `value: |`), for checking what a YAML file passes to kfauth.
pub fn embedded_plugin_config(yaml: &str) -> Option<Value> {
    let mut lines = yaml.lines().skip_while(|line| line.trim() != "value: |");
    let marker = lines.next()?;
    let indent = marker.len() - marker.trim_start().len();
    let block: String = lines
        .take_while(|line| line.len() - line.trim_start().len() > indent)
        .map(|line| format!("{line}\n"))
        .collect();
    serde_json::from_str(&block).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Value {
        json!({
            "jwtRules": [{"issuer": "it's \"quoted\"", "jwks": "{\"keys\":[]}"}],
            "skipPaths": ["^/dex/", "a\\.b"],
        })
    }

    #[test]
    fn the_plugin_config_reaches_the_filter_verbatim() {
        let yaml = render_envoy_yaml(&EnvoySettings::for_test(config(), 1234));
        assert_eq!(embedded_plugin_config(&yaml), Some(config()));
    }

    #[test]
    fn a_remote_module_replaces_the_local_file() {
        let settings = EnvoySettings::for_test(config(), 1234)
            .with_cluster(Cluster::loopback("wasm_http", 2))
            .with_remote_code(RemoteCode {
                uri: "http://127.0.0.1:2/kfauth.wasm".into(),
                cluster: "wasm_http".into(),
                sha256: "ab".into(),
            });
        let yaml = render_envoy_yaml(&settings);
        assert!(yaml.contains(
            r#"code: { remote: { http_uri: { uri: "http://127.0.0.1:2/kfauth.wasm", cluster: "wasm_http", timeout: 10s }, sha256: "ab" } }"#
        ));
        assert!(!yaml.contains("local: {"));
    }

    #[test]
    fn test_settings_use_free_ports_and_the_absolute_module_path() {
        let yaml = render_envoy_yaml(&EnvoySettings::for_test(config(), 1234));
        assert!(yaml.contains("socket_address: { address: 127.0.0.1, port_value: 0 }"));
        assert!(yaml.contains("max_request_headers_kb: 96"));
        assert!(yaml.contains(&format!(
            "filename: {}",
            quoted(&wasm_path().display().to_string())
        )));
        assert!(wasm_path().is_absolute());
        assert!(yaml.contains(r#"socket_address: { address: "127.0.0.1", port_value: 1234 }"#));
    }

    #[test]
    fn clusters_are_named_the_istio_way_and_quoted() {
        assert_eq!(
            istio_cluster_name("127.0.0.1", 9000),
            "outbound|9000||127.0.0.1"
        );
        let settings =
            EnvoySettings::for_test(config(), 1)
                .with_jwks_cluster(4321)
                .with_cluster(Cluster::loopback("apiserver", 6443).with_tls(
                    ClusterTls::trusting_file(Some("kubernetes.default"), "/tmp/ca.pem"),
                ))
                .with_cluster(
                    Cluster::loopback("inline", 6444).with_tls(ClusterTls::trusting_pem(
                        None,
                        "-----BEGIN CERTIFICATE-----\nAB\n",
                    )),
                )
                .with_cluster(Cluster::loopback("grpc", 7000).with_http2())
                .with_raw_cluster("  - name: raw\n    type: STATIC\n");
        let yaml = render_envoy_yaml(&settings);
        assert!(yaml.contains(r#"  - name: "outbound|4321||127.0.0.1""#));
        assert!(yaml.contains(r#"        sni: "kubernetes.default""#));
        assert!(yaml.contains(r#"trusted_ca: { filename: "/tmp/ca.pem" }"#));
        assert!(
            yaml.contains(r#"trusted_ca: { inline_string: "-----BEGIN CERTIFICATE-----\nAB\n" }"#)
        );
        assert!(yaml.contains("http2_protocol_options: {}"));
        assert!(yaml.ends_with("  - name: raw\n    type: STATIC\n"));
        assert!(!yaml.contains("environment_variables"));
    }

    #[test]
    fn extra_routes_come_before_the_catch_all_route() {
        let settings =
            EnvoySettings::for_test(config(), 1).with_route(Route::grpc("/ml_metadata", "grpc"));
        let yaml = render_envoy_yaml(&settings);
        assert!(yaml.contains(
            "              routes:\n              - match: { prefix: \"/ml_metadata\", grpc: {} }\n                route: { cluster: \"grpc\" }\n              - match: { prefix: \"/\" }\n                route: { cluster: upstream }\n"
        ));
    }

    #[test]
    fn extra_http_filters_go_between_kfauth_and_the_router() {
        let rbac = json!({"@type": "type.googleapis.com/x.RBAC", "rules": {"action": "DENY"}});
        let settings = EnvoySettings::for_test(config(), 1)
            .with_http_filter("envoy.filters.http.jwt_authn", &json!({"@type": "t.J"}))
            .with_http_filter("envoy.filters.http.rbac", &rbac);
        let yaml = render_envoy_yaml(&settings);
        let wasm = yaml.find("- name: envoy.filters.http.wasm").unwrap();
        let jwt = yaml
            .find("          - name: \"envoy.filters.http.jwt_authn\"\n            typed_config: {\"@type\":\"t.J\"}\n")
            .unwrap();
        let rbac_at = yaml.find("- name: \"envoy.filters.http.rbac\"").unwrap();
        let router = yaml.find("- name: envoy.filters.http.router").unwrap();
        assert!(wasm < jwt && jwt < rbac_at && rbac_at < router, "{yaml}");
        assert_eq!(embedded_plugin_config(&yaml), Some(config()));

        let native = render_envoy_yaml(&settings.without_kfauth());
        assert!(!native.contains("envoy.filters.http.wasm"), "{native}");
        assert!(native.contains(
            "          http_filters:\n          - name: \"envoy.filters.http.jwt_authn\""
        ));
    }

    #[test]
    fn vm_environment_variables_are_rendered_under_vm_config() {
        let settings = EnvoySettings::for_test(config(), 1).with_vm_env("KFAUTH_TOKEN", "s3cr\"t");
        let yaml = render_envoy_yaml(&settings);
        assert!(yaml.contains(
            "                  environment_variables:\n                    key_values:\n                      \"KFAUTH_TOKEN\": \"s3cr\\\"t\"\n                configuration:"
        ));
        assert_eq!(embedded_plugin_config(&yaml), Some(config()));
    }
}
