//! The `kfauth` command-line tool:
//! - `check` accepts a valid pluginConfig (JSON or YAML, bare or inside a
//!   WasmPlugin) and exits 0; refuses a bad one with every problem and its
//!   field path, exit 1;
//!   usage errors exit 2;
//! - `from-istio` turns Kubeflow's real `dex-jwt` and `m2m-token-issuer`
//!   RequestAuthentications and the require-jwt AuthorizationPolicy into a
//!   pluginConfig that `check` accepts (skipped by name without ../shared/data);
//! - `from-istio` refuses (exit 1, naming the objects and fields) objects of
//!   two gateways in one run (Kubeflow's ingress and cluster-local gateway),
//!   an unrendered `PATCH_ME`, a second rule for an issuer; translates the
//!   local gateway's m2m-auth overlay with a note on where its WasmPlugin
//!   goes and a warning for the ALLOW policy it leaves in Istio;
//! - `token` mints a token that verifies with the key's public half.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jwt_simple::prelude::*;

fn kfauth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kfauth"))
        .args(args)
        .output()
        .unwrap()
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kfauth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_good_configs_and_names_the_field_of_bad_ones() {
    let good = temp_file(
        "good.yaml",
        "jwtRules:\n- issuer: https://dex.example.com\n  jwksUri: https://dex.example.com/keys\nrequireJwt: true\n",
    );
    let out = kfauth(&["check", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("ok (1 jwt rule(s))"));

    let plugin = temp_file(
        "plugin.yaml",
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: kfauth}\nspec:\n  pluginConfig:\n    jwtRules:\n    - issuer: https://dex.example.com\n      jwksUri: https://dex.example.com/keys\n    skipPaths: ['(']\n    clockSkew: soon\n",
    );
    let out = kfauth(&["check", plugin.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(said.contains("WasmPlugin kfauth: error"), "{said}");
    assert!(said.contains("`skipPaths[0]`"), "{said}");
    assert!(
        said.contains("`clockSkew`"),
        "every problem is reported: {said}"
    );

    let out = kfauth(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage"));
    let out = kfauth(&["check", "/nonexistent/kfauth.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

fn shared_data() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/kubeflow-manifests");
    root.is_dir().then_some(root)
}

#[test]
fn from_istio_translates_kubeflows_real_manifests() {
    let Some(root) = shared_data() else {
        eprintln!("SKIPPED from_istio_translates_kubeflows_real_manifests: ../shared/data absent");
        return;
    };
    let rendered = root.join("rendered/m2m-dex-and-kind.auth-policies.yaml");
    let out = kfauth(&["from-istio", rendered.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issuers: Vec<&str> = config["jwtRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["issuer"].as_str().unwrap())
        .collect();
    assert_eq!(
        issuers,
        [
            "http://dex.auth.svc.cluster.local:5556/dex",
            "https://kubernetes.default.svc.cluster.local",
            "https://kubernetes.default.svc"
        ]
    );
    assert_eq!(config["requireJwt"], true);
    assert_eq!(
        config["skipPaths"],
        serde_json::json!(["^/dex/", "^/oauth2/"])
    );
    // The CUSTOM oauth2-proxy policy stays in Istio, and the tool says so.
    assert!(text(&out.stderr).contains("istio-ingressgateway-oauth2-proxy"));

    let translated = temp_file("translated.json", &text(&out.stdout));
    let checked = kfauth(&["check", translated.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked.stdout));
}

const LOCAL_GATEWAY: &str = "common/istio/cluster-local-gateway/overlays/m2m-auth";

#[test]
fn from_istio_refuses_objects_of_two_gateways_in_one_run() {
    let Some(root) = shared_data() else {
        eprintln!(
            "SKIPPED from_istio_refuses_objects_of_two_gateways_in_one_run: ../shared/data absent"
        );
        return;
    };
    let local = root.join(LOCAL_GATEWAY);
    let files = [
        root.join("rendered/m2m-dex-and-kind.auth-policies.yaml"),
        local.join("cluster-local-gateway-requestauthentication.yaml"),
        local.join("cluster-local-gateway-authorizationpolicy-deny.yaml"),
    ];
    let args: Vec<&str> = std::iter::once("from-istio")
        .chain(files.iter().map(|path| path.to_str().unwrap()))
        .collect();
    let out = kfauth(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        out.stdout.is_empty(),
        "no pluginConfig: {}",
        text(&out.stdout)
    );
    let said = text(&out.stderr);
    let error = said
        .lines()
        .find(|line| line.starts_with("error: ") && line.contains("different workloads"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(error.contains("RequestAuthentication cluster-local-gateway-jwt (namespace istio-system, selector matchLabels {app: cluster-local-gateway, istio: cluster-local-gateway})"), "{error}");
    assert!(error.contains("RequestAuthentication dex-jwt, RequestAuthentication m2m-token-issuer (namespace istio-system, selector matchLabels {app: istio-ingressgateway})"), "{error}");
    // The local gateway's require-JWT policy is not the ingress gateway's.
    assert!(said.contains("warning: AuthorizationPolicy cluster-local-gateway-require-jwt (namespace istio-system, selector matchLabels {app: cluster-local-gateway, istio: cluster-local-gateway}) does not apply"), "{said}");
}

#[test]
fn from_istio_translates_the_local_gateway_and_says_where_it_goes() {
    let Some(root) = shared_data() else {
        eprintln!("SKIPPED from_istio_translates_the_local_gateway_and_says_where_it_goes: ../shared/data absent");
        return;
    };
    let local = root.join(LOCAL_GATEWAY);
    let files: Vec<PathBuf> = [
        "cluster-local-gateway-requestauthentication.yaml",
        "cluster-local-gateway-authorizationpolicy-deny.yaml",
        "cluster-local-gateway-authorizationpolicy-patch.yaml",
        "kustomization.yaml",
    ]
    .iter()
    .map(|file| local.join(file))
    .collect();
    let args: Vec<&str> = std::iter::once("from-istio")
        .chain(files.iter().map(|path| path.to_str().unwrap()))
        .collect();
    let out = kfauth(&args);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issuers: Vec<&str> = config["jwtRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["issuer"].as_str().unwrap())
        .collect();
    assert_eq!(
        issuers,
        [
            "https://kubernetes.default.svc.cluster.local",
            "https://kubernetes.default.svc"
        ]
    );
    assert_eq!(config["requireJwt"], true);
    assert_eq!(
        config["skipPaths"],
        serde_json::json!([
            "^/healthz$",
            "^/ready$",
            "^/wait\\-for\\-drain$",
            "^/metrics$",
            "^/stats/prometheus$",
            "/healthz$",
            "/ready$"
        ])
    );
    assert!(said.contains("note: the WasmPlugin with this pluginConfig goes where RequestAuthentication cluster-local-gateway-jwt applied: namespace istio-system, selector matchLabels {app: cluster-local-gateway, istio: cluster-local-gateway}"), "{said}");
    // The ALLOW policy stays in Istio, and the tool says so.
    assert!(
        said.contains("warning: AuthorizationPolicy cluster-local-gateway ("),
        "{said}"
    );
    assert!(!said.contains("error"), "{said}");
    let translated = temp_file("local-gateway.json", &text(&out.stdout));
    let checked = kfauth(&["check", translated.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked.stdout));
}

#[test]
fn from_istio_refuses_unrendered_placeholders_and_a_second_rule_for_an_issuer() {
    let Some(root) = shared_data() else {
        eprintln!("SKIPPED from_istio_refuses_unrendered_placeholders_and_a_second_rule_for_an_issuer: ../shared/data absent");
        return;
    };
    // Kubeflow's m2m component before its overlay sets the issuer.
    let component =
        root.join("common/oauth2-proxy/components/istio-m2m/requestauthentication.yaml");
    let out = kfauth(&["from-istio", component.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("error: RequestAuthentication m2m-token-issuer: spec.jwtRules[0].issuer is `PATCH_ME`, a placeholder"),
        "{}",
        text(&out.stderr)
    );
    // The rendered m2m rules twice (e.g. the same objects in two files).
    let rendered = root.join("rendered/m2m-dex-and-kind.auth-policies.yaml");
    let copy = temp_file(
        "again.yaml",
        &std::fs::read_to_string(&rendered)
            .unwrap()
            .replace("name: m2m-token-issuer", "name: m2m-again"),
    );
    let out = kfauth(&[
        "from-istio",
        rendered.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains("error: RequestAuthentication m2m-again: spec.jwtRules[0].issuer \"https://kubernetes.default.svc.cluster.local\" is also the issuer of RequestAuthentication m2m-token-issuer spec.jwtRules[0]"), "{said}");
    // Usage: no file.
    assert_eq!(kfauth(&["from-istio"]).status.code(), Some(2));
}

#[test]
fn token_mints_what_the_public_key_verifies() {
    let key = RS256KeyPair::generate(2048).unwrap();
    let pem = temp_file("key.pem", &key.to_pem().unwrap());
    let out = kfauth(&[
        "token",
        "--key",
        pem.to_str().unwrap(),
        "--issuer",
        "https://idp.example.com",
        "--kid",
        "k1",
        "--email",
        "alice@example.com",
        "--groups",
        "a,b",
        "--aud",
        "kubeflow",
        "--claim",
        "level=3",
        "--ttl",
        "10m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    let claims = key
        .public_key()
        .verify_token::<serde_json::Map<String, serde_json::Value>>(&token, None)
        .unwrap();
    assert_eq!(claims.custom["email"], "alice@example.com");
    assert_eq!(claims.custom["groups"], serde_json::json!(["a", "b"]));
    assert_eq!(claims.custom["level"], 3);
    assert_eq!(claims.issuer.as_deref(), Some("https://idp.example.com"));
    let out = kfauth(&["token", "--issuer", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--key is required"));
}
