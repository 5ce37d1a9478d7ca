#!/usr/bin/env bash
# Issue 14, items 1, 2, 4-8: what the clients people use ran into, one test
# per item with the client that showed it (the client matrix itself is
# interop_matrix.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pki.bash"
source "$(dirname "$0")/clients.bash"

interop_setup
have_go=0
[ -x "$CLIENTS/go-interop" ] && have_go=1

# sc VERSIONFLAG [s_client args...]: openssl s_client to the server, no request
sc() {
    local v=$1
    shift
    timeout "$(slow 15)" openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$T/client-ca.pem" \
        "$v" "$@" </dev/null 2>&1
}
# go_case NAME VERSION CERTS KEYS -> the Go client's JSON line
go_case() { client_run go "$PORT" "$T/client-ca.pem" "$1-$RANDOM,$2,$3,$4"; }

# ---- item 8: the dev PKI's ECDSA server certificate has no keyEncipherment
ku=$(openssl x509 -in "$EC/server.crt" -noout -ext keyUsage 2>&1)
check_not_contains "item 8: ECDSA server certificate without keyEncipherment" "$ku" "Key Encipherment"
check_contains "item 8: ECDSA server certificate with digitalSignature" "$ku" "Digital Signature"
check_contains "item 8: RSA server certificate keeps keyEncipherment" \
    "$(openssl x509 -in "$RSA/server.crt" -noout -ext keyUsage 2>&1)" "Key Encipherment"

for srv in ec rsa; do
    [ $srv = ec ] && S=$EC || S=$RSA
    [ $srv = ec ] && O=$RSA || O=$EC # the client key of the other type
    SRV_CERT=$S/server.crt SRV_KEY=$S/server.key SRV_CLIENT_CA=$T/client-ca.pem \
        start_mtlsd --workers 1

    # ---- item 1: TLS 1.2 CertificateRequest offers both certificate types
    out=$(sc -tls1_2)
    types=$(grep 'Client Certificate Types' <<<"$out")
    check_contains "item 1 ($srv server): TLS 1.2 CertificateRequest lists RSA" "$types" "RSA sign"
    check_contains "item 1 ($srv server): TLS 1.2 CertificateRequest lists ECDSA" "$types" "ECDSA sign"
    sigalgs=$(grep '^Requested Signature Algorithms' <<<"$out")
    check_contains "item 1 ($srv server): ECDSA signature algorithms requested" "$sigalgs" "ECDSA+SHA256"
    check_contains "item 1 ($srv server): RSA signature algorithms requested" "$sigalgs" "RSA-PSS+SHA256"
    if [ $have_go = 1 ]; then
        j=$(go_case "item1-$srv" 1.2 "$O/client.crt" "$O/client.key")
        check_eq "item 1 ($srv server): Go, TLS 1.2, client key of the other type -> 200" \
            "$(jlist "$j" statuses)" "[200,200,200]"
    else
        skip "item 1: Go client not built"
    fi

    # ---- item 2: CA names in the CertificateRequest, both versions
    for v in -tls1_2 -tls1_3; do
        names=$(sc $v | sed -n '/^Acceptable client certificate CA names/,/^[A-Z][a-z]/p')
        check_contains "item 2 ($srv server, $v): CA names list the ECDSA CA" "$names" "CN = mtlsd dev CA"
        check_eq "item 2 ($srv server, $v): both --client-ca names" \
            "$(grep -c 'CN = mtlsd dev CA' <<<"$names")" 2
    done
    if [ $have_go = 1 ] && [ $srv = ec ]; then
        # Go holding two certificates picks the one a listed CA issued: the
        # untrusted one first in its list must not be sent.
        for v in 1.2 1.3; do
            j=$(go_case item2 $v "$EC/other-client.crt:$EC/client.crt" "$EC/other-client.key:$EC/client.key")
            check_eq "item 2: Go with [untrusted, trusted] certificates picks by CA name (TLS $v)" \
                "$(jlist "$j" statuses)" "[200,200,200]"
        done
    fi
    if [ $srv = ec ] && client_have java && [ -f "$CLIENTS/java/Interop.class" ]; then
        j=$(client_run java "$PORT" "$T/client-ca.pem" \
            "item2java-$RANDOM,1.3,$EC/other-client.crt:$EC/client.crt,$EC/other-client.key:$EC/client.key")
        check_eq "item 2: Java with two keystore entries picks by CA name (TLS 1.3)" \
            "$(jlist "$j" statuses)" "[200,200,200]"
    fi
    stop_mtlsd TERM
done

# --send-ca-names off: no names; Go then sends its first certificate
SRV_CERT=$EC/server.crt SRV_KEY=$EC/server.key SRV_CLIENT_CA=$T/client-ca.pem \
    start_mtlsd --workers 1 --send-ca-names off
for v in -tls1_2 -tls1_3; do
    check_contains "item 2: --send-ca-names off sends none ($v)" "$(sc $v)" "No client certificate CA names sent"
