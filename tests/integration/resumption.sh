#!/usr/bin/env bash
# Session resumption with real clients (openssl s_client, gnutls-cli,
# mtls-load): TLS 1.3 and 1.2 tickets resume and keep the client identity
# (/whoami "resumed": true, same certificate); every reconnection to two
# workers resumes; a shared --ticket-key-file resumes across instances and a
# different one falls back to a full handshake; rotation keeps one period;
# --session-lifetime, psk_ke-only clients and --tickets off fall back to a
# full handshake; a revoked (CRL reloaded by SIGHUP) or expired client does
# not resume and its full handshake is refused; bad key files and flag
# combinations exit 2.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki
C=$PKI/client.crt K=$PKI/client.key

# sc VERSION SESS_OUT [SESS_IN]: GET /whoami with openssl s_client (client
# certificate always offered: a refused ticket falls back to a full
# handshake). Output: s_client's summary ("New," / "Reused,") and the body.
# VERSION "1.2id": TLS 1.2 without tickets (session-ID resumption).
sc() {
    local v=$1 out=$2 in=${3:-} req="GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local args=(-connect "127.0.0.1:$PORT" -servername localhost -verify_return_error
        -CAfile "$PKI/ca.crt" -cert "$C" -key "$K" -sess_out "$out" -ign_eof)
    if [ "$v" = 1.2id ]; then args+=(-tls1_2 -no_ticket); else args+=("-tls1_${v#1.}"); fi
    [ -n "$in" ] && args+=(-sess_in "$in")
    printf "$req" | timeout "$(slow 15)" openssl s_client "${args[@]}" 2>&1
}
# field JSON_LINE_OUTPUT KEY -> value of "KEY": in the /whoami body
field() { printf '%s\n' "$1" | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'; }
reused() { printf '%s\n' "$1" | grep -qE '^Reused, '; }
# load_resume ARGS... -> "ok errors resumed" of an mtls-load resume run
load_resume() {
    "$MTLS_LOAD" --mode resume -c 1 --json -q --timeout "$(slow 10)" --cert "$C" --key "$K" \
        --cacert "$PKI/ca.crt" "$@" "https://localhost:$PORT/" 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["ok"], j["errors"], j["resumed"])' 2>/dev/null ||
        echo "error"
}

# ---- one instance, two workers ---------------------------------------------
start_mtlsd --workers 2
for v in 1.3 1.2 1.2id; do
    rm -f "$T/s$v.pem"
    first=$(sc $v "$T/s$v.pem")
    check_contains "TLS$v s_client: first connection is a full handshake" "$first" '"resumed":false'
    check "TLS$v s_client: session saved" test -s "$T/s$v.pem"
    second=$(sc $v "$T/s$v.pem.2" "$T/s$v.pem")
    check "TLS$v s_client: -sess_in resumes (Reused)" reused "$second"
    check_contains "TLS$v s_client: /whoami says resumed" "$second" '"resumed":true'
    check_contains "TLS$v s_client: resumed at TLSv${v%id}" "$second" "\"tls_version\":\"TLSv${v%id}\""
    check_eq "TLS$v s_client: same certificate after resumption" \
        "$(field "$second" sha256)" "$(field "$first" sha256)"
    check_eq "TLS$v s_client: same subject after resumption" \
        "$(field "$second" subject)" "$(field "$first" subject)"
    check_contains "TLS$v s_client: URI SAN restored" "$second" '"uri":["spiffe://'
    # TLS 1.3: the ticket issued on the resumed connection resumes again
    # (s_client saves no session after a TLS 1.2 resumption: reuse the first)
    src=$T/s$v.pem.2; [ -s "$src" ] || src=$T/s$v.pem
    third=$(sc $v "$T/s$v.pem.3" "$src")
    check "TLS$v s_client: resumes again" reused "$third"

    [ $v = 1.2id ] && continue
    prio="NORMAL:-VERS-ALL:+VERS-TLS$v"
    out=$(printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout "$(slow 15)" gnutls-cli --resume --x509cafile "$PKI/ca.crt" --x509certfile "$C" \
            --x509keyfile "$K" --priority "$prio" --port "$PORT" localhost 2>&1)
    check_contains "TLS$v gnutls-cli --resume: resumed" "$out" "This is a resumed session"
    check_contains "TLS$v gnutls-cli --resume: /whoami resumed" "$out" '"resumed":true'
    check_eq "TLS$v gnutls-cli: same certificate" "$(field "$out" sha256)" "$(field "$first" sha256)"
