//! `oci-image [--image-version V] [--tag T] MODULE.wasm OUT_DIR`: writes the
//! module as an OCI image layout (image-spec `image-layout.md`: `oci-layout`,
//! `index.json`, `blobs/sha256/...`) that Istio's WasmPlugin pulls with
//! `url: oci://...`, without a container engine. `skopeo copy
//! oci:OUT_DIR:TAG docker://REGISTRY/kfauth:TAG` pushes it unchanged (`make push`).
//!
//! The format is the "compat" variant of the Wasm image spec
//! (solo-io/wasm `spec-compat.md`): a plain OCI image whose single layer,
//! `application/vnd.oci.image.layer.v1.tar+gzip`, is a tar holding the module
//! as `plugin.wasm`. Istio's fetcher, istio/istio `pkg/wasm/imagefetcher.go`
//! (`PrepareFetch`), reads an OCI manifest that way in
//! `extractOCIStandardImage`: the last layer must have exactly that media type,
//! is gunzipped and untarred, and the entry whose base name is `plugin.wasm` is
//! the module (`extractWasmPluginBinary`). Its other OCI form, the "oci"
//! artifact variant (`extractOCIArtifactImage`), wants exactly two layers, one of
//! them `application/vnd.module.wasm.content.layer.v1+wasm`; the compat image is
//! an ordinary image that every registry and copier handles, so it is the one
//! written here. Istio compares `spec.sha256` with the manifest digest
//! (`img.Digest()`), which this tool prints.
//!
//! Reproducible: the same module (and version) gives the same bytes, hence the
//! same manifest digest. Nothing depends on the clock, the user or the file
//! system: the tar entry has mtime 0, uid/gid 0, mode 0644 and no owner names;
//! the gzip header has mtime 0 and no file name; the config has no `created`;
//! JSON keys are sorted (serde_json's map). The compressed bytes are those of the
//! flate2/miniz_oxide versions in Cargo.lock.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use flate2::{write::GzEncoder, Compression};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The layer media type Istio's `extractOCIStandardImage` requires (`types.OCILayer`).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file Istio's `extractWasmPluginBinary` looks for in the layer.
pub const WASM_FILE_NAME: &str = "plugin.wasm";

const TITLE: &str = "kfauth";
const DESCRIPTION: &str =
    "In-proxy JWT authentication and Kubernetes authorization for Kubeflow (Proxy-Wasm)";
const LICENSES: &str = "Apache-2.0";

/// The image's blobs, ready to be written.
struct Image {
    /// Hex sha256 of the module itself (`spec.sha256` for `https://` urls).
    module_sha256: String,
    /// (hex sha256, bytes) of the layer, the config and the manifest.
    blobs: Vec<(String, Vec<u8>)>,
    /// Hex sha256 of the manifest (`spec.sha256` for `oci://` urls).
    manifest_digest: String,
    manifest_size: usize,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A tar archive holding `module` as `plugin.wasm`, with nothing from the
/// build machine in its header.
fn layer_tar(module: &[u8]) -> Result<Vec<u8>, String> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(WASM_FILE_NAME)
        .map_err(|e| format!("tar header: {e}"))?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, module)
        .map_err(|e| format!("tar: {e}"))?;
    builder.into_inner().map_err(|e| format!("tar: {e}"))
}

/// gzip with a fixed header: mtime 0, no name, OS "unknown".
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder.write_all(bytes).map_err(|e| format!("gzip: {e}"))?;
    GzEncoder::finish(encoder).map_err(|e| format!("gzip: {e}"))
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": format!("sha256:{digest}"), "size": size})
}

/// Labels (config) and annotations (manifest) alike: the pre-defined
/// `org.opencontainers.image.*` keys (image-spec `annotations.md`) and the
/// Wasm image spec's variant marker.
fn labels(version: Option<&str>) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert("org.opencontainers.image.title".into(), TITLE.into());
    labels.insert(
        "org.opencontainers.image.description".into(),
        DESCRIPTION.into(),
    );
    labels.insert("org.opencontainers.image.licenses".into(), LICENSES.into());
    if let Some(version) = version {
        labels.insert("org.opencontainers.image.version".into(), version.into());
    }
    labels.insert("module.wasm.image/variant".into(), "compat".into());
    labels
}

fn build(module: &[u8], version: Option<&str>) -> Result<Image, String> {
    // Istio refuses anything else after the download (cache.go, isValidWasmBinary).
    if module.len() < 8 || !module.starts_with(b"\0asm") {
        return Err("not a WebAssembly module (no \\0asm header)".into());
    }
    let tar = layer_tar(module)?;
    let layer = gzip(&tar)?;
    let layer_digest = sha256_hex(&layer);
    let config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Labels": labels(version)},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
    });
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_digest = sha256_hex(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, &config_digest, config.len()),
        "layers": [descriptor(LAYER_MEDIA_TYPE, &layer_digest, layer.len())],
        "annotations": labels(version),
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let manifest_digest = sha256_hex(&manifest);
    Ok(Image {
        module_sha256: sha256_hex(module),
        manifest_size: manifest.len(),
        blobs: vec![
            (layer_digest, layer),
            (config_digest, config),
            (manifest_digest.clone(), manifest),
        ],
        manifest_digest,
    })
}

