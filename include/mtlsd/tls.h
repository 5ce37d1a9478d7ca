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

struct mtls_tls;       /* one connection's TLS state: private to the TLS part
                          (tls.c, tickets.c, sessions.c: tls_internal.h) */

int mtls_tls_ctx_new(struct mtls_tls_ctx **out, const struct mtls_config *cfg, char *err,
                     size_t errlen);
void mtls_tls_ctx_free(struct mtls_tls_ctx *ctx);
/* SIGHUP: server certificate and key, --client-ca, --crl. New handshakes
 * use the new material; established connections are untouched. On failure
 * the old material stays and `err` says why. */
int mtls_tls_ctx_reload(struct mtls_tls_ctx *ctx, char *err, size_t errlen);

/* 0 or -ENOMEM. `out` must stay at the same address for the connection's
 * life; `metrics` gets the connection's ticket counters. */
int mtls_tls_new(struct mtls_tls **t, struct mtls_tls_ctx *ctx, struct mtls_buf *out,
                 struct mtls_metrics *metrics);
void mtls_tls_free(struct mtls_tls *t);

/* Lends ciphertext to the next handshake or read (NULL, 0: take it back). */
void mtls_tls_feed(struct mtls_tls *t, const uint8_t *p, size_t n);
/* The part of the lent ciphertext not consumed yet. */
size_t mtls_tls_unread(const struct mtls_tls *t, const uint8_t **p);

/* `why` gets a static description on MTLS_TLS_ERROR. On MTLS_TLS_OK, the
 * identity is set (fail closed otherwise) and mtls_tls_resume_kind() says
 * how the handshake went. */
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
enum mtls_tls_resume mtls_tls_resume_kind(const struct mtls_tls *t);
/* The verified client identity (NULL: none), valid for the connection's life. */
const struct mtls_identity *mtls_tls_identity(const struct mtls_tls *t);
/* The client sent a certificate; the identity came from the chain cache. */
bool mtls_tls_cert_presented(const struct mtls_tls *t);
bool mtls_tls_chain_cached(const struct mtls_tls *t);
/* The handshake failed on the server's own signature (--key-signer
 * openssl), not on anything the client did. */
bool mtls_tls_sign_failed(const struct mtls_tls *t);

/* The first bytes of a connection: not a TLS handshake record but what an
 * HTTP method looks like (plain HTTP sent to the TLS port). */
bool mtls_tls_looks_like_http(const uint8_t *p, size_t n);

/* For --version: library version and speed-ups built in. */
void mtls_tls_describe(FILE *f);

#endif
