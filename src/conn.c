/* conn.c: the per-connection state machine.
 *
 * Rules that keep it safe:
 * - a connection is never freed inside its own callbacks: mtls_conn_close()
 *   marks it DEAD and the I/O backend calls on_closed once no operation
 *   names it (io.c counts them);
 * - the ciphertext being sent (out_flight) belongs to the backend until
 *   on_sent; new output goes to out_pending;
 * - received bytes are lent for the duration of on_recv: bytes that cannot
 *   be processed yet are copied to in_left. */
#include "mtlsd/conn.h"
#include "mtlsd/log.h"
#include "mtlsd/handler.h"
#include "mtlsd/response.h"
#include "mtlsd/access_log.h"
#include "mtlsd/clock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


/* Output backlog bounds: above HIGH the connection stops parsing input (a
 * pipelining client that does not read its responses); below LOW it goes on. */
#define OUT_HIGH (256u * 1024)
#define OUT_LOW (64u * 1024)
/* Output TLS writes on its own while reading (a KeyUpdate asking for one
 * back gets a 27-byte record), allowed between two answered requests: a
 * client that sends nothing but KeyUpdates is closed after ~150. */
#define UNSOLICITED_MAX 4096u
/* Input read ahead while an answer comes later (conn_wait); past it the
 * receive stops until the answer is out. */
#define READ_AHEAD_MAX (16u * 1024)
/* Handshakes in progress per worker (conn_tls_start). */
#define HS_LIVE_MAX 64u
static void conn_hs_unwait(struct mtls_conn *c);
static void conn_hs_end(struct mtls_conn *c);
static void conn_flush(struct mtls_conn *c);
static void buf_get(struct mtls_conn_env *env, struct mtls_buf *b);
static void conn_pump(struct mtls_conn *c);
static void conn_pause(struct mtls_conn *c);
static void conn_wait(struct mtls_conn *c);
static void conn_finish(struct mtls_conn *c, bool notify);
static void conn_resume(struct mtls_conn *c);
static void conn_account(struct mtls_conn *c);
static const struct mtls_io_handler conn_io;
static void conn_log(struct mtls_conn *c, const struct mtls_http_request *req,
                     const struct mtls_peer *peer, int status, size_t bytes);

/* The exchange's view of the connection (handler.h). */
static int exchange_write(struct mtls_exchange *x, const void *p, size_t n)
{
    struct mtls_conn *c = x->owner;

    if (c->state == MTLS_CONN_DEAD)
        return -1;
    if (c->out_pending.cap == 0)
        buf_get(c->env, &c->out_pending);
    /* An answer (or part of one, streamed): its send restarts the idle
     * timer, and TLS output of its own is counted from here. */
    c->pending_answers = true;
    c->unsolicited = 0;
    if (mtls_tls_write(c->tls, p, n) < 0)
        return -1;
    /* Answered later (from an upstream's callback): nothing else sends it. */
    if (x->pending)
        conn_flush(c);
    return 0;
}

static void exchange_end(struct mtls_exchange *x, int status)
{
    struct mtls_conn *c = x->owner;

    if (status == 403)
        METRIC_INC(c->env->metrics, forbidden);
    if (mtls_access_log_enabled())
        conn_log(c, &c->req, &c->peer, status, x->bytes);
    bool later = x->pending;

    x->pending = false;
    c->held = false;
    if (!later || c->state != MTLS_CONN_ACTIVE)
        return; /* answered at once: conn_http goes on */
    /* Answered later: the input that waited is parsed now. */
    if (x->close)
        conn_finish(c, true);
    else if (c->out_pending.len + c->out_flight.len < OUT_HIGH)
        conn_resume(c);
    conn_flush(c);
}

static size_t exchange_backlog(struct mtls_exchange *x)
{
    struct mtls_conn *c = x->owner;
    return c->out_pending.len + c->out_flight.len;
}

