/* worker.c: one thread, one CPU, one io_uring. The loop submits, waits for
 * completions or the next deadline, handles completions in a batch, expires
 * timers, then frees connections that no op names any more. */
#define _GNU_SOURCE
#include "mtlsd/worker.h"
#include "mtlsd/conn.h"
#include "mtlsd/log.h"
#include "mtlsd/proxy.h"
#include "mtlsd/access_log.h"
#include "mtlsd/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 2000
#define TICK_MAX_MS 1000

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int listen_socket(const struct mtls_config *cfg, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* One listener per worker: the kernel spreads connections, and no lock
     * is shared on accept. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "setsockopt SO_REUSEPORT: %s", strerror(errno));
        goto fail;
    }
    if (cfg->listen_addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen) < 0) {
        snprintf(err, errlen, "--listen %s: cannot bind: %s", cfg->listen_str, strerror(errno));
        goto fail;
    }
    if (listen(fd, 4096) < 0) {
        snprintf(err, errlen, "--listen %s: cannot listen: %s", cfg->listen_str,
                 strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static unsigned pow2_at_least(unsigned v)
{
    unsigned p = 1;

    while (p < v && p < (1u << 20))
        p <<= 1;
    return p;
}

int mtls_worker_init(struct mtls_worker *w, unsigned id, const struct mtls_config *cfg,
                     struct mtls_tls_ctx *tls, char *err, size_t errlen)
{
    unsigned cq;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->cfg = cfg;
    w->tls = tls;
    w->listen_fd = -1;
    w->wake_fd = -1;
    w->limits = cfg->http;
    w->timeout_ms[MTLS_TIMER_HANDSHAKE] = cfg->handshake_timeout_ms;
    w->timeout_ms[MTLS_TIMER_IDLE] = cfg->idle_timeout_ms;
    w->timeout_ms[MTLS_TIMER_LINGER] = LINGER_MS;
    /* Every connection can have a recv and a send completion pending, plus
     * multishot receives post several each: size the CQ for that. */
    cq = pow2_at_least(cfg->max_conns * 4 + 1024);
    if (cq > 65536)
        cq = 65536;
    if (mtls_ring_init(&w->ring, cq, cfg->recv_buffers, cfg->recv_buffer_size, err, errlen) < 0)
        return -1;
    w->plain_cap = 16384 + 256;
    w->plain = malloc(w->plain_cap);
    if (!w->plain) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    w->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    w->listen_fd = listen_socket(cfg, err, errlen);
    if (w->listen_fd < 0)
        goto fail;
    mtls_metrics_register(&w->metrics);
    return 0;
fail:
    mtls_worker_destroy(w);
    return -1;
}

void mtls_worker_timer_clear(struct mtls_worker *w, struct mtls_conn *c)
{
    if (c->timer == MTLS_TIMER_NONE)
        return;
    mtls_list_unlink(&w->timers[c->timer], &c->timer_link);
    c->timer = MTLS_TIMER_NONE;
}

void mtls_worker_timer_set(struct mtls_worker *w, struct mtls_conn *c, enum mtls_timer t)
{
    /* Each list has one timeout, so appending keeps it sorted. */
    mtls_worker_timer_clear(w, c);
    c->timer = t;
    c->deadline_ms = w->now_ms + w->timeout_ms[t];
    mtls_list_push_back(&w->timers[t], &c->timer_link);
}

static struct mtls_conn *conn_of_all(struct mtls_link *l)
{
    return l ? mtls_container_of(l, struct mtls_conn, all_link) : NULL;
}

static struct mtls_conn *timer_head(struct mtls_worker *w, int t)
{
    struct mtls_link *l = w->timers[t].head;
    return l ? mtls_container_of(l, struct mtls_conn, timer_link) : NULL;
}

void mtls_worker_buf_get(struct mtls_worker *w, struct mtls_buf *b)
{
    if (w->nspare)
        *b = w->spare[--w->nspare];
}

void mtls_worker_buf_put(struct mtls_worker *w, struct mtls_buf *b)
{
    if (!b->data)
        return;
    /* Keep a few ordinary-sized buffers; a large one goes back to malloc. */
    if (w->nspare < sizeof(w->spare) / sizeof(w->spare[0]) && b->cap <= 64 * 1024) {
        b->len = 0;
        w->spare[w->nspare++] = *b;
        memset(b, 0, sizeof(*b));
    } else {
        mtls_buf_free(b);
    }
}

static void on_accept(struct mtls_worker *w, int res, unsigned flags)
{
    int one = 1;

    if (!(flags & IORING_CQE_F_MORE)) {
        w->accept_armed = false;
        if (!w->stopping) {
            /* Out of descriptors or memory: retry on the next tick rather
             * than spin on the same error. */
            if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
                w->accept_retry_ms = w->now_ms + 100;
            } else {
                mtls_ring_accept(&w->ring, w->listen_fd, w);
                w->accept_armed = true;
            }
        }
    }
    if (res < 0) {
        if (res != -ECANCELED)
            log_warn("worker %u: accept: %s", w->id, strerror(-res));
        return;
    }
    METRIC_INC(&w->metrics, connections_accepted);
    /* Admission control before any TLS work. */
    if (w->stopping || w->nconns >= w->cfg->max_conns) {
        METRIC_INC(&w->metrics, connections_refused);
        close(res);
        return;
    }
    /* Flights and responses go out whole: Nagle would only delay them. */
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    mtls_conn_new(w, res);
}

static void arm_wake(struct mtls_worker *w)
{
    mtls_ring_read(&w->ring, w->wake_fd, &w->wake_val, sizeof(w->wake_val), w, MTLS_OP_WAKE);
}

static void begin_stop(struct mtls_worker *w)
{
    struct mtls_conn *c, *next;

    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_deadline_ms = w->now_ms + w->cfg->shutdown_grace_ms;
    if (w->accept_armed)
        mtls_ring_cancel(&w->ring, w, MTLS_OP_ACCEPT);
    for (c = conn_of_all(w->all.head); c; c = next) {
        next = conn_of_all(c->all_link.next);
        mtls_conn_drain(c);
    }
}

static void expire_timers(struct mtls_worker *w)
{
    if (w->accept_retry_ms && w->accept_retry_ms <= w->now_ms && !w->stopping) {
        w->accept_retry_ms = 0;
        mtls_ring_accept(&w->ring, w->listen_fd, w);
        w->accept_armed = true;
    }
    for (int t = 0; t < MTLS_TIMER_NONE; t++) {
        struct mtls_conn *c;
        while ((c = timer_head(w, t)) && c->deadline_ms <= w->now_ms)
            mtls_conn_on_timeout(c);
    }
    mtls_proxy_tick(w->id, 0); /* upstream timers */
}

static uint64_t next_wait_ms(struct mtls_worker *w)
{
    uint64_t wait = mtls_proxy_tick(w->id, TICK_MAX_MS);

    for (int t = 0; t < MTLS_TIMER_NONE; t++) {
        struct mtls_conn *c = timer_head(w, t);
        if (c) {
            uint64_t d = c->deadline_ms > w->now_ms ? c->deadline_ms - w->now_ms : 0;
            if (d < wait)
                wait = d;
        }
    }
    if (w->accept_retry_ms && w->accept_retry_ms - w->now_ms < wait)
        wait = w->accept_retry_ms > w->now_ms ? w->accept_retry_ms - w->now_ms : 0;
    if (w->stopping && w->stop_deadline_ms > w->now_ms &&
        w->stop_deadline_ms - w->now_ms < wait)
        wait = w->stop_deadline_ms - w->now_ms;
    return wait;
}

static void reap(struct mtls_worker *w)
{
    while (w->reap) {
        struct mtls_conn *c = w->reap;
        w->reap = c->reap_next;
        mtls_conn_free(c);
    }
}

static void dispatch(struct mtls_worker *w, struct io_uring_cqe *cqe)
{
    void *owner = mtls_ud_owner(cqe->user_data);

    switch (mtls_ud_op(cqe->user_data)) {
    case MTLS_OP_ACCEPT:
        on_accept(w, cqe->res, cqe->flags);
        break;
    case MTLS_OP_RECV:
        mtls_conn_on_recv(owner, cqe->res, cqe->flags);
        break;
    case MTLS_OP_SEND:
        mtls_conn_on_send(owner, cqe->res);
        break;
    case MTLS_OP_WAKE:
        begin_stop(w);
        break;
    case MTLS_OP_UP_RECV:
        mtls_proxy_on_recv(owner, cqe->res, cqe->flags);
        break;
    case MTLS_OP_UP_SEND:
        mtls_proxy_on_send(owner, cqe->res);
        break;
    case MTLS_OP_CANCEL:
    default:
        break;
    }
}

static void *worker_main(void *arg)
{
    struct mtls_worker *w = arg;
    struct io_uring *ring = &w->ring.ring;

    int ret = mtls_ring_enable(&w->ring);
    if (ret < 0) {
        log_error("worker %u: cannot enable io_uring: %s", w->id, strerror(-ret));
        goto fatal;
    }
    w->now_ms = now_ms();
    mtls_proxy_worker_start(w->id, &w->ring, &w->metrics, &w->now_ms);
    mtls_ring_accept(&w->ring, w->listen_fd, w);
    w->accept_armed = true;
    arm_wake(w);

    for (;;) {
        struct __kernel_timespec ts;
        struct io_uring_cqe *cqe;
        unsigned head, count = 0;
        uint64_t wait = next_wait_ms(w);

        ts.tv_sec = (long long)(wait / 1000);
        ts.tv_nsec = (long long)(wait % 1000) * 1000000;
        ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            log_error("worker %u: io_uring wait: %s", w->id, strerror(-ret));
            goto fatal;
        }
        w->now_ms = now_ms();
        if (mtls_access_log_enabled()) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            w->batch_us = (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
        }
        io_uring_for_each_cqe(ring, head, cqe) {
            dispatch(w, cqe);
            count++;
        }
        io_uring_cq_advance(ring, count);
        expire_timers(w);
        reap(w);
        if (w->alog.len)
            mtls_access_log_flush(&w->alog);
        if (w->stopping) {
            if (w->nconns == 0)
                break;
            if (w->now_ms >= w->stop_deadline_ms) {
                struct mtls_conn *c, *next;
                log_info("worker %u: grace period over, closing %u connections", w->id,
                         w->nconns);
                for (c = conn_of_all(w->all.head); c; c = next) {
                    next = conn_of_all(c->all_link.next);
                    mtls_conn_close(c, "shutdown grace over");
                }
                break;
            }
        }
    }
    mtls_proxy_worker_stop(w->id);
    return NULL;
fatal:
    /* A dead worker must not leave a process that accepts and never
     * answers: stop the whole server with a failure code. */
    w->exit_code = 1;
    kill(getpid(), SIGTERM);
    return NULL;
}

