//! `make bench`: the same Envoy binary in several configurations, driven by the
//! same `wrk` load, reporting requests/s, latency and the ratios between them.
//!
//! Configurations: no auth filter; Envoy's native `jwt_authn` as Istio configures
//! it (inline JWKS, claim_to_headers, no JWT cache); kfauth with an equivalent
//! config; on request, kfauth with every path skipped (kfauth's floor), kfauth
//! changing no header, a Wasm filter that does nothing (Envoy's own cost of any
//! Wasm filter), the least filter (`bench/least-filter`: native's job in Wasm
//! and nothing else), and probes: that empty filter making one kind of host call eight
//! times per request (the cost of one call, by difference). Workloads: (a)
//! one RS256 token reused; (b) 1,000 tokens, Zipf-distributed; (c) every request a
//! token no cache holds. The upstream is a
//! direct response, so the filter is what is measured. Runs are interleaved and repeated; the
//! median of each is reported. Results drift with the machine's load: read the
//! ratios, not the absolute figures.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kfauth_bench::empty_filter::{empty_filter_path, Probe, Replay};
use kfauth_bench::verify_probe::VerifyCall;
use kfauth_testkit::bootstrap::{repo_root, wasm_path};
use kfauth_testkit::envoy::envoy_bin;
use kfauth_testkit::idp::{standard_claims, Alg, Idp};
use kfauth_testkit::listener::free_port;
use serde_json::{json, Value};