static void exchange_hold_input(struct mtls_exchange *x, bool hold)
{
    struct mtls_conn *c = x->owner;

    if (c->state != MTLS_CONN_ACTIVE || hold == c->held)
        return;
    c->held = hold;
    if (hold) {
        conn_pause(c);
    } else if (c->paused && !x->pending && c->out_pending.len + c->out_flight.len < OUT_HIGH) {
        conn_resume(c);
        conn_flush(c);
    }
}

static void exchange_kill(struct mtls_exchange *x, const char *why)
{
    struct mtls_conn *c = x->owner;

    /* What was already queued goes out (the client sees exactly the part
     * that came), then the connection closes without close_notify: the
     * truncation shows. */
    log_debug("worker %u: fd %d: %s: closing", c->env->worker_id, c->io.fd, why);
    conn_finish(c, false);
}

static void exchange_peer_addr(struct mtls_exchange *x, char *buf, size_t len)
{
    struct mtls_conn *c = x->owner;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    /* Once per connection: every proxied request asks (X-Forwarded-For). */
    if (!c->addr[0] && getpeername(c->io.fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->addr,
                      sizeof(c->addr));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->addr,
                      sizeof(c->addr));
    }
    size_t n = strnlen(c->addr, sizeof(c->addr));
    if (len == 0)
        return;
    if (n >= len)
        n = len - 1;
    memcpy(buf, c->addr, n);
    buf[n] = '\0';
}

static const struct mtls_exchange_ops exchange_ops = {
    exchange_write, exchange_end, exchange_backlog, exchange_hold_input, exchange_kill,
    exchange_peer_addr,
};

static int conn_on_body(void *ctx, const uint8_t *p, size_t n)
{
    return mtls_exchange_body(&((struct mtls_conn *)ctx)->x, p, n);
}

static struct mtls_conn *conn_of(struct mtls_io_sock *s)
{
    return mtls_container_of(s, struct mtls_conn, io);
}

int mtls_conn_env_init(struct mtls_conn_env *env)
{
    /* A few ordinary-sized output buffers, and more small ones: with many
     * keep-alive connections answered in one batch, each flight holds one
     * until its send completes, and a pool of 8 made every request beyond
     * the eighth malloc and free its own (~300 instructions). */
    env->out_pool = (struct mtls_buf_pool){
        .few = 8, .few_cap = 64 * 1024, .max = MTLS_BUF_POOL_MAX, .max_cap = 2048};
    env->http_pool = (struct mtls_buf_pool)MTLS_HTTP_POOL_INIT;
    env->plain_cap = 16384 + 256;
    env->plain = malloc(env->plain_cap);
    return env->plain ? 0 : -1;
}

/* Output buffers: an idle connection keeps none, the worker a few. */
static void buf_get(struct mtls_conn_env *env, struct mtls_buf *b)
{
    mtls_buf_pool_get(&env->out_pool, b);
}

static void buf_put(struct mtls_conn_env *env, struct mtls_buf *b)
{
    mtls_buf_pool_put(&env->out_pool, b);
}

struct mtls_conn *mtls_conn_new(struct mtls_conn_env *env, int fd)
{
    struct mtls_conn *c = calloc(1, sizeof(*c));

    if (!c) {
        close(fd);
        return NULL;
    }
    c->env = env;
    mtls_io_attach(env->io, &c->io, fd, &conn_io);
    c->born_ms = mtls_io_now_ms(env->io);
    mtls_http_init(&c->http, &env->limits);
    mtls_http_set_body(&c->http, conn_on_body, c);
    mtls_http_set_pool(&c->http, &env->http_pool);
    c->x.ops = &exchange_ops;
    c->x.owner = c;
    c->x.scratch = &env->resp;
    c->state = MTLS_CONN_HANDSHAKE;
    mtls_list_push_back(&env->all, &c->all_link);
    env->nopen++;
    METRIC_INC(env->metrics, connections_open);
    mtls_io_timer_set(&c->io, MTLS_TIMER_HANDSHAKE);
    mtls_io_recv_start(&c->io);
    return c;
}

