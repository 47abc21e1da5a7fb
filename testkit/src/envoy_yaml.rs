//! Envoy started from bootstrap YAML given as text, for the bootstraps that
//! [`EnvoySettings`] cannot express; today the module fetched by URL:
//! `vm_config.code.remote` (an `http_uri` through a cluster, checked against
//! `sha256`) instead of `code.local.filename`. The YAML is the usual rendered
//! bootstrap with the `code` line swapped ([`with_remote_code`]); the process
//! is run with the same arguments as [`Envoy`](crate::envoy::Envoy).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bootstrap::{render_envoy_yaml, repo_root, EnvoySettings};
use crate::client::{self, HttpResponse};
use crate::envoy::{envoy_args, envoy_bin, log_excerpt, vm_traps};

/// How long Envoy may take to become LIVE, remote fetch included.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The bootstrap of `settings` with the module fetched from `uri` through
/// `cluster` and checked against `sha256` (hex), as Envoy's
/// `config.core.v3.RemoteDataSource`. `settings` must name the cluster (e.g.
/// [`Cluster::loopback`](crate::bootstrap::Cluster::loopback)).
pub fn with_remote_code(
    settings: &EnvoySettings,
    uri: &str,
    cluster: &str,
    sha256: &str,
) -> String {
    let yaml = render_envoy_yaml(settings);
    let local = format!(
        "code: {{ local: {{ filename: {} }} }}",
        Value::String(settings.wasm_path.clone())
    );
    let remote = format!(
        "code: {{ remote: {{ http_uri: {{ uri: {}, cluster: {}, timeout: 10s }}, sha256: {} }} }}",
        Value::String(uri.to_string()),
        Value::String(cluster.to_string()),
        Value::String(sha256.to_string()),
    );
    assert!(
        yaml.contains(&local),
        "the rendered bootstrap no longer has the line `{local}`; update with_remote_code"
    );
    yaml.replacen(&local, &remote, 1)
}

/// A running Envoy started from YAML; killed when dropped. Like
/// [`Envoy`](crate::envoy::Envoy), a Wasm VM trap in its log fails the test
/// that owned it.
pub struct YamlEnvoy {
    child: Child,
    dir: PathBuf,
    admin: String,
    port: u16,
}

impl YamlEnvoy {
    /// Starts Envoy on `yaml` (whose listener is named `kfauth`, as rendered
    /// bootstraps are) with `concurrency` workers and `extra_args` (e.g.
    /// `--component-log-level config:debug`), and waits until it is LIVE: the
    /// init manager has finished, a remote fetch included, whether the module
    /// loaded or not. Panics with the log if it does not get there.
    pub fn start(yaml: &str, concurrency: u32, extra_args: &[&str]) -> YamlEnvoy {
        let dir = scratch_dir();
        let config = dir.join("envoy.yaml");
        fs::write(&config, yaml).expect("write bootstrap");
        let stdio = fs::File::create(dir.join("stdio.log")).expect("create stdio log");
        let stderr = stdio.try_clone().expect("clone stdio log");
        let mut args = envoy_args(&config, &dir.join("envoy.log"), concurrency);
        args.push("--admin-address-path".into());
        args.push(dir.join("admin.txt").display().to_string());
        args.push("--file-flush-interval-msec".into());
        args.push("100".into());
        args.extend(extra_args.iter().map(|arg| arg.to_string()));
        let child = Command::new(envoy_bin())
            .args(&args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run Envoy at {} ({e})", envoy_bin().display()));
        let mut envoy = YamlEnvoy {
            child,
            dir,
            admin: String::new(),
            port: 0,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !envoy.probe() {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!("Envoy exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "Envoy not LIVE after {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        envoy
    }

    /// LIVE, and the `kfauth` listener's port known.
    fn probe(&mut self) -> bool {
        if self.admin.is_empty() {
            match fs::read_to_string(self.dir.join("admin.txt")) {
                Ok(addr) if !addr.trim().is_empty() => self.admin = addr.trim().to_string(),
                _ => return false,
            }
        }
        let ready = client::send("GET", &self.admin_url("/ready"), &[], None);
        if !matches!(&ready, Ok(r) if r.status == 200 && r.body.trim() == "LIVE") {
            return false;
        }
        let Ok(listeners) =
            client::send("GET", &self.admin_url("/listeners?format=json"), &[], None)
        else {
            return false;
        };
        let port = listeners.json()["listener_statuses"]
            .as_array()
            .and_then(|all| all.iter().find(|l| l["name"] == "kfauth"))
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        self.port = port;
        port != 0
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// `GET path` through the `kfauth` listener.
    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let url = format!("http://127.0.0.1:{}{}", self.port, path_and_query);
        client::send("GET", &url, headers, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Everything Envoy logged so far (log file, then stdout/stderr).
    pub fn logs(&self) -> String {
        let mut logs = fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        logs.push_str(&fs::read_to_string(self.dir.join("stdio.log")).unwrap_or_default());
        logs
    }
}

impl Drop for YamlEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let logs = self.logs();
        if std::thread::panicking() {
            eprintln!(
                "--- Envoy log excerpt (full log: {}) ---\n{}",
                self.dir.join("envoy.log").display(),
                log_excerpt(&logs)
            );
            return;
        }
        let traps = vm_traps(&logs);
        assert!(
            traps.is_empty(),
            "the Wasm VM trapped (log in {}):\n{}",
            self.dir.display(),
            traps.join("\n")
        );
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kfauth-envoy-yaml-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::Cluster;
    use serde_json::json;

    #[test]
    fn the_code_line_becomes_a_remote_source() {
        let settings = EnvoySettings::for_test(json!({"jwtRules": []}), 1)
            .with_cluster(Cluster::loopback("wasm_http", 2));
        let yaml = with_remote_code(
            &settings,
            "http://127.0.0.1:2/kfauth.wasm",
            "wasm_http",
            "ab",
        );
        assert!(yaml.contains(
            r#"code: { remote: { http_uri: { uri: "http://127.0.0.1:2/kfauth.wasm", cluster: "wasm_http", timeout: 10s }, sha256: "ab" } }"#
        ));
        assert!(!yaml.contains("local: {"));
        assert!(yaml.contains(r#"  - name: "wasm_http""#));
    }
}
