#!/usr/bin/env bash
# TLS 1.3 tickets resume with every suite the server offers (issue 10,
# review item 2.10). With wolfSSL 5.5.4 only the first suite tried resumed:
# the library decrypted the ticket in place, zeroed it on a suite mismatch
# and called the ticket callback again for the next suite, where the MAC
# failed (counted as a bad ticket). 5.7.2 decrypts each PSK identity once.
# openssl s_client with one suite each: full handshake, then -sess_in
# resumes, the identity is restored, and no ticket is counted as bad.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 1
sc() {
    local suite=$1; shift
    printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout "$(slow 15)" openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
            -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -tls1_3 \
            -ciphersuites "$suite" -ign_eof "$@" 2>&1
}
ALL=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
bad0=$(metric mtlsd_resumption_refused_bad_ticket)
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    first=$(sc $suite -sess_out "$T/$suite.pem")
    check_contains "$suite: full handshake with that suite" "$first" "Cipher is $suite"
    second=$(sc $suite -sess_in "$T/$suite.pem" -sess_out "$T/$suite.2.pem")
    check_contains "$suite: the ticket resumes" "$second" "Reused, TLSv1.3, Cipher is $suite"
    check_contains "$suite: identity restored" "$second" '"resumed":true'
    third=$(sc $suite -sess_in "$T/$suite.2.pem")
    check_contains "$suite: the ticket of the resumed connection resumes" "$third" "Reused,"
    # The case that failed: the client offers all three suites, so the
    # server tries the others before the ticket's own.
    fourth=$(sc "$ALL" -sess_in "$T/$suite.pem")
    check_contains "$suite: resumes when all three suites are offered" "$fourth" \
        "Reused, TLSv1.3, Cipher is $suite"
done
check_eq "no ticket counted as bad" "$(metric mtlsd_resumption_refused_bad_ticket)" "$bad0"
finish
