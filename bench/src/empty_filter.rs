//! The empty Proxy-Wasm filter, written as WebAssembly text, and its probes:
//! what any Wasm HTTP filter costs its host, and what one host call adds.
//! `make bench` runs them in Envoy; `make floor` (tools/floor) in Node's V8.

use std::fs;
use std::path::PathBuf;

use kfauth_testkit::bootstrap::repo_root;

use crate::verify_probe::{arguments, wat_string, VerifyCall};

/// Host calls (and one VM entry) whose cost the probe variants measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Probe {
    /// `proxy_get_current_time_nanoseconds`.
    Clock,
    /// `proxy_get_header_map_pairs`: the host copies every request header into
    /// memory it asks the module for (`proxy_on_memory_allocate`, a VM entry).
    HeaderPairs,
    /// `proxy_get_header_map_value("authorization")`, also through the allocator.
    HeaderValue,
    /// `proxy_replace_header_map_value` of one header.
    ReplaceHeader,
    /// `proxy_add_header_map_value` of one header.
    AddHeader,
    /// `proxy_remove_header_map_value` of a header the request lacks.
    RemoveAbsentHeader,
    /// `proxy_increment_metric` of one counter.
    IncrementMetric,
    /// Two more per-request VM entries: `proxy_on_done` and `proxy_on_log`
    /// exported (empty), so Envoy calls them.
    TwoMoreEntries,
    /// No call: about 1 MB of functions nothing calls, for what code size
    /// alone costs in Envoy's memory (compare peak RSS with `WasmEmpty`).
    DeadCode,
    /// `proxy_call_foreign_function("verify_signature")` with one of the
    /// arguments of [`crate::verify_probe`].
    Verify(VerifyCall),
    /// `proxy_set_property("kfauth.decision", "allowed")`: one access-log
    /// field, as kfauth writes up to seven per request (Envoy keeps each as
    /// filter state).
    SetProperty,
    /// kfauth's own host calls for one request, each once, in kfauth's order
    /// and with its arguments, and nothing else: what those calls cost where
    /// kfauth makes them (between Envoy's own work, not eight in a row).
    /// kfauth less this is kfauth's Wasm as Envoy runs it.
    Replay(Replay),
    /// No call: 4,096 steps of a multiply-xor hash over 32 KiB of the module's
    /// memory, once per request. The same steps cost the same in the floor
    /// harness's V8 unless Envoy's V8 runs Wasm code differently: a check
    /// that the harness's figures carry over to Envoy.
    Compute,
    /// No call: 256 functions of 16 additions each (about 64 KiB of machine
    /// code), called once each in a scattered order. Little work, much code:
    /// what running code that is cold again at every request costs, against
    /// the harness, where it stays hot.
    WideCode,
    /// No call: 1,024 loads, one from each of 1,024 cache lines spread over
    /// 1 MiB of the module's memory. Little work, much data.
    WideData,
}

/// Which of kfauth's requests a [`Probe::Replay`] makes the calls of (the
/// floor harness's call trace, `make floor`, lists them for `make bench`'s request).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Replay {
    /// A skipped path (`kfauth-floor`): read the header map (one allocation
    /// entry), read the clock, count the request, set `kfauth.decision`.
    Floor,
    /// A token verified before (`kfauth` in workload (a)): the floor's calls,
    /// `kfauth.user` and `kfauth.issuer` too, the token's header removed and
    /// the two claim headers set.
    Cached,
    /// A token never seen (workload (c)): the cached request's calls with
    /// Envoy's `verify_signature` after the clock (a good RS256-2048
    /// signature, [`crate::verify_probe`]) and its answer's allocation entry.
    Fresh,
    /// Only what native `jwt_authn` does to this request, as any Wasm filter
    /// doing its job must ask for it: read the header map, remove the token's
    /// header, set the two claim headers.
    Minimal,
}

/// Calls per request in a probe: the cost of one is (probe − empty) / this.
pub const PROBE_CALLS: usize = 8;

