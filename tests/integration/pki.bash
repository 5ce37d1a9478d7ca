# The client-identity PKI for the issue-3 tests; source it after lib.sh.
# (Not named *.sh: tests/CMakeLists.txt runs every *.sh but lib.sh as a test.)
#
#   make_pki                 # lib.sh: $PKI with ca, server, client, other-ca, other-client
#   make_pki_matrix          # adds the certificates below under $M (= $PKI/m)
#
# Every certificate is made with the openssl CLI, per run, in the test's temp
# dir. For each NAME: $M/NAME.key, $M/NAME.crt (the leaf) and $M/NAME.pem (what
# the client sends: the leaf, then any intermediates it presents; those
# intermediates alone are also in $M/NAME.extra, for s_client -cert_chain).
#
#   good         trusted client (a copy of $PKI/client.*)
#   inter_good   client under an intermediate CA (CA:TRUE, keyCertSign,
#                pathlen:0, EKU clientAuth); chain = leaf + intermediate
#   untrusted    client of an untrusted CA (a copy of $PKI/other-client.*)
#   expired      notAfter yesterday (openssl ca -startdate/-enddate)
#   notyet       notBefore tomorrow
#   selfsigned   self-signed end-entity certificate (CA:FALSE, clientAuth)
#   eku_server   EKU serverAuth only
#   ca_client    a CA certificate (CA:TRUE, keyCertSign) used as a client
#   rsa1024      RSA-1024 client key
#   revoked      revoked in $M/root.crl (a current CRL from the root)
#   inter_eku    client under an intermediate whose EKU is serverAuth only
#   leaf_issued  client issued by a non-CA certificate ("leaf"), chain =
#                leaf + that non-CA certificate (itself issued by the root)
# Also: $M/inter.crt/.key (the good intermediate), $M/inter.crl (its CRL),
#       $M/root.crl, $M/cadb (the root's `openssl ca` database: cadb/ca.cnf).
# pki_short_lived NAME SECONDS: a trusted client that expires SECONDS from now.
# pki_trusted_clients N: N distinct trusted clients, $M/tc_K.{pem,key}
# pki_expired_root: $M/oldca.crt (a root CA, expired) and $M/oldclient.*, its valid client
# pki_untrusted_pairs N: N distinct untrusted intermediate+leaf chains,
#                        $M/ui_K.pem / $M/ui_K.key (K = 1..N), one untrusted root.

M=""

# pki_date OFFSET_SECONDS -> ASN.1 UTCTime (YYMMDDHHMMSSZ) of now + offset
pki_date() { date -u -d "@$(($(date +%s) + $1))" +%y%m%d%H%M%SZ; }

# pki_ca_cnf DIR CA_CRT CA_KEY: a minimal `openssl ca` database in DIR
pki_ca_db() {
    local d=$1
    mkdir -p "$d/newcerts"
    : >"$d/index.txt"
    echo 1000 >"$d/serial"
    echo 1000 >"$d/crlnumber"
    cp "$2" "$d/ca.crt"
    cp "$3" "$d/ca.key"
    cat >"$d/ca.cnf" <<X
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $d
database = $d/index.txt
new_certs_dir = $d/newcerts
certificate = $d/ca.crt
private_key = $d/ca.key
serial = $d/serial
crlnumber = $d/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
organizationName = optional
organizationalUnitName = optional
commonName = supplied
X
}

