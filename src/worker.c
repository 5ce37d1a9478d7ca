/* worker.c: one thread, one CPU, one I/O backend instance. Each loop
 * iteration (mtls_io_poll) waits for completions or the next deadline,
 * delivers them to the connections, expires timers and frees connections
 * that no operation names any more; then the worker flushes the access log
 * and checks its stop. */
#define _GNU_SOURCE
#include "mtlsd/worker.h"
#include "mtlsd/conn.h"
#include "mtlsd/log.h"
#include "mtlsd/proxy.h"
#include "mtlsd/access_log.h"
#include "mtlsd/net.h"

#include <errno.h>
#include <malloc.h>
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
/* Returning memory after a burst: glibc keeps freed chunks of the arenas
 * (fragmented by long-lived neighbours) mapped, so RSS would stay at the
 * burst's peak. Trimmed at most once a second, once the open connections
 * fell by this many since the high-water mark. */
#define TRIM_DROP 256u
#define TRIM_EVERY_MS 1000

void mtls_worker_io_params(const struct mtls_config *cfg, struct mtls_io_params *p)
{
    memset(p, 0, sizeof(*p));
    p->max_conns = cfg->max_conns;
    p->recv_buffers = cfg->recv_buffers;
    p->recv_buffer_size = cfg->recv_buffer_size;
    p->timeout_ms[MTLS_TIMER_HANDSHAKE] = cfg->handshake_timeout_ms;
    p->timeout_ms[MTLS_TIMER_IDLE] = cfg->idle_timeout_ms;
    p->timeout_ms[MTLS_TIMER_LINGER] = LINGER_MS;
}

int mtls_worker_init(struct mtls_worker *w, unsigned id, const struct mtls_config *cfg,
                     enum mtls_io_backend io, struct mtls_tls_ctx *tls, char *err,
                     size_t errlen)
{
    struct mtls_io_params p;
    struct mtls_conn_env *env = &w->conns;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->cfg = cfg;
    w->listen_fd = -1;
    w->wake_fd = -1;
    mtls_worker_io_params(cfg, &p);
    if (mtls_io_init(&w->io, io, &p, err, errlen) < 0)
        return -1;
    env->io = &w->io;
    env->worker_id = id;
    env->tls = tls;
    env->limits = cfg->http;
    env->metrics = &w->metrics;
    env->max_lifetime_ms = cfg->conn.max_conn_lifetime_ms;
    /* Input kept while paused: a few buffers on both backends (config.c
     * derives the bound, io_uring.c says why it holds there). */
    env->in_left_max = cfg->conn.max_unread;
    env->kept_max = cfg->conn.buffer_budget;
    if (mtls_conn_env_init(env) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    w->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    w->listen_fd = mtls_net_bind(cfg, true, err, errlen);
    if (w->listen_fd < 0)
        goto fail;
    mtls_metrics_register(&w->metrics);
    return 0;
fail:
    mtls_worker_destroy(w);
    return -1;
}

static void on_accept(void *arg, int fd)
{
    struct mtls_worker *w = arg;
    int one = 1;

    if (fd < 0) {
        log_warn("worker %u: accept: %s", w->id, strerror(-fd));
        return;
    }
    METRIC_INC(&w->metrics, connections_accepted);
    /* Admission control before any TLS work. */
    if (w->stopping || w->conns.nopen >= w->cfg->max_conns) {
        METRIC_INC(&w->metrics, connections_refused);
        close(fd);
        return;
    }
    /* Flights and responses go out whole: Nagle would only delay them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    mtls_conn_new(&w->conns, fd);
}

static void begin_stop(void *arg)
{
    struct mtls_worker *w = arg;

    if (w->stopping)
        return;
    w->stopping = true;
    w->conns.stopping = true;
    w->stop_deadline_ms = mtls_io_now_ms(&w->io) + w->cfg->shutdown_grace_ms;
    mtls_io_listen_stop(&w->io);
    mtls_conn_drain_all(&w->conns);
}

/* After a burst closed, give freed memory back to the system (malloc_trim
 * also releases free pages in the middle of every arena, not only the
 * top). Costs a walk of the free lists, so only after a large drop. */
static void maybe_trim(struct mtls_worker *w)
{
    unsigned open = w->conns.nopen;
    uint64_t now = mtls_io_now_ms(&w->io);

    if (open > w->open_peak)
        w->open_peak = open;
    if (w->open_peak - open < TRIM_DROP || now - w->trim_ms < TRIM_EVERY_MS)
        return;
    malloc_trim(0);
    w->trim_ms = now;
    w->open_peak = open;
}

static void *worker_main(void *arg)
{
    struct mtls_worker *w = arg;
    const char *backend = mtls_io_backend_name(w->io.kind);

    int ret = mtls_io_start(&w->io);
    if (ret < 0) {
        log_error("worker %u: cannot enable %s: %s", w->id, backend, strerror(-ret));
        goto fatal;
    }
    mtls_io_listen(&w->io, w->listen_fd, on_accept, w);
    mtls_io_wake_watch(&w->io, w->wake_fd, begin_stop, w);
    mtls_proxy_worker_start(w->id, &w->io, &w->metrics);

    for (;;) {
        uint64_t now = mtls_io_now_ms(&w->io), wait = TICK_MAX_MS;

        if (w->stopping && w->stop_deadline_ms > now && w->stop_deadline_ms - now < wait)
            wait = w->stop_deadline_ms - now;
        wait = mtls_proxy_tick(w->id, wait); /* upstream timers: expires what is due */
        if (w->hs_waiting && wait > 1)
            wait = 1; /* handshakes wait for their turn (conn.c) */
        ret = mtls_io_poll(&w->io, wait);
        if (ret < 0) {
            log_error("worker %u: %s wait: %s", w->id, backend, strerror(-ret));
            goto fatal;
        }
        w->hs_waiting = mtls_conn_env_tick(&w->conns);
        if (w->conns.alog.len)
            mtls_access_log_flush(&w->conns.alog);
        maybe_trim(w);
        if (w->stopping) {
            if (w->conns.nopen == 0)
                break;
            if (mtls_io_now_ms(&w->io) >= w->stop_deadline_ms) {
                log_info("worker %u: grace period over, closing %u connections", w->id,
                         w->conns.nopen);
                mtls_conn_close_all(&w->conns, "shutdown grace over");
                break;
            }
        }
    }
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
    /* The backend goes first: exiting a ring cancels whatever is still in
     * flight; only then may the buffers those ops point to be freed. */
    mtls_io_destroy(&w->io);
    mtls_conn_env_free(&w->conns);
    mtls_proxy_worker_stop(w->id); /* its upstream connections, after the backend too */
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    w->listen_fd = w->wake_fd = -1;
}
