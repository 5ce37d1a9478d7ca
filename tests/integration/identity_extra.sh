#!/usr/bin/env bash
# Issue 3: identity checks the matrix (identity_matrix.sh) does not cover.
#   1. path length: root -> A (pathlen:0) -> B -> leaf, sent as leaf+B+A, is
#      refused at the handshake (usage); root -> A' (pathlen:1) -> B' -> leaf'
#      is accepted with the default --verify-depth;
#   2. a revoked intermediate: the intermediate is in --client-ca (so its CRL
#      can be checked), the root's CRL revokes it; a leaf under it is refused
#      (revoked); control: the same set-up without the revocation -> 200;
#   3. --clock-skew: a client certificate whose notBefore is ~60 s ahead is
#      refused with the default skew (not_yet_valid) and accepted with
#      --clock-skew 120;
#   4. SIGHUP replacing --client-ca with another CA: the old CA's client,
#      cached before, is refused after the reload; the new CA's client gets in.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki_matrix

# ---- helpers -------------------------------------------------------------------
# status_of NAME [TLS] -> HTTP status of GET / presenting $M/NAME.pem ("none": no response)
status_of() {
    local v=${2:-1.3} out st
    out=$(mcurl "$1" --tlsv$v --tls-max $v -i "$(url /)" 2>&1)
    printf '%s\n' "$out" >"$T/last.out"
    st=$(http_status "$out")
    echo "${st:-none}"
}
# sclient_status NAME TLSFLAG -> the same with openssl s_client (-cert_chain NAME.extra)
sclient_status() {
    local out st
    out=$(msclient "$1" "$2" /)
    printf '%s\n' "$out" >"$T/last.out"
    st=$(http_status "$out")
    echo "${st:-none}"
}
last_refusal() { grep -o 'client certificate refused: .*' "$MTLSD_LOG" | tail -1; }

