#!/usr/bin/env bash
# Reverse proxy (issue 11), with the real echo backend (tests/tools/
# echo_backend.py) and real clients: requests and bodies forwarded, the
# identity headers (RFC 9440 and XFCC) equal to the client's certificates,
# forged inbound copies and hop-by-hop fields removed, the same identity on
# resumed connections (TLS 1.3 and 1.2 tickets, TLS 1.2 session IDs, a second
# instance with the same ticket key), --builtin-prefix, a Unix socket
# upstream, upstream keep-alive reuse, pipelined requests in order.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki
make_pki_matrix
BACKEND=$MTLSD_SRC/tests/tools/echo_backend.py

# start_backend: the echo backend on 127.0.0.1:<any> and $T/eb.sock -> BPORT
start_backend() {
    rm -f "$T/eb.port" "$T/eb.sock"
    $PY "$BACKEND" --listen 127.0.0.1:0 --unix "$T/eb.sock" --port-file "$T/eb.port" \
        >"$T/eb.log" 2>&1 &
    IT_BG_PIDS+=($!)
    local i
    for ((i = 0; i < 200; i++)); do [ -s "$T/eb.port" ] && [ -S "$T/eb.sock" ] && break; sleep 0.05; done
    BPORT=$(cat "$T/eb.port")
}
bstats() { curl -s --max-time 5 "http://127.0.0.1:$BPORT/_stats"; }
# the built-in routes are under --builtin-prefix /.mtlsd here
pmetric() { ccurl "$(url /.mtlsd/metrics)" 2>/dev/null | awk -v n="$1" '$1 == n { print $2 }'; }
psnap() { ccurl "$(url /.mtlsd/metrics)" 2>/dev/null; }
# hdr JSON NAME -> the values of header NAME the backend received, one per line
hdr() {
    $PY -c '
import json, sys
for k, v in json.loads(sys.argv[1])["headers"]:
    if k.lower() == sys.argv[2].lower():
        print(v)' "$1" "$2" 2>/dev/null
}
# b64der PEMFILE INDEX -> base64 of the DER of the INDEX-th certificate in the file
b64der() {
    $PY -c '
import base64, re, sys
pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", open(sys.argv[1]).read(), re.S)
p = pems[int(sys.argv[2])]
print("".join(p.splitlines()[1:-1]))' "$1" "$2"
}

start_backend
start_mtlsd --workers 1 --upstream "http://127.0.0.1:$BPORT" --builtin-prefix /.mtlsd \
    --client-auth optional --public-path /pub --strip-header X-Internal-User

# ---- forwarding ----------------------------------------------------------------
r=$(ccurl "$(url '/app/x?a=1&b=2')")
check_eq "GET forwarded: method" "$(jget "$r" 'j["method"]')" GET
check_eq "GET forwarded: target with query" "$(jget "$r" 'j["target"]')" '/app/x?a=1&b=2'
check_eq "Host passed through" "$(hdr "$r" host)" "localhost:$PORT"
check_eq "X-Forwarded-Proto: https" "$(hdr "$r" x-forwarded-proto)" https
check_eq "X-Forwarded-For: the client" "$(hdr "$r" x-forwarded-for)" 127.0.0.1
check_eq "Via added" "$(hdr "$r" via)" "1.1 mtlsd"

head -c 300000 /dev/urandom >"$T/body"
want=$(sha256sum <"$T/body" | cut -c1-64)
r=$(ccurl --data-binary @"$T/body" "$(url /upload)")
check_eq "POST body: length" "$(jget "$r" 'j["body_length"]')" 300000
check_eq "POST body: sha256" "$(jget "$r" 'j["body_sha256"]')" "$want"
check_eq "POST: Content-Length forwarded" "$(hdr "$r" content-length)" 300000
r=$(ccurl -H 'Transfer-Encoding: chunked' --data-binary @"$T/body" "$(url /upload)")
check_eq "chunked upload: sha256" "$(jget "$r" 'j["body_sha256"]')" "$want"
check_eq "chunked upload: forwarded chunked" "$(hdr "$r" transfer-encoding)" chunked
r=$(ccurl -D "$T/h" "$(url '/c?chunked=1')")
check_eq "chunked response reaches the client whole" "$(jget "$r" 'j["target"]')" "/c?chunked=1"
check_contains "chunked response: chunked to the client" "$(tr -d '\r' <"$T/h")" "Transfer-Encoding: chunked"
r=$(ccurl -D "$T/h" "$(url '/d?size=1000000')" | sha256sum | cut -c1-64)
check_eq "1 MB download: sha256" "$r" "$(tr -d '\r' <"$T/h" | awk -F': ' 'tolower($1)=="x-echo-body-sha256"{print $2}')"
h=$(tr -d '\r' <"$T/h")
check_not_contains "hop-by-hop response field listed in Connection dropped" "$h" "X-Echo-Hop"
check_not_contains "Keep-Alive response field dropped" "$h" "Keep-Alive"
check_contains "upstream's own fields kept" "$h" "X-Echo-Conn:"
r=$(itc req --expect 1 --quiet 3 --data 'GET /ten?chunked=1 HTTP/1.0\r\n\r\n')
check_eq "HTTP/1.0 client, chunked upstream answer: 200" "$(jget "$r" 'j["statuses"]')" "[200]"
check_eq "... body whole, not chunked" "$(jget "$r" 'json.loads(j["responses"][0]["body"])["target"]')" "/ten?chunked=1"
check_eq "... connection closed after it" "$(jget "$r" 'j["closed"]')" true
check_eq "HEAD forwarded" "$(ccurl -I -o /dev/null -w '%{http_code}' "$(url /h)")" 200
check_eq "404 of the app passed through" "$(ccurl -o /dev/null -w '%{http_code}' "$(url '/x?status=404')")" 404

