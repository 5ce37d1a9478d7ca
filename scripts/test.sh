#!/usr/bin/env bash
# Sets up (packages with the test clients, wolfSSL, builds) and runs the whole
# test suite twice,
# once per I/O backend (MTLSD_IO sets mtlsd's default --io): the normal
# build on epoll, then the AddressSanitizer + UndefinedBehaviorSanitizer
# build on io_uring. (it_io_backend covers both backends in both passes.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test >/dev/null # the test clients, before cmake looks for libssl
scripts/build.sh build
scripts/build.sh build-asan -DMTLSD_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
status=0
echo "== tests: release build, --io epoll"
(cd build && MTLSD_IO=epoll ctest --output-on-failure -j2) || status=1
echo "== tests: address,undefined sanitizers, --io io_uring"
(cd build-asan && MTLSD_IO=io_uring ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2) || status=1
echo "== the system-library build (Debian's libwolfssl)"
tests/system_wolfssl.sh build-system || status=1
exit $status