const ISSUER: &str = "https://bench.kfauth.local";
const AUDIENCE: &str = "kubeflow";
/// wrk threads (workload (c) splits its tokens between them).
const WRK_THREADS: usize = 2;
/// Tokens for workload (c): more than any cache holds (kfauth's default is
/// 10,000 per worker, native's 1,000), so each request is verified anew.
const FRESH_TOKENS: usize = 40_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    NoAuth,
    NativeJwtAuthn,
    NativeJwtAuthnCached,
    Kfauth,
    /// kfauth with `skipPaths: ["^/"]`: only the identity-header strip runs.
    KfauthFloor,
    /// kfauth verifying the token but changing no header (the token forwarded,
    /// no claim mapped): what its header edits cost, by difference.
    KfauthNoEdits,
    /// kfauth with `signatureVerification: wasm`: every signature checked by
    /// kfauth's own code instead of Envoy's `verify_signature`.
    KfauthWasmSignatures,
    /// kfauth and its floor again, from the module at `BENCH_CANDIDATE_WASM`:
    /// a change timed against the built module in the same interleaved rounds.
    KfauthCandidate,
    KfauthFloorCandidate,
    /// A Wasm filter that does nothing (`empty_filter_wat`): what Envoy itself
    /// charges for any Wasm HTTP filter.
    WasmEmpty,
    /// `bench/least-filter`: native's job done in Wasm with the design's
    /// crates and nothing else (a bound on any Wasm filter doing it).
    LeastFilter,
    /// The empty filter plus one kind of host call made `Probe::calls` times per
    /// request: what that call costs (compare with `WasmEmpty`).
    Probe(Probe),
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::NoAuth => "no auth filter",
            Variant::NativeJwtAuthn => "native jwt_authn (Istio-style, no cache)",
            Variant::NativeJwtAuthnCached => "native jwt_authn + jwt_cache_config (1000)",
            Variant::Kfauth => "kfauth",
            Variant::KfauthFloor => "kfauth, every path skipped (Wasm floor)",
            Variant::KfauthNoEdits => {
                "kfauth, no header changed (token forwarded, no claim mapped)"
            }
            Variant::KfauthWasmSignatures => "kfauth, signatures checked in Wasm",
            Variant::KfauthCandidate => "kfauth, BENCH_CANDIDATE_WASM",
            Variant::KfauthFloorCandidate => "kfauth floor, BENCH_CANDIDATE_WASM",
            Variant::WasmEmpty => "a Wasm filter that does nothing",
            Variant::LeastFilter => "the least filter: native's job in Wasm, nothing else",
            Variant::Probe(Probe::Clock) => "empty filter + 8 clock reads",
            Variant::Probe(Probe::HeaderPairs) => "empty filter + 8 header-map reads",
            Variant::Probe(Probe::HeaderValue) => "empty filter + 8 one-header reads",
            Variant::Probe(Probe::ReplaceHeader) => "empty filter + 8 header replaces",
            Variant::Probe(Probe::AddHeader) => "empty filter + 8 header adds",
            Variant::Probe(Probe::RemoveAbsentHeader) => {
                "empty filter + 8 removes of an absent header"
            }
            Variant::Probe(Probe::IncrementMetric) => "empty filter + 8 counter increments",
            Variant::Probe(Probe::TwoMoreEntries) => "empty filter + on_done and on_log exported",
            Variant::Probe(Probe::DeadCode) => "empty filter + 1 MB of code never called",
            Variant::Probe(Probe::Verify(VerifyCall::NoKey)) => {
                "empty filter + 8 verify_signature calls without a key"
            }
            Variant::Probe(Probe::Verify(VerifyCall::ShortSignature)) => {
                "empty filter + 8 verify_signature calls, signature one byte short"
            }
            Variant::Probe(Probe::Verify(VerifyCall::Good)) => {
                "empty filter + 8 verify_signature calls, good RS256-2048"
            }
            Variant::Probe(Probe::Verify(VerifyCall::GoodOnce)) => {
                "empty filter + 1 verify_signature call, good RS256-2048"
            }
            Variant::Probe(Probe::SetProperty) => "empty filter + 8 access-log properties set",
            Variant::Probe(Probe::Replay(Replay::Floor)) => {
                "empty filter + kfauth-floor's host calls, once each"
            }
            Variant::Probe(Probe::Replay(Replay::Cached)) => {
                "empty filter + kfauth's host calls for a cached token, once each"
            }
            Variant::Probe(Probe::Replay(Replay::Fresh)) => {
                "empty filter + kfauth's host calls for a new token, once each"
            }
            Variant::Probe(Probe::Replay(Replay::Minimal)) => {
                "empty filter + native's job as host calls (read, remove, set 2)"
            }
            Variant::Probe(Probe::Compute) => "empty filter + 4,096 hash steps in Wasm",
            Variant::Probe(Probe::WideCode) => {
                "empty filter + 256 functions of 16 additions (64 KiB of code)"
            }
            Variant::Probe(Probe::WideData) => "empty filter + 1,024 loads over 1 MiB",
        }
    }

    /// The name `BENCH_VARIANTS` selects it by.
    fn key(self) -> &'static str {
        match self {
            Variant::NoAuth => "none",
            Variant::NativeJwtAuthn => "native",
            Variant::NativeJwtAuthnCached => "native-cached",
            Variant::Kfauth => "kfauth",
            Variant::KfauthFloor => "kfauth-floor",
            Variant::KfauthCandidate => "kfauth-candidate",
            Variant::KfauthFloorCandidate => "kfauth-floor-candidate",
            Variant::KfauthNoEdits => "kfauth-no-edits",
            Variant::KfauthWasmSignatures => "kfauth-wasm-signatures",
            Variant::WasmEmpty => "wasm-empty",
            Variant::LeastFilter => "least-filter",
            Variant::Probe(probe) => probe.key(),
        }
    }
}

