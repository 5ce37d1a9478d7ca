#!/usr/bin/env bash
# Makes the seed corpus of fuzz_trust.c in OUTDIR (default
# tests/fuzz/corpus/trust) from a fresh PKI: certs/gen.sh (ECDSA), the
# tutorial's v1 PKI (certs/recipe.sh, RSA), an intermediate, a CRL.
#   tests/fuzz/trust_seeds.sh [OUTDIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$src/tests/fuzz/corpus/trust}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$out"
bash "$src/certs/gen.sh" "$w/ec" >/dev/null 2>&1
bash "$src/certs/recipe.sh" "$w/v1" >/dev/null 2>&1
cd "$w"
# an intermediate under the EC CA, its client, and a CRL of the CA
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nnameConstraints=critical,permitted;DNS:.mtlsd.test\n' >i.ext
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:a.mtlsd.test\n' >l.ext
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out i.key 2>/dev/null
openssl req -new -key i.key -subj "/CN=seed intermediate" -out i.csr 2>/dev/null
openssl x509 -req -in i.csr -CA ec/ca.crt -CAkey ec/ca.key -CAcreateserial -days 3650 -extfile i.ext -out i.crt 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out l.key 2>/dev/null
openssl req -new -key l.key -subj "/CN=seed leaf" -out l.csr 2>/dev/null
openssl x509 -req -in l.csr -CA i.crt -CAkey i.key -CAcreateserial -days 3650 -extfile l.ext -out l.crt 2>/dev/null
mkdir -p db/newcerts && : >db/index.txt && echo 01 >db/crlnumber
printf '[ca]\ndefault_ca=d\n[d]\ndatabase=%s/db/index.txt\ncrlnumber=%s/db/crlnumber\ndefault_md=sha256\ndefault_crl_days=3650\n' "$w" "$w" >db/ca.cnf
openssl ca -batch -config db/ca.cnf -cert ec/ca.crt -keyfile ec/ca.key -gencrl -out ca.crl 2>/dev/null
der() { openssl "${2:-x509}" -in "$1" -outform DER; }
# seed NAME KIND:FILE...: records (kind, 2-byte length, DER; kind r = raw PEM)
seed() {
    local name=$1 r k f
    shift
    : >"$out/$name"
    for r in "$@"; do
        k=${r%%:*} f=${r#*:}
        case $k in
            a) der "$f" >"$w/d" ;;
            c) der "$f" crl >"$w/d" ;;
            p) der "$f" >"$w/d" ;;
            r) cp "$f" "$w/d" ;;
        esac
        python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); k={"a":0,"c":1,"p":2,"r":3}[sys.argv[2]]
sys.stdout.buffer.write(bytes([k, len(d)>>8, len(d)&255]) + d)' "$w/d" "$k" >>"$out/$name"
    done
}
seed ec_client a:ec/ca.crt p:ec/client.crt
seed ec_client_root a:ec/ca.crt p:ec/client.crt p:ec/ca.crt
seed ec_untrusted a:ec/ca.crt p:ec/other-client.crt
seed ec_crl a:ec/ca.crt c:ca.crl p:ec/client.crt
seed ec_inter a:ec/ca.crt p:l.crt p:i.crt
seed ec_inter_anchor a:ec/ca.crt a:i.crt c:ca.crl p:l.crt
seed v1_recipe a:v1/ca.crt p:v1/service2.crt
seed v1_two_anchors a:v1/ca.crt a:ec/ca.crt p:v1/service2.crt
seed pem_raw r:ec/ca.crt p:ec/client.crt
echo "seeds in $out"
