#!/usr/bin/env bash
# Makes the seed corpus of fuzz_tls.c in OUTDIR (default
# tests/fuzz/corpus/tls): what openssl s_client sends to a real mtlsd
# (recorded by a relay in between), each file a 0 byte (all input at once)
# then the client's bytes. TLS 1.3 and 1.2 full handshakes with a client
# certificate and a chain (TLS 1.2 sends them in clear), TLS 1.3 and 1.2
# resumptions with a ticket, and a ClientHello without a certificate.
#   tests/fuzz/tls_seeds.sh BUILD_DIR [OUTDIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
mtlsd=$1/mtlsd
out=${2:-$src/tests/fuzz/corpus/tls}
w=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$w"' EXIT
mkdir -p "$out"
bash "$src/certs/gen.sh" "$w/pki" >/dev/null 2>&1
p=$w/pki
# fuzz_tls.c's fixed ticket key: bytes 0..79
(umask 077 && python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(80)))' >"$w/ticket.key")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$mtlsd" --cert "$p/server.crt" --key "$p/server.key" --client-ca "$p/ca.crt" \
    --client-auth optional --ticket-key-file "$w/ticket.key" --listen "127.0.0.1:$port" --workers 1 --watch off >"$w/log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q listening "$w/log" && break; sleep 0.05; done
cat "$p/client.crt" "$p/ca.crt" >"$w/chain.crt"
# record NAME s_client-args...: one connection through a recording relay
record() {
    local name=$1
    shift
    python3 - "$port" "$w/$name.bin" "$w/rport" <<'PY' &
import socket, sys, threading
up, path, rport = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
open(rport, "w").write(str(ls.getsockname()[1]))
c, _ = ls.accept(); s = socket.create_connection(("127.0.0.1", up))
rec = bytearray()
def back():
    while (d := s.recv(65536)):
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
threading.Thread(target=back, daemon=True).start()
while (d := c.recv(65536)):
    rec += d; s.sendall(d)
open(path, "wb").write(b"\0" + bytes(rec))
PY
    local relay=$!
    for _ in $(seq 100); do [ -s "$w/rport" ] && break; sleep 0.05; done
    printf 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:$(cat "$w/rport")" -quiet -ign_eof \
            -CAfile "$p/ca.crt" "$@" >/dev/null 2>&1 || true
    wait "$relay" || true
    rm -f "$w/rport"
    cp "$w/$name.bin" "$out/$name"
}
record tls13_cert -tls1_3 -cert "$p/client.crt" -key "$p/client.key" -sess_out "$w/s13"
record tls13_ticket -tls1_3 -cert "$p/client.crt" -key "$p/client.key" -sess_in "$w/s13"
record tls12_chain -tls1_2 -cert "$w/chain.crt" -key "$p/client.key" -sess_out "$w/s12"
record tls12_ticket -tls1_2 -cert "$p/client.crt" -key "$p/client.key" -sess_in "$w/s12"
record tls12_nocert -tls1_2
record tls13_nocert -tls1_3 -groups P-256:X25519
echo "seeds in $out"
