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
# The I/O backend: the only files that see io_uring.
IO_BACKEND="src/ring.c include/mtlsd/ring.h"
# The TLS part: the only owner of wolfSSL state (verify.c reads certificates
# with wolfCrypt; tools and tests are clients and are not checked).
TLS_PART="src/tls.c src/tickets.c src/sessions.c"
# Parts that know no transport: HTTP, the handler boundary, the handlers,
# response framing, authorization.
NO_TRANSPORT="src/http.c src/exchange.c src/routes.c src/response.c src/authz.c
              include/mtlsd/http.h include/mtlsd/handler.h include/mtlsd/response.h
              include/mtlsd/authz.h"

rules() {
    only 'liburing\.h' $IO_BACKEND
    only 'mtlsd/ring\.h' $IO_BACKEND src/worker.c include/mtlsd/worker.h
    only 'llhttp\.h' include/mtlsd/http.h
    only 'wolfssl/' include/mtlsd/wolfssl.h include/mtlsd/wolfssl_internal.h src/tickets.c \
        src/verify.c src/identity.c include/mtlsd/identity_x509.h
    only 'mtlsd/wolfssl\.h' $TLS_PART src/verify.c include/mtlsd/wolfssl_internal.h \
        include/mtlsd/verify.h include/mtlsd/tickets.h include/mtlsd/sessions.h \
        include/mtlsd/identity_x509.h
    # the identity type is plain data; only its builder sees a certificate
    only 'mtlsd/identity_x509\.h' src/identity.c src/verify.c
    only 'mtlsd/wolfssl_internal\.h' $TLS_PART
    only 'mtlsd/tls_internal\.h' $TLS_PART
    never $NO_TRANSPORT -- 'wolfssl|liburing\.h|mtlsd/(worker|conn|ring|tls|server)\.h'
    # verify returns a result; only the TLS part writes a connection's TLS state
    never src/verify.c include/mtlsd/verify.h -- 'mtlsd/tls(_internal)?\.h'
}
# -----------------------------------------------------------------------------

fail=0
files=(src/*.c include/mtlsd/*.h)
# Every file's direct includes, read once (one process: this runs under a
# loaded CI machine).
declare -A INC
while IFS=: read -r f h; do
    INC[$f]+="$h "
done < <(awk 'match($0, /^[ \t]*#[ \t]*include[ \t]*[<"][^>"]*[>"]/) {
                  h = substr($0, RSTART, RLENGTH); sub(/^[^<"]*[<"]/, "", h); sub(/[>"]$/, "", h)
                  print FILENAME ":" h }' "${files[@]}")

only() {
    local re=$1 f ok a h
    shift
    for f in "${files[@]}"; do
        for h in ${INC[$f]:-}; do
            [[ $h =~ $re ]] || continue
            ok=0
            for a in "$@"; do [ "$f" = "$a" ] && ok=1; done
            if [ $ok = 0 ]; then
                echo "FAIL: $f includes $h: only $* may"
                fail=1
            fi
            break
        done
    done
}

reach() { # sets REACHED: every header FILE reaches through project headers
    local todo=("$1") f h
    REACHED=" "
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}
        todo=("${todo[@]:1}")
        for h in ${INC[$f]:-}; do
            case $REACHED in *" $h "*) continue ;; esac
            REACHED="$REACHED$h "
            [ -n "${INC[include/$h]+x}" ] && todo+=("include/$h")
        done
    done
}

never() {
    local list=() f h
    while [ "$1" != -- ]; do list+=("$1"); shift; done
    shift
    for f in "${list[@]}"; do
        [ -f "$f" ] || { echo "FAIL: rule names $f, which does not exist"; fail=1; continue; }
        reach "$f"
        for h in $REACHED; do
            if [[ $h =~ $1 ]]; then
                echo "FAIL: $f reaches $h (forbidden there: $1)"
                fail=1
                break
            fi
        done
    done
}

rules
[ $fail = 0 ] && echo "include rules: ok (${#files[@]} files)"
exit $fail
