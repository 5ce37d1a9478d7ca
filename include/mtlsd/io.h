/* The I/O backend interface: what a worker's connections (and later its
 * upstreams) may ask of the loop, and what the loop tells them. A
 * connection never sees a completion, an io_uring flag or an epoll event:
 * it embeds a struct mtls_io_sock, starts and stops receiving, sends whole
 * flights, sets timers and closes; the loop calls its handler back.
 *
 * Ownership rules (the same on every backend):
 * - the bytes given to on_recv are lent: copy what you keep before returning;
 *   receive buffers belong to the worker, so an idle socket holds none;
 * - the flight given to mtls_io_send belongs to the backend until on_sent;
 * - after mtls_io_close the socket gets no call but on_closed, which comes
 *   once no operation names it any more (never inside the caller's stack):
 *   free the owner there. The reference counting of operations in flight
 *   lives in io.c and the backends, nowhere else.
 *
 * Errors are -errno, like a completion's result. */
#ifndef MTLSD_IO_H
#define MTLSD_IO_H

#include "mtlsd/config.h" /* enum mtls_io_backend */
#include "mtlsd/list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One fixed timeout per kind and worker, so each kind's list stays in
 * deadline order by appending. */
enum mtls_timer { MTLS_TIMER_HANDSHAKE, MTLS_TIMER_IDLE, MTLS_TIMER_LINGER, MTLS_TIMER_NONE };

struct mtls_io;
struct mtls_io_sock;

struct mtls_io_handler {
    /* n > 0: n lent bytes; 0: the peer's EOF; < 0: a receive error. */
    void (*on_recv)(struct mtls_io_sock *s, const uint8_t *p, ssize_t n);
    /* The whole flight went out (res = its length), or -errno. */
    void (*on_sent)(struct mtls_io_sock *s, ssize_t res);
    /* The timer of kind t expired (it is already cleared). */
    void (*on_timeout)(struct mtls_io_sock *s, enum mtls_timer t);
    /* After mtls_io_close, when no operation names s: free its owner. */
    void (*on_closed)(struct mtls_io_sock *s);
};

/* Embedded in its owner (8-byte aligned). Fields are the loop's. */
struct mtls_io_sock {
    struct mtls_io *io;
    const struct mtls_io_handler *h;
    int fd;
    uint8_t refs;          /* operations in flight or queued that name it */
    uint8_t flags;         /* MTLS_IO_F_* (io_backend.h) */
    uint8_t timer;         /* enum mtls_timer */
    uint32_t events;       /* epoll: the interest registered */
    int err;               /* epoll: a result waiting for delivery */
    const uint8_t *out;    /* the flight being sent */
    size_t out_len, out_done;
    uint64_t deadline_ms;
    struct mtls_link timer_link;
    struct mtls_link link; /* on the reap or the deferred list (never both: a
                            * deferred socket holds a reference) */
};

/* ---- for connection code ------------------------------------------------ */

/* Takes ownership of fd (closed by the loop before on_closed). */
void mtls_io_attach(struct mtls_io *io, struct mtls_io_sock *s, int fd,
                    const struct mtls_io_handler *h);
/* Receiving is on until stopped: bytes keep coming through on_recv. A stop
 * takes effect at once on epoll; on io_uring the one receive in flight may
 * still bring one buffer. */
void mtls_io_recv_start(struct mtls_io_sock *s);
void mtls_io_recv_stop(struct mtls_io_sock *s);
bool mtls_io_receiving(const struct mtls_io_sock *s);
/* One flight at a time (n > 0), reported once by on_sent when all of it
 * went out; short writes are the backend's business. */
void mtls_io_send(struct mtls_io_sock *s, const void *p, size_t n);
bool mtls_io_sending(const struct mtls_io_sock *s);
int mtls_io_shutdown_write(struct mtls_io_sock *s);
/* Cancels what is in flight; on_closed follows. Idempotent. */
void mtls_io_close(struct mtls_io_sock *s);
/* Worker teardown only: closes the descriptor, calls nothing. */
void mtls_io_discard(struct mtls_io_sock *s);
void mtls_io_timer_set(struct mtls_io_sock *s, enum mtls_timer t);
void mtls_io_timer_clear(struct mtls_io_sock *s);
/* Monotonic time read once per loop iteration, after the wait. */
uint64_t mtls_io_now_ms(const struct mtls_io *io);
uint64_t mtls_io_now_us(const struct mtls_io *io);

/* ---- for the worker ------------------------------------------------------ */

struct mtls_io_params {
    unsigned max_conns;        /* sizes the completion queue */
    unsigned recv_buffers;     /* io_uring: provided buffers (a power of two) */
    unsigned recv_buffer_size;
    uint64_t timeout_ms[MTLS_TIMER_NONE];
};

struct mtls_io_ops;

struct mtls_io {
    const struct mtls_io_ops *ops;
    void *be;                        /* the backend's state */
    enum mtls_io_backend kind;
    uint64_t now_ms, now_us;
    uint64_t timeout_ms[MTLS_TIMER_NONE];
    struct mtls_list timers[MTLS_TIMER_NONE];
    struct mtls_list reap;           /* closed, nothing in flight */
    struct mtls_list deferred;       /* results to deliver, in order */
    int listen_fd;
    bool accepting;                  /* wanted by the worker */
    bool accept_armed;               /* the backend is accepting */
    uint64_t accept_retry_ms;        /* re-arm then (0: no) */
    void (*on_accept)(void *arg, int fd_or_err);
    void *accept_arg;
    int wake_fd;
    void (*on_wake)(void *arg);
    void *wake_arg;
};

/* MTLS_IO_AUTO is resolved by the caller (mtls_io_resolve) first. */
int mtls_io_init(struct mtls_io *io, enum mtls_io_backend kind,
                 const struct mtls_io_params *p, char *err, size_t errlen);
/* On the worker's thread, before anything else: it becomes the issuer. */
int mtls_io_start(struct mtls_io *io);
void mtls_io_destroy(struct mtls_io *io);
/* Accepted sockets come to on_accept (non-blocking on epoll); errors too,
 * as -errno, for the log. Out of descriptors or memory, accepting pauses
 * for 100 ms instead of spinning on the same error. */
void mtls_io_listen(struct mtls_io *io, int fd, void (*on_accept)(void *arg, int fd_or_err),
                    void *arg);
void mtls_io_listen_stop(struct mtls_io *io);
/* An eventfd the main thread writes to: on_wake runs on the worker. */
void mtls_io_wake_watch(struct mtls_io *io, int fd, void (*on_wake)(void *arg), void *arg);
/* One iteration: waits at most max_wait_ms (less when a timer is due),
 * delivers completions, expires timers, calls on_closed for what was
 * closed. Returns -errno when the loop cannot go on. */
int mtls_io_poll(struct mtls_io *io, uint64_t max_wait_ms);

/* Decides `auto`: io_uring when the kernel and any seccomp filter allow
 * everything the io_uring backend needs, else epoll with `why` filled.
 * For MTLS_IO_URING, fails (-errno, `why` filled) where auto would fall
 * back. */
int mtls_io_resolve(enum mtls_io_backend want, const struct mtls_io_params *p,
                    enum mtls_io_backend *got, char *why, size_t whylen);
const char *mtls_io_backend_name(enum mtls_io_backend kind);

#endif
