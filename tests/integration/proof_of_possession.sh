#!/usr/bin/env bash
# Issue 3: the verified-chain cache never skips proof of possession. The
# trusted client's certificate chain is put in the cache by a good
# connection; then tests/tools/pop_client presents the same chain but signs
# its CertificateVerify with a different private key: refused over TLS 1.3
# and 1.2, in every --client-auth mode, as a cache hit (counted) and with
# the cache off. The same client with the matching key gets 200, so the
# refusal is due to the key alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

: "${POP_CLIENT:=$MTLSD_BUILD/tests/pop_client}"
if [ ! -x "$POP_CLIENT" ]; then
    echo "FATAL: pop_client not built ($POP_CLIENT)"; exit 1
fi
make_pki_matrix
pki_eckey "$T/other.key" # a P-256 key that belongs to no certificate

# pop NAME KEY TLS [PATH] -> output; exit 0 only on HTTP 200
pop() {
    timeout "$(slow 20)" "$POP_CLIENT" 127.0.0.1 "$PORT" "$M/$1.pem" "$2" "$PKI/ca.crt" "$3" "${4:-/whoami}" 2>&1
}

for MODE in verify present optional; do
    note "---- --client-auth $MODE"
    start_mtlsd --workers 2 --client-auth "$MODE"
    for v in 1.3 1.2; do
        out=$(pop good "$M/good.key" $v); rc=$?
        check_eq "$MODE TLS$v: pop_client, certificate with its own key -> 200" "$rc" 0
        [ $rc = 0 ] || note "$out"
        out=$(pop good "$M/good.key" $v); rc=$?
        check_contains "$MODE TLS$v: second connection is a cache hit" "$out" '"chain_cached":true'
    done
    for n in good inter_good; do
        for v in 1.3 1.2; do
            # the chain is in the cache (a good connection just now)
            out=$(pop "$n" "$M/$n.key" $v); rc=$?
            check_eq "$MODE TLS$v $n: own key -> 200" "$rc" 0
            h0=$(metric mtlsd_verify_cache_hits)
            out=$(pop "$n" "$T/other.key" $v); rc=$?
            h1=$(metric mtlsd_verify_cache_hits)
            check "$MODE TLS$v $n, another key: refused (exit $rc)" test "$rc" -ne 0
            check_not_contains "$MODE TLS$v $n, another key: no 200" "$out" "HTTP/1.1 200"
            check_not_contains "$MODE TLS$v $n, another key: no identity" "$out" '"subject"'
            # the forged attempt was a cache hit (the metric request itself is one too)
            check "$MODE TLS$v $n, another key: it was a cache hit (hits $h0 -> $h1)" test "$((h1 - h0))" -ge 2
            # a key of the wrong type for the certificate: RSA key, EC certificate
            out=$(pop "$n" "$M/rsa1024.key" $v); rc=$?
            check_not_contains "$MODE TLS$v $n, an RSA key: no 200" "$out" "HTTP/1.1 200"
        done
    done
    good_200 "$MODE after the forgeries"
    n=$(grep -cE "handshake failed: (verify problem based on signature|Signature verify error)" "$MTLSD_LOG")
    check "$MODE: the server log names the bad CertificateVerify signature ($n lines)" test "$n" -ge 8
    stop_mtlsd TERM
done

note "---- --verify-cache 0 (every chain verified in full)"
start_mtlsd --workers 1 --verify-cache 0
for v in 1.3 1.2; do
    out=$(pop good "$M/good.key" $v); rc=$?
    check_eq "cache off TLS$v: own key -> 200" "$rc" 0
    check_contains "cache off TLS$v: not cached" "$out" '"chain_cached":false'
    out=$(pop good "$T/other.key" $v); rc=$?
    check "cache off TLS$v, another key: refused (exit $rc)" test "$rc" -ne 0
    check_not_contains "cache off TLS$v, another key: no 200" "$out" "HTTP/1.1 200"
done
check_eq "cache off: no hits" "$(metric mtlsd_verify_cache_hits)" 0
good_200 "cache off"
finish