done

for v in 1.3 1.2; do
    check_eq "TLS$v mtls-load: 51 connections to 2 workers, 50 resumed" \
        "$(load_resume --tls $v -n 51)" "51 0 50"
done
check_range "metric: TLS 1.3 ticket resumptions" "$(metric mtlsd_handshakes_resumed_tls13_ticket)" 53 1000
check_range "metric: TLS 1.2 ticket resumptions" "$(metric mtlsd_handshakes_resumed_tls12_ticket)" 53 1000
check_eq "TLS1.2 session IDs mtls-load: 51 connections to 2 workers, 50 resumed" \
    "$(load_resume --tls 1.2 --no-tickets -n 51)" "51 0 50"
check_range "metric: TLS 1.2 session-ID resumptions" "$(metric mtlsd_handshakes_resumed_tls12_session_id)" 52 1000
# gnutls-cli resuming by session ID (tickets off on its side)
out=$(printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout "$(slow 15)" gnutls-cli --resume --x509cafile "$PKI/ca.crt" --x509certfile "$C" \
        --x509keyfile "$K" --priority "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_TICKETS" --port "$PORT" localhost 2>&1)
check_contains "TLS1.2 gnutls-cli --resume by session ID: resumed" "$out" "This is a resumed session"
check_contains "TLS1.2 gnutls-cli --resume by session ID: /whoami resumed" "$out" '"resumed":true'

# TLS 1.3 client offering only psk_ke: refused (full handshake, still served).
check_eq "psk_ke-only client: served, never resumed" "$(load_resume --tls 1.3 --psk-ke-only -n 3)" "3 0 0"
check_range "metric: psk_ke refusals" "$(metric mtlsd_resumption_refused_psk_ke)" 2 100
# A mangled ticket is refused and falls back to a full handshake.
python3 - "$T/s1.3.pem" "$T/bad.pem" <<'EOF'
import base64, sys
t = open(sys.argv[1]).read().split("\n")
body = base64.b64decode("".join(l for l in t if l and not l.startswith("-----")))
# flip a byte near the end of the DER session (inside the ticket bytes)
b = bytearray(body); b[-40] ^= 0x01
enc = base64.encodebytes(bytes(b)).decode().strip()
open(sys.argv[2], "w").write("-----BEGIN SSL SESSION PARAMETERS-----\n" + enc + "\n-----END SSL SESSION PARAMETERS-----\n")
EOF
out=$(sc 1.3 "$T/bad.out" "$T/bad.pem")
check_contains "mangled TLS 1.3 session: full handshake, served" "$out" '"resumed":false'
stop_mtlsd TERM
check_eq "SIGTERM exit 0" "$MTLSD_RC" 0

# ---- --tls13-psk-ke ------------------------------------------------------------
start_mtlsd --workers 1 --tls13-psk-ke
check_eq "--tls13-psk-ke: psk_ke-only client resumes" "$(load_resume --tls 1.3 --psk-ke-only -n 4)" "4 0 3"
stop_mtlsd TERM

# ---- --tickets off, --session-cache 0 --------------------------------------------
start_mtlsd --workers 1 --tickets off --session-cache 0
for v in 1.3 1.2; do
    check_eq "--tickets off TLS$v: served, never resumed" "$(load_resume --tls $v -n 4)" "4 0 0"
