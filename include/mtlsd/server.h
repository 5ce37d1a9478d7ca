/* The process-wide, read-only-after-start state: configuration, the TLS
 * context, and the workers. */
#ifndef MTLSD_SERVER_H
#define MTLSD_SERVER_H

#include "mtlsd/config.h"
#include "mtlsd/worker.h"

struct mtls_server {
    const struct mtls_config *cfg;
    struct mtls_tls_ctx *tls;
    enum mtls_io_backend io;         /* resolved: io_uring or epoll */
    struct mtls_worker *workers;
    unsigned n_workers;
    unsigned n_started;
};

/* Loads certificates and keys first, then opens the listeners: a bad file
 * is reported before any socket exists. */
int mtls_server_init(struct mtls_server *s, const struct mtls_config *cfg, char *err,
                     size_t errlen);
int mtls_server_start(struct mtls_server *s, char *err, size_t errlen);
void mtls_server_stop(struct mtls_server *s);
/* SIGHUP: re-reads what can change at run time; keeps serving on failure. */
void mtls_server_reload(struct mtls_server *s);
/* Main thread, periodic: ticket key rotation. Returns the milliseconds
 * until the next call is due (<= 1000). */
unsigned mtls_server_tick(struct mtls_server *s);
/* Waits for every worker; returns the exit code. */
int mtls_server_wait(struct mtls_server *s);
void mtls_server_destroy(struct mtls_server *s);

#endif
