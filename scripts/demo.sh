#!/usr/bin/env bash
# The main job on the bundled example releases (testdata/example, versions 1.0 to 1.3):
# make a signing key, publish each release in turn into a publish directory with
# `deltapack build` (signed manifest, full images, patches from every older release),
# check the directory with `deltapack verify`, then play the device: apply each
# published patch to a copy of its base with the public key pinned, and check the
# result byte for byte; finally update a "device" from the publish directory with
# `deltaapply check` / `update` (by patch, and by full image for a modified file).
# Then the same for a whole release directory made from the example releases: a tree
# patch with `deltapack diff`, applied with `deltaapply apply`, two tree releases
# published, and a device with a modified file updated by the per-file fallback.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p deltapack -p deltaapply-cli
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

# Two releases of an application directory built from the example files: the program,
# a library, docs (one renamed, one dropped, one added), a link and an empty directory.
make_tree() { # DIR APP LIB DOC_NAME EXTRA_DOC
  mkdir -p "$1/bin" "$1/lib" "$1/share/doc" "$1/var/cache"
  cp "$ex/app-$2.bin" "$1/bin/app" && chmod 755 "$1/bin/app"
  cp "$ex/app-$3.bin" "$1/lib/libapp.so" && chmod 644 "$1/lib/libapp.so"
  ln -s ../lib/libapp.so "$1/bin/libapp.so"
  printf 'Example app, release notes for %s\n' "$2" > "$1/share/doc/NEWS"
  seq 1 2000 | sed 's/^/manual line /' > "$1/share/doc/$4"
  [ -z "$5" ] || printf '%s\n' "$5" > "$1/share/doc/extra.txt"
}
tree1="$out/tree-1.0" tree2="$out/tree-2.0"
make_tree "$tree1" 1.0 1.1 manual.txt "dropped in 2.0"
make_tree "$tree2" 1.3 1.2 guide.txt ""
same_tree() { diff -r --no-dereference "$1" "$2" && \
  cmp <(cd "$1" && find . -printf '%p %y %m %l\n' | sort) <(cd "$2" && find . -printf '%p %y %m %l\n' | sort); }

echo
echo "== deltapack diff OLD_DIR NEW_DIR: a tree patch"
"$bin/deltapack" diff "$tree1" "$tree2" -o "$out/tree.dpatch" --secret-key "$out/keys/release.key"
"$bin/deltaapply" apply --key "$out/keys/release.pub" "$tree1" "$out/tree.dpatch" -o "$out/tree-applied"
same_tree "$out/tree-applied" "$tree2"
echo "   tree-applied: identical to tree-2.0 (contents, kinds, modes, links)"

echo
echo "== deltapack build with a directory artifact, twice, and verify"
tpub="$out/publish-tree"
"$bin/deltapack" build --out "$tpub" --secret-key "$out/keys/release.key" --product example-tree \
  --version 1.0 --artifact "app=$tree1" --created 2026-11-01T10:00:00Z --valid-days 3650
"$bin/deltapack" build --out "$tpub" --secret-key "$out/keys/release.key" \
  --version 2.0 --artifact "app=$tree2" --created 2026-11-02T10:00:00Z --valid-days 3650
"$bin/deltapack" verify "$tpub" --key "$out/keys/release.pub"

echo
echo "== deltaapply check / update --target DIR: a device on 1.0 with a modified file"
tdev="$out/device-tree/app"
mkdir -p "$(dirname "$tdev")" && cp -a "$tree1" "$tdev"
printf 'local edit' | dd of="$tdev/bin/app" bs=1 seek=1000 conv=notrunc status=none
echo "my own notes" > "$tdev/notes.txt"
"$bin/deltaapply" check --from "$tpub" --key "$out/keys/release.pub" --target "$tdev"
echo
"$bin/deltaapply" update --from "$tpub" --key "$out/keys/release.pub" --target "$tdev"
rm "$tdev/notes.txt"
same_tree "$tdev" "$tree2"
echo "   device tree: identical to tree-2.0, and the user's notes.txt was left alone"
echo
echo "publish directory: $publish/ (serve it with any static HTTP server)"
