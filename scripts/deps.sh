#!/usr/bin/env bash
# Installs what mtlsd needs on a Debian 12 machine and builds wolfSSL from
# Debian's source package (a pinned version from Debian 13 "trixie", see
# WOLF_VERSION) into a cache outside the clone.
#   scripts/deps.sh [GROUP...]  packages + wolfSSL (idempotent, fast when cached)
# GROUP: run (default: what building and running mtlsd needs), test (adds the
# test clients; scripts/test.sh), bench (adds the servers bench/compare
# measures against).
# Prints the wolfSSL install prefix on the last line of stdout.
set -euo pipefail

CACHE=${MTLSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlsd}
mkdir -p "$CACHE"

# run: compilers, wolfSSL's source build, liburing, llhttp, openssl for the
# development PKI (certs/gen.sh) and curl to try it, libssl-dev for
# --key-signer openssl (src/keysign.c links libcrypto).
PKGS_run=(build-essential cmake pkg-config dpkg-dev autoconf automake libtool
          liburing-dev node-llhttp patch openssl curl procps ca-certificates
          zlib1g-dev libssl-dev)
# test: the clients the tests drive (libssl-dev builds bench/wrk-shim.c for
# tests/integration/load_tools.sh; strace checks that bad flags open no socket;
# libwolfssl-dev for tests/system_wolfssl.sh, the -DMTLSD_SYSTEM_WOLFSSL build).
PKGS_test=(gnutls-bin python3 wrk libssl-dev strace python3-yaml nodejs npm
           golang-go default-jdk-headless python3-requests libwolfssl-dev)
# bench: the servers bench/compare measures against, and its plots;
# valgrind for bench/cache-cost's instruction counts.
PKGS_bench=(wrk libssl-dev python3 nginx-light haproxy lighttpd lighttpd-mod-wolfssl gnuplot-nox
            valgrind)

PKGS=("${PKGS_run[@]}")
for group in "$@"; do
    case $group in
    run) ;;
    test) PKGS+=("${PKGS_test[@]}") ;;
    bench) PKGS+=("${PKGS_bench[@]}") ;;
    *) echo "deps: unknown group '$group' (run, test or bench)" >&2; exit 2 ;;
    esac
done

missing=()
# MTLSD_DEPS_NO_PACKAGES=1 (deploy/Containerfile): only build wolfSSL.
[ -n "${MTLSD_DEPS_NO_PACKAGES:-}" ] && PKGS=()
for p in "${PKGS[@]}"; do
    # A machine whose Node.js comes with its own npm (NodeSource's nodejs
    # package) cannot take Debian's npm package: the command is what we need.
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The wolfSSL the build expects: Debian trixie's source package (5.7.2 has
# SHA-NI code and three years of fixes over bookworm's 5.5.4). A stable
# release's package stays fetchable; its security updates replace it, and
# then this script stops with the versions on offer (see below).
WOLF_SUITE=trixie
WOLF_VERSION=5.7.2-0.1+deb13u2
# Patches applied to that source, in this order (each says why and when to
# drop it). Their content is part of the cache key.
WOLF_PATCHES=(wolfssl-ticket-len.patch wolfssl-many-suites.patch)
PATCH_DIR=$(cd "$(dirname "$0")" && pwd)/patches

# The configure line is chosen for this server (see README "Building wolfSSL"):
# assembly on, only the features mtlsd uses, and no --enable-distro (its
# FP_ECC fixed-point cache is never repaid by ephemeral and per-client keys).
# --enable-aesgcm=small: no GHASH table (GCM_TABLE_4BIT's 512 bytes in each
# of a connection's two Aes objects). With AES-NI the assembly computes
# GHASH with PCLMULQDQ from H alone (aes.c AES_GCM_encrypt_avx2/avx1/aesni)
# and never reads the table; only a CPU without AES-NI takes the slower
# bitwise C GHASH.
WOLF_CONFIGURE=(--enable-static --disable-shared --with-pic
    --enable-tls13 --disable-oldtls
    --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
    --enable-ecc --enable-curve25519 --enable-aesgcm=small --enable-chacha --enable-poly1305
    --enable-session-ticket --enable-sni --enable-alpn --enable-crl
    --enable-altcertchains --disable-dh --disable-examples --disable-crypttests
    --disable-benchmark --disable-oldnames)
