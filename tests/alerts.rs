//! kfauth's alerts and dashboard (`wasmplugin/monitoring/`) against the real
//! tools: Debian's `prometheus` package (`promtool`, `prometheus`; `make e2e`
//! installs it; without it each test reports itself skipped by name).
//!
//! `promtool_checks_and_unit_tests_the_rules`: the PrometheusRule's `spec` is
//! a valid rule file (`promtool check rules`), and `promtool test rules` runs
//! `tests/alerts/rules.test.yaml` on it: when each alert starts firing after
//! its `for:`, with which labels and text, and the cases that must not fire
//! (a single failed fetch among good ones, a reason that is frequent but a
//! small share of the traffic, another plugin's VM reloads).
//!
//! `monitoring_kustomization_renders` (skipped by name without `kubectl`):
//! `kubectl kustomize wasmplugin/monitoring` gives the PrometheusRule as
//! written and the dashboard as a ConfigMap for Grafana's sidecar, and the
//! dashboard is a Grafana dashboard whose every panel queries Prometheus.
//!
//! `alerts_follow_a_real_envoy_through_an_outage`: a real Prometheus on
//! 127.0.0.1 (1 s scrape and evaluation intervals, its own storage
//! directory) scrapes a real Envoy running kfauth (`/stats/prometheus`),
//! with the shipped rules loaded. The one change: `KfauthJwksStale`'s 1500 s
//! (the default 20m refresh plus 5 minutes) becomes 8 s, as the rule's
//! comment tells users with another `jwksRefreshInterval` to do (here 3s).
//! - healthy (good tokens, three forged ones): no alert is pending or
//!   firing, while every recorded series and every metric an alert reads has
//!   data (so "inactive" is not the silence of a wrong name);
//! - then 600 expired tokens (2 a second over the rules' 5-minute windows), requests whose SubjectAccessReview cannot
//!   reach the API server, and the key endpoint going down: `KfauthDenialSurge`
//!   (reason `token_expired`, and no other reason), `KfauthAuthorizerErrors`,
//!   `KfauthJwksFetchFailing`, `KfauthJwksStale` (the test's issuer) and,
//!   once the keys pass `jwksMaxStale`, `KfauthJwksUnavailable` each become
//!   pending or firing (their `for:` is minutes; promtool tests the firing),
//!   while `KfauthAuthorizerCredentialMissing` and `KfauthVmFailed` never do;
//! - every query of the dashboard returns data from this Prometheus.
//!
//! `a_trapped_vm_fires_kfauth_vm_failed`: the one alert a correct kfauth
//! cannot trigger, on a real trap: Envoy runs, as the plugin `kfauth` with
//! `failure_policy: FAIL_RELOAD`, a Proxy-Wasm module (WAT) whose request
//! handler executes `unreachable`; a Prometheus with the shipped rules
//! scrapes it. Before any request no alert is active; after requests that
//! trap (503) and make Envoy reload the VM, `KfauthVmFailed` fires with
//! `plugin="kfauth"` and `result="success"`.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kfauth_testkit::apiserver::conformance::report_skipped;
use kfauth_testkit::bootstrap::repo_root;
use kfauth_testkit::client;
use kfauth_testkit::envoy::{envoy_args, envoy_bin};
use kfauth_testkit::forge::replace_payload;
use kfauth_testkit::idp::now;
use kfauth_testkit::kustomize::{build, kubectl_present, read_yaml};
use kfauth_testkit::plugin_config::{claims, uri_rule, with_rules, ISSUER};
use kfauth_testkit::stats::issuer_metric_suffix;
use kfauth_testkit::{
    expect, render_envoy_yaml, Alg, Cluster, EnvoySettings, Gateway, Idp, JwksServer,
};
use serde_json::{json, Value};

/// The stale-keys threshold as shipped, and the test's (for `jwksRefreshInterval: 3s`).
const SHIPPED_STALE: &str = "\n> 1500\n";
const TEST_STALE: &str = "\n> 8\n";

