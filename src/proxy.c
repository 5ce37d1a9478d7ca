/* proxy.c: the reverse proxy handler and its upstream connections.
 *
 * Ownership. Each worker has one pool (pools[worker id]): its upstream
 * connections, their timers and its keep-alive idle list. Only that worker
 * touches it, so nothing here is locked. An upstream connection is driven
 * by the worker's ring like a client connection: connect, receives into the
 * worker's provided buffers (an idle pooled connection holds no
 * buffer) and one send in flight; it is freed only when no op names it.
 *
 * One request at a time per upstream connection (HTTP/1.1 without
 * pipelining upstream); the client connection waits for each answer before
 * parsing its next request, so pipelined client requests are answered in
 * order.
 *
 * Streaming and back-pressure. The request body goes upstream as it
 * arrives (re-framed: Content-Length as received, chunked as chunked);
 * above UP_HIGH bytes queued for the upstream the client's input is held
 * until the upstream took it below UP_LOW. The response goes to the client
 * as it arrives; while the client is behind by CLIENT_HIGH bytes the
 * upstream is not read (on_drain reads it again). Memory per proxied request
 * is bounded by these windows plus what one receive can add, whatever the
 * body size.
 *
 * Faults. Connect refused or failed, or no connection within
 * --upstream-connect-timeout: 502. No response head within
 * --upstream-timeout of the request's end: 504. A malformed response: 502
 * before the head was passed on; after it, and when the upstream closes
 * mid-response, the client connection is closed (the answer cannot be
 * completed honestly). A reused keep-alive connection that the upstream
 * closed before answering is replaced once, only for an idempotent request
 * without a body (its head is kept for that): the request may never have
 * been seen, and sending it again is harmless. Never otherwise. */
#include "mtlsd/proxy.h"
#include "mtlsd/identity.h"
#include "mtlsd/list.h"
#include "mtlsd/log.h"
#include "mtlsd/proxy_headers.h"
#include "mtlsd/proxy_stream.h"
#include "mtlsd/response.h"
#include "mtlsd/status.h"
#include "mtlsd/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define UP_HIGH (256u * 1024)     /* request bytes queued for the upstream: hold the client */
#define UP_LOW (64u * 1024)
#define CLIENT_HIGH (256u * 1024) /* response bytes the client is behind: stop reading upstream */

enum ups_timer { T_CONNECT, T_RESPONSE, T_IDLE, T_NONE };

struct pool;
struct preq;

/* One upstream connection. */
struct ups {
    struct mtls_io_sock sock;    /* first: the loop's part (8-byte aligned) */
    struct pool *pool;
    bool connecting;             /* until the first send completes */
    bool dead;
    bool reading_held;           /* the client is behind: receive stopped */
    bool reused;                 /* came from the idle pool */
    bool in_idle;                /* in the pool's idle list */
    enum ups_timer timer;
    uint64_t deadline_ms;
    struct mtls_link timer_link;
    struct mtls_link idle_link;
    struct mtls_link all_link;   /* in the pool's list of every connection */
    struct mtls_buf out_flight;  /* the backend's until on_sent */
    struct mtls_buf out_pending;
    struct preq *req;            /* the request it carries; NULL: idle */
};

/* One proxied request (the exchange's data). */
struct preq {
    struct mtls_exchange *x;
    struct pool *pool;
    struct ups *u;
    struct mtls_ups_resp resp;
    struct mtls_buf to_client;
    struct mtls_buf head;        /* the request head, kept for one retry */
    bool chunked;                /* request body framing towards the upstream */
    bool has_body;
    bool req_done;               /* the whole request was read from the client */
    bool idempotent;
    bool retried;
    bool resp_started;           /* some response byte arrived */
    bool input_held;
    int deferred;                /* a failure to answer once the request is read */
    uint64_t sent_us;            /* when the head was handed to an upstream */
};

/* The identity header lines of recently seen clients: building them
 * (inflate the chain, base64, the RFC 2253 subject) costs more than the
 * rest of a forwarded request head. Keyed by the compressed chain itself,
 * so a hit can only ever return the lines of the same certificates. */
#define IDCACHE 16
struct idcache_entry {
    uint8_t *z;                  /* copy of the identity's certs_z */
    uint32_t z_len;
    struct mtls_buf lines;
};

