/* status.c: a deliberately small HTTP/1.x responder. It reads one request
 * head (bounded), answers and closes: probes and scrapers open a connection
 * per request anyway, and keep-alive here would only hold slots. Nothing of
 * the TLS side is reachable from it; /metrics renders the same counters. */
#define _GNU_SOURCE /* accept4 */
#include "mtlsd/status.h"
#include "mtlsd/buf.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MAX_CONNS 16       /* more are closed at accept */
#define STATUS_MAX_REQUEST 2048   /* request line + headers, else 431 */
#define STATUS_TIMEOUT_MS 5000    /* a whole exchange */

struct sconn {
    int fd;
    uint64_t deadline_ms;
    char in[STATUS_MAX_REQUEST];
    size_t in_len;
    struct mtls_buf out;
    size_t out_off;
};

static int listen_fd = -1, wake_fd = -1;
static pthread_t thread;
static bool started;
static struct sconn conns[STATUS_MAX_CONNS];
static bool loaded, draining, upstream_ok = true;

void mtls_status_set_loaded(void) { __atomic_store_n(&loaded, true, __ATOMIC_RELEASE); }
void mtls_status_set_draining(void) { __atomic_store_n(&draining, true, __ATOMIC_RELEASE); }
void mtls_status_set_upstream_ok(bool ok) { __atomic_store_n(&upstream_ok, ok, __ATOMIC_RELEASE); }

bool mtls_status_ready(void)
{
    return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&draining, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&upstream_ok, __ATOMIC_ACQUIRE);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int mtls_status_open(const struct mtls_config *cfg, char *err, size_t errlen)
{
    int one = 1;

    if (!cfg->status_addrlen)
        return 0;
    listen_fd = socket(cfg->status_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd < 0) {
        snprintf(err, errlen, "--status-listen: socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listen_fd, (const struct sockaddr *)&cfg->status_addr, cfg->status_addrlen) < 0 ||
        listen(listen_fd, 64) < 0) {
        snprintf(err, errlen, "--status-listen %s: %s", cfg->status_str, strerror(errno));
        close(listen_fd);
        listen_fd = -1;
        return -1;
    }
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    for (unsigned i = 0; i < STATUS_MAX_CONNS; i++)
        conns[i].fd = -1;
    return 0;
}

static void conn_close(struct sconn *c)
{
    close(c->fd);
    c->fd = -1;
    mtls_buf_free(&c->out);
    c->out_off = 0;
    c->in_len = 0;
}

static void respond(struct sconn *c, int code, const char *reason, const char *type,
                    const void *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     code, reason, type, len);

    if (n < 0 || mtls_buf_append(&c->out, head, (size_t)n) < 0 ||
        mtls_buf_append(&c->out, body, len) < 0)
        mtls_buf_free(&c->out); /* out of memory: the close says it */
}

static void route(struct sconn *c)
{
    static const char text[] = "text/plain; charset=utf-8";
    char *line_end = memchr(c->in, '\r', c->in_len), *sp1, *sp2, *q;

    /* "GET /path HTTP/1.x": anything else is 400, 404 or 405. */
    if (!line_end)
        goto bad;
    *line_end = '\0';
    sp1 = strchr(c->in, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        goto bad;
    *sp1 = *sp2 = '\0';
    if ((q = strchr(sp1 + 1, '?')) != NULL)
        *q = '\0'; /* probes may add a query; it selects nothing */
    const char *method = c->in, *path = sp1 + 1;
    bool known = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
                 strcmp(path, "/metrics") == 0;
    if (!known) {
        respond(c, 404, "Not Found", text, "not found\n", 10);
        return;
    }
    if (strcmp(method, "GET") != 0) {
        respond(c, 405, "Method Not Allowed", text, "GET only\n", 9);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        respond(c, 200, "OK", text, "ok\n", 3);
    } else if (strcmp(path, "/readyz") == 0) {
        if (mtls_status_ready())
            respond(c, 200, "OK", text, "ready\n", 6);
        else
            respond(c, 503, "Service Unavailable", text, "not ready\n", 10);
    } else {
        struct mtls_buf m = {0};
        if (mtls_metrics_render(&m) == 0)
            respond(c, 200, "OK", "text/plain; version=0.0.4", m.data, m.len);
        else
            respond(c, 500, "Internal Server Error", text, "error\n", 6);
        mtls_buf_free(&m);
    }
    return;
bad:
    respond(c, 400, "Bad Request", text, "bad request\n", 12);
}

static void on_readable(struct sconn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0)
        return;
    c->in_len += (size_t)n;
    c->in[c->in_len] = '\0';
    if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n"))
        route(c);
    else if (c->in_len >= sizeof(c->in) - 1)
        respond(c, 431, "Request Header Fields Too Large", "text/plain", "too large\n", 10);
    else
        return;
    if (c->out.len == 0)
        conn_close(c);
}

static void on_writable(struct sconn *c)
{
    ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out.len) {
        shutdown(c->fd, SHUT_WR);
        conn_close(c);
    }
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct sconn *slot = NULL;
        for (unsigned i = 0; i < STATUS_MAX_CONNS && !slot; i++)
            if (conns[i].fd < 0)
                slot = &conns[i];
        if (!slot) {
            close(fd); /* the limit: a probe retries */
            continue;
        }
        slot->fd = fd;
        slot->in_len = 0;
        slot->deadline_ms = now_ms() + STATUS_TIMEOUT_MS;
    }
}

static void *status_main(void *arg)
{
    struct pollfd pfd[2 + STATUS_MAX_CONNS];
    struct sconn *owner[2 + STATUS_MAX_CONNS];

    (void)arg;
    for (;;) {
        unsigned n = 0;
        uint64_t now = now_ms(), next = now + STATUS_TIMEOUT_MS;

        pfd[n++] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (unsigned i = 0; i < STATUS_MAX_CONNS; i++) {
            struct sconn *c = &conns[i];
            if (c->fd < 0)
                continue;
            if (now >= c->deadline_ms) {
                conn_close(c);
                continue;
            }
            if (c->deadline_ms < next)
                next = c->deadline_ms;
            owner[n] = c;
            pfd[n++] = (struct pollfd){.fd = c->fd, .events = c->out.len ? POLLOUT : POLLIN};
        }
        if (poll(pfd, n, (int)(next - now)) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN)
            on_accept();
        for (unsigned i = 2; i < n; i++) {
            struct sconn *c = owner[i];
            if (c->fd != pfd[i].fd || !pfd[i].revents)
                continue;
            if (c->out.len)
                on_writable(c);
            else
                on_readable(c);
        }
    }
    for (unsigned i = 0; i < STATUS_MAX_CONNS; i++)
        if (conns[i].fd >= 0)
            conn_close(&conns[i]);
    return NULL;
}

int mtls_status_start(char *err, size_t errlen)
{
    int ret;

    if (listen_fd < 0)
        return 0;
    ret = pthread_create(&thread, NULL, status_main, NULL);
    if (ret != 0) {
        snprintf(err, errlen, "status thread: %s", strerror(ret));
        return -1;
    }
    started = true;
    return 0;
}

void mtls_status_stop(void)
{
    uint64_t one = 1;

    if (started) {
        if (write(wake_fd, &one, sizeof(one)) < 0)
            log_error("status: cannot wake its thread: %s", strerror(errno));
        pthread_join(thread, NULL);
        started = false;
    }
    if (listen_fd >= 0)
        close(listen_fd);
    if (wake_fd >= 0)
        close(wake_fd);
    listen_fd = wake_fd = -1;
}