/// Writes the layout to `out`, replacing an earlier layout there (and
/// refusing to replace anything else).
fn write_layout(image: &Image, out: &Path, tag: &str) -> Result<(), String> {
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    if out.exists() {
        let is_layout = out.join("oci-layout").is_file();
        let is_empty = fs::read_dir(out).map_err(|e| io(out, e))?.next().is_none();
        if !is_layout && !is_empty {
            return Err(format!(
                "{} exists and is not an OCI image layout; not replacing it",
                out.display()
            ));
        }
        fs::remove_dir_all(out).map_err(|e| io(out, e))?;
    }
    let blobs = out.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| io(&blobs, e))?;
    for (digest, bytes) in &image.blobs {
        let path = blobs.join(digest);
        fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    let mut manifest = descriptor(
        MANIFEST_MEDIA_TYPE,
        &image.manifest_digest,
        image.manifest_size,
    );
    manifest["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [manifest],
    });
    let files = [
        ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ];
    for (name, value) in files {
        let path = out.join(name);
        let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

struct Args {
    module: PathBuf,
    out: PathBuf,
    version: Option<String>,
    tag: Option<String>,
}

const USAGE: &str = "usage: oci-image [--image-version VERSION] [--tag TAG] MODULE.wasm OUT_DIR";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let (mut version, mut tag, mut paths) = (None, None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--image-version" => version = Some(args.next().ok_or(USAGE)?),
            "--tag" => tag = Some(args.next().ok_or(USAGE)?),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}\n{USAGE}")),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([module, out]) => Ok(Args {
            module,
            out,
            version,
            tag,
        }),
        Err(_) => Err(USAGE.into()),
    }
}

fn run(args: &Args) -> Result<String, String> {
    let module = fs::read(&args.module).map_err(|e| format!("{}: {e}", args.module.display()))?;
    let image = build(&module, args.version.as_deref())
        .map_err(|e| format!("{}: {e}", args.module.display()))?;
    let tag = args
        .tag
        .as_deref()
        .or(args.version.as_deref())
        .unwrap_or("latest");
    write_layout(&image, &args.out, tag)?;
    let out = args.out.display();
    Ok(format!(
        "wrote OCI image layout {out} (skopeo: oci:{out}:{tag})\n\
         manifest sha256:{manifest}\n  \
           WasmPlugin url: oci://REGISTRY/kfauth:TAG -> spec.sha256: {manifest}\n\
         module sha256:{module}\n  \
           WasmPlugin url: https://HOST/kfauth.wasm -> spec.sha256: {module} (file:// urls are not checked)\n",
        manifest = image.manifest_digest,
        module = image.module_sha256,
    ))
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)).and_then(|args| run(&args)) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("oci-image: {problem}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 a tiny module body";

    fn blob<'a>(image: &'a Image, digest: &str) -> &'a [u8] {
        image
            .blobs
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_default()
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    fn hex_of(descriptor: &Value) -> String {
        descriptor["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn the_layer_is_a_gzipped_tar_holding_plugin_wasm() {
        let image = build(MODULE, Some("1.2.3")).expect("build");
        let manifest = json_of(blob(&image, &image.manifest_digest));
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
        let layer = blob(&image, &hex_of(&layers[0]));
        assert_eq!(layers[0]["size"], layer.len());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer)
            .read_to_end(&mut tar)
            .expect("gunzip");
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().expect("tar");
        let mut entry = entries.next().expect("one entry").expect("entry");
        assert_eq!(entry.path().expect("path").to_str(), Some(WASM_FILE_NAME));
        assert_eq!(entry.header().mtime().ok(), Some(0));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        assert_eq!(content, MODULE);
        drop(entry);
        assert!(entries.next().is_none());
        let config = json_of(blob(&image, &hex_of(&manifest["config"])));
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&tar))
        );
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.version"],
            "1.2.3"
        );
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.title"],
            "kfauth"
        );
        assert_eq!(image.module_sha256, sha256_hex(MODULE));
    }

    #[test]
    fn the_same_module_gives_the_same_digest_and_another_module_another() {
        let first = build(MODULE, Some("1")).expect("build");
        let again = build(MODULE, Some("1")).expect("build");
        assert_eq!(first.manifest_digest, again.manifest_digest);
        let mut tampered = MODULE.to_vec();
        tampered[10] ^= 1;
        let other = build(&tampered, Some("1")).expect("build");
        assert_ne!(first.manifest_digest, other.manifest_digest);
    }

    #[test]
    fn what_is_not_wasm_is_refused() {
        assert!(build(b"#!/bin/sh\necho\n", None).is_err());
        assert!(build(b"\0asm", None).is_err());
    }

    #[test]
    fn the_layout_is_written_and_only_a_layout_is_replaced() {
        let dir = std::env::temp_dir().join(format!("oci-image-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let image = build(MODULE, None).expect("build");
        let out = dir.join("layout");
        write_layout(&image, &out, "t").expect("write");
        write_layout(&image, &out, "t").expect("rewrite");
        let index = json_of(&fs::read(out.join("index.json")).unwrap_or_default());
        assert_eq!(
            index["manifests"][0]["digest"],
            format!("sha256:{}", image.manifest_digest)
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "t"
        );
        for (digest, bytes) in &image.blobs {
            let written = fs::read(out.join("blobs/sha256").join(digest)).unwrap_or_default();
            assert_eq!(&written, bytes);
        }
        let other = dir.join("other");
        fs::create_dir_all(&other).expect("mkdir");
        fs::write(other.join("keep"), b"x").expect("write");
        assert!(write_layout(&image, &other, "t").is_err());
        assert!(other.join("keep").is_file());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        let parsed = args(&["--image-version", "0.1.0", "m.wasm", "out"]).expect("parse");
        assert_eq!(parsed.version.as_deref(), Some("0.1.0"));
        assert_eq!(parsed.out, PathBuf::from("out"));
        assert!(args(&["m.wasm"]).is_err());
        assert!(args(&["--bogus", "m.wasm", "out"]).is_err());
    }
}
