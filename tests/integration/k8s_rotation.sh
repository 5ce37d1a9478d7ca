#!/usr/bin/env bash
# Certificate rotation the way Kubernetes does it, with no signal sent: a
# directory laid out as a projected Secret (..TIMESTAMP/ holding tls.crt,
# tls.key, ca.crt; ..data -> it; visible names -> ..data/NAME), swapped like
# the kubelet does, while mtls-load keeps a bounded load running. Rotating
# the server certificate serves the new serial within seconds; rotating the
# client CA (through a bundle holding both, as trust-manager does) admits
# the new CA's clients and refuses the old one's, even with an old session
# ticket; a broken key keeps the old material and counts a failed reload.
# Valid clients see zero failed requests; the process never restarts.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kube.bash"
IT_WATCH=1 # mtlsd's default: the file watch on
. "$(dirname "$0")/pki.bash"

make_pki
S=$T/secret
kube_project "$S" tls.crt="$PKI/server.crt" tls.key="$PKI/server.key" ca.crt="$PKI/ca.crt"
SPORT=$(free_port)
SRV_CERT=$S/tls.crt SRV_KEY=$S/tls.key SRV_CLIENT_CA=$S/ca.crt \
    start_mtlsd --workers 2 --status-listen "127.0.0.1:$SPORT"
PID0=$MTLSD_PID
check_contains "status listener up" "$(status_get /readyz)" "200 ready"
check_eq "server certificate dated in /metrics" \
    "$(smetric 'mtlsd_certificate_not_after_timestamp_seconds{role="server",subject="O=mtlsd dev,CN=localhost"}')" \
    "$(date -u -d "$(openssl x509 -noout -enddate -in "$PKI/server.crt" | cut -d= -f2)" +%s)"
check_contains "client CA dated in /metrics" "$(curl -s "http://127.0.0.1:$SPORT/metrics")" \
    'mtlsd_certificate_not_after_timestamp_seconds{role="client_ca",subject="O=mtlsd dev,CN=mtlsd dev CA"}'

# load CERT KEY SECONDS OUT: bounded background load (new handshakes and
# resumptions alternate: -m resume), JSON summary in OUT
load() {
    "$MTLS_LOAD" -m resume -c 4 -R 100 -d "$3" --json -q --timeout "$(slow 10)" \
        --cert "$1" --key "$2" --cacert "$PKI/ca.crt" "https://localhost:$PORT/" >"$4" 2>"$4.err" &
    IT_BG_PIDS+=($!)
    LOAD_PID=$!
}
load_result() { # OUT -> "ok errors" (wait_load first: a subshell cannot wait)
    $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["ok"], j["errors"])' "$1" 2>/dev/null || echo "no result: $(head -c 300 "$1.err")"
}
wait_load() { wait "$LOAD_PID"; }
zero_errors() { [ "${1#* }" = 0 ] && [ "${1%% *}" -gt 0 ]; }

# ---- 1. server certificate -------------------------------------------------
new_server_cert srv2
OLD_SERIAL=$(served_serial)
check_eq "the first certificate is served" "$OLD_SERIAL" "$(kube_serial "$PKI/server.crt")"
load "$PKI/client.crt" "$PKI/client.key" 4 "$T/load1.json"
sleep 1
t0=$(date +%s.%N)
kube_project "$S" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$PKI/ca.crt"
if wait_served_serial "$(kube_serial "$T/srv2.crt")" 5; then
    pass "new server serial served $($PY -c "print(round($(date +%s.%N) - $t0, 2))") s after the ..data swap (openssl s_client)"
else
    fail "new server serial served within 5 s" "served: $(served_serial)" "$(tail -5 "$MTLSD_LOG")"
fi
wait_load; r=$(load_result "$T/load1.json")
check "zero failed requests across the server rotation (ok errors: $r)" zero_errors "$r"
check_contains "reload logged as a watch reload" "$(cat "$MTLSD_LOG")" "watch: reloaded"
check_eq "reloads_total{ok} = 1" "$(smetric 'mtlsd_reloads_total{result="ok"}')" 1

