#!/usr/bin/env bash
# --handshake-timeout and --idle-timeout: a stalled handshake (nothing sent,
# part of a ClientHello, a whole ClientHello and then silence) and an idle
# keep-alive connection are closed after about the timeout: not at once and
# not never. Active connections are not. /metrics counts them. TLS 1.3
# KeyUpdates are not activity: only an answered request restarts the idle
# timer (issue 10, 2.1), and a connection sending KeyUpdates without
# requests is closed after a bounded number.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 1 --handshake-timeout 1 --idle-timeout 1
lo=0.8 hi=$(slow 4)
m0=$(metrics_snap)

# Stalled handshakes, three at once so the test takes one timeout, not three.
$ITC stall --port "$PORT" --max-wait "$(slow 8)" > "$T/s1" &
p1=$!
$ITC stall --port "$PORT" --partial-hello 40 --max-wait "$(slow 8)" > "$T/s2" &
p2=$!
$ITC stall --port "$PORT" --partial-hello 100000 --ca "$PKI/ca.crt" --max-wait "$(slow 8)" > "$T/s3" &
p3=$!
IT_BG_PIDS+=("$p1" "$p2" "$p3")
wait "$p1" "$p2" "$p3"
for i in 1 2 3; do
    r=$(cat "$T/s$i")
    name=("" "TCP connect, nothing sent" "first 40 bytes of a ClientHello" "whole ClientHello, then silence")
    check_eq "stalled handshake (${name[$i]}): closed by the server" "$(jget "$r" 'j["closed"]')" true
    check_range "stalled handshake (${name[$i]}): after ~1 s" "$(jget "$r" 'j["elapsed"]')" $lo "$hi"
done
check "whole ClientHello got a server flight before the close" test "$(jget "$(cat "$T/s3")" 'j["received"]')" -gt 100
good_200 "after stalled handshakes"

# Idle after a request (keep-alive), and idle right after the handshake.
itc req --expect 1 --quiet "$(slow 8)" --data 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' > "$T/i1" &
p1=$!
IT_BG_PIDS+=("$p1")
r2=$(itc req --quiet "$(slow 8)" --data '')
wait "$p1"
r1=$(cat "$T/i1")
check_eq "idle keep-alive: answered first" "$(jget "$r1" 'j["statuses"]')" "[200]"
check_eq "idle keep-alive: closed by the server" "$(jget "$r1" 'j["closed"]')" true
check_range "idle keep-alive: closed after ~1 s" "$(jget "$r1" 'j["elapsed_after_send"]')" $lo "$hi"
check_eq "idle after handshake, no request: closed by the server" "$(jget "$r2" 'j["closed"]')" true
check_range "idle after handshake: closed after ~1 s" "$(jget "$r2" 'j["elapsed_after_send"]')" $lo "$hi"

# Active: a request every 0.4 s for ~2.4 s is never idle for 1 s.
one='GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
len=$(printf '%b' "$one" | wc -c)
r=$(itc req --chunk "$len" --delay 0.4 --expect 6 --stop --repeat 6 --data "$one")
check_eq "active connection (request every 0.4 s) not cut by --idle-timeout 1" "$(jget "$r" 'j["statuses"]')" "[200, 200, 200, 200, 200, 200]"
check_eq "... and still open after 2.4 s" "$(jget "$r" 'j["closed"]')" false

# A request that stops half way (headers never finished) is not kept forever.
r=$(itc req --quiet "$(slow 8)" --data 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ')
check_eq "half-sent request: closed by the server" "$(jget "$r" 'j["closed"]')" true
check_range "half-sent request: closed within the idle timeout" "$(jget "$r" 'j["elapsed_after_send"]')" $lo "$hi"

# KeyUpdates (openssl s_client's K: update_requested, so each gets one back)
# every 0.3 s and no request: closed by the idle timeout, not kept open by the
# replies. (Before the fix the connection lived as long as the KeyUpdates.)
# kus N DELAY HOLD: N KeyUpdates DELAY s apart, stdin then open HOLD s more;
# prints s_client's seconds to exit, then its count of KeyUpdates sent.
kus() {
    local t0 t1
    t0=$(date +%s.%N)
    (for ((k = 0; k < $1; k++)); do echo K; sleep "$2"; done; sleep "$3") |
        timeout "$(slow 60)" openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
            -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -tls1_3 \
            >"$T/ku.out" 2>&1
    t1=$(date +%s.%N)
    echo "$($PY -c "print(round($t1 - $t0, 2))") $(grep -c KEYUPDATE "$T/ku.out")"
}
r=($(kus "$($PY -c "print(int(40 * $IT_SLOW))")" 0.3 0))
check_range "KeyUpdate every 0.3 s, no request: closed by --idle-timeout 1" "${r[0]}" $lo "$hi"
check_range "... after a few KeyUpdates (not all $((40 * ${IT_SLOW%.*})))" "${r[1]}" 1 $((15 * ${IT_SLOW%.*}))

m1=$(metrics_snap)
ht=$(( $(mval "$m1" mtlsd_handshake_timeouts) - $(mval "$m0" mtlsd_handshake_timeouts) ))
it=$(( $(mval "$m1" mtlsd_idle_timeouts) - $(mval "$m0" mtlsd_idle_timeouts) ))
check_eq "mtlsd_handshake_timeouts +3" "$ht" 3
check_eq "mtlsd_idle_timeouts +4 (keep-alive, no request, half-sent request, KeyUpdates)" "$it" 4
good_200

# A KeyUpdate flood without requests is bounded per connection (~150 between
# two answers) even when the idle timeout is long.
stop_mtlsd TERM
start_mtlsd --workers 1 --idle-timeout 60 --log-level debug
r=($(kus 400 0.005 "$(slow 20)"))
check_range "400 KeyUpdates, no request: closed long before the idle timeout" "${r[0]}" 0 "$(slow 15)"
check_range "... after ~150 of them" "${r[1]}" 100 200
check_contains "... and the log says why" "$(cat "$MTLSD_LOG")" "too many KeyUpdates without a request"
# Requests between them reset the count: 3 x 100 KeyUpdates, each batch
# followed by a request, all answered on one connection.
for b in 1 2 3; do
    for ((k = 0; k < 100; k++)); do echo K; done
    printf 'GET /healthz HTTP/1.1\nHost: x\n\n'
done > "$T/ku-req.in"
# (s_client takes a read starting with K for a KeyUpdate and drops the rest,
# and sends a read that does not start with K as data: the request lines come
# well apart from the Ks on both sides, or "\nK\n" reaches the server.)
(while IFS= read -r l; do
    if [ "$l" = K ]; then echo K; sleep 0.005; else sleep 0.2; printf '%s\n' "$l"; sleep 0.2; fi
done <"$T/ku-req.in"
    sleep "$(slow 2)") |
    timeout "$(slow 60)" openssl s_client -crlf -connect "127.0.0.1:$PORT" -servername localhost \
        -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -tls1_3 \
        >"$T/ku-req.out" 2>&1
check_eq "3 x (100 KeyUpdates + a request) on one connection: 3 answers" \
    "$(grep -ao 'HTTP/1.1 200' "$T/ku-req.out" | wc -l)" 3 # s_client may print it after "read R BLOCK" on one line
# (s_client sends one KeyUpdate per read of its input: a few lines merge)
check_range "... with more KeyUpdates than one connection may send without requests" \
    "$(grep -c KEYUPDATE "$T/ku-req.out")" 160 300
check_eq "... and the connection was not closed for them" \
    "$(grep -c 'too many KeyUpdates' "$MTLSD_LOG")" 1
good_200 "after the KeyUpdate flood"
finish
