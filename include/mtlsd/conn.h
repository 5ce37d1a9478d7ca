/* One TLS connection: its state machine, its buffers and its share of the
 * ring. Data flows one way: ring -> tls -> http -> handler -> tls -> ring. */
#ifndef MTLSD_CONN_H
#define MTLSD_CONN_H

#include "mtlsd/buf.h"
#include "mtlsd/handler.h"
#include "mtlsd/http.h"
#include "mtlsd/tls.h"
#include "mtlsd/worker.h"

#include <stdbool.h>
#include <stdint.h>

enum mtls_conn_state {
    MTLS_CONN_HANDSHAKE,   /* TLS handshake in progress */
    MTLS_CONN_ACTIVE,      /* serving requests */
    MTLS_CONN_CLOSING,     /* sending what is queued, then linger */
    MTLS_CONN_LINGER,      /* write side shut; reading until EOF so the peer
                              gets our last response instead of a RST */
    MTLS_CONN_DEAD,        /* closed; freed once the ring holds no op of it */
};

struct mtls_conn {
    struct mtls_worker *w;
    int fd;
    enum mtls_conn_state state;
    uint8_t refs;          /* ops in the ring that name this connection */
    bool recv_armed;
    bool send_inflight;
    bool paused;           /* output backlog: input waits */
    bool held;             /* the handler holds input (request body back-pressure) */
    bool peer_eof;         /* the peer has shut its side */
    enum mtls_timer timer;
    uint64_t deadline_ms;
    uint64_t born_ms;
    struct mtls_link timer_link;       /* in the worker's list for `timer` */
    struct mtls_link all_link;         /* in the worker's list of all */
    struct mtls_conn *reap_next;       /* in the worker's reap list */
    struct mtls_tls tls;
    struct mtls_http http;
    struct mtls_exchange x;       /* the request being answered */
    struct mtls_http_request req; /* its head, for the access log */
    struct mtls_peer peer;
    struct mtls_buf out_flight;   /* the kernel's until the send completes */
    size_t flight_sent;
    struct mtls_buf out_pending;  /* ciphertext for the next send */
    struct mtls_buf in_left;      /* ciphertext kept while paused */
    struct mtls_buf plain_left;   /* plaintext kept while paused */
};

/* Settings shared by every connection; once, before any worker starts. */
void mtls_conn_configure(const struct mtls_conn_settings *s);
/* Takes ownership of an accepted socket; NULL (socket closed) on failure. */
struct mtls_conn *mtls_conn_new(struct mtls_worker *w, int fd);
void mtls_conn_on_recv(struct mtls_conn *c, int res, unsigned flags);
void mtls_conn_on_send(struct mtls_conn *c, int res);
void mtls_conn_on_timeout(struct mtls_conn *c);
/* Graceful stop: idle connections close now, busy ones after their answer. */
void mtls_conn_drain(struct mtls_conn *c);
/* Abortive close. Never frees: the worker reaps when no op is left. */
void mtls_conn_close(struct mtls_conn *c, const char *why);
void mtls_conn_free(struct mtls_conn *c);

#endif
