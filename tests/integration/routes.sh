#!/usr/bin/env bash
# Routes and HTTP/1.1 connection semantics: /whoami (the verified client
# identity), /healthz, /metrics, 404, 405 with Allow, HEAD, HTTP/1.0 and
# Connection: close close the connection, keep-alive keeps it.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 1

# /whoami
w=$(ccurl "$(url /whoami)")
check "whoami is JSON" $PY -c 'import json,sys; json.loads(sys.argv[1])' "$w"
check_eq "whoami uri SAN" "$(jget "$w" 'j["uri"]')" '["spiffe://mtlsd.test/client"]'
check_eq "whoami dns SAN" "$(jget "$w" 'j["dns"]')" '["client.mtlsd.test"]'
check_eq "whoami email SAN" "$(jget "$w" 'j["email"]')" '["client@mtlsd.test"]'
check_contains "whoami subject has CN=client" "$(jget "$w" 'j["subject"]')" "CN=client"
check_contains "whoami issuer is the dev CA" "$(jget "$w" 'j["issuer"]')" "CN=mtlsd dev CA"
check_eq "whoami tls_version" "$(jget "$w" 'j["tls_version"]')" "TLSv1.3"
fp=$(openssl x509 -in "$PKI/client.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
check_eq "whoami sha256 = fingerprint of client.crt" "$(jget "$w" 'j["sha256"].lower().replace(":","")')" "$fp"
serial=$(openssl x509 -in "$PKI/client.crt" -noout -serial | sed 's/.*=//' | tr A-F a-f)
check_eq "whoami serial = serial of client.crt" "$(jget "$w" 'j["serial"].lower().lstrip("0")')" "${serial##0}"
check_eq "whoami worker 0 (one worker)" "$(jget "$w" 'j["worker"]')" 0
check_eq "whoami resumed false" "$(jget "$w" 'j["resumed"]')" false
check_contains "whoami content-type json" "$(ccurl -o /dev/null -w '%{content_type}' "$(url /whoami)")" "json"

# /healthz, 404, 405
check_eq "/healthz -> 200 ok" "$(ccurl -w ' %{http_code}' "$(url /healthz)" | tr -d '\n')" "ok 200"
check_eq "unknown path -> 404" "$(ccurl -o /dev/null -w '%{http_code}' "$(url /nope)")" 404
check_eq "path with query still routes" "$(ccurl -w ' %{http_code}' "$(url '/?a=b')")" "Hello World! 200"
h=$(ccurl -i -X POST --data x "$(url /)")
check_contains "POST / -> 405" "$h" "HTTP/1.1 405"
check_contains "405 carries Allow: GET, HEAD" "$(tr -d '\r' <<<"$h")" "Allow: GET, HEAD"
check_eq "DELETE /whoami -> 405" "$(ccurl -o /dev/null -w '%{http_code}' -X DELETE "$(url /whoami)")" 405

# HEAD: the headers of GET, no body; the connection stays usable.
r=$(itc req --head --expect 1 --stop --data 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n' --quiet 1)
check_eq "HEAD / -> 200" "$(jget "$r" 'j["statuses"]')" "[200]"
check_eq "HEAD / Content-Length 12" "$(jget "$r" 'j["responses"][0]["headers"].get("content-length")')" 12
check_eq "HEAD / sends no body bytes" "$(jget "$r" 'j["responses"][0]["body"]')" ""
r=$(itc req --expect 3 --stop --heads 0,2 --quiet 1 --data 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /whoami HTTP/1.1\r\nHost: x\r\n\r\n')
# (a body leaked after a HEAD would show up as a bogus extra response)
check_eq "HEAD, GET, HEAD on one connection: 3 responses" "$(jget "$r" 'j["statuses"]')" "[200, 200, 200]"
check_eq "... the GET between them has its body" "$(jget "$r" 'j["responses"][1]["body"]')" "Hello World!"
check_eq "curl -I / -> 200" "$(ccurl -I -o /dev/null -w '%{http_code}' "$(url /)")" 200

# Connection semantics (--quiet 3: "closed" means the server closed it)
r=$(itc req --expect 1 --quiet 3 --data 'GET / HTTP/1.0\r\n\r\n')
check_eq "HTTP/1.0: 200" "$(jget "$r" 'j["statuses"]')" "[200]"
check_eq "HTTP/1.0: body" "$(jget "$r" 'j["responses"][0]["body"]')" "Hello World!"
check_eq "HTTP/1.0: server closes" "$(jget "$r" 'j["closed"]')" true
check_range "HTTP/1.0: closes promptly" "$(jget "$r" 'j["elapsed_after_send"]')" 0 "$(slow 2)"
r=$(itc req --expect 1 --quiet 3 --data 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
check_eq "Connection: close: 200" "$(jget "$r" 'j["statuses"]')" "[200]"
check_eq "Connection: close: server closes" "$(jget "$r" 'j["closed"]')" true
check_range "Connection: close: closes promptly" "$(jget "$r" 'j["elapsed_after_send"]')" 0 "$(slow 2)"
check_contains "Connection: close echoed" "$(jget "$r" 'j["responses"][0]["headers"].get("connection","")')" "close"
r=$(itc req --expect 2 --quiet 1 --data 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
check_eq "keep-alive: 2 responses" "$(jget "$r" 'j["statuses"]')" "[200, 200]"
check_eq "keep-alive: connection stays open" "$(jget "$r" 'j["closed"]')" false
r=$(itc req --expect 1 --stop --data 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
check_eq "HTTP/1.0 keep-alive: 200" "$(jget "$r" 'j["statuses"]')" "[200]"

# /metrics: Prometheus text; counters move
m=$(ccurl -i "$(url /metrics)")
check_contains "/metrics 200" "$m" "HTTP/1.1 200"
for name in mtlsd_handshakes_full mtlsd_handshakes_failed mtlsd_handshake_timeouts \
    mtlsd_idle_timeouts mtlsd_requests mtlsd_bad_requests mtlsd_connections_refused; do
    check_contains "/metrics has $name" "$m" "
$name "
done
m0=$(metrics_snap)
for i in 1 2 3; do ccurl -o /dev/null "$(url /)"; done
m1=$(metrics_snap)
req0=$(mval "$m0" mtlsd_requests) hs0=$(mval "$m0" mtlsd_handshakes_full)
req1=$(mval "$m1" mtlsd_requests) hs1=$(mval "$m1" mtlsd_handshakes_full)
check_eq "mtlsd_requests +4 after 3 GETs and one /metrics" "$((req1 - req0))" 4
check_eq "mtlsd_handshakes_full +4 (resumption is off)" "$((hs1 - hs0))" 4
finish
