# Helpers for the mtlsd integration tests; source it from a test script.
# (Its name is lib.sh, so the CMake glob also runs it as it_lib: run alone it
# checks the helpers themselves.)
#
# Environment (set by CTest; defaults for a run by hand from the checkout):
#   MTLSD, MTLS_LOAD, MTLSD_SRC, MTLSD_BUILD
#   IT_KEEP=1 keeps the temp dir; IT_SLOW=N multiplies the time bounds.
#
# Only processes this test started are stopped, always by PID. All traffic
# goes to 127.0.0.1 / ::1. Every wait is bounded.

set -u
set -o pipefail

IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${MTLSD_SRC:=$(cd "$IT_DIR/../.." && pwd)}"
: "${MTLSD_BUILD:=$MTLSD_SRC/build}"
: "${MTLSD:=$MTLSD_BUILD/mtlsd}"
: "${MTLS_LOAD:=$MTLSD_BUILD/tools/mtls-load}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# the pyenv shim costs ~0.2 s a call: prefer the system interpreter
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
ITC="$PY $IT_DIR/../tools/itclient.py"

IT_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/mtlsd-it-$IT_NAME.XXXXXX")
PASS=0
FAIL=0
SKIP=0
MTLSD_PID=""
MTLSD_LOG=""
MTLSD_RC=""
PORT=""
PKI=""
IT_BG_PIDS=()
IT_LOGS=()

# Sanitizer builds are several times slower: stretch the time bounds.
if [ -z "${IT_SLOW:-}" ]; then
    if grep -q -a -m1 __asan_init "$MTLSD" 2>/dev/null; then IT_SLOW=3; else IT_SLOW=1; fi
fi
slow() { $PY -c "print($1 * $IT_SLOW)"; } # slow 2 -> 2 (or 6 under ASan)

it_cleanup() {
    local p
    for p in "${IT_BG_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
    done
    if [ -n "$MTLSD_PID" ] && kill -0 "$MTLSD_PID" 2>/dev/null; then
        stop_mtlsd TERM >/dev/null 2>&1 || true
    fi
    for p in "${IT_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ "${IT_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap it_cleanup EXIT

# ---- assertions --------------------------------------------------------------
note() { echo "# $*"; }
pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() {
    FAIL=$((FAIL + 1)); echo "FAIL: $1"
    shift
    local l
    for l in "$@"; do printf '    %s\n' "${l:0:4000}"; done
}
skip() { SKIP=$((SKIP + 1)); echo "SKIP: $*"; }
# known_bug ID "description": a documented server bug; counted apart from
# FAIL so the suite stays green while the bug is open (see the report).
known_bug() { SKIP=$((SKIP + 1)); echo "KNOWN_BUG: $*"; }

check() { # check "name" cmd...   passes if the command succeeds
    local name=$1; shift
    if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}
check_eq() { # check_eq "name" got want
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1" "got:  $(printf %q "$2")" "want: $(printf %q "$3")"; fi
}
check_contains() { # check_contains "name" haystack needle
    case "$2" in
        *"$3"*) pass "$1" ;;
        *) fail "$1" "wanted to find: $3" "in: ${2:0:1500}" ;;
    esac
}
check_not_contains() {
    case "$2" in
        *"$3"*) fail "$1" "did not want: $3" "in: ${2:0:1500}" ;;
        *) pass "$1" ;;
    esac
}
check_range() { # check_range "name" value lo hi   (floats, lo <= v <= hi)
    if $PY -c "import sys; v,lo,hi=map(float,sys.argv[1:]); sys.exit(0 if lo<=v<=hi else 1)" "$2" "$3" "$4" 2>/dev/null; then
        pass "$1 ($2 in [$3, $4])"
    else
        fail "$1" "value $2 not in [$3, $4]"
    fi
}

# jget JSON EXPR: python expression over j, e.g. jget "$r" 'j["statuses"]'
jget() {
    $PY -c '
import json, sys
j = json.loads(sys.argv[1])
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else v)' "$1" "$2" 2>/dev/null || echo "<jget error>"
}

finish() {
    if [ -n "$MTLSD_PID" ] && kill -0 "$MTLSD_PID" 2>/dev/null; then
        stop_mtlsd TERM
        check_eq "mtlsd exits 0 on SIGTERM at the end" "$MTLSD_RC" 0
    fi
    sanitizer_check_logs
    echo "$PASS passed, $FAIL failed"
    [ "$SKIP" -gt 0 ] && echo "# ($SKIP skipped or known bugs, see SKIP/KNOWN_BUG lines)"
    [ "$FAIL" -eq 0 ]
    exit $?
}

