//! Microseconds per RS256 and PS256 verification: `kfauth::rsa_pkcs1` next to jwt-simple
//! (rsa 0.9), for 2048- and 4096-bit keys.
//!
//! Native: `cargo run --release --example rsa_bench`
//! V8 (Node's WASI, the engine Envoy embeds):
//! `cargo build --release --target wasm32-wasip1 --example rsa_bench`, then
//! `node --no-warnings examples/rsa_bench_wasi.mjs target/wasm32-wasip1/release/examples/rsa_bench.wasm`
//! (add `ours` to time only kfauth's verification). Under WASI the figures are process CPU
//! time, which other load on a shared machine inflates far less than wall time.
//!
//! jwt-simple's figure is a whole `verify_token` (base64, JSON header and claims, then the
//! signature); ours is SHA-256 of the signing input, s^e mod n and the block comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use kfauth::rsa_pkcs1::{RsaHash, RsaVerifyingKey};
use serde_json::{json, Value};
use std::time::Instant;

const K2048: &str = include_str!("../src/rsa_pkcs1/testdata/k2048.pem");
const K4096: &str = include_str!("../src/rsa_pkcs1/testdata/k4096.pem");

/// The fastest of five timed rounds (the machine is shared; the minimum is the steadiest).
fn micros_per(iterations: u32, mut f: impl FnMut() -> bool) -> f64 {
    assert!(f(), "the benchmarked verification must succeed");
    (0..5)
        .map(|_| {
            let start = cpu_time_us();
            for _ in 0..iterations {
                assert!(f());
            }
            (cpu_time_us() - start) / f64::from(iterations)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Process CPU time under WASI (other processes on a shared machine do not count),
/// wall time natively.
#[cfg(target_arch = "wasm32")]
fn cpu_time_us() -> f64 {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
    }
    const PROCESS_CPUTIME: u32 = 2;
    let mut nanos = 0u64;
    // SAFETY: WASI writes one u64 through the pointer.
    let errno = unsafe { clock_time_get(PROCESS_CPUTIME, 1, &mut nanos) };
    assert_eq!(errno, 0, "clock_time_get");
    nanos as f64 / 1e3
}

#[cfg(not(target_arch = "wasm32"))]
fn cpu_time_us() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e6
}

fn main() {
    // `rsa_bench ours` times only kfauth's verification (e.g. under `time`, for CPU time).
    let ours_only = std::env::args().nth(1).as_deref() == Some("ours");
    let scale: u32 = if cfg!(target_arch = "wasm32") { 1 } else { 10 };
    for (bits, pem, iterations) in [(2048, K2048, 100 * scale), (4096, K4096, 20 * scale)] {
        let pair = RS256KeyPair::from_pem(pem).unwrap();
        let token = pair.sign(claims()).unwrap();
        let components = pair.public_key().to_components();
        let theirs = RS256PublicKey::from_components(&components.n, &components.e).unwrap();
        let options = VerificationOptions {
            artificial_time: Some(Duration::from_secs(1_800_000_000)),
            ..Default::default()
        };

        let start = Instant::now();
        let ours = RsaVerifyingKey::from_components(&components.n, &components.e).unwrap();
        let key_setup = start.elapsed().as_secs_f64() * 1e6;
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();

        let ours_us = micros_per(iterations, || {
            ours.verify(RsaHash::Sha256, input.as_bytes(), &sig)
        });
        if ours_only {
            println!("RS256 {bits}-bit: rsa_pkcs1 {ours_us:.1} µs/verify");
            continue;
        }
        let theirs_us = micros_per(iterations, || {
            theirs
                .verify_token::<Value>(&token, Some(options.clone()))
                .is_ok()
        });
        println!(
            "RS256 {bits}-bit: rsa_pkcs1 {ours_us:.1} µs/verify, jwt-simple {theirs_us:.1} µs/verify \
             ({:.1}x), key setup {key_setup:.0} µs, {iterations} iterations",
            theirs_us / ours_us
        );

        // PS256: the same exponentiation, then EMSA-PSS (MGF1, two more SHA-256 passes).
        let pss_pair = PS256KeyPair::from_pem(pem).unwrap();
        let pss_token = pss_pair.sign(claims()).unwrap();
        let pss_theirs = PS256PublicKey::from_components(&components.n, &components.e).unwrap();
        let (pss_input, pss_sig) = pss_token.rsplit_once('.').unwrap();
        let pss_sig = URL_SAFE_NO_PAD.decode(pss_sig).unwrap();
        let pss_ours_us = micros_per(iterations, || {
            ours.verify_pss(RsaHash::Sha256, pss_input.as_bytes(), &pss_sig)
        });
        let pss_theirs_us = micros_per(iterations, || {
            pss_theirs
                .verify_token::<Value>(&pss_token, Some(options.clone()))
                .is_ok()
        });
        println!(
            "PS256 {bits}-bit: rsa_pkcs1 {pss_ours_us:.1} µs/verify, jwt-simple {pss_theirs_us:.1} \
             µs/verify ({:.1}x)",
            pss_theirs_us / pss_ours_us
        );
    }
}

/// The claims of every benchmarked token, exactly (no `iat` or `exp` added).
fn claims() -> JWTClaims<Value> {
    JWTClaims {
        custom: json!({"sub": "alice", "email": "alice@example.com", "groups": ["a", "b"]}),
        ..JWTClaims::new()
    }
}
