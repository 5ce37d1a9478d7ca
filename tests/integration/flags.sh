#!/usr/bin/env bash
# Bad flags and bad files: exit 2 with one clear line naming the problem,
# before any socket is opened (checked with strace when available, and the
# port stays free). --help documents every flag; --version names wolfSSL.
. "$(dirname "$0")/lib.sh"

make_pki
make_pki --rsa; RSA=$PKI
make_pki
PORT=$(free_port)
S=(--cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" --listen "127.0.0.1:$PORT")
have_strace=0
strace -f -qq -e trace=none true 2>/dev/null && have_strace=1

bad() { # bad "name" "keyword in the message" args...
    local name=$1 kw=$2; shift 2
    local err rc lines
    timeout "$(slow 10)" "$MTLSD" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    err=$(cat "$T/err")
    lines=$(grep -c . "$T/err")
    check_eq "$name: exit 2" "$rc" 2
    check_eq "$name: exactly one line on stderr" "$lines" 1
    check_contains "$name: message names the problem ($kw)" "$err" "$kw"
    check_not_contains "$name: never listening" "$err" "listening"
    if [ $have_strace = 1 ]; then
        # (LeakSanitizer cannot run under ptrace: leaks are checked above)
        ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" timeout "$(slow 10)" \
            strace -f -qq -e trace=socket,bind,listen -o "$T/strace" "$MTLSD" "$@" >/dev/null 2>&1
        check_eq "$name: no socket opened (strace)" "$(grep -cE 'socket\(AF_INET|bind\(|listen\(' "$T/strace")" 0
    fi
    check "$name: port stays free" port_is_free "$PORT"
}

bad "unknown flag" "--bogus" "${S[@]}" --bogus
bad "missing --client-ca" "client-ca" --cert "$PKI/server.crt" --key "$PKI/server.key" --listen "127.0.0.1:$PORT"
bad "missing --cert" "cert" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" --listen "127.0.0.1:$PORT"
bad "bad --listen (no port)" "listen" "${S[@]}" --listen "127.0.0.1"
bad "bad --listen (port 70000)" "listen" "${S[@]}" --listen "127.0.0.1:70000"
bad "bad --listen (not an address)" "listen" "${S[@]}" --listen "not-an-ip:$PORT"
bad "nonexistent --cert" "$T/nope.crt" "${S[@]}" --cert "$T/nope.crt"
bad "nonexistent --client-ca" "$T/nope-ca.crt" "${S[@]}" --client-ca "$T/nope-ca.crt"
bad "key not matching the cert (same type)" "key" "${S[@]}" --key "$PKI/client.key"
bad "key not matching the cert (RSA key, EC cert)" "key" "${S[@]}" --key "$RSA/server.key"
echo "not a pem" > "$T/garbage.pem"
bad "--cert not PEM" "$T/garbage.pem" "${S[@]}" --cert "$T/garbage.pem"
bad "--client-ca not PEM" "$T/garbage.pem" "${S[@]}" --client-ca "$T/garbage.pem"
bad "--tls-min 1.1" "tls-min" "${S[@]}" --tls-min 1.1
bad "--workers 0" "workers" "${S[@]}" --workers 0
bad "--workers abc" "workers" "${S[@]}" --workers abc
bad "--max-conns -1" "max-conns" "${S[@]}" --max-conns -1
bad "--handshake-timeout x" "handshake-timeout" "${S[@]}" --handshake-timeout x
bad "--log-level loud" "log-level" "${S[@]}" --log-level loud
bad "--key-signer fast" "key-signer" "${S[@]}" --key-signer fast
bad "flag without its value" "--workers" "${S[@]}" --workers

# --help documents every flag
help=$("$MTLSD" --help 2>&1); rc=$?
check_eq "--help exits 0" "$rc" 0
for f in --cert --key --client-ca --tls-min --listen --workers --no-pin --max-conns \
    --max-header-bytes --max-headers --max-body-bytes --handshake-timeout --idle-timeout \
    --shutdown-grace --log-level --help --version; do
    check_contains "--help documents $f" "$help" "$f"
done
ver=$("$MTLSD" --version 2>&1); rc=$?
check_eq "--version exits 0" "$rc" 0
check_contains "--version names wolfSSL" "$ver" "wolfSSL"

# and the good line does start (the failures above were the flags' fault)
start_mtlsd --workers 1
good_200 "good flags"
finish
