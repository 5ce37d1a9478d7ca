#!/usr/bin/env bash
# Issue 10 part 1: the classic tutorial's PKI, made with its own commands
# (certs/recipe.sh: X.509 v1 certificates without extensions), works as is:
#   - `curl --cacert ca.crt --cert service2.crt --key service2.key` -> Hello World!
#   - `curl -k` without a certificate gets no HTTP response;
#   - another CA's client with --client-auth present -> 403, Content-Length: 0.
# And what stays refused: a v1 certificate as an intermediate a client sends,
# a v3 anchor with CA:FALSE or keyUsage without keyCertSign, a v1 anchor
# that is not self-signed (issued by another CA, or self-issued under
# another key).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki
R=$T/recipe
if ! bash "$MTLSD_SRC/certs/recipe.sh" "$R" >"$T/recipe.log" 2>&1; then
    fail "certs/recipe.sh runs" "$(tail -20 "$T/recipe.log")"
    finish
fi
for f in ca service1 service2; do
    txt=$(openssl x509 -in "$R/$f.crt" -noout -text)
    check_contains "recipe $f.crt is X.509 v1" "$txt" "Version: 1 (0x0)"
    check_not_contains "recipe $f.crt has no extensions" "$txt" "X509v3"
done

# rcurl CERT KEY [curl args]: the tutorial's curl line on our port
rcurl() {
    local c=$1 k=$2; shift 2
    curl -sS --max-time "$(slow 10)" --resolve "localhost:$PORT:127.0.0.1" --cacert "$R/ca.crt" \
        --cert "$c" --key "$k" "$@"
}

note "---- the tutorial's server: mtlsd --cert service1.crt --key service1.key --client-ca ca.crt"
SRV_CERT=$R/service1.crt SRV_KEY=$R/service1.key SRV_CLIENT_CA=$R/ca.crt start_mtlsd --workers 1
check_contains "start-up says ca.crt is a v1 anchor" "$(cat "$MTLSD_LOG")" \
    "certificate 1 is an X.509 v1 root without extensions"
check_eq "v1 anchor logged once" "$(grep -c 'X.509 v1 root' "$MTLSD_LOG")" 1
for v in 1.3 1.2; do
    out=$(rcurl "$R/service2.crt" "$R/service2.key" --tlsv$v --tls-max $v "$(url /)" 2>&1)
    check_eq "TLS$v curl --cacert ca.crt --cert service2.crt --key service2.key -> Hello World!" \
        "$out" "Hello World!"
done
who=$(rcurl "$R/service2.crt" "$R/service2.key" "$(url /whoami)" 2>&1)
check_contains "/whoami: the v1 client is service2" "$(jget "$who" 'j["subject"]')" "CN=service2"
out=$(curl -k -sS -i --max-time "$(slow 10)" "https://localhost:$PORT/" 2>&1)
rc=$?
check_not_contains "curl -k without a certificate: no HTTP response" "$out" "HTTP/"
check "curl -k without a certificate: curl fails (rc $rc)" test "$rc" -ne 0
out=$(rcurl "$PKI/other-client.crt" "$PKI/other-client.key" -i "$(url /)" 2>&1)
check_not_contains "verify: another CA's client gets no HTTP response" "$out" "HTTP/"
# a v1 "intermediate" the client sends is not a CA
(
    cd "$R"
    answers() { printf '%s\n' US California "San Francisco" "Example Inc" "$2" "$1" "" "" ""; }
    openssl genrsa -out v1inter.key 2048
    answers "v1 intermediate" x | openssl req -new -key v1inter.key -out v1inter.csr
    openssl x509 -req -days 30 -in v1inter.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out v1inter.crt
    openssl genrsa -out v1leaf.key 2048
    answers "v1 leaf" y | openssl req -new -key v1leaf.key -out v1leaf.csr
    openssl x509 -req -days 30 -in v1leaf.csr -CA v1inter.crt -CAkey v1inter.key -CAcreateserial \
        -out v1leaf.crt
    cat v1leaf.crt v1inter.crt >v1leaf.pem
) >>"$T/recipe.log" 2>&1
out=$(rcurl "$R/v1leaf.pem" "$R/v1leaf.key" -i "$(url /)" 2>&1)
check_not_contains "verify: a chain through a v1 intermediate is refused" "$out" "HTTP/"
stop_mtlsd TERM