done
check_eq "--session-cache 0: TLS 1.2 session IDs never resumed" "$(load_resume --tls 1.2 --no-tickets -n 4)" "4 0 0"
out=$(sc 1.3 "$T/off.pem" "$T/s1.3.pem")
check_contains "--tickets off: an old ticket gets a full handshake" "$out" '"resumed":false'
stop_mtlsd TERM

# ---- --session-lifetime -----------------------------------------------------------
start_mtlsd --workers 1 --session-lifetime 2
sc 1.3 "$T/life.pem" >/dev/null
sc 1.2 "$T/life12.pem" >/dev/null
sc 1.2id "$T/lifeid.pem" >/dev/null
check "lifetime: fresh ticket resumes" reused "$(sc 1.3 "$T/life.x" "$T/life.pem")"
sleep "$(slow 3)"
out=$(sc 1.3 "$T/life.y" "$T/life.pem")
check_contains "lifetime: TLS 1.3 ticket older than --session-lifetime: full handshake" "$out" '"resumed":false'
out=$(sc 1.2 "$T/life12.y" "$T/life12.pem")
check_contains "lifetime: TLS 1.2 ticket older than --session-lifetime: full handshake" "$out" '"resumed":false'
out=$(sc 1.2id "$T/lifeid.y" "$T/lifeid.pem")
check_contains "lifetime: TLS 1.2 session ID older than --session-lifetime: full handshake" "$out" '"resumed":false'
# (a client may also drop a session past the lifetime hint and not offer it:
# at least one offered and refused; the unit test checks each refusal)
check_range "metric: lifetime refusals" "$(metric mtlsd_resumption_refused_lifetime)" 1 100
stop_mtlsd TERM

# ---- shared key files across instances -----------------------------------------
head -c 160 /dev/urandom >"$T/k1"; chmod 600 "$T/k1"
head -c 80 /dev/urandom >"$T/k2"; chmod 600 "$T/k2"
cp "$T/k1" "$T/kb"; chmod 600 "$T/kb"
start_mtlsd --workers 1 --ticket-key-file "$T/k1"
A_PID=$MTLSD_PID A_PORT=$PORT
IT_BG_PIDS+=("$A_PID")
MTLSD_PID=""
start_mtlsd --workers 1 --ticket-key-file "$T/kb"
B_PID=$MTLSD_PID B_PORT=$PORT
IT_BG_PIDS+=("$B_PID")
MTLSD_PID=""
start_mtlsd --workers 1 --ticket-key-file "$T/k2"
C_PID=$MTLSD_PID C_PORT=$PORT
for v in 1.3 1.2; do
    PORT=$A_PORT; sc $v "$T/a$v.pem" >/dev/null
    PORT=$B_PORT; out=$(sc $v "$T/b$v.pem" "$T/a$v.pem")
    check "TLS$v: ticket from instance A resumes on B (same key file)" reused "$out"
    check_contains "TLS$v: B restored A's identity" "$out" '"resumed":true'
    PORT=$C_PORT; out=$(sc $v "$T/c$v.pem" "$T/a$v.pem")
    check_contains "TLS$v: C (other key file) does a full handshake and serves" "$out" '"resumed":false'
