//! The session shield and the header budget, end to end: the built module in
//! Envoy 1.40, in front of the echo upstream and of a real gunicorn (PyPI
//! `gunicorn`, default limits, `make gunicorn`) running a tiny WSGI app this
//! test writes, which counts its calls.
//!
//! Gateway *default* (no `session` block: the shield is on, cookie
//! `oauth2_proxy_kubeflow`, exempt `^/oauth2/`; `skipPaths` `^/dex/`, `^/oauth2/`):
//! 1. a 3-part split oauth2-proxy session (over 8 KiB) among unrelated cookies
//!    (`_xsrf`, `xoauth2_proxy_kubeflow`, `oauth2_proxy_kubeflow_x`,
//!    `oauth2_proxy_kubeflow_csrf`, a cookie whose value holds the name)
//!    reaches the upstream with only the session parts gone, the rest
//!    byte-identical and in order — with a token, without one, on a skipped
//!    path, and on a CORS preflight;
//! 2. `/oauth2/...` receives the whole Cookie header, byte for byte;
//! 3. a session made only of session parts leaves no Cookie header, and a
//!    session in a second Cookie header line goes too (the other lines'
//!    cookies folded into one header);
//! 4. `kfauth.session.cookie_stripped` counts exactly the requests shielded.
//!
//! gunicorn (`/app/` routed to it):
//! 5. shield off (`session: {cookies: []}`): the large session fails in
//!    gunicorn itself (431 `Request Header Fields Too Large`, its HTML body),
//!    and the app is not called; with the shield on, the same request
//!    succeeds and the app sees the other cookies only;
//! 6. kfauth counts a header as gunicorn does: without a budget, a header
//!    line (`name: value` CRLF) of exactly 8,190 bytes reaches the app and
//!    one of 8,191 gets gunicorn's 431; with `headerBudgets` at 8,190 the
//!    first still reaches the app and the second gets kfauth's 431
//!    `header_too_large` (JSON), the app not called; a large non-session
//!    cookie too; one log line names the header and never its value;
//!    `kfauth.session.header_too_large` counts them.
//!
//! Log level:
//! 7. the shield's debug line (`session: removed N bytes of session
//!    cookies`) is made only while Envoy writes the `wasm` logger's debug
//!    lines: switched on at run time (admin `/logging`), it appears within a
//!    tick; the count goes on at every level.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kfauth_testkit::bootstrap::{repo_root, Cluster, Route};
use kfauth_testkit::client::HttpResponse;
use kfauth_testkit::listener::free_port;
use kfauth_testkit::plugin_config::{claims, inline_rule, with_rules, ISSUER};
use kfauth_testkit::{scenarios, Alg, Gateway, Idp};
use serde_json::{json, Value};

const SESSION: &str = "oauth2_proxy_kubeflow";
const STRIPPED: &str = "kfauth.session.cookie_stripped";
const TOO_LARGE: &str = "kfauth.session.header_too_large";
/// gunicorn's default `limit_request_field_size`.
const GUNICORN_LIMIT: usize = 8190;

fn token() -> String {
    Idp::shared().sign(Alg::ES256, &claims("alice@example.com", &["team-a"]))
}

/// A session of `parts` parts of `bytes` each, as oauth2-proxy splits it.
fn split_session(parts: usize, bytes: usize) -> Vec<String> {
    (0..parts)
        .map(|index| {
            format!(
                "{SESSION}_{index}={}",
                char::from(b'A' + index as u8).to_string().repeat(bytes)
            )
        })
        .collect()
}

/// The unrelated cookies, interleaved with the session parts; returns the
/// Cookie header sent and the one expected upstream.
fn mixed_cookie() -> (String, String) {
    let session = split_session(3, 3000);
    let sent = [
        "_xsrf=2|1a2b|3c4d|1700000000".to_string(),
        session[0].clone(),
        format!("x{SESSION}=not-the-session"),
        session[1].clone(),
        format!("{SESSION}_x=not-a-part"),
        format!("{SESSION}_csrf=oauth2-proxy-csrf"),
        format!("note={SESSION}_0=in-a-value"),
        session[2].clone(),
        "theme=dark".to_string(),
    ]
    .join("; ");
    let kept = [
        "_xsrf=2|1a2b|3c4d|1700000000".to_string(),
        format!("x{SESSION}=not-the-session"),
        format!("{SESSION}_x=not-a-part"),
        format!("{SESSION}_csrf=oauth2-proxy-csrf"),
        format!("note={SESSION}_0=in-a-value"),
        "theme=dark".to_string(),
    ]
    .join("; ");
    assert!(sent.len() > 8 * 1024, "the session must be over 8 KiB");
    (sent, kept)
}

