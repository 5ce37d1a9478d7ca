#!/usr/bin/env bash
# --workers 2: both workers accept and serve (/whoami "worker"); IPv6 listen.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 2 --no-pin
args=()
for i in $(seq 1 60); do args+=("$(url /whoami)"); done
# one curl, 60 URLs, each on a new connection (Connection: close)
out=$(ccurl -H 'Connection: close' -w '\n' "${args[@]}")
n=$(grep -c '"uri":\["spiffe://mtlsd.test/client"\]' <<<"$out")
w0=$(grep -c '"worker":0' <<<"$out")
w1=$(grep -c '"worker":1' <<<"$out")
check_eq "60 connections answered" "$n" 60
check "worker 0 served some ($w0)" test "$w0" -gt 0
check "worker 1 served some ($w1)" test "$w1" -gt 0
check_eq "no other worker ids" "$((w0 + w1))" 60
# curl resumes its session on each new connection: count every handshake
m=$(ccurl "$(url /metrics)")
hs=$(awk '$1 ~ /^mtlsd_handshakes_(full|resumed_)/ { n += $2 } END { print n + 0 }' <<<"$m")
check_range "metrics aggregate both workers: full + resumed handshakes >= 61" "$hs" 61 1000
# mtls-load: 200 new connections over 4 at a time, all 2xx, both workers busy
if [ -x "$MTLS_LOAD" ]; then
    j=$("$MTLS_LOAD" --mode new -c 4 -n 200 --json -q --cert "$PKI/client.crt" --key "$PKI/client.key" \
        --cacert "$PKI/ca.crt" --servername localhost "https://127.0.0.1:$PORT/")
    check_eq "mtls-load 200 new connections over 2 workers: 200 ok" "$(jget "$j" 'j["ok"]')" 200
fi
good_200
stop_mtlsd TERM
check_eq "SIGTERM exit 0 (2 workers)" "$MTLSD_RC" 0

# IPv6: --listen [::1]:PORT
if $PY -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
    PORT=$($PY -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0)); print(s.getsockname()[1])')
    IT_FIXED_PORT=1 start_mtlsd --workers 2 --listen "[::1]:$PORT"
    out=$(curl -sS --max-time 10 --resolve "localhost:$PORT:[::1]" --cacert "$PKI/ca.crt" \
        --cert "$PKI/client.crt" --key "$PKI/client.key" "https://localhost:$PORT/" 2>&1)
    check_eq "IPv6 [::1]: 200 Hello World!" "$out" "Hello World!"
    r=$($ITC req --host ::1 --port "$PORT" --ca "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" \
        --expect 1 --stop --data 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    check_eq "IPv6 [::1]: python ssl 200" "$(jget "$r" 'j["statuses"]')" "[200]"
else
    skip "no IPv6 loopback"
fi
finish
