/* A worker: one thread pinned to one CPU, with its own io_uring, its own
 * SO_REUSEPORT listener and its own connections. Nothing on the request
 * path is shared between workers. */
#ifndef MTLSD_WORKER_H
#define MTLSD_WORKER_H

#include "mtlsd/buf.h"
#include "mtlsd/config.h"
#include "mtlsd/http.h"
#include "mtlsd/list.h"
#include "mtlsd/metrics.h"
#include "mtlsd/ring.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct mtls_conn;
struct mtls_tls_ctx;

enum mtls_timer { MTLS_TIMER_HANDSHAKE, MTLS_TIMER_IDLE, MTLS_TIMER_LINGER, MTLS_TIMER_NONE };


struct mtls_worker {
    struct mtls_ring ring;           /* first: 8-byte aligned owner */
    unsigned id;
    pthread_t thread;
    const struct mtls_config *cfg;
    struct mtls_tls_ctx *tls;
    struct mtls_http_limits limits;
    int listen_fd;
    int wake_fd;                     /* eventfd: main thread asks for a stop */
    uint64_t wake_val;
    bool accept_armed;
    uint64_t accept_retry_ms;        /* re-arm accept then (0: no) */
    bool stopping;
    uint64_t now_ms;                 /* monotonic, refreshed once per loop */
    uint64_t stop_deadline_ms;
    uint64_t timeout_ms[MTLS_TIMER_NONE];
    /* Each timer list has one fixed timeout, so appending keeps it in
     * deadline order. */
    struct mtls_list timers[MTLS_TIMER_NONE];
    struct mtls_list all;            /* every connection not yet freed */
    struct mtls_conn *reap;          /* closed, no ops left: free after the batch */
    unsigned nconns;                 /* open (not closed) connections */
    uint8_t *plain;                  /* scratch: decrypted bytes */
    size_t plain_cap;
    struct mtls_buf resp;            /* scratch: response being framed */
    struct mtls_buf alog;            /* access log lines of this batch */
    uint64_t batch_us;               /* when this batch of completions began */
    struct mtls_buf spare[8];        /* recycled output buffers */
    unsigned nspare;
    struct mtls_metrics metrics;
    int exit_code;
};

int mtls_worker_init(struct mtls_worker *w, unsigned id, const struct mtls_config *cfg,
                     struct mtls_tls_ctx *tls, char *err, size_t errlen);
int mtls_worker_start(struct mtls_worker *w, char *err, size_t errlen);
/* Async-signal-safe enough for the main thread: writes the eventfd. */
void mtls_worker_request_stop(struct mtls_worker *w);
void mtls_worker_join(struct mtls_worker *w);
void mtls_worker_destroy(struct mtls_worker *w);

/* For conn.c: timers, buffer recycling and reaping. */
void mtls_worker_timer_set(struct mtls_worker *w, struct mtls_conn *c, enum mtls_timer t);
void mtls_worker_timer_clear(struct mtls_worker *w, struct mtls_conn *c);
void mtls_worker_buf_get(struct mtls_worker *w, struct mtls_buf *b);
void mtls_worker_buf_put(struct mtls_worker *w, struct mtls_buf *b);

#endif