/* Freed requests kept for the next ones, with their buffers: a proxied
 * keep-alive request then allocates nothing. Bounded: at most PREQ_SPARE
 * per worker, and a buffer above SPARE_BUF_MAX (a big head, a streamed
 * body's chunk) goes back to malloc, here and in a pooled connection. */
#define PREQ_SPARE 32
#define SPARE_BUF_MAX (16u * 1024)

struct pool {
    struct mtls_io *io;
    struct mtls_metrics *m;
    struct mtls_list timers[T_NONE];
    struct mtls_list idle;       /* least recently used first */
    unsigned n_idle;
    struct mtls_list all;        /* every connection not yet freed */
    struct idcache_entry idc[IDCACHE];
    struct preq *spare[PREQ_SPARE];
    unsigned n_spare;
};


/* A failed connect also turns the status listener's /readyz to 503 until a
 * connect succeeds again (issue 13: a pod whose application is down should
 * leave the Service's endpoints). */
static void connect_failed(struct mtls_metrics *m)
{
    METRIC_INC(m, upstream_connect_failures);
    mtls_status_set_upstream_ok(false);
}

static struct {
    bool on;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint64_t timeout_ms[T_NONE];
    unsigned max_idle;
    struct mtls_proxy_header_cfg hdr;
    const char *prefix;
    size_t prefix_len;
    char by_uri[512];
    struct pool *pools;
    unsigned n_pools;
} P;

static void ups_close(struct ups *u);
static void ups_flush(struct ups *u);
static void preq_fail(struct preq *r, int status, const char *why);
static void preq_free(struct preq *r);
static void preq_resp_init(struct preq *r, bool head_request);

/* ---- choosing the handler --------------------------------------------------- */

const struct mtls_handler *mtls_proxy_choose(const struct mtls_http_request *req, size_t *skip)
{
    *skip = 0;
    if (!P.on)
        return NULL;
    /* The built-in routes only under --builtin-prefix: "/p", "/p/...",
     * "/p?..." (not "/pfoo"). */
    if (P.prefix && req->path_len >= P.prefix_len &&
        memcmp(req->target, P.prefix, P.prefix_len) == 0 &&
        (req->path_len == P.prefix_len || req->target[P.prefix_len] == '/')) {
        *skip = P.prefix_len;
        if (req->path_len == P.prefix_len) /* "/p" alone is "/" of the routes */
            *skip = P.prefix_len - 1;
        return NULL;
    }
    return &mtls_proxy_handler;
}

/* ---- timers ----------------------------------------------------------------- */

static void timer_clear(struct ups *u)
{
    if (u->timer == T_NONE)
        return;
    mtls_list_unlink(&u->pool->timers[u->timer], &u->timer_link);
    u->timer = T_NONE;
}

static void timer_set(struct ups *u, enum ups_timer t)
{
    timer_clear(u);
    u->timer = t;
    u->deadline_ms = mtls_io_now_ms(u->pool->io) + P.timeout_ms[t];
    mtls_list_push_back(&u->pool->timers[t], &u->timer_link); /* one timeout per list */
}

/* ---- upstream connections ----------------------------------------------------- */

static const struct mtls_io_handler ups_io;

static void ups_arm_recv(struct ups *u)
{
    if (u->dead || u->reading_held || mtls_io_receiving(&u->sock))
        return;
    mtls_io_recv_start(&u->sock);
}

/* A non-blocking connect; the first send completes when it does (io_uring
 * waits for writability inside the send, epoll for EPOLLOUT), and a refused
 * connect fails that send. Nothing here blocks. NULL and -errno in *err
 * when the connect fails at once. */
static struct ups *ups_connect(struct pool *pl, int *err)
{
    struct ups *u;
    int one = 1, fd;

    fd = socket(P.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    if (P.addr.ss_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&P.addr, P.addrlen) < 0 && errno != EINPROGRESS) {
        *err = -errno; /* refused, no such socket, backlog full (EAGAIN) */
        close(fd);
        return NULL;
    }
    /* The io_uring backend drives blocking sockets (a send waits for the
     * connection inside the kernel); epoll needs them non-blocking. */
    if (pl->io->kind != MTLS_IO_EPOLL)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    u = calloc(1, sizeof(*u));
    if (!u) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    u->pool = pl;
    u->timer = T_NONE;
    u->connecting = true;
    mtls_list_push_back(&pl->all, &u->all_link);
    mtls_io_attach(pl->io, &u->sock, fd, &ups_io);
    timer_set(u, T_CONNECT);
    METRIC_INC(pl->m, upstream_connections_open);
    return u;
}