struct Measure {
    requests_per_second: f64,
    /// Envoy's CPU time (all threads) per request: steadier than requests/s on
    /// a shared machine, since wrk and other work do not inflate it as much.
    cpu_us_per_request: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

/// The provider's keys as each filter is given them.
struct Keys {
    jwks: String,
    /// The least filter's configuration: its algorithm and key.
    least: Value,
}

fn filter_yaml(variant: Variant, keys: &Keys) -> String {
    let jwks = keys.jwks.as_str();
    let claim_headers = [("kubeflow-userid", "email"), ("kubeflow-groups", "groups")];
    match variant {
        Variant::NoAuth => String::new(),
        Variant::NativeJwtAuthn | Variant::NativeJwtAuthnCached => {
            let claims: Vec<Value> = claim_headers
                .iter()
                .map(|(header, claim)| json!({"header_name": header, "claim_name": claim}))
                .collect();
            let mut provider = json!({
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "local_jwks": {"inline_string": jwks},
                "forward": false,
                "claim_to_headers": claims,
            });
            if variant == Variant::NativeJwtAuthnCached {
                provider["jwt_cache_config"] = json!({"jwt_cache_size": 1000});
            }
            let config = json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"bench": provider},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
            });
            format!(
                "          - name: envoy.filters.http.jwt_authn\n            typed_config: {config}\n"
            )
        }
        Variant::Kfauth
        | Variant::KfauthFloor
        | Variant::KfauthNoEdits
        | Variant::KfauthWasmSignatures
        | Variant::KfauthCandidate
        | Variant::KfauthFloorCandidate => {
            let mut plugin = json!({
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
            if matches!(
                variant,
                Variant::KfauthFloor | Variant::KfauthFloorCandidate
            ) {
                plugin["skipPaths"] = json!(["^/"]);
            }
            if variant == Variant::KfauthWasmSignatures {
                plugin["signatureVerification"] = json!("wasm");
            }
            if variant == Variant::KfauthNoEdits {
                let rule = &mut plugin["jwtRules"][0];
                rule["forwardOriginalToken"] = json!(true);
                rule["outputClaimToHeaders"] = json!([]);
            }
            let module = match variant {
                Variant::KfauthCandidate | Variant::KfauthFloorCandidate => candidate_path(),
                _ => wasm_path(),
            };
            wasm_filter_yaml(&module, &plugin.to_string())
        }
        Variant::WasmEmpty => wasm_filter_yaml(&empty_filter_path(None), ""),
        Variant::LeastFilter => wasm_filter_yaml(&least_filter_path(), &keys.least.to_string()),
        Variant::Probe(probe) => wasm_filter_yaml(&empty_filter_path(Some(probe)), ""),
    }
}

/// `bench/least-filter`, built for Envoy.
fn least_filter_path() -> PathBuf {
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip1"])
        .args(["-p", "kfauth-least-filter"])
        .current_dir(repo_root())
        .status()
        .expect("run cargo");
    assert!(built.success(), "building bench/least-filter failed");
    repo_root().join("target/wasm32-wasip1/release/kfauth_least_filter.wasm")
}

/// The module `BENCH_CANDIDATE_WASM` names, for the candidate variants.
fn candidate_path() -> PathBuf {
    let Some(path) = std::env::var_os("BENCH_CANDIDATE_WASM") else {
        panic!("the kfauth-candidate variants need BENCH_CANDIDATE_WASM=path/to/kfauth.wasm");
    };
    PathBuf::from(path)
}

/// Envoy's Wasm HTTP filter running `module` with `configuration`.
fn wasm_filter_yaml(module: &Path, configuration: &str) -> String {
    let config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "kfauth",
            "root_id": "kfauth",
            "fail_open": false,
            "vm_config": {
                "vm_id": "kfauth",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": module.display().to_string()}},
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": configuration,
            },
        },
    });
    format!("          - name: envoy.filters.http.wasm\n            typed_config: {config}\n")
}

