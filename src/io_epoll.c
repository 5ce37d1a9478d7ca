/* io_epoll.c: the epoll backend, for hosts where io_uring is refused
 * (container seccomp profiles, kernel.io_uring_disabled). Level-triggered:
 * a socket is registered for EPOLLIN while its owner wants bytes and for
 * EPOLLOUT only while a flight is blocked on a full socket buffer, so an
 * owner that stops reading costs no wake-ups. Reads go into one buffer per
 * worker, lent to on_recv for the duration of the call, so an idle
 * connection holds no buffer here either. Writes are tried at once; their
 * result is delivered after the batch (mtls_io_defer), never from inside
 * the owner's own call. */
#define _GNU_SOURCE
#include "mtlsd/io_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define ACCEPT_BATCH 64   /* accept4 calls per readiness of the listener */
#define READS_PER_EVENT 4 /* then others get their turn; level-triggered */

/* epoll_event.data: sockets are 8-byte aligned, the low bits say what. */
enum { TAG_SOCK = 0, TAG_LISTEN = 1, TAG_WAKE = 2 };

struct epoll_be {
    int epfd;
    uint8_t *buf;
    size_t buf_size;
    struct epoll_event ev[MAX_EVENTS];
};

static int ctl(struct epoll_be *be, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    e.events = events;
    e.data.u64 = data;
    return epoll_ctl(be->epfd, op, fd, &e) < 0 ? -errno : 0;
}

static int epoll_init(struct mtls_io *io, const struct mtls_io_params *p, char *err,
                      size_t errlen)
{
    struct epoll_be *be = calloc(1, sizeof(*be));

    if (!be) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    be->buf_size = p->recv_buffer_size;
    be->buf = malloc(be->buf_size);
    be->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!be->buf || be->epfd < 0) {
        snprintf(err, errlen, "epoll: %s", be->buf ? strerror(errno) : "out of memory");
        if (be->epfd >= 0)
            close(be->epfd);
        free(be->buf);
        free(be);
        return -1;
    }
    io->be = be;
    return 0;
}

static int epoll_start(struct mtls_io *io)
{
    (void)io;
    return 0;
}

static void epoll_destroy(struct mtls_io *io)
{
    struct epoll_be *be = io->be;

    if (!be)
        return;
    close(be->epfd);
    free(be->buf);
    free(be);
    io->be = NULL;
}

static void epoll_accept_arm(struct mtls_io *io)
{
    struct epoll_be *be = io->be;
    int fl = fcntl(io->listen_fd, F_GETFL);

    /* The listener is this worker's own (SO_REUSEPORT): non-blocking so
     * that a batch of accept4 ends with EAGAIN. */
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(io->listen_fd, F_SETFL, fl | O_NONBLOCK);
    int ret = ctl(be, EPOLL_CTL_ADD, io->listen_fd, EPOLLIN, (uint64_t)(uintptr_t)io | TAG_LISTEN);
    if (ret < 0) {
        /* Try again after a pause (io.c), as for a full descriptor table. */
        io->accept_retry_ms = io->now_ms + 100;
        io->on_accept(io->accept_arg, ret);
        return;
    }
    io->accept_armed = true;
}

static void epoll_accept_disarm(struct mtls_io *io)
{
    ctl(io->be, EPOLL_CTL_DEL, io->listen_fd, 0, 0);
    io->accept_armed = false;
}

static void on_listen(struct mtls_io *io)
{
    for (int i = 0; i < ACCEPT_BATCH && io->accept_armed; i++) {
        int fd = accept4(io->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            mtls_io_deliver_accept(io, fd, false);
            continue;
        }
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO)
            continue;
        if (e == EMFILE || e == ENFILE || e == ENOMEM || e == ENOBUFS) {
            /* Level-triggered: the listener stays readable. Step out of
             * the set; io.c re-arms after a pause. */
            epoll_accept_disarm(io);
            mtls_io_deliver_accept(io, -e, true);
            return;
        }
        mtls_io_deliver_accept(io, -e, false);
        return;
    }
}

static void epoll_wake_arm(struct mtls_io *io)
{
    ctl(io->be, EPOLL_CTL_ADD, io->wake_fd, EPOLLIN, (uint64_t)(uintptr_t)io | TAG_WAKE);
}

