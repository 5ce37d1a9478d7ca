/* Counters: each worker writes only its own (relaxed atomics, no shared
 * cache line on the request path); /metrics sums them. */
#ifndef MTLSD_METRICS_H
#define MTLSD_METRICS_H

#include "mtlsd/buf.h"

#include <stdint.h>

#define MTLS_METRICS(X) \
    X(connections_accepted, "TCP connections accepted") \
    X(connections_refused, "connections closed at accept: --max-conns reached") \
    X(connections_open, "connections currently open") \
    X(handshakes_full, "completed full TLS handshakes") \
    X(handshakes_failed, "TLS handshakes that failed (including refused client certificates)") \
    X(handshake_timeouts, "connections closed by --handshake-timeout") \
    X(idle_timeouts, "connections closed by --idle-timeout") \
    X(requests, "HTTP requests answered") \
    X(bad_requests, "requests refused with 4xx before routing (400, 413, 414, 431)")

struct mtls_metrics {
#define X(name, help) uint64_t name;
    MTLS_METRICS(X)
#undef X
} __attribute__((aligned(64)));

#define METRIC_ADD(m, field, n) __atomic_fetch_add(&(m)->field, (n), __ATOMIC_RELAXED)
#define METRIC_INC(m, field) METRIC_ADD(m, field, 1)
#define METRIC_DEC(m, field) __atomic_fetch_sub(&(m)->field, 1, __ATOMIC_RELAXED)

/* Registers a worker's counters before the workers start. */
void mtls_metrics_register(struct mtls_metrics *m);
/* Prometheus text exposition of the sums. */
int mtls_metrics_render(struct mtls_buf *out);

#endif
