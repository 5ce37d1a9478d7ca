#!/usr/bin/env bash
# Issue 10 item 2.4: a CRL past its nextUpdate stops everything verified
# under it, not only fresh verifications: cache hits, TLS 1.3 and 1.2
# tickets, TLS 1.2 session IDs, and requests on a connection opened before.
# The server gets a CRL due in a few seconds; before that the good client
# is served (chain cached, sessions saved); after it, each path is refused
# (--client-auth present: 403, reason "crl"), and resumption falls back to
# a full handshake.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki_matrix
life=$(slow 8)
life=${life%.*}
openssl ca -batch -config "$M/cadb/ca.cnf" -gencrl -crlsec "$life" -out "$T/short.crl" \
    >>"$T/crl.log" 2>&1 || { fail "openssl ca -gencrl -crlsec" "$(cat "$T/crl.log")"; finish; }
due=$(date -u -d "$(openssl crl -in "$T/short.crl" -noout -nextupdate | cut -d= -f2)" +%s)
note "CRL nextUpdate in $((due - $(date +%s))) s"

# sess VERSION OUT [IN]: GET /whoami with s_client, saving the session to OUT
# and offering IN ("1.2id": TLS 1.2 session ID, no ticket)
sess() {
    local args=(-connect "127.0.0.1:$PORT" -servername localhost -CAfile "$PKI/ca.crt"
        -cert "$PKI/client.crt" -key "$PKI/client.key" -sess_out "$2" -ign_eof)
    if [ "$1" = 1.2id ]; then args+=(-tls1_2 -no_ticket); else args+=("-tls1_${1#1.}"); fi
    [ $# -ge 3 ] && args+=(-sess_in "$3")
    printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout "$(slow 15)" openssl s_client "${args[@]}" 2>&1
}

# /metrics public: past nextUpdate no client is authorized any more
start_mtlsd --workers 1 --client-auth present --crl "$T/short.crl" --idle-timeout 300 \
    --public-path /metrics
w=$(ccurl "$(url /whoami)" 2>&1)
check_eq "before nextUpdate: verified (not cached)" "$(jget "$w" 'j["chain_cached"]')" false
w=$(ccurl "$(url /whoami)" 2>&1)
check_eq "before nextUpdate: a cache hit" "$(jget "$w" 'j["chain_cached"]')" true
# a connection that asks once now and once after nextUpdate
req='GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'
itc req --data "$req$req" --chunk 35 --delay "$((due - $(date +%s) + 2))" --expect 2 --stop \
    --timeout "$((life + 30))" --max-wait "$((life + 30))" >"$T/keepalive.json" &
IT_BG_PIDS+=($!)
for v in 1.3 1.2 1.2id; do
    out=$(sess $v "$T/s$v.pem")
    check_contains "before nextUpdate: TLS$v s_client -> /whoami" "$out" '"chain_cached":'
    out=$(sess $v "$T/s$v.pem.2" "$T/s$v.pem")
    check_contains "before nextUpdate: TLS$v resumes" "$out" "Reused, "
done
left=$((due - $(date +%s)))
check "the steps before nextUpdate took less than the CRL's life ($left s left)" test "$left" -ge 1

while [ "$(date +%s)" -le $((due + 1)) ]; do sleep 0.2; done
note "---- past nextUpdate"
s0=$(metrics_snap)
check_eq "past nextUpdate: the cached client -> 403" "$(http_status "$(ccurl -i "$(url /)" 2>&1)")" 403
for v in 1.3 1.2 1.2id; do
    out=$(sess $v "$T/s$v.pem.3" "$T/s$v.pem")
    check_not_contains "past nextUpdate: TLS$v session not resumed" "$out" "Reused, "
    check_eq "past nextUpdate: TLS$v full handshake -> 403" "$(http_status "$out")" 403
done
s1=$(metrics_snap)
check_eq "past nextUpdate: no cache hit" "$(mdelta "$s0" "$s1" mtlsd_verify_cache_hits)" 0
check_eq "past nextUpdate: refusals are CRL ones (+ the /metrics read)" \
    "$(reason_deltas "$s0" "$s1")" " crl+5"
wait "${IT_BG_PIDS[0]}"
ka=$(cat "$T/keepalive.json")
check_eq "a connection opened before: 200, then 403 past nextUpdate" \
    "$(jget "$ka" 'j["statuses"]')" "[200, 403]"
check "server still alive" server_alive
finish
