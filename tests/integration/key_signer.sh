#!/usr/bin/env bash
# Issue 9 item 3: --key-signer openssl, the server's RSA signatures made by
# libcrypto through wolfSSL's PK callbacks (src/keysign.c), with real clients:
#   - TLS 1.3 (curl, openssl s_client with each rsa_pss_rsae_* hash) and
#     TLS 1.2 ECDHE-RSA with rsa_pkcs1_* and rsa_pss_rsae_* signatures
#     (s_client -sigalgs, gnutls-cli); mtlsd_key_signatures_openssl counts
#     one signature per full handshake, none per resumption;
#   - the epoll backend too (the sandbox is on in both);
#   - rotation (SIGHUP): a new RSA certificate and key sign together (the
#     client verifies the new certificate's signature), then an ECDSA pair:
#     wolfSSL signs it, said in the log and in /metrics;
#   - --key-signer auto says which signer it picked (wolfSSL for RSA-3072,
#     which OpenSSL 3.0 signs no faster); wolfssl signs nothing
#     through libcrypto; openssl with an ECDSA key starts and says wolfSSL
#     signs it;
#   - nothing is opened after the sandbox for libcrypto (no openssl.cnf).
. "$(dirname "$0")/lib.sh"

make_pki # ECDSA, for the rotation to an ECDSA pair and the ECDSA start
EC=$PKI
make_pki --rsa
RSA=$PKI

# sc TLSFLAG SIGALGS [s_client args]: GET / with s_client offering only
# SIGALGS; prints s_client's summary and the response.
sc() {
    local flag=$1 algs=$2 req="GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    shift 2
    printf "$req" | timeout "$(slow 15)" openssl s_client -connect "127.0.0.1:$PORT" \
        -servername localhost -verify_return_error -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" \
        -key "$PKI/client.key" -ign_eof "$flag" -sigalgs "$algs" "$@" 2>&1
}
# (its own connection is a full handshake: one more signature, counted
# before the page is rendered)
signed() { metric mtlsd_key_signatures_openssl; }

note "---- --key-signer openssl, RSA-2048 server key"
start_mtlsd --workers 2 --key-signer openssl
check_contains "start-up: libcrypto signs" "$(cat "$MTLSD_LOG")" "key signer: openssl"
check_contains "/metrics: mtlsd_key_signer{signer=\"openssl\"}" "$(metrics_snap)" \
    'mtlsd_key_signer{signer="openssl"} 1'
s0=$(signed)
for v in 1.3 1.2; do
    out=$(ccurl --tlsv$v --tls-max $v "$(url /)" 2>&1)
    check_eq "TLS$v curl -> Hello World!" "$out" "Hello World!"
done
for case in "-tls1_3 rsa_pss_rsae_sha256 RSA-PSS SHA256" "-tls1_3 rsa_pss_rsae_sha512 RSA-PSS SHA512" \
    "-tls1_2 rsa_pkcs1_sha256 RSA SHA256" "-tls1_2 rsa_pkcs1_sha512 RSA SHA512" \
    "-tls1_2 rsa_pss_rsae_sha256 RSA-PSS SHA256" "-tls1_2 rsa_pss_rsae_sha384 RSA-PSS SHA384"; do
    read -r flag algs type md <<<"$case"
    out=$(sc "$flag" "$algs")
    check_contains "s_client $flag -sigalgs $algs: server signed with $type" "$out" \
        "Peer signature type: $type"$'\n'
    check_contains "s_client $flag -sigalgs $algs: digest $md" "$out" "Peer signing digest: $md"
    check_contains "s_client $flag -sigalgs $algs: Hello World!" "$out" "Hello World!"
done
for prio in "NORMAL:-VERS-ALL:+VERS-TLS1.3" \
    "NORMAL:-VERS-ALL:+VERS-TLS1.2:-SIGN-ALL:+SIGN-RSA-SHA384"; do
    out=$(gnutls_get "$prio" / "$PKI/client.crt" "$PKI/client.key")
    check_contains "gnutls-cli $prio: Hello World!" "$out" "Hello World!"
done
s1=$(signed)
check_eq "mtlsd_key_signatures_openssl: one per full handshake (2 curl, 6 s_client, 2 gnutls, /metrics)" \
    "$((s1 - s0))" 11

