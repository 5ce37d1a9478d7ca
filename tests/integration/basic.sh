#!/usr/bin/env bash
# 200 "Hello World!" with a client certificate: TLS 1.3 and 1.2, ECDSA and
# RSA PKIs, three client stacks (curl/OpenSSL, gnutls-cli, openssl s_client);
# /whoami confirms the version the server negotiated. --tls-min 1.3 refuses
# TLS 1.2-only clients and still serves TLS 1.3.
. "$(dirname "$0")/lib.sh"

for alg in ec rsa; do
    if [ $alg = rsa ]; then make_pki --rsa; else make_pki; fi
    start_mtlsd --workers 2
    C=$PKI/client.crt K=$PKI/client.key
    for v in 1.3 1.2; do
        tag="$alg TLS$v"
        # curl
        out=$(ccurl --tlsv$v --tls-max $v -w ' %{http_code}' "$(url /)" 2>&1)
        check_eq "$tag curl: 200 Hello World!" "$out" "Hello World! 200"
        out=$(ccurl --tlsv$v --tls-max $v "$(url /whoami)" 2>&1)
        check_contains "$tag curl: server saw TLSv$v" "$out" "\"tls_version\":\"TLSv$v\""
        # gnutls-cli
        prio="NORMAL:-VERS-ALL:+VERS-TLS$v"
        out=$(gnutls_get "$prio" / "$C" "$K"); rc=$?
        check_eq "$tag gnutls-cli: exit 0" "$rc" 0
        check_contains "$tag gnutls-cli: 200" "$out" "HTTP/1.1 200 OK"
        check_contains "$tag gnutls-cli: body" "$out" "Hello World!"
        out=$(gnutls_get "$prio" /whoami "$C" "$K")
        check_contains "$tag gnutls-cli: server saw TLSv$v" "$out" "\"tls_version\":\"TLSv$v\""
        # openssl s_client
        flag=-tls1_${v#1.}
        out=$(sclient_get $flag / "$C" "$K"); rc=$?
        check_contains "$tag s_client: 200" "$out" "HTTP/1.1 200 OK"
        check_contains "$tag s_client: body" "$out" "Hello World!"
        out=$(sclient_get $flag /whoami "$C" "$K")
        check_contains "$tag s_client: server saw TLSv$v" "$out" "\"tls_version\":\"TLSv$v\""
    done
    # default client settings negotiate TLS 1.3
    out=$(ccurl "$(url /whoami)")
    check_contains "$alg default curl negotiates TLSv1.3" "$out" '"tls_version":"TLSv1.3"'
    stop_mtlsd TERM
    check_eq "$alg: SIGTERM exit 0" "$MTLSD_RC" 0
done

# --tls-min 1.3: TLS 1.2-only clients are refused, TLS 1.3 still works.
make_pki
start_mtlsd --workers 1 --tls-min 1.3
out=$(ccurl --tlsv1.2 --tls-max 1.2 -w ' %{http_code}' "$(url /)" 2>&1); rc=$?
check "tls-min 1.3: curl TLS 1.2-only fails" test "$rc" -ne 0
check_not_contains "tls-min 1.3: curl TLS 1.2-only gets no body" "$out" "Hello World!"
out=$(gnutls_get "NORMAL:-VERS-ALL:+VERS-TLS1.2" / "$PKI/client.crt" "$PKI/client.key"); rc=$?
check "tls-min 1.3: gnutls-cli TLS 1.2-only fails" test "$rc" -ne 0
check_not_contains "tls-min 1.3: gnutls-cli gets no HTTP" "$out" "HTTP/1.1"
out=$(sclient_get -tls1_2 / "$PKI/client.crt" "$PKI/client.key")
check_not_contains "tls-min 1.3: s_client -tls1_2 gets no HTTP" "$out" "HTTP/1.1"
out=$(ccurl --tlsv1.3 "$(url /whoami)")
check_contains "tls-min 1.3: TLS 1.3 still served" "$out" '"tls_version":"TLSv1.3"'
good_200 "tls-min 1.3"
finish
