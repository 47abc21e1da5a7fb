//! `keep-exports FILE.wasm`: rewrites the module's export section (WebAssembly
//! core spec, binary format §5.5.10) to keep only the exports kfauth uses.
//!
//! The proxy-wasm Rust SDK exports every `proxy_on_*` callback, and Envoy calls
//! each one a module exports: for every request `on_response_headers`,
//! `on_response_body` (per chunk), `on_request_body` (per chunk) and `on_log`,
//! each a VM entry that does nothing for kfauth, and `on_done`, whose work
//! kfauth does when the context is deleted (`Drop`), one VM entry later. Envoy skips a callback the
//! module does not export, so dropping them removes those entries. Nothing else
//! in the module changes (exports are referenced by no other section); running
//! it twice is harmless.

use std::process::ExitCode;

/// What Envoy must still be able to call: the ABI marker, memory, VM and plugin
/// start, per-request context creation and deletion, request headers, HTTP
/// callout answers and the root tick. A new callback in `src/host/` must be added here.
const KEPT: &[&str] = &[
    "memory",
    "_initialize",
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_request_headers",
    "proxy_on_delete",
    "proxy_on_http_call_response",
    "proxy_on_tick",
];

const EXPORT_SECTION: u8 = 7;

fn read_leb(bytes: &[u8], at: &mut usize) -> Result<usize, String> {
    let mut value: usize = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at).ok_or("truncated LEB128")?;
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("LEB128 too long".into())
}

fn write_leb(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The export section's body with only `KEPT` names, and the names dropped.
fn filter_exports(body: &[u8]) -> Result<(Vec<u8>, Vec<String>), String> {
    let mut found = Vec::new();
    let mut at = 0;
    let count = read_leb(body, &mut at)?;
    let mut kept = Vec::new();
    let mut kept_count = 0;
    let mut dropped = Vec::new();
    for _ in 0..count {
        let start = at;
        let name_len = read_leb(body, &mut at)?;
        let name = body.get(at..at + name_len).ok_or("truncated export name")?;
        let name = String::from_utf8_lossy(name).into_owned();
        at += name_len + 1; // name, then the export kind byte
        read_leb(body, &mut at)?; // the exported index
        let entry = body.get(start..at).ok_or("truncated export")?;
        if KEPT.contains(&name.as_str()) {
            kept.extend_from_slice(entry);
            kept_count += 1;
            found.push(name);
        } else {
            dropped.push(name);
        }
    }
    let missing: Vec<_> = KEPT
        .iter()
        .filter(|name| !found.iter().any(|found| found == *name))
        .collect();
    if !missing.is_empty() {
        return Err(format!("the module does not export {missing:?}"));
    }
    let mut section = Vec::new();
    write_leb(kept_count, &mut section);
    section.extend(kept);
    Ok((section, dropped))
}

fn rewrite(module: &[u8]) -> Result<(Vec<u8>, Vec<String>), String> {
    let header = module.get(..8).ok_or("not a wasm module")?;
    if header != b"\0asm\x01\0\0\0" {
        return Err("not a wasm module (version 1)".into());
    }
    let mut out = header.to_vec();
    let mut dropped = Vec::new();
    let mut at = 8;
    while at < module.len() {
        let id = module[at];
        let mut body_start = at + 1;
        let size = read_leb(module, &mut body_start)?;
        let body = module
            .get(body_start..body_start + size)
            .ok_or("truncated section")?;
        if id == EXPORT_SECTION {
            let (section, names) = filter_exports(body)?;
            out.push(EXPORT_SECTION);
            write_leb(section.len(), &mut out);
            out.extend(section);
            dropped = names;
        } else {
            out.extend_from_slice(&module[at..body_start + size]);
        }
        at = body_start + size;
    }
    Ok((out, dropped))
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: keep-exports FILE.wasm");
        return ExitCode::FAILURE;
    };
    let result = std::fs::read(&path)
        .map_err(|error| format!("{path}: {error}"))
        .and_then(|module| rewrite(&module))
        .and_then(|(module, dropped)| {
            std::fs::write(&path, module).map_err(|error| format!("{path}: {error}"))?;
            Ok(dropped)
        });
    match result {
        Ok(dropped) if dropped.is_empty() => ExitCode::SUCCESS,
        Ok(dropped) => {
            eprintln!("{path}: dropped unused exports {}", dropped.join(" "));
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("keep-exports: {problem}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with a type, a function, and every kept export plus `proxy_on_log`
    /// (all naming the one function), built by hand.
    fn module() -> Vec<u8> {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([1, 4, 1, 0x60, 0, 0]); // type section: () -> ()
        module.extend([3, 2, 1, 0]); // function section: one function of type 0
        let names: Vec<&str> = KEPT
            .iter()
            .copied()
            .chain(["proxy_on_log", "proxy_on_done"])
            .collect();
        let mut exports = vec![names.len() as u8];
        for name in names {
            exports.push(name.len() as u8);
            exports.extend(name.as_bytes());
            exports.extend([0, 0]); // a function, index 0
        }
        module.push(EXPORT_SECTION);
        write_leb(exports.len(), &mut module);
        module.extend(exports);
        module.extend([10, 4, 1, 2, 0, 0x0b]); // code section: an empty body
        module
    }

    #[test]
    fn keeps_only_the_listed_exports_and_every_other_section() {
        let (rewritten, dropped) = rewrite(&module()).unwrap();
        assert_eq!(
            dropped,
            vec!["proxy_on_log".to_string(), "proxy_on_done".to_string()]
        );
        let text = String::from_utf8_lossy(&rewritten);
        assert!(text.contains("proxy_on_tick") && text.contains("proxy_on_delete"));
        assert!(!text.contains("proxy_on_log") && !text.contains("proxy_on_done"));
        assert!(rewritten.ends_with(&[10, 4, 1, 2, 0, 0x0b]));
        // Idempotent.
        assert_eq!(rewrite(&rewritten).unwrap().0, rewritten);
    }

    #[test]
    fn refuses_what_is_not_a_module() {
        assert!(rewrite(b"hello world").is_err());
        assert!(rewrite(b"\0asm\x01\0\0\0\x07\x09").is_err());
        // A module without one of the callbacks kfauth needs is a build error.
        let without_tick = module()
            .windows(b"proxy_on_tick".len())
            .position(|window| window == b"proxy_on_tick")
            .map(|at| {
                let mut broken = module();
                broken[at + 9] = b'X'; // proxy_on_Xick
                broken
            })
            .unwrap();
        assert!(rewrite(&without_tick)
            .unwrap_err()
            .contains("proxy_on_tick"));
    }
}
