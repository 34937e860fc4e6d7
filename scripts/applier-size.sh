#!/usr/bin/env bash
# The applier's size budget: builds the stripped, size-optimised applier (the `applier`
# profile) and fails if it is over the budget. scripts/test.sh runs it; the README's
# figure is what it prints.
#   scripts/applier-size.sh            check against the budget
#   BUDGET=N scripts/applier-size.sh   another budget, in bytes
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${BUDGET:-3000000}
target=${CARGO_TARGET_DIR:-target}
cargo build --quiet --profile applier -p deltaapply-cli --locked
binary="$target/applier/deltaapply"
size=$(stat -c %s "$binary")
awk -v b="$binary" -v s="$size" -v max="$budget" \
  'BEGIN { printf "applier: %s is %d bytes (%.2f MB), budget %d bytes\n", b, s, s / 1e6, max }'
if ((size > budget)); then
  echo "applier: over the budget by $((size - budget)) bytes; see benches/results/applier-size.md for what each part costs" >&2
  exit 1
fi