# ---- PKI ---------------------------------------------------------------------
# make_pki [--rsa] -> sets PKI to the directory (ECDSA in $T/pki-ec, RSA in $T/pki-rsa)
make_pki() {
    local d=$T/pki-ec
    [ "${1:-}" = --rsa ] && d=$T/pki-rsa
    if [ ! -f "$d/client.crt" ]; then
        if ! bash "$MTLSD_SRC/certs/gen.sh" "$@" "$d" >"$T/gen.log" 2>&1; then
            echo "FATAL: certs/gen.sh failed"; cat "$T/gen.log"; exit 1
        fi
    fi
    PKI=$d
}

# ---- ports and the server ----------------------------------------------------
free_port() {
    $PY -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# port_is_free PORT: nobody listens on 127.0.0.1:PORT
port_is_free() {
    $PY -c '
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); sys.exit(1)
except OSError:
    sys.exit(0)' "$1"
}

# start_mtlsd [mtlsd flags...]: uses $PKI (make_pki first) and a fresh free
# port (or $PORT when IT_FIXED_PORT=1); --listen defaults to 127.0.0.1:$PORT.
# SRV_CERT, SRV_KEY, SRV_CLIENT_CA override the PKI files. Adds --watch off
# unless the test sets IT_WATCH=1 or passes --watch itself.
# Waits (bounded) for "listening". Sets MTLSD_PID, MTLSD_LOG, PORT.
start_mtlsd() {
    local try listen_given=0 watch_given=0 a
    for a in "$@"; do
        [ "$a" = --listen ] && listen_given=1
        case "$a" in --watch | --watch=*) watch_given=1 ;; esac
    done
    for try in 1 2 3; do
        [ "${IT_FIXED_PORT:-0}" = 1 ] || PORT=$(free_port)
        MTLSD_LOG=$T/mtlsd.$PORT.$try.log
        IT_LOGS+=("$MTLSD_LOG")
        local args=(--cert "${SRV_CERT:-$PKI/server.crt}" --key "${SRV_KEY:-$PKI/server.key}"
            --client-ca "${SRV_CLIENT_CA:-$PKI/ca.crt}")
        [ $listen_given = 0 ] && args+=(--listen "127.0.0.1:$PORT")
        # Most tests rewrite a file and then send SIGHUP, checking the state
        # in between: the file watch (default on) would reload at once.
        # Tests of the watch set IT_WATCH=1 to get mtlsd's default.
        [ $watch_given = 0 ] && [ "${IT_WATCH:-0}" != 1 ] && args+=(--watch off)
        "$MTLSD" "${args[@]}" "$@" >"$MTLSD_LOG" 2>&1 &
        MTLSD_PID=$!
        local i limit
        limit=$($PY -c "print(int(20 * 20 * $IT_SLOW))")
        for ((i = 0; i < limit; i++)); do
            if grep -q "listening" "$MTLSD_LOG"; then return 0; fi
            if ! kill -0 "$MTLSD_PID" 2>/dev/null; then break; fi
            sleep 0.05
        done
        if kill -0 "$MTLSD_PID" 2>/dev/null; then
            echo "FATAL: mtlsd did not log 'listening' within $((limit / 20)) s:"; cat "$MTLSD_LOG"
            stop_mtlsd KILL; MTLSD_PID=""; exit 1
        fi
        wait "$MTLSD_PID"; MTLSD_RC=$?; MTLSD_PID=""
        # A port taken between free_port and bind (tests run in parallel): retry.
        if grep -qi "in use" "$MTLSD_LOG" && [ "${IT_FIXED_PORT:-0}" != 1 ]; then continue; fi
        echo "FATAL: mtlsd exited ($MTLSD_RC) before listening:"; cat "$MTLSD_LOG"; exit 1
    done
    echo "FATAL: no free port after 3 tries"; exit 1
}

# stop_mtlsd [SIG] -> MTLSD_RC = exit status (bounded wait: 20 s x IT_SLOW, then KILL)
stop_mtlsd() {
    local sig=${1:-TERM} i limit
    [ -n "$MTLSD_PID" ] || { MTLSD_RC=""; return 0; }
    kill -"$sig" "$MTLSD_PID" 2>/dev/null
    limit=$($PY -c "print(int(20 * 20 * $IT_SLOW))")
    for ((i = 0; i < limit; i++)); do
        kill -0 "$MTLSD_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$MTLSD_PID" 2>/dev/null; then
        echo "# mtlsd $MTLSD_PID still running $((limit / 20)) s after SIG$sig: SIGKILL"
        kill -KILL "$MTLSD_PID" 2>/dev/null
    fi
    wait "$MTLSD_PID" 2>/dev/null
    MTLSD_RC=$?
    MTLSD_PID=""
    return 0
}

