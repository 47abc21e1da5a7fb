#!/usr/bin/env bash
# Side-by-side requests/s: kfauth against Envoy's native jwt_authn (see bench/src/main.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo run --quiet --release -p kfauth-bench