impl Probe {
    pub const ALL: [Probe; 21] = [
        Probe::Clock,
        Probe::HeaderPairs,
        Probe::HeaderValue,
        Probe::ReplaceHeader,
        Probe::AddHeader,
        Probe::RemoveAbsentHeader,
        Probe::IncrementMetric,
        Probe::TwoMoreEntries,
        Probe::DeadCode,
        Probe::Verify(VerifyCall::NoKey),
        Probe::Verify(VerifyCall::ShortSignature),
        Probe::Verify(VerifyCall::Good),
        Probe::Verify(VerifyCall::GoodOnce),
        Probe::SetProperty,
        Probe::Replay(Replay::Floor),
        Probe::Replay(Replay::Cached),
        Probe::Replay(Replay::Fresh),
        Probe::Replay(Replay::Minimal),
        Probe::Compute,
        Probe::WideCode,
        Probe::WideData,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Probe::Clock => "probe-clock",
            Probe::HeaderPairs => "probe-header-pairs",
            Probe::HeaderValue => "probe-header-value",
            Probe::ReplaceHeader => "probe-replace-header",
            Probe::AddHeader => "probe-add-header",
            Probe::RemoveAbsentHeader => "probe-remove-absent-header",
            Probe::IncrementMetric => "probe-increment-metric",
            Probe::TwoMoreEntries => "probe-two-more-entries",
            Probe::DeadCode => "probe-dead-code",
            Probe::Verify(VerifyCall::NoKey) => "probe-verify-no-key",
            Probe::Verify(VerifyCall::ShortSignature) => "probe-verify-short-signature",
            Probe::Verify(VerifyCall::Good) => "probe-verify-rs256",
            Probe::Verify(VerifyCall::GoodOnce) => "probe-verify-rs256-once",
            Probe::SetProperty => "probe-set-property",
            Probe::Replay(Replay::Floor) => "probe-replay-floor",
            Probe::Replay(Replay::Cached) => "probe-replay-cached",
            Probe::Replay(Replay::Fresh) => "probe-replay-fresh",
            Probe::Replay(Replay::Minimal) => "probe-replay-minimal",
            Probe::Compute => "probe-compute",
            Probe::WideCode => "probe-wide-code",
            Probe::WideData => "probe-wide-data",
        }
    }

    /// How many times per request the probe makes its call (two VM entries
    /// for `TwoMoreEntries`): the cost of one is (probe − empty) / this.
    pub fn calls(self) -> usize {
        match self {
            Probe::TwoMoreEntries => 2,
            Probe::Verify(VerifyCall::GoodOnce)
            | Probe::Replay(_)
            | Probe::Compute
            | Probe::WideCode
            | Probe::WideData => 1,
            _ => PROBE_CALLS,
        }
    }

    /// The WAT statement making the call once (its result dropped), or `None`
    /// for the probe that adds exports instead.
    pub fn call(self) -> Option<String> {
        // Memory layout of the probe module: 16 result pointer, 20 result size,
        // 64 "authorization", 96 "x-kfauth-probe", 160 "verify_signature",
        // 1024 its arguments (their size in the global $arguments), 224
        // "kfauth.decision", 256 "allowed", 8192 what the allocator hands out;
        // the replays' strings from 320 (`REPLAY_DATA`).
        Some(match self {
            Probe::Clock => "(drop (call $clock (i32.const 16)))",
            Probe::HeaderPairs => "(drop (call $pairs (i32.const 0) (i32.const 16) (i32.const 20)))",
            Probe::HeaderValue => "(drop (call $get (i32.const 0) (i32.const 64) (i32.const 13) (i32.const 16) (i32.const 20)))",
            Probe::ReplaceHeader => "(drop (call $replace (i32.const 0) (i32.const 96) (i32.const 14) (i32.const 64) (i32.const 5)))",
            Probe::AddHeader => "(drop (call $add (i32.const 0) (i32.const 96) (i32.const 14) (i32.const 64) (i32.const 5)))",
            Probe::RemoveAbsentHeader => "(drop (call $remove (i32.const 0) (i32.const 96) (i32.const 14)))",
            Probe::IncrementMetric => "(drop (call $increment (global.get $metric) (i64.const 1)))",
            Probe::Verify(_) => "(drop (call $foreign (i32.const 160) (i32.const 16) (i32.const 1024) (global.get $arguments) (i32.const 16) (i32.const 20)))",
            Probe::SetProperty => "(drop (call $set_property (i32.const 224) (i32.const 15) (i32.const 256) (i32.const 7)))",
            Probe::Replay(replay) => return Some(replay.steps().join("\n    ")),
            Probe::Compute => "(call $compute)",
            Probe::WideCode => "(call $wide_code)",
            Probe::WideData => "(call $wide_data)",
            Probe::TwoMoreEntries | Probe::DeadCode => return None,
        }
        .to_string())
    }
}

