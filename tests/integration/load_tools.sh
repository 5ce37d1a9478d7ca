#!/usr/bin/env bash
# Smoke test of the load tools against the server: mtls-load new and
# keepalive (JSON output, 0 errors), mtls-load with an untrusted client
# certificate fails, bench/wrk-mtls gets only 2xx.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 2
L=("$MTLS_LOAD" --cacert "$PKI/ca.crt" --servername localhost)
GOOD=(--cert "$PKI/client.crt" --key "$PKI/client.key")
U="https://127.0.0.1:$PORT/"

if [ ! -x "$MTLS_LOAD" ]; then
    fail "mtls-load not built at $MTLS_LOAD"
else
    j=$("${L[@]}" "${GOOD[@]}" --mode new --requests 50 --json -q "$U"); rc=$?
    check_eq "mtls-load --mode new -n 50: exit 0" "$rc" 0
    check "mtls-load --json parses" $PY -c 'import json,sys; json.loads(sys.argv[1])' "$j"
    check_eq "mtls-load new: 50 ok" "$(jget "$j" 'j["ok"]')" 50
    check_eq "mtls-load new: 0 errors" "$(jget "$j" 'j["errors"]')" 0
    check_eq "mtls-load new: 50 full handshakes" "$(jget "$j" 'j["handshakes"]')" 50
    j=$("${L[@]}" "${GOOD[@]}" --mode keepalive --connections 4 --requests 500 --json -q "$U"); rc=$?
    check_eq "mtls-load keepalive -c 4 -n 500: exit 0" "$rc" 0
    check_eq "mtls-load keepalive: 500 ok" "$(jget "$j" 'j["ok"]')" 500
    check_eq "mtls-load keepalive: 0 errors, 0 non-2xx" "$(jget "$j" '[j["errors"], j["non2xx"]]')" "[0, 0]"
    check_range "mtls-load keepalive: 4 handshakes" "$(jget "$j" 'j["handshakes"]')" 4 4
    j=$("${L[@]}" "${GOOD[@]}" --mode keepalive --tls 1.2 -c 2 -P 8 -n 400 --json -q "$U"); rc=$?
    check_eq "mtls-load TLS 1.2 pipelined -P 8: 400 ok" "$(jget "$j" '[j["ok"], j["errors"]]')" "[400, 0]"
    out=$("${L[@]}" --cert "$PKI/other-client.crt" --key "$PKI/other-client.key" --mode new -n 5 --timeout 5 "$U" 2>&1); rc=$?
    check "mtls-load with the untrusted client cert: exit non-zero ($rc)" test "$rc" -ne 0
    out=$("${L[@]}" --mode new -n 3 --timeout 5 "$U" 2>&1); rc=$?
    check "mtls-load without a client cert: exit non-zero ($rc)" test "$rc" -ne 0
fi

if [ -f "$MTLSD_BUILD/libwrk-mtls.so" ] && command -v wrk >/dev/null; then
    out=$(WRK_MTLS_LIB="$MTLSD_BUILD/libwrk-mtls.so" WRK_MTLS_CERT="$PKI/client.crt" WRK_MTLS_KEY="$PKI/client.key" \
        WRK_MTLS_CA="$PKI/ca.crt" timeout "$(slow 30)" bash "$MTLSD_SRC/bench/wrk-mtls" -t1 -c4 -d2s "$U" 2>&1); rc=$?
    check_eq "wrk-mtls: exit 0" "$rc" 0
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    check "wrk-mtls: some requests ($reqs)" test "${reqs:-0}" -gt 0
    check_not_contains "wrk-mtls: only 2xx" "$out" "Non-2xx"
    check_not_contains "wrk-mtls: no socket errors" "$out" "Socket errors"
else
    skip "wrk-mtls: $MTLSD_BUILD/libwrk-mtls.so or wrk missing"
fi
good_200
finish