fn config(extra: Value) -> Value {
    let mut base = json!({"skipPaths": ["^/dex/", "^/oauth2/"]});
    kfauth_testkit::plugin_config::merge(&mut base, extra);
    with_rules(vec![inline_rule(ISSUER, Idp::shared())], base)
}

// --- Gateway "default" ------------------------------------------------------

type Headers<'a> = Vec<(&'a str, &'a str)>;

fn the_split_session_goes_and_everything_else_stays(gateway: &Gateway) {
    let (sent, kept) = mixed_cookie();
    let bearer = format!("Bearer {}", token());
    let before = gateway.stats().counter(STRIPPED);
    let cases: [(&str, &str, Headers); 4] = [
        (
            "GET",
            "/notebook/team-a/lab",
            vec![("authorization", bearer.as_str())],
        ),
        ("GET", "/notebook/team-a/lab", vec![]),
        ("GET", "/dex/auth", vec![]),
        (
            "OPTIONS",
            "/notebook/team-a/api",
            vec![
                ("origin", "https://kubeflow.example.com"),
                ("access-control-request-method", "POST"),
            ],
        ),
    ];
    for (method, path, mut headers) in cases {
        headers.push(("cookie", sent.as_str()));
        let response = gateway.request(method, path, &headers, None);
        assert_eq!(response.status, 200, "{method} {path}: {}", response.body);
        let seen = response.echoed();
        assert_eq!(
            seen.header_values("cookie"),
            vec![kept.as_str()],
            "{method} {path}"
        );
    }
    assert_eq!(gateway.stats().counter(STRIPPED) - before, 4);
}

fn oauth2_proxy_paths_keep_the_whole_session(gateway: &Gateway) {
    let (sent, _) = mixed_cookie();
    let before = gateway.stats().counter(STRIPPED);
    for path in ["/oauth2/callback?code=abc&state=xyz", "/oauth2/sign_out"] {
        let response = gateway.get(path, &[("cookie", &sent)]);
        assert_eq!(
            response.echoed().header_values("cookie"),
            vec![sent.as_str()],
            "{path}"
        );
    }
    assert_eq!(gateway.stats().counter(STRIPPED), before);
}

/// A client may send Cookie on two lines; Envoy's replace changes only the
/// first, so the shield removes the header before it sets what is kept.
fn a_session_in_a_second_cookie_header_goes_too(gateway: &Gateway) {
    let response = gateway.get(
        "/pipeline/",
        &[
            ("cookie", "theme=dark"),
            ("cookie", &format!("{SESSION}=whole; lang=en")),
        ],
    );
    assert_eq!(
        response.echoed().header_values("cookie"),
        vec!["theme=dark; lang=en"]
    );
}

fn a_session_alone_leaves_no_cookie_header(gateway: &Gateway) {
    let session = split_session(2, 100).join("; ");
    let response = gateway.get(
        "/pipeline/",
        &[("cookie", &format!("{SESSION}=whole; {session}"))],
    );
    assert!(response.echoed().header_values("cookie").is_empty());
}

#[test]
fn the_session_stays_at_the_gateway() {
    let gateway = Gateway::start(config(json!({})));
    scenarios!(
        &gateway,
        [
            the_split_session_goes_and_everything_else_stays,
            oauth2_proxy_paths_keep_the_whole_session,
            a_session_in_a_second_cookie_header_goes_too,
            a_session_alone_leaves_no_cookie_header,
        ]
    );
    // 4 shielded above, 2 more, nothing for /oauth2/.
    assert_eq!(gateway.stats().counter(STRIPPED), 6);
}

// --- Log level ------------------------------------------------------------------

