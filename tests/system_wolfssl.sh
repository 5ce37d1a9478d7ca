#!/usr/bin/env bash
# The CMake option for distributions (-DMTLSD_SYSTEM_WOLFSSL=ON, README
# "Building wolfSSL") kept working: mtlsd built against Debian's libwolfssl
# compiles without warnings, starts with what that library lacks said at
# start (--tickets off: it has no ticket callback), and serves mTLS: 200
# with a client certificate of the CA, no handshake without one, and
# another request after the refusal.
#   tests/system_wolfssl.sh BUILD_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-system}
mkdir -p "$dir" && cmake -S . -B "$dir" -DMTLSD_SYSTEM_WOLFSSL=ON -DCMAKE_BUILD_TYPE=Release >"$dir/build.log" 2>&1 &&
    cmake --build "$dir" -j2 --target mtlsd >>"$dir/build.log" 2>&1 ||
    { tail -20 "$dir/build.log"; echo "FAIL: the system-library build"; exit 1; }
T=$(mktemp -d /tmp/mtlsd-system.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
certs/gen.sh "$T/pki" >/dev/null 2>&1 || { echo "FAIL: certs/gen.sh"; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$dir/mtlsd" --cert "$T/pki/server.crt" --key "$T/pki/server.key" --client-ca "$T/pki/ca.crt" \
    --listen "127.0.0.1:$port" --workers 1 --tickets off >"$T/log" 2>&1 &
pid=$!
fail=0
get() { # $1: curl arguments for the client certificate
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$T/pki/ca.crt" $1 \
        --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/"
}
for _ in $(seq 1 50); do [ "$(get "--cert $T/pki/client.crt --key $T/pki/client.key")" = 200 ] && break; sleep 0.1; done
check() { if [ "$2" = "$3" ]; then echo "PASS: $1"; else echo "FAIL: $1: got '$2', wanted '$3'"; fail=1; fi; }
check "system libwolfssl: 200 with a client certificate" "$(get "--cert $T/pki/client.crt --key $T/pki/client.key")" 200
check "system libwolfssl: no certificate, no answer" "$(get "")" 000
check "system libwolfssl: still serving after the refusal" "$(get "--cert $T/pki/client.crt --key $T/pki/client.key")" 200
check "system libwolfssl: says it sends no CA names" "$(grep -c 'cannot send CA names' "$T/log")" 1
[ $fail = 0 ] || cat "$T/log"
exit $fail
