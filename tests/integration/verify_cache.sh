#!/usr/bin/env bash
# Issue 3: the verified-chain cache and SIGHUP reloads.
#   - a second connection from the same client is a hit ("chain_cached"),
#     counted; --verify-cache 0 never caches; --verify-cache-ttl expires;
#   - SIGHUP bumps the trust generation (next connection re-verified);
#     a reloaded CRL revoking the client refuses its next connection;
#     a broken --client-ca keeps the old trust and counts the failure;
#     a new server certificate is used by new handshakes while an
#     established keep-alive connection keeps working;
#   - --verify-cache N bounds the table to N entries.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki_matrix
pki_trusted_clients 20 # tc_1 .. tc_20; tc_1 is also the bystander under --crl

# cached NAME -> the "chain_cached" value of /whoami on a new connection
cached() { jget "$(mcurl "$1" "$(url /whoami)" 2>/dev/null)" 'j["chain_cached"]'; }
code_of() { mcurl "$1" -o /dev/null -w '%{http_code}' "$(url /)" 2>/dev/null; }


note "---- hits and misses"
start_mtlsd --workers 2
s0=$(metrics_snap)
check_eq "first connection: chain_cached false" "$(cached inter_good)" false
check_eq "second connection: chain_cached true" "$(cached inter_good)" true
check_eq "third connection: chain_cached true" "$(cached inter_good)" true
s1=$(metrics_snap)
# the metrics requests use the good client: count only inter_good's
check_eq "mtlsd_verify_cache_inserts +1 (inter_good)" "$(mdelta "$s0" "$s1" mtlsd_verify_cache_inserts)" 1
check_range "mtlsd_verify_cache_hits grew by 3 (2 + the metrics client)" "$(mdelta "$s0" "$s1" mtlsd_verify_cache_hits)" 3 3
check_eq "mtlsd_verify_cache_misses +1" "$(mdelta "$s0" "$s1" mtlsd_verify_cache_misses)" 1
# A refused chain is never cached: the same untrusted client twice, two misses.
mcurl untrusted "$(url /)" >/dev/null 2>&1
mcurl untrusted "$(url /)" >/dev/null 2>&1
s2=$(metrics_snap)
check_eq "untrusted twice: two misses, no insert" \
    "$(mdelta "$s1" "$s2" mtlsd_verify_cache_misses) $(mdelta "$s1" "$s2" mtlsd_verify_cache_inserts)" "2 0"
# The chain, not the leaf, is the key: the leaf of inter_good alone is refused
# even though its chain is cached.
out=$(curl -sS --max-time 10 --resolve "localhost:$PORT:127.0.0.1" --cacert "$PKI/ca.crt" \
    --cert "$M/inter_good.crt" --key "$M/inter_good.key" -w ' %{http_code}' "$(url /)" 2>&1)
check_not_contains "cached chain: its leaf alone is refused" "$out" "Hello World!"

note "---- SIGHUP bumps the trust generation"
check_eq "before SIGHUP: cached" "$(cached inter_good)" true
line=$(sighup_wait)
check_contains "SIGHUP logged" "$line" "reloaded"
check_eq "after SIGHUP: re-verified (not cached)" "$(cached inter_good)" false
check_eq "after SIGHUP: cached again" "$(cached inter_good)" true
check_eq "mtlsd_reloads 1" "$(metric mtlsd_reloads)" 1
stop_mtlsd TERM

note "---- --verify-cache 0"
start_mtlsd --workers 1 --verify-cache 0
check_eq "cache off: first false" "$(cached good)" false
check_eq "cache off: second false" "$(cached good)" false
check_eq "cache off: third false" "$(cached inter_good)" false
check_eq "cache off: no inserts" "$(metric mtlsd_verify_cache_inserts)" 0
check_eq "cache off: no hits" "$(metric mtlsd_verify_cache_hits)" 0
stop_mtlsd TERM

