#!/usr/bin/env bash
# The CMake option for distributions (-DMTLSD_SYSTEM_WOLFSSL=ON, README
# "Building wolfSSL") kept working: mtlsd built against Debian's libwolfssl
# compiles without warnings, starts with what that library lacks said at
# start (--tickets off: it has no ticket callback), and serves mTLS: 200
# with a client certificate of the CA, no handshake without one, and
# another request after the refusal. The integration tests' library
# (tests/integration/lib.sh) drives the binary built here.
#   tests/system_wolfssl.sh BUILD_DIR
cd "$(dirname "$0")/.." || exit 1
dir=${1:-build-system}
mkdir -p "$dir" && cmake -S . -B "$dir" -DMTLSD_SYSTEM_WOLFSSL=ON -DCMAKE_BUILD_TYPE=Release >"$dir/build.log" 2>&1 &&
    cmake --build "$dir" -j2 --target mtlsd >>"$dir/build.log" 2>&1 ||
    { tail -20 "$dir/build.log"; echo "FAIL: the system-library build"; exit 1; }
MTLSD=$(cd "$dir" && pwd)/mtlsd
. tests/integration/lib.sh

make_pki
start_mtlsd --workers 1 --tickets off
check_eq "system libwolfssl: 200 with a client certificate" \
    "$(ccurl -o /dev/null -w '%{http_code}' "$(url /)")" 200
check_eq "system libwolfssl: no certificate, no answer" \
    "$(ncurl -o /dev/null -w '%{http_code}' "$(url /)" 2>/dev/null)" 000
check_eq "system libwolfssl: still serving after the refusal" \
    "$(ccurl -o /dev/null -w '%{http_code}' "$(url /)")" 200
check_contains "system libwolfssl: says it sends no CA names" "$(cat "$MTLSD_LOG")" "cannot send CA names"
finish
