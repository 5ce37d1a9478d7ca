#!/usr/bin/env bash
# The plain-HTTP status listener (--status-listen): /healthz, /readyz and
# /metrics without a client certificate, nothing else (404, 405, 400, 431),
# its own connection limit, and the SIGTERM sequence: /readyz 503 at once,
# still serving for --shutdown-delay, then the drain. Also sd_notify
# readiness (READY=1, RELOADING=1, STOPPING=1 to $NOTIFY_SOCKET).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kube.bash"

make_pki
SPORT=$(free_port)
NSOCK=$T/notify.sock
# a datagram listener playing systemd: every message on one line
$PY -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(60)
out = open(sys.argv[2], "a", buffering=1)
try:
    while True:
        out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
except Exception:
    pass' "$NSOCK" "$T/notify.log" &
IT_BG_PIDS+=($!)
for ((i = 0; i < 50; i++)); do [ -S "$NSOCK" ] && break; sleep 0.05; done

DELAY=$(slow 6) # long enough for the probes below on a loaded machine
NOTIFY_SOCKET=$NSOCK start_mtlsd --workers 1 --status-listen "127.0.0.1:$SPORT" --shutdown-delay "$DELAY"
check_contains "GET /healthz -> 200" "$(status_get /healthz)" "200 ok"
check_contains "GET /readyz -> 200 while serving" "$(status_get /readyz)" "200 ready"
check_contains "GET /readyz?verbose -> 200 (query ignored)" "$(status_get '/readyz?verbose')" "200 ready"
m=$(curl -sS --max-time 5 "http://127.0.0.1:$SPORT/metrics")
check_contains "GET /metrics without a client certificate" "$m" "mtlsd_requests "
check_contains "/metrics has the reload counter" "$m" 'mtlsd_reloads_total{result="ok"} 0'
check_contains "GET / -> 404 (nothing else is served)" "$(status_get /)" "404"
check_contains "GET /whoami -> 404" "$(status_get /whoami)" "404"
check_contains "POST /healthz -> 405" \
    "$(curl -sS -o /dev/null -w '%{http_code}' -X POST --max-time 5 "http://127.0.0.1:$SPORT/healthz")" "405"
