/* One connection's TLS state, private to the TLS part: tls.c (the adapter),
 * tickets.c and sessions.c (resumption). Everything else uses the functions
 * of tls.h; verify.c returns a struct mtls_verify_result that tls.c applies.
 * tests/include_rules.sh keeps it that way. */
#ifndef MTLSD_TLS_INTERNAL_H
#define MTLSD_TLS_INTERNAL_H

#include "mtlsd/tls.h"

#include <stdbool.h>
#include <stdint.h>

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
    bool sign_failed;                 /* --key-signer openssl could not sign */
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

#endif