pki_eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# pki_sign CADB NAME SUBJECT EXTFILE [START END]: NAME.key (made if missing) -> NAME.crt
pki_sign() {
    local db=$1 name=$2 subj=$3 ext=$4 start=${5:-} end=${6:-}
    [ -f "$name.key" ] || pki_eckey "$name.key"
    openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null || return 1
    local dates=()
    [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
    openssl ca -batch -notext -config "$db/ca.cnf" -in "$name.csr" -out "$name.crt" \
        -extfile "$ext" "${dates[@]}" >>"$M/openssl.log" 2>&1 || return 1
    rm -f "$name.csr"
}

make_pki_matrix() {
    [ -n "$PKI" ] || make_pki
    M=$PKI/m
    if [ -f "$M/done" ]; then return 0; fi
    mkdir -p "$M"
    (
        set -e
        cd "$M"
        cat >leaf.ext <<'X'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://mtlsd.test/matrix
X
        cat >eku_server.ext <<'X'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
X
        cat >ca_client.ext <<'X'
basicConstraints=critical,CA:TRUE
keyUsage=critical,digitalSignature,keyCertSign,cRLSign
X
        cat >inter.ext <<'X'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
extendedKeyUsage=clientAuth
X
        cat >inter_eku.ext <<'X'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
extendedKeyUsage=serverAuth
X
        # a "leaf" with no basicConstraints CA flag that nevertheless signs
        # (an ordinary client certificate's usage: wolfSSL 5.7.2 itself
        # refuses to parse CA:FALSE with keyCertSign, RFC 5280 4.2.1.9, so
        # that combination would not reach mtlsd's own chain checks)
        cat >notca.ext <<'X'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
X
        pki_ca_db "$M/cadb" "$PKI/ca.crt" "$PKI/ca.key"
        cp "$PKI/client.crt" good.crt; cp "$PKI/client.key" good.key
        cp "$PKI/other-client.crt" untrusted.crt; cp "$PKI/other-client.key" untrusted.key
        pki_sign cadb expired "/O=mtlsd test/CN=expired" leaf.ext "$(pki_date -172800)" "$(pki_date -86400)"
        pki_sign cadb notyet "/O=mtlsd test/CN=notyet" leaf.ext "$(pki_date 86400)" "$(pki_date 172800)"
        pki_sign cadb eku_server "/O=mtlsd test/CN=eku-server" eku_server.ext
        pki_sign cadb ca_client "/O=mtlsd test/CN=ca-as-client" ca_client.ext
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.key 2>/dev/null
        pki_sign cadb rsa1024 "/O=mtlsd test/CN=rsa1024" leaf.ext
        pki_sign cadb revoked "/O=mtlsd test/CN=revoked" leaf.ext
        openssl ca -batch -config cadb/ca.cnf -revoke revoked.crt >>openssl.log 2>&1
        openssl ca -batch -config cadb/ca.cnf -gencrl -out root.crl >>openssl.log 2>&1
        # self-signed end entity
        pki_eckey selfsigned.key
        openssl req -x509 -new -key selfsigned.key -sha256 -days 30 -subj "/O=mtlsd test/CN=selfsigned" \
            -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
            -addext "extendedKeyUsage=clientAuth" -out selfsigned.crt 2>/dev/null
        # intermediates
        pki_sign cadb inter "/O=mtlsd test/CN=intermediate CA" inter.ext
        pki_ca_db "$M/interdb" inter.crt inter.key
        pki_sign interdb inter_good "/O=mtlsd test/OU=clients/CN=inter-client" leaf.ext
        openssl ca -batch -config interdb/ca.cnf -gencrl -out inter.crl >>openssl.log 2>&1
        pki_sign cadb inter_bad "/O=mtlsd test/CN=serverAuth intermediate CA" inter_eku.ext
        pki_ca_db "$M/interbaddb" inter_bad.crt inter_bad.key
        pki_sign interbaddb inter_eku "/O=mtlsd test/CN=inter-eku-client" leaf.ext
        pki_sign cadb notca "/O=mtlsd test/CN=not a CA" notca.ext
        pki_ca_db "$M/notcadb" notca.crt notca.key
        pki_sign notcadb leaf_issued "/O=mtlsd test/CN=leaf-issued" leaf.ext
        for n in good untrusted expired notyet eku_server ca_client rsa1024 revoked selfsigned; do
            cp $n.crt $n.pem
        done
        cp inter.crt inter_good.extra; cp inter_bad.crt inter_eku.extra; cp notca.crt leaf_issued.extra
        for n in inter_good inter_eku leaf_issued; do cat $n.crt $n.extra >$n.pem; done
        # OpenSSL 3 clients refuse to load an RSA-1024 key at the default
        # security level: curl gets this config (OPENSSL_CONF) for rsa1024
        cat >seclevel0.cnf <<'X'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT@SECLEVEL=0
X
        chmod 600 ./*.key
        touch done
    ) || { echo "FATAL: make_pki_matrix failed"; tail -30 "$M/openssl.log" 2>/dev/null; exit 1; }
}

# pki_short_lived NAME SECONDS: $M/NAME.{key,crt,pem}, trusted, notAfter = now + SECONDS
pki_short_lived() {
    [ -n "$M" ] || make_pki_matrix
    (cd "$M" && pki_sign cadb "$1" "/O=mtlsd test/CN=$1" leaf.ext "$(pki_date -60)" "$(pki_date "$2")" &&
        cp "$1.crt" "$1.pem") || { echo "FATAL: pki_short_lived failed"; tail "$M/openssl.log"; exit 1; }
}

# pki_untrusted_pairs N: N distinct intermediates of one untrusted root, each
# with a leaf: $M/ui_K.pem (leaf + intermediate) and $M/ui_K.key
pki_untrusted_pairs() {
    [ -n "$M" ] || make_pki_matrix
    (
        set -e
        cd "$M"
        pki_ca_db "$M/uidb" "$PKI/other-ca.crt" "$PKI/other-ca.key"
        for ((k = 1; k <= $1; k++)); do
            pki_sign uidb uinter_$k "/O=elsewhere/CN=untrusted intermediate $k" inter.ext
            pki_ca_db "$M/uidb_$k" uinter_$k.crt uinter_$k.key
            pki_sign uidb_$k ui_$k "/O=elsewhere/CN=ui-client-$k" leaf.ext
            cat ui_$k.crt uinter_$k.crt >ui_$k.pem
            rm -rf "uidb_$k"
        done
    ) || { echo "FATAL: pki_untrusted_pairs failed"; tail "$M/openssl.log"; exit 1; }
}

# pki_trusted_clients N: N distinct trusted clients $M/tc_K.{pem,key} (K = 1..N)
pki_trusted_clients() {
    [ -n "$M" ] || make_pki_matrix
    (
        set -e
        cd "$M"
        for ((k = 1; k <= $1; k++)); do
            pki_sign cadb tc_$k "/O=mtlsd test/CN=tc-$k" leaf.ext
            cp tc_$k.crt tc_$k.pem
        done
    ) || { echo "FATAL: pki_trusted_clients failed"; tail "$M/openssl.log"; exit 1; }
}

# pki_expired_root: $M/oldca.crt, a root CA that expired yesterday, and
# $M/oldclient.{pem,key}, a currently valid client it issued
pki_expired_root() {
    [ -n "$M" ] || make_pki_matrix
    (
        set -e
        cd "$M"
        pki_eckey oldca.key
        openssl req -new -key oldca.key -subj "/O=old/CN=expired root" -out oldca.csr 2>/dev/null
        pki_ca_db "$M/olddb" "$PKI/ca.crt" oldca.key # ca.crt replaced below
        printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >root.ext
        openssl ca -batch -notext -selfsign -config olddb/ca.cnf -keyfile oldca.key -in oldca.csr \
            -out oldca.crt -extfile root.ext -startdate "$(pki_date -864000)" \
            -enddate "$(pki_date -86400)" >>openssl.log 2>&1
        cp oldca.crt olddb/ca.crt
        pki_sign olddb oldclient "/O=old/CN=old-client" leaf.ext "$(pki_date -3600)" "$(pki_date 86400)"
        cp oldclient.crt oldclient.pem
    ) || { echo "FATAL: pki_expired_root failed"; tail "$M/openssl.log"; exit 1; }
}

# ---- clients with an arbitrary certificate from $M --------------------------
# mcurl NAME [curl args...]: curl presenting $M/NAME.pem (NAME "none": no cert)
mcurl() {
    local n=$1; shift
    local c=()
    [ "$n" != none ] && c=(--cert "$M/$n.pem" --key "$M/$n.key")
    [ "$n" = rsa1024 ] && local -x OPENSSL_CONF=$M/seclevel0.cnf
    curl -sS --max-time "$(slow 10)" --resolve "localhost:$PORT:127.0.0.1" \
        --cacert "$PKI/ca.crt" "${c[@]}" "$@"
}
# msclient NAME TLSFLAG PATH: openssl s_client presenting NAME (leaf + chain)
msclient() {
    local n=$1 flag=$2 req="GET $3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local c=()
    if [ "$n" != none ]; then
        c=(-cert "$M/$n.crt" -key "$M/$n.key")
        [ -f "$M/$n.extra" ] && c+=(-cert_chain "$M/$n.extra")
        [ "$n" = rsa1024 ] && c+=(-cipher DEFAULT@SECLEVEL=0)
    fi
    printf "$req" | timeout "$(slow 15)" openssl s_client -quiet -connect "127.0.0.1:$PORT" \
        -servername localhost -verify_return_error -CAfile "$PKI/ca.crt" "$flag" "${c[@]}" 2>&1
}
# mgnutls NAME PRIORITY PATH: gnutls-cli presenting NAME
mgnutls() {
    local n=$1 prio=$2 req="GET $3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local c=()
    [ "$n" != none ] && c=(--x509certfile "$M/$n.pem" --x509keyfile "$M/$n.key")
    printf "$req" | timeout "$(slow 15)" gnutls-cli --x509cafile "$PKI/ca.crt" --priority "$prio" \
        --port "$PORT" "${c[@]}" localhost 2>&1
}
# http_status OUTPUT -> the status code of the first HTTP/1.x status line ("" if none)
http_status() { sed -n 's/^.*HTTP\/1\.[01] \([0-9][0-9][0-9]\).*$/\1/p' <<<"$1" | head -1; }

# ---- a port of our own -------------------------------------------------------
# mtlsd listens with SO_REUSEPORT, so a second mtlsd (another test running in
# parallel that drew the same free port) binds the same port without error and
# the kernel splits connections between the two: a test then talks to the
# wrong server now and then. start_mtlsd is wrapped (lib.sh unchanged): after
# it, every listener on the port must be ours, else retry on another port.
if ! declare -F lib_start_mtlsd >/dev/null; then
    eval "lib_start_mtlsd() $(declare -f start_mtlsd | tail -n +2)"
    start_mtlsd() {
        local try
        for try in 1 2 3; do
            lib_start_mtlsd "$@"
            if ! command -v ss >/dev/null ||
                ! ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -qv "pid=$MTLSD_PID,"; then
                return 0
            fi
            note "port $PORT is shared with another listener (SO_REUSEPORT): retrying"
            stop_mtlsd KILL
        done
        echo "FATAL: no port of our own after 3 tries"; exit 1
    }
fi

# ---- helpers shared by the identity and resumption tests

mdelta() { echo $(($(mval "$2" "$3") - $(mval "$1" "$3"))); }

# reason_deltas SNAP_BEFORE SNAP_AFTER -> " reason+N ..." for every reason counter that moved
reason_deltas() {
    local c d out=""
    for c in no_cert untrusted expired not_yet_valid revoked crl usage self_signed weak_key depth malformed; do
        d=$(($(mval "$2" mtlsd_verify_rejected_$c) - $(mval "$1" mtlsd_verify_rejected_$c)))
        [ "$d" != 0 ] && out="$out $c+$d"
    done
    echo "$out"
}
