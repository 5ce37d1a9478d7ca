/* io_uring.c: the io_uring backend. Multishot accept, single-shot receives
 * into the provided-buffer ring (an idle connection holds no buffer), sends
 * of whole flights, cancellation; SINGLE_ISSUER + DEFER_TASKRUN where the
 * kernel has them (ring.c). Every SQE that names a socket holds a reference
 * until its last CQE (one without IORING_CQE_F_MORE).
 *
 * Why receives are single-shot: a multishot receive moves whatever the
 * socket holds into as many ring buffers as it finds, on each wake-up,
 * before the loop sees the first completion, so a connection that paused
 * (its output backlog full, or a slow upstream) went on taking buffers
 * until its cancellation landed: 1.6 MB was seen for one connection on
 * Linux 6.18, and all of it had to be kept. With one receive of one buffer
 * in flight, a paused connection takes at most that buffer after it
 * stopped, so its input is bounded by a few buffers as on epoll (config.c,
 * max_unread), whatever the sender does.
 * The cost is one SQE per receive, submitted with the batch's other SQEs
 * in the same system call.
 */
#include "mtlsd/io_backend.h"
#include "mtlsd/ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct uring_be {
    struct mtls_ring ring;
    uint64_t wake_val;
};

static struct mtls_ring *ring_of(struct mtls_io *io)
{
    return &((struct uring_be *)io->be)->ring;
}

static unsigned pow2_at_least(unsigned v)
{
    unsigned p = 1;

    while (p < v && p < (1u << 20))
        p <<= 1;
    return p;
}

static unsigned cq_entries(const struct mtls_io_params *p)
{
    /* Every connection can have a recv and a send completion pending, plus
     * a cancellation each, and the multishot accept posts several: size the
     * CQ for that. */
    unsigned cq = pow2_at_least(p->max_conns * 4 + 1024);
    return cq > 65536 ? 65536 : cq;
}

int mtls_io_uring_probe(const struct mtls_io_params *p, char *why, size_t whylen)
{
    struct mtls_ring r;
    int ret = mtls_ring_init(&r, cq_entries(p), p->recv_buffers, p->recv_buffer_size, why,
                             whylen);

    if (ret == 0)
        mtls_ring_exit(&r);
    return ret;
}

static int uring_init(struct mtls_io *io, const struct mtls_io_params *p, char *err,
                      size_t errlen)
{
    struct uring_be *be = calloc(1, sizeof(*be));

    if (!be) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (mtls_ring_init(&be->ring, cq_entries(p), p->recv_buffers, p->recv_buffer_size, err,
                       errlen) < 0) {
        free(be);
        return -1;
    }
    io->be = be;
    return 0;
}

static int uring_start(struct mtls_io *io)
{
    return mtls_ring_enable(ring_of(io));
}

static void uring_destroy(struct mtls_io *io)
{
    struct uring_be *be = io->be;

    if (!be)
        return;
    mtls_ring_exit(&be->ring);
    free(be);
    io->be = NULL;
}

static void uring_accept_arm(struct mtls_io *io)
{
    mtls_ring_accept(ring_of(io), io->listen_fd, io);
    io->accept_armed = true;
}

static void uring_accept_disarm(struct mtls_io *io)
{
    /* The cancelled accept's last CQE ends it (-ECANCELED). */
    mtls_ring_cancel(ring_of(io), io, MTLS_OP_ACCEPT);
}

static void uring_wake_arm(struct mtls_io *io)
{
    struct uring_be *be = io->be;

    mtls_ring_read(&be->ring, io->wake_fd, &be->wake_val, sizeof(be->wake_val), io,
                   MTLS_OP_WAKE);
}

static void arm_recv(struct mtls_io_sock *s, bool poll_first)
{
    mtls_ring_recv(ring_of(s->io), s->fd, s, poll_first);
    s->flags |= MTLS_IO_F_RECV_ARMED;
    mtls_io_ref(s);
}

static void uring_recv_start(struct mtls_io_sock *s)
{
    /* Still armed (maybe with a cancellation on its way, or its completion
     * being delivered): that receive's CQE re-arms it, as RECV_WANT is set
     * again. */
    if (!(s->flags & MTLS_IO_F_RECV_ARMED))
        arm_recv(s, false);
}

/* A receive whose completion is being delivered is over: cancelling it
 * would only cost an SQE (and find nothing). */
static bool recv_in_kernel(const struct mtls_io_sock *s)
{
    return (s->flags & (MTLS_IO_F_RECV_ARMED | MTLS_IO_F_RECV_ENDING)) ==
           MTLS_IO_F_RECV_ARMED;
}

