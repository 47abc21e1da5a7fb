//! `kfauth explain`: one request, offline, step by step, with the filter's
//! own decision:
//! - a good token: the rule, the key (kid, alg), each check, the client's
//!   identity header removed and the verified ones set; exit 0;
//!   the session cookies stay at the gateway;
//! - a header over its budget is 431 header_too_large, naming the header;
//! - an expired token at a fixed `--now`: inside the clock skew it passes,
//!   beyond it 401 token_expired with its cause; exit 1;
//! - an unknown issuer is issuer_unknown; a remote issuer without `--jwks`
//!   is 503 jwks_unavailable; a skipped path passes unauthenticated;
//! - authorization: the SubjectAccessReview body is printed and, without an
//!   answer, explain stops where kfauth waits (exit 3); `allowed`, `denied`,
//!   `unavailable` and an answer file decide it (0, 403 forbidden, 503
//!   authorizer_unavailable); a path no rule matches is not guarded;
//! - a TokenReview is printed without the token; `denied` is token_revoked;
//! - a WasmPlugin manifest is read like `check` reads it; a configuration the
//!   filter refuses exits 4, a malformed option 2; the token never appears
//!   in the output;
//! - the README's example of a refused request is what explain prints.
//!
//! That explain and the real Envoy agree on every request of the
//! adversarial corpus is asserted by those suites (`adversarial_support`).

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// This suite reads the README's console blocks, not its YAML ones.
#[allow(dead_code)]
mod readme_support;

mod cli_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use cli_support::{kfauth, temp_file, text};

use jwt_simple::prelude::*;
use serde_json::json;

const ISSUER: &str = "https://idp.example.com";
const NOW: u64 = 1_800_000_000;

/// Writes `content` to a file of its own (tests run in parallel).
fn file(name: &str, content: &str) -> String {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let number = FILES.fetch_add(1, Ordering::Relaxed);
    let path = temp_file(&format!("{number}-{name}"), content);
    path.to_str().unwrap().to_string()
}

/// The signing key, as a user makes one for `kfauth token`.
fn key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        file(
            "key.pem",
            &RS256KeyPair::generate(2048).unwrap().to_pem().unwrap(),
        )
    })
}

/// The JWKS file `kfauth jwks` prints for the key.
fn jwks() -> String {
    static JWKS: OnceLock<String> = OnceLock::new();
    JWKS.get_or_init(|| {
        let out = kfauth(&["jwks", "--key", key(), "--kid", "k1"]);
        assert!(out.status.success());
        format!("{ISSUER}={}", file("jwks.json", &text(&out.stdout)))
    })
    .clone()
}

/// A token minted with `kfauth token`, `claims` as `--claim`s.
fn token(claims: &[&str]) -> String {
    let mut args = vec!["token", "--key", key(), "--kid", "k1"];
    if !claims.iter().any(|claim| claim.starts_with("iss=")) {
        args.extend(["--issuer", ISSUER]);
    }
    args.extend([
        "--email",
        "alice@example.com",
        "--groups",
        "team-a",
        "--aud",
        "kubeflow",
    ]);
    for claim in claims {
        args.extend(["--claim", claim]);
    }
    let out = kfauth(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

fn config(extra: serde_json::Value) -> String {
    let mut value = json!({"jwtRules": [{
        "issuer": ISSUER, "jwksUri": format!("{ISSUER}/keys"), "audiences": ["kubeflow"],
        "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"},
                                 {"header": "kubeflow-groups", "claim": "groups"}]}],
        "skipPaths": ["^/dex/"]});
    for (name, field) in extra.as_object().unwrap() {
        value[name] = field.clone();
    }
    file("config.json", &value.to_string())
}

/// Runs explain; returns the exit code and stdout, asserting the token is not in it.
fn explain(config: &str, token: &str, args: &[&str]) -> (i32, String) {
    let now = NOW.to_string();
    let jwks = jwks();
    let mut all = vec![
        "explain", config, "--jwks", &jwks, "--now", &now, "--token", token,
    ];
    all.extend(args);
    let out = kfauth(&all);
    let said = text(&out.stdout);
    assert!(!said.contains(token), "the token was printed");
    (out.status.code().unwrap(), said)
}

fn has(said: &str, line: &str) {
    assert!(
        said.lines().any(|l| l.contains(line)),
        "no `{line}` in:\n{said}"
    );
}

fn exp(seconds_from_now: i64) -> String {
    format!("exp={}", NOW as i64 + seconds_from_now)
}