#[test]
fn the_session_debug_line_follows_envoys_log_level() {
    let gateway = Gateway::start(config(json!({})));
    let (sent, _) = mixed_cookie();
    let line = "session: removed";
    let shielded = || {
        let response = gateway.get("/pipeline/", &[("cookie", &sent)]);
        assert_eq!(response.status, 200, "{}", response.body);
    };
    shielded();
    assert!(!gateway.logs().contains(line), "a debug line at level info");

    let set_level = |level: &str| {
        let url = gateway.admin_url(&format!("/logging?wasm={level}"));
        let response = kfauth_testkit::client::send("POST", &url, &[], None).unwrap();
        assert_eq!(response.status, 200, "POST /logging: {}", response.body);
    };
    set_level("debug");
    // Each VM reads the level on its tick (every second when idle).
    let seen = kfauth_testkit::wait::within(Duration::from_secs(10), || {
        shielded();
        std::thread::sleep(Duration::from_millis(100));
        gateway.logs().contains(line)
    });
    assert!(seen.is_some(), "no `{line}` line within 10 s of wasm:debug");
    assert!(
        gateway.logs().contains("bytes of session cookies"),
        "the line names the bytes removed"
    );
    set_level("info");
    assert!(gateway.stats().counter(STRIPPED) >= 2);
}

// --- gunicorn -----------------------------------------------------------------

const APP: &str = r#"
import json

calls = 0