done
PORT=$C_PORT
check_range "metric on C: unknown-key refusals" "$(metric mtlsd_resumption_refused_unknown_key)" 2 100
# SIGHUP re-reads the file: B switched to k2 no longer accepts A's tickets...
cat "$T/k2" >"$T/kb"
kill -HUP "$B_PID"; sleep "$(slow 0.5)"
PORT=$B_PORT; out=$(sc 1.3 "$T/b2.pem" "$T/a1.3.pem")
check_contains "after SIGHUP with new keys: A's ticket gets a full handshake on B" "$out" '"resumed":false'
# ...and a bad file on SIGHUP keeps the keys it had.
chmod 644 "$T/kb"
kill -HUP "$B_PID"; sleep "$(slow 0.5)"
PORT=$C_PORT; sc 1.3 "$T/c2.pem" >/dev/null
PORT=$B_PORT; out=$(sc 1.3 "$T/b3.pem" "$T/c2.pem")
check "SIGHUP with a 0644 key file: old keys kept, C's (k2) ticket resumes on B" reused "$out"
check "SIGHUP with a 0644 key file: logged" grep -q "permissions 0644" "$T"/mtlsd.$B_PORT.*.log
stop_mtlsd TERM
for p in "$A_PID" "$B_PID"; do
    kill -TERM "$p" 2>/dev/null; wait_gone "$p" "$(slow 10)"; wait "$p"
    check_eq "instance $p: SIGTERM exit 0" "$?" 0
done

# ---- rotation ---------------------------------------------------------------------
ROT=3
start_mtlsd --workers 2 --ticket-rotate $ROT
# wait_rotations N: until mtlsd_ticket_key_rotations >= N (bounded)
wait_rotations() {
    local i
    for ((i = 0; i < 20 * ROT * 3; i++)); do
        [ "$(metric mtlsd_ticket_key_rotations)" -ge "$1" ] 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
check "rotation: a first rotation within $ROT s" wait_rotations 1
# Tickets made across a rotation would be a period younger than the checks
# below count (a slow, loaded machine): make them again if one came between.
for try in 1 2 3; do
    r=$(metric mtlsd_ticket_key_rotations)
    sc 1.3 "$T/r13.pem" >/dev/null
    sc 1.2 "$T/r12.pem" >/dev/null
    [ "$(metric mtlsd_ticket_key_rotations)" = "$r" ] && break
done
check "rotation: next rotation" wait_rotations $((r + 1))
check "rotation: TLS 1.3 ticket one period old resumes" reused "$(sc 1.3 "$T/r13.x" "$T/r13.pem")"
check "rotation: TLS 1.2 ticket one period old resumes" reused "$(sc 1.2 "$T/r12.x" "$T/r12.pem")"
check "rotation: and the one after" wait_rotations $((r + 2))
out=$(sc 1.3 "$T/r13.y" "$T/r13.pem")
check_contains "rotation: TLS 1.3 ticket two periods old: full handshake" "$out" '"resumed":false'
out=$(sc 1.2 "$T/r12.y" "$T/r12.pem")
check_contains "rotation: TLS 1.2 ticket two periods old: full handshake" "$out" '"resumed":false'
# A client that keeps resuming across several rotations never falls back:
# TLS 1.3 gets a new ticket on every resumption, TLS 1.2 one whenever its
# ticket is under the previous key.
for v in 1.3 1.2; do
    check_eq "rotation: TLS$v client resuming every 0.25 s for 3 periods: all resumed" \
        "$(load_resume --tls $v -n 37 --rate 4)" "37 0 36"
done
stop_mtlsd TERM

# ---- trust changes: revocation beats resumption -------------------------------------
make_pki_matrix
pki_trusted_clients 1
cp "$M/root.crl" "$T/live.crl"
start_mtlsd --workers 2 --crl "$T/live.crl"
for v in 1.3 1.2 1.2id; do
    sc $v "$T/rv$v.pem" >/dev/null
    C=$M/tc_1.pem K=$M/tc_1.key sc $v "$T/by$v.pem" >/dev/null
done
# A SIGHUP that changes nothing keeps sessions resumable (the ticket records
# a digest of the trust, not a reload counter).
check_contains "SIGHUP, same trust: reloaded" "$(sighup_wait)" "reloaded"
check "SIGHUP, same trust: TLS 1.3 ticket still resumes" reused "$(sc 1.3 "$T/same.x" "$T/rv1.3.pem")"
# Now revoke the client and reload the CRL.
(cd "$M" && openssl ca -batch -config cadb/ca.cnf -revoke good.crt >>openssl.log 2>&1 &&
    openssl ca -batch -config cadb/ca.cnf -gencrl -out "$T/live.crl" >>openssl.log 2>&1) ||
    { echo "FATAL: cannot revoke"; exit 1; }
check_contains "revocation: SIGHUP reloaded the CRL" "$(sighup_wait)" "reloaded"
for v in 1.3 1.2 1.2id; do
    out=$(sc $v "$T/rv$v.x" "$T/rv$v.pem")
    check "revocation TLS$v: old session does not resume" bash -c '! grep -qE "^Reused, " <<<"$1"' _ "$out"
    check_not_contains "revocation TLS$v: and the full handshake is refused" "$out" '"subject"'
    out=$(C=$M/tc_1.pem K=$M/tc_1.key sc $v "$T/by$v.x" "$T/by$v.pem")
    check_contains "revocation TLS$v: a bystander's old session gets a full handshake, served" \
        "$out" '"resumed":false'
done
out=$(C=$M/tc_1.pem K=$M/tc_1.key sc 1.3 "$T/by.y" "$T/by1.3.x")
check "revocation: the bystander's new ticket resumes" reused "$out"
check_range "metric: trust-change refusals" "$(mcurl tc_1 "$(url /metrics)" 2>/dev/null |
    awk '$1 == "mtlsd_resumption_refused_generation" { print $2 }')" 6 100
