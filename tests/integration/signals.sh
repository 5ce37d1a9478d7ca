#!/usr/bin/env bash
# SIGTERM and SIGINT: stop accepting, let in-flight requests finish within
# --shutdown-grace, close idle keep-alive connections, exit 0.
. "$(dirname "$0")/lib.sh"

make_pki
for sig in TERM INT; do
    start_mtlsd --workers 2 --shutdown-grace 2
    # an idle keep-alive connection (one request answered)
    rm -f "$T/ready" "$T/release"
    itc hold -n 1 --data 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' --ready-file "$T/ready" \
        --until-file "$T/release" --max-wait "$(slow 20)" > "$T/hold.json" &
    hp=$!; IT_BG_PIDS+=("$hp")
    for ((i = 0; i < 400; i++)); do [ -f "$T/ready" ] && break; sleep 0.05; done
    check_eq "SIG$sig: keep-alive connection open" "$(cat "$T/ready" 2>/dev/null)" "ready 1"
    pid=$MTLSD_PID
    t0=$(date +%s.%N)
    stop_mtlsd $sig
    el=$($PY -c "print(round($(date +%s.%N) - $t0, 2))")
    check_eq "SIG$sig with an idle keep-alive connection: exit 0" "$MTLSD_RC" 0
    check_range "SIG$sig: exits within the grace period" "$el" 0 "$(slow 3.5)"
    touch "$T/release"; wait "$hp"
    check_eq "SIG$sig: the keep-alive connection was closed" "$(jget "$(cat "$T/hold.json")" 'j["closed_by_server"]')" "[0]"
    check "SIG$sig: port closed after exit" port_is_free "$PORT"
    check_not_contains "SIG$sig: no error in the log" "$(cat "$MTLSD_LOG")" " error"
done

# A request in flight at SIGTERM (its body half sent) is still answered.
start_mtlsd --workers 1 --shutdown-grace 3
rm -f "$T/ready"
req='POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234'
n=$(printf '%b' "$req" | wc -c)
itc req --chunk "$n" --delay 1 --expect 1 --quiet "$(slow 5)" --ready-file "$T/ready" \
    --data "${req}56789" > "$T/inflight.json" &
rp=$!; IT_BG_PIDS+=("$rp")
for ((i = 0; i < 400; i++)); do [ -f "$T/ready" ] && break; sleep 0.05; done
sleep 0.2   # let the first piece reach the server
stop_mtlsd TERM
wait "$rp"
r=$(cat "$T/inflight.json")
check_eq "SIGTERM mid-request: exit 0" "$MTLSD_RC" 0
check_eq "SIGTERM mid-request: the request is answered (405)" "$(jget "$r" 'j["statuses"]')" "[405]"
check_eq "SIGTERM mid-request: then closed" "$(jget "$r" 'j["closed"]')" true
finish
