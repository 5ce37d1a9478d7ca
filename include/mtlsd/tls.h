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

struct mtls_tls {
    void *ssl;                        /* WOLFSSL*, opaque above this layer */
    const uint8_t *in;                /* ciphertext not yet consumed */
    size_t in_len;
    struct mtls_buf *out;             /* ciphertext to send */
    struct mtls_identity *identity;   /* set by the verify callback */
    const char *verify_error;         /* why the presented chain was refused */
    struct mtls_metrics *metrics;     /* the worker's counters */
    int client_auth;                  /* enum mtls_client_auth */
    bool cert_presented;
    bool chain_cached;                /* identity came from the chain cache */
};

int mtls_tls_ctx_new(struct mtls_tls_ctx **out, const struct mtls_config *cfg, char *err,
                     size_t errlen);
void mtls_tls_ctx_free(struct mtls_tls_ctx *ctx);
/* SIGHUP: server certificate and key, --client-ca, --crl. New handshakes
 * use the new material; established connections are untouched. On failure
 * the old material stays and `err` says why. */
int mtls_tls_ctx_reload(struct mtls_tls_ctx *ctx, char *err, size_t errlen);

/* 0 or -ENOMEM. `out` must stay at the same address for the connection's life. */
int mtls_tls_new(struct mtls_tls *t, struct mtls_tls_ctx *ctx, struct mtls_buf *out);
void mtls_tls_free(struct mtls_tls *t);

static inline void mtls_tls_feed(struct mtls_tls *t, const uint8_t *p, size_t n)
{
    t->in = p;
    t->in_len = n;
}

/* `why` gets a static description on MTLS_TLS_ERROR. */
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

/* For --version: library version and speed-ups built in. */
void mtls_tls_describe(FILE *f);

#endif
