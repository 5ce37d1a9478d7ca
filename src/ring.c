/* ring.c: io_uring set-up and operations (liburing's examples/proxy.c is
 * the model). */
#include "mtlsd/ring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int mtls_ring_init(struct mtls_ring *r, unsigned cq_entries, unsigned nbufs,
                   unsigned buf_size, char *err, size_t errlen)
{
    /* Most to least capable: SINGLE_ISSUER + DEFER_TASKRUN run completions
     * only when we wait, on our thread; COOP_TASKRUN avoids IPIs. The ring
     * is made here, on the main thread, but only the worker may submit to a
     * SINGLE_ISSUER ring: it starts disabled and the worker enables it
     * (mtls_ring_enable), which makes that thread the issuer. */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    struct io_uring_params p;
    struct io_uring_buf_reg reg;
    struct io_uring_probe *probe;
    int ret = -ENOSYS;

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        memset(&p, 0, sizeof(p));
        /* An explicit CQ size: the multishot accept posts many CQEs. */
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = cq_entries;
        ret = io_uring_queue_init_params(1024, &r->ring, &p);
        if (ret == 0) {
            r->flags = tries[i];
            break;
        }
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0) {
        snprintf(err, errlen,
                 "io_uring is not available (%s)%s", strerror(-ret),
                 ret == -EPERM || ret == -ENOSYS
                     ? ": mtlsd needs Linux >= 6.0 with io_uring enabled "
                       "(kernel.io_uring_disabled=0, not blocked by seccomp)"
                     : "");
        return ret;
    }
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_FAST_POLL)) {
        snprintf(err, errlen, "this kernel's io_uring lacks NODROP/FAST_POLL (needs >= 5.19)");
        goto fail;
    }
    probe = io_uring_get_probe_ring(&r->ring);
    if (!probe || !io_uring_opcode_supported(probe, IORING_OP_ACCEPT) ||
        !io_uring_opcode_supported(probe, IORING_OP_RECV) ||
        !io_uring_opcode_supported(probe, IORING_OP_SEND) ||
        !io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL)) {
        if (probe)
            io_uring_free_probe(probe);
        snprintf(err, errlen, "this kernel's io_uring lacks accept/recv/send/cancel");
        ret = -ENOTSUP;
        goto fail;
    }
    io_uring_free_probe(probe);

    /* The provided-buffer ring: receive buffers belong to the worker, so an
     * idle connection holds none. */
    r->nbufs = nbufs;
    r->buf_size = buf_size;
    r->br_bytes = nbufs * sizeof(struct io_uring_buf) + (size_t)nbufs * buf_size;
    void *mem = mmap(NULL, r->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                     -1, 0);
    if (mem == MAP_FAILED) {
        ret = -errno;
        snprintf(err, errlen, "cannot map %zu bytes of receive buffers: %s", r->br_bytes,
                 strerror(errno));
        goto fail;
    }
    r->br = mem;
    r->bufs = (uint8_t *)mem + nbufs * sizeof(struct io_uring_buf);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = nbufs;
    reg.bgid = MTLS_RING_BGID;
    ret = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (ret < 0) {
        snprintf(err, errlen, "kernel refused a provided-buffer ring (%s): needs Linux >= 5.19",
                 strerror(-ret));
        munmap(mem, r->br_bytes);
        r->br = NULL;
        goto fail;
    }
    io_uring_buf_ring_init(r->br);
    r->br_mask = io_uring_buf_ring_mask(nbufs);
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(r->br, mtls_ring_buf(r, i), buf_size, (unsigned short)i,
                              r->br_mask, (int)i);
    io_uring_buf_ring_advance(r->br, (int)nbufs);
    return 0;
fail:
    io_uring_queue_exit(&r->ring);
    return ret < 0 ? ret : -EINVAL;
}

int mtls_ring_enable(struct mtls_ring *r)
{
    if (!(r->flags & IORING_SETUP_R_DISABLED))
        return 0;
    /* liburing 2.3 declares io_uring_enable_rings() but does not export it. */
    long ret = syscall(__NR_io_uring_register, r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                       NULL, 0);
    return ret < 0 ? -errno : 0;
}

void mtls_ring_exit(struct mtls_ring *r)
{
    io_uring_queue_exit(&r->ring);
    if (r->br)
        munmap(r->br, r->br_bytes);
    r->br = NULL;
}

struct io_uring_sqe *mtls_ring_sqe(struct mtls_ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

    while (!sqe) {
        /* Queue full: submit what is there and try again. */
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
    }
    return sqe;
}

void mtls_ring_accept(struct mtls_ring *r, int fd, void *owner)
{
    struct io_uring_sqe *sqe = mtls_ring_sqe(r);

    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, mtls_ud(owner, MTLS_OP_ACCEPT));
}

void mtls_ring_recv(struct mtls_ring *r, int fd, void *owner, bool poll_first)
{
    struct io_uring_sqe *sqe = mtls_ring_sqe(r);

    /* One shot, one provided buffer: see io_uring.c for why not multishot. */
    io_uring_prep_recv(sqe, fd, NULL, r->buf_size, 0);
    if (poll_first)
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = MTLS_RING_BGID;
    io_uring_sqe_set_data64(sqe, mtls_ud(owner, MTLS_OP_RECV));
}

void mtls_ring_send(struct mtls_ring *r, int fd, const void *p, size_t n, void *owner)
{
    struct io_uring_sqe *sqe = mtls_ring_sqe(r);

    io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, mtls_ud(owner, MTLS_OP_SEND));
}

void mtls_ring_read(struct mtls_ring *r, int fd, void *p, size_t n, void *owner,
                    enum mtls_op op)
{
    struct io_uring_sqe *sqe = mtls_ring_sqe(r);

    io_uring_prep_read(sqe, fd, p, (unsigned)n, 0);
    io_uring_sqe_set_data64(sqe, mtls_ud(owner, op));
}

void mtls_ring_cancel(struct mtls_ring *r, void *owner, enum mtls_op op)
{
    struct io_uring_sqe *sqe = mtls_ring_sqe(r);

    io_uring_prep_cancel64(sqe, mtls_ud(owner, op), 0);
    io_uring_sqe_set_data64(sqe, mtls_ud(NULL, MTLS_OP_CANCEL));
}

void mtls_ring_buf_return(struct mtls_ring *r, unsigned bid)
{
    io_uring_buf_ring_add(r->br, mtls_ring_buf(r, bid), r->buf_size, (unsigned short)bid,
                          r->br_mask, 0);
    io_uring_buf_ring_advance(r->br, 1);
}
