//! `make run`: a local Envoy with kfauth, a demo identity provider and an
//! echo upstream, all on 127.0.0.1. Prints a ready `curl`, then stays in the
//! foreground until Ctrl-C.
//!
//! Options:
//!   --no-envoy          only the identity provider (:9000) and the echo
//!                       upstream (:9001), for envoy/docker-compose.yaml
//!   --print-envoy-yaml  print the rendering of envoy/envoy.yaml and exit

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kfauth_testkit::bootstrap::{render_envoy_yaml, repo_root, wasm_path};
use kfauth_testkit::client;
use kfauth_testkit::demo;
use kfauth_testkit::echo::EchoServer;
use kfauth_testkit::envoy::{envoy_args, envoy_bin};
use kfauth_testkit::idp::Idp;

const USAGE: &str = "usage: kfauth-demo [--no-envoy | --print-envoy-yaml]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut with_envoy = true;
    for arg in &args {
        match arg.as_str() {
            "--no-envoy" => with_envoy = false,
            "--print-envoy-yaml" => {
                print!("{}", render_envoy_yaml(&demo::envoy_settings()));
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    match run(with_envoy) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kfauth-demo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(with_envoy: bool) -> Result<(), String> {
    eprintln!("generating demo signing keys...");
    let idp = Idp::shared();
    let idp_addr = format!("127.0.0.1:{}", demo::IDP_PORT);
    let _idp_server = demo::start_idp_server(&idp_addr, idp)
        .map_err(|e| format!("cannot serve the identity provider on {idp_addr}: {e}"))?;
    let echo_addr = format!("127.0.0.1:{}", demo::UPSTREAM_PORT);
    let _echo = EchoServer::try_start_on(&echo_addr)
        .map_err(|e| format!("cannot serve the echo upstream on {echo_addr}: {e}"))?;
    eprintln!(
        "identity provider: {} (JWKS {}), echo upstream: http://{echo_addr}",
        demo::ISSUER,
        demo::JWKS_URI
    );

    let mut envoy = if with_envoy {
        Some(start_envoy()?)
    } else {
        eprintln!(
            "--no-envoy: start Envoy yourself, e.g. docker compose -f envoy/docker-compose.yaml up"
        );
        None
    };

    let token = demo::mint(idp, "user@example.com", &["kubeflow-users", "ml-team"]);
    println!();
    println!("# a request with a fresh token (user@example.com, groups kubeflow-users,ml-team):");
    println!(
        "curl -s -H \"Authorization: Bearer {token}\" http://127.0.0.1:{}/echo",
        demo::LISTENER_PORT
    );
    println!("# other tokens:");
    println!(
        "TOKEN=$(curl -s 'http://127.0.0.1:{}/token?email=alice@example.com&groups=admins,users')",
        demo::IDP_PORT
    );
    println!(
        "curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{}/echo",
        demo::LISTENER_PORT
    );
    println!("# without a token (401), and a skipped path (no token needed):");
    println!("curl -si http://127.0.0.1:{}/echo", demo::LISTENER_PORT);
    println!(
        "curl -s http://127.0.0.1:{}/dex/anything",
        demo::LISTENER_PORT
    );
    println!();
    eprintln!("running; Ctrl-C stops everything");

    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(child) = envoy.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "Envoy exited ({status}); see {}",
                    log_path().display()
                ));
            }
        }
    }
}

fn log_path() -> std::path::PathBuf {
    repo_root().join("target/kfauth-demo/envoy.log")
}

/// Runs Envoy on `envoy/envoy.yaml` from the repository root (the module path
/// in it is relative) and waits until the listener serves.
fn start_envoy() -> Result<Child, String> {
    let root = repo_root();
    let config = Path::new("envoy/envoy.yaml");
    if !wasm_path().is_file() {
        return Err(format!(
            "{} is missing: run `make build` first",
            wasm_path().display()
        ));
    }
    match std::fs::read_to_string(root.join(config)) {
        Ok(text) if text == render_envoy_yaml(&demo::envoy_settings()) => {}
        Ok(_) => eprintln!(
            "warning: envoy/envoy.yaml differs from the demo rendering (kfauth-demo --print-envoy-yaml)"
        ),
        Err(e) => return Err(format!("cannot read envoy/envoy.yaml: {e}")),
    }
    let log = log_path();
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut command = Command::new(envoy_bin());
    command
        .args(envoy_args(config, &log, demo::envoy_settings().concurrency))
        .current_dir(&root)
        .stdin(Stdio::null());
    die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| {
        format!(
            "cannot run Envoy at {} ({e}); `make build` installs it, or set ENVOY_BIN",
            envoy_bin().display()
        )
    })?;
    eprintln!("Envoy starting, log: {}", log.display());
    let probe = format!("http://127.0.0.1:{}/dex/ready-probe", demo::LISTENER_PORT);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("Envoy exited ({status}); see {}", log.display()));
        }
        if matches!(client::send("GET", &probe, &[], None), Ok(r) if r.status == 200) {
            eprintln!(
                "Envoy serves on http://127.0.0.1:{} (admin http://127.0.0.1:{})",
                demo::LISTENER_PORT,
                demo::ADMIN_PORT
            );
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(format!(
                "Envoy did not serve within 60s; see {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Envoy gets SIGTERM when the demo goes away, however it goes (Ctrl-C
/// already reaches the whole process group; `kill` of the demo alone would
/// otherwise leave Envoy running).
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent;
    // the demo spawns Envoy from its main thread, which lives as long as the
    // process, so the death signal fires exactly when the demo exits.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
