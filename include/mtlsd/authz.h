/* Authorization: which verified identities may use which paths. Pure
 * functions of the identity and the request path; no TLS here. */
#ifndef MTLSD_AUTHZ_H
#define MTLSD_AUTHZ_H

#include "mtlsd/config.h"
#include "mtlsd/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Parses --allow and --public-path; a message naming the bad spec on error. */
int mtls_authz_init(const struct mtls_authz_settings *cfg, char *err, size_t errlen);
void mtls_authz_free(void);

/* A path served without an identity (--public-path, non-verify modes). */
bool mtls_authz_public(const char *path, size_t len);
/* A verified identity, still valid at `now`, matching --allow (if any). */
bool mtls_authz_allowed(const struct mtls_identity *id, time_t now);

#endif
