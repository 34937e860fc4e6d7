#!/usr/bin/env bash
# The main job on the bundled example releases (testdata/example, versions 1.0 to 1.3):
# make a signing key, publish each release in turn into a publish directory with
# `deltapack build` (signed manifest, full images, patches from every older release),
# check the directory with `deltapack verify`, then play the device: apply each
# published patch to a copy of its base with the public key pinned, and check the
# result byte for byte; finally update a "device" from the publish directory with
# `deltaapply check` / `update` (by patch, and by full image for a modified file).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p deltapack -p deltaapply
bin=target/release
ex=testdata/example
out=target/example
rm -rf "$out" && mkdir -p "$out/keys"

echo "== deltapack keygen"
"$bin/deltapack" keygen --secret-key "$out/keys/release.key" --public-key "$out/keys/release.pub"

publish="$out/publish"
day=1
for v in 1.0 1.1 1.2 1.3; do
  echo
  echo "== deltapack build --version $v"
  "$bin/deltapack" build --out "$publish" --secret-key "$out/keys/release.key" \
    --product example-app --channel stable --version "$v" \
    --artifact "app.bin=$ex/app-$v.bin" --created "2026-11-0${day}T10:00:00Z" --valid-days 3650
  day=$((day + 1))
done

echo
echo "== deltapack verify"
"$bin/deltapack" verify "$publish" --key "$out/keys/release.pub"

echo
echo "== deltaapply apply --key: each patch in the manifest, on a copy of its base"
newest=1.3
# base_version and path of each [[artifact.patch]] (patches to the newest release; those
# under [[previous]] are kept for chains and end at older releases).
awk -F' = ' '/^\[\[previous\]\]/ {exit} /^base_version/ {gsub(/"/, "", $2); v = $2} /^path = "patches/ {gsub(/"/, "", $2); print v, $2}' \
  "$publish/manifest.toml" |
while read -r base path; do
  cp "$ex/app-$base.bin" "$out/installed-$base.bin"
  "$bin/deltaapply" apply --key "$out/keys/release.pub" --in-place "$out/installed-$base.bin" "$publish/$path"
  cmp "$out/installed-$base.bin" "$ex/app-$newest.bin"
  echo "   $base -> $newest: identical to app-$newest.bin"
done
echo
echo "== deltaapply inspect (the newest full image) --key release.pub"
full=$(awk -F' = ' '/^path = "full\// {gsub(/"/, "", $2); print $2; exit}' "$publish/manifest.toml")
"$bin/deltaapply" inspect --key "$out/keys/release.pub" "$publish/$full"
echo
echo "== deltaapply check / update: a device on 1.0 updates from the publish directory (offline media)"
device="$out/device"
mkdir -p "$device"
cp "$ex/app-1.0.bin" "$device/app.bin"
"$bin/deltaapply" check --from "$publish" --key "$out/keys/release.pub" --target "$device/app.bin"
echo
"$bin/deltaapply" update --from "$publish" --key "$out/keys/release.pub" --target "$device/app.bin"
cmp "$device/app.bin" "$ex/app-$newest.bin"
echo "   device: identical to app-$newest.bin; state file: $(tail -n 1 "$device/.app.bin.deltaapply-state")"
echo
echo "== deltaapply update: a device whose installed file was modified gets the full image"
cp "$ex/app-1.2.bin" "$device/app.bin"
printf 'local edit' | dd of="$device/app.bin" bs=1 seek=1000 conv=notrunc status=none
"$bin/deltaapply" update --from "file://$(cd "$publish" && pwd)" --key "$out/keys/release.pub" --target "$device/app.bin"
cmp "$device/app.bin" "$ex/app-$newest.bin"
echo "   device: identical to app-$newest.bin"
echo
echo "publish directory: $publish/ (serve it with any static HTTP server)"