static void conn_free(struct mtls_conn *c)
{
    conn_hs_unwait(c);
    conn_hs_end(c);
    c->env->kept -= c->kept;
    mtls_list_unlink(&c->env->all, &c->all_link);
    mtls_io_discard(&c->io);
    mtls_tls_free(c->tls);
    c->tls = NULL;
    mtls_http_free(&c->http);
    mtls_buf_free(&c->out_flight);
    mtls_buf_free(&c->out_pending);
    mtls_buf_free(&c->in_left);
    mtls_buf_free(&c->plain_left);
    free(c);
}

static void conn_on_closed(struct mtls_io_sock *s)
{
    conn_free(conn_of(s));
}

void mtls_conn_env_free(struct mtls_conn_env *env)
{
    struct mtls_link *l;

    while ((l = env->all.head))
        conn_free(mtls_container_of(l, struct mtls_conn, all_link));
    mtls_buf_pool_free(&env->out_pool);
    mtls_buf_pool_free(&env->http_pool);
    mtls_buf_free(&env->resp);
    mtls_buf_free(&env->alog);
    free(env->plain);
    env->plain = NULL;
}

void mtls_conn_close(struct mtls_conn *c, const char *why)
{
    struct mtls_conn_env *env = c->env;

    if (c->state == MTLS_CONN_DEAD)
        return;
    if (why)
        log_debug("worker %u: closing fd %d: %s", env->worker_id, c->io.fd, why);
    c->state = MTLS_CONN_DEAD;
    /* Its buffers are freed with it soon: no longer counted. */
    env->kept -= c->kept;
    c->kept = 0;
    mtls_exchange_abort(&c->x); /* a handler still answering lets go */
    env->nopen--;
    METRIC_DEC(env->metrics, connections_open);
    mtls_io_close(&c->io);
}

static struct mtls_conn *conn_of_all(struct mtls_link *l)
{
    return l ? mtls_container_of(l, struct mtls_conn, all_link) : NULL;
}

/* The worker's budget for buffers kept between events (--buffer-budget):
 * many connections each within its own bounds (output backlog, input kept
 * while paused) could still add up to more than the machine has. Past the
 * budget, the connection keeping the most is closed: it is the one
 * pipelining without reading, not the many small ones. Called after each
 * event that may have grown or shrunk c's buffers. */
static void conn_account(struct mtls_conn *c)
{
    struct mtls_conn_env *env = c->env;
    size_t kept = 0;

    /* A handshake's flights are bounded by TLS and its timeout; what a
     * client can pile up comes after it. */
    if (c->state != MTLS_CONN_DEAD && c->state != MTLS_CONN_HANDSHAKE)
        kept = c->in_left.cap + c->plain_left.cap + c->out_pending.cap + c->out_flight.cap;
    env->kept = env->kept - c->kept + kept;
    c->kept = kept;
    while (env->kept > env->kept_max) {
        struct mtls_conn *g = NULL, *it;

        for (it = conn_of_all(env->all.head); it; it = conn_of_all(it->all_link.next))
            if (it->kept && (!g || it->kept > g->kept))
                g = it;
        if (!g)
            break;
        METRIC_INC(env->metrics, buffer_budget_closes);
        log_info("worker %u: buffers over --buffer-budget (%zu bytes): closing fd %d, which "
                 "keeps %zu",
                 env->worker_id, env->kept, g->io.fd, g->kept);
        mtls_conn_close(g, "over the worker's buffer budget");
    }
}

/* Start the orderly end: what is queued goes out, then linger. */
static void conn_finish(struct mtls_conn *c, bool notify)
{
    if (c->state == MTLS_CONN_DEAD || c->state == MTLS_CONN_CLOSING ||
        c->state == MTLS_CONN_LINGER)
        return;
    if (notify && c->tls)
        mtls_tls_close_notify(c->tls);
    c->state = MTLS_CONN_CLOSING;
    if (c->paused) {
        /* Reading again (and discarding): linger needs to see the EOF. */
        c->paused = false;
        mtls_io_recv_start(&c->io);
    }
    conn_flush(c);
}

