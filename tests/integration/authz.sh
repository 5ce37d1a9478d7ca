#!/usr/bin/env bash
# Issue 3: identity-based authorization and the access log.
#   - each --allow kind (cn ou dns uri uri-prefix email sha256) lets the
#     client in, and only the identities it names; near misses get 403;
#   - bad specs: exit 2 with a message naming the spec;
#   - --max-conn-lifetime: an old keep-alive connection's answer closes it;
#   - a connection whose certificate expires while it is open gets 403;
#   - --access-log: one line per request (identity, URI SAN, TLS version,
#     method, path, status), client-controlled bytes escaped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki_matrix
pki_trusted_clients 1 # tc_1: CN=tc-1, O=mtlsd test, URI spiffe://mtlsd.test/matrix

FP=$(openssl x509 -in "$PKI/client.crt" -noout -fingerprint -sha256 | cut -d= -f2) # AA:BB:...
FPHEX=$(tr -d : <<<"$FP" | tr 'A-F' 'a-f')

# code NAME PATH -> HTTP status of a new connection presenting NAME
code() { mcurl "$1" -o /dev/null -w '%{http_code}' "$(url "${2:-/}")" 2>/dev/null; }

# spec  | client (good = CN=client OU=clients, URI spiffe://mtlsd.test/client,
#         DNS client.mtlsd.test, email client@mtlsd.test) | tc_1 | inter_good
# (CN=inter-client, OU=clients, URI spiffe://mtlsd.test/matrix)
ALLOW_TABLE="
cn:client                        200 403 403
ou:clients                       200 403 200
uri:spiffe://mtlsd.test/client   200 403 403
uri:spiffe://mtlsd.test/*        200 200 200
uri:spiffe://mtlsd.test/cl*      200 403 403
dns:client.mtlsd.test            200 403 403
email:client@mtlsd.test          200 403 403
sha256:$FP                       200 403 403
sha256:$FPHEX                    200 403 403
uri:spiffe://mtlsd.test/clien    403 403 403
uri:spiffe://mtlsd.test/client/  403 403 403
uri:SPIFFE://mtlsd.test/client   403 403 403
cn:CLIENT                        403 403 403
cn:clien                         403 403 403
dns:CLIENT.mtlsd.test            403 403 403
dns:mtlsd.test                   403 403 403
email:Client@mtlsd.test          403 403 403
cn:spiffe://mtlsd.test/client    403 403 403
dns:spiffe://mtlsd.test/client   403 403 403
"
while read -r spec w_good w_tc w_inter; do
    [ -n "$spec" ] || continue
    start_mtlsd --workers 1 --allow "$spec"
    got="$(code good) $(code tc_1) $(code inter_good)"
    check_eq "--allow $spec: client tc_1 inter_good" "$got" "$w_good $w_tc $w_inter"
    stop_mtlsd TERM
done <<<"$ALLOW_TABLE"

# Several specs: any one matching is enough; /healthz is not public unless said.
start_mtlsd --workers 1 --allow cn:nobody --allow cn:tc-1 --allow uri:spiffe://x/*
check_eq "several --allow: client 403, tc_1 200" "$(code good) $(code tc_1)" "403 200"
check_eq "several --allow: /healthz is not public by default" "$(code good /healthz)" 403
forb=$(mcurl tc_1 "$(url /metrics)" 2>/dev/null | awk '$1 == "mtlsd_forbidden" { print $2 }')
check_eq "several --allow: mtlsd_forbidden 2" "$forb" 2
stop_mtlsd TERM
start_mtlsd --workers 1 --allow cn:nobody --public-path /healthz
check_eq "--allow + --public-path: /healthz 200 for an unauthorized identity" "$(code good /healthz)" 200
check_eq "--allow + --public-path: / 403" "$(code good /)" 403
stop_mtlsd TERM

# Bad specs: exit 2 before listening, with the spec in the message.
for spec in foo:bar sha256:12 cn: "uri:" "sha256:${FPHEX}00" "CN:client" "client"; do
    "$MTLSD" --listen 127.0.0.1:1 --cert "$PKI/server.crt" --key "$PKI/server.key" \
        --client-ca "$PKI/ca.crt" --allow "$spec" >"$T/bad.out" 2>&1
    rc=$?
    check_eq "--allow '$spec': exit 2" "$rc" 2
    check_contains "--allow '$spec': message names it" "$(cat "$T/bad.out")" "$spec"
done

