/* All io_uring access goes through here: ring set-up with feature checks,
 * an SQE getter that submits when the queue is full, the user_data codec
 * and the provided-buffer ring for receives. Wrappers return -errno, like
 * cqe->res. */
#ifndef MTLSD_RING_H
#define MTLSD_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mtls_op {
    MTLS_OP_ACCEPT = 1,
    MTLS_OP_RECV,
    MTLS_OP_SEND,
    MTLS_OP_WAKE,
    MTLS_OP_CANCEL,   /* results of cancel requests: nothing to do */
};

/* Owners are at least 8-byte aligned: the op lives in the low 3 bits. */
static inline uint64_t mtls_ud(void *owner, enum mtls_op op)
{
    return (uint64_t)(uintptr_t)owner | (uint64_t)op;
}
static inline void *mtls_ud_owner(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~(uint64_t)7);
}
static inline enum mtls_op mtls_ud_op(uint64_t ud)
{
    return (enum mtls_op)(ud & 7);
}

struct mtls_ring {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    size_t br_bytes;
    unsigned nbufs;
    unsigned buf_size;
    int br_mask;
    unsigned flags;           /* IORING_SETUP_* actually in use */
};

#define MTLS_RING_BGID 0

int mtls_ring_init(struct mtls_ring *r, unsigned cq_entries, unsigned nbufs,
                   unsigned buf_size, char *err, size_t errlen);
/* Called by the thread that will submit: it becomes the ring's issuer. */
int mtls_ring_enable(struct mtls_ring *r);
void mtls_ring_exit(struct mtls_ring *r);

struct io_uring_sqe *mtls_ring_sqe(struct mtls_ring *r);

void mtls_ring_accept(struct mtls_ring *r, int fd, void *owner);
/* A single-shot receive into one provided buffer; poll_first: the socket
 * is probably empty, wait for readiness instead of trying at once. */
void mtls_ring_recv(struct mtls_ring *r, int fd, void *owner, bool poll_first);
void mtls_ring_send(struct mtls_ring *r, int fd, const void *p, size_t n, void *owner);
void mtls_ring_read(struct mtls_ring *r, int fd, void *p, size_t n, void *owner,
                    enum mtls_op op);
/* Cancels the op with this owner and kind; its CQE still arrives. */
void mtls_ring_cancel(struct mtls_ring *r, void *owner, enum mtls_op op);

static inline uint8_t *mtls_ring_buf(struct mtls_ring *r, unsigned bid)
{
    return r->bufs + (size_t)bid * r->buf_size;
}
/* Gives a provided buffer back to the kernel once its bytes are consumed. */
void mtls_ring_buf_return(struct mtls_ring *r, unsigned bid);

#endif