note "---- --client-auth present"
SRV_CERT=$R/service1.crt SRV_KEY=$R/service1.key SRV_CLIENT_CA=$R/ca.crt start_mtlsd --workers 1 \
    --client-auth present
s0=$(rcurl "$R/service2.crt" "$R/service2.key" "$(url /metrics)" 2>/dev/null)
out=$(rcurl "$PKI/other-client.crt" "$PKI/other-client.key" -i "$(url /)" 2>&1)
check_eq "present: another CA's client -> 403" "$(http_status "$out")" 403
check_contains "present: 403 with Content-Length: 0" "$out" $'Content-Length: 0\r'
out=$(rcurl "$R/v1leaf.pem" "$R/v1leaf.key" -i "$(url /)" 2>&1)
check_eq "present: a chain through a v1 intermediate -> 403" "$(http_status "$out")" 403
s1=$(rcurl "$R/service2.crt" "$R/service2.key" "$(url /metrics)" 2>/dev/null)
check_eq "present: refusals counted (untrusted, then usage)" "$(reason_deltas "$s0" "$s1")" \
    " untrusted+1 usage+1"
out=$(rcurl "$R/service2.crt" "$R/service2.key" "$(url /)" 2>&1)
check_eq "present: the tutorial's client still -> Hello World!" "$out" "Hello World!"
stop_mtlsd TERM

note "---- anchors that stay refused at start-up"
(
    set -e
    cd "$R"
    # v3, CA:FALSE; v3 CA:TRUE with keyUsage lacking keyCertSign
    openssl req -x509 -new -key ca.key -days 30 -subj "/CN=not a CA" \
        -addext "basicConstraints=critical,CA:FALSE" -out v3_notca.crt
    openssl req -x509 -new -key ca.key -days 30 -subj "/CN=no keyCertSign" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature" \
        -out v3_noku.crt
    # v1, self-issued (subject = issuer) but signed by another key
    openssl genrsa -out other.key 2048
    openssl req -new -key other.key -subj "/CN=twin" -out twin.csr
    openssl x509 -req -days 30 -in twin.csr -signkey other.key -out twin_ca.crt
    openssl genrsa -out twin.key 2048
    openssl req -new -key twin.key -subj "/CN=twin" -out twin2.csr
    openssl x509 -req -days 30 -in twin2.csr -CA twin_ca.crt -CAkey other.key -CAcreateserial \
        -out v1_self_issued.crt
) >>"$T/recipe.log" 2>&1 || fail "making the refused anchors" "$(tail "$T/recipe.log")"
refused() { # refused NAME FILE MESSAGE: mtlsd exits 2 at start with MESSAGE
    local out rc
    out=$(timeout "$(slow 20)" "$MTLSD" --cert "$R/service1.crt" --key "$R/service1.key" \
        --client-ca "$2" --listen "127.0.0.1:$(free_port)" 2>&1)
    rc=$?
    check_eq "$1: mtlsd exits 2" "$rc" 2
    check_contains "$1: says why" "$out" "$3"
}
refused "v3 anchor with CA:FALSE" "$R/v3_notca.crt" "certificate 1 is not a CA certificate"
refused "v3 anchor with keyUsage lacking keyCertSign" "$R/v3_noku.crt" \
    "certificate 1 is not a CA certificate"
refused "v1 anchor issued by another CA (service2.crt)" "$R/service2.crt" \
    "certificate 1 is not a CA certificate"
refused "v1 self-issued anchor signed by another key" "$R/v1_self_issued.crt" \
    "certificate 1 is an X.509 v1 certificate that is not self-signed"
finish
