#!/usr/bin/env bash
# The main job on the bundled example releases (testdata/example): make a patch from
# each older release to the newest, show what was made, apply each one in place to a
# copy of the old release, and check the result byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p deltapack -p deltaapply
bin=target/release
ex=testdata/example
out=target/example
rm -rf "$out" && mkdir -p "$out"

newest=1.2
for v in 1.0 1.1; do
  patch="$out/app-$v-to-$newest.dpatch"
  echo "== deltapack diff app-$v.bin app-$newest.bin"
  "$bin/deltapack" diff "$ex/app-$v.bin" "$ex/app-$newest.bin" -o "$patch"
  cp "$ex/app-$v.bin" "$out/installed-$v.bin"
  echo "== deltaapply apply --in-place installed-$v.bin"
  "$bin/deltaapply" apply --in-place "$out/installed-$v.bin" "$patch"
  cmp "$out/installed-$v.bin" "$ex/app-$newest.bin"
  echo "   identical to app-$newest.bin"
done
echo "== deltapack inspect app-1.0-to-$newest.dpatch"
"$bin/deltapack" inspect "$out/app-1.0-to-$newest.dpatch"
echo "patches are in $out/"
