/* What the last successful load put in service, as dates for /metrics and
 * the expiry warning, and how reloads went. Written by the main thread only
 * (start-up and reloads); read by whoever renders /metrics. */
#ifndef MTLSD_MATERIAL_H
#define MTLSD_MATERIAL_H

#include "mtlsd/buf.h"
#include "mtlsd/config.h"

#include <stdbool.h>
#include <time.h>

struct mtls_material;

/* Reads the dates of --cert (every certificate of the chain), --client-ca
 * and each --crl. NULL with `err` set when a file cannot be read or parsed,
 * or (with `refuse_expired`) when a certificate of --cert has expired. */
struct mtls_material *mtls_material_read(const struct mtls_config *cfg, bool refuse_expired,
                                         char *err, size_t errlen);
/* Puts `m` in service (the previous one is freed), stamps the load time,
 * and logs a warning when the server chain expires within --expiry-warning. */
void mtls_material_commit(struct mtls_material *m, const struct mtls_config *cfg);
void mtls_material_free(struct mtls_material *m);
/* The same warning for what is in service (the main thread, hourly: a
 * certificate nobody renews gets closer to its end without any reload). */
void mtls_material_check_expiry(const struct mtls_config *cfg);
/* Counts a reload attempt (mtls_material_commit stamps the time). */
void mtls_material_count_reload(bool ok);
/* Prometheus text: reload counters and the dates above. */
int mtls_material_render(struct mtls_buf *out);
void mtls_material_shutdown(void);

#endif
