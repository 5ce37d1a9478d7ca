#!/usr/bin/env bash
# Issue 10 item 11: certificate strings that are not UTF-8. A client
# certificate's subject CN and OU hold a bad lead byte, an overlong form, a
# surrogate, a truncated sequence and Latin-1, then a well-formed e-acute:
#   - as UTF8String: wolfSSL refuses the certificate while parsing it (the
#     handshake fails; the server goes on serving);
#   - as TeletexString: taken as bytes, so they reach /whoami, which must be
#     valid JSON in valid UTF-8 (each bad byte -> U+FFFD, the e-acute kept),
#     and the access log, whose line must be valid UTF-8 (bytes >= 0x80 as \xNN).
# openssl refuses to write (or load) such names, so the certificate is made
# with a placeholder name, its to-be-signed part patched in place (same
# lengths) and signed again with the CA key (openssl dgst); the client is
# gnutls-cli, which loads it.
. "$(dirname "$0")/lib.sh"

make_pki
U=$T/utf8
mkdir -p "$U"
(
    set -e
    cd "$U"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >leaf.ext
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out bad.key 2>/dev/null
    openssl req -new -key bad.key -subj "/O=mtlsd dev/OU=QQQQQQQQQQ/CN=ZZZZZZZZZZZZZZ" -out bad.csr
    openssl x509 -req -in bad.csr -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial 4242 \
        -days 1 -sha256 -extfile leaf.ext -outform DER -out placeholder.der 2>/dev/null
    $PY - "$PKI/ca.key" <<'X'
import base64, subprocess, sys

def tlv(b, i):
    """(start of value, end of value) of the DER element at b[i]."""
    n = b[i + 1]
    if n < 0x80:
        return i + 2, i + 2 + n
    k = n & 0x7f
    m = int.from_bytes(b[i + 2:i + 2 + k], "big")
    return i + 2 + k, i + 2 + k + m

def enc(tag, v):
    n = len(v)
    if n < 0x80:
        return bytes([tag, n]) + v
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(nb)]) + nb + v

der = open("placeholder.der", "rb").read()
s, e = tlv(der, 0)
t0 = s
_, t1 = tlv(der, t0)
tbs = der[t0:t1]
_, a1 = tlv(der, t1)
alg = der[t1:a1]
# CN: 0xff (never UTF-8), C0 AF (overlong '/'), ED A0 80 (a surrogate),
# E2 82 (a truncated euro sign), then a well-formed e-acute and "ok".
cn = b"\xff\xc0\xaf\xed\xa0\x80\xe2\x82\xc3\xa9ok-x"
ou = b"caf\xe9 \xf5\x80q-y"      # Latin-1 e-acute; F5 (past U+10FFFF)
assert len(cn) == 14 and len(ou) == 10
tbs0 = tbs
for name, tag in (("utf8", 0x0c), ("t61", 0x14)):  # UTF8String, TeletexString
    tbs = tbs0
    for old, new in ((b"\x0c\x0e" + b"Z" * 14, bytes([tag, 14]) + cn),
                     (b"\x0c\x0a" + b"Q" * 10, bytes([tag, 10]) + ou)):
        assert tbs.count(old) == 1, old
        tbs = tbs.replace(old, new)
    open("tbs.der", "wb").write(tbs)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sys.argv[1], "tbs.der"],
                         check=True, capture_output=True).stdout
    der = enc(0x30, tbs + alg + enc(0x03, b"\x00" + sig))
    open("bad_%s.crt" % name, "w").write("-----BEGIN CERTIFICATE-----\n" +
                                         base64.encodebytes(der).decode() +
                                         "-----END CERTIFICATE-----\n")
X
) || { echo "FATAL: could not make the certificate"; exit 1; }

ALOG=$T/access.log
start_mtlsd --workers 1 --access-log "$ALOG"
# gget NAME: GET /whoami presenting $U/bad_NAME.crt -> $U/NAME.resp
gget() {
    printf 'GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout "$(slow 15)" gnutls-cli --x509cafile "$PKI/ca.crt" --x509certfile "$U/bad_$1.crt" \
            --x509keyfile "$U/bad.key" --logfile "$U/$1.log" --port "$PORT" localhost \
            >"$U/$1.resp" 2>"$U/$1.err"
}

# wolfSSL checks UTF8String contents while parsing: such a certificate never
# gets past the handshake.
gget utf8
check_eq "UTF8String holding invalid UTF-8: no answer" "$(head -c 12 "$U/utf8.resp")" ""
check_contains "UTF8String holding invalid UTF-8: handshake refused" "$(cat "$MTLSD_LOG")" \
    "handshake failed: ASN parsing error"
good_200 "after the UTF8String certificate"

# A TeletexString is taken as bytes: these reach /whoami and the log.
gget t61
check_eq "TeletexString with the same bytes (gnutls-cli): /whoami -> 200" \
    "$(head -c 12 "$U/t61.resp")" "HTTP/1.1 200"
$PY -c 'import sys; b = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(b.split(b"\r\n\r\n", 1)[-1])' \
    "$U/t61.resp" "$U/whoami.json"
r=$($PY - "$U/whoami.json" <<'X'
import json, sys
b = open(sys.argv[1], "rb").read()
try:
    b.decode("utf-8")          # strict: raises on any invalid sequence
    j = json.loads(b)          # bytes: json decodes them as UTF-8 itself
except ValueError as e:
    print("invalid: %s: %r" % (e, b[:300])); sys.exit()
want = "/O=mtlsd dev/OU=caf\ufffd \ufffd\ufffdq-y/CN=" \
       "\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\u00e9ok-x"
print("ok" if j["subject"] == want else "subject %r" % j["subject"])
X
)
if [ "$r" = ok ]; then pass "/whoami: valid UTF-8 JSON, each invalid byte is U+FFFD, e-acute kept"
else fail "/whoami: valid UTF-8 JSON with U+FFFD" "$r" "$(tail -n 5 "$U/t61.log" "$U/t61.err" "$MTLSD_LOG")"; fi

for ((i = 0; i < 40; i++)); do [ -s "$ALOG" ] && break; sleep 0.05; done
r=$($PY - "$ALOG" <<'X'
import sys
b = open(sys.argv[1], "rb").read()
try:
    s = b.decode("utf-8")
except ValueError as e:
    print("invalid: %s: %r" % (e, b)); sys.exit()
print("ok" if "\\xff\\xc0\\xaf" in s and "/whoami" in s else "unexpected: %r" % s)
X
)
if [ "$r" = ok ]; then pass "access log: valid UTF-8, bytes >= 0x80 as \\xNN"
else fail "access log: valid UTF-8" "$r"; fi
good_200 "after the TeletexString certificate"
finish