WOLF_CFLAGS="-O2 -g -DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_VERIFY_CB_ALL_CERTS \
-DWOLFSSL_IP_ALT_NAME -DHAVE_EX_DATA -DWOLFSSL_NO_FENCE -DWOLFSSL_CERT_EXT \
-DWOLFSSL_TICKET_EXTRA_PADDING_SZ=1024 -DHAVE_EXT_CACHE -DWOLFSSL_STATIC_EPHEMERAL"
# WOLFSSL_TICKET_EXTRA_PADDING_SZ: room in each session ticket for the client
# identity that src/tickets.c seals next to wolfSSL's own ticket (the default
# 32 bytes hold nothing). It sizes every WOLFSSL_SESSION's static ticket
# buffer, so it costs about 1 KB per connection: see README "Performance".
# WOLFSSL_STATIC_EPHEMERAL: lets tools/mtls-load --reuse-key-share use one
# X25519 key share for all its connections (a cheaper load generator). It
# acts only when a static key is set, which mtlsd never does; without one
# the key-share code returns before any lock (ssl.c StaticEphemeralKeyLoad).
WOLF_CFLAGS=$(echo "$WOLF_CFLAGS" | tr -s ' ')

# Interop (issue 14): both client certificate types in a TLS 1.2
# CertificateRequest and handshake_failure for no shared group (patches).
WOLF_PATCHES+=(wolfssl-certreq-types.patch wolfssl-no-group-alert.patch)
# No OpenSSL compatibility layer (issue 9): it cost a full handshake ~100k
# instructions and ~110 allocations (X509 objects for the verify callback,
# X509_NAME entries for every certificate name parsed). What mtlsd used of
# it comes from patches instead: the --client-ca names in the
# CertificateRequest (WOLFSSL_CA_NAMES_DER) and TLS 1.2 ECDHE curves limited
# by set_groups (WOLFSSL_SET_GROUPS_TLS12). WOLFSSL_EXTRA_ALERTS and
# WOLFSSL_AKID_NAME, which the layer turned on, stay on (the alerts tests
# check; chain building by the AKID's issuer and serial).
# Handshake work nobody reads (issue 9, bench/hs-cost):
# WOLFSSL_TLS13_SUITE_HASH_ONLY stops the TLS 1.3 transcript hashes other
# than the suite's after the ServerHello; WOLFSSL_CURVE25519_BASE_ED25519
# makes X25519 key shares from Ed25519's fixed-base table instead of the
# Montgomery ladder (a third of the work); Ed25519 is compiled in for that
# table only: not advertised in TLS (WOLFSSL_NO_ED25519_SIGALG) nor taken for
# client authentication.
WOLF_PATCHES+=(wolfssl-ca-names-der.patch wolfssl-groups-tls12.patch
               wolfssl-tls13-suite-hash.patch wolfssl-x25519-base.patch)
WOLF_CONFIGURE+=(--enable-ed25519)
WOLF_CFLAGS="$WOLF_CFLAGS -DWOLFSSL_CA_NAMES_DER -DWOLFSSL_SET_GROUPS_TLS12 -DWOLFSSL_EXTRA_ALERTS \
-DWOLFSSL_AKID_NAME -DWOLFSSL_TLS13_SUITE_HASH_ONLY \
-DWOLFSSL_CURVE25519_BASE_ED25519 -DWOLFSSL_NO_ED25519_SIGALG -DNO_ED25519_CLIENT_AUTH"
# One DRBG per worker thread instead of one per connection (patch; ~4.6%
# of a full handshake), seeded with getrandom(2) instead of an open, read
# and close of /dev/urandom (which also fails when descriptors run out).
WOLF_PATCHES+=(wolfssl-ssl-rng-cb.patch)
WOLF_CFLAGS="$WOLF_CFLAGS -DWOLFSSL_SSL_RNG_CB -DWOLFSSL_GETRANDOM"
# PK callbacks: --key-signer openssl hands the server's RSA private-key
# operation to libcrypto (src/keysign.c), whose AVX-512 IFMA code signs
# RSA-2048 about twice as fast as wolfSSL here (issue 9). Without a
# registered callback wolfSSL takes its own path, unchanged.
WOLF_CONFIGURE+=(--enable-pkcallbacks)

key=$( { printf '%s\n' "$WOLF_SUITE" "$WOLF_VERSION" "${WOLF_CONFIGURE[@]}" "$WOLF_CFLAGS";
         for p in "${WOLF_PATCHES[@]}"; do cat "$PATCH_DIR/$p"; done; } | sha256sum | cut -c1-12)
PREFIX="$CACHE/wolfssl-$key"

