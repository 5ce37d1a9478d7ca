/* io.c: the part of the loop every backend shares: timers, the reference
 * count of operations in flight, deferred results and reaping. */
#include "mtlsd/io_backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ACCEPT_RETRY_MS 100

static const struct mtls_io_ops *ops_of(enum mtls_io_backend kind)
{
    return kind == MTLS_IO_EPOLL ? &mtls_io_epoll_ops : &mtls_io_uring_ops;
}

const char *mtls_io_backend_name(enum mtls_io_backend kind)
{
    switch (kind) {
    case MTLS_IO_URING: return "io_uring";
    case MTLS_IO_EPOLL: return "epoll";
    default: return "auto";
    }
}

int mtls_io_resolve(enum mtls_io_backend want, const struct mtls_io_params *p,
                    enum mtls_io_backend *got, char *why, size_t whylen)
{
    int ret;

    *got = want;
    if (want == MTLS_IO_EPOLL)
        return 0;
    ret = mtls_io_uring_probe(p, why, whylen);
    if (ret < 0 && want == MTLS_IO_AUTO) {
        *got = MTLS_IO_EPOLL;
        return 0;
    }
    *got = MTLS_IO_URING;
    return ret;
}

void mtls_io_clock(struct mtls_io *io)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    io->now_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    io->now_ms = io->now_us / 1000;
}

uint64_t mtls_io_now_ms(const struct mtls_io *io)
{
    return io->now_ms;
}

uint64_t mtls_io_now_us(const struct mtls_io *io)
{
    return io->now_us;
}

int mtls_io_init(struct mtls_io *io, enum mtls_io_backend kind,
                 const struct mtls_io_params *p, char *err, size_t errlen)
{
    memset(io, 0, sizeof(*io));
    io->kind = kind;
    io->ops = ops_of(kind);
    io->listen_fd = -1;
    io->wake_fd = -1;
    memcpy(io->timeout_ms, p->timeout_ms, sizeof(io->timeout_ms));
    mtls_io_clock(io);
    if (io->ops->init(io, p, err, errlen) < 0) {
        io->ops = NULL;
        return -1;
    }
    return 0;
}

int mtls_io_start(struct mtls_io *io)
{
    mtls_io_clock(io);
    return io->ops->start(io);
}

void mtls_io_destroy(struct mtls_io *io)
{
    /* The backend goes first: exiting a ring cancels what is in flight,
     * and only then may the owners free the buffers those ops point to. */
    if (io->ops)
        io->ops->destroy(io);
    io->ops = NULL;
    io->reap = (struct mtls_list){0};
    io->deferred = (struct mtls_list){0};
}

/* ---- sockets --------------------------------------------------------------- */

void mtls_io_attach(struct mtls_io *io, struct mtls_io_sock *s, int fd,
                    const struct mtls_io_handler *h)
{
    memset(s, 0, sizeof(*s));
    s->io = io;
    s->h = h;
    s->fd = fd;
    s->timer = MTLS_TIMER_NONE;
}

void mtls_io_recv_start(struct mtls_io_sock *s)
{
    if (s->flags & MTLS_IO_F_CLOSED)
        return;
    s->flags |= MTLS_IO_F_RECV_WANT;
    s->io->ops->recv_start(s);
}

void mtls_io_recv_stop(struct mtls_io_sock *s)
{
    s->flags &= (uint8_t)~MTLS_IO_F_RECV_WANT;
    s->io->ops->recv_stop(s);
}

bool mtls_io_receiving(const struct mtls_io_sock *s)
{
    /* Armed but no longer wanted is a stop whose cancellation has not
     * landed yet (io_uring): not receiving, so that a start after it sets
     * RECV_WANT again and the cancelled receive is re-armed. */
    return (s->flags & (MTLS_IO_F_RECV_ARMED | MTLS_IO_F_RECV_WANT)) ==
           (MTLS_IO_F_RECV_ARMED | MTLS_IO_F_RECV_WANT);
}