static void ups_close(struct ups *u)
{
    if (u->dead)
        return;
    u->dead = true;
    timer_clear(u);
    if (u->in_idle) {
        mtls_list_unlink(&u->pool->idle, &u->idle_link);
        u->in_idle = false;
        u->pool->n_idle--;
        METRIC_DEC(u->pool->m, upstream_connections_idle);
    }
    u->req = NULL;
    METRIC_DEC(u->pool->m, upstream_connections_open);
    mtls_io_close(&u->sock); /* ups_on_closed frees it, never under the caller */
}

/* The response is complete and the connection clean: keep it for the next
 * request, or close it when the pool is full. */
static void ups_release(struct ups *u)
{
    struct pool *pl = u->pool;

    u->req = NULL;
    u->reading_held = false;
    if (pl->n_idle >= P.max_idle || u->out_pending.len || mtls_io_sending(&u->sock)) {
        ups_close(u);
        return;
    }
    /* Small send buffers stay with the connection for its next request. */
    if (u->out_flight.cap > SPARE_BUF_MAX)
        mtls_buf_free(&u->out_flight);
    if (u->out_pending.cap > SPARE_BUF_MAX)
        mtls_buf_free(&u->out_pending);
    u->out_flight.len = 0;
    mtls_list_push_back(&pl->idle, &u->idle_link);
    u->in_idle = true;
    pl->n_idle++;
    METRIC_INC(pl->m, upstream_connections_idle);
    timer_set(u, T_IDLE);
    ups_arm_recv(u); /* to notice the upstream closing it */
}

static struct ups *ups_take_idle(struct pool *pl)
{
    struct mtls_link *l = pl->idle.tail; /* the most recently used */
    struct ups *u;

    if (!l)
        return NULL;
    u = mtls_container_of(l, struct ups, idle_link);
    mtls_list_unlink(&pl->idle, l);
    u->in_idle = false;
    pl->n_idle--;
    METRIC_DEC(pl->m, upstream_connections_idle);
    timer_clear(u);
    u->reused = true;
    return u;
}

static void ups_flush(struct ups *u)
{
    struct mtls_buf tmp;

    if (u->dead || mtls_io_sending(&u->sock) || u->out_pending.len == 0)
        return;
    tmp = u->out_flight;
    u->out_flight = u->out_pending;
    u->out_pending = tmp;
    u->out_pending.len = 0;
    mtls_io_send(&u->sock, u->out_flight.data, u->out_flight.len);
}

static size_t ups_backlog(const struct ups *u)
{
    return u->out_pending.len + u->out_flight.len;
}

/* ---- the request ------------------------------------------------------------------ */

static uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* For the access log: what the upstream answered, and how long it took. */
static void note_upstream(struct preq *r, int status)
{
    r->x->upstream_status = status;
    r->x->upstream_usec = r->sent_us ? (unsigned long)(mono_us() - r->sent_us) : 0;
}

static bool method_idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

static void count_status(struct pool *pl, int status)
{
    if (status < 300)
        METRIC_INC(pl->m, upstream_responses_1xx_2xx);
    else if (status < 400)
        METRIC_INC(pl->m, upstream_responses_3xx);
    else if (status < 500)
        METRIC_INC(pl->m, upstream_responses_4xx);
    else
        METRIC_INC(pl->m, upstream_responses_5xx);
}

/* Hands the request to an upstream connection: a pooled one, else a new one. */
static int preq_attach(struct preq *r, bool allow_reuse)
{
    struct ups *u = allow_reuse ? ups_take_idle(r->pool) : NULL;
    int err = 0;

    if (u) {
        METRIC_INC(r->pool->m, upstream_reused);
    } else {
        u = ups_connect(r->pool, &err);
        if (!u) {
            connect_failed(r->pool->m);
            log_info("proxy: cannot connect to the upstream: %s", strerror(-err));
            return -1;
        }
    }
    u->req = r;
    r->u = u;
    if (!r->sent_us)
        r->sent_us = mono_us();
    if (mtls_buf_append(&u->out_pending, r->head.data, r->head.len) < 0)
        return -1;
    if (r->req_done && !u->connecting)
        timer_set(u, T_RESPONSE);
    ups_arm_recv(u);
    ups_flush(u);
    return 0;
}

