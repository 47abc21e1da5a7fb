//! The gRPC cookie diet, end to end: a real gRPC C-core server (Python
//! `grpcio`, `tests/grpc/server.py`, default metadata limits like ml-metadata's)
//! behind Envoy over HTTP/2, called by a real gRPC C-core client
//! (`tests/grpc/client.py`). Plain HTTP on the same paths goes to the echo
//! upstream.
//!
//! Gateway *strip all* (`grpc: {cookiePaths: ["^/ml_metadata"]}`, `requireJwt`):
//! 1. the problem is real: outside `cookiePaths`, after a few small calls have
//!    warmed the upstream HTTP/2 connection, calls carrying a 16 KiB cookie fail
//!    with `RESOURCE_EXHAUSTED` from the server ("received metadata size exceeds
//!    hard limit (16938 vs. 16384); ...", older C-cores: "received initial
//!    metadata size exceeds limit"). The warm-up matters: the first call on a
//!    fresh upstream connection gets through even with 16 KiB of cookie
//!    (observed; C-core seems to apply its advertised limit only once its
//!    SETTINGS are acknowledged), the following ones fail;
//! 2. the same calls on `/ml_metadata.MetadataStoreService/GetArtifacts` all
//!    succeed, authenticated, and the server sees no cookie at all — also when
//!    the token itself came in a cookie (`fromCookies`: authentication first);
//! 5. plain HTTP (GET, POST) on the same path keeps its cookie, byte for byte;
//!    gRPC-Web (`application/grpc-web+proto`) is gRPC and loses it;
//! 6. a bad token is `UNAUTHENTICATED` / `token_malformed` and a missing one
//!    `UNAUTHENTICATED` / `token_missing`: statuses the client reads, not
//!    transport errors;
//! 7. `kfauth.grpc.cookie_stripped` counts exactly the diets applied.
//!
//! Gateway *named cookies over a threshold*
//! (`stripCookies: ["_oauth2_proxy"], maxCookieBytes: 4096`):
//! 3. a 16 KiB `_oauth2_proxy` cookie is removed while the small cookies
//!    around it reach the server byte for byte, in order, in one header;
//! 4. cookies under 4 KiB (an `_oauth2_proxy` one included) are left alone;
//! 7. the counter rose for 3 and not for 4.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use kfauth_testkit::bootstrap::repo_root;
use kfauth_testkit::plugin_config::{claims, inline_rule, with_rules, ISSUER};
use kfauth_testkit::{scenarios, Alg, Cluster, Gateway, Idp, Route};
use serde_json::{json, Value};

const ML_METADATA: &str = "/ml_metadata.MetadataStoreService/GetArtifacts";
const OUTSIDE: &str = "/other.Service/Echo";
const STRIPPED: &str = "kfauth.grpc.cookie_stripped";
/// The cookie kfauth reads a token from (`fromCookies`).
const TOKEN_COOKIE: &str = "authservice_session";
/// Calls per batch of big-cookie calls.
const CALLS: usize = 3;

/// The venv's Python, where `make tools` installs grpcio.
fn python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/grpc").join(name)
}

