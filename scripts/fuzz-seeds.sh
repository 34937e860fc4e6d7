#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from testdata/ (the corpora are not in git: fuzz/.gitignore).
# The apply targets take "4-byte LE old length, old file, patch"; the others the file itself.
set -euo pipefail
cd "$(dirname "$0")/.."
v=testdata/vectors
c=fuzz/corpus
mkdir -p "$c"
seed() { # target file
  mkdir -p "$c/$1"
  cp "$2" "$c/$1/$(basename "$2")"
}
with_old() { # target old patch
  mkdir -p "$c/$1"
  python3 - "$2" "$3" "$c/$1/$(basename "$3")" <<'PY'
import struct, sys
old = open(sys.argv[1], "rb").read() if sys.argv[1] else b""
patch = open(sys.argv[2], "rb").read()
open(sys.argv[3], "wb").write(struct.pack("<I", len(old)) + old + patch)
PY
}
for p in "$v"/*.dpatch "$v"/tree/*.dpatch; do seed patch_header "$p"; done
# Our patches, by method, with the old file vectors.json names.
jq -r '.cases[] | [.patch, (.old // ""), (.header.method // "")] | join("|")' "$v/vectors.json" |
  while IFS="|" read -r patch old method; do
    [ -n "$old" ] && old="$v/$old"
    if [ -z "$method" ]; then
      case "$patch" in full-*) method=full ;; zstd-*) method=zstd ;; *) method=bsdiff ;; esac
    fi
    case "$method" in
      bsdiff) with_old apply_bsdiff "$old" "$v/$patch" ;;
      zstd*) with_old apply_zstd_ref "$old" "$v/$patch" ;;
      full) with_old apply_full "$old" "$v/$patch" ;;
    esac
  done
# Control streams: the decompressed control and diff streams of the bsdiff vectors.
mkdir -p "$c/control_stream"
for p in "$v"/bsdiff-*.dpatch "$v"/zero-run-*.dpatch "$v"/control-*.dpatch; do
  python3 - "$p" "$c/control_stream/$(basename "$p")" <<'PY' || true
import struct, subprocess, sys
b = open(sys.argv[1], "rb").read()
control, diff = struct.unpack_from("<QQ", b, 144)
for i, (at, n) in enumerate([(296, control), (296 + control, diff)]):
    r = subprocess.run(["zstd", "-dc"], input=b[at:at + n], capture_output=True)
    if r.returncode == 0 and r.stdout:
        open(f"{sys.argv[2]}.{i}", "wb").write(r.stdout[:4096])
PY
done
# Foreign formats, with their old files.
jq -r '.[] | [.file, (.old // "")] | join("|")' "$v/foreign/vectors.json" |
  while IFS="|" read -r file old; do
    [ -n "$old" ] && old="$v/foreign/$old"
    case "$file" in
      *.bsdiff) with_old foreign_bsdiff40 "$old" "$v/foreign/$file"; seed bsdiff40 "$v/foreign/$file" ;;
      *.zst) with_old foreign_zstd "$old" "$v/foreign/$file"; seed zstd_frame_header "$v/foreign/$file" ;;
      *.vcdiff) with_old foreign_vcdiff "$old" "$v/foreign/$file"; seed vcdiff "$v/foreign/$file" ;;
    esac
  done
# Tree index: the payload of each tree patch.
mkdir -p "$c/tree_index"
for p in "$v"/tree/*.dpatch; do tail -c +297 "$p" > "$c/tree_index/$(basename "$p")"; done
mkdir -p "$c/tree_listing"
printf '\x01\xed\x01\x03bin\x00\xa4\x01\x07bin/app\x00\x00\x00\x00\x00\x00\x00\x10\x07\x02\x00\x00\x04link\x07bin/app' > "$c/tree_listing/small"
m=testdata/manifest-vectors
for f in "$m"/cases/*.toml "$m"/publish/manifest.toml; do seed manifest "$f"; done
for f in "$m"/cases/*.sig "$m"/publish/manifest.toml.sig; do seed signature_file "$f"; done
for f in testdata/keys-vectors/chain/*.toml testdata/keys-vectors/refused/*.toml; do seed keys_document "$f"; done
for f in "$v"/*.pub; do seed key_file "$f"; done
mkdir -p "$c/state_file" "$c/content_range"
printf 'deltaapply-state v1\naccepted example-app stable 42\naccepted example-app beta 7\n' > "$c/state_file/two"
printf 'bytes 5-9/10' > "$c/content_range/closed"
printf 'bytes 0-0/*' > "$c/content_range/open"
# Every input a regression vector already holds.
for d in testdata/fuzz/*/; do
  [ -d "$d" ] && mkdir -p "$c/$(basename "$d")" && cp "$d"* "$c/$(basename "$d")/" 2>/dev/null || true
done
for d in "$c"/*/; do echo "$(basename "$d"): $(ls "$d" | wc -l) seeds"; done