fn envoy_yaml(variant: Variant, keys: &Keys, port: u16, admin_port: u16) -> String {
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
        filters = filter_yaml(variant, keys)
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

fn start_envoy(variant: Variant, keys: &Keys, workdir: &Path) -> RunningEnvoy {
    let port = free_port();
    let admin_port = free_port();
    let config = workdir.join(format!("{variant:?}.yaml"));
    fs::write(&config, envoy_yaml(variant, keys, port, admin_port)).unwrap();
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

/// What each request carries.
enum Workload {
    /// (a) one token, reused.
    OneToken(String),
    /// (b) tokens drawn from a wrk Lua script (a Zipf sequence over a set).
    Script(PathBuf),
    /// (d) one token on a browser's request to the Pipelines API.
    Browser(String),
}

/// The request a browser sends the Pipelines UI's API through the gateway,
/// as `tools/floor/fixtures.mjs`'s `kubeflowRequest` has it (the floor
/// harness's Kubeflow request): the browser's headers and oauth2-proxy's
/// session cookie (about 4 KiB, one part) beside the ID token it injected.
const BROWSER_PATH: &str =
    "/pipeline/apis/v2beta1/runs?page_size=10&sort_by=created_at%20desc&namespace=kubeflow-user-example-com";

fn browser_headers(token: &str) -> Vec<String> {
    // 2,990 bytes of 7 in base64url: 3,987 characters, as the harness's.
    let session = "BwcH".repeat(996) + "Bwc";
    [
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".to_string(),
        "Accept: application/json, text/plain, */*".into(),
        "Accept-Language: en-US,en;q=0.9".into(),
        "Accept-Encoding: gzip, deflate, br, zstd".into(),
        "Referer: https://kubeflow.example.com/pipeline/".into(),
        r#"Sec-Ch-Ua: "Chromium";v="131", "Not_A Brand";v="24""#.into(),
        "Sec-Ch-Ua-Mobile: ?0".into(),
        r#"Sec-Ch-Ua-Platform: "Linux""#.into(),
        "Sec-Fetch-Site: same-origin".into(),
        "Sec-Fetch-Mode: cors".into(),
        "Sec-Fetch-Dest: empty".into(),
        format!("Cookie: oauth2_proxy_kubeflow={session}; _xsrf=2|a1b2c3d4|0123456789abcdef0123456789abcdef|1733400000"),
        "X-Forwarded-For: 10.244.0.1".into(),
        format!("Authorization: Bearer {token}"),
    ]
    .into()
}

/// A Zipf(s) sequence of `draws` indices into `n` ranks, from a fixed seed, so
/// every run and every configuration sees the same requests.
fn zipf_sequence(n: usize, s: f64, draws: usize) -> Vec<usize> {
    let weights: Vec<f64> = (1..=n).map(|rank| 1.0 / (rank as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(n);
    let mut running = 0.0;
    for weight in &weights {
        running += weight / total;
        cdf.push(running);
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..draws)
        .map(|_| {
            // xorshift64*: reproducible, no dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let unit =
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|edge| *edge < unit).min(n - 1)
        })
        .collect()
}

/// A wrk script sending `Authorization: Bearer` with the tokens in `sequence` order.
fn write_token_script(path: &Path, tokens: &[String], sequence: &[usize]) {
    let mut script = String::from("local tokens = {\n");
    for token in tokens {
        script.push_str(&format!("  \"{token}\",\n"));
    }
    script.push_str("}\nlocal seq = {");
    for (index, rank) in sequence.iter().enumerate() {
        if index % 32 == 0 {
            script.push('\n');
        }
        script.push_str(&format!("{},", rank + 1));
    }
    script.push_str(
        "\n}\nlocal i = 0\nsetup = function(thread) end\ninit = function(args) i = math.random(#seq) end\nrequest = function()\n  i = i + 1\n  if i > #seq then i = 1 end\n  return wrk.format(nil, nil, { [\"Authorization\"] = \"Bearer \" .. tokens[seq[i]] })\nend\n",
    );
    fs::write(path, script).unwrap();
}

/// A wrk script for workload (c): each wrk thread walks its own share of
/// `tokens` (thread k takes k, k+T, k+2T, ...), so no two requests of a run
/// carry the same token until the list wraps; the list is longer than every
/// cache, so even then no cache holds the token.
fn write_fresh_token_script(path: &Path, tokens: &[String], threads: usize) {
    let mut script = String::from("local tokens = {\n");
    for token in tokens {
        script.push_str(&format!("  \"{token}\",\n"));
    }
    script.push_str(&format!(
        "}}\nlocal threads = {threads}\nlocal next_id = 0\nlocal i = 0\n\
setup = function(thread) thread:set(\"id\", next_id); next_id = next_id + 1 end\n\
init = function(args) i = 0 end\n\
request = function()\n  local index = (i * threads + (id or 0)) % #tokens + 1\n  i = i + 1\n\
  return wrk.format(nil, nil, {{ [\"Authorization\"] = \"Bearer \" .. tokens[index] }})\nend\n"
    ));
    fs::write(path, script).unwrap();
}

/// Mints `count` distinct RS256 tokens (a `jti` each) on every core.
fn mint_fresh_tokens(idp: &Idp, alg: Alg, count: usize) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = count.div_ceil(cores);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|core| {
                scope.spawn(move || {
                    (core * per_thread..((core + 1) * per_thread).min(count))
                        .map(|n| {
                            let mut claims = standard_claims(
                                ISSUER,
                                AUDIENCE,
                                &format!("fresh{}@example.com", n % 5000),
                                &["team-a", "team-b"],
                            );
                            claims["jti"] = json!(format!("fresh-{n}"));
                            idp.sign(alg, &claims)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    })
}

fn peak_rss_mib(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// User plus system CPU time of a process so far, in microseconds.
fn cpu_time_us(pid: u32) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) in `(...)`.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks_per_second * 1e6)
        })
        .unwrap_or(f64::NAN)
}

fn run_wrk(port: u16, pid: u32, workload: &Workload, seconds: u32, connections: u32) -> Measure {
    let cpu_before = cpu_time_us(pid);
    let mut command = Command::new("wrk");
    command.args([
        &format!("-t{WRK_THREADS}"),
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    match workload {
        Workload::OneToken(token) => {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        Workload::Script(path) => {
            command.args(["-s", &path.display().to_string()]);
        }
        Workload::Browser(token) => {
            for header in browser_headers(token) {
                command.args(["-H", &header]);
            }
        }
    }
    let path = match workload {
        Workload::Browser(_) => BROWSER_PATH,
        Workload::OneToken(_) | Workload::Script(_) => "/",
    };
    let output = command
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let cpu_used = cpu_time_us(pid) - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    let requests: f64 = text
        .lines()
        .find(|line| line.contains(" requests in "))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(f64::NAN);
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
        cpu_us_per_request: cpu_used / requests,
        p50_ms: parse_latency_ms(&field("50%")),
        p99_ms: parse_latency_ms(&field("99%")),
        non_2xx,
    }
}

/// What one host call (or VM entry) costs, from the probes' Envoy CPU per
/// request less the empty filter's, when both were measured.
fn print_probe_costs(variants: &[Variant], cpu_medians: &[f64]) {
    let Some(empty) = variants
        .iter()
        .position(|variant| *variant == Variant::WasmEmpty)
        .and_then(|v| cpu_medians.get(v))
    else {
        return;
    };
    let probes: Vec<(Probe, f64)> = variants
        .iter()
        .zip(cpu_medians)
        .filter_map(|(variant, cpu)| match variant {
            Variant::Probe(probe) => Some((*probe, *cpu)),
            _ => None,
        })
        .collect();
    if probes.is_empty() {
        return;
    }
    println!("| host call (a replay: all its calls) | Envoy CPU µs per call (probe − empty filter) / calls |");
    println!("| --- | ---: |");
    for (probe, cpu) in probes {
        if probe == Probe::DeadCode {
            continue;
        }
        let calls = probe.calls();
        println!("| {} | {:.2} |", probe.key(), (cpu - empty) / calls as f64);
    }
    println!();
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
    // BENCH_ALG=ES256: every workload's tokens signed with the P-256 key.
    let alg = match std::env::var("BENCH_ALG").as_deref() {
        Ok("ES256") => Alg::ES256,
        _ => Alg::RS256,
    };
    let mint = |user: usize| {
        idp.sign(
            alg,
            &standard_claims(
                ISSUER,
                AUDIENCE,
                &format!("user{user}@example.com"),
                &["team-a", "team-b"],
            ),
        )
    };
    let keys = Keys {
        jwks: idp.jwks_json(),
        least: json!({
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "alg": if alg == Alg::ES256 { "ES256" } else { "RS256" },
            "key": idp.public_der_base64(alg),
        }),
    };
    let token = mint(0);
    eprintln!("minting 1000 tokens for the Zipf workload");
    let tokens: Vec<String> = (0..1000).map(mint).collect();
    let script = workdir.join("zipf-1000.lua");
    write_token_script(&script, &tokens, &zipf_sequence(tokens.len(), 1.1, 200_000));
    let wanted_workloads = std::env::var("BENCH_WORKLOADS").unwrap_or_else(|_| "a,b,c".into());
    let wanted_workloads: Vec<&str> = wanted_workloads.split(',').map(str::trim).collect();
    let mut workloads = Vec::new();
    if wanted_workloads.contains(&"a") {
        workloads.push(("(a) one token", Workload::OneToken(token.clone())));
    }
    if wanted_workloads.contains(&"d") {
        workloads.push((
            "(d) one token, a browser's request (4 KiB session cookie)",
            Workload::Browser(token.clone()),
        ));
    }
    if wanted_workloads.contains(&"b") {
        workloads.push(("(b) 1,000 tokens, Zipf s=1.1", Workload::Script(script)));
    }
    if wanted_workloads.contains(&"c") {
        eprintln!("minting {FRESH_TOKENS} tokens for the fresh-token workload");
        let fresh = mint_fresh_tokens(&idp, alg, FRESH_TOKENS);
        let fresh_script = workdir.join("fresh.lua");
        write_fresh_token_script(&fresh_script, &fresh, WRK_THREADS);
        workloads.push((
            "(c) every request a new token",
            Workload::Script(fresh_script),
        ));
    }

    let wanted_variants = std::env::var("BENCH_VARIANTS")
        .unwrap_or_else(|_| "none,native,native-cached,kfauth".into());
    let variants: Vec<Variant> = [
        Variant::NoAuth,
        Variant::NativeJwtAuthn,
        Variant::NativeJwtAuthnCached,
        Variant::Kfauth,
        Variant::KfauthFloor,
        Variant::KfauthNoEdits,
        Variant::KfauthWasmSignatures,
        Variant::KfauthCandidate,
        Variant::KfauthFloorCandidate,
        Variant::WasmEmpty,
        Variant::LeastFilter,
    ]
    .into_iter()
    .chain(Probe::ALL.map(Variant::Probe))
    .filter(|variant| {
        wanted_variants.split(',').map(str::trim).any(|key| {
            key == variant.key() || (key == "probes" && matches!(variant, Variant::Probe(_)))
        })
    })
    .collect();
    let position = |wanted: Variant| variants.iter().position(|variant| *variant == wanted);
    let envoys: Vec<RunningEnvoy> = variants
        .iter()
        .map(|variant| start_envoy(*variant, &keys, &workdir))
        .collect();
    // Every variant must accept the token before it is measured.
    for (variant, envoy) in variants.iter().zip(&envoys) {
        let check = run_wrk(
            envoy.port,
            envoy.child.id(),
            &Workload::OneToken(token.clone()),
            1,
            2,
        );
        assert!(
            check.non_2xx == 0 && check.requests_per_second > 0.0,
            "{variant:?} refuses the benchmark token"
        );
    }

    // results[workload][variant] = measures over rounds
    let mut results: Vec<Vec<Vec<Measure>>> = workloads
        .iter()
        .map(|_| variants.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=rounds {
        for (w, (label, workload)) in workloads.iter().enumerate() {
            // Every other round runs the variants in reverse: a variant's
            // place in a round moved its figure by as much as a change being
            // measured, and this gives each the same mean place every two rounds.
            for v in round_order(envoys.len(), round) {
                let Some(envoy) = envoys.get(v) else {
                    continue;
                };
                eprintln!("round {round}/{rounds}: {label}: {}", variants[v].label());
                let measure = run_wrk(envoy.port, envoy.child.id(), workload, seconds, connections);
                if measure.non_2xx > 0 {
                    eprintln!("  warning: {} non-2xx answers", measure.non_2xx);
                }
                results[w][v].push(measure);
            }
        }
    }
    let rss: Vec<f64> = envoys
        .iter()
        .map(|envoy| peak_rss_mib(envoy.child.id()))
        .collect();
    drop(envoys);

    println!(
        "\nwrk -t{WRK_THREADS} -c{connections} -d{seconds}s per run; Envoy --concurrency 2, direct-response upstream; median of {rounds} interleaved rounds, every other one in reverse order\n"
    );
    let mut ratio_lines = Vec::new();
    for (w, (label, _)) in workloads.iter().enumerate() {
        println!("{label}\n");
        println!("| configuration | requests/s | p50 ms | p99 ms | Envoy CPU µs/request |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        let mut medians = Vec::new();
        let mut cpu_medians = Vec::new();
        for (v, variant) in variants.iter().enumerate() {
            let measures = &results[w][v];
            let rps = median(measures.iter().map(|m| m.requests_per_second).collect());
            let p50 = median(measures.iter().map(|m| m.p50_ms).collect());
            let p99 = median(measures.iter().map(|m| m.p99_ms).collect());
            let cpu = median(measures.iter().map(|m| m.cpu_us_per_request).collect());
            println!(
                "| {} | {rps:.0} | {p50:.2} | {p99:.2} | {cpu:.1} |",
                variant.label()
            );
            medians.push(rps);
            cpu_medians.push(cpu);
        }
        println!();
        print_probe_costs(&variants, &cpu_medians);
        print_candidate_differences(&variants, &results[w]);
        let Some(kfauth) = position(Variant::Kfauth).and_then(|v| medians.get(v)) else {
            continue;
        };
        for (other, name) in [
            (Variant::NativeJwtAuthn, "native_jwt_authn"),
            (Variant::NativeJwtAuthnCached, "native_jwt_authn_cached"),
            (Variant::NoAuth, "no_auth"),
        ] {
            if let Some(rps) = position(other).and_then(|v| medians.get(v)) {
                ratio_lines.push(format!("ratio kfauth/{name} {label}: {:.2}", kfauth / rps));
            }
        }
    }
    println!("| configuration | Envoy peak RSS MiB |");
    println!("| --- | ---: |");
    for (variant, rss) in variants.iter().zip(&rss) {
        println!("| {} | {rss:.0} |", variant.label());
    }
    println!();
    for line in ratio_lines {
        println!("{line}");
    }
}

/// The order of the variants in `round` (from 1): as listed in odd rounds,
/// reversed in even ones.
fn round_order(variants: usize, round: usize) -> Vec<usize> {
    let order = 0..variants;
    if round.is_multiple_of(2) {
        order.rev().collect()
    } else {
        order.collect()
    }
}

/// For each candidate variant beside its base (`kfauth` and its floor), the
/// candidate's Envoy CPU less the base's in each round, paired: the two ran
/// back to back, so drifts of the machine's speed between rounds cancel.
fn print_candidate_differences(variants: &[Variant], measures: &[Vec<Measure>]) {
    let position = |wanted: Variant| variants.iter().position(|v| *v == wanted);
    for (base, candidate, name) in [
        (Variant::Kfauth, Variant::KfauthCandidate, "kfauth"),
        (
            Variant::KfauthFloor,
            Variant::KfauthFloorCandidate,
            "kfauth floor",
        ),
    ] {
        let (Some(base), Some(candidate)) = (position(base), position(candidate)) else {
            continue;
        };
        let differences: Vec<f64> = measures[candidate]
            .iter()
            .zip(&measures[base])
            .map(|(c, b)| c.cpu_us_per_request - b.cpu_us_per_request)
            .collect();
        let shown: Vec<String> = differences.iter().map(|d| format!("{d:+.1}")).collect();
        println!(
            "{name}: BENCH_CANDIDATE_WASM less the built module, Envoy CPU µs per request, paired by round: median {:+.1} ({})",
            median(differences),
            shown.join(", ")
        );
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::round_order;

    #[test]
    fn over_two_rounds_every_variant_has_the_same_mean_place() {
        assert_eq!(round_order(4, 1), [0, 1, 2, 3]);
        assert_eq!(round_order(4, 2), [3, 2, 1, 0]);
        for variants in 1..6 {
            let mut place_sums = vec![0; variants];
            for round in 1..=2 {
                for (place, variant) in round_order(variants, round).into_iter().enumerate() {
                    place_sums[variant] += place;
                }
            }
            assert!(
                place_sums.iter().all(|sum| *sum == variants - 1),
                "{place_sums:?}"
            );
        }
    }
}
