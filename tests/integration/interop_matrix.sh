#!/usr/bin/env bash
# Issue 14: the clients services use, against the real server. Go crypto/tls
# + net/http, Java 17 HttpClient, Node https, Python ssl/http.client and
# requests (tests/clients/), each on TLS 1.3 and 1.2, against an ECDSA and an
# RSA server certificate, with ECDSA and RSA client certificates (the mixed
# cases need both certificate types in the TLS 1.2 CertificateRequest):
#   - full handshake with server verification, two requests on one
#     connection (keep-alive), then a new connection that resumes;
#   - a client without a certificate is refused.
# Keep-alive and resumption are read from the server's access log (source
# port and "resumed"), the same way for every client.
#
# Writes $MTLSD_BUILD/interop-table.md, the README's interop table: with
# INTEROP_README=1 it also replaces the table in README.md (between the
# interop-table markers), to be committed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pki.bash"
source "$(dirname "$0")/clients.bash"

interop_setup

ALOG=""
declare -A OK_FULL OK_REFUSE OK_KA OK_RES VERSIONS
CLIENT_LIST=(go java node python)

# alog_wait PATTERN COUNT: bounded wait for COUNT access-log lines matching PATTERN
alog_wait() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -c -- "$1" "$ALOG" 2>/dev/null)" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
# alog_field CASE N FIELD: field of the access-log line of request N of CASE
# (2: client address:port, 5: TLS version, 6: full|resumed)
alog_line() { grep -- "c=$1&n=$2\"" "$ALOG" | head -1; }
alog_port() { alog_line "$1" "$2" | awk '{print $2}'; }
alog_kind() { alog_line "$1" "$2" | awk '{for (i = 3; i <= NF; i++) if ($i == "full" || $i == "resumed") {print $i; exit}}'; }
alog_version() { alog_line "$1" "$2" | grep -o 'TLSv1\.[23]' | head -1; }

# check_case CLIENT SRV CASE VERSION JSON
check_case() {
    local cl=$1 srv=$2 name=$3 v=$4 j=$5 tag="$1 $3"
    if [ "$(jlist "$j" statuses)" != "[200,200,200]" ]; then
        fail "$tag: three requests answered 200" "client said: $j"
        OK_FULL[$cl]=no
        return
    fi
    if alog_wait "c=$name&n=" 3; then
        local p1 p2 p3
        p1=$(alog_port "$name" 1) p2=$(alog_port "$name" 2) p3=$(alog_port "$name" 3)
        check_eq "$tag: negotiated TLSv$v" "$(alog_version "$name" 1)" "TLSv$v"
        if [ "$p1" = "$p2" ] && [ "$(alog_kind "$name" 1)" = full ]; then
            pass "$tag: full handshake, two requests on one connection (keep-alive)"
        else
            fail "$tag: keep-alive" "$(grep -- "c=$name&" "$ALOG")"
            OK_KA[$cl]=no
        fi
        if [ "$p3" != "$p1" ] && [ "$(alog_kind "$name" 3)" = resumed ]; then
            pass "$tag: a new connection resumed"
        else
            fail "$tag: resumption" "$(grep -- "c=$name&" "$ALOG")"
            OK_RES[$cl]=no
        fi
    else
        fail "$tag: three lines in the access log" "$(grep -- "c=$name&" "$ALOG")"
        OK_FULL[$cl]=no
    fi
    if [ "$cl" = python ]; then
        check_eq "$tag: requests, two GETs" "$(jlist "$j" requests)" "[200,200]"
    fi
}

for srv in ec rsa; do
    [ $srv = ec ] && S=$EC || S=$RSA
    SRV_CERT=$S/server.crt SRV_KEY=$S/server.key SRV_CLIENT_CA=$T/client-ca.pem \
        start_mtlsd --workers 1 --access-log "$T/access-$srv.log"
    ALOG=$T/access-$srv.log
    for cl in "${CLIENT_LIST[@]}"; do
        if ! client_have "$cl" || { [ $cl = go ] && [ ! -x "$CLIENTS/go-interop" ]; } ||
            { [ $cl = java ] && [ ! -f "$CLIENTS/java/Interop.class" ]; }; then
            skip "$cl: toolchain not installed or build failed (scripts/deps.sh installs it)"
            OK_FULL[$cl]=skip
            continue
        fi
        cases=()
        for v in 1.3 1.2; do
            for ck in ec rsa; do
                [ $ck = ec ] && C=$EC || C=$RSA
                cases+=("$cl-$srv-$ck-${v/./}-$RANDOM,$v,$C/client.crt,$C/client.key")
            done
            cases+=("$cl-$srv-none-${v/./}-$RANDOM,$v,-,-")
        done
        out=$(client_run "$cl" "$PORT" "$T/client-ca.pem" "${cases[@]}" 2>"$T/$cl-$srv.err")
        for c in "${cases[@]}"; do
            IFS=, read -r name v _ <<<"$c"
            j=$(grep -F "\"case\": \"$name\"" <<<"$out" || grep -F "\"case\":\"$name\"" <<<"$out")
            if [ -z "$j" ]; then
                fail "$cl $name: no result" "$out" "$(tail -5 "$T/$cl-$srv.err")"
                OK_FULL[$cl]=no
                continue
            fi
            VERSIONS[$cl]="${VERSIONS[$cl]:-} $v"
            case $name in
                *-none-*)
                    if jerror "$j" && [[ "$(jlist "$j" statuses)" != *200* ]] &&
                        ! grep -q -- "c=$name&" "$ALOG"; then
                        pass "$cl $name: refused without a client certificate"
                    else
                        fail "$cl $name: refused without a client certificate" "$j"
                        OK_REFUSE[$cl]=no
                    fi
                    ;;
                *) check_case "$cl" "$srv" "$name" "$v" "$j" ;;
            esac
        done
    done
    stop_mtlsd TERM
    check_eq "$srv server: mtlsd exits 0" "$MTLSD_RC" 0
done

# The README table: one row per client, from what ran above.
mark() { [ "${1:-yes}" = no ] && echo "fails" || echo "yes"; }
{
    echo "| Client | TLS | Server key / client key | Handshake + server verification | Refused without certificate | Keep-alive | Resumption |"
    echo "|---|---|---|---|---|---|---|"
    for cl in "${CLIENT_LIST[@]}"; do
        [ "${OK_FULL[$cl]:-}" = skip ] && continue
        vs=$(tr ' ' '\n' <<<"${VERSIONS[$cl]:-}" | sort -u -r | grep . | paste -sd/ -)
        echo "| $(client_version "$cl") | ${vs:-none} | ECDSA, RSA / ECDSA, RSA | $(mark "${OK_FULL[$cl]:-}") | $(mark "${OK_REFUSE[$cl]:-}") | $(mark "${OK_KA[$cl]:-}") | $(mark "${OK_RES[$cl]:-}") |"
    done
} >"$MTLSD_BUILD/interop-table.md"
note "interop table: $MTLSD_BUILD/interop-table.md"
cat "$MTLSD_BUILD/interop-table.md" | sed 's/^/# /'
if [ "${INTEROP_README:-0}" = 1 ]; then
    $PY - "$MTLSD_SRC/README.md" "$MTLSD_BUILD/interop-table.md" <<'P'
import re, sys
readme, table = sys.argv[1], open(sys.argv[2]).read()
text = open(readme).read()
new = re.sub(r"(<!-- interop-table:begin -->\n).*?(<!-- interop-table:end -->)",
             lambda m: m.group(1) + table + m.group(2), text, flags=re.S)
open(readme, "w").write(new)
P
    note "README.md interop table updated"
fi
finish
