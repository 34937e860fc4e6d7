#!/usr/bin/env bash
# The whole test suite. Installs what the tests need first: the peer tools used by the
# interoperability tests (Debian's bsdiff, xdelta3, zstd).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in bsdiff xdelta3 zstd; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing peer tools for the interoperability tests: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bsdiff xdelta3 zstd >/dev/null
fi

cargo test --workspace --all-targets --locked "$@"
# The library as installers embed it: without the command-line dependencies.
cargo test -p deltaapply --no-default-features --lib --locked
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
