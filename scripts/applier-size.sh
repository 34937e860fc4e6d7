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

# The C library (deltaapply-ffi), reported, not budgeted: the `ffi` profile is the
# applier's (opt-level z, fat LTO, one codegen unit, strip) but unwinds, so that a panic
# is reported as DELTAAPPLY_E_INTERNAL. The shared library is stripped by the profile;
# the static library keeps its symbols (a linker needs them) and is shown stripped of
# debug information; what it adds to a program is the stripped C example linked with it
# (with --gc-sections, which drops the parts of std and the crates nothing calls).
cargo build --quiet --profile ffi -p deltaapply-ffi --locked
so="$target/ffi/libdeltaapply_ffi.so"
a="$target/ffi/libdeltaapply_ffi.a"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$a" "$work/lib.a"
strip --strip-debug "$work/lib.a"
cc -std=c11 -Os -I deltaapply-ffi/include deltaapply-ffi/examples/c/update.c "$a" \
  -lpthread -ldl -lm -lrt -Wl,--gc-sections -o "$work/update"
strip "$work/update"
for pair in "shared library:$so" "static library (strip --strip-debug):$work/lib.a" \
  "C example linked with the static library (--gc-sections, stripped):$work/update"; do
  what=${pair%%:*}
  file=${pair#*:}
  size=$(stat -c %s "$file")
  awk -v w="$what" -v s="$size" 'BEGIN { printf "C library: %s is %d bytes (%.2f MB)\n", w, s, s / 1e6 }'
done