# ---- identity headers -------------------------------------------------------------
r=$(ccurl "$(url /id)")
check_eq "Client-Cert = :base64(DER of client.crt):" "$(hdr "$r" client-cert)" ":$(b64der "$PKI/client.crt" 0):"
der=$(openssl x509 -in "$PKI/client.crt" -outform der | base64 -w0)
check_eq "Client-Cert decodes to openssl x509 -outform der" "$(hdr "$r" client-cert)" ":$der:"
# a chain with an intermediate: the leaf alone in Client-Cert, the
# intermediate first in Client-Cert-Chain (TLS order)
r=$(curl -sS --max-time "$(slow 10)" --resolve "localhost:$PORT:127.0.0.1" --cacert "$PKI/ca.crt" \
    --cert "$M/inter_good.pem" --key "$M/inter_good.key" "$(url /id)")
check_eq "intermediate chain: Client-Cert is the leaf" "$(hdr "$r" client-cert)" ":$(b64der "$M/inter_good.pem" 0):"
chain=$(hdr "$r" client-cert-chain)
check_eq "intermediate chain: Client-Cert-Chain starts with the intermediate" \
    "${chain%%, *}" ":$(b64der "$M/inter_good.pem" 1):"

# forged inbound copies and hop-by-hop fields are removed (any case)
forge=(-H 'client-cert: :Zm9yZ2Vk:' -H 'CLIENT-CERT-CHAIN: :Zm9yZ2Vk:'
    -H 'X-Forwarded-Client-Cert: Hash=00;Subject="CN=admin"' -H 'x-internal-user: admin'
    -H 'X-Forwarded-Proto: http' -H 'Connection: X-Secret' -H 'X-Secret: 1' -H 'TE: trailers'
    -H 'Proxy-Authorization: Basic eA==')
r=$(ccurl "${forge[@]}" "$(url /id)")
check_eq "forged Client-Cert replaced by ours" "$(hdr "$r" client-cert)" ":$der:"
check_eq "one Client-Cert only" "$(hdr "$r" client-cert | wc -l)" 1
check_eq "forged XFCC removed (xfcc not configured)" "$(hdr "$r" x-forwarded-client-cert)" ""
check_eq "--strip-header name removed (any case)" "$(hdr "$r" x-internal-user)" ""
check_eq "X-Forwarded-Proto set, not appended" "$(hdr "$r" x-forwarded-proto)" https
for f in connection x-secret te proxy-authorization; do
    check_eq "hop-by-hop request field $f not forwarded" "$(hdr "$r" $f)" ""
done
r=$(ccurl -H 'X-Forwarded-For: 203.0.113.9' "$(url /id)")
check_eq "X-Forwarded-For appended" "$(hdr "$r" x-forwarded-for)" "203.0.113.9, 127.0.0.1"
# without a client certificate (--client-auth optional, a --public-path)
r=$(ncurl "${forge[@]}" "$(url /pub/x)")
check_eq "no certificate: forwarded (public path)" "$(jget "$r" 'j["target"]')" /pub/x
check_eq "no certificate: forged Client-Cert removed" "$(hdr "$r" client-cert)" ""
check_eq "no certificate: forged chain removed" "$(hdr "$r" client-cert-chain)" ""
check_eq "no certificate: forged XFCC removed" "$(hdr "$r" x-forwarded-client-cert)" ""
check_eq "no certificate: --strip-header removed" "$(hdr "$r" x-internal-user)" ""
check_eq "no certificate, not public: 403, not forwarded" \
    "$(ncurl -o /dev/null -w '%{http_code}' "$(url /private)")" 403