static void uring_recv_stop(struct mtls_io_sock *s)
{
    /* The receive in flight may still complete with one buffer: the owner
     * keeps it, and that is the whole overshoot of a stop. */
    if (recv_in_kernel(s))
        mtls_ring_cancel(ring_of(s->io), s, MTLS_OP_RECV);
}

static void uring_send(struct mtls_io_sock *s)
{
    mtls_ring_send(ring_of(s->io), s->fd, s->out + s->out_done, s->out_len - s->out_done, s);
    mtls_io_ref(s);
}

static void uring_close(struct mtls_io_sock *s)
{
    if (recv_in_kernel(s))
        mtls_ring_cancel(ring_of(s->io), s, MTLS_OP_RECV);
    if (s->flags & MTLS_IO_F_SENDING)
        mtls_ring_cancel(ring_of(s->io), s, MTLS_OP_SEND);
}

static void on_recv_cqe(struct mtls_io_sock *s, int res, unsigned flags)
{
    struct mtls_ring *r = ring_of(s->io);

    /* A single-shot receive: this is its only CQE. While it is delivered,
     * a stop needs no cancellation and a start no new receive (it is re-armed
     * below if the owner wants bytes by then). */
    s->flags |= MTLS_IO_F_RECV_ENDING;
    if (res > 0) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        mtls_io_deliver_recv(s, mtls_ring_buf(r, bid), res);
        /* The owner copied what it keeps: the buffer goes back at once. */
        mtls_ring_buf_return(r, bid);
    } else if (res != -ENOBUFS && res != -ECANCELED) {
        mtls_io_deliver_recv(s, NULL, res);   /* 0: EOF */
    }
    s->flags &= (uint8_t)~(MTLS_IO_F_RECV_ARMED | MTLS_IO_F_RECV_ENDING);
    /* Re-arm unless stopped on purpose. -ENOBUFS is back-pressure from the
     * buffer ring, not an error: just ask again. -ECANCELED: a stop
     * cancelled it, but the owner may have started again since. A short
     * read most likely emptied the socket: wait for readiness first. */
    if (res != 0 && (s->flags & MTLS_IO_F_RECV_WANT) && !(s->flags & MTLS_IO_F_CLOSED) &&
        (res > 0 || res == -ENOBUFS || res == -ECANCELED))
        arm_recv(s, res > 0 && (unsigned)res < r->buf_size);
    mtls_io_unref(s);
}

static void on_send_cqe(struct mtls_io_sock *s, int res)
{
    if (res >= 0 && !(s->flags & MTLS_IO_F_CLOSED)) {
        s->out_done += (size_t)res;
        if (s->out_done < s->out_len) {
            /* Short send: the rest goes first, still from the same flight. */
            uring_send(s);
            mtls_io_unref(s);
            return;
        }
    }
    mtls_io_deliver_sent(s, res < 0 ? res : (ssize_t)s->out_len);
    mtls_io_unref(s);
}

static void dispatch(struct mtls_io *io, struct io_uring_cqe *cqe)
{
    void *owner = mtls_ud_owner(cqe->user_data);

    switch (mtls_ud_op(cqe->user_data)) {
    case MTLS_OP_ACCEPT:
        mtls_io_deliver_accept(io, cqe->res, !(cqe->flags & IORING_CQE_F_MORE));
        break;
    case MTLS_OP_RECV:
        on_recv_cqe(owner, cqe->res, cqe->flags);
        break;
    case MTLS_OP_SEND:
        on_send_cqe(owner, cqe->res);
        break;
    case MTLS_OP_WAKE:
        io->on_wake(io->wake_arg);
        break;
    case MTLS_OP_CANCEL:
    default:
        break;
    }
}

static int uring_wait(struct mtls_io *io, uint64_t wait_ms)
{
    struct io_uring *ring = &ring_of(io)->ring;
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;
    unsigned head, count = 0;
    int ret;

    ts.tv_sec = (long long)(wait_ms / 1000);
    ts.tv_nsec = (long long)(wait_ms % 1000) * 1000000;
    ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
        return ret;
    mtls_io_clock(io);
    io_uring_for_each_cqe(ring, head, cqe) {
        dispatch(io, cqe);
        count++;
    }
    io_uring_cq_advance(ring, count);
    return 0;
}

const struct mtls_io_ops mtls_io_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .start = uring_start,
    .destroy = uring_destroy,
    .accept_arm = uring_accept_arm,
    .accept_disarm = uring_accept_disarm,
    .wake_arm = uring_wake_arm,
    .recv_start = uring_recv_start,
    .recv_stop = uring_recv_stop,
    .send = uring_send,
    .close = uring_close,
    .wait = uring_wait,
};
