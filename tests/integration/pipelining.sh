#!/usr/bin/env bash
# Pipelining: 100 requests written at once on one connection get 100
# responses in order (python ssl and openssl s_client, TLS 1.3 and 1.2);
# requests split byte by byte and in odd pieces across TLS records work.
. "$(dirname "$0")/lib.sh"

make_pki
start_mtlsd --workers 1
H='Host: localhost\r\n'

# 100 requests cycling over four routes with distinct answers:
# / (200 Hello World!), /healthz (200 ok), /nope (404), HEAD / (200, no body)
req=""
for i in $(seq 0 99); do
    case $((i % 4)) in
        0) req+="GET / HTTP/1.1\\r\\n${H}X-Seq: $i\\r\\n\\r\\n" ;;
        1) req+="GET /healthz HTTP/1.1\\r\\n${H}\\r\\n" ;;
        2) req+="GET /nope HTTP/1.1\\r\\n${H}\\r\\n" ;;
        3) req+="HEAD / HTTP/1.1\\r\\n${H}\\r\\n" ;;
    esac
done
heads=$(seq -s, 3 4 99)
order_ok='all(r["status"] == (404 if i % 4 == 2 else 200) and r["body"] == ["Hello World!", "ok\n", None, ""][i % 4] or (i % 4 == 2 and r["status"] == 404) for i, r in enumerate(j["responses"]))'
for v in 1.3 1.2; do
    r=$(itc req --tls $v --expect 100 --stop --heads "$heads" --timeout "$(slow 20)" --data "$req")
    check_eq "TLS$v python: 100 pipelined requests -> 100 responses" "$(jget "$r" 'len(j["responses"])')" 100
    check_eq "TLS$v python: responses in request order" "$(jget "$r" "$order_ok")" true
    check_eq "TLS$v python: connection kept open" "$(jget "$r" 'j["closed"]')" false
done

# Same through openssl s_client, the last request closing the connection.
printf '%b' "${req//HEAD \//GET \/}GET /healthz HTTP/1.1\r\n${H}Connection: close\r\n\r\n" > "$T/pipe.txt"
# ("Hello World!" has no newline: the next status line follows it directly)
st_lines() { grep -ao 'HTTP/1.1 [0-9][0-9][0-9]' <<<"$1"; }
out=$(timeout "$(slow 20)" openssl s_client -quiet -connect "127.0.0.1:$PORT" -servername localhost \
    -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" < "$T/pipe.txt" 2>/dev/null)
check_eq "s_client: 101 pipelined requests -> 101 status lines" "$(st_lines "$out" | wc -l)" 101
check_eq "s_client: 76 x 200, 25 x 404" "$(st_lines "$out" | sort | uniq -c | awk '{print $1, $3}' | tr '\n' ' ')" "76 200 25 404 "
statuses=$(st_lines "$out" | awk '{print $2}' | head -8 | tr '\n' ' ')
check_eq "s_client: order of the first 8" "$statuses" "200 200 404 200 200 200 404 200 "

# gnutls-cli: the same file
out=$(timeout "$(slow 20)" gnutls-cli --x509cafile "$PKI/ca.crt" --x509certfile "$PKI/client.crt" \
    --x509keyfile "$PKI/client.key" --port "$PORT" localhost < "$T/pipe.txt" 2>/dev/null)
check_eq "gnutls-cli: 101 pipelined requests -> 101 status lines" "$(st_lines "$out" | wc -l)" 101

# Byte by byte: three requests, each byte its own TLS record.
three="GET / HTTP/1.1\\r\\n${H}\\r\\nGET /healthz HTTP/1.1\\r\\n${H}\\r\\nGET /whoami HTTP/1.1\\r\\n${H}\\r\\n"
r=$(itc req --chunk 1 --expect 3 --stop --data "$three")
check_eq "byte by byte: 3 responses" "$(jget "$r" 'j["statuses"]')" "[200, 200, 200]"
check_eq "byte by byte: bodies in order" "$(jget "$r" '[j["responses"][0]["body"], j["responses"][1]["body"]]')" '["Hello World!", "ok\n"]'
check_contains "byte by byte: /whoami" "$(jget "$r" 'j["responses"][2]["body"]')" "spiffe://mtlsd.test/client"
# Byte by byte with small pauses, so every byte arrives in its own read.
r=$(itc req --chunk 1 --delay 0.002 --expect 1 --stop --data "GET / HTTP/1.1\\r\\n${H}\\r\\n")
check_eq "byte by byte with pauses: 200" "$(jget "$r" 'j["statuses"]')" "[200]"
# Odd piece sizes across request boundaries, with a body that must be skipped.
body="POST /healthz HTTP/1.1\\r\\n${H}Content-Length: 10\\r\\n\\r\\n0123456789"
for n in 2 3 7 13 64; do
    r=$(itc req --chunk $n --expect 4 --stop --data "$three$body")
    check_eq "pieces of $n bytes: 4 responses" "$(jget "$r" 'j["statuses"]')" "[200, 200, 200, 405]"
done
good_200
finish