// The replays' calls, one statement each (the strings they name: `REPLAY_DATA`).
const READ_HEADERS: &str = "(drop (call $pairs (i32.const 0) (i32.const 16) (i32.const 20)))";
const READ_CLOCK: &str = "(drop (call $clock (i32.const 16)))";
const VERIFY: &str = "(drop (call $foreign (i32.const 160) (i32.const 16) (i32.const 1024) (global.get $arguments) (i32.const 16) (i32.const 20)))";
const COUNT_REQUEST: &str = "(drop (call $increment (global.get $metric) (i64.const 1)))";
const NOTE_SKIPPED: &str =
    "(drop (call $set_property (i32.const 224) (i32.const 15) (i32.const 320) (i32.const 7)))";
const NOTE_ALLOWED: &str =
    "(drop (call $set_property (i32.const 224) (i32.const 15) (i32.const 256) (i32.const 7)))";
const NOTE_USER: &str =
    "(drop (call $set_property (i32.const 336) (i32.const 11) (i32.const 352) (i32.const 17)))";
const NOTE_ISSUER: &str =
    "(drop (call $set_property (i32.const 384) (i32.const 13) (i32.const 400) (i32.const 26)))";
const REMOVE_TOKEN: &str = "(drop (call $remove (i32.const 0) (i32.const 64) (i32.const 13)))";
const SET_USER: &str = "(drop (call $replace (i32.const 0) (i32.const 432) (i32.const 15) (i32.const 352) (i32.const 17)))";
const SET_GROUPS: &str = "(drop (call $replace (i32.const 0) (i32.const 448) (i32.const 15) (i32.const 464) (i32.const 13)))";

impl Replay {
    /// kfauth's calls for the request, in its order (`tools/floor/host.test.mjs`
    /// checks them against the built module).
    fn steps(self) -> Vec<&'static str> {
        let allowed = [
            NOTE_ALLOWED,
            NOTE_USER,
            NOTE_ISSUER,
            REMOVE_TOKEN,
            SET_USER,
            SET_GROUPS,
        ];
        match self {
            Replay::Floor => vec![READ_HEADERS, READ_CLOCK, COUNT_REQUEST, NOTE_SKIPPED],
            Replay::Cached => [&[READ_HEADERS, READ_CLOCK, COUNT_REQUEST][..], &allowed].concat(),
            Replay::Fresh => [
                &[READ_HEADERS, READ_CLOCK, VERIFY, COUNT_REQUEST][..],
                &allowed,
            ]
            .concat(),
            Replay::Minimal => vec![READ_HEADERS, REMOVE_TOKEN, SET_USER, SET_GROUPS],
        }
    }
}

const FOREIGN_IMPORT: &str = r#"(import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))"#;

/// `verify_signature`'s name at 160 and the call's arguments at 1024.
fn verify_data(call: VerifyCall) -> String {
    let bytes = arguments(call);
    format!(
        r#"(data (i32.const 160) "verify_signature") (data (i32.const 1024) "{}") (global $arguments i32 (i32.const {}))"#,
        wat_string(&bytes),
        bytes.len()
    )
}