static void conn_linger(struct mtls_conn *c)
{
    /* Half-close and keep reading: closing with unread input would make
     * the kernel send a RST that can destroy our last response in flight. */
    if (c->peer_eof || !mtls_io_receiving(&c->io) || mtls_io_shutdown_write(&c->io) < 0) {
        mtls_conn_close(c, "closed");
        return;
    }
    c->state = MTLS_CONN_LINGER;
    mtls_io_timer_set(&c->io, MTLS_TIMER_LINGER);
}

static void conn_flush(struct mtls_conn *c)
{
    struct mtls_buf tmp;

    if (c->state == MTLS_CONN_DEAD || mtls_io_sending(&c->io))
        return;
    if (c->out_pending.len == 0) {
        if (c->state == MTLS_CONN_CLOSING)
            conn_linger(c);
        return;
    }
    /* Swap: the pending bytes become the flight, the spent flight buffer
     * (or a recycled one) takes new output. */
    tmp = c->out_flight;
    c->out_flight = c->out_pending;
    c->out_pending = tmp;
    c->out_pending.len = 0;
    c->flight_answers = c->pending_answers;
    c->pending_answers = false;
    mtls_io_send(&c->io, c->out_flight.data, c->out_flight.len);
}

static void conn_pause(struct mtls_conn *c)
{
    c->paused = true;
    c->reading_ahead = false;
    mtls_io_recv_stop(&c->io);
}

/* Input waits for an answer that comes later (an upstream's), but the
 * receive stays on: a keep-alive client sends nothing until it has its
 * answer, and stopping and restarting the receive for each request costs
 * a cancel and a new receive (io_uring) or two epoll_ctl calls. What does
 * arrive is kept in in_left, up to READ_AHEAD_MAX (conn_input). */
static void conn_wait(struct mtls_conn *c)
{
    c->paused = true;
    c->reading_ahead = true;
}

