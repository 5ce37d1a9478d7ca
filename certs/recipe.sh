#!/usr/bin/env bash
# The classic mTLS tutorial's PKI, made with the tutorial's own commands:
# RSA-2048, no configuration file, `openssl x509 -req` with -signkey for the
# CA and -CA/-CAkey/-CAcreateserial for the two services. Only the answers
# to `openssl req`'s prompts are given here, on its standard input, as a
# user would type them. With OpenSSL 3.0 the three certificates are X.509
# v1 without extensions (no SAN: clients check the server name against the
# CN, so service1's CN is the host name the clients use, localhost).
#
#   certs/recipe.sh [OUTDIR]              (default: certs/recipe)
#
# Files: ca.{key,csr,crt,srl} service1.{key,csr,crt} (the server)
#        service2.{key,csr,crt} (the client). Then, as in the tutorial:
#   mtlsd --cert service1.crt --key service1.key --client-ca ca.crt
#   curl --cacert ca.crt --cert service2.crt --key service2.key https://localhost:8443/
set -euo pipefail

out=${1:-"$(cd "$(dirname "$0")" && pwd)/recipe"}
mkdir -p "$out"
cd "$out"
umask 077

# The prompts of `openssl req -new` (Debian's openssl.cnf): country, state,
# locality, organization, unit, common name, email, challenge password,
# optional company name. $1 = common name, $2 = unit.
answers() { printf '%s\n' US California "San Francisco" "Example Inc" "$2" "$1" "" "" ""; }

openssl genrsa -out ca.key 2048
answers "Example CA" "Certificate Authority" | openssl req -new -key ca.key -out ca.csr
openssl x509 -req -days 365 -in ca.csr -signkey ca.key -out ca.crt

openssl genrsa -out service1.key 2048
answers localhost service1 | openssl req -new -key service1.key -out service1.csr
openssl x509 -req -days 365 -in service1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out service1.crt

openssl genrsa -out service2.key 2048
answers service2 service2 | openssl req -new -key service2.key -out service2.csr
openssl x509 -req -days 365 -in service2.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out service2.crt
echo
echo "made in $out: ca.crt, service1.crt/.key (server), service2.crt/.key (client)"
