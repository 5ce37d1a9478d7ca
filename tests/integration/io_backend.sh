#!/usr/bin/env bash
# --io (issue 12): where a seccomp filter refuses io_uring_setup with EPERM,
# as Docker's and Kubernetes' RuntimeDefault profiles do (tests/tools/
# no_uring.c installs one and execs mtlsd), --io auto logs why and serves on
# epoll; --io io_uring refuses to start (exit 2, naming the cause). /metrics
# and the start-up line say which backend runs. The rest of the suite runs
# on one backend per pass (MTLSD_IO, see scripts/test.sh).
. "$(dirname "$0")/lib.sh"

: "${NO_URING:=$MTLSD_BUILD/tests/no_uring}"
make_pki
backend() { metrics_snap | awk -F'"' '/^mtlsd_io_backend\{/ { print $2 }'; }

# Unfiltered: both backends can be asked for by name.
for io in io_uring epoll; do
    start_mtlsd --workers 2 --no-pin --io "$io"
    check_contains "--io $io: the start-up line names it" "$(grep listening "$MTLSD_LOG")" "($io,"
    good_200 "--io $io"
    check_eq "--io $io: /metrics mtlsd_io_backend" "$(backend)" "$io"
    stop_mtlsd TERM
    check_eq "--io $io: SIGTERM exit 0" "$MTLSD_RC" 0
done

# Under the filter. A wrapper script stands in for the binary in start_mtlsd.
real=$MTLSD
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$NO_URING" "$real" >"$T/mtlsd-no-uring"
chmod +x "$T/mtlsd-no-uring"
MTLSD=$T/mtlsd-no-uring
start_mtlsd --workers 2 --no-pin --io auto
log=$(cat "$MTLSD_LOG")
check_contains "--io auto under seccomp: one line says why" "$log" \
    "io_uring unavailable (io_uring is not available (Operation not permitted)"
check_contains "--io auto under seccomp: ... and that epoll serves" "$log" "serving on epoll"
check_eq "--io auto under seccomp: the fallback is logged once" \
    "$(grep -c 'serving on epoll' "$MTLSD_LOG")" 1
check_contains "--io auto under seccomp: start-up line says epoll" "$log" "(epoll,"
good_200 "--io auto under seccomp"
out=$(ccurl "$(url /whoami)")
check_contains "--io auto under seccomp: /whoami has the identity" "$out" \
    '"uri":["spiffe://mtlsd.test/client"]'
check_eq "--io auto under seccomp: /metrics says epoll" "$(backend)" epoll
stop_mtlsd TERM
check_eq "--io auto under seccomp: SIGTERM exit 0" "$MTLSD_RC" 0
MTLSD=$real

out=$(timeout "$(slow 20)" "$NO_URING" "$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" \
    --client-ca "$PKI/ca.crt" --listen "127.0.0.1:$(free_port)" --io io_uring 2>&1)
rc=$?
check_eq "--io io_uring under seccomp: exit 2" "$rc" 2
check_contains "--io io_uring under seccomp: names the cause" "$out" \
    "--io io_uring: io_uring is not available (Operation not permitted)"
check_not_contains "--io io_uring under seccomp: does not fall back" "$out" "listening"

out=$("$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --io kqueue 2>&1)
check_eq "--io kqueue: exit 2" "$?" 2
check_contains "--io kqueue: says what is allowed" "$out" "'kqueue' is not auto, io_uring or epoll"
finish