# One build at a time (parallel test runs share the cache).
exec 9>"$CACHE/.lock"
flock 9
if [ ! -f "$PREFIX/.complete" ]; then
    echo "deps: building wolfSSL into $PREFIX (once; cached)" >&2
    work="$CACHE/src-$key"
    rm -rf "$work" "$PREFIX"
    mkdir -p "$work/lists/partial"
    # A private apt configuration for the deb-src entry: the system's
    # sources are left untouched. The entry uses the system's own Debian
    # mirror (its address, as apt knows it), so nothing here names a host,
    # with the suite the pin comes from. signed-by: apt checks the suite's
    # InRelease against the Debian archive keyring and every downloaded file
    # against the hashes of the signed Sources index.
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' \
             'Component: main' 2>/dev/null | grep -v -e '-security' -e '-updates' | head -n 1 | cut -d' ' -f1)
    if [ -z "$mirror" ]; then
        apt-get update -qq >&2
        mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' \
                 'Component: main' 2>/dev/null | grep -v -e '-security' -e '-updates' | head -n 1 | cut -d' ' -f1)
    fi
    [ -n "$mirror" ] || { echo "deps: apt has no Debian 'main' source to fetch wolfssl from" >&2; exit 1; }
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $WOLF_SUITE main" > "$work/src.list"
    APTOPT=(-o "Dir::Etc::SourceList=$work/src.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
    apt-get "${APTOPT[@]}" update -qq >&2
    if ! (cd "$work" && apt-get "${APTOPT[@]}" source --download-only -qq "wolfssl=$WOLF_VERSION" >&2); then
        offered=$(apt-cache "${APTOPT[@]}" showsrc wolfssl 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')
        cat >&2 <<MSG
deps: wolfssl $WOLF_VERSION is no longer offered by $mirror ($WOLF_SUITE).
      On offer there: ${offered:-nothing}
      To move the pin: set WOLF_VERSION in scripts/deps.sh to one of these,
      read its debian/changelog, check that scripts/patches/ still apply (and
      drop those the new version makes unnecessary), then run scripts/test.sh.
MSG
        exit 1
    fi
    # The .dsc names the tarballs with their sizes and hashes; apt checked
    # the .dsc and the tarballs against the signed index, and here each
    # tarball is checked against the .dsc before anything is unpacked.
    dsc="$work/wolfssl_${WOLF_VERSION#*:}.dsc"
    [ -f "$dsc" ] || { echo "deps: $dsc missing after apt-get source" >&2; exit 1; }
    sed -n '/^Checksums-Sha256:/,/^[^ ]/{/^ /p}' "$dsc" | while read -r sum size file; do
        [ "$(stat -c %s "$work/$file")" = "$size" ] &&
            echo "$sum  $work/$file" | sha256sum --quiet -c - ||
            { echo "deps: $file does not match $dsc" >&2; exit 1; }
    done
    # dpkg-source checks the .dsc's hashes again; it cannot check the
    # uploader's signature (no debian-keyring here) and says so: that
    # warning is kept out of the way, the archive's signature covers it.
    (cd "$work" && dpkg-source -x "$dsc" wolfssl >"$work/dpkg-source.log" 2>&1) ||
        { cat "$work/dpkg-source.log" >&2; exit 1; }
    for p in "${WOLF_PATCHES[@]}"; do
        patch -d "$work/wolfssl" -p1 --forward --batch --quiet < "$PATCH_DIR/$p" >&2 ||
            { echo "deps: scripts/patches/$p does not apply to wolfssl $WOLF_VERSION" >&2; exit 1; }
    done
    (cd "$work/wolfssl" && ./autogen.sh >/dev/null 2>&1 &&
        ./configure --prefix="$PREFIX" "${WOLF_CONFIGURE[@]}" CFLAGS="$WOLF_CFLAGS" >"$work/configure.log" 2>&1 ||
        { tail -30 "$work/configure.log" >&2; exit 1; })
    (cd "$work/wolfssl" && make -j"$(nproc)" >"$work/make.log" 2>&1 && make install >>"$work/make.log" 2>&1 ||
        { tail -30 "$work/make.log" >&2; exit 1; })
    # An install without options.h would silently use the system's header.
    [ -f "$PREFIX/include/wolfssl/options.h" ] || { echo "deps: $PREFIX lacks wolfssl/options.h" >&2; exit 1; }
    # src/tickets.c and src/sessions.c read a few fields of the WOLFSSL
    # object (see include/mtlsd/wolfssl_internal.h). internal.h is not
    # installed by "make install"; it must match this exact build, so it is
    # copied from the same (patched) tree.
    cp "$work/wolfssl/wolfssl/internal.h" "$PREFIX/include/wolfssl/internal.h"
    touch "$PREFIX/.complete"
    rm -rf "$work"
fi
flock -u 9
echo "$PREFIX"
