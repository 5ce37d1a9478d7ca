#!/usr/bin/env bash
# The dependency rules of README "Architecture", checked: fails when a file
# of the server (src/, include/mtlsd/) includes a header it must not.
#   bash tests/include_rules.sh [REPO]
# Two kinds of rule:
#   only HEADER_REGEX FILES...  direct includes of the header only in FILES
#   never FILES... -- HEADER_REGEX  FILES must not reach the header, even
#                                   through other project headers
set -uo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$repo" || exit 2

# ---- the rules ---------------------------------------------------------------
# The I/O backends: the only files that see io_uring (ring.c, io_uring.c) or
# epoll (io_epoll.c); io.c is the interface they sit behind.
IO_URING="src/ring.c include/mtlsd/ring.h src/io_uring.c"
IO_BACKEND="$IO_URING src/io_epoll.c src/io.c include/mtlsd/io_backend.h"
# The TLS part: the only owner of wolfSSL state (verify.c reads certificates
# with wolfCrypt; tools and tests are clients and are not checked).
TLS_PART="src/tls.c src/tickets.c src/sessions.c"
# Parts that know no transport: HTTP, the handler boundary, the handlers,
# response framing, authorization.
NO_TRANSPORT="src/http.c src/exchange.c src/routes.c src/response.c src/authz.c
              include/mtlsd/http.h include/mtlsd/handler.h include/mtlsd/response.h
              include/mtlsd/authz.h"

rules() {
    only 'liburing\.h' $IO_URING
    only 'mtlsd/ring\.h' $IO_URING
    only 'sys/epoll\.h' src/io_epoll.c
    only 'mtlsd/io_backend\.h' $IO_BACKEND
    only 'llhttp\.h' include/mtlsd/http.h
    # (material.c reads certificate and CRL dates for reloads and metrics)
    only 'wolfssl/' include/mtlsd/wolfssl.h include/mtlsd/wolfssl_internal.h src/tickets.c \
        src/verify.c src/identity.c include/mtlsd/identity_x509.h src/material.c
    only 'mtlsd/wolfssl\.h' $TLS_PART src/verify.c src/material.c include/mtlsd/wolfssl_internal.h \
        include/mtlsd/verify.h include/mtlsd/tickets.h include/mtlsd/sessions.h \
        include/mtlsd/identity_x509.h
    # the identity type is plain data; only its builder sees a certificate
    # (and material.c, for the dates of certificates and CRLs it reloads)
    only 'mtlsd/identity_x509\.h' src/identity.c src/verify.c src/material.c
    only 'mtlsd/wolfssl_internal\.h' $TLS_PART
    only 'mtlsd/tls_internal\.h' $TLS_PART
    # libcrypto signs for the TLS part (--key-signer openssl) and is seen
    # nowhere else; the signer itself knows no wolfSSL
    only 'openssl/' src/keysign.c
    only 'mtlsd/keysign\.h' src/tls.c src/keysign.c
    never src/keysign.c include/mtlsd/keysign.h -- 'wolfssl'
    never $NO_TRANSPORT -- 'wolfssl|liburing\.h|sys/epoll\.h|mtlsd/(worker|conn|ring|io|tls|server)\.h'
    # connections see the backend interface only
    never src/conn.c include/mtlsd/conn.h -- 'liburing\.h|sys/epoll\.h|mtlsd/(ring|io_backend|worker)\.h'
    # verify returns a result; only the TLS part writes a connection's TLS state
    never src/verify.c include/mtlsd/verify.h -- 'mtlsd/tls(_internal)?\.h'
    # the shared table is generic: its users own the policy
    only 'mtlsd/shardmap\.h' src/shardmap.c src/vcache.c src/sessions.c
    never src/shardmap.c include/mtlsd/shardmap.h -- 'wolfssl|mtlsd/(identity|metrics|log|config|tls|verify|vcache|sessions)'
}
# -----------------------------------------------------------------------------

fail=0
files=(src/*.c include/mtlsd/*.h)
set -f # from here on, header names are matched, never globbed

# The headers each file includes directly, read by one awk over all files;
# the rules then run in this shell without a process per file or rule (a
# sed or grep per file and rule took over 10 s on a busy machine).
declare -A INC
while IFS=$'\t' read -r f h; do INC[$f]+="$h"$'\n'; done < <(
    awk '/^[ \t]*#[ \t]*include[ \t]*[<"][^>"]*[>"]/ {
             s = $0; sub(/^[^<"]*[<"]/, "", s); sub(/[>"].*/, "", s)
             print FILENAME "\t" s
         }' "${files[@]}")

first_match() { # sets HIT to the first of FILE's direct includes matching RE
    local IFS=$'\n' h
    HIT=""
    for h in ${INC[$1]:-}; do
        [[ $h =~ $2 ]] && { HIT=$h; return 0; }
    done
    return 1
}

only() {
    local re=$1 f ok a
    shift
    for f in "${files[@]}"; do
        first_match "$f" "$re" || continue
        ok=0
        for a in "$@"; do [ "$f" = "$a" ] && ok=1; done
        if [ $ok = 0 ]; then
            echo "FAIL: $f includes $HIT: only $* may"
            fail=1
        fi
    done
}

reach() { # REACHED: every header FILE reaches through project headers, in order
    local seen=" " todo=("$1") f h IFS=$'\n'
    REACHED=()
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}
        todo=("${todo[@]:1}")
        for h in ${INC[$f]:-}; do
            case $seen in *" $h "*) continue ;; esac
            seen="$seen$h "
            REACHED+=("$h")
            [ -n "${INC[include/$h]:-}" ] && todo+=("include/$h")
        done
    done
}

never() {
    local list=() f h bad
    while [ "$1" != -- ]; do list+=("$1"); shift; done
    shift
    for f in "${list[@]}"; do
        [ -f "$f" ] || { echo "FAIL: rule names $f, which does not exist"; fail=1; continue; }
        reach "$f"
        bad=""
        for h in "${REACHED[@]}"; do
            [[ $h =~ $1 ]] && { bad=$h; break; }
        done
        if [ -n "$bad" ]; then
            echo "FAIL: $f reaches $bad (forbidden there: $1)"
            fail=1
        fi
    done
}

rules
[ $fail = 0 ] && echo "include rules: ok (${#files[@]} files)"
exit $fail