# ---- keep-alive timing: --max-conn-lifetime and expiry while connected ------
cat >"$T/ka.py" <<'X'
# ka.py PORT CA CERT KEY STEP...: one TLS connection; STEP is GET:/path or
# SLEEP:seconds or UNTIL:unix_time; prints "STATUS/CONNECTION-HEADER" per GET
# ("closed" once the server has closed).
import socket, ssl, sys, time
port, ca, cert, key = sys.argv[1:5]
c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c.load_verify_locations(ca); c.load_cert_chain(cert, key)
raw = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s = c.wrap_socket(raw, server_hostname="localhost")
out, buf = [], b""
def get(path):
    global buf
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d: return "closed"
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        hs = {l.split(b":")[0].strip().lower(): l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")[1:]}
        n = int(hs.get(b"content-length", b"0"))
        while len(buf) < n:
            d = s.recv(65536)
            if not d: return "closed"
            buf += d
        buf = buf[n:]
        return "%s/%s" % (head.split(b" ")[1].decode(), hs.get(b"connection", b"-").decode())
    except (OSError, ssl.SSLError):
        return "closed"
for step in sys.argv[5:]:
    k, _, v = step.partition(":")
    if k == "GET": out.append(get(v))
    elif k == "SLEEP": time.sleep(float(v))
    elif k == "UNTIL":
        while time.time() < float(v): time.sleep(0.05)
print(" ".join(out))
X
ka() { local n=$1; shift; timeout 30 $PY "$T/ka.py" "$PORT" "$PKI/ca.crt" "$M/$n.pem" "$M/$n.key" "$@"; }

start_mtlsd --workers 1 --max-conn-lifetime 1
check_eq "--max-conn-lifetime 1: keep-alive, then after 2 s the answer says close, then closed" \
    "$(ka good GET:/ SLEEP:2 GET:/ GET:/)" "200/- 200/close closed"
stop_mtlsd TERM

start_mtlsd --workers 1
check_eq "no --max-conn-lifetime: still open after 2 s" "$(ka good GET:/ SLEEP:2 GET:/)" "200/- 200/-"
# A certificate that expires 4 s from now: 200 while valid, 403 on the same
# connection once expired, and a new connection is refused outright.
pki_short_lived short 4
na=$(date -d "$(openssl x509 -in "$M/short.crt" -noout -enddate | cut -d= -f2)" +%s)
check_eq "short-lived cert: 200 while valid, 403 on the same connection after expiry" \
    "$(ka short GET:/ GET:/whoami UNTIL:$((na + 2)) GET:/ GET:/whoami)" "200/- 200/- 403/- 403/-"
out=$(mcurl short -w ' %{http_code}' "$(url /)" 2>&1)
check_not_contains "short-lived cert: a new connection after expiry is refused" "$out" "Hello World!"
stop_mtlsd TERM

# ---- access log ------------------------------------------------------------------
ALOG=$T/access.log
start_mtlsd --workers 2 --client-auth present --access-log "$ALOG"
ccurl "$(url /)" "$(url /whoami)" "$(url /nope)" >/dev/null   # one connection, 3 requests
mcurl untrusted "$(url /)" >/dev/null
ccurl -I "$(url /healthz)" >/dev/null
# a quote, a backslash and a %-escape in the target (a byte >= 0x80 there is
# a 400, see http_errors.sh; such bytes in a subject: identity_utf8.sh)
itc req --tls 1.3 --data 'GET /a"b\\c%FFd%0A?q="x" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/weird.json"
check_eq "weird target: answered 404" "$(jget "$(cat "$T/weird.json")" 'j["statuses"]')" "[404]"
for ((i = 0; i < 40; i++)); do [ "$(wc -l <"$ALOG")" -ge 6 ] && break; sleep 0.05; done
check_eq "access log: one line per request (6)" "$(wc -l <"$ALOG")" 6
note "$(cat "$ALOG")"
re='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z 127\.0\.0\.1:[0-9]+ "[^"]*" "[^"]*" TLSv1\.[23] (full|resumed) [A-Z]+ "[^"]*" [0-9]{3} [0-9]+ [0-9]+us$'
bad=$(grep -cvE "$re" "$ALOG")
check_eq "access log: every line has the documented format" "$bad" 0
l1=$(sed -n 1p "$ALOG")
check_contains "access log line 1: subject" "$l1" 'CN=client"'
check_contains "access log line 1: first URI SAN" "$l1" '"spiffe://mtlsd.test/client"'
check_contains "access log line 1: TLS version, full handshake, GET /, 200" "$l1" 'TLSv1.3 full GET "/" 200 '
check_contains "access log line 2: /whoami 200" "$(sed -n 2p "$ALOG")" 'GET "/whoami" 200 '
check_contains "access log line 3: /nope 404" "$(sed -n 3p "$ALOG")" 'GET "/nope" 404 '
l4=$(sed -n 4p "$ALOG")
check_contains "access log line 4: unverified identity is - and 403" "$l4" '"-" "-" TLSv1.3 full GET "/" 403 '
check_contains "access log line 5: HEAD /healthz 200" "$(sed -n 5p "$ALOG")" 'HEAD "/healthz" 200 '
l6=$(sed -n 6p "$ALOG")
check_contains "access log: quote and backslash in the target escaped" "$l6" '"/a\x22b\x5cc%FFd%0A?q=\x22x\x22" 404'
check_eq "access log: no raw quote inside the target field" \
    "$(awk -F'"' '{ print NF }' <<<"$l6")" 7
# bytes counted: the 200 "Hello World!" response is more than its 12-byte body
b1=$(awk '{ print $(NF-1) }' <<<"$l1")
check "access log: bytes of the whole response ($b1 > 12)" test "$b1" -gt 12
good_200 "access log"
finish