# ---- built-in routes under --builtin-prefix --------------------------------------------
w=$(ccurl "$(url /.mtlsd/whoami)")
check_eq "/.mtlsd/whoami is the built-in route" "$(jget "$w" 'j["uri"]')" '["spiffe://mtlsd.test/client"]'
check_eq "/.mtlsd/healthz" "$(ccurl "$(url /.mtlsd/healthz)")" ok
check_contains "/.mtlsd/metrics has the upstream counters" "$(ccurl "$(url /.mtlsd/metrics)")" mtlsd_upstream_requests
r=$(ccurl "$(url /whoami)")
check_eq "/whoami goes to the app" "$(jget "$r" 'j["target"]')" /whoami
r=$(ccurl "$(url /.mtlsdx)")
check_eq "/.mtlsdx is not under the prefix" "$(jget "$r" 'j["target"]')" /.mtlsdx

# ---- pipelined requests answered in order; upstream connections reused -----------------
r=$(itc req --expect 3 --stop --quiet 2 --data 'GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2?delay=0.3 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\n\r\n')
check_eq "pipelined: three answers" "$(jget "$r" 'j["statuses"]')" "[200, 200, 200]"
check_eq "pipelined: in order" \
    "$(jget "$r" '[json.loads(x["body"])["target"] for x in j["responses"]]')" '["/p1", "/p2?delay=0.3", "/p3"]'
s1=$(bstats)
for i in $(seq 1 20); do ccurl -o /dev/null "$(url /reuse)"; done
s2=$(bstats)
# (minus the second /_stats request and its own connection)
nreq=$(($(jget "$s2" 'j["requests"]') - $(jget "$s1" 'j["requests"]') - 1))
nconn=$(($(jget "$s2" 'j["connections"]') - $(jget "$s1" 'j["connections"]') - 1))
check_eq "20 client connections: 20 requests upstream" "$nreq" 20
check_range "... over at most 2 upstream connections (keep-alive pool)" "$nconn" 0 2
check_range "mtlsd_upstream_reused counts it" "$(pmetric mtlsd_upstream_reused)" 18 100
check_eq "one idle upstream connection in the pool" "$(pmetric mtlsd_upstream_connections_idle)" 1

# ---- identity across resumption --------------------------------------------------------
# sc VERSION SESS_OUT [SESS_IN] [PORT]: GET /id with openssl s_client and the
# intermediate chain; prints s_client's output (session line and body)
sc() {
    local v=$1 out=$2 in=${3:-} p=${4:-$PORT} req="GET /id HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local args=(-connect "127.0.0.1:$p" -servername localhost -CAfile "$PKI/ca.crt"
        -cert "$M/inter_good.crt" -cert_chain "$M/inter_good.extra" -key "$M/inter_good.key"
        -sess_out "$out" -ign_eof)
    if [ "$v" = 1.2id ]; then args+=(-tls1_2 -no_ticket); else args+=("-tls1_${v#1.}"); fi
    [ -n "$in" ] && args+=(-sess_in "$in")
    printf "$req" | timeout "$(slow 15)" openssl s_client "${args[@]}" 2>&1
}
# ids OUTPUT -> the identity headers the backend saw
ids() {
    $PY -c '
import json, sys
t = sys.argv[1]
i = t.find("{\"method\"")
if i >= 0:
    j, _ = json.JSONDecoder().raw_decode(t[i:])
    for k, v in j["headers"]:
        if k.lower() in ("client-cert", "client-cert-chain"):
            print(k.lower() + ": " + v)' "$1" 2>/dev/null
}
stop_mtlsd
openssl rand 80 >"$T/tk"; chmod 600 "$T/tk"
start_mtlsd --workers 2 --upstream "unix:$T/eb.sock" --ticket-key-file "$T/tk" --builtin-prefix /.mtlsd
P1=$PORT
snap0=$(psnap)
for v in 1.3 1.2 1.2id; do
    first=$(sc $v "$T/s$v")
    id1=$(ids "$first")
    check_contains "TLS$v: full handshake forwards the leaf" "$id1" ":$(b64der "$M/inter_good.pem" 0):"
    [ -n "$id1" ] || note "s_client said: $(tail -c 600 <<<"$first")"
    for i in 1 2; do
        again=$(sc $v "$T/s$v.$i" "$T/s$v")
        check "TLS$v: resumed ($i)" grep -qE '^Reused, ' <<<"$again"
        check_eq "TLS$v: resumed connection forwards the same identity headers ($i)" "$(ids "$again")" "$id1"
    done
