#!/usr/bin/env bash
# Installs what mtlsd needs on a Debian 12 machine and builds wolfSSL from
# Debian's source package into a cache outside the clone.
#   scripts/deps.sh            packages + wolfSSL (idempotent, fast when cached)
# Prints the wolfSSL install prefix on the last line of stdout.
set -euo pipefail

CACHE=${MTLSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlsd}
mkdir -p "$CACHE"

PKGS=(build-essential cmake pkg-config dpkg-dev autoconf automake libtool
      liburing-dev node-llhttp curl openssl gnutls-bin wrk nginx-light haproxy
      lighttpd lighttpd-mod-wolfssl gnuplot-nox valgrind procps python3 ca-certificates
      libssl-dev strace zlib1g-dev)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The configure line is chosen for this server (see README "Building wolfSSL"):
# assembly on, only the features mtlsd uses, and no --enable-distro (its
# FP_ECC fixed-point cache is never repaid by ephemeral and per-client keys).
WOLF_CONFIGURE=(--enable-static --disable-shared --with-pic
    --enable-tls13 --disable-oldtls
    --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
    --enable-ecc --enable-curve25519 --enable-aesgcm --enable-chacha --enable-poly1305
    --enable-session-ticket --enable-sni --enable-alpn --enable-crl
    --enable-altcertchains --disable-dh --disable-examples --disable-crypttests
    --disable-benchmark --disable-oldnames)
WOLF_CFLAGS="-O2 -g -DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_VERIFY_CB_ALL_CERTS \
-DWOLFSSL_IP_ALT_NAME -DHAVE_EX_DATA -DWOLFSSL_NO_FENCE -DWOLFSSL_CERT_EXT \
-DWOLFSSL_TICKET_EXTRA_PADDING_SZ=1024 -DHAVE_EXT_CACHE"
# WOLFSSL_TICKET_EXTRA_PADDING_SZ: room in each session ticket for the client
# identity that src/tickets.c seals next to wolfSSL's own ticket (the default
# 32 bytes hold nothing). It sizes every WOLFSSL_SESSION's static ticket
# buffer, so it costs about 1 KB per connection: see README "Performance".
WOLF_CFLAGS=$(echo "$WOLF_CFLAGS" | tr -s ' ')

key=$(printf '%s\n' "${WOLF_CONFIGURE[@]}" "$WOLF_CFLAGS" "v1" | sha256sum | cut -c1-12)
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
    # sources are left untouched.
    # The deb-src entry mirrors the system's own Debian source (its address
    # and suite, as apt knows them), so nothing here names a host.
    src=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' \
          'Component: main' 2>/dev/null | grep -v -e '-security' -e '-updates' | head -n 1)
    if [ -z "$src" ]; then
        apt-get update -qq >&2
        src=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' \
              'Component: main' 2>/dev/null | grep -v -e '-security' -e '-updates' | head -n 1)
    fi
    [ -n "$src" ] || { echo "deps: apt has no Debian 'main' source to fetch wolfssl from" >&2; exit 1; }
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $src main" > "$work/src.list"
    APTOPT=(-o "Dir::Etc::SourceList=$work/src.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
    apt-get "${APTOPT[@]}" update -qq >&2
    (cd "$work" && apt-get "${APTOPT[@]}" source --download-only -qq wolfssl >&2)
    (cd "$work" && dpkg-source -x wolfssl_*.dsc wolfssl >/dev/null)
    (cd "$work/wolfssl" && ./autogen.sh >/dev/null 2>&1 &&
        ./configure --prefix="$PREFIX" "${WOLF_CONFIGURE[@]}" CFLAGS="$WOLF_CFLAGS" >"$work/configure.log" 2>&1 ||
        { tail -30 "$work/configure.log" >&2; exit 1; })
    (cd "$work/wolfssl" && make -j"$(nproc)" >"$work/make.log" 2>&1 && make install >>"$work/make.log" 2>&1 ||
        { tail -30 "$work/make.log" >&2; exit 1; })
    # An install without options.h would silently use the system's header.
    [ -f "$PREFIX/include/wolfssl/options.h" ] || { echo "deps: $PREFIX lacks wolfssl/options.h" >&2; exit 1; }
    # src/tickets.c reads two ClientHello extensions from the WOLFSSL object
    # (the PSK key exchange modes: wolfSSL has no server-side switch to refuse
    # psk_ke). internal.h is not installed by "make install"; it must match
    # this exact build, so it is copied from the same tree.
    cp "$work/wolfssl/wolfssl/internal.h" "$PREFIX/include/wolfssl/internal.h"
    touch "$PREFIX/.complete"
    rm -rf "$work"
fi
flock -u 9
echo "$PREFIX"
