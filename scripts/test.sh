#!/usr/bin/env bash
# The whole test suite. Installs what the tests need first: the peer tools used by the
# interoperability tests (Debian's bsdiff, xdelta3, zstd), faketime, and Go for the cgo example of
# the C library (deltapack/tests/c_abi.rs, which fails without it).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in bsdiff xdelta3 zstd; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# libfaketime's wrapper, for a device clock at 1970 (deltapack/tests/update.rs).
command -v faketime >/dev/null 2>&1 || missing+=("faketime")
# Go is in Debian's golang-go package.
command -v go >/dev/null 2>&1 || missing+=("golang-go")
if ((${#missing[@]})); then
  echo "installing tools the tests need: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The S3-compatible server of the object-store tests (deltapack/tests/s3_publish.rs,
# prune.rs, fanout.rs) and of benches/fanout.py:
# s3s-fs from crates.io, built once into target/tools (a real S3 protocol server, no
# Docker). The tests find it there; S3S_FS=PATH overrides.
S3S_FS_VERSION=0.14.1
tools="$PWD/target/tools"
if [ ! -x "$tools/bin/s3s-fs" ] || ! "$tools/bin/s3s-fs" --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
  echo "installing s3s-fs $S3S_FS_VERSION into $tools" >&2
  build_dir="$(mktemp -d)"
  CARGO_TARGET_DIR="$build_dir" cargo install s3s-fs --locked --version "$S3S_FS_VERSION" \
    --features binary --root "$tools" -j2
  rm -rf "$build_dir"
fi

# The crash-point tests need the test-only crash hook in the deltaapply binary.
cargo test --workspace --all-targets --locked --no-fail-fast --features deltaapply-cli/crash-hook,deltapack/crash-hook "$@"
# The binary as shipped (no crash hook) ignores DELTAAPPLY_CRASH_AT.
cargo test -p deltaapply-cli --locked --test tree_apply the_binary_as_shipped_ignores_the_crash_variable
# The library as installers embed it for local media only: without the http feature.
cargo test -p deltaapply --no-default-features --lib --locked
cargo test -p deltaapply-apply -p deltaapply-fetch -p deltaapply-update --lib --locked
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
# The applier's size budget (3.0 MB stripped): fails over it.
bash scripts/applier-size.sh