const SET_PROPERTY_IMPORT: &str = r#"(import "env" "proxy_set_property" (func $set_property (param i32 i32 i32 i32) (result i32)))"#;

/// The replays' strings: the property names and values, and the claim
/// headers, that kfauth writes for `make bench`'s token (`user0@example.com`,
/// groups `team-a` and `team-b`, issuer `https://bench.kfauth.local`).
const REPLAY_DATA: &str = r#"(data (i32.const 224) "kfauth.decision") (data (i32.const 256) "allowed")
  (data (i32.const 320) "skipped") (data (i32.const 336) "kfauth.user")
  (data (i32.const 352) "user0@example.com") (data (i32.const 384) "kfauth.issuer")
  (data (i32.const 400) "https://bench.kfauth.local") (data (i32.const 432) "kubeflow-userid")
  (data (i32.const 448) "kubeflow-groups") (data (i32.const 464) "team-a,team-b")"#;

/// The least a Proxy-Wasm HTTP filter can be (ABI 0.2.1): it accepts any
/// configuration, and lets every request through without reading anything.
/// Envoy still creates a context per request, calls `on_request_headers`, and
/// deletes the context: the part of kfauth's cost no Wasm filter can avoid.
/// With a `probe`, `on_request_headers` also makes that host call
/// [`Probe::calls`] times (or the module exports two more callbacks).
pub fn empty_filter_wat(probe: Option<Probe>) -> String {
    let calls = probe
        .and_then(|probe| Some(vec![probe.call()?; probe.calls()].join(" ")))
        .unwrap_or_default();
    let more = match probe {
        Some(Probe::TwoMoreEntries) => {
            r#"(func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))"#
                .to_string()
        }
        Some(Probe::DeadCode) => dead_code_wat(),
        Some(Probe::Compute) => COMPUTE_WAT.to_string(),
        Some(Probe::WideCode) => wide_code_wat(),
        Some(Probe::WideData) => WIDE_DATA_WAT.to_string(),
        _ => String::new(),
    };
    // Only the probes counting requests define a counter: the empty filter's callbacks stay empty.
    let define = if matches!(probe, Some(Probe::IncrementMetric | Probe::Replay(_))) {
        "(drop (call $define (i32.const 0) (i32.const 128) (i32.const 12) (i32.const 200)))
    (global.set $metric (i32.load (i32.const 200)))"
    } else {
        ""
    };
    // Only the probes that use them import these calls and carry their data.
    let (import, data) = match probe {
        Some(Probe::Verify(call)) => (FOREIGN_IMPORT.to_string(), verify_data(call)),
        Some(Probe::Replay(Replay::Fresh)) => (
            format!("{FOREIGN_IMPORT} {SET_PROPERTY_IMPORT}"),
            format!("{} {REPLAY_DATA}", verify_data(VerifyCall::Good)),
        ),
        Some(Probe::SetProperty) => (
            SET_PROPERTY_IMPORT.to_string(),
            r#"(data (i32.const 224) "kfauth.decision") (data (i32.const 256) "allowed")"#
                .to_string(),
        ),
        Some(Probe::Replay(_)) => (SET_PROPERTY_IMPORT.to_string(), REPLAY_DATA.to_string()),
        _ => (String::new(), String::new()),
    };
    // The wide-data probe reads 1 MiB past 64 KiB; the others use two pages.
    let pages = if probe == Some(Probe::WideData) {
        18
    } else {
        2
    };
    format!(
        r#"(module
  (import "env" "proxy_get_current_time_nanoseconds" (func $clock (param i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  {import}
  (memory (export "memory") {pages})
  {data}
  (data (i32.const 64) "authorization")
  (data (i32.const 96) "x-kfauth-probe")
  (data (i32.const 128) "kfauth.probe")
  (global $metric (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  ;; Every answer lands at the same place: a probe reads nothing back.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) (i32.const 8192))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {define} (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {calls} (i32.const 0))
  (func (export "proxy_on_delete") (param i32))
  {more})"#
    )
}

/// [`Probe::Compute`]'s work: each step loads a word of 16 KiB .. 48 KiB,
/// mixes it into a running hash and stores the hash back, so no step can be
/// skipped or hoisted.
const COMPUTE_WAT: &str = r#"(func $compute (local $step i32) (local $at i32) (local $hash i64)
    (local.set $hash (i64.const 0xcbf29ce484222325))
    (loop $next
      (local.set $at (i32.add (i32.const 16384) (i32.and (i32.mul (local.get $step) (i32.const 8)) (i32.const 32760))))
      (local.set $hash (i64.mul (i64.xor (local.get $hash) (i64.load (local.get $at))) (i64.const 0x100000001b3)))
      (i64.store (local.get $at) (local.get $hash))
      (local.set $step (i32.add (local.get $step) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $step) (i32.const 4096)))))"#;

