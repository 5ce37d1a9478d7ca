/* Between io.c (timers, reference counts, delivery) and the backends
 * (io_uring.c, io_epoll.c). Nothing else includes this header. */
#ifndef MTLSD_IO_BACKEND_H
#define MTLSD_IO_BACKEND_H

#include "mtlsd/io.h"

enum {
    MTLS_IO_F_RECV_WANT = 1,   /* the owner wants bytes */
    MTLS_IO_F_RECV_ARMED = 2,  /* the backend is receiving */
    MTLS_IO_F_SENDING = 4,     /* a flight not yet reported */
    MTLS_IO_F_CLOSED = 8,      /* mtls_io_close was called */
    MTLS_IO_F_EOF = 16,        /* epoll: read returned 0 or an error */
    MTLS_IO_F_BLOCKED = 32,    /* epoll: the flight waits for EPOLLOUT */
    MTLS_IO_F_DEFERRED = 64,   /* on the deferred list */
    MTLS_IO_F_RECV_ENDING = 128, /* io_uring: the receive's CQE is being delivered */
};

struct mtls_io_ops {
    const char *name;
    int (*init)(struct mtls_io *io, const struct mtls_io_params *p, char *err, size_t errlen);
    int (*start)(struct mtls_io *io);
    void (*destroy)(struct mtls_io *io);
    void (*accept_arm)(struct mtls_io *io);
    void (*accept_disarm)(struct mtls_io *io);
    void (*wake_arm)(struct mtls_io *io);
    void (*recv_start)(struct mtls_io_sock *s);
    void (*recv_stop)(struct mtls_io_sock *s);
    void (*send)(struct mtls_io_sock *s);      /* s->out + out_done .. out_len */
    void (*close)(struct mtls_io_sock *s);     /* cancel what is in flight */
    /* Waits up to wait_ms, calls mtls_io_clock, then delivers. */
    int (*wait)(struct mtls_io *io, uint64_t wait_ms);
};

extern const struct mtls_io_ops mtls_io_uring_ops;
extern const struct mtls_io_ops mtls_io_epoll_ops;

/* io_uring.c: sets up and tears down a ring with everything the backend
 * needs; 0 or -errno with `why` filled. */
int mtls_io_uring_probe(const struct mtls_io_params *p, char *why, size_t whylen);

/* For the backends: */
void mtls_io_clock(struct mtls_io *io);
static inline void mtls_io_ref(struct mtls_io_sock *s)
{
    s->refs++;
}
void mtls_io_unref(struct mtls_io_sock *s);
/* Queue s for a result delivered after this batch (holds a reference):
 * never call an owner back from inside its own call. */
void mtls_io_defer(struct mtls_io_sock *s);
/* Deliveries: nothing reaches a closed socket's owner. */
void mtls_io_deliver_recv(struct mtls_io_sock *s, const uint8_t *p, ssize_t n);
void mtls_io_deliver_sent(struct mtls_io_sock *s, ssize_t res);
/* An accept result; `ended`: the backend stopped accepting because of it. */
void mtls_io_deliver_accept(struct mtls_io *io, int res, bool ended);

#endif
