# Plays the kubelet's AtomicWriter for a projected Secret; source after lib.sh.
# (Not named *.sh: tests/CMakeLists.txt runs every *.sh as a test.)
#
#   kube_project DIR NAME=FILE...   writes a new ..TIMESTAMP/ in DIR with each
#       FILE copied as NAME, points ..data at it with a rename over the old
#       link (..data_tmp -> ..data, as the kubelet does), makes the visible
#       NAME -> ..data/NAME links the first time, and removes the previous
#       ..TIMESTAMP/ directory.
#   kube_repoint DIR TARGET_DIR     swaps ..data to an absolute TARGET_DIR
#       (outside DIR), to test the sandbox.
#   kube_serial FILE                the certificate's serial (openssl x509)
#   served_serial                   the serial mtlsd presents on $PORT
#   wait_served_serial SERIAL S     poll (bounded) until that serial is served

KUBE_SEQ=0

kube_project() {
    local dir=$1 ts old pair name
    shift
    mkdir -p "$dir"
    KUBE_SEQ=$((KUBE_SEQ + 1))
    ts="..$(date -u +%Y_%m_%d_%H_%M_%S).$$.$KUBE_SEQ"
    mkdir "$dir/$ts"
    for pair in "$@"; do
        cp "${pair#*=}" "$dir/$ts/${pair%%=*}"
    done
    chmod 755 "$dir/$ts"
    old=$(readlink "$dir/..data" 2>/dev/null || true)
    ln -s "$ts" "$dir/..data_tmp"
    mv -T "$dir/..data_tmp" "$dir/..data"
    for pair in "$@"; do
        name=${pair%%=*}
        [ -L "$dir/$name" ] || ln -s "..data/$name" "$dir/$name"
    done
    case "$old" in ..*) rm -rf "${dir:?}/$old" ;; esac
}

kube_repoint() {
    local dir=$1 target=$2
    ln -s "$target" "$dir/..data_tmp"
    mv -T "$dir/..data_tmp" "$dir/..data"
}

kube_serial() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }

served_serial() {
    timeout "$(slow 10)" openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
        -cert "$PKI/client.crt" -key "$PKI/client.key" </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}

wait_served_serial() {
    local want=$1 i limit
    limit=$($PY -c "print(int($2 * 10 * $IT_SLOW))")
    for ((i = 0; i < limit; i++)); do
        [ "$(served_serial)" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

# new_server_cert NAME: $T/NAME.{crt,key}, a fresh server certificate from
# the PKI's CA (same names as certs/gen.sh's server certificate)
new_server_cert() {
    local n=$T/$1
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$n.key" 2>/dev/null
    openssl req -new -key "$n.key" -subj "/O=mtlsd dev/CN=localhost" -out "$n.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$n.ext"
    openssl x509 -req -in "$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
        -days 30 -sha256 -extfile "$n.ext" -out "$n.crt" 2>/dev/null
    rm -f "$n.csr" "$n.ext"
}

# status_get PATH -> "CODE BODY" from the status listener on $SPORT
status_get() {
    curl -sS --max-time "$(slow 5)" -o "$T/status.body" -w '%{http_code}' "http://127.0.0.1:$SPORT$1" 2>/dev/null
    echo " $(head -c 200 "$T/status.body" 2>/dev/null)"
}
# smetric NAME_WITH_LABELS -> value from the status listener's /metrics
smetric() {
    curl -sS --max-time "$(slow 5)" "http://127.0.0.1:$SPORT/metrics" 2>/dev/null |
        awk -v n="$1" '{ v = $NF; sub(/ [^ ]*$/, ""); if ($0 == n) print v }'
}
# wait_smetric_gt NAME VALUE SECONDS: poll until the metric exceeds VALUE
wait_smetric_gt() {
    local i limit v
    limit=$($PY -c "print(int($3 * 10 * $IT_SLOW))")
    for ((i = 0; i < limit; i++)); do
        v=$(smetric "$1")
        [ -n "$v" ] && [ "$v" -gt "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
