#!/usr/bin/env bash
# Builds mtlsd (and its tools) into build/ against the cached wolfSSL.
#   scripts/build.sh [BUILD_DIR [extra cmake args...]]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
prefix=$(scripts/deps.sh | tail -n 1)
cmake -S . -B "$dir" -DMTLSD_WOLFSSL_PREFIX="$prefix" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
