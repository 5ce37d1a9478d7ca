#!/usr/bin/env bash
# A ClientHello with more cipher suites than wolfSSL keeps (issue 14 item 3).
# wolfSSL failed any list longer than WOLFSSL_MAX_SUITE_SZ (150 suites) with
# decode_error, although a ClientHello may carry 32767; sslscan sends 344 and
# then reported TLS 1.2 as disabled. scripts/patches/wolfssl-many-suites.patch
# keeps the suites the server can use and ignores the rest.
# tests/tools/hello.py sends N suites, the server's own last: it must answer
# with a ServerHello for every N, on TLS 1.2 and 1.3, and keep serving.
# (8000 suites make a ClientHello of two records. wolfSSL bounds any
# handshake message by MAX_HANDSHAKE_SZ, ~37 KB: a ClientHello with all
# 32767 suites is 64 KB and is refused as too large, which bounds memory.)
. "$(dirname "$0")/lib.sh"

HELLO="$PY $MTLSD_SRC/tests/tools/hello.py"
make_pki
start_mtlsd --workers 1
for v in 1.2 1.3; do
    for n in 2 150 151 344 1000 8000; do
        out=$($HELLO "$PORT" suites --tls $v --count $n)
        check_eq "TLS $v ClientHello with $n suites (ours last): ServerHello" \
            "$(jget "$out" 'j["reply"]')" "server_hello"
    done
done
# Real clients with long lists: every suite OpenSSL has (TLS 1.2).
list=$(openssl ciphers -tls1_2 'ALL:COMPLEMENTOFALL:@SECLEVEL=0' 2>/dev/null)
note "openssl offers $(tr ':' '\n' <<<"$list" | wc -l) TLS 1.2 suites"
out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout "$(slow 15)" openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
        -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -tls1_2 \
        -cipher "$list" -ign_eof 2>&1)
check_contains "openssl s_client -tls1_2 with all its suites: served" "$out" "Hello World!"
if command -v sslscan >/dev/null; then
    out=$(timeout "$(slow 60)" sslscan --no-colour --no-heartbleed --no-renegotiation \
        --no-compression --no-fallback --no-check-certificate "127.0.0.1:$PORT" 2>&1)
    check_contains "sslscan: TLSv1.2 enabled" "$out" "TLSv1.2   enabled"
    check_contains "sslscan: TLSv1.3 enabled" "$out" "TLSv1.3   enabled"
else
    skip "sslscan not installed (the interop test set-up installs it)"
fi
good_200 "after"
finish