fn monitoring_dir() -> PathBuf {
    repo_root().join("wasmplugin/monitoring")
}

/// The shipped PrometheusRule.
fn prometheus_rule() -> Value {
    let path = monitoring_dir().join("prometheusrule.yaml");
    let [rule] = read_yaml(&path)
        .unwrap()
        .try_into()
        .unwrap_or_else(|docs: Vec<Value>| {
            panic!("{}: {} documents, expected one", path.display(), docs.len())
        });
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    rule
}

/// The shipped Grafana dashboard.
fn dashboard() -> Value {
    let text = std::fs::read_to_string(monitoring_dir().join("kfauth-dashboard.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every rule of the shipped file: (alert or record name, expr).
fn rules(spec: &Value) -> Vec<(String, bool, String)> {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().iter())
        .map(
            |rule| match (rule["alert"].as_str(), rule["record"].as_str()) {
                (Some(alert), None) => (
                    alert.to_string(),
                    true,
                    rule["expr"].as_str().unwrap().into(),
                ),
                (None, Some(record)) => (
                    record.to_string(),
                    false,
                    rule["expr"].as_str().unwrap().into(),
                ),
                _ => panic!("a rule is an alert or a record: {rule}"),
            },
        )
        .collect()
}

/// Whether `promtool` and `prometheus` run; if not, `test` reports itself
/// skipped, naming the missing one.
fn tools_present(test: &str) -> bool {
    let missing = ["promtool", "prometheus"].into_iter().find(|tool| {
        !Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if let Some(tool) = missing {
        report_skipped(
            test,
            &format!("{tool} not installed (make e2e installs Debian's prometheus)"),
        );
    }
    missing.is_none()
}

/// A fresh directory under the target dir, removed first if it exists.
fn work_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("target/alerts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the rule groups as a plain Prometheus rule file (JSON is YAML).
fn write_rule_file(dir: &Path, spec: &Value) -> PathBuf {
    let path = dir.join("rules.json");
    std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    path
}

fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    if !tools_present("promtool_checks_and_unit_tests_the_rules") {
        return;
    }
    let spec = prometheus_rule()["spec"].clone();
    let dir = work_dir("promtool");
    write_rule_file(&dir, &spec);
    let checked = run("promtool", &["check", "rules", "rules.json"], &dir);
    let count = rules(&spec).len();
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );

    // Every alert has unit tests in rules.test.yaml, firing and not firing.
    let tests_file = repo_root().join("tests/alerts/rules.test.yaml");
    let unit_tests = std::fs::read_to_string(&tests_file).unwrap();
    for (name, is_alert, _) in rules(&spec) {
        if is_alert {
            assert!(
                unit_tests.contains(&format!("alertname: {name}\n    exp_alerts:\n    - ")),
                "no firing case for {name} in {}",
                tests_file.display()
            );
            assert!(
                unit_tests.contains(&format!("alertname: {name}\n    exp_alerts: []")),
                "no quiet case for {name} in {}",
                tests_file.display()
            );
        }
    }
    std::fs::copy(&tests_file, dir.join("rules.test.yaml")).unwrap();
    let tested = run("promtool", &["test", "rules", "rules.test.yaml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The `expr` of every panel target of the dashboard, with Grafana's
/// variables as a query over the last minute of all gateways would have them.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap().to_string();
            panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |target| {
                    let expr = target["expr"]
                        .as_str()
                        .unwrap()
                        .replace("$__rate_interval", "1m")
                        .replace("$instance", ".*");
                    (title.clone(), expr)
                })
        })
        .collect()
}

#[test]
fn monitoring_kustomization_renders() {
    let test = "monitoring_kustomization_renders";
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "kfauth");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "instance"]);
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        assert!(!panel["targets"].as_array().unwrap().is_empty());
    }
    if !kubectl_present() {
        report_skipped(test, "kubectl not found (rendering with kubectl kustomize)");
        return;
    }
    let rendered = build(&monitoring_dir()).unwrap_or_else(|e| panic!("{e}"));
    let kinds: BTreeSet<&str> = rendered.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "PrometheusRule"]));
    let rule = rendered
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .unwrap();
    assert_eq!(rule["spec"], prometheus_rule()["spec"]);
    assert_eq!(rule["metadata"]["namespace"], "istio-system");
    let config_map = rendered.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(config_map["metadata"]["name"], "kfauth-dashboard");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded: Value = serde_json::from_str(
        config_map["data"]["kfauth-dashboard.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(embedded, dashboard);
}

// ---------------------------------------------------------------------------
// A real Prometheus

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `prometheus` on 127.0.0.1, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Scrapes `target` (`HOST:PORT`, path `/stats/prometheus`) every
    /// second, evaluating `rule_file` every second.
    fn start(dir: &Path, target: &str, rule_file: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            json!({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [rule_file.display().to_string()],
                "scrape_configs": [{
                    "job_name": "gateway",
                    "metrics_path": "/stats/prometheus",
                    "static_configs": [{"targets": [target]}],
                }],
            })
            .to_string(),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus { child, port, log };
        prometheus.wait_until("ready", Duration::from_secs(20), || {
            client::send("GET", &prometheus.url("/-/ready"), &[], None)
                .is_ok_and(|r| r.status == 200)
        });
        prometheus
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_until(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "Prometheus: not {what} after {limit:?}; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `GET /api/v1/...`, its `data`; panics unless the status is success.
    fn api(&self, path_and_query: &str) -> Value {
        let response = client::get(&self.url(path_and_query), &[]);
        let body = response.json();
        assert_eq!(body["status"], "success", "{path_and_query}: {body}");
        body["data"].clone()
    }

    /// The result of an instant query.
    fn query(&self, promql: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", percent_encode(promql)))["result"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Alerts pending or firing: (name, labels, state).
    fn active_alerts(&self) -> Vec<(String, Value, String)> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| {
                (
                    alert["labels"]["alertname"].as_str().unwrap().to_string(),
                    alert["labels"].clone(),
                    alert["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The metric names an expression reads by name (quoted strings left out:
/// they are label_replace's regexes).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let unquoted: String = expr.split('"').step_by(2).collect::<Vec<_>>().join(" ");
    let mut names = BTreeSet::new();
    let mut current = String::new();
    for c in unquoted.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("kfauth") {
                names.insert(current.clone());
            }
            current.clear();
        }
    }
    names
}

#[test]
fn alerts_follow_a_real_envoy_through_an_outage() {
    if !tools_present("alerts_follow_a_real_envoy_through_an_outage") {
        return;
    }
    let idp = Idp::shared();
    let mut jwks = JwksServer::start(&idp.jwks_json());
    // Nothing listens here: every SubjectAccessReview fails to connect.
    let apiserver_port = free_port();
    let mut config = with_rules(
        vec![uri_rule(ISSUER, &jwks.uri())],
        json!({
            "jwksRefreshInterval": "3s",
            "jwksMaxStale": "12s",
            "authorization": {
                "apiserver": {"cluster": "apiserver", "authority": "kubernetes.default.svc", "timeout": "300ms"},
                "rules": [{"match": {"paths": ["^/authorized/"]}, "nonResourceAttributes": {}}],
                "failureMode": "deny",
            },
        }),
    );
    config["requireJwt"] = json!(true);
    let port = jwks.port();
    let gateway = Gateway::start_with(config, |s| {
        s.with_jwks_cluster(port)
            .with_cluster(Cluster::loopback("apiserver", apiserver_port))
            .with_concurrency(2)
    });
    let admin = gateway
        .admin_url("")
        .trim_start_matches("http://")
        .to_string();

    let dir = work_dir("prometheus");
    let mut spec = prometheus_rule()["spec"].clone();
    let stale = spec["groups"][1]["rules"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|rule| rule["alert"] == "KfauthJwksStale")
        .unwrap();
    let expr = stale["expr"].as_str().unwrap();
    assert!(expr.ends_with(SHIPPED_STALE), "{expr}");
    stale["expr"] = json!(expr.replace(SHIPPED_STALE, TEST_STALE));
    let rule_file = write_rule_file(&dir, &spec);
    let prometheus = Prometheus::start(&dir, &admin, &rule_file);
    prometheus.wait_until("scraping Envoy", Duration::from_secs(20), || {
        prometheus.query("up{job=\"gateway\"} == 1").len() == 1
    });

    // Healthy.
    let good = idp.sign(Alg::RS256, &claims("alice@example.com", &["a"]));
    let forged = replace_payload(&good, &claims("mallory@example.com", &["admin"]));
    let healthy_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < healthy_until {
        expect::allowed(&gateway.get_bearer_fresh("/echo", &good));
        assert!(
            prometheus.active_alerts().is_empty(),
            "healthy, yet {:?}",
            prometheus.active_alerts()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for _ in 0..3 {
        expect::rejected(
            &gateway.get_bearer_fresh("/echo", &forged),
            "signature_invalid",
        );
    }
    // Every record and every metric an alert reads has data, so the quiet is
    // the rules' verdict, not a name Envoy does not export.
    for (name, is_alert, expr) in rules(&spec) {
        let names = if is_alert {
            metric_names(&expr)
        } else {
            BTreeSet::from([name.clone()])
        };
        for metric in names {
            prometheus.wait_until(
                &format!("holding {metric}"),
                Duration::from_secs(10),
                || !prometheus.query(&metric).is_empty(),
            );
        }
    }
    assert!(
        prometheus.active_alerts().is_empty(),
        "healthy, yet {:?}",
        prometheus.active_alerts()
    );

    // Trouble: a flood of expired tokens, an API server that cannot be
    // reached, then the key endpoint goes down.
    let mut expired = claims("alice@example.com", &[]);
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let expired = idp.sign(Alg::ES256, &expired);
    // rate() over 5 minutes divides by 300 s: 600 refusals are 2 a second.
    for _ in 0..600 {
        expect::rejected(
            &gateway.get_bearer_fresh("/echo", &expired),
            "token_expired",
        );
    }
    for _ in 0..5 {
        expect::unavailable(
            &gateway.get_bearer_fresh("/authorized/x", &good),
            "authorizer_unavailable",
        );
    }
    jwks.stop();

    let expected = [
        "KfauthDenialSurge",
        "KfauthAuthorizerErrors",
        "KfauthJwksFetchFailing",
        "KfauthJwksStale",
        "KfauthJwksUnavailable",
    ];
    let never = ["KfauthAuthorizerCredentialMissing", "KfauthVmFailed"];
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(75);
    while !expected.iter().all(|name| seen.contains(*name)) {
        assert!(
            Instant::now() < deadline,
            "after 75 s of outage only {seen:?} of {expected:?} became active; Envoy: {:?}",
            gateway.stats().containing("kfauth.jw")
        );
        // One request a second: after jwksMaxStale they meet no keys.
        let answer = gateway.get_bearer_fresh("/echo", &good);
        assert!(answer.status == 200 || answer.status == 503, "{answer:?}");
        for (name, labels, state) in prometheus.active_alerts() {
            assert!(state == "pending" || state == "firing", "{name}: {state}");
            assert!(!never.contains(&name.as_str()), "{name} {labels}");
            match name.as_str() {
                "KfauthDenialSurge" => assert_eq!(labels["reason"], "token_expired", "{labels}"),
                "KfauthJwksStale" => {
                    assert_eq!(
                        labels["issuer"].as_str(),
                        Some(issuer_metric_suffix(ISSUER).as_str())
                    )
                }
                _ => {}
            }
            seen.insert(name);
        }
        std::thread::sleep(Duration::from_secs(1));
    }

    // The dashboard's queries, over the same data.
    for (panel, query) in dashboard_queries(&dashboard()) {
        assert!(
            !prometheus.query(&query).is_empty(),
            "dashboard panel {panel:?}: no data for {query}"
        );
    }
    gateway.assert_no_vm_trap();
}

/// A Proxy-Wasm module that starts and configures fine and traps on every
/// request's headers.
const TRAPPING_MODULE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_delete") (param i32)))"#;

/// Envoy with the Wasm plugin `kfauth` running `module` (and not kfauth),
/// reloaded when it fails, in front of an upstream it never reaches.
fn trapping_envoy_yaml(module: &Path, port: u16, admin_port: u16) -> String {
    let wasm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "kfauth",
            "root_id": "kfauth",
            "failure_policy": "FAIL_RELOAD",
            "vm_config": {
                "vm_id": "kfauth",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": module.display().to_string()}},
            },
        },
    });
    let settings = EnvoySettings {
        listener_port: port,
        admin_port,
        ..EnvoySettings::for_test(json!({}), free_port())
    }
    .without_kfauth()
    .with_http_filter("envoy.filters.http.wasm", &wasm);
    render_envoy_yaml(&settings)
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_trapped_vm_fires_kfauth_vm_failed() {
    if !tools_present("a_trapped_vm_fires_kfauth_vm_failed") {
        return;
    }
    let dir = work_dir("trap");
    let module = dir.join("trap.wasm");
    std::fs::write(&module, wat::parse_str(TRAPPING_MODULE).unwrap()).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, trapping_envoy_yaml(&module, port, admin_port)).unwrap();
    let log = dir.join("envoy.log");
    let _envoy = Killed(
        Command::new(envoy_bin())
            .args(envoy_args(&config, &log, 1))
            // The trap's log lines, on disk within the test's time.
            .args(["--file-flush-interval-msec", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy starts"),
    );
    let admin = format!("127.0.0.1:{admin_port}");
    let prometheus = Prometheus::start(
        &dir,
        &admin,
        &write_rule_file(&dir, &prometheus_rule()["spec"]),
    );
    let listening = || {
        client::send("GET", &format!("http://{admin}/ready"), &[], None)
            .is_ok_and(|r| r.status == 200)
    };
    prometheus.wait_until("seeing Envoy ready", Duration::from_secs(30), listening);
    // The reload counters exist at 0 before anything fails.
    prometheus.wait_until(
        "scraping the reload counters",
        Duration::from_secs(20),
        || prometheus.query("kfauth:wasm_vm_reloads:by_result").len() == 2,
    );
    assert!(
        prometheus.active_alerts().is_empty(),
        "{:?}",
        prometheus.active_alerts()
    );

    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let answer = client::get(&url, &[]);
        assert_eq!(answer.status, 503, "a trapped VM fails closed: {answer:?}");
        let fired = prometheus
            .active_alerts()
            .into_iter()
            .find(|(name, _, _)| name == "KfauthVmFailed");
        if let Some((_, labels, state)) = fired {
            assert_eq!(state, "firing", "no `for:`");
            assert_eq!(labels["plugin"], "kfauth", "{labels}");
            assert_eq!(labels["result"], "success", "{labels}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "KfauthVmFailed did not fire; reload counters: {:?}; Envoy log: {}",
            prometheus.query("kfauth:wasm_vm_reloads:by_result"),
            log.display()
        );
        // Past Envoy's reload backoff (1 s by default).
        std::thread::sleep(Duration::from_millis(1500));
    }
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !kfauth_testkit::envoy::vm_traps(&logs).is_empty(),
        "the 503s were traps"
    );
}
