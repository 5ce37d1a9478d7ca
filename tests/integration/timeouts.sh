#!/usr/bin/env bash
# --handshake-timeout and --idle-timeout: a stalled handshake (nothing sent,
# part of a ClientHello, a whole ClientHello and then silence) and an idle
# keep-alive connection are closed after about the timeout: not at once and
# not never. Active connections are not. /metrics counts them.
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

m1=$(metrics_snap)
ht=$(( $(mval "$m1" mtlsd_handshake_timeouts) - $(mval "$m0" mtlsd_handshake_timeouts) ))
it=$(( $(mval "$m1" mtlsd_idle_timeouts) - $(mval "$m0" mtlsd_idle_timeouts) ))
check_eq "mtlsd_handshake_timeouts +3" "$ht" 3
check_eq "mtlsd_idle_timeouts +3 (keep-alive, no request, half-sent request)" "$it" 3
good_200
finish
