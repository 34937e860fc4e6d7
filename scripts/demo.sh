#!/usr/bin/env bash
# The main job on the bundled example releases (testdata/example): make a patch from
# each older release to the newest, show what was made, apply each one in place to a
# copy of the old release, and check the result byte for byte. The patches are signed
# with a key made for the demo, and applied trusting only that key.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p deltapack -p deltaapply
bin=target/release
ex=testdata/example
out=target/example
rm -rf "$out" && mkdir -p "$out"

echo "== deltapack keygen (the release signing key)"
"$bin/deltapack" keygen --secret-key "$out/release.key" --public-key "$out/release.pub"

newest=1.2
for v in 1.0 1.1; do
  patch="$out/app-$v-to-$newest.dpatch"
  echo "== deltapack diff app-$v.bin app-$newest.bin --secret-key release.key"
  "$bin/deltapack" diff "$ex/app-$v.bin" "$ex/app-$newest.bin" -o "$patch" \
    --secret-key "$out/release.key"
  cp "$ex/app-$v.bin" "$out/installed-$v.bin"
  echo "== deltaapply apply --key release.pub --in-place installed-$v.bin"
  "$bin/deltaapply" apply --key "$out/release.pub" --in-place "$out/installed-$v.bin" "$patch"
  cmp "$out/installed-$v.bin" "$ex/app-$newest.bin"
  echo "   identical to app-$newest.bin"
done
echo "== deltapack inspect app-1.0-to-$newest.dpatch --key release.pub"
"$bin/deltapack" inspect "$out/app-1.0-to-$newest.dpatch" --key "$out/release.pub"
echo "patches are in $out/"
