#!/usr/bin/env bash
# deploy/: every Kubernetes manifest parses (python3-yaml) and the files
# agree with each other and with `mtlsd --help` (secret names, mount paths,
# ports, probe paths, flags, drain time vs terminationGracePeriodSeconds,
# security context); the systemd unit has the hardening it claims and
# `systemd-analyze` accepts it; the manifests validate against the
# Kubernetes and cert-manager schemas (npm kubernetes-models, installed into
# a cache); `cmake --install` puts the binary, the unit
# and the man page in place; the man page renders.
. "$(dirname "$0")/lib.sh"

"$MTLSD" --help >"$T/help.txt"
if ! $PY -c 'import yaml' 2>/dev/null; then
    fail "python3-yaml missing (scripts/deps.sh installs it)"
    finish
fi
out=$($PY "$IT_DIR/deploy_check.py" "$MTLSD_SRC" "$T/help.txt" 2>&1); rc=$?
printf '%s\n' "$out" | grep -E '^(PASS|FAIL|    )' | while IFS= read -r l; do echo "$l"; done
PASS=$((PASS + $(grep -c '^PASS:' <<<"$out")))
FAIL=$((FAIL + $(grep -c '^FAIL:' <<<"$out")))
[ $rc = 0 ] || [ "$(grep -c '^FAIL:' <<<"$out")" -gt 0 ] || fail "deploy_check.py crashed" "$out"

# Kubernetes and cert-manager schemas: the npm packages kubernetes-models
# and @kubernetes-models/cert-manager, installed once into a cache.
NPM_DIR=${MTLSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlsd}/npm-k8s-models
if command -v node >/dev/null && command -v npm >/dev/null; then
    mkdir -p "$NPM_DIR"
    (
        flock 9
        [ -f "$NPM_DIR/.complete" ] ||
            { timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent \
                kubernetes-models@5.1.0 @kubernetes-models/cert-manager@6.0.0 >"$T/npm.log" 2>&1 &&
                touch "$NPM_DIR/.complete"; }
    ) 9>"$NPM_DIR.lock"
    if [ -f "$NPM_DIR/.complete" ]; then
        cp "$IT_DIR/deploy_schema.mjs" "$NPM_DIR/deploy_schema.mjs"
        out=$($PY -c '
import json, os, sys, yaml
d = sys.argv[1]; docs = []
for f in sorted(os.listdir(d)):
    if f.endswith(".yaml"):
        for x in yaml.safe_load_all(open(os.path.join(d, f))):
            if x: x["_file"] = f; docs.append(x)
print(json.dumps(docs))' "$MTLSD_SRC/deploy/kubernetes" | node "$NPM_DIR/deploy_schema.mjs" 2>&1)
        printf '%s\n' "$out" | grep -E '^(PASS|FAIL|    )'
        PASS=$((PASS + $(grep -c '^PASS:' <<<"$out")))
        FAIL=$((FAIL + $(grep -c '^FAIL:' <<<"$out")))
        [ "$(grep -c '^PASS:' <<<"$out")" -ge 8 ] || fail "schema validation ran" "$out"
    else
        fail "npm install kubernetes-models (registry unreachable?)" "$(tail -5 "$T/npm.log")"
    fi
else
    fail "node and npm missing (scripts/deps.sh installs nodejs and npm)"
fi

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

# The image's content without an image builder (none here: no podman, no
# docker daemon): the stripped runtime install the Containerfile copies,
# run as the image's user 65532, answers on TLS and on the status port.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
    cmake --install "$MTLSD_BUILD" --component runtime --prefix "$T/rt" --strip >>"$T/install.log" 2>&1; then
    make_pki
    chmod 755 "$T"; mkdir -p "$T/img"; cp "$PKI"/*.crt "$PKI"/*.key "$T/img/"; chmod 755 "$T/img"; chmod 644 "$T/img"/*
    printf '#!/bin/sh\nexec setpriv --reuid 65532 --regid 65532 --clear-groups %s "$@"\n' "$T/rt/bin/mtlsd" >"$T/as-image"
    chmod 755 "$T/as-image"
    SPORT=$(free_port)
    MTLSD=$T/as-image SRV_CERT=$T/img/server.crt SRV_KEY=$T/img/server.key SRV_CLIENT_CA=$T/img/ca.crt \
        start_mtlsd --workers 1 --status-listen "127.0.0.1:$SPORT"
    check_eq "image binary runs as uid 65532" "$(awk '/^Uid:/ { print $2 }' "/proc/$MTLSD_PID/status")" 65532
    good_200 "image binary as 65532"
    check_eq "image binary: /readyz" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/readyz")" 200
    stop_mtlsd TERM
    check_eq "image binary: exit 0" "$MTLSD_RC" 0
else
    skip "runtime install as the image's user needs root and setpriv"
fi
finish
