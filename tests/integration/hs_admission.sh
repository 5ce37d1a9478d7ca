#!/usr/bin/env bash
# Handshake admission (issue 9, idle memory): a worker has at most 64
# handshakes in progress, the others wait with their first bytes (conn.c
# conn_tls_start). Clients that send a ClientHello and never finish must
# slow the others down, never stop them; a burst of connections all comes
# up; a waiting connection that goes away is forgotten.
. "$(dirname "$0")/lib.sh"

STALL=100 # more than HS_LIVE_MAX
N=400
ulimit -n $((STALL + N + 256)) 2>/dev/null || N=100
make_pki
start_mtlsd --workers 1 --max-conns 2000 --handshake-timeout 30

# STALL clients: ClientHello sent, the server's flight never answered. They
# hold their handshake until --handshake-timeout (30 s, longer than the test).
cat >"$T/stall.py" <<'PY'
import socket, ssl, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    t = ctx.wrap_socket(s, do_handshake_on_connect=False)
    try:
        t.do_handshake()  # sends the ClientHello, then would wait
    except ssl.SSLWantReadError:
        pass
    held.append(t)
open(ready, "w").write("ready\n")
time.sleep(120)
PY
$PY "$T/stall.py" "$PORT" "$STALL" "$T/stall.ready" 2>"$T/stall.err" &
sp=$!
IT_BG_PIDS+=("$sp")
limit=$($PY -c "print(int(20 * 10 * $IT_SLOW))")
for ((i = 0; i < limit; i++)); do [ -f "$T/stall.ready" ] && break; sleep 0.1; done
check "$STALL stalled handshakes open" test -f "$T/stall.ready"
sleep 0.5

# Others are served while the stalled ones hold every slot: one starts at
# each loop iteration anyway.
t0=$(date +%s%N)
check_eq "served while $STALL handshakes stall" "$(ccurl "$(url /)" 2>/dev/null)" "Hello World!"
t1=$(date +%s%N)
check_range "and promptly (ms)" "$(( (t1 - t0) / 1000000 ))" 0 "$($PY -c "print(int(3000 * $IT_SLOW))")"
check_eq "and a TLS 1.2 client (openssl)" \
    "$(sclient_get -tls1_2 / "$PKI/client.crt" "$PKI/client.key" | grep -c 'Hello World!')" 1

# A burst of N idle connections beside them: all come up.
[ "$IT_SLOW" = 1 ] || N=150
idle_burst "$N"
limit=$($PY -c "print(int(60 * 10 * $IT_SLOW))")
check_contains "a burst of $N connections beside them comes up" "$(cat "$T/load.err")" \
    "established $N idle"
kill "$IDLE_PID" 2>/dev/null; wait "$IDLE_PID" 2>/dev/null

# The stalled clients go away (some while waiting for a slot): the slots
# come back and the server goes on.
kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
for ((i = 0; i < limit; i++)); do [ "$(metric mtlsd_connections_open)" -le 1 ] 2>/dev/null && break; sleep 0.1; done
check_range "every connection closed" "$(metric mtlsd_connections_open)" 0 1
check_eq "still serves" "$(ccurl "$(url /)" 2>/dev/null)" "Hello World!"
check "server alive" server_alive
finish
