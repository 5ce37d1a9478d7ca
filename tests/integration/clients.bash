# The interop clients of tests/clients/, built once per build directory and
# run against mtlsd; source it after lib.sh and pki.bash.
# (Not named *.sh: tests/CMakeLists.txt runs every *.sh but lib.sh as a test.)
#
#   clients_build           compiles the Go and Java clients into $CLIENTS
#                           (once: skipped while the binaries are newer than
#                           their sources; a lock serialises parallel tests)
#   client_run NAME PORT CA CASE...
#                           runs one client (go, java, node, python): one JSON
#                           line per case on stdout (see tests/clients/go/main.go)
#   interop_setup           an ECDSA PKI in $EC and an RSA one in $RSA, both CAs
#                           in $T/client-ca.pem (the server's --client-ca and
#                           the clients' CA file), clients built
#   client_have NAME        the client's toolchain is installed
#   client_version NAME     e.g. "Go 1.19.8"
#
# Go builds offline from the standard library only: GOFLAGS=-mod=mod,
# GOPROXY=off, its cache under $CLIENTS (nothing is downloaded).

CLIENTS_SRC=$MTLSD_SRC/tests/clients
CLIENTS=$MTLSD_BUILD/interop-clients

client_have() {
    case $1 in
        go) command -v go >/dev/null ;;
        java) command -v java >/dev/null && command -v javac >/dev/null ;;
        node) command -v node >/dev/null ;;
        python) [ -x /usr/bin/python3 ] || command -v python3 >/dev/null ;;
        *) return 1 ;;
    esac
}

# newer_than TARGET SOURCES...: TARGET exists and is newer than every source
newer_than() {
    local t=$1 s
    shift
    [ -e "$t" ] || return 1
    for s in "$@"; do [ "$s" -nt "$t" ] && return 1; done
    return 0
}

clients_build() {
    mkdir -p "$CLIENTS"
    (
        flock 9
        if client_have go && ! newer_than "$CLIENTS/go-interop" "$CLIENTS_SRC"/go/*; then
            (cd "$CLIENTS_SRC/go" && env GOCACHE="$CLIENTS/gocache" GOPATH="$CLIENTS/gopath" \
                GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on \
                go build -o "$CLIENTS/go-interop" .) >"$CLIENTS/go-build.log" 2>&1 ||
                { echo "go build failed:"; cat "$CLIENTS/go-build.log"; }
        fi
        if client_have java && ! newer_than "$CLIENTS/java/Interop.class" "$CLIENTS_SRC"/java/*.java; then
            javac -d "$CLIENTS/java" "$CLIENTS_SRC"/java/*.java >"$CLIENTS/javac.log" 2>&1 ||
                { echo "javac failed:"; cat "$CLIENTS/javac.log"; }
        fi
    ) 9>"$CLIENTS/.lock"
}

interop_setup() {
    make_pki --rsa
    RSA=$PKI
    make_pki
    EC=$PKI
    cat "$EC/ca.crt" "$RSA/ca.crt" >"$T/client-ca.pem"
    clients_build
}

# jlist JSON KEY -> the list value of KEY without spaces, e.g. [200,200,200]
# ("" when absent); jerror JSON -> success when the client reported an error.
# Plain text matching: the clients print flat JSON, and a python per case
# would cost more than the clients themselves on a loaded machine.
jlist() { grep -o "\"$2\": *\[[^]]*\]" <<<"$1" | head -1 | sed 's/^[^[]*//; s/ //g'; }
jerror() { grep -q '"error": *"' <<<"$1"; }

client_run() {
    local name=$1 limit=$((120 * ${IT_SLOW%.*}))
    shift
    case $name in
        go) timeout "$limit" "$CLIENTS/go-interop" "$@" ;;
        java) timeout "$limit" java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
                  -cp "$CLIENTS/java" Interop "$@" ;;
        node) timeout "$limit" node "$CLIENTS_SRC/node/interop.js" "$@" ;;
        python) timeout "$limit" $PY "$CLIENTS_SRC/python/interop.py" "$@" ;;
    esac
}

client_version() {
    case $1 in
        go) go version 2>/dev/null | awk '{sub(/^go/, "", $3); print "Go " $3 " crypto/tls + net/http"}' ;;
        java) java -version 2>&1 | awk -F'"' '/version/ {print "Java " $2 " HttpClient (JSSE)"; exit}' ;;
        node) echo "Node $(node --version 2>/dev/null | sed 's/^v//') https (OpenSSL $(node -p process.versions.openssl 2>/dev/null))" ;;
        python) $PY -c 'import ssl, sys
try:
    import requests; r = " + requests " + requests.__version__
except ImportError:
    r = ""
print("Python %d.%d ssl + http.client%s (%s)" % (sys.version_info[0], sys.version_info[1], r, ssl.OPENSSL_VERSION))' ;;
    esac
}
