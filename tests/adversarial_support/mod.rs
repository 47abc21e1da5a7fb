//! Shared setup of the adversarial suites: one Envoy per suite whose rule
//! trusts a JWKS of five keys — the shared identity provider's RSA (`alg:
//! RS256`) and P-256 keys, a symmetric `oct` key (which kfauth must never
//! use), the forge signer's RSA key (no `alg`: every RS*/PS* algorithm) and
//! P-256 key — and a client that asserts status and reason.
//!
//! Every request a suite sends goes through [`get`] (or [`send`]), which
//! notes it with Envoy's answer; [`explain_agrees`] then runs each through
//! `kfauth explain` with the same configuration and time and asserts the
//! same status and reason word.

#![allow(dead_code)]

use std::process::Command;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use kfauth_testkit::forge::Signer;
use kfauth_testkit::plugin_config::{claims, kubeflow_rule, merge, with_rules, ISSUER};
use kfauth_testkit::{expect, Echoed, Gateway, HttpResponse, Idp};
use serde_json::{json, Value};

/// `kid` of the `oct` key in the JWKS.
pub const OCT_KID: &str = "hmac-1";
/// Its secret (base64url `k`), public knowledge to anyone who reads the JWKS.
pub const OCT_SECRET: &[u8] = b"the-jwks-is-public-so-is-this";

/// The JWKS every adversarial suite trusts.
pub fn jwks() -> Value {
    let signer = Signer::shared();
    let idp = Idp::shared();
    let idp_keys = idp.jwks()["keys"].as_array().cloned().unwrap();
    // The provider's keys first: a token without `kid` signed by the signer
    // is only verified after the provider's keys were tried.
    let mut keys = idp_keys;
    keys.extend([
        json!({"kty": "oct", "kid": OCT_KID, "k": kfauth_testkit::forge::b64url(OCT_SECRET)}),
        signer.rsa_jwk(),
        signer.ec_jwk(),
    ]);
    json!({ "keys": keys })
}

/// The rule: the test issuer and audience, `email`/`groups` to
/// `kubeflow-userid`/`kubeflow-groups`, the JWKS inline; `extra` merged in.
pub fn rule(extra: Value) -> Value {
    let mut rule = kubeflow_rule(ISSUER, json!({"jwks": jwks().to_string()}));
    merge(&mut rule, extra);
    rule
}

/// Starts Envoy with [`rule`]`(rule_extra)` and top-level `extra`.
pub fn start(rule_extra: Value, extra: Value) -> Gateway {
    let config = with_rules(vec![rule(rule_extra)], extra);
    let gateway = Gateway::start(config.clone());
    CONFIGS.lock().unwrap().push((gateway.port(), config));
    gateway
}

/// The pluginConfig of each gateway [`start`] started, by listener port.
static CONFIGS: Mutex<Vec<(u16, Value)>> = Mutex::new(Vec::new());

/// A request sent and Envoy's answer to it.
struct Exchange {
    port: u16,
    path: String,
    headers: Vec<(String, String)>,
    /// When it was sent, seconds since the epoch.
    at: f64,
    status: u16,
    reason: Option<String>,
}

static EXCHANGES: Mutex<Vec<Exchange>> = Mutex::new(Vec::new());

fn noted(
    gateway: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
    send: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let response = send();
    EXCHANGES.lock().unwrap().push(Exchange {
        port: gateway.port(),
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        at,
        status: response.status,
        reason: reason_word(&response.body),
    });
    response
}

fn reason_word(body: &str) -> Option<String> {
    let body: Value = serde_json::from_str(body).ok()?;
    Some(body.get("reason")?.as_str()?.to_string())
}

/// `GET path` with `headers`, noted for [`explain_agrees`].
pub fn get(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    noted(gateway, path, headers, || gateway.get(path, headers))
}

/// [`get`] over a raw connection, header names as given.
pub fn get_verbatim(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    noted(gateway, path, headers, || {
        gateway.get_verbatim(path, headers)
    })
}