/// Panics with what to do when the venv has no grpcio.
fn check_grpcio() {
    let works = Command::new(python())
        .args(["-c", "import grpc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        works,
        "the gRPC test tools are missing ({} cannot `import grpc`): run `make tools`",
        python().display()
    );
}

/// `tests/grpc/server.py`, running until dropped (it also exits when its
/// stdin closes, so it cannot outlive the test process).
struct GrpcServer {
    child: Child,
    port: u16,
}

impl GrpcServer {
    fn start() -> GrpcServer {
        check_grpcio();
        let mut child = Command::new(python())
            .arg(script("server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run `make tools`", python().display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("server stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("tests/grpc/server.py did not print its port: {line:?}"));
        GrpcServer { child, port }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Envoy with kfauth: gRPC requests go over HTTP/2 to the gRPC server, plain
/// HTTP to the echo upstream.
struct Setup {
    // Field order matters: Envoy goes down before its upstreams.
    gateway: Gateway,
    _server: GrpcServer,
}

impl Setup {
    fn start(grpc: Value) -> Setup {
        let server = GrpcServer::start();
        let mut rule = inline_rule(ISSUER, Idp::shared());
        rule["fromHeaders"] = json!([{"name": "Authorization", "prefix": "Bearer "}]);
        rule["fromCookies"] = json!([TOKEN_COOKIE]);
        let config = with_rules(vec![rule], json!({"requireJwt": true, "grpc": grpc}));
        let port = server.port;
        let gateway = Gateway::start_with(config, |settings| {
            settings
                .with_cluster(Cluster::loopback("grpc", port).with_http2())
                .with_route(Route::grpc("/", "grpc"))
        });
        Setup {
            gateway,
            _server: server,
        }
    }

    /// Runs `tests/grpc/client.py` with call groups
    /// `[{"method", "metadata": [[k, v]], "count"}]` through Envoy; one result
    /// per call: `{"code", "details", "response", "group"}`.
    fn calls(&self, groups: Value) -> Vec<Value> {
        let mut child = Command::new(python())
            .arg(script("client.py"))
            .arg("--target")
            .arg(format!("127.0.0.1:{}", self.gateway.port()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run `make tools`", python().display()));
        child
            .stdin
            .take()
            .expect("client stdin")
            .write_all(groups.to_string().as_bytes())
            .expect("write the calls");
        let output = child.wait_with_output().expect("client runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "tests/grpc/client.py failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("client prints JSON lines"))
            .collect()
    }

    fn stripped(&self) -> u64 {
        self.gateway.stats().counter(STRIPPED)
    }
}

fn token() -> String {
    Idp::shared().sign(Alg::ES256, &claims("alice@example.com", &["team-a"]))
}

fn bearer() -> String {
    format!("Bearer {}", token())
}

/// An oauth2-proxy session cookie of `bytes` bytes (name and value).
fn oauth2_proxy(bytes: usize) -> String {
    let name = "_oauth2_proxy=";
    format!("{name}{}", "x".repeat(bytes - name.len()))
}

fn big_cookie() -> String {
    oauth2_proxy(16 * 1024)
}

fn group(method: &str, metadata: &[(&str, &str)], count: usize) -> Value {
    let metadata: Vec<Value> = metadata.iter().map(|(k, v)| json!([k, v])).collect();
    json!({"method": method, "metadata": metadata, "count": count})
}

/// The results of group `index`.
fn of_group(results: &[Value], index: u64) -> Vec<&Value> {
    results.iter().filter(|r| r["group"] == index).collect()
}

fn assert_ok(result: &Value) -> &Value {
    assert_eq!(result["code"], "OK", "call failed: {result}");
    &result["response"]
}

// --- Gateway "strip all" ---------------------------------------------------

fn the_problem_is_real_outside_cookie_paths(setup: &Setup) {
    let bearer = bearer();
    let big = big_cookie();
    let results = setup.calls(json!([
        group(
            OUTSIDE,
            &[("authorization", &bearer), ("cookie", "theme=dark")],
            3
        ),
        group(
            OUTSIDE,
            &[("authorization", &bearer), ("cookie", &big)],
            CALLS
        ),
    ]));
    for warm in of_group(&results, 0) {
        let seen = assert_ok(warm);
        assert_eq!(seen["cookies"], json!(["theme=dark"]), "{warm}");
    }
    let failed = of_group(&results, 1);
    assert_eq!(failed.len(), CALLS);
    for result in &failed {
        eprintln!("outside cookiePaths, 16 KiB cookie: {result}");
    }
    for result in failed {
        assert_eq!(result["code"], "RESOURCE_EXHAUSTED", "{result}");
        let details = result["details"].as_str().unwrap_or_default();
        assert!(
            details.contains("received metadata size exceeds hard limit")
                || details.contains("received initial metadata size exceeds limit"),
            "not the gRPC server's metadata limit: {result}"
        );
    }
}

fn the_diet_makes_the_same_calls_succeed(setup: &Setup) {
    let bearer = bearer();
    let big = big_cookie();
    let before = setup.stripped();
    let results = setup.calls(json!([group(
        ML_METADATA,
        &[("authorization", &bearer), ("cookie", &big)],
        CALLS
    )]));
    assert_eq!(results.len(), CALLS);
    for result in &results {
        let seen = assert_ok(result);
        assert_eq!(seen["method"], ML_METADATA);
        assert_eq!(seen["cookie_headers"], 0, "{result}");
        assert_eq!(seen["cookie_bytes"], 0, "{result}");
        assert_eq!(seen["kubeflow_userid"], "alice@example.com", "{result}");
        assert_eq!(seen["authorization"], false, "token forwarded: {result}");
    }
    assert_eq!(setup.stripped() - before, CALLS as u64);
}

fn a_token_in_a_cookie_is_found_before_the_diet(setup: &Setup) {
    let cookie = format!("{TOKEN_COOKIE}={}; {}; lang=en", token(), big_cookie());
    let results = setup.calls(json!([group(ML_METADATA, &[("cookie", &cookie)], 1)]));
    let seen = assert_ok(&results[0]);
    assert_eq!(
        seen["kubeflow_userid"], "alice@example.com",
        "{}",
        results[0]
    );
    assert_eq!(seen["cookie_headers"], 0, "{}", results[0]);
}

fn plain_http_keeps_its_cookie(setup: &Setup) {
    let bearer = bearer();
    let big = big_cookie();
    let before = setup.stripped();
    for cookie in [big.as_str(), "theme=dark;  lang=en"] {
        let headers = [("authorization", bearer.as_str()), ("cookie", cookie)];
        let get = setup.gateway.get(ML_METADATA, &headers);
        assert_eq!(get.echoed().header_values("cookie"), vec![cookie]);
        let post_headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
            ("cookie", cookie),
        ];
        let post = setup
            .gateway
            .request("POST", ML_METADATA, &post_headers, Some(b"{}"));
        let seen = post.echoed();
        assert_eq!(seen.header_values("cookie"), vec![cookie]);
        assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    }
    assert_eq!(setup.stripped(), before, "plain HTTP counted as a diet");
}

fn grpc_web_loses_its_cookie(setup: &Setup) {
    // Envoy's `grpc: {}` route match is not gRPC-Web: this one reaches the echo
    // upstream, which shows what kfauth forwarded.
    let bearer = bearer();
    let before = setup.stripped();
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/grpc-web+proto"),
        ("cookie", "theme=dark"),
    ];
    let response = setup
        .gateway
        .request("POST", ML_METADATA, &headers, Some(b"\0\0\0\0\0"));
    assert!(response.echoed().header_values("cookie").is_empty());
    assert_eq!(setup.stripped() - before, 1);
}

fn refusals_are_grpc_statuses(setup: &Setup) {
    let big = big_cookie();
    let results = setup.calls(json!([
        group(
            ML_METADATA,
            &[("authorization", "Bearer garbage"), ("cookie", &big)],
            1
        ),
        group(ML_METADATA, &[("cookie", "theme=dark")], 1),
    ]));
    assert_eq!(results[0]["code"], "UNAUTHENTICATED", "{}", results[0]);
    assert_eq!(results[0]["details"], "token_malformed", "{}", results[0]);
    assert_eq!(results[1]["code"], "UNAUTHENTICATED", "{}", results[1]);
    assert_eq!(results[1]["details"], "token_missing", "{}", results[1]);
}

#[test]
fn strip_all_on_cookie_paths() {
    let setup = Setup::start(json!({"cookiePaths": ["^/ml_metadata"]}));
    scenarios!(
        &setup,
        [
            the_problem_is_real_outside_cookie_paths,
            the_diet_makes_the_same_calls_succeed,
            a_token_in_a_cookie_is_found_before_the_diet,
            plain_http_keeps_its_cookie,
            grpc_web_loses_its_cookie,
            refusals_are_grpc_statuses,
        ]
    );
    // Every diet above was counted, and nothing else: 3 big calls, 1 cookie
    // token call, 1 gRPC-Web call (refused calls never reach the diet).
    assert_eq!(setup.stripped(), CALLS as u64 + 2);
}

// --- Gateway "named cookies over a threshold" --------------------------------

fn only_the_named_big_cookie_goes(setup: &Setup) {
    let bearer = bearer();
    let cookie = format!("theme=dark; {}; csrf=a1b2", big_cookie());
    let before = setup.stripped();
    let results = setup.calls(json!([
        group(
            ML_METADATA,
            &[
                ("authorization", &bearer),
                ("cookie", &cookie),
                ("cookie", "lang=en")
            ],
            CALLS
        ),
        // The token cookie is removed as the token (not forwarded); the
        // big one by the diet; the others stay.
        group(
            ML_METADATA,
            &[(
                "cookie",
                &format!("a=1; {TOKEN_COOKIE}={}; {}; b=2", token(), big_cookie())
            )],
            1
        ),
    ]));
    for result in of_group(&results, 0) {
        let seen = assert_ok(result);
        assert_eq!(
            seen["cookies"],
            json!(["theme=dark; csrf=a1b2; lang=en"]),
            "{result}"
        );
        assert_eq!(seen["kubeflow_userid"], "alice@example.com", "{result}");
    }
    let seen = assert_ok(of_group(&results, 1)[0]);
    assert_eq!(seen["cookies"], json!(["a=1; b=2"]), "{seen}");
    assert_eq!(seen["kubeflow_userid"], "alice@example.com", "{seen}");
    assert_eq!(setup.stripped() - before, CALLS as u64 + 1);
}

fn small_cookies_are_left_alone(setup: &Setup) {
    let bearer = bearer();
    let small = format!("theme=dark; {}; lang=en", oauth2_proxy(3000));
    let before = setup.stripped();
    let results = setup.calls(json!([group(
        ML_METADATA,
        &[("authorization", &bearer), ("cookie", &small)],
        2
    )]));
    for result in &results {
        let seen = assert_ok(result);
        assert_eq!(seen["cookies"], json!([small]), "{result}");
        assert_eq!(
            seen["cookie_names"],
            json!(["theme", "_oauth2_proxy", "lang"]),
            "{result}"
        );
    }
    assert_eq!(
        setup.stripped(),
        before,
        "a cookie under maxCookieBytes was counted"
    );
}

#[test]
fn named_cookies_over_a_threshold() {
    let setup = Setup::start(json!({
        "stripCookies": ["_oauth2_proxy"],
        "maxCookieBytes": 4096,
    }));
    scenarios!(
        &setup,
        [only_the_named_big_cookie_goes, small_cookies_are_left_alone]
    );
}