int mtls_worker_start(struct mtls_worker *w, char *err, size_t errlen)
{
    int ret = pthread_create(&w->thread, NULL, worker_main, w);

    if (ret != 0) {
        snprintf(err, errlen, "cannot start worker %u: %s", w->id, strerror(ret));
        return -1;
    }
    if (w->cfg->pin_cpus) {
        cpu_set_t set;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        CPU_ZERO(&set);
        CPU_SET(ncpu > 0 ? w->id % (unsigned)ncpu : 0, &set);
        if (pthread_setaffinity_np(w->thread, sizeof(set), &set) != 0)
            log_warn("worker %u: cannot pin to a CPU", w->id);
    }
    return 0;
}

void mtls_worker_request_stop(struct mtls_worker *w)
{
    uint64_t one = 1;

    if (write(w->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow from a few signals */
    }
}

void mtls_worker_join(struct mtls_worker *w)
{
    pthread_join(w->thread, NULL);
}

void mtls_worker_destroy(struct mtls_worker *w)
{
    struct mtls_conn *c;

    /* Exiting the ring cancels whatever is still in flight; only then may
     * the buffers those ops point to be freed. */
    if (w->ring.ring.ring_fd > 0)
        mtls_ring_exit(&w->ring);
    memset(&w->ring, 0, sizeof(w->ring));
    w->reap = NULL;
    while ((c = conn_of_all(w->all.head)))
        mtls_conn_free(c);
    for (unsigned i = 0; i < w->nspare; i++)
        mtls_buf_free(&w->spare[i]);
    w->nspare = 0;
    mtls_buf_free(&w->resp);
    mtls_buf_free(&w->alog);
    free(w->plain);
    w->plain = NULL;
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    w->listen_fd = w->wake_fd = -1;
}