/* Passes what the parser framed for the client on. */
static int preq_to_client(struct preq *r)
{
    if (r->to_client.len == 0)
        return 0;
    if (mtls_exchange_write(r->x, r->to_client.data, r->to_client.len) < 0)
        return -1;
    r->to_client.len = 0;
    return 0;
}

/* The response is complete. */
static void preq_done(struct preq *r, bool reusable)
{
    struct ups *u = r->u;
    struct mtls_exchange *x = r->x;
    int status = r->resp.status;

    count_status(r->pool, status);
    note_upstream(r, status);
    if (r->resp.client_close)
        x->close = true; /* an HTTP/1.0 body delimited by the close */
    r->u = NULL;
    if (u) {
        if (reusable && r->req_done && !u->dead)
            ups_release(u);
        else
            ups_close(u);
    }
    if (r->input_held)
        x->ops->hold_input(x, false);
    x->data = NULL;
    preq_free(r);
    mtls_exchange_end(x, status);
}

/* An answer of our own (502, 504), once the request has been read. */
static void preq_answer(struct preq *r, int status)
{
    static const char *const why[] = {"bad gateway: the upstream failed\n",
                                      "gateway timeout: no answer from the upstream in time\n"};
    const char *msg = why[status == 504];
    struct mtls_exchange *x = r->x;

    x->scratch->len = 0;
    if (mtls_response_frame(x->scratch, status, "text/plain", msg, strlen(msg), false, x->close,
                            false, NULL) < 0 ||
        mtls_exchange_write(x, x->scratch->data, x->scratch->len) < 0) {
        x->data = NULL;
        preq_free(r);
        x->ops->kill(x, "out of memory");
        return;
    }
    if (r->input_held)
        x->ops->hold_input(x, false);
    x->data = NULL;
    preq_free(r);
    mtls_exchange_end(x, status);
}

static void preq_fail(struct preq *r, int status, const char *why)
{
    struct mtls_exchange *x = r->x;

    log_debug("proxy: %s", why);
    note_upstream(r, r->resp.head_sent ? r->resp.status : -1);
    if (r->u) {
        struct ups *u = r->u;
        r->u = NULL;
        ups_close(u); /* mid-exchange: never reused */
    }
    if (r->resp.head_sent) {
        /* Part of the answer is with the client: it cannot be completed. */
        x->data = NULL;
        preq_free(r);
        x->ops->kill(x, why);
        return;
    }
    if (!r->req_done) {
        r->deferred = status; /* answered once the request has been read */
        if (r->input_held) {  /* the rest of the body is read and dropped */
            r->input_held = false;
            x->ops->hold_input(x, false);
        }
        return;
    }
    preq_answer(r, status);
}

/* The upstream closed (or reset) before completing the answer. */
static void preq_upstream_gone(struct preq *r, bool reset)
{
    struct ups *u = r->u;
    enum mtls_ups_event ev = reset ? MTLS_UPS_ERROR : mtls_ups_resp_eof(&r->resp);

    if (!reset && ev == MTLS_UPS_DONE) {
        if (preq_to_client(r) < 0) {
            preq_fail(r, 502, "cannot write to the client");
            return;
        }
        preq_done(r, false);
        return;
    }
    /* The keep-alive race: a reused connection the upstream closed as we
     * sent on it. Once, for an idempotent request without a body. */
    if (u && u->reused && !r->resp_started && r->idempotent && !r->has_body && !r->retried) {
        bool head_request = r->resp.head_request, http10 = r->resp.client_http10,
             client_close = r->resp.client_close;
        r->retried = true;
        METRIC_INC(r->pool->m, upstream_retries);
        r->u = NULL;
        ups_close(u);
        /* A new parser: the EOF above marked this one failed. */
        r->to_client.len = 0;
        preq_resp_init(r, head_request);
        r->resp.client_http10 = http10;
        r->resp.client_close = client_close;
        if (preq_attach(r, false) < 0)
            preq_fail(r, 502, "cannot connect to the upstream");
        return;
    }
    if (r->resp.head_sent)
        METRIC_INC(r->pool->m, upstream_resets);
    else if (u && u->connecting)
        connect_failed(r->pool->m);
    preq_fail(r, 502, r->resp.head_sent ? "upstream closed mid-response"
                                         : "upstream closed before answering");
}

/* What one receive brought goes to the client as one write (one TLS
 * record, one send): head and body of a small answer together. */