# ---- the extra certificates, all under $M ----------------------------------------
(
    set -e
    cd "$M"
    cat >pl_a0.ext <<'X'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
X
    cat >pl_a1.ext <<'X'
basicConstraints=critical,CA:TRUE,pathlen:1
keyUsage=critical,keyCertSign,cRLSign
X
    cat >pl_b.ext <<'X'
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
X
    # 1. path length: bad (A pathlen:0) and control (A' pathlen:1)
    for v in bad:pl_a0 good:pl_a1; do
        k=${v%%:*} ext=${v#*:}.ext
        pki_sign cadb pl_${k}_a "/O=mtlsd test/CN=pathlen $k A" "$ext"
        pki_ca_db "$M/pl_${k}_adb" pl_${k}_a.crt pl_${k}_a.key
        pki_sign pl_${k}_adb pl_${k}_b "/O=mtlsd test/CN=pathlen $k B" pl_b.ext
        pki_ca_db "$M/pl_${k}_bdb" pl_${k}_b.crt pl_${k}_b.key
        pki_sign pl_${k}_bdb pl_$k "/O=mtlsd test/CN=pathlen-$k-client" leaf.ext
        cat pl_${k}_b.crt pl_${k}_a.crt >pl_$k.extra
        cat pl_$k.crt pl_$k.extra >pl_$k.pem
    done
    # 2. an intermediate the root revokes (and its CRLs before and after)
    pki_sign cadb rinter "/O=mtlsd test/CN=revocable intermediate CA" inter.ext
    pki_ca_db "$M/rinterdb" rinter.crt rinter.key
    pki_sign rinterdb rleaf "/O=mtlsd test/CN=rleaf" leaf.ext
    openssl ca -batch -config rinterdb/ca.cnf -gencrl -out rinter.crl >>openssl.log 2>&1
    openssl ca -batch -config cadb/ca.cnf -gencrl -out root_norev.crl >>openssl.log 2>&1
    openssl ca -batch -config cadb/ca.cnf -revoke rinter.crt >>openssl.log 2>&1
    openssl ca -batch -config cadb/ca.cnf -gencrl -out root_rev.crl >>openssl.log 2>&1
    cp rinter.crt rleaf.extra
    cat rleaf.crt rleaf.extra >rleaf.pem
    cp rleaf.crt rleaf_only.pem; cp rleaf.key rleaf_only.key
    # 4. the new CA's client: other-client (of other-ca, from certs/gen.sh)
    cp "$PKI/other-client.crt" newca_client.pem; cp "$PKI/other-client.key" newca_client.key
    chmod 600 ./*.key
) || { echo "FATAL: extra PKI failed"; tail -30 "$M/openssl.log"; exit 1; }
openssl crl -in "$M/root_rev.crl" -noout -text 2>/dev/null | grep -q "Serial Number: $(openssl x509 -in "$M/rinter.crt" -noout -serial | cut -d= -f2)" ||
    { echo "FATAL: root_rev.crl does not list rinter"; exit 1; }

# ---- 1. path length ----------------------------------------------------------------
note "---- 1. basicConstraints pathlen"
start_mtlsd --workers 2
before=$(metrics_snap)
k=0
for cv in curl:1.3 curl:1.2 s_client:-tls1_3 s_client:-tls1_2; do
    cl=${cv%%:*} v=${cv#*:}
    if [ "$cl" = curl ]; then st=$(status_of pl_bad "$v"); else st=$(sclient_status pl_bad "$v"); fi
    k=$((k + 1))
    check_eq "pathlen:0 A -> B -> leaf, $cl $v: handshake refused" "$st" none
    [ "$st" = 200 ] && note "$(head -20 "$T/last.out")"
done
after=$(metrics_snap)
check_eq "pathlen violation counted as mtlsd_verify_rejected_usage +$k (counted:$(reason_deltas "$before" "$after"))" \
    "$(mdelta "$before" "$after" mtlsd_verify_rejected_usage)" "$k"
note "pathlen refusal logged as '$(last_refusal)'"
for cv in curl:1.3 curl:1.2 s_client:-tls1_3 s_client:-tls1_2; do
    cl=${cv%%:*} v=${cv#*:}
    if [ "$cl" = curl ]; then st=$(status_of pl_good "$v"); else st=$(sclient_status pl_good "$v"); fi
    check_eq "control pathlen:1 A' -> B' -> leaf', $cl $v (default --verify-depth): 200" "$st" 200
    [ "$st" != 200 ] && note "$(head -20 "$T/last.out")" && note "server: $(last_refusal)"
done
w=$(mcurl pl_good "$(url /whoami)" 2>/dev/null)
check_contains "control pathlen: /whoami names leaf'" "$w" "pathlen-good-client"
good_200 "after the pathlen cases"
stop_mtlsd TERM
check_eq "pathlen: SIGTERM exit 0" "$MTLSD_RC" 0

# ---- 2. a revoked intermediate --------------------------------------------------------
note "---- 2. intermediate revoked by the root's CRL"
cat "$PKI/ca.crt" "$M/rinter.crt" >"$T/ca+rinter.crt"
# control first: the root's CRL does not (yet) list the intermediate
SRV_CLIENT_CA=$T/ca+rinter.crt start_mtlsd --workers 2 --crl "$M/root_norev.crl" --crl "$M/rinter.crl"
for tls in 1.3 1.2; do
    st=$(status_of rleaf "$tls")
    check_eq "control (intermediate not revoked): rleaf chain, curl $tls -> 200" "$st" 200
    [ "$st" != 200 ] && note "server: $(last_refusal)"
done
check_eq "control: rleaf alone (intermediate from --client-ca) -> 200" "$(status_of rleaf_only)" 200
good_200 "control revoked-intermediate set-up"
stop_mtlsd TERM

SRV_CLIENT_CA=$T/ca+rinter.crt start_mtlsd --workers 2 --crl "$M/root_rev.crl" --crl "$M/rinter.crl"
before=$(metrics_snap)
st=$(status_of rleaf 1.3)
after=$(metrics_snap)
got=$(mdelta "$before" "$after" mtlsd_verify_rejected_revoked)
RINTER_BUG="a leaf under a revoked intermediate listed in --client-ca was accepted"
if [ "$st" = none ] && [ "$got" = 1 ]; then
    pass "revoked intermediate: rleaf chain refused at the handshake"
    pass "revoked intermediate: mtlsd_verify_rejected_revoked +1"
elif [ "$st" = 200 ]; then
    fail "revoked-intermediate: rleaf chain curl 1.3 -> $st (want handshake refused, revoked+1; counted:$(reason_deltas "$before" "$after")) -- $RINTER_BUG"
else
    fail "revoked intermediate: rleaf chain refused with revoked +1" "status $st, counted:$(reason_deltas "$before" "$after")" "server: $(last_refusal)"
fi
# the same leaf alone and over TLS 1.2 (status only)
for v in "rleaf 1.2" "rleaf_only 1.3"; do
    st=$(status_of $v)
    if [ "$st" = none ]; then
        pass "revoked intermediate: ${v/ / curl }: handshake refused"
    elif [ "$st" = 200 ]; then
        fail "revoked-intermediate: ${v/ / curl } -> 200 -- $RINTER_BUG"
    else
        fail "revoked intermediate: ${v/ / curl }: handshake refused" "got $st"
    fi
done
note "revoked intermediate: last refusal logged: '$(last_refusal)'"
good_200 "revoked-intermediate set-up, a direct client of the root"
stop_mtlsd TERM
check_eq "revoked intermediate: SIGTERM exit 0" "$MTLSD_RC" 0

# ---- 3. --clock-skew ----------------------------------------------------------------
note "---- 3. --clock-skew"
NB_AHEAD=60
(cd "$M" && pki_sign cadb skew "/O=mtlsd test/CN=skew-client" leaf.ext "$(pki_date $NB_AHEAD)" "$(pki_date 86400)" &&
    cp skew.crt skew.pem) || { echo "FATAL: skew certificate"; tail "$M/openssl.log"; exit 1; }
nb=$(date -u -d "$(openssl x509 -in "$M/skew.crt" -noout -startdate | cut -d= -f2)" +%s)
note "skew client notBefore is $((nb - $(date +%s))) s ahead"
start_mtlsd --workers 2
before=$(metrics_snap)
k=0
for tls in 1.3 1.2; do
    st=$(status_of skew "$tls")
    k=$((k + 1))
    check_eq "default --clock-skew 0: notBefore +${NB_AHEAD}s, curl $tls: handshake refused" "$st" none
done
after=$(metrics_snap)
check_eq "default skew: mtlsd_verify_rejected_not_yet_valid +$k (counted:$(reason_deltas "$before" "$after"))" \
    "$(mdelta "$before" "$after" mtlsd_verify_rejected_not_yet_valid)" "$k"
stop_mtlsd TERM

start_mtlsd --workers 2 --clock-skew 120
before=$(metrics_snap)
st13=$(status_of skew 1.3)
out13=$(cat "$T/last.out")
st12=$(status_of skew 1.2)
left=$((nb - $(date +%s)))
after=$(metrics_snap)
if [ "$left" -le 0 ]; then
    fail "--clock-skew 120: inconclusive, the certificate became valid before the check ($left s)"
elif [ "$st13" = 200 ] && [ "$st12" = 200 ]; then
    pass "--clock-skew 120: notBefore still ${left}s ahead, curl 1.3 and 1.2 -> 200"
else
    fail "clock-skew: --clock-skew 120 with a client whose notBefore is ${left}s ahead: curl 1.3 -> $st13, 1.2 -> $st12 (want 200 200); counted:$(reason_deltas "$before" "$after"); server log: '$(last_refusal)'; curl: $(grep -m1 -i 'curl:' <<<"$out13")"
fi
w=$(mcurl skew "$(url /whoami)" 2>/dev/null)
[ "$((nb - $(date +%s)))" -gt 0 ] && check_contains "--clock-skew 120: /whoami names the skew client" "$w" "skew-client"
stop_mtlsd TERM
check_eq "clock-skew: SIGTERM exit 0" "$MTLSD_RC" 0

# ---- 4. SIGHUP replacing --client-ca ------------------------------------------------
note "---- 4. SIGHUP with a different --client-ca"
cp "$PKI/ca.crt" "$T/hup-ca.crt"
SRV_CLIENT_CA=$T/hup-ca.crt start_mtlsd --workers 2
w1=$(mcurl good "$(url /whoami)" 2>/dev/null)
w2=$(mcurl good "$(url /whoami)" 2>/dev/null)
check_eq "old CA's client, first connection: chain_cached false" "$(jget "$w1" 'j["chain_cached"]')" false
check_eq "old CA's client, second connection: chain_cached true" "$(jget "$w2" 'j["chain_cached"]')" true
check_eq "old CA's client: 200 before the reload" "$(status_of good)" 200
check_eq "new CA's client: refused before the reload" "$(status_of newca_client)" none
r0=$(mval "$(mcurl good "$(url /metrics)" 2>/dev/null)" mtlsd_reloads)
note "mtlsd_reloads before: ${r0:-<none>}"
# rewrite in place (same path), then SIGHUP
cat "$PKI/other-ca.crt" >"$T/hup-ca.crt"
kill -HUP "$MTLSD_PID"
# Bounded wait for mtlsd_reloads to grow. Only the new CA's client can read
# /metrics once the reload is done; the old one as long as it is not.
r1=""
limit=$($PY -c "print(int(10 * 10 * $IT_SLOW))")
for ((i = 0; i < limit; i++)); do
    r1=$(mval "$(mcurl newca_client "$(url /metrics)" 2>/dev/null)" mtlsd_reloads)
    [ -n "$r1" ] && [ "$r1" -gt "${r0:-0}" ] && break
    grep -q "SIGHUP: reload failed" "$MTLSD_LOG" && break
    sleep 0.1
done
check_eq "SIGHUP: mtlsd_reloads grew by 1" "${r1:-<unreadable>}" "$((${r0:-0} + 1))"
check_contains "SIGHUP: logged as reloaded" "$(grep -E 'SIGHUP: (reloaded|reload failed)' "$MTLSD_LOG" | tail -1)" "reloaded"
before=$(mcurl newca_client "$(url /metrics)" 2>/dev/null)
k=0
for try in 1 2 3 4; do # two workers: a few connections
    st=$(status_of good)
    k=$((k + 1))
    check_eq "after SIGHUP: old CA's (cached) client refused at the handshake (try $try)" "$st" none
done
st=$(sclient_status good -tls1_2)
k=$((k + 1))
check_eq "after SIGHUP: old CA's client, s_client TLS 1.2: refused" "$st" none
after=$(mcurl newca_client "$(url /metrics)" 2>/dev/null)
check_eq "after SIGHUP: old client counted as untrusted +$k (counted:$(reason_deltas "$before" "$after"))" \
    "$(mdelta "$before" "$after" mtlsd_verify_rejected_untrusted)" "$k"
check_eq "after SIGHUP: new CA's client -> 200" "$(status_of newca_client)" 200
check_eq "after SIGHUP: new CA's client, TLS 1.2 -> 200" "$(status_of newca_client 1.2)" 200
w=$(mcurl newca_client "$(url /whoami)" 2>/dev/null)
check_contains "after SIGHUP: /whoami is the new CA's client" "$w" "intruder"

# finish() would stop the server and check exit 0; do it here since the good
# client (the one lib.sh's helpers use) can no longer connect.
stop_mtlsd TERM
check_eq "SIGHUP case: SIGTERM exit 0" "$MTLSD_RC" 0
finish
