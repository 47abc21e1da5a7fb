//! Identity and decision in Envoy's access log, end to end: a real Envoy
//! (one worker) with kfauth (`requireJwt`, `skipPaths: [^/dex/]`, the KServe
//! authorization rule against the API-server stand-in, `failureMode: deny`)
//! and a file access log whose format is the README's Envoy block, as
//! written. Every request carries the session cookie; each is found in the
//! log by its path.
//!
//! `the_access_log_says_who_and_why`:
//! - a verified token on an unguarded path: `allowed`, the user
//!   (`kubeflow-userid`'s value) and the issuer, no reason, no review;
//! - refused: `token_malformed` (not three segments), `token_expired`
//!   (`exp passed`), `signature_invalid` (a payload changed under its
//!   signature), `issuer_unknown` (whose unverified `iss` is not logged):
//!   `denied`, the reason word and its cause, and nobody named;
//! - no token where one is required: `unauthenticated`, `token_missing`;
//! - a skipped path: `skipped` and nothing else, though it carried a token;
//! - KServe predict allowed by a SubjectAccessReview: `allowed`, the user,
//!   verb `get`, resource `inferenceservices`, the namespace from the host;
//! - the same user in another namespace: `denied`, `forbidden`, with the
//!   user and the review that refused it;
//! - the API server failing (500): `denied`, `authorizer_unavailable`, with
//!   the review it could not get;
//! - no line holds a token sent (nor its payload or signature) or the
//!   cookie's value;
//! - the README's Istio blocks (`meshConfig.accessLogFormat`, the Telemetry
//!   API provider's `logFormat.text`) carry the same format line, and so does
//!   `make run`'s Envoy (`envoy/envoy.yaml`, from the testkit's constant).

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz_support;
mod readme_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use authz_support::*;
use kfauth_testkit::apiserver::fixtures::{TEAM_B_NAMESPACE, USER, USER_NAMESPACE};
use kfauth_testkit::apiserver::ApiMode;
use kfauth_testkit::bootstrap::KFAUTH_ACCESS_LOG_FORMAT;
use kfauth_testkit::forge::replace_payload;
use kfauth_testkit::kustomize::yaml_documents;
use kfauth_testkit::plugin_config::{claims, with_rules, ISSUER};
use kfauth_testkit::{expect, Envoy};
use readme_support::readme_block;
use serde_json::{json, Value};

const COOKIE_VALUE: &str = "c2Vzc2lvbi1zZWNyZXQtb2YtdGhlLWJyb3dzZXI";
const ABSENT: &str = "-";

/// The format line of the README's Envoy block, without its newline.
fn readme_format() -> String {
    let block = readme_block("# Envoy: access_log of the HttpConnectionManager");
    let [document] = yaml_documents(&block, "README")
        .unwrap()
        .try_into()
        .unwrap();
    let format = document["access_log"][0]["typed_config"]["log_format"]["text_format_source"]
        ["inline_string"]
        .as_str()
        .unwrap()
        .to_string();
    format.strip_suffix('\n').unwrap().to_string()
}

fn plugin_config() -> Value {
    with_rules(
        vec![dex_rule()],
        json!({
            "requireJwt": true,
            "skipPaths": ["^/dex/"],
            "authorization": authorization(vec![kserve_rule()], "1s", json!({"failureMode": "deny"})),
        }),
    )
}

/// `key=value` and `key="value"` pairs of a log line, after `kfauth=`.
fn fields(line: &str) -> HashMap<String, String> {
    let mut rest = &line[line.find(" kfauth=").unwrap() + 1..];
    let mut fields = HashMap::new();
    while let Some((key, after)) = rest.split_once('=') {
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap();
                (&quoted[..end], quoted[end + 1..].trim_start())
            }
            None => match after.split_once(' ') {
                Some((value, next)) => (value, next),
                None => (after, ""),
            },
        };
        fields.insert(key.to_string(), value.to_string());
        rest = next;
    }
    fields
}