stop_mtlsd TERM

# ---- a client certificate that expires: its sessions end with it ----------------------
pki_short_lived shortlived 4
start_mtlsd --workers 1
for v in 1.3 1.2 1.2id; do
    C=$M/shortlived.pem K=$M/shortlived.key sc $v "$T/sl$v.pem" >/dev/null
done
check "expiring cert: resumes while valid" reused \
    "$(C=$M/shortlived.pem K=$M/shortlived.key sc 1.3 "$T/sl.x" "$T/sl1.3.pem")"
sleep "$(slow 5)"
for v in 1.3 1.2 1.2id; do
    out=$(C=$M/shortlived.pem K=$M/shortlived.key sc $v "$T/sl$v.y" "$T/sl$v.pem")
    check "expired cert TLS$v: old session does not resume" bash -c '! grep -qE "^Reused, " <<<"$1"' _ "$out"
    check_not_contains "expired cert TLS$v: and the full handshake is refused" "$out" '"subject"'
done
check_range "metric: expired-certificate refusals" "$(metric mtlsd_resumption_refused_expired_cert)" 3 100
stop_mtlsd TERM

# ---- bad configurations: exit 2 before serving --------------------------------------
chmod 644 "$T/k2"
out=$("$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --listen 127.0.0.1:1 --ticket-key-file "$T/k2" 2>&1); rc=$?
check_eq "0644 key file: exit 2" "$rc" 2
check_contains "0644 key file: says why" "$out" "permissions 0644"
chmod 600 "$T/k2"
head -c 81 /dev/urandom >"$T/k3"; chmod 600 "$T/k3"
out=$("$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --listen 127.0.0.1:1 --ticket-key-file "$T/k3" 2>&1); rc=$?
check_eq "81-byte key file: exit 2" "$rc" 2
check_contains "81-byte key file: says why" "$out" "records of 80"
out=$("$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --ticket-key-file "$T/k2" --ticket-rotate 60 2>&1); rc=$?
check_eq "--ticket-rotate with a key file: exit 2" "$rc" 2
out=$("$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --session-cache -1 2>&1); rc=$?
check_eq "--session-cache -1: exit 2" "$rc" 2
out=$("$MTLSD" --help)
for flag in --tickets --ticket-key-file --ticket-rotate --session-lifetime --tls13-tickets \
    --tls13-psk-ke --session-cache; do
    check_contains "--help documents $flag" "$out" "$flag"
done
finish