# wait_exit PID SECONDS -> 0 if the process ended in time
wait_gone() {
    local pid=$1 i limit
    limit=$($PY -c "print(int($2 * 20))")
    for ((i = 0; i < limit; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# Any sanitizer report in any server log is a failure.
sanitizer_check_logs() {
    local l
    for l in "${IT_LOGS[@]}"; do
        [ -f "$l" ] || continue
        if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer" "$l"; then
            fail "sanitizer report in $(basename "$l")" "$(grep -E -A30 'ERROR: |runtime error:' "$l" | head -60)"
        fi
    done
}

server_alive() { [ -n "$MTLSD_PID" ] && kill -0 "$MTLSD_PID" 2>/dev/null; }

# ---- clients -----------------------------------------------------------------
# url PATH
url() { echo "https://localhost:$PORT${1:-/}"; }

# idle_burst N: N idle mTLS connections from mtls-load in the background (its
# PID in IDLE_PID, its report in $T/load.err); returns once they are up, or
# after 60 s (x IT_SLOW).
idle_burst() {
    "$MTLS_LOAD" --mode idle -c "$1" --duration "$(slow 60)" --timeout "$(slow 30)" \
        --cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$PKI/ca.crt" \
        "$(url /)" >"$T/load.out" 2>"$T/load.err" &
    IDLE_PID=$!
    IT_BG_PIDS+=("$IDLE_PID")
    local i n
    n=$($PY -c "print(int(60 * 10 * $IT_SLOW))")
    for ((i = 0; i < n; i++)); do grep -qs established "$T/load.err" && break; sleep 0.1; done
}

# ccurl [curl args...]: curl with the good client certificate, localhost -> 127.0.0.1
ccurl() {
    curl -sS --max-time "$(slow 10)" --resolve "localhost:$PORT:127.0.0.1" \
        --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" "$@"
}
# ncurl: curl with no client certificate
ncurl() {
    curl -sS --max-time "$(slow 10)" --resolve "localhost:$PORT:127.0.0.1" --cacert "$PKI/ca.crt" "$@"
}

# Input one paused connection may keep with the default --recv-buffer-size
# (config.c, max_unread: 4 buffers and a TLS record), on both backends;
# /metrics shows the most kept as mtlsd_paused_input_peak_bytes.
PAUSED_INPUT_MAX=$((4 * 16384 + 16384 + 2048))

# metric NAME -> value from /metrics (empty on failure)
metric() {
    ccurl "$(url /metrics)" 2>/dev/null | awk -v n="$1" '$1 == n { print $2 }'
}
# sighup_wait: SIGHUP the server and wait (bounded) for its log line
sighup_wait() {
    local before i
    before=$(grep -cE "SIGHUP: (reloaded|reload failed)" "$MTLSD_LOG")
    kill -HUP "$MTLSD_PID"
    for ((i = 0; i < $(slow 100); i++)); do
        [ "$(grep -cE "SIGHUP: (reloaded|reload failed)" "$MTLSD_LOG")" -gt "$before" ] && break
        sleep 0.05
    done
    grep -E "SIGHUP: (reloaded|reload failed)" "$MTLSD_LOG" | tail -1
}

# metrics_snap: the whole /metrics text (one request); mval TEXT NAME -> value
metrics_snap() { ccurl "$(url /metrics)" 2>/dev/null; }
mval() { awk -v n="$2" '$1 == n { print $2 }' <<<"$1"; }

# good_200 "name": a fresh connection with the good certificate gets 200 Hello World!
good_200() {
    local out
    out=$(ccurl -w ' %{http_code}' "$(url /)" 2>&1)
    check_eq "${1:-server still serves}: GET / -> 200 Hello World!" "$out" "Hello World! 200"
}

# gnutls_get PRIORITY PATH [CERT KEY] -> response on stdout, gnutls-cli status in $?
# (gnutls-cli 3.7: --x509cafile = CA to trust, --x509certfile/--x509keyfile = our cert)
gnutls_get() {
    local prio=$1 req="GET $2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local args=(--x509cafile "$PKI/ca.crt" --priority "$prio" --port "$PORT")
    [ $# -ge 4 ] && args+=(--x509certfile "$3" --x509keyfile "$4")
    printf "$req" | timeout "$(slow 15)" gnutls-cli "${args[@]}" localhost 2>&1
}

# sclient_get TLSFLAG PATH [CERT KEY] -> output, openssl s_client status in $?
sclient_get() {
    local flag=$1 req="GET $2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local args=(-quiet -connect "127.0.0.1:$PORT" -servername localhost -verify_return_error
        -CAfile "$PKI/ca.crt" "$flag")
    [ $# -ge 4 ] && args+=(-cert "$3" -key "$4")
    printf "$req" | timeout "$(slow 15)" openssl s_client "${args[@]}" 2>&1
}

# itc SUBCOMMAND [args...]: the python client (itclient.py) with the good cert
itc() {
    local sub=$1; shift
    $ITC "$sub" --port "$PORT" --ca "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" "$@"
}

# Run as a test by itself (it_lib): check the helpers.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    make_pki
    start_mtlsd --workers 1
    check "server listening after start_mtlsd" server_alive
    good_200 "lib self-check"
    # the /metrics request itself may already be counted
    check_range "metric() reads mtlsd_requests" "$(metric mtlsd_requests)" 1 2
    finish
fi
