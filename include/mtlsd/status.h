/* The status listener: plain HTTP for probes and scrapers that hold no
 * client certificate (a kubelet). GET /healthz, /readyz and /metrics only,
 * on its own thread with poll(2), apart from the workers' loops. */
#ifndef MTLSD_STATUS_H
#define MTLSD_STATUS_H

#include "mtlsd/config.h"

#include <stdbool.h>
#include <stddef.h>

/* Binds --status-listen (before privileges are dropped); no-op when unset. */
int mtls_status_open(const struct mtls_config *cfg, char *err, size_t errlen);
/* Starts the thread. */
int mtls_status_start(char *err, size_t errlen);
void mtls_status_stop(void);

/* /readyz is 200 only when loaded, not draining and the upstream is fine. */
void mtls_status_set_loaded(void);
void mtls_status_set_draining(void);
/* Hook for the reverse proxy (issue 11): false when the upstream failed its
 * last connect, true once one succeeds again. Starts true (no upstream). */
void mtls_status_set_upstream_ok(bool ok);
bool mtls_status_ready(void);

#endif
