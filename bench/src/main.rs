//! `make bench`: the same Envoy binary in several configurations, driven by the
//! same `wrk` load, reporting requests/s, latency and the ratios between them.
//!
//! Configurations: no auth filter; Envoy's native `jwt_authn` as Istio configures
//! it (inline JWKS, claim_to_headers, no JWT cache); kfauth with an equivalent
//! config. Workload: one RS256 token reused. The upstream is a direct response,
//! so the filter is what is measured. Runs are interleaved and repeated; the
//! median of each is reported. Results drift with the machine's load: read the
//! ratios, not the absolute figures.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kfauth_testkit::bootstrap::{repo_root, wasm_path};
use kfauth_testkit::envoy::envoy_bin;
use kfauth_testkit::idp::{standard_claims, Alg, Idp};
use serde_json::{json, Value};

const ISSUER: &str = "https://bench.kfauth.local";
const AUDIENCE: &str = "kubeflow";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    NoAuth,
    NativeJwtAuthn,
    Kfauth,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::NoAuth => "no auth filter",
            Variant::NativeJwtAuthn => "native jwt_authn (Istio-style, no cache)",
            Variant::Kfauth => "kfauth",
        }
    }
}

struct Measure {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or(18080)
}

fn filter_yaml(variant: Variant, jwks: &str) -> String {
    let claim_headers = [("kubeflow-userid", "email"), ("kubeflow-groups", "groups")];
    match variant {
        Variant::NoAuth => String::new(),
        Variant::NativeJwtAuthn => {
            let claims: Vec<Value> = claim_headers
                .iter()
                .map(|(header, claim)| json!({"header_name": header, "claim_name": claim}))
                .collect();
            let config = json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"bench": {
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "local_jwks": {"inline_string": jwks},
                    "forward": false,
                    "claim_to_headers": claims,
                }},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
            });
            format!(
                "          - name: envoy.filters.http.jwt_authn\n            typed_config: {config}\n"
            )
        }
        Variant::Kfauth => {
            let plugin = json!({
                "jwtRules": [{
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "jwks": jwks,
                    "outputClaimToHeaders": claim_headers
                        .iter()
                        .map(|(header, claim)| json!({"header": header, "claim": claim}))
                        .collect::<Vec<_>>(),
                }],
                "requireJwt": true,
            });
            let config = json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "kfauth",
                    "root_id": "kfauth",
                    "fail_open": false,
                    "vm_config": {
                        "vm_id": "kfauth",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm_path().display().to_string()}},
                    },
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": plugin.to_string(),
                    },
                },
            });
            format!(
                "          - name: envoy.filters.http.wasm\n            typed_config: {config}\n"
            )
        }
    }
}

fn envoy_yaml(variant: Variant, jwks: &str, port: u16, admin_port: u16) -> String {
    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok"}}}}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#,
        filters = filter_yaml(variant, jwks)
    )
}

struct RunningEnvoy {
    child: Child,
    port: u16,
    admin_port: u16,
}

impl Drop for RunningEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_envoy(variant: Variant, jwks: &str, workdir: &Path) -> RunningEnvoy {
    let port = free_port();
    let admin_port = free_port();
    let config = workdir.join(format!("{variant:?}.yaml"));
    fs::write(&config, envoy_yaml(variant, jwks, port, admin_port)).unwrap();
    let log = fs::File::create(workdir.join(format!("{variant:?}.log"))).unwrap();
    let child = Command::new(envoy_bin())
        .args(["-c", &config.display().to_string()])
        .args([
            "--concurrency",
            "2",
            "--disable-hot-restart",
            "-l",
            "warning",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start envoy (run `make tools`)");
    let envoy = RunningEnvoy {
        child,
        port,
        admin_port,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{}/ready", envoy.admin_port))
            .output()
            .map(|out| out.stdout == b"200")
            .unwrap_or(false);
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{variant:?}: Envoy did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    envoy
}

fn parse_latency_ms(text: &str) -> f64 {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|index| text.split_at(index))
        .unwrap_or((text, "ms"));
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "s" => value * 1000.0,
        _ => value,
    }
}

fn run_wrk(port: u16, token: &str, seconds: u32, connections: u32) -> Measure {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.split_whitespace().nth(1))
            .unwrap_or("nan")
            .to_string()
    };
    let non_2xx = text
        .lines()
        .find(|line| line.contains("Non-2xx or 3xx responses"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    Measure {
        requests_per_second: field("Requests/sec:").parse().unwrap_or(f64::NAN),
        p50_ms: parse_latency_ms(&field("50%")),
        p99_ms: parse_latency_ms(&field("99%")),
        non_2xx,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let connections = 16;
    let workdir: PathBuf = repo_root().join("target/bench");
    fs::create_dir_all(&workdir).unwrap();

    let idp = Idp::generate("bench-rsa", "bench-ec");
    let jwks = idp.jwks_json();
    let token = idp.sign(
        Alg::RS256,
        &standard_claims(ISSUER, AUDIENCE, "alice@example.com", &["team-a", "team-b"]),
    );
    let variants = [Variant::NoAuth, Variant::NativeJwtAuthn, Variant::Kfauth];
    let envoys: Vec<RunningEnvoy> = variants
        .iter()
        .map(|variant| start_envoy(*variant, &jwks, &workdir))
        .collect();
    // Every variant must accept the token before it is measured.
    for (variant, envoy) in variants.iter().zip(&envoys) {
        let check = run_wrk(envoy.port, &token, 1, 2);
        assert!(
            check.non_2xx == 0 && check.requests_per_second > 0.0,
            "{variant:?} refuses the benchmark token"
        );
    }

    let mut results: Vec<Vec<Measure>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (index, envoy) in envoys.iter().enumerate() {
            eprintln!("round {round}/{rounds}: {}", variants[index].label());
            results[index].push(run_wrk(envoy.port, &token, seconds, connections));
        }
    }
    drop(envoys);

    println!(
        "\nworkload: one RS256 token reused; wrk -t2 -c{connections} -d{seconds}s; Envoy --concurrency 2; median of {rounds} interleaved rounds\n"
    );
    println!("| configuration | requests/s | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: |");
    let mut medians = Vec::new();
    for (variant, measures) in variants.iter().zip(&results) {
        let rps = median(measures.iter().map(|m| m.requests_per_second).collect());
        let p50 = median(measures.iter().map(|m| m.p50_ms).collect());
        let p99 = median(measures.iter().map(|m| m.p99_ms).collect());
        println!("| {} | {rps:.0} | {p50:.2} | {p99:.2} |", variant.label());
        medians.push(rps);
    }
    let ratio = |a: usize, b: usize| medians[a] / medians[b];
    println!();
    println!("ratio native_jwt_authn/no_auth: {:.2}", ratio(1, 0));
    println!("ratio kfauth/no_auth: {:.2}", ratio(2, 0));
    println!(
        "ratio kfauth/native_jwt_authn (one token): {:.2}",
        ratio(2, 1)
    );
}
