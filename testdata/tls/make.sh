#!/usr/bin/env bash
# Makes the test-only certificate authority and server certificate that the HTTPS tests
# (deltaapply/tests/fetch.rs) use for a TLS server on 127.0.0.1. Not secret: never trust
# this CA anywhere else. Valid until 2125 so that the committed files keep working.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 36500 \
  -subj "/CN=deltaapply test CA (not for production)" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -outform DER -out ca.der

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/server.key"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/server.key" -outform DER -out server.key.der
openssl req -new -key "$tmp/server.key" -subj "/CN=localhost" -out "$tmp/server.csr"
cat >"$tmp/ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
openssl x509 -req -in "$tmp/server.csr" -CA ca.der -CAform DER -CAkey "$tmp/ca.key" \
  -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days 36500 -extfile "$tmp/ext" \
  -outform DER -out server.der
