//! `empty-filter`: writes the empty Proxy-Wasm filter and its probes as
//! `target/bench/*.wasm` (the modules `make bench` loads into Envoy), and
//! prints their paths, so `make floor` can run them in Node's V8.

use kfauth_bench::empty_filter::{empty_filter_path, Probe};

fn main() {
    for probe in std::iter::once(None).chain(Probe::ALL.map(Some)) {
        println!("{}", empty_filter_path(probe).display());
    }
}
