//! The three ways Istio's WasmPlugin gets kfauth.wasm, each end to end:
//! - `url: oci://...`: the command `make image` runs (tools/oci-image) writes an
//!   OCI image layout; `skopeo copy` pushes it to a real distribution registry
//!   (Debian's `docker-registry`, on loopback), which then holds a manifest whose
//!   sha256 is the digest `make image` printed (skopeo's digest file, the raw
//!   manifest, the registry's `Docker-Content-Digest` and the tag all say so).
//!   Pulled back by digest, the manifest, config and layer have the media types
//!   Istio's fetcher requires (istio/istio `pkg/wasm/imagefetcher.go`,
//!   `extractOCIStandardImage`: an OCI manifest whose last layer is
//!   `application/vnd.oci.image.layer.v1.tar+gzip`, a tar holding
//!   `plugin.wasm`), and the module extracted from the layer is byte for byte
//!   kfauth.wasm;
//! - `url: file://...` (Istio: `code.local.filename`, `pilot/pkg/model/extensions.go`
//!   `buildDataSource`): that pulled module, as a file, serves kfauth in Envoy;
//! - `url: https://...` (a download checked against `spec.sha256`): Envoy
//!   fetching the module over HTTP (`code.remote`, `http_uri` + `sha256`) serves
//!   kfauth with the module sha256 `make image` printed, and with another sha256
//!   (the manifest digest: the `oci://` value put in by mistake) refuses the
//!   download ("data is invalid"), the plugin fails to load, and the fail-closed
//!   filter answers 503 without kfauth ever running;
//! - reproducible: the same module gives the same layout, byte for byte; a
//!   one-byte change gives another digest.
//!
//! Without skopeo or docker-registry the registry test reports itself skipped
//! by name; `make test` installs both (`make image-tools`).

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kfauth_testkit::apiserver::conformance::report_skipped;
use kfauth_testkit::bootstrap::{repo_root, wasm_path, Cluster, EnvoySettings, RemoteCode};
use kfauth_testkit::client::{self, HttpResponse};
use kfauth_testkit::listener::free_port;
use kfauth_testkit::plugin_config::{claims, inline_rule, with_rules, ISSUER};
use kfauth_testkit::serve::{HttpServer, Reply};
use kfauth_testkit::{expect, Alg, EchoServer, Envoy, Gateway, Idp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What Istio's fetcher requires of an `oci://` image in the form kfauth
/// ships (istio/istio `pkg/wasm/imagefetcher.go`): an OCI (not Docker)
/// manifest, so that `extractOCIStandardImage` reads it; its last layer of
/// type `types.OCILayer`; in that tar.gz, an entry whose base name is
/// `plugin.wasm`. Written out here rather than taken from tools/oci-image, so
/// the test does not check the tool against itself.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const WASM_IN_LAYER: &str = "plugin.wasm";

/// `make image` passes kfauth's version; the layout's tag is that version.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A fresh directory under the system temp dir, removed when dropped
/// (kept when the test fails, for inspection).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kfauth-oci-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn join(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// What `make image` printed.
struct Printed {
    /// Hex of the manifest digest: `spec.sha256` for `oci://`.
    manifest: String,
    /// Hex sha256 of the module: `spec.sha256` for `https://`.
    module: String,
}

/// Runs the command `make image` runs, on `module`, writing the layout to `out`.
fn make_image(module: &Path, out: &Path) -> Printed {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = Command::new(cargo)
        .current_dir(repo_root())
        .args(["run", "--quiet", "--release", "-p", "oci-image", "--"])
        .args(["--image-version", VERSION])
        .arg(module)
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "oci-image failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in: {stdout}"))
            .to_string()
    };
    let printed = Printed {
        manifest: field("manifest sha256:"),
        module: field("module sha256:"),
    };
    assert!(
        stdout.contains(&format!(
            "url: oci://REGISTRY/kfauth:TAG -> spec.sha256: {}",
            printed.manifest
        )) && stdout.contains(&format!(
            "url: https://HOST/kfauth.wasm -> spec.sha256: {}",
            printed.module
        )),
        "which digest goes where: {stdout}"
    );
    printed
}