static void preq_feed(struct preq *r, const uint8_t *p, size_t n)
{
    while (r->u) {
        size_t used = 0;
        enum mtls_ups_event ev = mtls_ups_resp_feed(&r->resp, p, n, &used);

        p += used;
        n -= used;
        if (used)
            r->resp_started = true;
        if (ev == MTLS_UPS_HEAD) {
            timer_clear(r->u); /* the head came in time */
            continue;
        }
        if (preq_to_client(r) < 0) {
            preq_fail(r, 502, "cannot write to the client");
            return;
        }
        switch (ev) {
        case MTLS_UPS_DONE:
            timer_clear(r->u);
            preq_done(r, r->resp.reusable && n == 0);
            return;
        case MTLS_UPS_ERROR:
            METRIC_INC(r->pool->m, upstream_malformed);
            preq_fail(r, 502, r->resp.error ? r->resp.error : "malformed upstream response");
            return;
        case MTLS_UPS_NEED_MORE:
        default:
            /* The client is behind: stop reading the upstream (on_drain
             * goes on). */
            if (r->x->ops->backlog(r->x) >= CLIENT_HIGH && r->u && !r->u->reading_held) {
                r->u->reading_held = true;
                mtls_io_recv_stop(&r->u->sock);
            }
            return;
        }
    }
}

static bool buf_small(const struct mtls_buf *b)
{
    return b->cap <= SPARE_BUF_MAX;
}

static void preq_destroy(struct preq *r)
{
    mtls_ups_resp_free(&r->resp);
    mtls_buf_free(&r->to_client);
    mtls_buf_free(&r->head);
    free(r);
}

static void preq_free(struct preq *r)
{
    struct pool *pl = r->pool;

    if (pl->n_spare < PREQ_SPARE && buf_small(&r->to_client) && buf_small(&r->head) &&
        buf_small(&r->resp.fields) && buf_small(&r->resp.spans) && buf_small(&r->resp.reason)) {
        pl->spare[pl->n_spare++] = r;
        return;
    }
    preq_destroy(r);
}

static struct mtls_buf buf_emptied(struct mtls_buf b)
{
    b.len = 0;
    return b;
}

/* A request of the pool: a spare one (its buffers kept, emptied), or new.
 * The response parser is set up by the caller (preq_resp_init). */
static struct preq *preq_new(struct pool *pl)
{
    struct preq *r;
    struct mtls_buf to_client, head, fields, spans, reason;

    if (!pl->n_spare)
        return calloc(1, sizeof(struct preq));
    r = pl->spare[--pl->n_spare];
    to_client = r->to_client;
    head = r->head;
    fields = r->resp.fields;
    spans = r->resp.spans;
    reason = r->resp.reason;
    memset(r, 0, sizeof(*r));
    r->to_client = buf_emptied(to_client);
    r->head = buf_emptied(head);
    r->resp.fields = fields; /* emptied by preq_resp_init */
    r->resp.spans = spans;
    r->resp.reason = reason;
    return r;
}

/* The response parser, keeping the buffers a spare request brought. */
static void preq_resp_init(struct preq *r, bool head_request)
{
    struct mtls_buf fields = buf_emptied(r->resp.fields), spans = buf_emptied(r->resp.spans),
                    reason = buf_emptied(r->resp.reason);

    mtls_ups_resp_init(&r->resp, &r->to_client, head_request, false);
    r->resp.fields = fields;
    r->resp.spans = spans;
    r->resp.reason = reason;
}

/* ---- completions ---------------------------------------------------------------- */

static void ups_on_sent(struct mtls_io_sock *s, ssize_t res)
{
    struct ups *u = (struct ups *)s;
    struct preq *r = u->req;

    if (u->dead)
        return;
    if (res < 0) {
        if (u->connecting) {
            connect_failed(u->pool->m);
            log_info("proxy: cannot connect to the upstream: %s", strerror((int)-res));
            if (r)
                preq_fail(r, 502, "cannot connect to the upstream");
            else
                ups_close(u);
        } else if (r) {
            preq_upstream_gone(r, true);
        } else {
            ups_close(u);
        }
        return;
    }
    if (u->connecting) {
        u->connecting = false;
        mtls_status_set_upstream_ok(true);
        timer_clear(u);
        if (r && r->req_done && !r->resp.head_sent)
            timer_set(u, T_RESPONSE);
    }
    u->out_flight.len = 0;
    ups_flush(u);
    /* The upstream took the body: read the client again. */
    if (r && r->input_held && ups_backlog(u) < UP_LOW) {
        r->input_held = false;
        r->x->ops->hold_input(r->x, false);
    }
}