#[test]
fn a_good_token_is_allowed_with_each_step_named() {
    let (code, said) = explain(
        &config(json!({})),
        &token(&[&exp(600), &format!("iat={NOW}")]),
        &[
            "--path",
            "/jupyter/",
            "-H",
            "Kubeflow-Userid: admin@example.com",
            "-H",
            "cookie: oauth2_proxy_kubeflow=s3ssion; theme=dark",
        ],
    );
    assert_eq!(code, 0, "{said}");
    has(
        &said,
        "identity headers: the client's copies are removed: kubeflow-userid",
    );
    has(&said, "token: ");
    has(&said, "in header `authorization` (prefix `Bearer `)");
    has(
        &said,
        "rule: jwtRules[0] (issuer `https://idp.example.com`)",
    );
    has(&said, "signature: key kid `k1` (RS256) verifies");
    has(
        &said,
        "exp: 1800000600 (+600 s from now, clock skew 60 s): ok",
    );
    has(&said, "audience: aud \"kubeflow\" against kubeflow: ok");
    has(&said, "upstream: header `authorization` removed");
    has(
        &said,
        "upstream: header `kubeflow-userid` set to `alice@example.com`",
    );
    has(&said, "upstream: header `kubeflow-groups` set to `team-a`");
    has(
        &said,
        "session: 29 bytes of session cookies stay at the gateway",
    );
    has(&said, "upstream: header `cookie` set to (10 bytes)");
    has(&said, "answer: allowed");
}

#[test]
fn a_header_over_its_budget_is_431_naming_it() {
    let config =
        config(json!({"headerBudgets": [{"paths": ["^/jupyter/"], "maxHeaderBytes": 256}]}));
    let big = format!("x-big: {}", "v".repeat(300));
    let good = token(&[&exp(600)]);
    let (code, said) = explain(&config, &good, &["--path", "/jupyter/", "-H", &big]);
    assert_eq!(code, 1, "{said}");
    has(
        &said,
        "header budget: 256 bytes per header line on this path",
    );
    has(&said, "\"reason\":\"header_too_large\"");
    has(&said, "`x-big`");
    let (code, said) = explain(&config, &good, &["--path", "/pipeline/", "-H", &big]);
    assert_eq!(code, 0, "{said}");
}

#[test]
fn expiry_is_checked_with_the_clock_skew_at_the_given_time() {
    let config = config(json!({}));
    let (code, said) = explain(&config, &token(&[&exp(-59)]), &[]);
    assert_eq!(code, 0, "{said}");
    let (code, said) = explain(&config, &token(&[&exp(-61)]), &[]);
    assert_eq!(code, 1, "{said}");
    has(
        &said,
        "exp: 1799999939 (-61 s from now, clock skew 60 s): passed",
    );
    has(&said, "verify: refused: token_expired: exp passed");
    has(
        &said,
        "answer: refused: 401 {\"code\":401,\"reason\":\"token_expired\"}",
    );
    has(
        &said,
        "www-authenticate: Bearer realm=\"kfauth\", error=\"invalid_token\"",
    );
}