static void on_wake(struct mtls_io *io)
{
    uint64_t v;

    if (read(io->wake_fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: already drained; nothing else is possible on an eventfd */
    }
    io->on_wake(io->wake_arg);
}

/* Registers the interest the socket's flags call for. */
static void update(struct mtls_io_sock *s)
{
    struct epoll_be *be = s->io->be;
    uint32_t want = 0;
    int op, ret;

    if (!(s->flags & MTLS_IO_F_CLOSED)) {
        if ((s->flags & MTLS_IO_F_RECV_WANT) && !(s->flags & MTLS_IO_F_EOF))
            want |= EPOLLIN;
        if (s->flags & MTLS_IO_F_BLOCKED)
            want |= EPOLLOUT;
    }
    if (want & EPOLLIN)
        s->flags |= MTLS_IO_F_RECV_ARMED;
    else
        s->flags &= (uint8_t)~MTLS_IO_F_RECV_ARMED;
    if (want == s->events)
        return;
    op = s->events == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    ret = ctl(be, op, s->fd, want, (uint64_t)(uintptr_t)s | TAG_SOCK);
    if (ret < 0 && !(s->flags & MTLS_IO_F_CLOSED)) {
        /* Out of memory for the registration: the socket cannot be served;
         * its owner hears it as an error, after this call. */
        s->flags |= MTLS_IO_F_EOF;
        s->flags &= (uint8_t)~(MTLS_IO_F_RECV_ARMED | MTLS_IO_F_BLOCKED);
        s->err = ret;
        mtls_io_defer(s);
        if (s->events && op != EPOLL_CTL_DEL)
            ctl(be, EPOLL_CTL_DEL, s->fd, 0, 0);
        s->events = 0;
        return;
    }
    s->events = want;
}

static void epoll_recv_start(struct mtls_io_sock *s)
{
    update(s);
}

static void epoll_recv_stop(struct mtls_io_sock *s)
{
    update(s);
}

/* Writes until done, blocked or failed. */
static void write_some(struct mtls_io_sock *s)
{
    while (s->out_done < s->out_len) {
        ssize_t n = send(s->fd, s->out + s->out_done, s->out_len - s->out_done, MSG_NOSIGNAL);
        if (n > 0) {
            s->out_done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s->flags |= MTLS_IO_F_BLOCKED;
            return;
        }
        s->err = n < 0 ? -errno : -EPIPE;
        break;
    }
    s->flags &= (uint8_t)~MTLS_IO_F_BLOCKED;
}

static void epoll_send(struct mtls_io_sock *s)
{
    write_some(s);
    if (s->flags & MTLS_IO_F_BLOCKED)
        update(s);
    else
        mtls_io_defer(s);   /* on_sent after this batch */
}

static void epoll_close(struct mtls_io_sock *s)
{
    /* No DEL: closing the descriptor at reap time removes it, and events
     * until then find the socket closed. */
    (void)s;
}

static void on_sock(struct mtls_io_sock *s, uint32_t ev)
{
    struct epoll_be *be = s->io->be;

    if (s->flags & MTLS_IO_F_CLOSED)
        return;   /* closed earlier in this batch; reaped after it */
    if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (s->flags & MTLS_IO_F_BLOCKED)) {
        write_some(s);
        if (!(s->flags & MTLS_IO_F_BLOCKED)) {
            ssize_t res = s->err < 0 ? s->err : (ssize_t)s->out_len;
            s->err = 0;
            update(s);
            mtls_io_deliver_sent(s, res);
        }
    }
    if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if ((s->flags & (MTLS_IO_F_CLOSED | MTLS_IO_F_EOF)) || !(s->flags & MTLS_IO_F_RECV_WANT))
            return;
        ssize_t n = recv(s->fd, be->buf, be->buf_size, 0);
        if (n > 0) {
            mtls_io_deliver_recv(s, be->buf, n);
            if ((size_t)n < be->buf_size)
                return;   /* drained, most likely: epoll says if not */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF or an error: no more reading, and level-triggered must not
         * report it again. */
        int res = n < 0 ? -errno : 0;
        s->flags |= MTLS_IO_F_EOF;
        update(s);
        mtls_io_deliver_recv(s, NULL, res);
        return;
    }
}

static int epoll_wait_once(struct mtls_io *io, uint64_t wait_ms)
{
    struct epoll_be *be = io->be;
    int n = epoll_wait(be->epfd, be->ev, MAX_EVENTS,
                       wait_ms > 1000000 ? 1000000 : (int)wait_ms);

    if (n < 0 && errno != EINTR)
        return -errno;
    mtls_io_clock(io);
    for (int i = 0; i < n; i++) {
        uint64_t d = be->ev[i].data.u64;
        void *p = (void *)(uintptr_t)(d & ~(uint64_t)7);
        switch (d & 7) {
        case TAG_LISTEN:
            if (io->accept_armed)
                on_listen(io);
            break;
        case TAG_WAKE:
            on_wake(io);
            break;
        default:
            on_sock(p, be->ev[i].events);
            break;
        }
    }
    return 0;
}

const struct mtls_io_ops mtls_io_epoll_ops = {
    .name = "epoll",
    .init = epoll_init,
    .start = epoll_start,
    .destroy = epoll_destroy,
    .accept_arm = epoll_accept_arm,
    .accept_disarm = epoll_accept_disarm,
    .wake_arm = epoll_wake_arm,
    .recv_start = epoll_recv_start,
    .recv_stop = epoll_recv_stop,
    .send = epoll_send,
    .close = epoll_close,
    .wait = epoll_wait_once,
};