note "---- resumption: no signature"
rm -f "$T/sess.pem"
out=$(sc -tls1_3 rsa_pss_rsae_sha256 -sess_out "$T/sess.pem")
check_contains "TLS1.3 first connection: full handshake" "$out" "New, TLSv1.3"
s2=$(signed)
out=$(sc -tls1_3 rsa_pss_rsae_sha256 -sess_in "$T/sess.pem")
check_contains "TLS1.3 -sess_in: resumed" "$out" "Reused, TLSv1.3"
check_contains "TLS1.3 resumed: Hello World!" "$out" "Hello World!"
out=$(sc -tls1_2 rsa_pkcs1_sha256 -sess_out "$T/sess12.pem")
out=$(sc -tls1_2 rsa_pkcs1_sha256 -sess_in "$T/sess12.pem")
check_contains "TLS1.2 -sess_in: resumed" "$out" "Reused, TLSv1.2"
check_eq "resumptions sign nothing (one full TLS 1.2 handshake in between, /metrics)" \
    "$(($(signed) - s2))" 2

note "---- rotation: a new RSA certificate and key, then an ECDSA pair (SIGHUP)"
mkdir -p "$T/live" "$T/rot"
cp "$RSA/server.crt" "$RSA/server.key" "$T/live/"
(
    cd "$T/rot" || exit 1
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out new.key &&
        openssl req -new -key new.key -subj "/O=mtlsd dev/CN=rotated" -out new.csr &&
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" \
            "subjectAltName=DNS:localhost" >new.ext &&
        openssl x509 -req -in new.csr -CA "$RSA/ca.crt" -CAkey "$RSA/ca.key" -CAcreateserial \
            -days 2 -sha256 -extfile new.ext -out new.crt
) >"$T/rot.log" 2>&1 || fail "make the rotated certificate" "$(cat "$T/rot.log")"
stop_mtlsd TERM
SRV_CERT=$T/live/server.crt SRV_KEY=$T/live/server.key start_mtlsd --workers 2 --key-signer openssl
s0=$(signed)
cp "$T/rot/new.crt" "$T/live/server.crt"
cp "$T/rot/new.key" "$T/live/server.key"
check_contains "SIGHUP with a new RSA pair: reloaded" "$(sighup_wait)" "SIGHUP: reloaded"
for flag in -tls1_3 -tls1_2; do
    out=$(sc $flag rsa_pss_rsae_sha256:rsa_pkcs1_sha256 -showcerts)
    check_contains "after rotation $flag: the new certificate is sent" "$out" "CN = rotated"
    check_contains "after rotation $flag: its key signed (verified), Hello World!" "$out" "Hello World!"
done
check_eq "after rotation: libcrypto signed both (and /metrics)" "$(($(signed) - s0))" 3
cp "$EC/server.crt" "$T/live/server.crt"
cp "$EC/server.key" "$T/live/server.key"
check_contains "SIGHUP with an ECDSA pair: reloaded" "$(sighup_wait)" "SIGHUP: reloaded"
check_contains "ECDSA key: the log says wolfSSL signs it" "$(tail -5 "$MTLSD_LOG")" \
    "--key-signer openssl applies to RSA keys"
# The server now proves itself with the ECDSA CA's certificate.
ec_get() { curl -sS --max-time "$(slow 10)" --resolve "localhost:$PORT:127.0.0.1" --cacert "$EC/ca.crt" \
    --cert "$RSA/client.crt" --key "$RSA/client.key" "$(url "$1")" 2>&1; }
s0=$(mval "$(ec_get /metrics)" mtlsd_key_signatures_openssl)
check "ECDSA server key: the signature counter is read" test -n "$s0"
check_eq "ECDSA server key: Hello World!" "$(ec_get /)" "Hello World!"
out=$(ec_get /metrics)
check_eq "ECDSA server key: libcrypto signs nothing" "$(($(mval "$out" mtlsd_key_signatures_openssl) - s0))" 0
check_contains "/metrics: mtlsd_key_signer{signer=\"wolfssl\"}" "$out" 'mtlsd_key_signer{signer="wolfssl"} 1'
stop_mtlsd TERM
check_eq "mtlsd exits 0" "$MTLSD_RC" 0