/// The fields of the one access-log line of `METHOD path`, once Envoy has
/// written it.
fn logged(envoy: &Envoy, method: &str, path: &str) -> HashMap<String, String> {
    let needle = format!("\"{method} {path} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = envoy.access_log();
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(&needle)).collect();
        match lines.as_slice() {
            [line] => return fields(line),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("{} lines for {method} {path} in:\n{log}", lines.len()),
        }
    }
}

/// Asserts every kfauth field of a line; `None` is absent (`-`).
fn assert_fields(found: &HashMap<String, String>, expected: &[(&str, Option<&str>)], what: &str) {
    for (key, value) in expected {
        assert_eq!(
            found.get(*key).map(String::as_str),
            Some(value.unwrap_or(ABSENT)),
            "{what}: field {key} of {found:?}"
        );
    }
}

/// Every field: decision, user, issuer, reason, detail, verb, resource, namespace.
fn expected<'a>(
    decision: &'a str,
    user: Option<&'a str>,
    issuer: Option<&'a str>,
    reason: Option<&'a str>,
    detail: Option<&'a str>,
    review: Option<(&'a str, &'a str, &'a str)>,
) -> Vec<(&'a str, Option<&'a str>)> {
    vec![
        ("kfauth", Some(decision)),
        ("user", user),
        ("issuer", issuer),
        ("reason", reason),
        ("detail", detail),
        ("verb", review.map(|r| r.0)),
        ("resource", review.map(|r| r.1)),
        ("namespace", review.map(|r| r.2)),
    ]
}