def app(environ, start_response):
    global calls
    if environ["PATH_INFO"] == "/__calls":
        body = str(calls).encode()
    else:
        calls += 1
        body = json.dumps({"path": environ["PATH_INFO"], "cookie": environ.get("HTTP_COOKIE")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"#;

/// gunicorn with its default limits (one sync worker) serving [`APP`] on a
/// free loopback port; stopped when dropped.
struct Gunicorn {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Gunicorn {
    fn start(name: &str) -> Gunicorn {
        let bin = repo_root().join(".venv/bin/gunicorn");
        assert!(
            bin.exists(),
            "{} is missing: run `make gunicorn`",
            bin.display()
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("gunicorn-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kfauth_test_app.py"), APP).unwrap();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--chdir"])
            .arg(&dir)
            .arg("kfauth_test_app:app")
            // Nothing from the environment changes its limits.
            .env_remove("GUNICORN_CMD_ARGS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("gunicorn.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let gunicorn = Gunicorn { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while gunicorn.try_calls().is_none() {
            assert!(
                Instant::now() < deadline,
                "gunicorn did not start: {}",
                std::fs::read_to_string(gunicorn.dir.join("gunicorn.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        gunicorn
    }

    fn try_calls(&self) -> Option<u64> {
        let response = kfauth_testkit::client::send(
            "GET",
            &format!("http://127.0.0.1:{}/__calls", self.port),
            &[],
            None,
        )
        .ok()?;
        response.body.trim().parse().ok()
    }

    /// How many requests the app has handled (its own count).
    fn calls(&self) -> u64 {
        self.try_calls().expect("gunicorn answers /__calls")
    }
}

impl Drop for Gunicorn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Envoy with kfauth: `/app/` goes to gunicorn, the rest to the echo upstream.
struct Setup {
    // Field order matters: Envoy goes down before its upstreams.
    gateway: Gateway,
    app: Gunicorn,
}

impl Setup {
    fn start(name: &str, extra: Value) -> Setup {
        let app = Gunicorn::start(name);
        let port = app.port;
        let gateway = Gateway::start_with(config(extra), |settings| {
            settings
                .with_cluster(Cluster::loopback("gunicorn", port))
                .with_route(Route {
                    prefix: "/app/".into(),
                    grpc_only: false,
                    cluster: "gunicorn".into(),
                })
        });
        Setup { gateway, app }
    }

    fn get(&self, headers: &[(&str, &str)]) -> HttpResponse {
        let bearer = format!("Bearer {}", token());
        let mut all = vec![("authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        self.gateway.get("/app/lab", &all)
    }
}

fn assert_gunicorn_refused(response: &HttpResponse) {
    assert_eq!(response.status, 431, "{}", response.body);
    assert!(
        response.body.contains("Request Header Fields Too Large"),
        "not gunicorn's answer: {}",
        response.body
    );
    assert!(
        response.body.contains("limit request headers fields size"),
        "{}",
        response.body
    );
}

fn assert_kfauth_refused(response: &HttpResponse) {
    assert_eq!(response.status, 431, "{}", response.body);
    let body = response.json();
    assert_eq!(body["reason"], "header_too_large", "{body}");
    assert_eq!(body["code"], 431, "{body}");
}

/// A header `name` whose line (`name: value` CRLF) is `line` bytes.
fn header_of_line(name: &str, line: usize) -> String {
    "h".repeat(line - name.len() - 4)
}

#[test]
fn gunicorn_fails_on_the_session_without_the_shield() {
    let setup = Setup::start("off", json!({"session": {"cookies": []}}));
    let (sent, _) = mixed_cookie();
    let response = setup.get(&[("cookie", &sent)]);
    eprintln!(
        "shield off, {}-byte Cookie: {} {}",
        sent.len(),
        response.status,
        response.body.trim()
    );
    assert_gunicorn_refused(&response);
    assert_eq!(setup.app.calls(), 0, "the app was called");
    assert_eq!(setup.gateway.stats().counter(STRIPPED), 0);

    // gunicorn's limit is on the whole line: 8,190 passes, 8,191 fails.
    let name = "x-long";
    let fits = header_of_line(name, GUNICORN_LIMIT);
    let response = setup.get(&[(name, &fits)]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(setup.app.calls(), 1);
    let over = header_of_line(name, GUNICORN_LIMIT + 1);
    assert_gunicorn_refused(&setup.get(&[(name, &over)]));
    assert_eq!(setup.app.calls(), 1);
}

#[test]
fn gunicorn_serves_the_same_request_with_the_shield() {
    let setup = Setup::start("on", json!({}));
    let (sent, kept) = mixed_cookie();
    let response = setup.get(&[("cookie", &sent)]);
    assert_eq!(response.status, 200, "{}", response.body);
    let seen = response.json();
    assert_eq!(seen["cookie"], kept.as_str(), "{seen}");
    assert_eq!(setup.app.calls(), 1);
    assert_eq!(setup.gateway.stats().counter(STRIPPED), 1);
}

#[test]
fn the_header_budget_answers_431_before_gunicorn_would() {
    let setup = Setup::start(
        "budget",
        json!({"headerBudgets": [{"paths": ["^/app/"], "maxHeaderBytes": GUNICORN_LIMIT}]}),
    );
    // The session goes first: what is left fits.
    let (sent, kept) = mixed_cookie();
    let response = setup.get(&[("cookie", &sent)]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["cookie"], kept.as_str());
    assert_eq!(setup.app.calls(), 1);

    // Exactly gunicorn's limit passes both; one byte more is kfauth's 431.
    let name = "x-long";
    let fits = header_of_line(name, GUNICORN_LIMIT);
    assert_eq!(setup.get(&[(name, &fits)]).status, 200);
    assert_eq!(setup.app.calls(), 2);
    let over = header_of_line(name, GUNICORN_LIMIT + 1);
    assert_kfauth_refused(&setup.get(&[(name, &over)]));
    assert_eq!(setup.app.calls(), 2, "the app was called");

    // A large cookie that is not the session: still too large, refused.
    let big = format!("{}; big={}", sent, "b".repeat(GUNICORN_LIMIT));
    assert_kfauth_refused(&setup.get(&[("cookie", &big)]));
    assert_eq!(setup.app.calls(), 2, "the app was called");

    // Outside the budget's paths nothing is refused (the echo upstream has no limit).
    let response = setup.gateway.get("/other/", &[(name, &over)]);
    assert_eq!(response.status, 200, "{}", response.body);

    assert_eq!(setup.gateway.stats().counter(TOO_LARGE), 2);
    // Envoy flushes its log file every 100 ms (the testkit's setting).
    let refusals = || -> Vec<String> {
        setup
            .gateway
            .wasm_logs()
            .into_iter()
            .filter(|line| line.contains("header_too_large"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = refusals();
    while lines.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        lines = refusals();
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("denied 431 GET /app/lab: header_too_large (header `x-long` is 8191 bytes, over maxHeaderBytes 8190)"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("header `cookie`"), "{}", lines[1]);
    for line in &lines {
        assert!(
            !line.contains("hhhh") && !line.contains("bbbb"),
            "a value was logged: {line}"
        );
    }
}
