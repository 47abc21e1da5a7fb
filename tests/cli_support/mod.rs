//! Running the `kfauth` command-line tool, for the suites that test it
//! (`cli.rs`, `istio_fields.rs`).

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `kfauth` with `args`.
pub fn kfauth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kfauth"))
        .args(args)
        .output()
        .unwrap()
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `content` to a file `name` in this test process's temporary folder.
pub fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kfauth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    path
}

/// `kfauth check` on `config` (a pluginConfig), written to `{name}.json`.
pub fn check(name: &str, config: &serde_json::Value) -> Output {
    let path = temp_file(&format!("{name}.json"), &config.to_string());
    kfauth(&["check", path.to_str().unwrap()])
}
