/* Counters: each worker writes only its own (relaxed atomics, no shared
 * cache line on the request path); /metrics sums them. */
#ifndef MTLSD_METRICS_H
#define MTLSD_METRICS_H

#include "mtlsd/buf.h"
#include "mtlsd/refusals.h"

#include <stddef.h>
#include <stdint.h>

#define MTLS_METRICS(X) \
    X(connections_accepted, "TCP connections accepted") \
    X(connections_refused, "connections closed at accept: --max-conns reached") \
    X(connections_open, "connections currently open") \
    X(handshakes_full, "completed full TLS handshakes") \
    X(handshakes_resumed_tls13_ticket, "completed handshakes resumed with a TLS 1.3 ticket") \
    X(handshakes_resumed_tls12_ticket, "completed handshakes resumed with a TLS 1.2 session ticket") \
    X(handshakes_resumed_tls12_session_id, "completed handshakes resumed with a TLS 1.2 session ID (not offered)") \
    MTLS_RESUME_REFUSALS(MTLS_REFUSAL_METRIC, X) /* resumption_refused_* */ \
    X(tickets_issued, "session tickets issued") \
    X(tickets_unusable, "session tickets issued without an identity (it did not fit)") \
    X(handshakes_failed, "TLS handshakes that failed (including refused client certificates)") \
    X(key_signatures_openssl, "server RSA signatures made by libcrypto (--key-signer openssl)") \
    X(key_sign_failures, "handshakes failed: libcrypto could not make the server's signature") \
    X(alpn_refused, "handshakes refused: ALPN offered without http/1.1 (e.g. h2 only)") \
    X(plain_http, "connections that sent plain HTTP to the TLS port (answered 400)") \
    X(handshake_timeouts, "connections closed by --handshake-timeout") \
    X(idle_timeouts, "connections closed by --idle-timeout") \
    X(buffer_budget_closes, "connections closed keeping the most of a worker over --buffer-budget") \
    X(requests, "HTTP requests answered") \
    X(bad_requests, "requests refused with 4xx before routing (400, 413, 414, 431)") \
    X(forbidden, "requests answered 403: no verified or authorized identity") \
    X(verify_cache_hits, "client chains found in the verified-chain cache") \
    X(verify_cache_misses, "client chains verified in full") \
    X(verify_cache_inserts, "verified chains added to the cache") \
    X(verify_cache_evictions, "cache entries evicted to make room") \
    X(verify_rejected_no_cert, "client certificates refused: none presented") \
    X(verify_rejected_untrusted, "client certificates refused: no chain to --client-ca") \
    X(verify_rejected_expired, "client certificates refused: a certificate expired") \
    X(verify_rejected_not_yet_valid, "client certificates refused: not yet valid") \
    X(verify_rejected_revoked, "client certificates refused: revoked by a CRL") \
    X(verify_rejected_crl, "client certificates refused: CRL missing or out of date") \
    X(verify_rejected_usage, "client certificates refused: EKU, key usage or CA flags") \
    X(verify_rejected_self_signed, "client certificates refused: self-signed") \
    X(verify_rejected_weak_key, "client certificates refused: key too small") \
    X(verify_rejected_depth, "client certificates refused: chain too long") \
    X(verify_rejected_malformed, "client certificates refused: malformed") \
    X(upstream_requests, "requests forwarded to the upstream (--upstream)") \
    X(upstream_responses_1xx_2xx, "upstream responses with status 1xx (101 refused) or 2xx") \
    X(upstream_responses_3xx, "upstream responses with status 3xx") \
    X(upstream_responses_4xx, "upstream responses with status 4xx") \
    X(upstream_responses_5xx, "upstream responses with status 5xx") \
    X(upstream_connect_failures, "upstream connections refused, failed or timed out (502)") \
    X(upstream_timeouts, "requests answered 504: no response head within --upstream-timeout") \
    X(upstream_resets, "upstream connections closed mid-response (client connection closed)") \
    X(upstream_malformed, "malformed upstream responses (502, or client closed mid-body)") \
    X(upstream_retries, "requests retried on a new connection after a reused one closed") \
    X(upstream_reused, "requests sent on a reused keep-alive upstream connection") \
    X(upstream_connections_open, "upstream connections currently open") \
    X(upstream_connections_idle, "upstream connections currently idle in the keep-alive pool") \
    X(reloads, "successful SIGHUP reloads") \
    X(reload_failures, "SIGHUP reloads that failed (old material kept)")

struct mtls_metrics {
#define X(name, help) uint64_t name;
    MTLS_METRICS(X)
#undef X
    /* A high-water mark, not a counter: /metrics shows the largest over
     * the workers (mtlsd_paused_input_peak_bytes). */
    uint64_t paused_input_peak;
} __attribute__((aligned(64)));

/* Raises a worker's high-water mark (only its worker writes it). */
#define METRIC_PEAK(m, field, v)                                                  \
    do {                                                                          \
        uint64_t v_ = (v);                                                        \
        if (v_ > __atomic_load_n(&(m)->field, __ATOMIC_RELAXED))                  \
            __atomic_store_n(&(m)->field, v_, __ATOMIC_RELAXED);                  \
    } while (0)

#define METRIC_ADD(m, field, n) __atomic_fetch_add(&(m)->field, (n), __ATOMIC_RELAXED)
#define METRIC_INC(m, field) METRIC_ADD(m, field, 1)
#define METRIC_DEC(m, field) __atomic_fetch_sub(&(m)->field, 1, __ATOMIC_RELAXED)

/* Process-wide counters (written off the request path). */
extern uint64_t mtls_ticket_key_rotations;

/* Registers a worker's counters before the workers start. */
void mtls_metrics_register(struct mtls_metrics *m);
/* The I/O backend that serves (a static string), shown by /metrics. */
void mtls_metrics_set_io_backend(const char *name);
/* Who signs with the server key in service (--key-signer), a static string. */
void mtls_metrics_set_key_signer(const char *name);
/* Prometheus text exposition of the sums. */
int mtls_metrics_render(struct mtls_buf *out);
/* The sum over workers of the counter at `offset` in struct mtls_metrics. */
uint64_t mtls_metrics_sum(size_t offset);
/* One log line with the verified-chain cache and refusal counters (on
 * SIGHUP and at exit). */
void mtls_metrics_log_identity(void);

#endif