done
if [ $have_go = 1 ]; then
    j=$(go_case item2off 1.3 "$EC/other-client.crt:$EC/client.crt" "$EC/other-client.key:$EC/client.key")
    check_eq "item 2: --send-ca-names off: Go sends its first (untrusted) certificate, refused" \
        "$(jlist "$j" statuses)" "[]"
fi
stop_mtlsd TERM

# --send-ca-names: a bad value, and a bundle whose names do not fit in one
# CertificateRequest, stop the start with a message
out=$("$MTLSD" --cert "$EC/server.crt" --key "$EC/server.key" --client-ca "$T/client-ca.pem" \
    --send-ca-names maybe 2>&1)
check_eq "item 2: --send-ca-names maybe: exit 2" "$?" 2
check_contains "item 2: ... says what to write" "$out" "must be on or off"
ou=$(printf 'x%.0s' {1..60})
for i in $(seq 1 80); do # 80 names of ~220 bytes
    openssl req -x509 -new -key "$EC/ca.key" -subj "/O=bundle/OU=$ou/OU=$ou/OU=$ou/CN=$i" -days 1 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
done >"$T/big-bundle.pem"
out=$(timeout "$(slow 20)" "$MTLSD" --cert "$EC/server.crt" --key "$EC/server.key" \
    --client-ca "$T/big-bundle.pem" --listen "127.0.0.1:$(free_port)" 2>&1)
check_eq "item 2: CA names over 16000 bytes: exit 2" "$?" 2
check_contains "item 2: ... pointing to --send-ca-names off" "$out" "use --send-ca-names off"

# The rest against one ECDSA server.
SRV_CERT=$EC/server.crt SRV_KEY=$EC/server.key SRV_CLIENT_CA=$T/client-ca.pem start_mtlsd --workers 1
CERT=(-cert "$EC/client.crt" -key "$EC/client.key")

# ---- item 4: no shared key-exchange group: handshake_failure, no empty HRR
for g in P-521 ffdhe2048; do
    out=$(sc -tls1_3 -groups $g "${CERT[@]}")
    check_not_contains "item 4: TLS 1.3 with only $g: no HelloRetryRequest without a key share" \
        "$out" "no change following hrr"
    check_contains "item 4: TLS 1.3 with only $g: handshake_failure alert" "$out" "handshake failure"
done
out=$(sc -tls1_2 -groups P-521 "${CERT[@]}")
check_contains "item 4: TLS 1.2 with only P-521: handshake_failure alert" "$out" "handshake failure"
for g in X25519 P-256 P-384; do
    out=$(sc -tls1_3 -groups $g "${CERT[@]}")
    check_contains "item 4: TLS 1.3 with $g: handshake completes" "$out" "Server Temp Key"
done

# ---- item 5: a TLS 1.2 renegotiation attempt gets an alert before the close
# (s_client's "R" command renegotiates; -msg shows the records)
out=$( { sleep "$(slow 1)"; echo R; sleep "$(slow 1)"; } | timeout "$(slow 15)" openssl s_client \
    -connect "127.0.0.1:$PORT" -CAfile "$T/client-ca.pem" -tls1_2 -msg "${CERT[@]}" 2>&1)
check_contains "item 5: renegotiation attempted" "$out" "RENEGOTIATING"
check_contains "item 5: TLS 1.2 renegotiation refused with an alert" \
    "$(grep -A1 '<<< .*Alert' <<<"$out")" "Alert"
note "item 5: $(grep -A1 '<<< .*Alert' <<<"$out" | tr '\n' ' ' | tr -s ' ')"

# ---- item 6: ALPN
out=$(ccurl -v --http2 "$(url /)" 2>&1)
check_contains "item 6: curl offering h2,http/1.1 gets http/1.1" "$out" "ALPN: server accepted http/1.1"
check_contains "item 6: ... and its answer" "$out" "Hello World!"
before=$(metric mtlsd_alpn_refused)
out=$(sc -tls1_3 -alpn h2 "${CERT[@]}")
check_contains "item 6: an h2-only client (gRPC) gets no_application_protocol" "$out" "no application protocol"
out=$(sc -tls1_2 -alpn h2 "${CERT[@]}")
check_contains "item 6: the same on TLS 1.2" "$out" "no application protocol"
check_eq "item 6: /metrics counts them (mtlsd_alpn_refused +2)" "$(($(metric mtlsd_alpn_refused) - before))" 2
out=$(sc -tls1_3 -alpn h2,http/1.1 "${CERT[@]}")
check_contains "item 6: s_client offering h2,http/1.1 gets http/1.1" "$out" "ALPN protocol: http/1.1"
good_200 "item 6: a client without ALPN"

# ---- item 7: plain HTTP to the TLS port
out=$(curl -sS --max-time "$(slow 10)" -w ' %{http_code}' "http://127.0.0.1:$PORT/" 2>&1)
check_contains "item 7: plain HTTP gets 400" "$out" " 400"
check_contains "item 7: ... saying the port speaks HTTPS with client certificates" "$out" \
    "This port speaks HTTPS with client certificates"
check_eq "item 7: counted (mtlsd_plain_http)" "$(metric mtlsd_plain_http)" 1
good_200 "item 7: after plain HTTP"
finish
