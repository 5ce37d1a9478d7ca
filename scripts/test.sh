#!/usr/bin/env bash
# Sets up (packages with the test clients, wolfSSL, builds) and runs the whole test suite twice:
# a normal build, then one with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test >/dev/null # the test clients, before cmake looks for libssl
scripts/build.sh build
scripts/build.sh build-asan -DMTLSD_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
status=0
echo "== tests: release build"
(cd build && ctest --output-on-failure -j2) || status=1
echo "== tests: address,undefined sanitizers"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2) || status=1
exit $status
