/* Client-certificate policy: which certificates are accepted and what
 * identity is extracted from them. Owns the wolfSSL verify callback, the
 * trust material (--client-ca, --crl) and the verified-chain cache. */
#ifndef MTLSD_VERIFY_H
#define MTLSD_VERIFY_H

#include "mtlsd/config.h"
#include "mtlsd/identity.h"
#include "mtlsd/wolfssl.h"

#include <stddef.h>
#include <stdint.h>

/* Loads --client-ca and --crl; sets up the chain cache. */
int mtls_verify_init(const struct mtls_verify_settings *cfg, char *err, size_t errlen);
/* SIGHUP: new trust material, new generation; the old stays on failure. */
int mtls_verify_reload(char *err, size_t errlen);
void mtls_verify_shutdown(void);

/* Requires client certificates on `ctx` (per --client-auth) and installs the
 * callback. Each WOLFSSL must get wolfSSL_SetCertCbCtx(ssl, struct mtls_tls*). */
void mtls_verify_setup(WOLFSSL_CTX *ctx, const struct mtls_verify_settings *cfg);

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

/* Parses a certificate's DER into a freshly allocated identity; NULL when it
 * is malformed or carries a name with an embedded NUL. */
struct mtls_identity *mtls_identity_from_der(const uint8_t *der, size_t len);

#endif
