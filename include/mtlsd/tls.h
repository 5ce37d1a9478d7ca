/* The TLS adapter: wolfSSL over buffers the application owns. wolfSSL never
 * touches a socket: ciphertext comes in through mtls_tls_feed() and goes out
 * by being appended to the connection's output buffer. */
#ifndef MTLSD_TLS_H
#define MTLSD_TLS_H

#include "mtlsd/buf.h"
#include "mtlsd/config.h"
#include "mtlsd/identity.h"
#include "mtlsd/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct mtls_tls_ctx;   /* shared, read-only after start: WOLFSSL_CTX + policy */

enum mtls_tls_status {
    MTLS_TLS_OK,        /* handshake finished / data read */
    MTLS_TLS_AGAIN,     /* needs more ciphertext */
    MTLS_TLS_CLOSED,    /* peer sent close_notify */
    MTLS_TLS_ERROR,     /* fatal; an alert may be queued in the output */
};

/* How a handshake ended (after MTLS_TLS_OK). */
enum mtls_tls_resume {
    MTLS_RESUME_NONE,            /* full handshake */
    MTLS_RESUME_TLS13_TICKET,
    MTLS_RESUME_TLS12_TICKET,
    MTLS_RESUME_TLS12_SESSION_ID,
};

struct mtls_metrics;

struct mtls_tls {
    void *ssl;                        /* WOLFSSL*, opaque above this layer */
    const uint8_t *in;                /* ciphertext not yet consumed */
    size_t in_len;
    struct mtls_buf *out;             /* ciphertext to send */
    struct mtls_identity *identity;   /* set by the verify callback; after a
                                         resumed handshake, the one restored
                                         from the ticket or session cache */
    const char *verify_error;         /* why the presented chain was refused */
    struct mtls_metrics *metrics;     /* the worker's counters */
    int client_auth;                  /* enum mtls_client_auth */
    bool cert_presented;
    bool chain_cached;                /* identity came from the chain cache */
    /* Resumption state (tickets.c, sessions.c). The identity a ticket or a
     * cached session carried is kept apart until the handshake ends: wolfSSL
     * may still decide on a full handshake after our callback accepted it,
     * and then only the verify callback's identity counts. */
    struct mtls_identity *ticket_identity;
    uint64_t ticket_trust;            /* trust id it was verified under */
    int64_t ticket_auth_time;         /* when that full handshake happened */
    enum mtls_tls_resume ticket_kind; /* where it came from */
    uint64_t ticket_tag;              /* MAC prefix of the accepted ticket */
    uint64_t generation;              /* trust generation and id when this */
    uint64_t trust_id;                /* connection started: a reload during
                                         the handshake makes its tickets
                                         unusable (mtls_verify_trust_id) */
    int64_t auth_time;                /* full handshake: its time; resumed: the
                                         original full handshake's */
    bool ticket_refused;              /* a refusal was counted already */
    enum mtls_tls_resume resumed;
};

int mtls_tls_ctx_new(struct mtls_tls_ctx **out, const struct mtls_config *cfg, char *err,
                     size_t errlen);
void mtls_tls_ctx_free(struct mtls_tls_ctx *ctx);
/* SIGHUP: server certificate and key, --client-ca, --crl. New handshakes
 * use the new material; established connections are untouched. On failure
 * the old material stays and `err` says why. */
int mtls_tls_ctx_reload(struct mtls_tls_ctx *ctx, char *err, size_t errlen);

/* 0 or -ENOMEM. `out` must stay at the same address for the connection's
 * life; `metrics` gets the connection's ticket counters. */
int mtls_tls_new(struct mtls_tls *t, struct mtls_tls_ctx *ctx, struct mtls_buf *out,
                 struct mtls_metrics *metrics);
void mtls_tls_free(struct mtls_tls *t);

static inline void mtls_tls_feed(struct mtls_tls *t, const uint8_t *p, size_t n)
{
    t->in = p;
    t->in_len = n;
}

/* `why` gets a static description on MTLS_TLS_ERROR. On MTLS_TLS_OK,
 * t->identity is set (fail closed otherwise) and t->resumed says how. */
enum mtls_tls_status mtls_tls_handshake(struct mtls_tls *t, const char **why);
/* Reads plaintext: *n > 0 with MTLS_TLS_OK; MTLS_TLS_AGAIN once the fed
 * ciphertext and wolfSSL's own buffer are exhausted. */
enum mtls_tls_status mtls_tls_read(struct mtls_tls *t, uint8_t *buf, size_t cap, size_t *n);
/* Encrypts into the output buffer: 0, or -1 (connection must close). */
int mtls_tls_write(struct mtls_tls *t, const void *p, size_t n);
/* Queues close_notify. */
void mtls_tls_close_notify(struct mtls_tls *t);

const char *mtls_tls_version_name(const struct mtls_tls *t);
const char *mtls_tls_cipher_name(const struct mtls_tls *t);
bool mtls_tls_resumed(const struct mtls_tls *t);

/* The first bytes of a connection: not a TLS handshake record but what an
 * HTTP method looks like (plain HTTP sent to the TLS port). */
bool mtls_tls_looks_like_http(const uint8_t *p, size_t n);

/* For --version: library version and speed-ups built in. */
void mtls_tls_describe(FILE *f);

#endif
