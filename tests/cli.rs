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
//! - `token` mints a token that verifies with the key's public half, from RSA
//!   and EC keys (SEC1 `BEGIN EC PRIVATE KEY` too), and `jwks` prints the JWKS
//!   that kfauth's own verifier then accepts it with; `--claim` overrides a
//!   registered claim (`exp`), and contradicting an option is a usage error;
//! - `check` warns (exit 0) on pasted Istio globs and unanchored regexes;
//! - every subcommand has help (exit 0); usage errors exit 2, problems 1.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use cli_support::{check, kfauth, temp_file, text};
use jwt_simple::prelude::*;
use kfauth::config::Config;
use kfauth::jwt_rule::KeySource;
use kfauth::outcome::Reason;
use kfauth::verify::{decode, verify};

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
    assert!(text(&out.stderr).contains("Usage: kfauth check"));
    // A file that cannot be read or parsed is a problem found, not a usage error.
    let out = kfauth(&["check", "/nonexistent/kfauth.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/kfauth.yaml"));
    let broken = temp_file("broken.yaml", "jwtRules: [\n");
    assert_eq!(
        kfauth(&["check", broken.to_str().unwrap()]).status.code(),
        Some(1)
    );
}

#[test]
fn check_warns_about_pasted_istio_globs_and_unanchored_regexes() {
    let config = temp_file(
        "globs.yaml",
        "jwtRules:\n- issuer: https://dex.example.com\n  jwksUri: https://dex.example.com/keys\n  outputClaimToHeaders: [{header: kubeflow-userid, claim: email}]\nrequireJwt: true\nskipPaths: ['/dex/*', '^/oauth2/', '/healthz']\nauthorization:\n  rules:\n  - match: {paths: ['^/pipeline/apis/v2beta1/runs\\?namespace=a']}\n    nonResourceAttributes: {verb: get}\n",
    );
    let out = kfauth(&["check", config.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "warnings only: {said}");
    let warnings: Vec<&str> = said.lines().filter(|l| l.contains(": warning: ")).collect();
    assert_eq!(warnings.len(), 3, "{said}");
    assert!(
        warnings[0].contains(
            "pluginConfig: warning: skipPaths[0]: `/dex/*` looks like an Istio path glob"
        ) && warnings[0].ends_with("write `^/dex/`"),
        "{said}"
    );
    assert!(
        warnings[1].contains("warning: skipPaths[2]: `/healthz` is not anchored")
            && warnings[1].ends_with("write `^/healthz`"),
        "{said}"
    );
    assert!(
        warnings[2].contains("warning: authorization.rules[0].match.paths[0]: ")
            && warnings[2].contains("without its query string"),
        "{said}"
    );
    // A leading `*` is no regex at all: the error, and the glob's regex beside it.
    let invalid = temp_file(
        "invalid-glob.yaml",
        "jwtRules:\n- issuer: https://dex.example.com\n  jwksUri: https://dex.example.com/keys\nskipPaths: ['*.css']\n",
    );
    let out = kfauth(&["check", invalid.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("error: invalid pluginConfig at `skipPaths[0]`"),
        "{said}"
    );
    assert!(
        said.contains("warning: skipPaths[0]: `*.css` looks like an Istio path glob"),
        "{said}"
    );
    assert!(said.contains("write `^.*\\.css$`"), "{said}");
}

#[test]
fn every_command_has_help_and_usage_errors_exit_2() {
    for args in [
        &["--help"][..],
        &["help"],
        &["check", "--help"],
        &["from-istio", "--help"],
        &["token", "--help"],
        &["jwks", "--help"],
        &["help", "token"],
    ] {
        let out = kfauth(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("Usage: kfauth"), "{args:?}");
    }
    let key = temp_file("usage-key.pem", &ES256KeyPair::generate().to_pem().unwrap());
    let key = key.to_str().unwrap();
    for args in [
        &[][..],
        &["frobnicate"],
        &["check"],
        &["check", "a.yaml", "b.yaml"],
        &["from-istio"],
        &["token", "--issuer", "x"],
        &["token", "--key", key],
        &["token", "--key", key, "--issuer", "x", "--alg", "HS256"],
        &["token", "--key", key, "--issuer", "x", "--ttl", "soon"],
        &["token", "--key", key, "--issuer", "x", "--claim", "novalue"],
        &["token", "--key", key, "--issuer", "x", "--claim", "iss=y"],
        &[
            "token", "--key", key, "--issuer", "x", "--ttl", "1h", "--claim", "exp=1",
        ],
        &["token", "--key", key, "--issuer", "x", "--bogus"],
        &["jwks"],
    ] {
        let out = kfauth(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("--help"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Problems with the inputs exit 1, naming the file and the key's format.
    let public = temp_file(
        "public.pem",
        &ES256KeyPair::generate().public_key().to_pem().unwrap(),
    );
    let out = kfauth(&["token", "--key", public.to_str().unwrap(), "--issuer", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PUBLIC KEY"),
        "{}",
        text(&out.stderr)
    );
    let out = kfauth(&["token", "--key", key, "--issuer", "x", "--alg", "RS256"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does not fit the EC P-256 key"));
}

/// Kubeflow's manifests in ../shared/data; `None` (and `test` reported
/// skipped by name) without them.
fn kubeflow_manifests(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/kubeflow-manifests");
    if !root.is_dir() {
        eprintln!("SKIPPED {test}: ../shared/data absent");
        return None;
    }
    Some(root)
}

/// `kfauth from-istio` over `files`.
fn from_istio(files: &[PathBuf]) -> Output {
    let args: Vec<&str> = std::iter::once("from-istio")
        .chain(files.iter().map(|path| path.to_str().unwrap()))
        .collect();
    kfauth(&args)
}

/// The pluginConfig `from-istio` printed, its issuers in order, and
/// `kfauth check` accepts it.
fn translated(out: &Output, name: &str) -> (serde_json::Value, Vec<String>) {
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issuers = config["jwtRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["issuer"].as_str().unwrap().to_string())
        .collect();
    let checked = check(name, &config);
    assert!(checked.status.success(), "{}", text(&checked.stdout));
    (config, issuers)
}

#[test]
fn from_istio_translates_kubeflows_real_manifests() {
    let Some(root) = kubeflow_manifests("from_istio_translates_kubeflows_real_manifests") else {
        return;
    };
    let rendered = root.join("rendered/m2m-dex-and-kind.auth-policies.yaml");
    let out = from_istio(&[rendered]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (config, issuers) = translated(&out, "translated");
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
}

const LOCAL_GATEWAY: &str = "common/istio/cluster-local-gateway/overlays/m2m-auth";

#[test]
fn from_istio_refuses_objects_of_two_gateways_in_one_run() {
    let Some(root) = kubeflow_manifests("from_istio_refuses_objects_of_two_gateways_in_one_run")
    else {
        return;
    };
    let local = root.join(LOCAL_GATEWAY);
    let files = [
        root.join("rendered/m2m-dex-and-kind.auth-policies.yaml"),
        local.join("cluster-local-gateway-requestauthentication.yaml"),
        local.join("cluster-local-gateway-authorizationpolicy-deny.yaml"),
    ];
    let out = from_istio(&files);
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
    let Some(root) =
        kubeflow_manifests("from_istio_translates_the_local_gateway_and_says_where_it_goes")
    else {
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
    let out = from_istio(&files);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let (config, issuers) = translated(&out, "local-gateway");
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
            "^.*/healthz$",
            "^.*/ready$"
        ])
    );
    assert!(said.contains("note: the WasmPlugin with this pluginConfig goes where RequestAuthentication cluster-local-gateway-jwt applied: namespace istio-system, selector matchLabels {app: cluster-local-gateway, istio: cluster-local-gateway}"), "{said}");
    // The ALLOW policy stays in Istio, and the tool says so.
    assert!(
        said.contains("warning: AuthorizationPolicy cluster-local-gateway ("),
        "{said}"
    );
    assert!(!said.contains("error"), "{said}");
}

#[test]
fn from_istio_refuses_unrendered_placeholders_and_a_second_rule_for_an_issuer() {
    let Some(root) = kubeflow_manifests(
        "from_istio_refuses_unrendered_placeholders_and_a_second_rule_for_an_issuer",
    ) else {
        return;
    };
    // Kubeflow's m2m component before its overlay sets the issuer.
    let component =
        root.join("common/oauth2-proxy/components/istio-m2m/requestauthentication.yaml");
    let out = from_istio(&[component]);
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
    let out = from_istio(&[rendered, copy]);
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
    assert!(text(&out.stderr).contains("--key <KEY.pem>"));
}

fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// What kfauth's own verifier says of `token` with `jwks` as a rule's inline key set.
fn kfauth_verifies(jwks: &str, token: &str) -> Result<(), Reason> {
    let config = Config::parse(
        serde_json::json!({"jwtRules": [{"issuer": "https://idp.example.com", "jwks": jwks}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let rule = &config.rules[0];
    let KeySource::Inline(keys) = &rule.keys else {
        panic!("inline keys")
    };
    let unverified = decode(token)?;
    verify(
        token,
        &unverified,
        rule,
        keys,
        now(),
        std::time::Duration::from_secs(60),
    )
    .map_err(Reason::from)
}

#[test]
fn tokens_from_sec1_and_pkcs8_keys_verify_against_the_printed_jwks() {
    let es256 = ES256KeyPair::generate();
    let sec1 = p256::SecretKey::from_slice(&es256.to_bytes())
        .unwrap()
        .to_sec1_pem(Default::default())
        .unwrap();
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let keys = [
        ("sec1.pem", sec1.to_string(), "ES256"),
        (
            "es384.pem",
            ES384KeyPair::generate().to_pem().unwrap(),
            "ES384",
        ),
        (
            "rsa.pem",
            RS256KeyPair::generate(2048).unwrap().to_pem().unwrap(),
            "PS256",
        ),
    ];
    for (name, pem, alg) in keys {
        let file = temp_file(name, &pem);
        let key = ["--key", file.to_str().unwrap(), "--kid", "k-1"];
        let jwks_out = kfauth(&[&["jwks", "--alg", alg][..], &key].concat());
        assert!(
            jwks_out.status.success(),
            "{name}: {}",
            text(&jwks_out.stderr)
        );
        let jwks = text(&jwks_out.stdout);
        let document: serde_json::Value = serde_json::from_str(&jwks).unwrap();
        assert_eq!(document["keys"][0]["kid"], "k-1", "{jwks}");
        assert_eq!(document["keys"][0]["alg"], alg, "{jwks}");
        assert!(
            document["keys"][0].get("d").is_none(),
            "no private part: {jwks}"
        );

        let mint = |extra: &[&str]| {
            let out = kfauth(
                &[
                    &["token", "--alg", alg, "--issuer", "https://idp.example.com"][..],
                    &key,
                    extra,
                ]
                .concat(),
            );
            assert!(out.status.success(), "{name}: {}", text(&out.stderr));
            text(&out.stdout).trim().to_string()
        };
        let token = mint(&[]);
        assert_eq!(kfauth_verifies(&jwks, &token), Ok(()), "{name}");
        // `--claim exp=` is honoured: an expired token, for testing the gateway.
        let expired = mint(&["--claim", "exp=1000"]);
        assert_eq!(
            kfauth_verifies(&jwks, &expired),
            Err(Reason::TokenExpired),
            "{name}"
        );
        let later = now().as_secs() + 3600;
        let not_yet = mint(&["--claim", &format!("nbf={later}")]);
        assert_eq!(
            kfauth_verifies(&jwks, &not_yet),
            Err(Reason::TokenNotYetValid)
        );
    }
    // Without --alg, the key's type decides: SEC1 P-256 signs ES256.
    let file = temp_file("sec1-default.pem", &sec1);
    let out = kfauth(&["token", "--key", file.to_str().unwrap(), "--issuer", "x"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    let claims = es256
        .public_key()
        .verify_token::<NoCustomClaims>(&token, None)
        .unwrap();
    assert_eq!(claims.issuer.as_deref(), Some("x"));
}
