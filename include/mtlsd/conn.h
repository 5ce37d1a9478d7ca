/* One TLS connection: its state machine and its buffers. Data flows one
 * way: io -> tls -> http -> exchange -> handler -> tls -> io. The I/O backend
 * is reached only through mtls_io_* (include/mtlsd/io.h); the worker only
 * through the struct mtls_conn_env it hands over. */
#ifndef MTLSD_CONN_H
#define MTLSD_CONN_H

#include "mtlsd/buf.h"
#include "mtlsd/handler.h"
#include "mtlsd/http.h"
#include "mtlsd/io.h"
#include "mtlsd/list.h"
#include "mtlsd/metrics.h"
#include "mtlsd/tls.h"

#include <stdbool.h>
#include <stdint.h>

enum mtls_conn_state {
    MTLS_CONN_HANDSHAKE,   /* TLS handshake in progress */
    MTLS_CONN_ACTIVE,      /* serving requests */
    MTLS_CONN_CLOSING,     /* sending what is queued, then linger */
    MTLS_CONN_LINGER,      /* write side shut; reading until EOF so the peer
                              gets our last response instead of a RST */
    MTLS_CONN_DEAD,        /* closed; freed by on_closed once the backend
                              holds no operation of it */
};

/* What the connections of one worker share. The worker fills the first
 * part at init and sets `stopping`; the rest is conn.c's own. */
struct mtls_conn_env {
    struct mtls_io *io;
    unsigned worker_id;
    struct mtls_tls_ctx *tls;
    struct mtls_http_limits limits;
    struct mtls_metrics *metrics;
    uint64_t max_lifetime_ms;      /* --max-conn-lifetime; 0: unbounded */
    size_t in_left_max;            /* input kept while paused */
    size_t kept_max;               /* --buffer-budget */
    bool stopping;                 /* graceful stop: answers say close */

    struct mtls_list all;          /* every connection not yet freed */
    unsigned nopen;                /* open (not closed) connections */
    size_t kept;                   /* buffers the open connections keep */
    uint8_t *plain;                /* scratch: decrypted bytes */
    size_t plain_cap;
    struct mtls_buf resp;          /* scratch: response being framed */
    struct mtls_buf alog;          /* access log lines of this batch */
    struct mtls_buf_pool out_pool; /* recycled output buffers (conn.c buf_put) */
    unsigned hs_live;              /* handshakes in progress */
    bool hs_forced;                /* one started beyond HS_LIVE_MAX this iteration */
    struct mtls_list hs_wait;      /* first bytes in, handshake not started */
    struct mtls_buf_pool http_pool; /* recycled request buffers (http.h) */
};

struct mtls_conn {
    struct mtls_io_sock io;        /* first: the backend's handle */
    struct mtls_conn_env *env;
    enum mtls_conn_state state;
    bool paused;           /* output backlog: input waits */
    bool held;             /* the handler holds input (request body back-pressure) */
    bool peer_eof;         /* the peer has shut its side */
    bool pending_answers;  /* out_pending holds an answer to a request */
    bool flight_answers;   /* so does the flight being sent */
    size_t unsolicited;    /* bytes TLS wrote by itself since the last answer */
    bool first_seen;       /* the first bytes were checked for plain HTTP */
    bool reading_ahead;    /* paused for a later answer, the receive still on */
    char addr[48];         /* the peer's address for handlers; "": not looked up */
    uint64_t born_ms;
    size_t kept;                   /* its share of env->kept */
    struct mtls_link all_link;     /* in env->all */
    struct mtls_link hs_wait_link; /* in env->hs_wait while `hs_waiting` */
    bool hs_waiting;
    bool hs_live;                  /* counted in env->hs_live */
    struct mtls_tls *tls;         /* private to the TLS part: tls.h */
    struct mtls_http http;
    struct mtls_exchange x;       /* the request being answered */
    struct mtls_http_request req; /* its head, for the access log */
    struct mtls_peer peer;
    struct mtls_buf out_flight;   /* the backend's until on_sent */
    struct mtls_buf out_pending;  /* ciphertext for the next send */
    struct mtls_buf in_left;      /* ciphertext kept while paused */
    struct mtls_buf plain_left;   /* plaintext kept while paused */
};

/* Scratch buffers; 0 or -1 (out of memory). */
int mtls_conn_env_init(struct mtls_conn_env *env);
/* Worker teardown, after the backend is gone: frees every connection. */
void mtls_conn_env_free(struct mtls_conn_env *env);
/* Takes ownership of an accepted socket; NULL (socket closed) on failure. */
struct mtls_conn *mtls_conn_new(struct mtls_conn_env *env, int fd);
/* End of a loop iteration: starts the handshakes that waited for one.
 * True while some still wait (the next wait must end within 1 ms). */
bool mtls_conn_env_tick(struct mtls_conn_env *env);
/* Graceful stop: idle connections close now, busy ones after their answer. */
void mtls_conn_drain_all(struct mtls_conn_env *env);
/* Abortive close of every connection (grace period over). */
void mtls_conn_close_all(struct mtls_conn_env *env, const char *why);
/* Abortive close. Never frees: on_closed does, once nothing is in flight. */
void mtls_conn_close(struct mtls_conn *c, const char *why);

#endif
