#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one at a time on one core,
# (one libFuzzer process, no -jobs) and prints target / executions / exec/s / crashes. Not part of CI (CI replays
# testdata/fuzz/ through plain `cargo test`). Needs cargo-fuzz (`cargo install
# cargo-fuzz --locked`); runs on the stable toolchain through RUSTC_BOOTSTRAP=1.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# A crash, leak or slow input is written to fuzz/artifacts/<target>/: copy it to
# testdata/fuzz/<target>/ (the regression tests replay it) and fix the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-fuzz/target}
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
bash scripts/fuzz-seeds.sh >/dev/null
(cd fuzz && cargo fuzz build -O --target-dir "$target_dir" >&2)
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cd fuzz && cargo fuzz list)
logs=fuzz/logs
mkdir -p "$logs"
printf '%-20s %14s %10s %8s\n' target executions exec/s crashes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
  # -timeout: an input taking over 10 s is a finding (a slow input), as is a crash.
  set +e
  (cd fuzz && cargo fuzz run -O --target-dir "$target_dir" "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/") >"$logs/$t.log" 2>&1
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%-20s %14s %10s %8s\n' "$t" "${execs:-?}" "$(( ${execs:-0} / seconds ))" "$crashes"
done