static void conn_log(struct mtls_conn *c, const struct mtls_http_request *req,
                     const struct mtls_peer *peer, int status, size_t bytes)
{
    struct mtls_conn_env *env = c->env;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN + 8] = "-", host[INET6_ADDRSTRLEN];
    struct mtls_access a;

    /* Looked up per logged request: keeping it would cost every idle
     * connection memory even with the log off. */
    if (getpeername(c->io.fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
            snprintf(addr, sizeof(addr), "%s:%u", host, ntohs(v4->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
            snprintf(addr, sizeof(addr), "[%s]:%u", host, ntohs(v6->sin6_port));
        }
    }
    uint64_t now_us = mtls_mono_us();
    memset(&a, 0, sizeof(a));
    a.client = addr;
    a.identity = peer->identity;
    a.tls_version = peer->tls_version;
    a.resumed = peer->resumed;
    a.method = req->method_name;
    a.target = req->target;
    a.target_len = req->target_len;
    a.status = status;
    a.bytes = bytes;
    uint64_t batch_us = mtls_io_now_us(env->io);
    a.usec = (unsigned long)(now_us > batch_us ? now_us - batch_us : 0);
    a.upstream_status = c->x.upstream_status;
    a.upstream_usec = c->x.upstream_usec;
    mtls_access_log_format(&env->alog, &a);
}

/* Feeds plaintext to the HTTP parser and answers each complete request.
 * Returns false when the caller must stop (closing, or paused; then the
 * unparsed rest is kept in plain_left). */
static bool conn_http(struct mtls_conn *c, const uint8_t *p, size_t n)
{
    struct mtls_conn_env *env = c->env;
    struct mtls_http_request req;
    size_t used;
    int status = 0;

    for (;;) {
        enum mtls_http_result r = mtls_http_parse(&c->http, p, n, &used, &req, &status);
        p += used;
        n -= used;
        if (r == MTLS_HTTP_NEED_MORE)
            return true;
        env->resp.len = 0;
        if (r == MTLS_HTTP_ERROR) {
            mtls_exchange_abort(&c->x);
            METRIC_INC(env->metrics, bad_requests);
            log_debug("worker %u: fd %d: bad request, answering %d", env->worker_id, c->io.fd,
                      status);
            if (mtls_response_error(status, &env->resp) < 0 ||
                mtls_tls_write(c->tls, env->resp.data, env->resp.len) < 0) {
                mtls_conn_close(c, "cannot write error response");
                return false;
            }
            conn_finish(c, true);
            return false;
        }
        if (r == MTLS_HTTP_HEAD) {
            /* Authorization and the handler, once per request. */
            c->peer.identity = mtls_tls_identity(c->tls);
            c->peer.chain_cached = mtls_tls_chain_cached(c->tls);
            c->peer.tls_version = mtls_tls_version_name(c->tls);
            c->peer.cipher = mtls_tls_cipher_name(c->tls);
            c->peer.worker = env->worker_id;
            c->peer.resumed = mtls_tls_resumed(c->tls);
            if (mtls_exchange_head(&c->x, &req, &c->peer) < 0) {
                mtls_conn_close(c, "handler failed");
                return false;
            }
            continue;
        }
        /* --max-conn-lifetime: the answer closes an old connection. */
        bool closing = !req.keep_alive || env->stopping ||
                       (env->max_lifetime_ms &&
                        mtls_io_now_ms(env->io) - c->born_ms >= env->max_lifetime_ms);
        METRIC_INC(env->metrics, requests);
        c->req = req;
        enum mtls_handler_result hr = mtls_exchange_request(&c->x, &req, closing);
        if (hr == MTLS_HANDLER_FAIL) {
            mtls_conn_close(c, "cannot write response");
            return false;
        }
        if (hr == MTLS_HANDLER_PENDING && c->x.pending) {
            /* Input waits for the answer (pipelined answers stay in order). */
            if (n && mtls_buf_append(&c->plain_left, p, n) < 0) {
                mtls_conn_close(c, "out of memory");
                return false;
            }
            conn_wait(c);
            return false;
        }
        if (closing) {
            conn_finish(c, true);
            return false;
        }
        if (c->out_pending.len + c->out_flight.len >= OUT_HIGH) {
            if (n && mtls_buf_append(&c->plain_left, p, n) < 0) {
                mtls_conn_close(c, "out of memory");
                return false;
            }
            conn_pause(c);
            return false;
        }
    }
}

/* Runs the TLS state machine on whatever ciphertext was fed. */
static void conn_pump(struct mtls_conn *c)
{
    struct mtls_conn_env *env = c->env;
    enum mtls_tls_status st;
    const char *why = NULL;
    size_t n;

    if (c->state == MTLS_CONN_HANDSHAKE) {
        st = mtls_tls_handshake(c->tls, &why);
        if (st == MTLS_TLS_AGAIN)
            return;
        if (st != MTLS_TLS_OK) {
            METRIC_INC(env->metrics, handshakes_failed);
            if (!mtls_tls_cert_presented(c->tls) && !mtls_tls_sign_failed(c->tls))
                METRIC_INC(env->metrics, verify_rejected_no_cert);
            log_info("worker %u: handshake failed: %s", env->worker_id, why ? why : "unknown");
            /* wolfSSL queued an alert: send it, then close. */
            conn_finish(c, false);
            return;
        }
        switch (mtls_tls_resume_kind(c->tls)) {
        case MTLS_RESUME_TLS13_TICKET: METRIC_INC(env->metrics, handshakes_resumed_tls13_ticket); break;
        case MTLS_RESUME_TLS12_TICKET: METRIC_INC(env->metrics, handshakes_resumed_tls12_ticket); break;
        case MTLS_RESUME_TLS12_SESSION_ID:
            METRIC_INC(env->metrics, handshakes_resumed_tls12_session_id);
            break;
        default: METRIC_INC(env->metrics, handshakes_full); break;
        }
        c->state = MTLS_CONN_ACTIVE;
        conn_hs_end(c);
        mtls_io_timer_set(&c->io, MTLS_TIMER_IDLE);
    }
    if (c->state != MTLS_CONN_ACTIVE)
        return;
    if (c->plain_left.len) {
        struct mtls_buf left = c->plain_left;
        memset(&c->plain_left, 0, sizeof(c->plain_left));
        bool go_on = conn_http(c, left.data, left.len);
        mtls_buf_free(&left);
        if (!go_on)
            return;
    }
    while (c->state == MTLS_CONN_ACTIVE && !c->paused) {
        /* TLS can write without any request: a KeyUpdate flood makes one
         * reply each. Bound the output whatever produced it. */
        if (c->out_pending.len + c->out_flight.len >= OUT_HIGH) {
            conn_pause(c);
            return;
        }
        size_t before = c->out_pending.len;
        st = mtls_tls_read(c->tls, env->plain, env->plain_cap, &n);
        /* Reading writes only what TLS answers on its own: KeyUpdates. */
        c->unsolicited += c->out_pending.len - before;
        if (c->unsolicited > UNSOLICITED_MAX) {
            mtls_conn_close(c, "too many KeyUpdates without a request");
            return;
        }
        if (st == MTLS_TLS_OK) {
            if (!conn_http(c, env->plain, n))
                return;
        } else if (st == MTLS_TLS_AGAIN) {
            return;
        } else if (st == MTLS_TLS_CLOSED) {
            conn_finish(c, true);
            return;
        } else {
            /* The alert wolfSSL queued (a refused TLS 1.2 renegotiation, a
             * bad record) goes out before the close: RFC 5246 7.2.2. */
            log_debug("worker %u: fd %d: TLS error after the handshake", env->worker_id,
                      c->io.fd);
            conn_finish(c, false);
            return;
        }
    }
}

/* Plain HTTP sent to the TLS port: an operator's first curl gets a 400
 * that says what is wrong (nginx does the same) instead of a silent close. */
static void conn_plain_http(struct mtls_conn *c)
{
    struct mtls_conn_env *env = c->env;

    METRIC_INC(env->metrics, plain_http);
    log_debug("worker %u: fd %d: plain HTTP on the TLS port, answering 400", env->worker_id,
              c->io.fd);
    env->resp.len = 0;
    if (mtls_response_plain_http(&env->resp) < 0 ||
        mtls_buf_append(&c->out_pending, env->resp.data, env->resp.len) < 0) {
        mtls_conn_close(c, "cannot write the plain-HTTP answer");
        return;
    }
    conn_finish(c, false);
}

/* The high-water mark of input kept while paused, for /metrics: the
 * bound (in_left_max) is what tests check on both backends. */
static void conn_note_kept_input(struct mtls_conn *c)
{
    METRIC_PEAK(c->env->metrics, paused_input_peak, c->in_left.len + c->plain_left.len);
}

/* The TLS state comes with the first bytes, not at accept, and at most
 * HS_LIVE_MAX handshakes are in progress per worker; beyond that a
 * connection waits with its first bytes, in order, for one to end, but
 * one of them starts anyway at each loop iteration (which comes at least
 * every millisecond while some wait, worker.c): handshakes that clients
 * leave unfinished slow the others down, never stop them.
 * Why: wolfSSL's handshake-only state (Arrays, hashes, suites, ~5 KB) is
 * freed when a handshake ends but leaves holes between the long-lived
 * objects that malloc cannot give back. 1000 connections arriving at once
 * (bench/compare's idle measurement) kept ~5 KB of RSS each that way;
 * with a few dozen handshakes at a time their holes are few and reused.
 * False: the connection waits (or was closed). */
static bool conn_tls_start(struct mtls_conn *c, const uint8_t *p, size_t n)
{
    struct mtls_conn_env *env = c->env;

    if (env->hs_live >= HS_LIVE_MAX && env->hs_forced) {
        /* Exactly the bytes (a ClientHello), not mtls_buf's 1 KB: many
         * connections may wait at once, and this is freed when it starts. */
        if (!c->in_left.cap && n && (c->in_left.data = malloc(n)) != NULL)
            c->in_left.cap = n;
        if (mtls_buf_append(&c->in_left, p, n) < 0) {
            mtls_conn_close(c, "out of memory");
            return false;
        }
        conn_pause(c);
        c->hs_waiting = true;
        mtls_list_push_back(&env->hs_wait, &c->hs_wait_link);
        conn_account(c);
        return false;
    }
    if (env->hs_live >= HS_LIVE_MAX)
        env->hs_forced = true;
    if (mtls_tls_new(&c->tls, env->tls, &c->out_pending, env->metrics) < 0) {
        mtls_conn_close(c, "out of memory");
        return false;
    }
    env->hs_live++;
    c->hs_live = true;
    return true;
}

/* The handshake ended (or the connection did): its slot is free. */
static void conn_hs_end(struct mtls_conn *c)
{
    if (c->hs_live) {
        c->hs_live = false;
        c->env->hs_live--;
    }
}

static void conn_hs_unwait(struct mtls_conn *c)
{
    if (c->hs_waiting) {
        mtls_list_unlink(&c->env->hs_wait, &c->hs_wait_link);
        c->hs_waiting = false;
    }
}

bool mtls_conn_env_tick(struct mtls_conn_env *env)
{
    struct mtls_link *l;

    env->hs_forced = false;
    while ((l = env->hs_wait.head) && (env->hs_live < HS_LIVE_MAX || !env->hs_forced)) {
        struct mtls_conn *c = mtls_container_of(l, struct mtls_conn, hs_wait_link);

        conn_hs_unwait(c);
        if (c->state == MTLS_CONN_HANDSHAKE)
            conn_resume(c);
    }
    return env->hs_wait.head != NULL;
}

/* New ciphertext from the socket. */
static void conn_input(struct mtls_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == MTLS_CONN_LINGER || c->state == MTLS_CONN_CLOSING ||
        c->state == MTLS_CONN_DEAD)
        return; /* discard: we are on our way out */
    if (c->paused) {
        if (c->in_left.len + n > c->env->in_left_max || mtls_buf_append(&c->in_left, p, n) < 0) {
            mtls_conn_close(c, "input backlog over limit while paused");
        } else {
            conn_note_kept_input(c);
            if (c->reading_ahead && c->in_left.len >= READ_AHEAD_MAX)
                conn_pause(c);
        }
        conn_account(c);
        return;
    }
    if (c->out_pending.cap == 0)
        buf_get(c->env, &c->out_pending);
    if (!c->first_seen && n) {
        c->first_seen = true;
        if (mtls_tls_looks_like_http(p, n)) {
            conn_plain_http(c);
            return;
        }
    }
    if (!c->tls && !conn_tls_start(c, p, n))
        return;
    mtls_tls_feed(c->tls, p, n);
    conn_pump(c);
    const uint8_t *rest;
    size_t rest_len = mtls_tls_unread(c->tls, &rest);
    if (c->state != MTLS_CONN_DEAD && rest_len) {
        /* Paused mid-buffer: keep the rest, the buffer is only lent. */
        if (mtls_buf_append(&c->in_left, rest, rest_len) < 0)
            mtls_conn_close(c, "out of memory");
    }
    if (c->paused)
        conn_note_kept_input(c);
    mtls_tls_feed(c->tls, NULL, 0);
    conn_flush(c);
    conn_account(c);
}

