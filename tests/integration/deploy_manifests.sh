#!/usr/bin/env bash
# deploy/: every Kubernetes manifest parses (python3-yaml) and the files
# agree with each other and with `mtlsd --help` (secret names, mount paths,
# ports, probe paths, flags, drain time vs terminationGracePeriodSeconds,
# security context); the systemd unit has the hardening it claims and
# `systemd-analyze` accepts it; `cmake --install` puts the binary, the unit
# and the man page in place; the man page renders.
. "$(dirname "$0")/lib.sh"

"$MTLSD" --help >"$T/help.txt"
if ! $PY -c 'import yaml' 2>/dev/null; then
    fail "python3-yaml missing (scripts/deps.sh installs it)"; finish
fi
out=$($PY "$IT_DIR/deploy_check.py" "$MTLSD_SRC" "$T/help.txt" 2>&1); rc=$?
printf '%s\n' "$out" | grep -E '^(PASS|FAIL|    )' | while IFS= read -r l; do echo "$l"; done
PASS=$((PASS + $(grep -c '^PASS:' <<<"$out")))
FAIL=$((FAIL + $(grep -c '^FAIL:' <<<"$out")))
[ $rc = 0 ] || [ "$(grep -c '^FAIL:' <<<"$out")" -gt 0 ] || fail "deploy_check.py crashed" "$out"

if command -v systemd-analyze >/dev/null; then
    sec=$(systemd-analyze security --offline=true "$MTLSD_SRC/deploy/systemd/mtlsd.service" 2>&1 | tail -1)
    check_contains "systemd-analyze security: exposure OK or better" "$sec" "OK"
    note "$sec"
else
    skip "systemd-analyze not available"
fi

# cmake --install into a scratch root
if cmake --install "$MTLSD_BUILD" --prefix "$T/root" >"$T/install.log" 2>&1; then
    check "install: binary" test -x "$T/root/bin/mtlsd"
    check "install: systemd unit" test -f "$T/root/lib/systemd/system/mtlsd.service"
    check "install: man page" test -f "$T/root/share/man/man8/mtlsd.8"
    check_contains "man page lists the options from --help" "$(cat "$T/root/share/man/man8/mtlsd.8")" 'status\-listen'
    if command -v man >/dev/null; then
        check_contains "man page renders" "$(MANWIDTH=80 man -l "$T/root/share/man/man8/mtlsd.8" 2>&1)" "mutual-TLS HTTPS server"
    fi
else
    fail "cmake --install" "$(tail -5 "$T/install.log")"
fi
finish
