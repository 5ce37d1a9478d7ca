#!/usr/bin/env bash
# --max-conns 5 with one worker: five idle TLS connections are held, the
# sixth is closed at once (and counted), the five are not disturbed, and
# once they close new connections are served again.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 1 --max-conns 5 --log-level debug
refused0=$(metric mtlsd_connections_refused)
# poll until the /metrics connection above is gone on the server side
for ((i = 0; i < 40; i++)); do [ "$(metric mtlsd_connections_open)" = 1 ] && break; sleep 0.05; done

itc hold -n 5 --ready-file "$T/ready" --until-file "$T/release" --max-wait "$(slow 30)" > "$T/hold.json" &
hp=$!
IT_BG_PIDS+=("$hp")
for ((i = 0; i < 400; i++)); do [ -f "$T/ready" ] && break; sleep 0.05; done
check_eq "5 TLS connections open and idle" "$(cat "$T/ready" 2>/dev/null)" "ready 5"

r=$($ITC stall --port "$PORT" --max-wait "$(slow 5)")
check_eq "6th connection: closed by the server" "$(jget "$r" 'j["closed"]')" true
check_range "6th connection: closed at once" "$(jget "$r" 'j["elapsed"]')" 0 "$(slow 0.5)"
out=$(ccurl -w '%{http_code}' "$(url /)" 2>&1); rc=$?
check "7th (curl): fails while 5 are held (exit $rc)" test $rc -ne 0
check_not_contains "7th (curl): no response" "$out" "Hello World!"

touch "$T/release"
wait "$hp"
h=$(cat "$T/hold.json")
check_eq "the 5 held connections were not closed by the server" "$(jget "$h" 'j["closed_by_server"]')" "[]"

# The server notices the closes asynchronously: poll (bounded) for service.
ok=0
t0=$(date +%s.%N)
for ((i = 0; i < 200; i++)); do
    if [ "$(ccurl "$(url /)" 2>/dev/null)" = "Hello World!" ]; then ok=1; break; fi
    sleep 0.05
done
wait_s=$($PY -c "print(round($(date +%s.%N) - $t0, 2))")
check_eq "after the 5 close, a new connection is served (after $wait_s s)" $ok 1
# Connections the client closed (TCP FIN without close_notify) free their
# slot at once: there is nothing to linger for.
if $PY -c "import sys; sys.exit(0 if $wait_s < 1.0 * $IT_SLOW else 1)"; then
    pass "slots of peer-closed connections are freed within 1 s"
else
    fail "slots of peer-closed connections freed after $wait_s s (want < 1 s)"
fi
refused1=$(metric mtlsd_connections_refused)
check_range "mtlsd_connections_refused counts the refused connections" "$((refused1 - refused0))" 2 $((2 + i))
for ((i = 0; i < 100; i++)); do [ "$(metric mtlsd_connections_open)" = 1 ] && break; sleep 0.05; done
# ... and the limit is per worker, not a one-off: 5 keep-alive curls work at once.
cp=()
for i in 1 2 3 4 5; do ccurl -o "$T/c$i" "$(url /)" & cp+=($!); done
wait "${cp[@]}"
check_eq "5 concurrent connections (= --max-conns) all served" "$(cat "$T"/c1 "$T"/c2 "$T"/c3 "$T"/c4 "$T"/c5 | grep -o 'Hello World!' | wc -l)" 5
finish