static void ups_on_recv(struct mtls_io_sock *s, const uint8_t *p, ssize_t n)
{
    struct ups *u = (struct ups *)s;

    if (u->dead)
        return;
    if (n > 0) {
        if (u->req)
            preq_feed(u->req, p, (size_t)n);
        else
            ups_close(u); /* bytes nobody asked for: never reuse it */
        return;
    }
    if (!u->req) {
        ups_close(u); /* an idle connection the upstream closed */
        return;
    }
    if (u->connecting && n < 0) {
        connect_failed(u->pool->m);
        preq_fail(u->req, 502, "cannot connect to the upstream");
        return;
    }
    preq_upstream_gone(u->req, n < 0);
}

static void ups_on_timeout(struct mtls_io_sock *s, enum mtls_timer t)
{
    (void)s; /* upstream timers are the pool's own (mtls_proxy_tick) */
    (void)t;
}

static void ups_on_closed(struct mtls_io_sock *s)
{
    struct ups *u = (struct ups *)s;

    mtls_list_unlink(&u->pool->all, &u->all_link);
    mtls_buf_free(&u->out_flight);
    mtls_buf_free(&u->out_pending);
    free(u);
}

static const struct mtls_io_handler ups_io = {
    .on_recv = ups_on_recv,
    .on_sent = ups_on_sent,
    .on_timeout = ups_on_timeout,
    .on_closed = ups_on_closed,
};

uint64_t mtls_proxy_tick(unsigned id, uint64_t max)
{
    struct pool *pl;
    uint64_t wait = max;

    if (!P.on || id >= P.n_pools || !P.pools[id].io)
        return max;
    pl = &P.pools[id];
    for (int t = 0; t < T_NONE; t++) {
        struct mtls_link *l;
        while ((l = pl->timers[t].head) != NULL) {
            struct ups *u = mtls_container_of(l, struct ups, timer_link);
            uint64_t now = mtls_io_now_ms(pl->io);
            if (u->deadline_ms > now) {
                if (u->deadline_ms - now < wait)
                    wait = u->deadline_ms - now;
                break;
            }
            timer_clear(u);
            if (t == T_IDLE || !u->req) {
                ups_close(u);
            } else if (t == T_CONNECT) {
                connect_failed(pl->m);
                preq_fail(u->req, 502, "upstream connect timeout");
            } else {
                METRIC_INC(pl->m, upstream_timeouts);
                preq_fail(u->req, 504, "no response head within --upstream-timeout");
            }
        }
    }
    return wait;
}

/* ---- the handler ------------------------------------------------------------------- */

static int header_value_u64(const struct mtls_http_request *req, const char *name,
                            uint64_t *out, bool *found)
{
    *found = false;
    for (unsigned i = 0; i < req->n_headers; i++) {
        const struct mtls_http_header *h = &req->headers[i];
        if (h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0) {
            char *end;
            errno = 0;
            *out = strtoull(h->value, &end, 10);
            *found = true;
            return errno ? -1 : 0;
        }
    }
    return 0;
}

static bool has_header(const struct mtls_http_request *req, const char *name)
{
    for (unsigned i = 0; i < req->n_headers; i++)
        if (req->headers[i].name_len == strlen(name) &&
            strncasecmp(req->headers[i].name, name, req->headers[i].name_len) == 0)
            return true;
    return false;
}

/* The identity header lines of this request's client: a pointer into the
 * worker's cache (valid until the next call), NULL when there are none.
 * 0, or a status. */
static int identity_lines(struct pool *pl, const struct mtls_identity *id,
                          const struct mtls_buf **lines)
{
    struct mtls_buf raw = {0};
    struct mtls_der der[MTLS_IDENTITY_MAX_CERTS];
    struct idcache_entry *e;
    int n, ret = 0;

    *lines = NULL;
    if (!id || !P.hdr.cert_headers)
        return 0;
    /* Fail closed: a verified client whose certificates cannot be passed
     * on is not forwarded as if it were anonymous. */
    if (!id->certs_z)
        return 502;
    e = &pl->idc[id->sha256[0] % IDCACHE];
    if (e->z && e->z_len == id->certs_z_len && memcmp(e->z, id->certs_z, e->z_len) == 0) {
        *lines = &e->lines;
        return 0;
    }
    free(e->z);
    e->z = NULL;
    e->lines.len = 0;
    n = mtls_identity_certs(id, &raw, der, MTLS_IDENTITY_MAX_CERTS);
    if (n <= 0 || mtls_identity_header_lines(&P.hdr, id, der, (unsigned)n, &e->lines) < 0)
        ret = 502;
    mtls_buf_free(&raw);
    if (ret == 0 && (e->z = malloc(id->certs_z_len)) != NULL) {
        memcpy(e->z, id->certs_z, id->certs_z_len);
        e->z_len = id->certs_z_len;
    }
    if (ret == 0)
        *lines = &e->lines;
    return ret;
}