note "---- --verify-cache-ttl 2"
start_mtlsd --workers 1 --verify-cache-ttl 2
check_eq "ttl: first false" "$(cached inter_good)" false
check_eq "ttl: second true" "$(cached inter_good)" true
sleep 3
check_eq "ttl: after 3 s re-verified (false)" "$(cached inter_good)" false
check_eq "ttl: then cached again" "$(cached inter_good)" true
stop_mtlsd TERM

note "---- SIGHUP with a CRL that now revokes the client"
cp "$M/root.crl" "$T/live.crl"
cp "$PKI/ca.crt" "$T/live-ca.crt"
SRV_CLIENT_CA=$T/live-ca.crt start_mtlsd --workers 2 --crl "$T/live.crl"
check_eq "crl: good client first (miss)" "$(cached good)" false
check_eq "crl: good client cached" "$(cached good)" true
(cd "$M" && openssl ca -batch -config cadb/ca.cnf -revoke good.crt >>openssl.log 2>&1 &&
    openssl ca -batch -config cadb/ca.cnf -gencrl -out "$T/live.crl" >>openssl.log 2>&1) ||
    { echo "FATAL: cannot revoke"; exit 1; }
check_eq "crl: before SIGHUP the good client is still cached (old CRL)" "$(cached good)" true
line=$(sighup_wait)
check_contains "crl: SIGHUP reloaded" "$line" "reloaded"
r0=$(grep -c "certificate revoked" "$MTLSD_LOG")
for i in 1 2; do
    out=$(mcurl good -w ' %{http_code}' "$(url /)" 2>&1)
    check_not_contains "crl: revoked good client refused after SIGHUP (try $i)" "$out" "Hello World!"
done
check_eq "crl: log says revoked twice" "$(($(grep -c "certificate revoked" "$MTLSD_LOG") - r0))" 2
# /metrics with another trusted client (the good one is revoked now; a chain
# under the intermediate would need the intermediate's CRL)
out=$(mcurl tc_1 "$(url /metrics)" 2>&1)
check_eq "crl: mtlsd_verify_rejected_revoked 2" "$(mval "$out" mtlsd_verify_rejected_revoked)" 2

note "---- an expired CRL: refused at start, a failed reload at SIGHUP"
(cd "$M" && openssl ca -batch -config cadb/ca.cnf -gencrl -crl_lastupdate "$(pki_date -7200)" \
    -crl_nextupdate "$(pki_date -3600)" -out "$T/expired.crl" >>openssl.log 2>&1) || { echo "FATAL: crl"; exit 1; }
"$MTLSD" --listen 127.0.0.1:1 --cert "$PKI/server.crt" --key "$PKI/server.key" \
    --client-ca "$PKI/ca.crt" --crl "$T/expired.crl" >"$T/expcrl.out" 2>&1
check_eq "expired --crl at start: exit 2" "$?" 2
check_contains "expired --crl at start: message names the file" "$(cat "$T/expcrl.out")" "expired.crl"
cp "$T/expired.crl" "$T/live.crl"
line=$(sighup_wait)
check_contains "expired CRL at SIGHUP: reload failed" "$line" "reload failed"
check_eq "expired CRL at SIGHUP: old trust kept (tc_1 200)" "$(code_of tc_1)" 200
check_not_contains "expired CRL at SIGHUP: old CRL kept (good still revoked)" \
    "$(mcurl good -w ' %{http_code}' "$(url /)" 2>&1)" "Hello World!"

note "---- SIGHUP with a broken --client-ca keeps the old trust"
echo "this is not a certificate" >"$T/live-ca.crt"
line=$(sighup_wait)
check_contains "broken --client-ca: log says reload failed" "$line" "reload failed"
check_contains "broken --client-ca: log says why" "$line" "--client-ca"
check_eq "broken --client-ca: old trust still works (tc_1 200)" \
    "$(mcurl tc_1 -w ' %{http_code}' "$(url /)" 2>&1)" "Hello World! 200"
check_not_contains "broken --client-ca: old CRL still applies (good refused)" \
    "$(mcurl good -w ' %{http_code}' "$(url /)" 2>&1)" "Hello World!"
