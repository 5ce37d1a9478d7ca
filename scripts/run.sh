#!/usr/bin/env bash
# Sets up (packages, wolfSSL, build, development PKI) and runs mtlsd on
# 127.0.0.1:8443. Extra arguments go to mtlsd (they override the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build >&2
[ -f certs/out/ca.crt ] || certs/gen.sh certs/out
cat >&2 <<MSG

Try it:
  curl --cert certs/out/client.crt --key certs/out/client.key --cacert certs/out/ca.crt https://localhost:8443/
  curl --cert certs/out/client.crt --key certs/out/client.key --cacert certs/out/ca.crt https://localhost:8443/whoami

MSG
exec build/mtlsd --listen 127.0.0.1:8443 --cert certs/out/server.crt --key certs/out/server.key \
    --client-ca certs/out/ca.crt "$@"
