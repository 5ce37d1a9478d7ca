#!/usr/bin/env bash
# Issue 3: the trust store never learns from clients.
#   - a chain (leaf + intermediate) is accepted, then the SAME leaf alone is
#     refused, with curl, openssl s_client and gnutls-cli, TLS 1.3 and 1.2;
#   - 1000 connections presenting distinct untrusted intermediates (20
#     intermediate+leaf chains from an untrusted root, cycled) are all
#     refused, none is cached, and the server's RSS grows by less than a few MB.
# Under ASan, freed memory sits in a quarantine (256 MB by default) and would
# read as growth: measure this server with the quarantine off.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.bash"

make_pki_matrix
pki_untrusted_pairs 20
for n in inter_good; do cp "$M/$n.crt" "$M/${n}_leaf.pem"; cp "$M/$n.key" "$M/${n}_leaf.key"; cp "$M/$n.crt" "$M/${n}_leaf.crt"; done

for MODE in verify present; do
    note "---- --client-auth $MODE"
    start_mtlsd --workers 2 --client-auth "$MODE"
    want_bad=none; [ "$MODE" = present ] && want_bad=403
    for round in 1 2; do
        for v in 1.3 1.2; do
            out=$(mcurl inter_good --tlsv$v --tls-max $v -w ' %{http_code}' "$(url /)" 2>&1)
            check_eq "$MODE round $round TLS$v: chain leaf+intermediate -> 200" "$out" "Hello World! 200"
            st=$(http_status "$(mcurl inter_good_leaf --tlsv$v --tls-max $v -i "$(url /)" 2>&1)")
            check_eq "$MODE round $round TLS$v curl: the same leaf alone -> ${want_bad}" "${st:-none}" "$want_bad"
            st=$(http_status "$(msclient inter_good_leaf -tls1_${v#1.} /)")
            check_eq "$MODE round $round TLS$v s_client: the same leaf alone -> ${want_bad}" "${st:-none}" "$want_bad"
            st=$(http_status "$(mgnutls inter_good_leaf "NORMAL:-VERS-ALL:+VERS-TLS$v" /)")
            check_eq "$MODE round $round TLS$v gnutls-cli: the same leaf alone -> ${want_bad}" "${st:-none}" "$want_bad"
        done
    done
    # and an untrusted intermediate chain does not let its leaf in afterwards either
    mcurl ui_1 "$(url /)" >/dev/null 2>&1
    cp "$M/ui_1.crt" "$M/ui_1_leaf.pem"; cp "$M/ui_1.key" "$M/ui_1_leaf.key"
    st=$(http_status "$(mcurl ui_1_leaf -i "$(url /)" 2>&1)")
    check_eq "$MODE: untrusted chain's leaf alone -> $want_bad" "${st:-none}" "$want_bad"
    good_200 "$MODE"
    [ "$MODE" = verify ] && stop_mtlsd TERM
done

note "---- 1000 connections with distinct untrusted intermediates (present mode: each completes its handshake)"
cat >"$T/storm.py" <<'X'
import socket, ssl, sys, json
port, ca, mdir, npairs, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ctxs = []
for k in range(1, npairs + 1):
    for v in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(ca)
        c.load_cert_chain("%s/ui_%d.pem" % (mdir, k), "%s/ui_%d.key" % (mdir, k))
        c.minimum_version = c.maximum_version = v
        ctxs.append(c)
res = {"200": 0, "403": 0, "other": 0, "refused": 0}
for i in range(n):
    c = ctxs[i % len(ctxs)]
    try:
        raw = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) # else Nagle + delayed ACK: 40 ms
        s = c.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        buf = b""
        # read the head and Content-Length bytes, not until EOF (faster)
        while True:
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                cl = [l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0]):
                    break
            d = s.recv(65536)
            if not d:
                break
            buf += d
        s.close()
        st = buf.split(b" ", 2)[1].decode() if buf.startswith(b"HTTP/1.1 ") else ""
        res[st if st in ("200", "403") else "other"] += 1
    except (ssl.SSLError, OSError):
        res["refused"] += 1
print(json.dumps(res))
X
storm() { $PY "$T/storm.py" "$PORT" "$PKI/ca.crt" "$M" 20 "$1"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$MTLSD_PID/status"; }
storm 200 >/dev/null # warm-up: pools, buffers, allocator arenas
s0=$(metrics_snap)
rss0=$(rss)
r=$(storm 1000)
rss1=$(rss)
s1=$(metrics_snap)
check_eq "1000 untrusted chains: all 403, none 200" "$r" '{"200": 0, "403": 1000, "other": 0, "refused": 0}'
check_eq "1000 untrusted chains: mtlsd_verify_rejected_untrusted +1000" \
    "$(($(mval "$s1" mtlsd_verify_rejected_untrusted) - $(mval "$s0" mtlsd_verify_rejected_untrusted)))" 1000
check_eq "1000 untrusted chains: nothing inserted in the cache" \
    "$(($(mval "$s1" mtlsd_verify_cache_inserts) - $(mval "$s0" mtlsd_verify_cache_inserts)))" 0
growth=$(((rss1 - rss0)))
limit=4096
[ "$IT_SLOW" != 1 ] && limit=8192 # sanitizer allocator caches and shadow memory
check_range "RSS growth over 1000 untrusted chains (KB, after a 200-connection warm-up)" "$growth" -100000 "$limit"
note "RSS $rss0 KB -> $rss1 KB"
# after all that, the leaf alone is still refused and good clients still work
st=$(http_status "$(mcurl inter_good_leaf -i "$(url /)" 2>&1)")
check_eq "after the storm: inter_good leaf alone -> 403" "${st:-none}" 403
good_200 "after the storm"
check_eq "after the storm: the chain -> 200" "$(mcurl inter_good -w ' %{http_code}' "$(url /)" 2>&1)" "Hello World! 200"

note "---- verify mode: the same storm is refused at the handshake"
stop_mtlsd TERM
start_mtlsd --workers 2
r=$(storm 200)
check_eq "verify: 200 untrusted chains all refused" "$(jget "$r" 'j["200"] + j["403"] + j["other"]')" 0
good_200 "verify after the storm"
finish