static void conn_on_recv(struct mtls_io_sock *s, const uint8_t *p, ssize_t n)
{
    struct mtls_conn *c = conn_of(s);

    if (n > 0) {
        /* Bytes alone do not extend the idle timer: it restarts when an
         * answer has been sent, so one request (head and body) must arrive
         * within --idle-timeout, however slowly it trickles in (slowloris). */
        conn_input(c, p, (size_t)n);
    } else if (n == 0) {
        /* Peer's EOF: answer what it sent, then close; nothing is left to
         * linger for. */
        c->peer_eof = true;
        if (c->state == MTLS_CONN_LINGER || c->state == MTLS_CONN_HANDSHAKE)
            mtls_conn_close(c, "peer closed");
        else if (!(c->paused && c->state == MTLS_CONN_ACTIVE))
            conn_finish(c, false);
        /* Paused: the input kept and the answer awaited come first
         * (conn_resume finishes). */
    } else {
        mtls_conn_close(c, "recv error");
    }
}

/* Input goes on after a pause: what was kept first, then the socket. */
static void conn_resume(struct mtls_conn *c)
{
    struct mtls_buf left = c->in_left;

    c->paused = false;
    c->reading_ahead = false;
    memset(&c->in_left, 0, sizeof(c->in_left));
    conn_input(c, left.data, left.len);
    mtls_buf_free(&left);
    if (c->paused || (c->state != MTLS_CONN_ACTIVE && c->state != MTLS_CONN_HANDSHAKE))
        return;
    if (c->peer_eof) /* it closed its side while paused (an answer was due) */
        conn_finish(c, false);
    else
        mtls_io_recv_start(&c->io);
}