out=$(mcurl tc_1 "$(url /metrics)" 2>&1)
check_eq "broken --client-ca: mtlsd_reload_failures 2 (expired CRL, then this)" "$(mval "$out" mtlsd_reload_failures)" 2
check_eq "broken --client-ca: mtlsd_reloads 1" "$(mval "$out" mtlsd_reloads)" 1
check "broken --client-ca: server alive" server_alive
# a key that does not match the certificate: also refused, old kept
stop_mtlsd TERM

note "---- SIGHUP with a new server certificate"
cp "$PKI/server.crt" "$T/srv.crt"; cp "$PKI/server.key" "$T/srv.key"
SRV_CERT=$T/srv.crt SRV_KEY=$T/srv.key start_mtlsd --workers 2
served_fp() {
    openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -cert "$PKI/client.crt" \
        -key "$PKI/client.key" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null
}
fp_old=$(served_fp)
want_old=$(openssl x509 -in "$PKI/server.crt" -noout -fingerprint -sha256)
check_eq "served certificate before SIGHUP" "$fp_old" "$want_old"
# A keep-alive connection, held across the reload by python's ssl.
cat >"$T/hold.py" <<'X'
import os, socket, ssl, sys, time
port, ca, cert, key, ready, go = sys.argv[1:7]
c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c.load_verify_locations(ca); c.load_cert_chain(cert, key)
raw = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s = c.wrap_socket(raw, server_hostname="localhost")
def get(path):
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: return "closed"
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        d = s.recv(65536)
        if not d: return "closed"
        body += d
    return head.split(b"\r\n")[0].decode().split(" ")[1]
first = get("/")
open(ready, "w").write("ready")
for _ in range(200):
    if os.path.exists(go): break
    time.sleep(0.05)
print(first, get("/"), get("/whoami"))
X
$PY "$T/hold.py" "$PORT" "$PKI/ca.crt" "$PKI/client.crt" "$PKI/client.key" "$T/ready" "$T/go" >"$T/hold.out" 2>&1 &
hold_pid=$!
IT_BG_PIDS+=("$hold_pid")
for ((i = 0; i < 100; i++)); do [ -f "$T/ready" ] && break; sleep 0.05; done
check "keep-alive connection established" test -f "$T/ready"
# a new server certificate for the same names, same CA
(cd "$M" && cat >srv2.ext <<'X'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
X
pki_sign cadb srv2 "/O=mtlsd test/CN=localhost (new)" srv2.ext) || { echo "FATAL: srv2"; exit 1; }
cp "$M/srv2.crt" "$T/srv.crt"; cp "$M/srv2.key" "$T/srv.key"
line=$(sighup_wait)
check_contains "new server cert: SIGHUP reloaded" "$line" "reloaded"
fp_new=$(served_fp)
check_eq "new handshakes get the new certificate" "$fp_new" "$(openssl x509 -in "$M/srv2.crt" -noout -fingerprint -sha256)"
touch "$T/go"
wait "$hold_pid"
check_eq "the keep-alive connection from before the reload keeps working (200 200 200)" "$(cat "$T/hold.out")" "200 200 200"
# a key that does not match the certificate: reload fails, the new cert stays
cp "$M/good.key" "$T/srv.key"
line=$(sighup_wait)
check_contains "mismatched key: reload failed" "$line" "reload failed"
check_eq "mismatched key: the current certificate is still served" "$(served_fp)" "$fp_new"
good_200 "after a failed reload"
stop_mtlsd TERM

note "---- --verify-cache N bounds the table"
start_mtlsd --workers 1 --verify-cache 2
for k in $(seq 1 20); do mcurl tc_$k "$(url /)" >/dev/null 2>&1; done
hits=0
for k in $(seq 1 20); do
    [ "$(cached tc_$k)" = true ] && hits=$((hits + 1))
done
ev=$(metric mtlsd_verify_cache_evictions)
if [ "$hits" -le 2 ]; then
    pass "--verify-cache 2: at most 2 of 20 clients still cached ($hits), evictions $ev"
else
    fail "--verify-cache 2 keeps $hits of 20 chains (want <= 2; evictions $ev)"
fi
finish
