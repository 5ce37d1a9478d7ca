/* The server's RSA private-key operation done by libcrypto (--key-signer
 * openssl). OpenSSL 3 signs RSA-2048 with AVX-512 IFMA code about twice as
 * fast as wolfSSL on CPUs that have it (README "RSA-2048"); Envoy's CryptoMB
 * private key provider offloads RSA the same way. This module knows no
 * wolfSSL: tls.c's PK callbacks hand over the key wolfSSL holds for the
 * connection (its DER) and the bytes to sign, so a handshake always signs
 * with the key of the certificate it sent, reloads included. */
#ifndef MTLSD_KEYSIGN_H
#define MTLSD_KEYSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mtls_keysign_alg {
    MTLS_KEYSIGN_PKCS1,      /* in: a DigestInfo; EMSA-PKCS1-v1_5 (TLS 1.2) */
    MTLS_KEYSIGN_PSS_SHA256, /* in: the digest; MGF1 with the same hash, */
    MTLS_KEYSIGN_PSS_SHA384, /* salt as long as the digest (RFC 8446 4.2.3) */
    MTLS_KEYSIGN_PSS_SHA512,
    MTLS_KEYSIGN_N
};

/* Built with libcrypto (CMake MTLSD_OPENSSL_SIGNER). */
bool mtls_keysign_built(void);
/* The CPU has what makes libcrypto's RSA fast: AVX-512 F, DQ, IFMA and VL
 * (what OpenSSL's RSAZ code asks for) with ZMM state enabled by the OS
 * (XGETBV). Otherwise `why` says what is missing. */
bool mtls_keysign_cpu_fast(const char **why);
/* Start-up, before the sandbox: libcrypto without openssl.cnf. */
int mtls_keysign_init(char *err, size_t errlen);
/* A PEM private key (start and reload): *rsa_bits is its modulus size, 0
 * for a key that is not RSA; an RSA key is loaded and signed with once per
 * algorithm, and the signatures are verified, so a key libcrypto cannot use
 * is refused before it serves. */
int mtls_keysign_check(const uint8_t *pem, size_t len, unsigned *rsa_bits, char *err,
                       size_t errlen);
/* Worker threads: signs `in` with the RSA key whose DER (PKCS#1 or PKCS#8)
 * is `key`. Each thread keeps its own libcrypto key and contexts, built on
 * first use of a key: no lock, no allocation per signature. *out_len: room
 * in, signature length out. 0, or -1 (logged once per cause). */
int mtls_keysign_rsa(enum mtls_keysign_alg alg, const uint8_t *key, size_t key_len,
                     const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len);
/* Frees every thread's keys (once the workers have stopped). */
void mtls_keysign_shutdown(void);

#endif