#[test]
fn the_access_log_says_who_and_why() {
    let format = readme_format();
    let setup = Authz::start_with(plugin_config(), 1, |settings| {
        settings.with_access_log(&format)
    });
    let cookie = format!("oauth2_proxy_kubeflow={COOKIE_VALUE}");
    let mut tokens = Vec::new();
    let mut get = |path: &str, token: Option<&str>| {
        let mut req = Req::new("GET", "kubeflow.example.com", path).header("cookie", &cookie);
        if let Some(token) = token {
            tokens.push(token.to_string());
            req = req.bearer(token);
        }
        setup.send(&req)
    };

    let alice = user_token(USER, &["team-a"]);
    expect::allowed(&get("/allowed", Some(&alice)));
    let who = (Some(USER), Some(ISSUER));
    assert_fields(
        &logged(&setup.envoy, "GET", "/allowed"),
        &expected("allowed", who.0, who.1, None, None, None),
        "a verified token",
    );

    let mut old = claims(USER, &[]);
    old["exp"] = json!(old["iat"].as_u64().unwrap() - 600);
    old["iat"] = json!(old["exp"].as_u64().unwrap() - 3600);
    let mut stranger = claims(USER, &[]);
    stranger["iss"] = json!("https://stranger.example.com");
    let refusals = [
        (
            "/malformed",
            "abc.def".to_string(),
            "token_malformed",
            "not three dot-separated segments",
        ),
        (
            "/expired",
            user_token_with(&old),
            "token_expired",
            "exp passed",
        ),
        (
            "/signature",
            replace_payload(&alice, &claims("mallory@example.com", &["admins"])),
            "signature_invalid",
            "no key verifies the signature",
        ),
        (
            "/issuer",
            user_token_with(&stranger),
            "issuer_unknown",
            "no rule for its iss",
        ),
    ];
    for (path, token, reason, detail) in &refusals {
        expect::rejected(&get(path, Some(token)), reason);
        assert_fields(
            &logged(&setup.envoy, "GET", path),
            &expected("denied", None, None, Some(reason), Some(detail), None),
            reason,
        );
    }

    expect::token_missing(&get("/no-token", None));
    assert_fields(
        &logged(&setup.envoy, "GET", "/no-token"),
        &expected(
            "unauthenticated",
            None,
            None,
            Some("token_missing"),
            Some("no token, and requireJwt"),
            None,
        ),
        "no token",
    );

    expect::allowed(&get("/dex/auth", Some(&alice)));
    assert_fields(
        &logged(&setup.envoy, "GET", "/dex/auth"),
        &expected("skipped", None, None, None, None, None),
        "a skipped path",
    );

    // Authorization: the review's verb, resource and namespace.
    let predict = predict_path("iris");
    let mut send = |namespace: &str| {
        tokens.push(alice.clone());
        setup.send(
            &Req::kserve("iris", namespace)
                .bearer(&alice)
                .header("cookie", &cookie),
        )
    };
    let line_of = |namespace: &str| {
        let log = setup.envoy.access_log();
        let host = format!("\"{}\"", kserve_host("iris", namespace));
        let line = log
            .lines()
            .find(|line| line.contains(&format!("\"POST {predict} ")) && line.contains(&host))
            .map(str::to_string);
        line.map(|line| fields(&line))
    };
    let wait_line = |namespace: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = line_of(namespace) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no line for {namespace}:\n{}",
                setup.envoy.access_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    expect::allowed(&send(USER_NAMESPACE));
    assert_fields(
        &wait_line(USER_NAMESPACE),
        &expected(
            "allowed",
            who.0,
            who.1,
            None,
            None,
            Some(("get", "inferenceservices", USER_NAMESPACE)),
        ),
        "an authorized request",
    );
    forbidden(&send(TEAM_B_NAMESPACE), None);
    assert_fields(
        &wait_line(TEAM_B_NAMESPACE),
        &expected(
            "denied",
            who.0,
            who.1,
            Some("forbidden"),
            None,
            Some(("get", "inferenceservices", TEAM_B_NAMESPACE)),
        ),
        "a SubjectAccessReview's no",
    );
    setup.api.set_mode(ApiMode::Fail);
    let outage = "team-outage";
    expect::unavailable(&send(outage), "authorizer_unavailable");
    setup.api.set_mode(ApiMode::Answer);
    assert_fields(
        &wait_line(outage),
        &expected(
            "denied",
            who.0,
            who.1,
            Some("authorizer_unavailable"),
            None,
            Some(("get", "inferenceservices", outage)),
        ),
        "an API server answering 500",
    );

    let log = setup.envoy.access_log();
    for token in &tokens {
        expect::no_leak(token, &[&log]);
    }
    assert!(!log.contains(COOKIE_VALUE), "the cookie leaked:\n{log}");
    println!("access log:\n{log}");
}

/// A Dex token with these claims (ES256, the rule's key).
fn user_token_with(claims: &Value) -> String {
    kfauth_testkit::Idp::shared().sign(kfauth_testkit::Alg::ES256, claims)
}

#[test]
fn the_istio_blocks_carry_the_envoy_format() {
    // The same line `make run`'s Envoy prints (envoy/envoy.yaml).
    assert_eq!(readme_format(), KFAUTH_ACCESS_LOG_FORMAT);
    let format = format!("{}\n", readme_format());
    let mesh = readme_block("# Istio: meshConfig");
    let [mesh] = yaml_documents(&mesh, "README").unwrap().try_into().unwrap();
    assert_eq!(mesh["meshConfig"]["accessLogFormat"], format);
    assert_eq!(mesh["meshConfig"]["accessLogFile"], "/dev/stdout");
    let telemetry = readme_block("# Istio: Telemetry API");
    let [provider, telemetry] = yaml_documents(&telemetry, "README")
        .unwrap()
        .try_into()
        .unwrap();
    let provider = &provider["meshConfig"]["extensionProviders"][0];
    assert_eq!(provider["envoyFileAccessLog"]["logFormat"]["text"], format);
    assert_eq!(telemetry["kind"], "Telemetry");
    assert_eq!(
        telemetry["spec"]["accessLogging"][0]["providers"][0]["name"],
        provider["name"]
    );
    assert_eq!(
        telemetry["spec"]["selector"]["matchLabels"]["app"],
        "istio-ingressgateway"
    );
}
