#!/usr/bin/env bash
# Makes the seed corpus of fuzz_ticket.c in OUTDIR (default
# tests/fuzz/corpus/ticket) from a fresh certs/gen.sh PKI, with the
# generator built next to the tests:
#   tests/fuzz/ticket_seeds.sh BUILD_DIR [OUTDIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
gen=$1/tests/fuzz_ticket_seeds
out=${2:-$src/tests/fuzz/corpus/ticket}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$out"
bash "$src/certs/gen.sh" "$w/ec" >/dev/null 2>&1
openssl x509 -in "$w/ec/client.crt" -outform DER -out "$w/client.der"
openssl x509 -in "$w/ec/ca.crt" -outform DER -out "$w/ca.der"
"$gen" "$out" "$w/client.der" "$w/ca.der"
echo "seeds in $out"