/// Whether `tool` is on `PATH`.
fn installed(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A distribution v2 registry on `127.0.0.1`, storing in a temp directory;
/// killed when dropped.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        fs::create_dir_all(dir).unwrap();
        // A port picked now may be taken before the registry binds it: retry.
        for _attempt in 0..3 {
            let port = free_port();
            let config = dir.join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: 127.0.0.1:{port}\n",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            let log = fs::File::create(dir.join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut registry = Registry { child, port };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = registry.child.try_wait() {
                    break;
                }
                let up = client::send("GET", &registry.url("/v2/"), &[], None);
                if matches!(up, Ok(r) if r.status == 200) {
                    return registry;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "docker-registry did not answer /v2/: {}",
            fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
        );
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn digest_hex(descriptor: &Value) -> String {
    descriptor["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .unwrap_or_else(|| panic!("not a sha256 descriptor: {descriptor}"))
        .to_string()
}

/// A blob of an OCI layout, checked against its digest.
fn blob(layout: &Path, hex: &str) -> Vec<u8> {
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        hex,
        "blob {hex} of {}",
        layout.display()
    );
    bytes
}

fn plugin_config() -> Value {
    with_rules(vec![inline_rule(ISSUER, Idp::shared())], json!({}))
}

/// kfauth is the one answering: a malformed token gets its 401
/// `token_malformed`, a valid one reaches the upstream with the identity header.
fn kfauth_answers(get: impl Fn(&str, &[(&str, &str)]) -> HttpResponse) {
    expect::rejected(
        &get("/", &[("authorization", "Bearer not-a-token")]),
        "token_malformed",
    );
    let token = Idp::shared().sign(Alg::RS256, &claims("alice@example.com", &[]));
    let seen = expect::allowed(&get(
        "/echo",
        &[("authorization", &format!("Bearer {token}"))],
    ));
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
}

#[test]
fn the_image_goes_through_a_registry_unchanged_and_its_module_serves_from_a_file() {
    let test = "the_image_goes_through_a_registry_unchanged_and_its_module_serves_from_a_file";
    for tool in ["skopeo", "docker-registry"] {
        if !installed(tool) {
            report_skipped(test, &format!("{tool} not installed"));
            return;
        }
    }
    let scratch = Scratch::new("registry");
    let module = fs::read(wasm_path()).unwrap();
    let layout = scratch.join("layout");
    let printed = make_image(&wasm_path(), &layout);
    assert_eq!(printed.module, sha256_hex(&module));
    let local_manifest = blob(&layout, &printed.manifest);

    let registry = Registry::start(&scratch.join("registry"));
    let tagged = format!("docker://{}/kfauth:e2e", registry.host());
    let digest_file = scratch.join("pushed.digest");
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--digestfile",
            digest_file.to_str().unwrap(),
            &format!("oci:{}:{VERSION}", layout.display()),
            &tagged,
        ],
    );
    let expected = format!("sha256:{}", printed.manifest);
    assert_eq!(fs::read_to_string(&digest_file).unwrap().trim(), expected);

    // The manifest as the registry serves it: the very bytes of the layout.
    let raw = run(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &tagged],
    )
    .stdout;
    assert_eq!(sha256_hex(&raw), printed.manifest);
    assert_eq!(raw, local_manifest);
    let inspected: Value =
        serde_json::from_slice(&run("skopeo", &["inspect", "--tls-verify=false", &tagged]).stdout)
            .unwrap();
    assert_eq!(inspected["Digest"], expected.as_str(), "{inspected}");
    assert_eq!(
        inspected["Labels"]["org.opencontainers.image.title"],
        "kfauth"
    );
    // The registry's own word: the tag resolves to the digest, and so does the digest.
    for reference in ["e2e", expected.as_str()] {
        let response = client::get(
            &registry.url(&format!("/v2/kfauth/manifests/{reference}")),
            &[("accept", OCI_MANIFEST)],
        );
        assert_eq!(response.status, 200, "{reference}: {}", response.body);
        assert_eq!(
            response.header("docker-content-digest"),
            Some(expected.as_str())
        );
        assert_eq!(response.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(sha256_hex(response.body.as_bytes()), printed.manifest);
    }

    // Pulled back by digest, as Istio pulls it.
    let pulled = scratch.join("pulled");
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/kfauth@{expected}", registry.host()),
            &format!("oci:{}:pulled", pulled.display()),
        ],
    );
    drop(registry);
    let index = json_file(&pulled.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "pulled")
        .unwrap_or_else(|| panic!("no `pulled` in {index}"));
    assert_eq!(digest_hex(entry), printed.manifest);
    let manifest: Value = serde_json::from_slice(&blob(&pulled, &printed.manifest)).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
    assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG, "{manifest}");
    let config: Value =
        serde_json::from_slice(&blob(&pulled, &digest_hex(&manifest["config"]))).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = layers.last().unwrap();
    assert_eq!(layer["mediaType"], OCI_LAYER_TAR_GZIP, "{manifest}");
    let layer_bytes = blob(&pulled, &digest_hex(layer));
    assert_eq!(layer["size"], layer_bytes.len());

    // The layer with the system's tar: one entry, plugin.wasm, the module itself.
    let layer_file = pulled.join("blobs/sha256").join(digest_hex(layer));
    let listing = run("tar", &["-tvzf", layer_file.to_str().unwrap()]).stdout;
    let listing = String::from_utf8(listing).unwrap();
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert!(
        listing.trim_end().ends_with(&format!(" {WASM_IN_LAYER}")),
        "{listing}"
    );
    // Istio's own check after the download (pkg/wasm/cache.go, isValidWasmBinary).
    let wasm_dir = scratch.join("var/local/lib/wasm");
    fs::create_dir_all(&wasm_dir).unwrap();
    run(
        "tar",
        &[
            "-xzf",
            layer_file.to_str().unwrap(),
            "-C",
            wasm_dir.to_str().unwrap(),
        ],
    );
    let extracted = wasm_dir.join("kfauth.wasm");
    fs::rename(wasm_dir.join(WASM_IN_LAYER), &extracted).unwrap();
    let extracted_bytes = fs::read(&extracted).unwrap();
    assert!(extracted_bytes.starts_with(b"\0asm"));
    assert!(
        extracted_bytes == module,
        "the pulled module differs from kfauth.wasm"
    );
    // The config's diff_id is the sha256 of the uncompressed tar, as image-spec wants.
    let diff_id = config["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let tar = run("gzip", &["-dc", layer_file.to_str().unwrap()]).stdout;
    assert_eq!(diff_id, format!("sha256:{}", sha256_hex(&tar)));

    // file:///var/local/lib/wasm/kfauth.wasm: Istio hands Envoy code.local.filename.
    let gateway = Gateway::start_with(plugin_config(), |settings| EnvoySettings {
        wasm_path: extracted.display().to_string(),
        ..settings
    });
    kfauth_answers(|path, headers| gateway.get(path, headers));
}

