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

    # resume: TLS 1.3 tickets and TLS 1.2 session IDs really resume
    j=$("${L[@]}" "${GOOD[@]}" --mode resume -c 1 --requests 40 --json -q "$U"); rc=$?
    check_eq "mtls-load resume: exit 0, 40 ok, 0 errors" "$rc $(jget "$j" '[j["ok"], j["errors"]]')" "0 [40, 0]"
    check "mtls-load resume: resumed > 0 ($(jget "$j" 'j["resumed"]'))" test "$(jget "$j" 'j["resumed"]')" -gt 0
    j=$("${L[@]}" "${GOOD[@]}" --mode resume -c 1 --tls 1.2 --no-tickets --requests 40 --json -q "$U"); rc=$?
    check "mtls-load resume TLS 1.2 session IDs: resumed > 0 ($(jget "$j" 'j["resumed"]'), rc $rc)" \
        test "$(jget "$j" 'j["resumed"]')" -gt 0
    # the benchmark's cheap client: one reused X25519 key share, no server check
    j=$("$MTLS_LOAD" --insecure --reuse-key-share "${GOOD[@]}" --mode new -n 20 --json -q "$U"); rc=$?
    check_eq "mtls-load --reuse-key-share --insecure new: exit 0, 20 ok, 0 errors" \
        "$rc $(jget "$j" '[j["ok"], j["errors"]]')" "0 [20, 0]"
    "$MTLS_LOAD" --reuse-key-share --tls 1.2 "${GOOD[@]}" --insecure -n 1 -q "$U" 2>/dev/null; rc=$?
    check_eq "mtls-load --reuse-key-share --tls 1.2: usage error (exit 2)" "$rc" 2
    # open model: a fixed rate, bounded in time
    j=$("${L[@]}" "${GOOD[@]}" --mode keepalive --connections 2 --rate 200 --duration 1 --json -q "$U"); rc=$?
    check_eq "mtls-load --rate 200 -d 1: exit 0, 0 errors" "$rc $(jget "$j" 'j["errors"]')" "0 0"
    # non-2xx answers make it fail, unless --allow-errors
    out=$("${L[@]}" "${GOOD[@]}" --mode new -n 3 "https://127.0.0.1:$PORT/nope" 2>&1); rc=$?
    check "mtls-load on a 404 path: exit non-zero ($rc)" test "$rc" -ne 0
    out=$("${L[@]}" "${GOOD[@]}" --mode new -n 3 --allow-errors "https://127.0.0.1:$PORT/nope" 2>&1); rc=$?
    check_eq "mtls-load --allow-errors on a 404 path: exit 0" "$rc" 0
    # a server that answers 500 (a small python TLS server)
    p500=$(free_port)
    $PY - "$p500" "$PKI/server.crt" "$PKI/server.key" <<'PY' &
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(500); self.send_header("Content-Length", "4"); self.end_headers()
        self.wfile.write(b"oops")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.timeout = 1
import time; end = time.time() + 20
while time.time() < end: srv.handle_request()
PY
    p500pid=$!
    for _ in $(seq 1 50); do $PY -c "import socket,sys; socket.create_connection(('127.0.0.1', $p500), 0.2)" 2>/dev/null && break; sleep 0.1; done
    out=$("${L[@]}" "${GOOD[@]}" --mode new -n 2 --timeout 5 "https://127.0.0.1:$p500/" 2>&1); rc=$?
    check "mtls-load against a server answering 500: exit non-zero ($rc)" test "$rc" -ne 0
    kill "$p500pid" 2>/dev/null; wait "$p500pid" 2>/dev/null
fi

# bench/compare end to end on mtlsd alone, shortened (the full comparison
# with nginx, HAProxy and lighttpd is run by hand: see README, Performance)
if [ -x "$MTLSD_SRC/bench/compare" ] && [ -z "${IT_ASAN:-}" ] && ! ldd "$MTLSD" | grep -q asan; then
    out=$(COMPARE_BASE_PORT=$(free_port) timeout 120 "$MTLSD_SRC/bench/compare" --quick --servers mtlsd \
        --duration 1 --rate 200 --idle 50 --build "$MTLSD_BUILD" --out "$T/compare" 2>&1); rc=$?
    check_eq "bench/compare --quick --servers mtlsd: exit 0" "$rc" 0
    check "bench/compare wrote a Markdown table" test -s "$T/compare/latest.md"
    check "bench/compare: a row per mode for mtlsd" test "$(grep -c '^| mtlsd |' "$T/compare/latest.md")" -ge 7
    check_contains "bench/compare: fixed-rate handshake rows" "$(cat "$T/compare/latest.md")" "| mtlsd | new@"
    check_contains "bench/compare: the saturation check is reported" "$(cat "$T/compare/latest.md")" \
        "closed-loop rows below 0.9 server utilisation"
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