static void conn_on_sent(struct mtls_io_sock *s, ssize_t res)
{
    struct mtls_conn *c = conn_of(s);
    struct mtls_conn_env *env = c->env;

    if (res < 0) {
        mtls_conn_close(c, "send error");
        return;
    }
    c->out_flight.len = 0;
    /* Only an answer restarts the idle timer: a KeyUpdate's reply (or
     * anything else TLS sends on its own) must not keep a connection that
     * asks for nothing. */
    if (c->state == MTLS_CONN_ACTIVE && c->flight_answers)
        mtls_io_timer_set(&c->io, MTLS_TIMER_IDLE);
    c->flight_answers = false;
    if (c->out_pending.len == 0) {
        /* Nothing queued: an idle connection keeps no buffers. */
        buf_put(env, &c->out_flight);
        buf_put(env, &c->out_pending);
    }
    if (env->stopping && c->state == MTLS_CONN_ACTIVE && !c->paused &&
        mtls_http_idle(&c->http) && !c->x.active && c->out_pending.len == 0) {
        /* Stopping: this was the last answer; don't wait for the grace
         * period to end an idle connection. */
        conn_finish(c, true);
    } else if (c->paused && !c->x.pending && !c->held && c->out_pending.len < OUT_LOW) {
        conn_resume(c);
    } else if (c->x.pending && c->out_pending.len < OUT_LOW && c->x.handler &&
               c->x.handler->on_drain) {
        c->x.handler->on_drain(&c->x); /* e.g. read the upstream again */
    }
    conn_flush(c);
    conn_account(c);
}