done
snap1=$(psnap)
check_eq "the chain fitted in every ticket (none unusable)" "$(mdelta "$snap0" "$snap1" mtlsd_tickets_unusable)" 0
# another instance with the same ticket key (the TCP upstream this time)
P2=$(free_port)
"$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --listen "127.0.0.1:$P2" --workers 1 --upstream "http://127.0.0.1:$BPORT" \
    --ticket-key-file "$T/tk" >"$T/second.log" 2>&1 &
SECOND=$!
IT_BG_PIDS+=($SECOND)
IT_LOGS+=("$T/second.log")
for ((i = 0; i < 200; i++)); do grep -q listening "$T/second.log" && break; sleep 0.05; done
for v in 1.3 1.2; do
    first=$(sc $v "$T/x$v")
    other=$(sc $v "$T/x$v.2" "$T/x$v" "$P2")
    check "TLS$v: resumed on the second instance" grep -qE '^Reused, ' <<<"$other"
    check_eq "TLS$v: second instance forwards the same identity headers" "$(ids "$other")" "$(ids "$first")"
done
kill -TERM "$SECOND"
wait_gone "$SECOND" "$(slow 10)"

# ---- XFCC, both headers, a Unix socket upstream -----------------------------------------
stop_mtlsd
start_mtlsd --workers 1 --upstream "unix:$T/eb.sock" --client-cert-header xfcc --client-cert-header rfc9440
r=$(ccurl -H 'X-Forwarded-Client-Cert: By=forged' "$(url /xfcc)")
x=$(hdr "$r" x-forwarded-client-cert)
check_eq "Unix socket upstream: forwarded" "$(jget "$r" 'j["target"]')" /xfcc
check_eq "xfcc + rfc9440: Client-Cert too" "$(hdr "$r" client-cert)" ":$der:"
check_eq "one XFCC (forged one removed)" "$(hdr "$r" x-forwarded-client-cert | wc -l)" 1
fp=$(openssl x509 -in "$PKI/client.crt" -outform der | sha256sum | cut -c1-64)
check_contains "XFCC Hash = sha256 of the leaf DER" "$x" "Hash=$fp;"
check_contains "XFCC Subject in RFC 2253 order" "$x" 'Subject="CN=client,OU=clients,O=mtlsd dev"'
check_contains "XFCC URI SAN" "$x" ";URI=spiffe://mtlsd.test/client"
check_contains "XFCC DNS SAN" "$x" ";DNS=client.mtlsd.test"
pem=$($PY -c 'import re,sys,urllib.parse; print(urllib.parse.unquote(re.search(r"Cert=\"([^\"]*)\"", sys.argv[1]).group(1)), end="")' "$x")
check_eq "XFCC Cert: URL-decoded, the client's PEM" "$(openssl x509 -outform der <<<"$pem" | base64 -w0)" "$der"
check_eq "no built-in routes without --builtin-prefix" "$(jget "$(ccurl "$(url /metrics)")" 'j["target"]')" /metrics

# ---- the epoll backend drives upstream connections too ----------------------------------
stop_mtlsd
start_mtlsd --workers 1 --io epoll --upstream "http://127.0.0.1:$BPORT"
r=$(ccurl --data-binary @"$T/body" "$(url /epoll)")
check_eq "--io epoll: POST forwarded, sha256" "$(jget "$r" 'j["body_sha256"]')" "$want"
r=$(ccurl -D "$T/h" "$(url '/e?size=1000000&chunked=1')" | sha256sum | cut -c1-64)
check_eq "--io epoll: 1 MB chunked download" "$r" "$(tr -d '\r' <"$T/h" | awk -F': ' 'tolower($1)=="x-echo-body-sha256"{print $2}')"
check_eq "--io epoll: client cert forwarded" "$(hdr "$(ccurl "$(url /e3)")" client-cert)" ":$der:"

# ---- an IPv6 upstream ------------------------------------------------------------------
stop_mtlsd
if $PY -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    rm -f "$T/eb6.port"
    $PY "$BACKEND" --listen "[::1]:0" --port-file "$T/eb6.port" >"$T/eb6.log" 2>&1 &
    IT_BG_PIDS+=($!)
    for ((i = 0; i < 200; i++)); do [ -s "$T/eb6.port" ] && break; sleep 0.05; done
    start_mtlsd --workers 1 --upstream "http://[::1]:$(cat "$T/eb6.port")"
    check_eq "IPv6 upstream [::1]: forwarded" "$(jget "$(ccurl "$(url /v6)")" 'j["target"]')" /v6
    stop_mtlsd
else
    skip "no IPv6 loopback: IPv6 upstream not tested"
fi
check_eq "mtlsd exits 0" "$MTLSD_RC" 0
finish