static int on_head(struct mtls_exchange *x, const struct mtls_http_request *req)
{
    struct pool *pl = &P.pools[x->peer->worker];
    struct mtls_forward_info fi;
    const struct mtls_buf *ident;
    char addr[64];
    struct preq *r;
    uint64_t cl = 0;
    bool cl_found;
    int st;

    r = preq_new(pl);
    if (!r)
        return MTLS_HANDLER_FAIL;
    x->data = r;
    r->x = x;
    r->pool = pl;
    r->idempotent = method_idempotent(req->method_name);
    r->chunked = has_header(req, "transfer-encoding"); /* http.c admits only chunked */
    if (header_value_u64(req, "content-length", &cl, &cl_found) < 0)
        cl_found = false;
    r->has_body = r->chunked || (cl_found && cl > 0);
    preq_resp_init(r, req->method == HTTP_HEAD);
    r->resp.client_http10 = req->version_major == 1 && req->version_minor == 0;
    METRIC_INC(pl->m, upstream_requests);

    x->ops->peer_addr(x, addr, sizeof(addr));
    memset(&fi, 0, sizeof(fi));
    fi.client_addr = addr[0] ? addr : NULL;
    fi.chunked = r->chunked;
    fi.content_length = cl;
    fi.has_body = cl_found;
    st = identity_lines(pl, x->peer->identity, &ident);
    if (st == 0) {
        st = mtls_proxy_request_head(&P.hdr, req->method_name, req->target, req->target_len,
                                     req->headers, req->n_headers, ident, &fi, &r->head);
        if (st < 0)
            st = 500;
    }
    if (st) {
        r->deferred = st; /* answered once the request has been read */
        return 0;
    }
    if (preq_attach(r, true) < 0)
        preq_fail(r, 502, "cannot connect to the upstream");
    return 0;
}

static int on_body(struct mtls_exchange *x, const uint8_t *p, size_t n)
{
    struct preq *r = x->data;
    struct ups *u;

    if (!r || r->deferred || !r->u)
        return 0; /* answered with an error once read: drop it */
    u = r->u;
    if ((r->chunked ? mtls_chunk_append(&u->out_pending, p, n)
                    : mtls_buf_append(&u->out_pending, p, n)) < 0) {
        preq_fail(r, 502, "out of memory");
        return 0;
    }
    r->retried = true; /* a body went out: never sent twice */
    ups_flush(u);
    if (!r->input_held && ups_backlog(u) >= UP_HIGH) {
        r->input_held = true;
        x->ops->hold_input(x, true);
    }
    return 0;
}

static enum mtls_handler_result on_request(struct mtls_exchange *x,
                                           const struct mtls_http_request *req)
{
    struct preq *r = x->data;

    (void)req;
    if (!r)
        return MTLS_HANDLER_FAIL;
    r->req_done = true;
    r->resp.client_close = x->close;
    if (r->deferred) {
        preq_answer(r, r->deferred);
        return MTLS_HANDLER_DONE;
    }
    if (r->u) {
        if (r->chunked && mtls_chunk_last(&r->u->out_pending) < 0) {
            preq_fail(r, 502, "out of memory");
            return x->active ? MTLS_HANDLER_PENDING : MTLS_HANDLER_DONE;
        }
        ups_flush(r->u);
        if (!r->u->connecting && !r->resp.head_sent)
            timer_set(r->u, T_RESPONSE);
    }
    return MTLS_HANDLER_PENDING;
}

static void on_abort(struct mtls_exchange *x)
{
    struct preq *r = x->data;

    if (!r)
        return;
    x->data = NULL;
    if (r->u) {
        struct ups *u = r->u;
        r->u = NULL;
        ups_close(u); /* mid-request: the connection cannot be reused */
    }
    preq_free(r);
}

