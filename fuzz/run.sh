#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) on stable Rust (`-s none`:
# libFuzzer with coverage feedback, no sanitizer), then prints one line per
# target from libFuzzer's final stats. Exits non-zero when a target crashed;
# the crashing input is in fuzz/artifacts/<target>/. New inputs go to
# fuzz/target/corpus/<target> so the committed seed corpus stays small.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
# FUZZ_SEED fixes libFuzzer's seed, starts from the committed corpus alone and
# bounds each target by a count of runs (about FUZZ_SECONDS here; the time
# becomes a cap, four times that): make fuzz-smoke, in CI. Bounded by time, a
# faster machine went further: a clean CI machine once found in 650k runs what
# 1.5M local runs had not (a lone surrogate in a JWKS, 48fcaa9), and the
# submission did not land. With a count, CI runs what `make test` ran here,
# less what hash seeds change. Keep every crash as a regression seed in
# fuzz/corpus; finding new ones is `make fuzz`'s job.
seed=${FUZZ_SEED:-}
declare -A smoke_runs=(
  [token_verify]=15000 [jwks_parse]=1000000 [config_parse]=400000
  [review_answer]=3000000 [cookie_diet]=300000 [session]=200000
)
cargo_fuzz=${CARGO_FUZZ:-.tools/bin/cargo-fuzz}
targets=(token_verify jwks_parse config_parse review_answer cookie_diet session)

"$cargo_fuzz" fuzz build -s none || exit 1
summary=()
failed=0
for target in "${targets[@]}"; do
  work=fuzz/target/corpus/$target
  extra=()
  if [ -n "$seed" ]; then
    work=fuzz/target/seeded-corpus/$target
    rm -rf "$work"
    extra=(-seed="$seed" -runs="${smoke_runs[$target]}")
  fi
  log=fuzz/target/$target.log
  mkdir -p "$work"
  limit=$seconds
  if [ -n "$seed" ]; then
    limit=$((seconds * 4))
    echo "fuzzing $target for ${smoke_runs[$target]} runs (log: $log)"
  else
    echo "fuzzing $target for ${seconds}s (log: $log)"
  fi
  "$cargo_fuzz" fuzz run -s none "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$limit" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 "${extra[@]}" >"$log" 2>&1
  code=$?
  stat() { awk -v key="stat::$1:" '$1 == key {print $2}' "$log" | tail -1; }
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  line="$target: $(stat number_of_executed_units) execs, $(stat average_exec_per_sec) exec/s, ${cov:-cov: ?}, peak $(stat peak_rss_mb) MB"
  if [ "$code" -ne 0 ]; then
    failed=1
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5)
    line="$line, CRASH (exit $code) ${artifact:-see $log}"
    grep -m1 -A3 'panicked at' "$log" >&2
  else
    line="$line, no crash"
  fi
  summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
