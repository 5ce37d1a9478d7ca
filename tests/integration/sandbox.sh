#!/usr/bin/env bash
# The sandbox (on by default): /proc/PID/status shows NoNewPrivs: 1; with
# Landlock, a file outside the directories of the configured files cannot
# be read (a ..data swapped to point outside fails its reload and the old
# certificate stays), while the watch reload of a normal Secret update
# keeps working; --no-sandbox turns both off; --user drops to another uid
# after binding (when the test runs as root).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kube.bash"
IT_WATCH=1 # mtlsd's default: the file watch on

make_pki
landlock_abi() {
    $PY -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
# landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): x86-64 444, arm64 444
print(libc.syscall(444, None, 0, 1))' 2>/dev/null || echo -1
}
ABI=$(landlock_abi)
note "Landlock ABI: $ABI"
S=$T/secret
kube_project "$S" tls.crt="$PKI/server.crt" tls.key="$PKI/server.key" ca.crt="$PKI/ca.crt"
SPORT=$(free_port)
new_server_cert srv2
new_server_cert srv3
mkdir -p "$T/outside"
cp "$T/srv3.crt" "$T/outside/tls.crt"; cp "$T/srv3.key" "$T/outside/tls.key"; cp "$PKI/ca.crt" "$T/outside/ca.crt"

SRV_CERT=$S/tls.crt SRV_KEY=$S/tls.key SRV_CLIENT_CA=$S/ca.crt \
    start_mtlsd --workers 2 --status-listen "127.0.0.1:$SPORT"
check_eq "sandbox on: NoNewPrivs: 1" "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$MTLSD_PID/status")" 1
kube_project "$S" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$PKI/ca.crt"
check "sandboxed: watch reload of a Secret update works" wait_served_serial "$(kube_serial "$T/srv2.crt")" 5
good_200 "sandboxed server serves"
if [ "$ABI" -ge 1 ] 2>/dev/null; then
    check_contains "Landlock in force (logged)" "$(cat "$MTLSD_LOG")" "sandbox: Landlock ABI"
    failed0=$(smetric 'mtlsd_reloads_total{result="failed"}')
    kube_repoint "$S" "$T/outside"
    if wait_smetric_gt 'mtlsd_reloads_total{result="failed"}' "$failed0" 5; then
        pass "Landlock: reading a file outside the allowed directories fails the reload"
    else
        fail "Landlock: reading outside fails" "$(tail -5 "$MTLSD_LOG")"
    fi
    check_contains "the refusal names the file" "$(cat "$MTLSD_LOG")" "Permission denied"
    check_eq "Landlock: the previous certificate stays" "$(served_serial)" "$(kube_serial "$T/srv2.crt")"
    # back inside the allowed directory: works again
    kube_project "$S" tls.crt="$PKI/server.crt" tls.key="$PKI/server.key" ca.crt="$PKI/ca.crt"
    check "Landlock: a later update inside is loaded" wait_served_serial "$(kube_serial "$PKI/server.crt")" 5
else
    skip "Landlock not supported by this kernel: the read-outside check is not possible"
fi
stop_mtlsd TERM
check_eq "sandboxed: exit 0" "$MTLSD_RC" 0

# ---- --no-sandbox: the same swap outside is loaded -----------------------
kube_project "$S" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$PKI/ca.crt"
SRV_CERT=$S/tls.crt SRV_KEY=$S/tls.key SRV_CLIENT_CA=$S/ca.crt \
    start_mtlsd --workers 1 --no-sandbox --expiry-warning 3000000
check_contains "--expiry-warning: a 30-day certificate within 34 days is warned about" \
    "$(cat "$MTLSD_LOG")" "warn: server certificate 'O=mtlsd dev,CN=localhost'"
check_eq "--no-sandbox: NoNewPrivs: 0" "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$MTLSD_PID/status")" 0
kube_repoint "$S" "$T/outside"
check "--no-sandbox: a file outside is read" wait_served_serial "$(kube_serial "$T/srv3.crt")" 5
stop_mtlsd TERM

# ---- --user -----------------------------------------------------------------
out=$("$MTLSD" --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
    --listen "127.0.0.1:$(free_port)" --user no-such-user-mtlsd 2>&1); rc=$?
check_eq "--user unknown: exit 2" "$rc" 2
check_contains "--user unknown: clear message" "$out" "--user no-such-user-mtlsd: no such user"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    U=$T/u; mkdir -p "$U"; chmod 755 "$T" "$U"
    kube_project "$U" tls.crt="$PKI/server.crt" tls.key="$PKI/server.key" ca.crt="$PKI/ca.crt"
    chmod 644 "$U"/..data/*
    SRV_CERT=$U/tls.crt SRV_KEY=$U/tls.key SRV_CLIENT_CA=$U/ca.crt \
        start_mtlsd --workers 1 --user nobody
    check_eq "--user nobody: uid after start" "$(awk '/^Uid:/ { print $2 }' "/proc/$MTLSD_PID/status")" "$(id -u nobody)"
    check_eq "--user nobody: gid after start" "$(awk '/^Gid:/ { print $2 }' "/proc/$MTLSD_PID/status")" "$(id -g nobody)"
    good_200 "--user nobody serves"
    kube_project "$U" tls.crt="$T/srv2.crt" tls.key="$T/srv2.key" ca.crt="$PKI/ca.crt"
    chmod 644 "$U"/..data/*
    check "--user nobody: watch reload works" wait_served_serial "$(kube_serial "$T/srv2.crt")" 5
    stop_mtlsd TERM
    check_eq "--user nobody: exit 0" "$MTLSD_RC" 0
else
    skip "--user: the test does not run as root"
fi
finish
