/* Client-certificate policy: which certificates are accepted and what
 * identity is extracted from them. Owns the wolfSSL verify callback, the
 * trust material (--client-ca, --crl) and the verified-chain cache. */
#ifndef MTLSD_VERIFY_H
#define MTLSD_VERIFY_H

#include "mtlsd/config.h"
#include "mtlsd/identity.h"
#include "mtlsd/wolfssl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Loads --client-ca and --crl; sets up the chain cache. */
int mtls_verify_init(const struct mtls_verify_settings *cfg, char *err, size_t errlen);
/* SIGHUP: new trust material, new generation; the old stays on failure. */
int mtls_verify_reload(char *err, size_t errlen);
void mtls_verify_shutdown(void);

/* Requires client certificates on `ctx` (per --client-auth) and installs
 * the TLS part's verify callback `cb`, which calls mtls_verify_peer(). */
void mtls_verify_setup(WOLFSSL_CTX *ctx, const struct mtls_verify_settings *cfg,
                       VerifyCallback cb);

/* What judging a presented certificate decided. verify.c only fills it;
 * the TLS part applies it to its connection state. Unset fields (NULL,
 * false) leave that state as it was. */
struct mtls_verify_result {
    struct mtls_identity *identity; /* the verified identity (a reference) */
    const char *verify_error;       /* why the presented chain was refused */
    bool cert_presented;
    bool chain_cached;              /* the identity came from the chain cache */
};

struct mtls_metrics;

/* The work of wolfSSL's verify callback, for one certificate of the chain
 * (the whole chain is judged at depth 0): wolfSSL's verdict (1: go on,
 * 0: refuse) and `out`; refusals and cache use are counted in `metrics`. */
int mtls_verify_peer(int preverify, WOLFSSL_X509_STORE_CTX *store,
                     struct mtls_metrics *metrics, struct mtls_verify_result *out);

/* The trust generation: bumped whenever the trusted CAs or CRLs change
 * (SIGHUP). Anything verified under an older generation (cached chains,
 * session tickets) must not be trusted again without a new verification. */
uint64_t mtls_verify_generation(void);
/* The generation and trust id of one and the same trust material. */
void mtls_verify_snapshot(uint64_t *generation, uint64_t *id);
/* A digest of the trust in force (--client-ca and --crl contents and the
 * chain settings), equal across instances with the same trust: what session
 * tickets record (tickets.c). */
uint64_t mtls_verify_trust_id(void);

/* Reads one DER tag and length at p (< end): the value's start, or NULL when
 * it does not fit. */
const uint8_t *mtls_der_item(const uint8_t *p, const uint8_t *end, uint8_t *tag, size_t *len);

#endif