r=$(printf 'garbage\r\n\r\n' | timeout 5 $PY -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read())
print(s.recv(100).decode(errors="replace").split("\r\n")[0])' "$SPORT")
check_eq "malformed request line -> 400" "$r" "HTTP/1.1 400 Bad Request"
r=$(timeout 5 $PY -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 5000)
print(s.recv(100).decode(errors="replace").split("\r\n")[0])' "$SPORT")
check_eq "oversized request head -> 431 (bounded)" "$r" "HTTP/1.1 431 Request Header Fields Too Large"
# a TLS client on the status port gets no TLS (plain HTTP only)
out=$(timeout 5 openssl s_client -connect "127.0.0.1:$SPORT" </dev/null 2>&1)
check_not_contains "no TLS on the status port" "$out" "BEGIN CERTIFICATE"
# connection limit: 16 idle connections fill it; the 17th is closed at
# accept; when they go, probes work again
r=$(timeout 20 $PY -c '
import socket, sys, time
port = int(sys.argv[1]); held = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
time.sleep(0.3)
x = socket.create_connection(("127.0.0.1", port)); x.settimeout(3)
x.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
try:
    d = x.recv(100)
    print("closed" if d == b"" else "answered")
except ConnectionResetError:
    print("closed")
except socket.timeout:
    print("timeout")
' "$SPORT")
check_eq "17th concurrent status connection closed at accept" "$r" "closed"
check_contains "after the limit: /healthz -> 200 again" "$(status_get /healthz)" "200 ok"
good_200 "TLS port unaffected by the status listener"
# slow status client closed by its timer; the TLS side does not care
check "server alive" server_alive

# ---- sd_notify and the SIGTERM sequence ----------------------------------
kill -HUP "$MTLSD_PID"
for ((i = 0; i < 50; i++)); do grep -q RELOADING "$T/notify.log" 2>/dev/null && break; sleep 0.05; done
check_contains "sd_notify: READY=1 at start" "$(cat "$T/notify.log")" "READY=1"
check_contains "sd_notify: RELOADING=1 with MONOTONIC_USEC on SIGHUP" "$(cat "$T/notify.log")" "RELOADING=1 MONOTONIC_USEC="
t0=$(date +%s.%N)
kill -TERM "$MTLSD_PID"
sleep 0.2
check_contains "SIGTERM: /readyz -> 503 at once" "$(status_get /readyz)" "503"
out=$(ccurl -w ' %{http_code}' "$(url /)" 2>&1)
el=$($PY -c "print($(date +%s.%N) - $t0)")
if [ "$out" = "Hello World! 200" ]; then
    pass "during --shutdown-delay the TLS listener still accepts"
elif $PY -c "import sys; sys.exit(0 if $el > $DELAY - 0.5 else 1)"; then
    skip "TLS request during the delay: the machine took ${el} s to get there (delay $DELAY s)"
else
    fail "during --shutdown-delay the TLS listener still accepts" "$out (after $el s)"
fi
check_contains "SIGTERM: /healthz still 200" "$(status_get /healthz)" "200"
wait_gone "$MTLSD_PID" "$(slow 10)"
wait "$MTLSD_PID"; rc=$?
el=$($PY -c "print(round($(date +%s.%N) - $t0, 2))")
check_range "exit after the $DELAY s delay (s)" "$el" "$($PY -c "print($DELAY - 0.1)")" "$($PY -c "print($DELAY + $(slow 8))")"
check_eq "exit 0" "$rc" 0
MTLSD_PID=""
check_contains "sd_notify: STOPPING=1" "$(cat "$T/notify.log")" "STOPPING=1"
check_contains "delay logged" "$(cat "$MTLSD_LOG")" "/readyz now 503"

# ---- with --upstream: /readyz follows the upstream's last connect ----------
UPORT=$(free_port) # nothing listens there yet
SPORT=$(free_port)
start_mtlsd --workers 1 --status-listen "127.0.0.1:$SPORT" --upstream "http://127.0.0.1:$UPORT"
check_contains "upstream: /readyz -> 200 before any connect" "$(status_get /readyz)" "200 ready"
check_eq "upstream down: the request gets 502" "$(ccurl -o /dev/null -w '%{http_code}' "$(url /)" 2>&1)" "502"
check_contains "upstream down: /readyz -> 503" "$(status_get /readyz)" "503"
(cd "$T" && exec $PY -m http.server --bind 127.0.0.1 "$UPORT" >"$T/up.log" 2>&1) &
UP=$!; IT_BG_PIDS+=($UP)
for ((i = 0; i < 100; i++)); do port_is_free "$UPORT" || break; sleep 0.05; done
check_eq "upstream back: the request gets 200" "$(ccurl -o /dev/null -w '%{http_code}' "$(url /)" 2>&1)" "200"
check_contains "upstream back: /readyz -> 200" "$(status_get /readyz)" "200 ready"
kill "$UP" 2>/dev/null
stop_mtlsd TERM

# ---- a status port that is taken: exit 2 with the flag named ---------------
HP=$(free_port)
$PY -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); print("held", flush=True); time.sleep(10)' "$HP" >"$T/hold.out" &
HOLD=$!; IT_BG_PIDS+=($HOLD)
for ((i = 0; i < 50; i++)); do grep -q held "$T/hold.out" && break; sleep 0.05; done
out=$(timeout 10 "$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --listen "127.0.0.1:$(free_port)" --status-listen "127.0.0.1:$HP" 2>&1); rc=$?
check_eq "status port in use: exit 2" "$rc" 2
check_contains "status port in use: message names --status-listen" "$out" "--status-listen 127.0.0.1:$HP: Address already in use"
kill "$HOLD" 2>/dev/null
finish