static void conn_on_timeout(struct mtls_io_sock *s, enum mtls_timer t)
{
    struct mtls_conn *c = conn_of(s);
    struct mtls_conn_env *env = c->env;

    switch (t) {
    case MTLS_TIMER_HANDSHAKE:
        METRIC_INC(env->metrics, handshake_timeouts);
        mtls_conn_close(c, "handshake timeout");
        break;
    case MTLS_TIMER_IDLE:
        METRIC_INC(env->metrics, idle_timeouts);
        mtls_conn_close(c, "idle timeout");
        break;
    default:
        mtls_conn_close(c, "linger timeout");
        break;
    }
}

static const struct mtls_io_handler conn_io = {
    .on_recv = conn_on_recv,
    .on_sent = conn_on_sent,
    .on_timeout = conn_on_timeout,
    .on_closed = conn_on_closed,
};

static void conn_drain(struct mtls_conn *c)
{
    if (c->state == MTLS_CONN_HANDSHAKE) {
        mtls_conn_close(c, "shutting down");
    } else if (c->state == MTLS_CONN_ACTIVE && mtls_http_idle(&c->http) && !c->x.active &&
               !c->paused && !mtls_io_sending(&c->io) && c->out_pending.len == 0) {
        conn_finish(c, true);
    }
    /* A connection in the middle of a request gets "Connection: close" on
     * its answer (env->stopping) and ends after it. */
}

void mtls_conn_drain_all(struct mtls_conn_env *env)
{
    struct mtls_conn *c, *next;

    for (c = conn_of_all(env->all.head); c; c = next) {
        next = conn_of_all(c->all_link.next);
        conn_drain(c);
    }
}

void mtls_conn_close_all(struct mtls_conn_env *env, const char *why)
{
    struct mtls_conn *c, *next;

    for (c = conn_of_all(env->all.head); c; c = next) {
        next = conn_of_all(c->all_link.next);
        mtls_conn_close(c, why);
    }
}