static void on_drain(struct mtls_exchange *x)
{
    struct preq *r = x->data;

    if (r && r->u && r->u->reading_held) {
        r->u->reading_held = false;
        ups_arm_recv(r->u);
    }
}

const struct mtls_handler mtls_proxy_handler = {
    .name = "proxy",
    .on_head = on_head,
    .on_body = on_body,
    .on_request = on_request,
    .on_abort = on_abort,
    .on_drain = on_drain,
};

/* ---- start-up ------------------------------------------------------------------------ */

/* XFCC By=: the first URI SAN of the server's own certificate. */
static void read_by_uri(const char *cert_file)
{
    struct mtls_identity *id = mtls_identity_from_pem_file(cert_file);

    for (unsigned i = 0; id && i < id->n_san; i++)
        if (id->san[i].type == MTLS_SAN_URI) {
            snprintf(P.by_uri, sizeof(P.by_uri), "%s", id->san[i].value);
            break;
        }
    mtls_identity_free(id);
}

int mtls_proxy_init(const struct mtls_config *cfg, unsigned workers, char *err, size_t errlen)
{
    const struct mtls_proxy_settings *ps = &cfg->proxy;

    memset(&P, 0, sizeof(P));
    if (!ps->upstream)
        return 0;
    if (ps->upstream_unix) {
        struct sockaddr_un *un = (struct sockaddr_un *)&P.addr;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof(un->sun_path), "%s", ps->upstream_unix);
        P.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
    } else {
        struct addrinfo hints, *res = NULL;
        int ret;
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        ret = getaddrinfo(ps->upstream_host, ps->upstream_port, &hints, &res);
        if (ret != 0 || !res) {
            snprintf(err, errlen, "--upstream %s: cannot resolve %s: %s", ps->upstream,
                     ps->upstream_host, gai_strerror(ret));
            return -1;
        }
        /* Resolved once, at start: the first address. */
        memcpy(&P.addr, res->ai_addr, res->ai_addrlen);
        P.addrlen = res->ai_addrlen;
        freeaddrinfo(res);
    }
    P.timeout_ms[T_CONNECT] = ps->connect_timeout_ms;
    P.timeout_ms[T_RESPONSE] = ps->timeout_ms;
    P.timeout_ms[T_IDLE] = ps->idle_ms;
    P.max_idle = ps->conns;
    P.hdr.cert_headers = ps->cert_headers;
    P.hdr.strip = ps->strip_headers;
    P.hdr.n_strip = ps->n_strip_headers;
    P.prefix = ps->builtin_prefix;
    P.prefix_len = P.prefix ? strlen(P.prefix) : 0;
    if (ps->cert_headers & MTLS_CERT_HEADER_XFCC) {
        read_by_uri(cfg->cert_file);
        P.hdr.by_uri = P.by_uri[0] ? P.by_uri : NULL;
    }
    P.pools = calloc(workers, sizeof(*P.pools));
    if (!P.pools) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    P.n_pools = workers;
    P.on = true;
    return 0;
}

void mtls_proxy_shutdown(void)
{
    free(P.pools);
    P.pools = NULL;
    P.on = false;
}

void mtls_proxy_worker_start(unsigned id, struct mtls_io *io, struct mtls_metrics *m)
{
    if (!P.on || id >= P.n_pools)
        return;
    P.pools[id].io = io;
    P.pools[id].m = m;
}

void mtls_proxy_worker_stop(unsigned id)
{
    struct mtls_link *l;

    if (!P.on || id >= P.n_pools)
        return;
    for (unsigned i = 0; i < IDCACHE; i++) {
        free(P.pools[id].idc[i].z);
        mtls_buf_free(&P.pools[id].idc[i].lines);
        memset(&P.pools[id].idc[i], 0, sizeof(P.pools[id].idc[i]));
    }
    while (P.pools[id].n_spare)
        preq_destroy(P.pools[id].spare[--P.pools[id].n_spare]);
    /* The ring goes away with the worker: nothing completes any more, so
     * every connection is freed here, whatever was in flight. */
    while ((l = P.pools[id].all.head) != NULL) {
        struct ups *u = mtls_container_of(l, struct ups, all_link);
        mtls_list_unlink(&P.pools[id].all, l);
        mtls_io_discard(&u->sock);
        mtls_buf_free(&u->out_flight);
        mtls_buf_free(&u->out_pending);
        free(u);
    }
}
