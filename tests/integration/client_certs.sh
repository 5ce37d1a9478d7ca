#!/usr/bin/env bash
# The handshake fails, with no HTTP response, for a client without a
# certificate and for a client whose certificate comes from an untrusted CA:
# curl, gnutls-cli and openssl s_client, TLS 1.2 and 1.3. After every
# refusal a good client still gets 200; /metrics counts the failures.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 2
OC=$PKI/other-client.crt OK=$PKI/other-client.key
failed0=$(metric mtlsd_handshakes_failed)
n_refused=0

refused() { # refused "name" rc output
    check "$1: client reports failure (exit $2)" test "$2" -ne 0
    check_not_contains "$1: no HTTP response" "$3" "HTTP/1."
    check_not_contains "$1: no body" "$3" "Hello World!"
    n_refused=$((n_refused + 1))
    good_200 "after $1"
}

for v in 1.3 1.2; do
    # curl
    out=$(ncurl --tlsv$v --tls-max $v -i "$(url /)" 2>&1); rc=$?
    refused "TLS$v curl, no cert" $rc "$out"
    out=$(ncurl --tlsv$v --tls-max $v -i --cert "$OC" --key "$OK" "$(url /)" 2>&1); rc=$?
    refused "TLS$v curl, untrusted-CA cert" $rc "$out"
    # gnutls-cli
    prio="NORMAL:-VERS-ALL:+VERS-TLS$v"
    out=$(gnutls_get "$prio" /); rc=$?
    refused "TLS$v gnutls-cli, no cert" $rc "$out"
    out=$(gnutls_get "$prio" / "$OC" "$OK"); rc=$?
    refused "TLS$v gnutls-cli, untrusted-CA cert" $rc "$out"
    # openssl s_client (its exit status does not reflect a TLS 1.3 post-
    # handshake alert reliably, so only the absence of a response counts)
    flag=-tls1_${v#1.}
    out=$(sclient_get $flag /)
    check_not_contains "TLS$v s_client, no cert: no HTTP response" "$out" "HTTP/1."
    n_refused=$((n_refused + 1))
    good_200 "after TLS$v s_client, no cert"
    out=$(sclient_get $flag / "$OC" "$OK")
    check_not_contains "TLS$v s_client, untrusted-CA cert: no HTTP response" "$out" "HTTP/1."
    n_refused=$((n_refused + 1))
    good_200 "after TLS$v s_client, untrusted-CA cert"
    # python ssl (OpenSSL): what the client saw
    r=$(itc req --cert "$OC" --key "$OK" --tls $v --data 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' --quiet 2)
    check_eq "TLS$v python ssl, untrusted-CA cert: no response" "$(jget "$r" 'len(j["responses"])')" 0
    n_refused=$((n_refused + 1))
done

failed1=$(metric mtlsd_handshakes_failed)
check_eq "/metrics mtlsd_handshakes_failed counts every refusal" "$((failed1 - failed0))" "$n_refused"
stop_mtlsd TERM
check_eq "SIGTERM exit 0" "$MTLSD_RC" 0

# Control: the untrusted client's certificate is refused for its issuer, not
# for being malformed: with both CAs in --client-ca it is accepted.
cat "$PKI/ca.crt" "$PKI/other-ca.crt" > "$T/both-ca.crt"
SRV_CLIENT_CA=$T/both-ca.crt start_mtlsd --workers 1
out=$(ncurl --cert "$OC" --key "$OK" "$(url /whoami)" 2>&1)
check_contains "other-client accepted when its CA is in the bundle" "$out" '"uri":["spiffe://other.test/intruder"]'
good_200 "CA bundle of two"
finish
