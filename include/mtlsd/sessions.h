/* The TLS 1.2 session-ID cache (--session-cache N), shared by all workers,
 * holding each session's identity next to it (src/sessions.c). */
#ifndef MTLSD_SESSIONS_H
#define MTLSD_SESSIONS_H

#include "mtlsd/config.h"
#include "mtlsd/wolfssl.h"

#include <stddef.h>

/* Installs the cache on `ctx` (or turns wolfSSL's off with N = 0). */
int mtls_sessions_setup(WOLFSSL_CTX *ctx, const struct mtls_resume_settings *cfg, char *err,
                        size_t errlen);
/* Zeroes and frees every entry. */
void mtls_sessions_shutdown(void);

#endif