# ---- 2. client CA: old+new bundle, then new only ---------------------------
# The old CA's client saves a session (ticket) while it is still trusted.
sc_get() { # CERT KEY [SESS_IN] -> s_client output (TLS 1.3, /whoami)
    local args=(-connect "127.0.0.1:$PORT" -servername localhost -CAfile "$PKI/ca.crt"
        -cert "$1" -key "$2" -tls1_3 -ign_eof -sess_out "$T/sess.$RANDOM")
    [ $# -ge 3 ] && args+=(-sess_in "$3")
    printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout "$(slow 10)" openssl s_client "${args[@]}" 2>&1
}
cat "$PKI/ca.crt" "$PKI/other-ca.crt" >"$T/both.crt"
kube_project "$S" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$T/both.crt"
for ((i = 0; i < 50; i++)); do [ "$(smetric 'mtlsd_reloads_total{result="ok"}')" = 2 ] && break; sleep 0.1; done
check_eq "bundle of both CAs loaded by the watch" "$(smetric 'mtlsd_reloads_total{result="ok"}')" 2
out=$(sc_get "$PKI/other-client.crt" "$PKI/other-client.key")
check_contains "new CA's client accepted with the bundle" "$out" 'CN=intruder"'
rm -f "$T"/old.sess
out=$(printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout "$(slow 10)" openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
        -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -tls1_3 -ign_eof \
        -sess_out "$T/old.sess" 2>&1)
check_contains "old CA's client accepted with the bundle" "$out" '"resumed":false'
check "old CA's client holds a session ticket" test -s "$T/old.sess"

load "$PKI/other-client.crt" "$PKI/other-client.key" 3 "$T/load2.json"
sleep 1
kube_project "$S" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$PKI/other-ca.crt"
for ((i = 0; i < 50; i++)); do [ "$(smetric 'mtlsd_reloads_total{result="ok"}')" = 3 ] && break; sleep 0.1; done
check_eq "new CA alone loaded by the watch" "$(smetric 'mtlsd_reloads_total{result="ok"}')" 3
wait_load; r=$(load_result "$T/load2.json")
check "zero failed requests from the new CA's client across the CA rotation (ok errors: $r)" zero_errors "$r"
out=$(sc_get "$PKI/client.crt" "$PKI/client.key" "$T/old.sess")
check_not_contains "old CA's client with its old ticket: not resumed" "$out" "Reused,"
check_not_contains "old CA's client with its old ticket: no answer" "$out" '"subject"'
out=$(sc_get "$PKI/client.crt" "$PKI/client.key")
check_not_contains "old CA's client refused on a full handshake" "$out" '"subject"'
out=$(sc_get "$PKI/other-client.crt" "$PKI/other-client.key")
check_contains "new CA's client accepted" "$out" 'CN=intruder"'
check_contains "client_ca metric follows the new CA" "$(curl -s "http://127.0.0.1:$SPORT/metrics")" \
    'role="client_ca",subject="O=mtlsd dev,CN=untrusted CA"'

# ---- 3. a broken key: the old material stays ---------------------------------
failed0=$(smetric 'mtlsd_reloads_total{result="failed"}')
load "$PKI/other-client.crt" "$PKI/other-client.key" 3 "$T/load3.json"
sleep 0.5
printf -- '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n' >"$T/broken.key"
new_server_cert srv3
kube_project "$S" tls.crt="$T/srv3.crt" tls.key="$T/broken.key" ca.crt="$PKI/other-ca.crt"
if wait_smetric_gt 'mtlsd_reloads_total{result="failed"}' "$failed0" 5; then
    pass "broken key: reloads_total{failed} incremented"
else
    fail "broken key: reloads_total{failed} incremented" "$(tail -5 "$MTLSD_LOG")"
fi
wait_load; r=$(load_result "$T/load3.json")
check "zero failed requests across the broken update (ok errors: $r)" zero_errors "$r"
check_eq "the previous certificate is still served" "$(served_serial)" "$(kube_serial "$T/srv2.crt")"
check_contains "failure logged, old material kept" "$(cat "$MTLSD_LOG")" "watch: reload failed, keeping the current certificates"
# the fix arrives: picked up like any update
kube_project "$S" tls.crt="$T/srv3.crt" tls.key="$T/srv3.key" ca.crt="$PKI/other-ca.crt"
check "fixed key picked up" wait_served_serial "$(kube_serial "$T/srv3.crt")" 5
# an expired server certificate (with its matching key) is refused too
M=$T; pki_ca_db "$T/cadb" "$PKI/ca.crt" "$PKI/ca.key"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$T/exp.ext"
pki_sign "$T/cadb" "$T/expired" "/CN=localhost" "$T/exp.ext" "$(pki_date -86400)" "$(pki_date -3600)"
failed0=$(smetric 'mtlsd_reloads_total{result="failed"}')
kube_project "$S" tls.crt="$T/expired.crt" tls.key="$T/expired.key" ca.crt="$PKI/other-ca.crt"
check "expired server certificate: reload refused" \
    wait_smetric_gt 'mtlsd_reloads_total{result="failed"}' "$failed0" 5
check_contains "expired server certificate: says so" "$(cat "$MTLSD_LOG")" "has expired"
check_eq "expired server certificate: the current one stays" "$(served_serial)" "$(kube_serial "$T/srv3.crt")"

# ---- 4. no restart, and a file-level rewrite outside ..data ---------------
check_eq "same process throughout" "$MTLSD_PID" "$PID0"
check_contains "last reload timestamp is recent" \
    "$($PY -c "import sys,time; print('recent' if time.time() - float(sys.argv[1]) < 60 else 'old')" "$(smetric mtlsd_last_reload_timestamp_seconds)")" recent
stop_mtlsd TERM
check_eq "exit 0" "$MTLSD_RC" 0

# ---- 5. --watch off: nothing reloads; --reload-interval without inotify ---
kube_project "$S" tls.crt="$PKI/server.crt" tls.key="$PKI/server.key" ca.crt="$PKI/ca.crt"
SRV_CERT=$S/tls.crt SRV_KEY=$S/tls.key SRV_CLIENT_CA=$S/ca.crt \
    start_mtlsd --workers 1 --watch off --status-listen "127.0.0.1:$SPORT"
kube_project "$S" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$PKI/ca.crt"
sleep "$(slow 1)"
check_eq "--watch off: old serial still served" "$(served_serial)" "$(kube_serial "$PKI/server.crt")"
stop_mtlsd TERM
SRV_CERT=$S/tls.crt SRV_KEY=$S/tls.key SRV_CLIENT_CA=$S/ca.crt \
    start_mtlsd --workers 1 --watch off --reload-interval 0.3
kube_project "$S" tls.crt="$T/srv3.crt" tls.key="$T/srv3.key" ca.crt="$PKI/ca.crt"
check "--reload-interval: new serial served" wait_served_serial "$(kube_serial "$T/srv3.crt")" 5

# ---- 6. a plain file replaced in place (no symlinks) is picked up too -----
stop_mtlsd TERM
P=$T/plain; mkdir -p "$P"
cp "$PKI/server.crt" "$P/s.crt"; cp "$PKI/server.key" "$P/s.key"
SRV_CERT=$P/s.crt SRV_KEY=$P/s.key start_mtlsd --workers 1
cp "$T/srv2.key" "$P/s.key.tmp" && cp "$T/srv2.crt" "$P/s.crt.tmp"
mv "$P/s.key.tmp" "$P/s.key"; mv "$P/s.crt.tmp" "$P/s.crt"
check "renamed-over plain files: new serial served (a mismatched pair in between is retried)" \
    wait_served_serial "$(kube_serial "$T/srv2.crt")" 5
stop_mtlsd TERM

# ---- 7. ticket keys from a Secret (symlinked, 0440 with our own group as
# fsGroup makes it): prepend a key, old tickets still resume; drop the old
# key, they no longer do --------------------------------------------------
K=$T/tickets
head -c 80 /dev/urandom >"$T/keyA"; head -c 80 /dev/urandom >"$T/keyB"
cat "$T/keyB" "$T/keyA" >"$T/keyBA"
kube_project "$K" ticket.keys="$T/keyA"
chgrp "$(id -g)" "$K"/..data/ticket.keys; chmod 440 "$K"/..data/ticket.keys
start_mtlsd --workers 1 --ticket-key-file "$K/ticket.keys" --status-listen "127.0.0.1:$SPORT"
sess() { # SESS_OUT [SESS_IN] -> s_client output
    local args=(-connect "127.0.0.1:$PORT" -servername localhost -CAfile "$PKI/ca.crt"
        -cert "$PKI/client.crt" -key "$PKI/client.key" -tls1_3 -ign_eof -sess_out "$1")
    [ $# -ge 2 ] && args+=(-sess_in "$2")
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout "$(slow 10)" openssl s_client "${args[@]}" 2>&1
}
sess "$T/tA.sess" >/dev/null
check "ticket under key A saved" test -s "$T/tA.sess"
ok0=$(smetric 'mtlsd_reloads_total{result="ok"}')
chmod 600 "$T/keyBA"
kube_project "$K" ticket.keys="$T/keyBA"
chgrp "$(id -g)" "$K"/..data/ticket.keys; chmod 440 "$K"/..data/ticket.keys
check "prepended key file picked up by the watch" wait_smetric_gt 'mtlsd_reloads_total{result="ok"}' "$ok0" 5
out=$(sess "$T/tB.sess" "$T/tA.sess")
check_contains "after prepending B: a ticket under A still resumes" "$out" "Reused,"
ok0=$(smetric 'mtlsd_reloads_total{result="ok"}')
kube_project "$K" ticket.keys="$T/keyB"
chgrp "$(id -g)" "$K"/..data/ticket.keys; chmod 440 "$K"/..data/ticket.keys
check "key file without A picked up by the watch" wait_smetric_gt 'mtlsd_reloads_total{result="ok"}' "$ok0" 5
out=$(sess "$T/tC.sess" "$T/tA.sess")
check_not_contains "after dropping A: a ticket under A does not resume" "$out" "Reused,"
check_contains "after dropping A: full handshake still served" "$out" "Hello World!"
out=$(sess "$T/tD.sess" "$T/tB.sess")
check_contains "a ticket under B resumes" "$out" "Reused,"
finish