/// [`Probe::WideCode`]'s functions, and the one calling each once in an
/// order scattered by a multiplier coprime to 256, so no two neighbours in
/// the code run one after the other. The sum lands at 16 KiB: nothing is dead.
fn wide_code_wat() -> String {
    let functions: String = (0..256)
        .map(|function| {
            let steps: String = (0..16)
                .map(|step| {
                    format!(
                        "(local.set $x (i64.add (local.get $x) (i64.const {})))",
                        (function * 16 + step) * 2_654_435_761_u64 % 1_000_003 + 1
                    )
                })
                .collect();
            format!("(func $wide{function} (param $x i64) (result i64) {steps} (local.get $x))\n")
        })
        .collect();
    let calls: String = (0..256_u64)
        .map(|n| format!("(local.set $x (call $wide{} (local.get $x)))", n * 97 % 256))
        .collect();
    format!(
        "{functions}(func $wide_code (local $x i64) {calls} (i64.store (i32.const 16384) (local.get $x)))"
    )
}

/// [`Probe::WideData`]'s loop: line `p = n * 521 mod 1024` (an order the
/// prefetchers do not follow) at `p` KiB past 64 KiB, moved `p mod 16` lines
/// further so the 1,024 lines spread over the caches' sets instead of
/// competing for a few.
const WIDE_DATA_WAT: &str = r#"(func $wide_data (local $n i32) (local $p i32) (local $sum i64)
    (loop $next
      (local.set $p (i32.and (i32.mul (local.get $n) (i32.const 521)) (i32.const 1023)))
      (local.set $sum (i64.add (local.get $sum)
        (i64.load (i32.add (i32.const 65536) (i32.add (i32.mul (local.get $p) (i32.const 1024)) (i32.mul (i32.and (local.get $p) (i32.const 15)) (i32.const 64)))))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $n) (i32.const 1024))))
    (i64.store (i32.const 16384) (local.get $sum)))"#;

/// 200 functions of 400 multiply-adds each (about 1 MB of Wasm), which nothing
/// calls.
fn dead_code_wat() -> String {
    (0..200)
        .map(|function| {
            let steps: String = (0..400)
                .map(|step| {
                    format!(
                        "(local.set $x (i64.add (i64.mul (local.get $x) (i64.const {})) (i64.const {})))",
                        3 + step + function,
                        step * 7 + 1
                    )
                })
                .collect();
            format!("(func $unused{function} (param $x i64) (result i64) {steps} (local.get $x))\n")
        })
        .collect()
}

pub fn empty_filter_path(probe: Option<Probe>) -> PathBuf {
    let name = probe.map_or("empty-filter", Probe::key);
    let path = repo_root().join(format!("target/bench/{name}.wasm"));
    let module = wat::parse_str(empty_filter_wat(probe)).expect("the empty filter's WAT is valid");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, module).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_is_valid_webassembly() {
        for probe in std::iter::once(None).chain(Probe::ALL.map(Some)) {
            let text = empty_filter_wat(probe);
            assert!(wat::parse_str(&text).is_ok(), "{probe:?}");
        }
    }
}