note "---- the epoll backend, under strace: nothing opened for libcrypto"
have_strace=0
strace -f -qq -e trace=none true 2>/dev/null && have_strace=1
if [ $have_strace = 1 ]; then
    # (LeakSanitizer cannot run under ptrace)
    cat >"$T/traced" <<X
#!/bin/sh
export ASAN_OPTIONS="\${ASAN_OPTIONS:-}:detect_leaks=0"
exec strace -f -qq -e trace=open,openat,landlock_restrict_self -o "$T/strace" "$MTLSD" "\$@"
X
    chmod +x "$T/traced"
    MTLSD_REAL=$MTLSD
    MTLSD=$T/traced start_mtlsd --workers 1 --key-signer openssl --io epoll
    MTLSD=$MTLSD_REAL
else
    start_mtlsd --workers 1 --key-signer openssl --io epoll
fi
for v in 1.3 1.2; do
    out=$(ccurl --tlsv$v --tls-max $v "$(url /)" 2>&1)
    check_eq "epoll TLS$v curl -> Hello World!" "$out" "Hello World!"
done
check_eq "epoll: libcrypto signed both (and /metrics)" "$(signed)" 3
# strace -o FILE PROG blocks fatal signals: the signal goes to mtlsd itself,
# and strace ends with it
traced=$(pgrep -P "$MTLSD_PID" 2>/dev/null)
[ -n "$traced" ] && kill -TERM "$traced"
stop_mtlsd TERM
check_eq "epoll: mtlsd exits 0" "$MTLSD_RC" 0
if [ $have_strace = 1 ]; then
    check_eq "openssl.cnf never opened" "$(grep -c 'openssl\.cnf' "$T/strace")" 0
    after=$(sed -n '/landlock_restrict_self/,$p' "$T/strace" | grep -E 'open(at)?\(' |
        grep -vE '"/dev/urandom"|"/sys/devices/system/cpu/online"|"/proc/|"/usr/')
    # (/proc and /usr: glibc's CPU count and, under ASan, the sanitizer's runtime)
    check_eq "after the sandbox: no file opened (wolfSSL seeds with getrandom)" "$after" ""
else
    skip "strace not installed"
fi

note "---- auto, wolfssl, and openssl with an ECDSA key"
start_mtlsd --workers 1
check_contains "auto: the log says which signer and why" "$(grep 'key signer:' "$MTLSD_LOG")" \
    "--key-signer auto"
good_200 "auto"
stop_mtlsd TERM
# RSA-3072: OpenSSL 3.0's AVX-512 code is for 2048-bit keys only
(
    cd "$T/rot" || exit 1
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out k3072.key &&
        openssl req -new -key k3072.key -subj "/O=mtlsd dev/CN=localhost" -out k3072.csr &&
        openssl x509 -req -in k3072.csr -CA "$RSA/ca.crt" -CAkey "$RSA/ca.key" -CAcreateserial \
            -days 2 -sha256 -extfile new.ext -out k3072.crt
) >>"$T/rot.log" 2>&1 || fail "make an RSA-3072 certificate" "$(cat "$T/rot.log")"
SRV_CERT=$T/rot/k3072.crt SRV_KEY=$T/rot/k3072.key start_mtlsd --workers 1
check_contains "auto, RSA-3072 key: wolfSSL signs" "$(grep 'key signer:' "$MTLSD_LOG")" \
    "key signer: wolfssl (--key-signer auto:"
good_200 "auto, RSA-3072"
stop_mtlsd TERM
start_mtlsd --workers 1 --key-signer wolfssl
good_200 "wolfssl"
check_eq "wolfssl: libcrypto signs nothing" "$(signed)" 0
check_contains "wolfssl: /metrics says so" "$(metrics_snap)" 'mtlsd_key_signer{signer="wolfssl"} 1'
stop_mtlsd TERM
PKI=$EC start_mtlsd --workers 1 --key-signer openssl
check_contains "openssl, ECDSA key: starts, says wolfSSL signs it" "$(cat "$MTLSD_LOG")" \
    "--key-signer openssl applies to RSA keys"
PKI=$EC good_200 "openssl, ECDSA key"
finish
