#!/usr/bin/env bash
# Pre-authentication ticket over-read (issue 10, review item 2.2). wolfSSL
# 5.5.4 to 5.7.2 bound a ticket's enc_len by their own maximum, not by the
# bytes received, and point the MAC past the end: a short TLS 1.2 ticket or
# TLS 1.3 PSK identity claiming a long enc_len made the ticket callback MAC
# and decrypt past the buffer. Anyone can do it: the key name travels in
# clear in every ticket. Fixed by scripts/patches/wolfssl-ticket-len.patch
# (and the callback checks the bounds itself). tests/tools/hello.py crafts
# such tickets with the current key name; under ASan any read past the
# buffer aborts the server. Each must be refused cleanly (a full handshake
# is offered instead) and the server keep serving.
. "$(dirname "$0")/lib.sh"

HELLO="$PY $MTLSD_SRC/tests/tools/hello.py"
make_pki
head -c 80 /dev/urandom >"$T/keys"; chmod 600 "$T/keys"
name=$(head -c 16 "$T/keys" | od -An -tx1 | tr -d ' \n')
start_mtlsd --workers 1 --ticket-key-file "$T/keys"
good_200 "before"
for v in 1.2 1.3; do
    # 300 bytes sent, 1104 claimed (the library's bound is ~1.1 KB); then
    # claims that fit exactly and run one byte over.
    for spec in "300 1104" "300 234" "300 235" "98 48" "98 4000"; do
        set -- $spec
        out=$($HELLO "$PORT" ticket --tls $v --key-name "$name" --size "$1" --enc-len "$2")
        check_eq "TLS $v ticket of $1 bytes claiming enc_len $2: refused, full handshake offered" \
            "$(jget "$out" 'j["reply"]') $(jget "$out" 'j["psk_selected"]')" "server_hello false"
    done
    check "TLS $v: mtlsd still running" kill -0 "$MTLSD_PID"
    good_200 "after the TLS $v tickets"
done
# A real ticket still resumes afterwards (the check refuses only lies).
sess=$T/s.pem
req="GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
sc() {
    printf "$req" | timeout "$(slow 15)" openssl s_client -connect "127.0.0.1:$PORT" \
        -servername localhost -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" \
        -key "$PKI/client.key" -tls1_2 -ign_eof "$@" 2>&1
}
sc -sess_out "$sess" >/dev/null
check_contains "TLS 1.2: a genuine ticket still resumes" "$(sc -sess_in "$sess")" "Reused,"
finish