#[test]
fn the_same_module_gives_the_same_image_and_a_changed_one_another() {
    let scratch = Scratch::new("reproducible");
    let first = make_image(&wasm_path(), &scratch.join("first"));
    let second = make_image(&wasm_path(), &scratch.join("second"));
    assert_eq!(first.manifest, second.manifest);
    assert_eq!(first.module, second.module);
    for file in ["oci-layout", "index.json"] {
        assert_eq!(
            fs::read(scratch.join("first").join(file)).unwrap(),
            fs::read(scratch.join("second").join(file)).unwrap(),
            "{file}"
        );
    }
    let mut blobs: Vec<String> = fs::read_dir(scratch.join("first/blobs/sha256"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    assert_eq!(blobs.len(), 3, "layer, config, manifest: {blobs:?}");
    for hex in &blobs {
        assert_eq!(
            blob(&scratch.join("first"), hex),
            blob(&scratch.join("second"), hex)
        );
    }

    // One byte changed in the middle of the module (still a wasm header).
    let mut tampered = fs::read(wasm_path()).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let tampered_path = scratch.join("tampered.wasm");
    fs::write(&tampered_path, &tampered).unwrap();
    let other = make_image(&tampered_path, &scratch.join("tampered"));
    assert_ne!(other.manifest, first.manifest);
    assert_ne!(other.module, first.module);
    assert_eq!(other.module, sha256_hex(&tampered));
}

#[test]
fn envoy_fetches_the_module_by_url_and_refuses_it_with_another_sha256() {
    let scratch = Scratch::new("remote");
    let printed = make_image(&wasm_path(), &scratch.join("layout"));
    let module = fs::read(wasm_path()).unwrap();
    let downloads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&downloads);
    let server = HttpServer::start("127.0.0.1:0", move |request| {
        if request.path() != "/kfauth.wasm" {
            return Reply::text(404, "not found");
        }
        counter.fetch_add(1, Ordering::SeqCst);
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/wasm".into())],
            body: module.clone(),
        }
    })
    .unwrap();
    let echo = EchoServer::start();
    let settings = EnvoySettings::for_test(plugin_config(), echo.port())
        .with_cluster(Cluster::loopback("wasm_http", server.port()));
    let uri = server.url("/kfauth.wasm");

    let remote = |sha256: &str| RemoteCode {
        uri: uri.clone(),
        cluster: "wasm_http".into(),
        sha256: sha256.into(),
    };

    // The sha256 `make image` printed for https:// urls.
    let envoy = Envoy::start(&settings.clone().with_remote_code(remote(&printed.module)));
    assert!(downloads.load(Ordering::SeqCst) >= 1);
    kfauth_answers(|path, headers| envoy.get(path, headers));
    drop(envoy);

    // The manifest digest instead (the oci:// value): Envoy downloads the
    // module, finds another sha256, gives up after its retry, and the filter,
    // failing closed, answers 503 itself (the listener never serves below
    // 500); kfauth never runs.
    let before = downloads.load(Ordering::SeqCst);
    let logs = Envoy::start_expect_rejected(
        &settings
            .with_concurrency(1)
            .with_args(&["--component-log-level", "config:debug"])
            .with_remote_code(remote(&printed.manifest)),
    );
    assert!(
        downloads.load(Ordering::SeqCst) > before,
        "Envoy did not download the module"
    );
    for line in [
        format!("fetch remote data [uri = {uri}]: data is invalid"),
        "Plugin kfauth failed to load".to_string(),
    ] {
        assert!(logs.contains(&line), "Envoy's log lacks `{line}`");
    }
    assert!(
        !logs.contains("wasm log kfauth"),
        "kfauth ran although its sha256 did not match"
    );
}
