#!/usr/bin/env bash
# Makes a development PKI with the openssl CLI, the classic mTLS recipe made
# stricter: a private CA, a server certificate for localhost/127.0.0.1 with
# EKU serverAuth, a client certificate with EKU clientAuth and a SPIFFE URI
# SAN, and a client from a second, untrusted CA for negative tests.
#
#   certs/gen.sh [--rsa] [OUTDIR]        (default OUTDIR: certs/out, ECDSA P-256)
#
# Files: ca.{key,crt} server.{key,crt} client.{key,crt}
#        other-ca.{key,crt} other-client.{key,crt}
set -euo pipefail

alg=ec
if [ "${1:-}" = "--rsa" ]; then alg=rsa; shift; fi
out=${1:-"$(cd "$(dirname "$0")" && pwd)/out"}
mkdir -p "$out"
cd "$out"
umask 077

newkey() { # $1 = key file
    if [ "$alg" = rsa ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    fi
}

mkca() { # $1 = name, $2 = CN
    newkey "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/O=mtlsd dev/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.crt"
}

# $1 = name, $2 = CA, $3 = subject, $4 = extensions file
mkleaf() {
    newkey "$1.key"
    openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
        -days 825 -sha256 -extfile "$4" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
}

# keyEncipherment means RSA key transport: meaningless for an EC key (RFC
# 5480 3), and TLS 1.2/1.3 with ECDHE never uses it for either.
if [ "$alg" = rsa ]; then ku=digitalSignature,keyEncipherment; else ku=digitalSignature; fi

cat > server.ext <<X
basicConstraints=critical,CA:FALSE
keyUsage=critical,$ku
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
X
cat > client.ext <<X
basicConstraints=critical,CA:FALSE
keyUsage=critical,$ku
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://mtlsd.test/client,DNS:client.mtlsd.test,email:client@mtlsd.test
X
cat > other.ext <<X
basicConstraints=critical,CA:FALSE
keyUsage=critical,$ku
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://other.test/intruder
X

# The RSA CA's name differs: a client trusting both dev CAs (the interop
# tests) must be able to tell them apart by name.
if [ "$alg" = rsa ]; then mkca ca "mtlsd dev CA (RSA)"; else mkca ca "mtlsd dev CA"; fi
mkca other-ca "untrusted CA"
mkleaf server ca "/O=mtlsd dev/CN=localhost" server.ext
mkleaf client ca "/O=mtlsd dev/OU=clients/CN=client" client.ext
mkleaf other-client other-ca "/O=elsewhere/CN=intruder" other.ext
rm -f ./*.ext ./*.srl
chmod 600 ./*.key
chmod 644 ./*.crt
echo "certs: $alg PKI in $out" >&2