void mtls_io_send(struct mtls_io_sock *s, const void *p, size_t n)
{
    if (s->flags & (MTLS_IO_F_CLOSED | MTLS_IO_F_SENDING))
        return;
    s->out = p;
    s->out_len = n;
    s->out_done = 0;
    s->flags |= MTLS_IO_F_SENDING;
    s->io->ops->send(s);
}

bool mtls_io_sending(const struct mtls_io_sock *s)
{
    return s->flags & MTLS_IO_F_SENDING;
}

int mtls_io_shutdown_write(struct mtls_io_sock *s)
{
    return shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void reap_later(struct mtls_io_sock *s)
{
    mtls_list_push_back(&s->io->reap, &s->link);
}

void mtls_io_close(struct mtls_io_sock *s)
{
    if (s->flags & MTLS_IO_F_CLOSED)
        return;
    mtls_io_timer_clear(s);
    s->flags |= MTLS_IO_F_CLOSED;
    s->flags &= (uint8_t)~MTLS_IO_F_RECV_WANT;
    s->io->ops->close(s);
    if (s->refs == 0)
        reap_later(s);
}

void mtls_io_discard(struct mtls_io_sock *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

void mtls_io_unref(struct mtls_io_sock *s)
{
    s->refs--;
    if ((s->flags & MTLS_IO_F_CLOSED) && s->refs == 0)
        reap_later(s);
}

void mtls_io_defer(struct mtls_io_sock *s)
{
    struct mtls_io *io = s->io;

    if (s->flags & MTLS_IO_F_DEFERRED)
        return;
    s->flags |= MTLS_IO_F_DEFERRED;
    mtls_io_ref(s);
    mtls_list_push_back(&io->deferred, &s->link);
}

void mtls_io_deliver_recv(struct mtls_io_sock *s, const uint8_t *p, ssize_t n)
{
    if (!(s->flags & MTLS_IO_F_CLOSED))
        s->h->on_recv(s, p, n);
}

void mtls_io_deliver_sent(struct mtls_io_sock *s, ssize_t res)
{
    /* Cleared first: the owner may send its next flight from on_sent. */
    s->flags &= (uint8_t)~MTLS_IO_F_SENDING;
    if (!(s->flags & MTLS_IO_F_CLOSED))
        s->h->on_sent(s, res);
}

/* Results a backend had at hand inside an owner's call (epoll's immediate
 * writes and refused registrations), delivered here instead. */
static void run_deferred(struct mtls_io *io)
{
    struct mtls_link *l;

    while ((l = io->deferred.head)) {
        struct mtls_io_sock *s = mtls_container_of(l, struct mtls_io_sock, link);

        mtls_list_unlink(&io->deferred, l);
        s->flags &= (uint8_t)~MTLS_IO_F_DEFERRED;
        if ((s->flags & MTLS_IO_F_SENDING) && !(s->flags & MTLS_IO_F_BLOCKED) &&
            (s->err < 0 || s->out_done == s->out_len)) {
            ssize_t res = s->err < 0 ? s->err : (ssize_t)s->out_len;
            s->err = 0;
            mtls_io_deliver_sent(s, res);
        } else if (s->err < 0) {
            int e = s->err;
            s->err = 0;
            mtls_io_deliver_recv(s, NULL, e);
        }
        mtls_io_unref(s);
    }
}

/* ---- timers ------------------------------------------------------------------ */

void mtls_io_timer_clear(struct mtls_io_sock *s)
{
    if (s->timer == MTLS_TIMER_NONE)
        return;
    mtls_list_unlink(&s->io->timers[s->timer], &s->timer_link);
    s->timer = MTLS_TIMER_NONE;
}

void mtls_io_timer_set(struct mtls_io_sock *s, enum mtls_timer t)
{
    struct mtls_io *io = s->io;

    mtls_io_timer_clear(s);
    if (s->flags & MTLS_IO_F_CLOSED)
        return;
    s->timer = (uint8_t)t;
    s->deadline_ms = io->now_ms + io->timeout_ms[t];
    mtls_list_push_back(&io->timers[t], &s->timer_link);
}

static struct mtls_io_sock *timer_head(struct mtls_io *io, int t)
{
    struct mtls_link *l = io->timers[t].head;
    return l ? mtls_container_of(l, struct mtls_io_sock, timer_link) : NULL;
}

static void expire_timers(struct mtls_io *io)
{
    if (io->accept_retry_ms && io->accept_retry_ms <= io->now_ms) {
        io->accept_retry_ms = 0;
        if (io->accepting && !io->accept_armed)
            io->ops->accept_arm(io);
    }
    for (int t = 0; t < MTLS_TIMER_NONE; t++) {
        struct mtls_io_sock *s;
        while ((s = timer_head(io, t)) && s->deadline_ms <= io->now_ms) {
            mtls_io_timer_clear(s);
            s->h->on_timeout(s, (enum mtls_timer)t);
        }
    }
}

static uint64_t next_wait_ms(struct mtls_io *io, uint64_t wait)
{
    if (io->deferred.head)
        return 0;
    for (int t = 0; t < MTLS_TIMER_NONE; t++) {
        struct mtls_io_sock *s = timer_head(io, t);
        if (s) {
            uint64_t d = s->deadline_ms > io->now_ms ? s->deadline_ms - io->now_ms : 0;
            if (d < wait)
                wait = d;
        }
    }
    if (io->accept_retry_ms) {
        uint64_t d = io->accept_retry_ms > io->now_ms ? io->accept_retry_ms - io->now_ms : 0;
        if (d < wait)
            wait = d;
    }
    return wait;
}

/* ---- accept and wake ------------------------------------------------------- */

void mtls_io_listen(struct mtls_io *io, int fd, void (*on_accept)(void *arg, int fd_or_err),
                    void *arg)
{
    io->listen_fd = fd;
    io->on_accept = on_accept;
    io->accept_arg = arg;
    io->accepting = true;
    io->ops->accept_arm(io);
}

void mtls_io_listen_stop(struct mtls_io *io)
{
    io->accepting = false;
    io->accept_retry_ms = 0;
    if (io->accept_armed)
        io->ops->accept_disarm(io);
}

void mtls_io_deliver_accept(struct mtls_io *io, int res, bool ended)
{
    if (ended) {
        io->accept_armed = false;
        if (io->accepting) {
            /* Out of descriptors or memory: retry in a while rather than
             * spin on the same error. */
            if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS)
                io->accept_retry_ms = io->now_ms + ACCEPT_RETRY_MS;
            else
                io->ops->accept_arm(io);
        }
    }
    if (res == -ECANCELED)
        return;
    io->on_accept(io->accept_arg, res);
}

void mtls_io_wake_watch(struct mtls_io *io, int fd, void (*on_wake)(void *arg), void *arg)
{
    io->wake_fd = fd;
    io->on_wake = on_wake;
    io->wake_arg = arg;
    io->ops->wake_arm(io);
}

/* ---- the loop ---------------------------------------------------------------- */

int mtls_io_poll(struct mtls_io *io, uint64_t max_wait_ms)
{
    int ret = io->ops->wait(io, next_wait_ms(io, max_wait_ms));

    if (ret < 0)
        return ret;
    run_deferred(io);
    expire_timers(io);
    run_deferred(io);
    /* Owners are freed only here, after the batch: no completion of this
     * batch can name a freed socket. */
    for (struct mtls_link *l; (l = io->reap.head);) {
        struct mtls_io_sock *s = mtls_container_of(l, struct mtls_io_sock, link);

        mtls_list_unlink(&io->reap, l);
        mtls_io_discard(s);
        s->h->on_closed(s);
    }
    return 0;
}
