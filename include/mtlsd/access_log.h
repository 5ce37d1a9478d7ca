/* The access log: one line per request, buffered per worker and written
 * once per loop iteration (O_APPEND keeps workers' batches whole). */
#ifndef MTLSD_ACCESS_LOG_H
#define MTLSD_ACCESS_LOG_H

#include "mtlsd/buf.h"
#include "mtlsd/identity.h"

#include <stdbool.h>
#include <stddef.h>

int mtls_access_log_open(const char *path, char *err, size_t errlen);
bool mtls_access_log_enabled(void);
void mtls_access_log_close(void);

struct mtls_access {
    const char *client;        /* "ip:port" */
    const struct mtls_identity *identity;
    const char *tls_version;
    bool resumed;
    const char *method;
    const char *target;
    size_t target_len;
    int status;
    size_t bytes;
    unsigned long usec;
    int upstream_status;       /* proxied: the upstream's status (0: none, -1: no answer) */
    unsigned long upstream_usec; /* proxied: request head sent to response complete */
};

/* Appends one line to the worker's buffer `b`. */
void mtls_access_log_format(struct mtls_buf *b, const struct mtls_access *a);
/* Writes and empties `b`. */
void mtls_access_log_flush(struct mtls_buf *b);

#endif
