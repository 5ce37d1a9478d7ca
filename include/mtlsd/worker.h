/* A worker: one thread pinned to one CPU, with its own I/O backend
 * instance (io_uring or epoll), its own SO_REUSEPORT listener and its own
 * connections. Nothing on the request path is shared between workers. */
#ifndef MTLSD_WORKER_H
#define MTLSD_WORKER_H

#include "mtlsd/config.h"
#include "mtlsd/conn.h"
#include "mtlsd/io.h"
#include "mtlsd/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct mtls_tls_ctx;

struct mtls_worker {
    struct mtls_io io;
    struct mtls_conn_env conns;
    unsigned id;
    pthread_t thread;
    const struct mtls_config *cfg;
    int listen_fd;
    int wake_fd;                     /* eventfd: main thread asks for a stop */
    bool stopping;
    uint64_t stop_deadline_ms;
    struct mtls_metrics metrics;
    unsigned open_peak;              /* most open connections since the last trim */
    bool hs_waiting;                 /* handshakes wait for the next iteration */
    uint64_t trim_ms;                /* when memory was last given back */
    int exit_code;
};

/* Parameters of the I/O backend from the configuration. */
void mtls_worker_io_params(const struct mtls_config *cfg, struct mtls_io_params *p);
int mtls_worker_init(struct mtls_worker *w, unsigned id, const struct mtls_config *cfg,
                     enum mtls_io_backend io, struct mtls_tls_ctx *tls, char *err,
                     size_t errlen);
int mtls_worker_start(struct mtls_worker *w, char *err, size_t errlen);
/* Async-signal-safe enough for the main thread: writes the eventfd. */
void mtls_worker_request_stop(struct mtls_worker *w);
void mtls_worker_join(struct mtls_worker *w);
void mtls_worker_destroy(struct mtls_worker *w);

#endif