#[test]
fn unknown_issuers_missing_keys_and_skipped_paths() {
    let config = config(json!({}));
    let good = token(&[&exp(600)]);
    let (code, said) = explain(
        &config,
        &token(&[&exp(600), "iss=https://other.example.com"]),
        &[],
    );
    assert_eq!(code, 1, "{said}");
    has(&said, "rule: no jwtRules entry has this issuer");
    has(&said, "\"reason\":\"issuer_unknown\"");

    let now = NOW.to_string();
    let out = kfauth(&["explain", &config, "--now", &now, "--token", &good]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    has(&said, "keys: no --jwks for `https://idp.example.com`");
    has(
        &said,
        "answer: refused: 503 {\"code\":503,\"reason\":\"jwks_unavailable\"}",
    );

    let (code, said) = explain(&config, "not-a-token", &["--path", "/dex/auth"]);
    assert_eq!(code, 0, "{said}");
    has(
        &said,
        "skipPaths: `^/dex/` matches `/dex/auth`: no authentication",
    );
}

fn authorization() -> serde_json::Value {
    json!({"authorization": {"rules": [{"match": {"paths": ["^/ns/(?P<ns>[^/]+)/"]},
        "resourceAttributes": {"namespace": "{path.ns}", "group": "kubeflow.org",
                               "resource": "notebooks"}}]}})
}

#[test]
fn a_subject_access_review_is_shown_then_answered_as_told() {
    let config = config(authorization());
    let good = token(&[&exp(600)]);
    let path = ["--path", "/ns/team-a/x", "--method", "POST"];
    let (code, said) = explain(&config, &good, &path);
    assert_eq!(code, 3, "{said}");
    has(
        &said,
        "review: POST /apis/authorization.k8s.io/v1/subjectaccessreviews",
    );
    has(&said, "\"namespace\":\"team-a\"");
    has(&said, "\"verb\":\"create\"");
    has(&said, "\"user\":\"alice@example.com\"");
    has(&said, "answer: none yet");
    let (code, said) = explain(&config, &good, &["--path", "/pipeline/"]);
    assert_eq!(code, 0, "{said}");
    has(
        &said,
        "authorization: no rule matches this request: not guarded",
    );

    let answer = |word: &str| {
        explain(
            &config,
            &good,
            &[&path[..], &["--review-answer", word]].concat(),
        )
    };
    let (code, said) = answer("allowed");
    assert_eq!(code, 0, "{said}");
    let (code, said) = answer("denied");
    assert_eq!(code, 1, "{said}");
    has(
        &said,
        "answer: refused: 403 {\"code\":403,\"reason\":\"forbidden\"}",
    );
    let (code, said) = answer("unavailable");
    assert_eq!(code, 1, "{said}");
    has(&said, "\"reason\":\"authorizer_unavailable\"");
    let reasoned = file(
        "answer.json",
        r#"{"status": {"allowed": false, "reason": "no RoleBinding in team-a"}}"#,
    );
    let (code, said) = answer(&reasoned);
    assert_eq!(code, 1, "{said}");
    has(&said, "\"detail\":\"no RoleBinding in team-a\"");
}

#[test]
fn a_token_review_is_shown_without_the_token() {
    let mut extra = authorization();
    extra["jwtRules"] = json!([{"issuer": ISSUER, "jwksUri": format!("{ISSUER}/keys"),
        "tokenReview": {"audiences": ["kubeflow"]},
        "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "sub"}]}]);
    let config = config(extra);
    let sa = token(&[&exp(600), "sub=system:serviceaccount:team-a:runner"]);
    let (code, said) = explain(&config, &sa, &[]);
    assert_eq!(code, 3, "{said}");
    has(
        &said,
        "review: POST /apis/authentication.k8s.io/v1/tokenreviews",
    );
    has(&said, "\"token\":\"<the bearer token>\"");
    let (code, said) = explain(&config, &sa, &["--review-answer", "denied"]);
    assert_eq!(code, 1, "{said}");
    has(&said, "\"reason\":\"token_revoked\"");
    // Allowed: the review's user is then the subject of the access review.
    let (code, said) = explain(
        &config,
        &sa,
        &["--path", "/ns/team-a/", "--review-answer", "allowed"],
    );
    assert_eq!(code, 0, "{said}");
    has(&said, "\"user\":\"system:serviceaccount:team-a:runner\"");
}

#[test]
fn a_wasmplugin_is_read_and_bad_inputs_have_their_exit_codes() {
    let plugin = file(
        "plugin.yaml",
        &format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: kfauth}}\n\
             spec:\n  pluginConfig:\n    jwtRules:\n    - issuer: {ISSUER}\n      jwksUri: {ISSUER}/keys\n"
        ),
    );
    let (code, said) = explain(&plugin, &token(&[&exp(600)]), &[]);
    assert_eq!(code, 0, "{said}");
    has(&said, "config: WasmPlugin kfauth, 1 jwt rule(s)");

    let refused = file(
        "refused.json",
        &format!(r#"{{"jwtRules": [{{"issuer": "{ISSUER}"}}], "clockSkew": "soon"}}"#),
    );
    let out = kfauth(&["explain", &refused]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("`clockSkew`"));
    let out = kfauth(&["explain", &plugin, "--jwks", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kfauth(&["explain", &plugin, "--token", "a", "--token-file", "b"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kfauth(&["explain", &plugin, "--now=-5"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kfauth(&["explain", &plugin, "--now", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_readme_example_is_what_explain_prints() {
    let block = readme_support::readme_fenced(
        "console",
        "$ kfauth explain wasmplugin/base/wasmplugin.yaml \\",
    );
    let printed: String = block
        .lines()
        .skip(1)
        .skip_while(|line| line.starts_with("    "))
        .take_while(|line| !line.starts_with("$ "))
        .map(|line| format!("{line}\n"))
        .collect();
    let dex = "http://dex.auth.svc.cluster.local:5556/dex";
    let out = kfauth(&["jwks", "--key", key(), "--kid", "dex-1"]);
    let keys = format!("{dex}={}", file("dex-keys.json", &text(&out.stdout)));
    let out = kfauth(&[
        "token",
        "--key",
        key(),
        "--kid",
        "dex-1",
        "--issuer",
        dex,
        "--email",
        "alice@example.com",
        "--groups",
        "team-a",
        "--aud",
        "kubeflow-oidc-authservice",
        "--claim",
        "exp=1800000000",
        "--claim",
        "iat=1799996400",
    ]);
    let token = file("token.jwt", &text(&out.stdout));
    let plugin = kfauth_testkit::bootstrap::repo_root().join("wasmplugin/base/wasmplugin.yaml");
    let out = kfauth(&[
        "explain",
        plugin.to_str().unwrap(),
        "--jwks",
        &keys,
        "--token-file",
        &token,
        "--path",
        "/jupyter/api/namespaces/team-a/notebooks",
        "-H",
        "kubeflow-userid: admin@example.com",
        "--now",
        "1800000120",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), printed);
}