/// What `kfauth explain` answers for `exchange`: status and reason word.
fn explained(config: &str, exchange: &Exchange) -> (u16, Option<String>) {
    let now = exchange.at.to_string();
    let host = format!("127.0.0.1:{}", exchange.port);
    let mut args = vec![
        "explain".to_string(),
        config.to_string(),
        "--now".into(),
        now,
        "--host".into(),
        host,
        "--path".into(),
        exchange.path.clone(),
    ];
    for (name, value) in &exchange.headers {
        args.extend(["-H".to_string(), format!("{name}: {value}")]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kfauth"))
        .args(&args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let answer = said
        .lines()
        .find_map(|line| line.strip_prefix("answer: "))
        .unwrap_or_else(|| panic!("no answer: {said}{}", String::from_utf8_lossy(&out.stderr)));
    match (out.status.code(), answer.strip_prefix("refused: ")) {
        (Some(0), None) => (200, None),
        (Some(1), Some(refused)) => {
            let (status, body) = refused.split_once(' ').unwrap();
            let body = serde_json::Deserializer::from_str(body)
                .into_iter::<Value>()
                .next()
                .unwrap()
                .unwrap();
            (status.parse().unwrap(), reason_word(&body.to_string()))
        }
        (code, _) => panic!("explain exited {code:?}: {said}"),
    }
}

/// Every request sent to `gateway` since it started, explained offline with
/// its configuration and time: the same status and reason word as Envoy's.
/// A request Envoy itself refused before kfauth saw it (no reason word in
/// the body) cannot be expressed offline and is left out, by count.
pub fn explain_agrees(gateway: &Gateway) {
    let port = gateway.port();
    let config = CONFIGS
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, config)| config.clone())
        .expect("started with adversarial_support::start");
    let dir = std::env::temp_dir().join(format!("kfauth-adversarial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join(format!("{port}.json"));
    std::fs::write(&config_file, config.to_string()).unwrap();
    let config_file = config_file.to_str().unwrap();
    let exchanges: Vec<Exchange> = {
        let mut all = EXCHANGES.lock().unwrap();
        let (mine, others) = all.drain(..).partition(|e| e.port == port);
        *all = others;
        mine
    };
    let mut disagreements = Vec::new();
    let mut outside = 0;
    let mut compared = 0;
    for exchange in &exchanges {
        if exchange.status != 200 && exchange.reason.is_none() {
            outside += 1;
            continue;
        }
        compared += 1;
        let offline = explained(config_file, exchange);
        let envoy = (exchange.status, exchange.reason.clone());
        if offline != envoy {
            disagreements.push(format!(
                "{} with {} header(s): Envoy {envoy:?}, explain {offline:?}",
                exchange.path,
                exchange.headers.len()
            ));
        }
    }
    eprintln!(
        "kfauth explain agrees with Envoy on {} of {compared} requests ({outside} answered by Envoy itself)",
        compared - disagreements.len()
    );
    assert!(compared > 0, "no request to compare");
    assert!(
        disagreements.is_empty(),
        "explain and Envoy disagree:\n  {}",
        disagreements.join("\n  ")
    );
}

/// Valid claims for the rule (email alice@example.com, group team-a).
pub fn valid() -> Value {
    claims("alice@example.com", &["team-a"])
}

/// [`valid`] with `extra` merged in.
pub fn with(extra: Value) -> Value {
    let mut c = valid();
    merge(&mut c, extra);
    c
}

/// [`valid`] without `name`.
pub fn without(name: &str) -> Value {
    let mut c = valid();
    c.as_object_mut().unwrap().remove(name);
    c
}

/// Sends `token` as `Authorization: Bearer`.
pub fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    get(
        gateway,
        "/echo",
        &[("authorization", &format!("Bearer {token}"))],
    )
}

/// 401 with `reason` (and the RFC 6750 challenge), never a 5xx.
pub fn rejects(gateway: &Gateway, token: &str, reason: &str) {
    let response = send(gateway, token);
    expect::rejected(&response, reason);
    expect::no_leak(token, &[&response.body]);
}

/// The request reached the upstream with the verified identity.
pub fn accepts(gateway: &Gateway, token: &str) -> Echoed {
    let seen = expect::allowed(&send(gateway, token));
    assert_eq!(seen.header("authorization"), None, "the token was removed");
    seen
}

/// [`accepts`] and the upstream saw `email` as `kubeflow-userid`.
pub fn accepts_as(gateway: &Gateway, token: &str, email: &str) {
    let seen = accepts(gateway, token);
    assert_eq!(seen.header_values("kubeflow-userid"), vec![email]);
}
