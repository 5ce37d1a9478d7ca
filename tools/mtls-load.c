/* mtls-load: load generator and one-shot client for mutual-TLS HTTPS servers.
 *
 *   mtls-load [options] https://HOST:PORT/PATH
 *
 * Modes: "new" (full handshake, one request, close), "resume" (the same, but
 * each connection resumes the session of the previous one on its slot) and
 * "keepalive" (persistent connections, requests back to back, optional
 * pipelining). Closed loop by default; --rate R switches to an open model in
 * which latency runs from each request's *scheduled* time, so a stalled server
 * cannot hide its stall by slowing the client down (coordinated omission).
 *
 * Shape: one epoll loop per thread over non-blocking sockets. wolfSSL sends
 * on the socket itself (wolfSSL_set_fd); receiving goes through our own
 * callback: one recv() per readiness fills the connection's buffer and
 * wolfSSL's small reads (record header, then body) are served from it, and
 * a short recv() counts as drained (edge-triggered epoll reports what comes
 * later), so a keep-alive request costs one send and one recv, and no
 * wolfSSL_read is made that could only want more (mtlsd/wolfssl_internal.h):
 * the load tool must stay cheaper per request than the servers it measures.
 * The sockets are registered once, edge-triggered for both directions, and
 * every event re-drives the connection until wolfSSL reports
 * want-read/want-write; that avoids tracking which direction wolfSSL waits
 * on (its want codes share one callback value) and an epoll_ctl per state
 * change.
 *
 * Error convention: functions that may close the connection return 1 when
 * they did (the caller must not touch it again), 0 otherwise. Start-up code
 * prints an actionable message and exits with status 2.
 *
 * Exit status: 0 all requests answered 2xx; 1 some request failed or got a
 * non-2xx answer (unless --allow-errors); 2 usage or set-up error. */
#define _GNU_SOURCE
#include "mtlsd/wolfssl.h"
#include "mtlsd/wolfssl_internal.h"
#include "mtlsd/keysign.h"
#include <wolfssl/wolfcrypt/random.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- limits (every one a named constant) --------------------------------- */
#define MAX_THREADS 256
#define MAX_CONNECTIONS 200000
#define MAX_PIPELINE 256
#define MAX_RESP_HEAD 16384  /* response status line + headers */
#define MAX_CHUNK_LINE 256   /* chunk-size line or trailer line */
#define MAX_REQ_HEADERS 8192 /* bytes of -H headers together */
#define READ_BUF 16384
#define RX_BUF 8192          /* ciphertext per recv() of one connection */
#define EPOLL_BATCH 256
#define TIMEOUT_SCAN_NS (50 * NS_PER_MS)
#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL

/* ---- latency histogram ------------------------------------------------------
 * HDR-style: values below 2*SUB are exact; above, each power of two is split
 * into SUB linear sub-buckets, so a bucket's width is at most 1/SUB of its
 * value (0.8% relative error with SUB = 128) over the whole uint64 range, in
 * 58 * 128 counters (59 KB) instead of one array entry per sample. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1U << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n, min, max;
    double sum;
};

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned e = 63U - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* Highest value that lands in bucket i (HdrHistogram's "highest equivalent"). */
static uint64_t hist_bucket_high(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned e = i / HIST_SUB + HIST_SUB_BITS - 1;
    uint64_t low = (uint64_t)(HIST_SUB + i % HIST_SUB) << (e - HIST_SUB_BITS);
    return low + ((uint64_t)1 << (e - HIST_SUB_BITS)) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += (double)v;
}

static void hist_merge(struct hist *into, const struct hist *from)
{
    if (from->n == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->count[i] += from->count[i];
    if (into->n == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->n += from->n;
    into->sum += from->sum;
}

static uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * q + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- options ---------------------------------------------------------------- */
/* MODE_IDLE: persistent connections that handshake and then send nothing,
 * to measure a server's memory per idle connection. */
enum mode { MODE_NEW, MODE_RESUME, MODE_KEEPALIVE, MODE_IDLE };
static const char *const mode_names[] = {"new", "resume", "keepalive", "idle"};

struct opts {
    enum mode mode;
    unsigned threads, connections, pipeline;
    double rate;          /* requests (or connections) per second, 0 = closed loop */
    double duration;      /* seconds, 0 = not bounded by time */
    uint64_t requests;    /* 0 = not bounded by count */
    double timeout;       /* seconds per operation */
    const char *cert, *key, *cacert;
    bool insecure;
    bool openssl_signer;
    char host[256];
    char port[16];
    char path[2048];
    const char *method;
    const char *servername;
    char headers[MAX_REQ_HEADERS];
    size_t headers_len;
    const char *data;
    int tls; /* 12 or 13 */
    int group;
    const char *ciphers;
    bool tickets, close_notify, json, verbose, quiet, allow_errors, psk_ke_only;
    bool reuse_key_share;
};

/* Immutable after start-up, shared by the workers. */
static struct {
    struct opts o;
    WOLFSSL_CTX *ctx;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *req;        /* `pipeline` copies of the request, back to back */
    size_t req_len;   /* length of one copy */
    const char *verify_name;
    uint64_t timeout_ns;
    pthread_barrier_t start;
    uint64_t t0;
    uint64_t deadline; /* UINT64_MAX when only --requests bounds the run */
} g;

static atomic_uint_fast64_t g_issued; /* requests/operations reserved, all threads */
static volatile sig_atomic_t g_stop;
static atomic_uint g_established; /* idle mode: connections up, all threads */

/* One request per connection (new, resume) or many (keepalive, idle). */
static bool persistent(void)
{
    return g.o.mode == MODE_KEEPALIVE || g.o.mode == MODE_IDLE;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- per-thread state ------------------------------------------------------- */
enum err_kind { ERR_CONNECT, ERR_TLS, ERR_IO, ERR_TIMEOUT, ERR_HTTP, ERR_KINDS };
static const char *const err_names[] = {"connect", "tls", "io", "timeout", "http"};

struct stats {
    struct hist lat;
    uint64_t ok, non2xx, errors, abandoned, handshakes, resumed, reconnects, bytes, tickets;
    uint64_t err_kind[ERR_KINDS];
    uint64_t status_class[6]; /* index status/100; 0 unused */
    char first_error[256];
};

enum resp_state {
    R_HEAD,
    R_BODY_LENGTH,
    R_BODY_EOF,
    R_CHUNK_SIZE,
    R_CHUNK_DATA,
    R_CHUNK_CRLF,
    R_TRAILER,
};

/* Small HTTP/1.1 response parser: status line, Content-Length, chunked,
 * Connection: close; the head is accumulated (bounded) across reads. */
struct resp {
    enum resp_state st;
    int status;
    bool conn_close, chunked, have_length;
    uint64_t remaining;
    size_t head_len, line_len;
    const char *err;
    char line[MAX_CHUNK_LINE];
    char head[MAX_RESP_HEAD];
};

enum conn_state { C_FREE, C_CONNECTING, C_HANDSHAKE, C_ACTIVE };

struct worker;

struct conn {
    struct worker *w;
    enum conn_state state;
    int fd;
    WOLFSSL *ssl;
    WOLFSSL_SESSION *sess; /* resume mode: session of this slot's last connection */
    uint64_t op_start;     /* new/resume: scheduled or actual start of the operation */
    uint64_t deadline;     /* timeout of the current activity */
    unsigned unsent;       /* requests queued, not yet handed to wolfSSL_write */
    unsigned wr_k;         /* requests in a write wolfSSL asked us to retry */
    unsigned outstanding;  /* requests queued or sent without a complete response */
    unsigned ring_head;    /* FIFO of the requests' start times */
    bool in_avail;
    bool reserved;         /* keepalive: holds the budget of its first request */
    bool priming;          /* keepalive rate mode: warm-up request outstanding */
    uint64_t sent_at[MAX_PIPELINE];
    struct resp *rp;
    char *rx;              /* ciphertext received, not yet taken by wolfSSL */
    size_t rx_off, rx_len;
    bool rx_drained;       /* a recv came back short: nothing more until epoll says */
    bool rx_hup;           /* the peer's FIN was reported: read until recv says 0 */
};

struct worker {
    unsigned id;
    pthread_t tid;
    int epfd;
    struct conn *conns;
    unsigned nconns;
    unsigned *restart; /* FIFO of slots that want a new connection */
    unsigned restart_head, restart_n;
    unsigned *avail; /* rate mode: stack of slots that can take a request */
    unsigned navail;
    uint64_t interval, next_due; /* rate mode schedule */
    unsigned established;        /* keepalive rate mode: connections up so far */
    bool sched_started;
    uint64_t inflight;           /* reserved and not yet finished */
    bool exhausted;              /* the --requests budget is spent */
    uint64_t end;
    struct stats st;
    char rbuf[READ_BUF];
};

/* ---- small helpers ---------------------------------------------------------- */
static void record_error(struct worker *w, enum err_kind k, uint64_t n, const char *msg)
{
    w->st.errors += n;
    w->st.err_kind[k] += n;
    if (!w->st.first_error[0])
        snprintf(w->st.first_error, sizeof w->st.first_error, "%s: %s", err_names[k], msg);
    if (g.o.verbose)
        fprintf(stderr, "* error (%s): %s\n", err_names[k], msg);
}

static const char *tls_error(WOLFSSL *ssl, int ret, char *buf, size_t len)
{
    int e = wolfSSL_get_error(ssl, ret);
    char tmp[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)(long)e, tmp, sizeof tmp);
    if (e == SOCKET_ERROR_E && errno)
        snprintf(buf, len, "%s (%d) errno %s", tmp, e, strerror(errno));
    else
        snprintf(buf, len, "%s (%d)", tmp, e);
    return buf;
}

static bool reserve(struct worker *w)
{
    if (w->exhausted || g_stop)
        return false;
    if (g.o.requests) {
        uint64_t k = atomic_fetch_add(&g_issued, 1);
        if (k >= g.o.requests) {
            w->exhausted = true;
            return false;
        }
    }
    return true;
}

static void push_restart(struct worker *w, struct conn *c)
{
    unsigned i = (unsigned)(c - w->conns);
    w->restart[(w->restart_head + w->restart_n) % w->nconns] = i;
    w->restart_n++;
}

static void push_avail(struct worker *w, struct conn *c)
{
    if (c->in_avail)
        return;
    c->in_avail = true;
    w->avail[w->navail++] = (unsigned)(c - w->conns);
}

/* ---- response parser -------------------------------------------------------- */
static void resp_reset(struct resp *r)
{
    r->st = R_HEAD;
    r->status = 0;
    r->conn_close = r->chunked = r->have_length = false;
    r->remaining = 0;
    r->head_len = r->line_len = 0;
    r->err = NULL;
}

static bool header_is(const char *name, size_t nlen, const char *want)
{
    return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

static bool value_has_token(const char *v, size_t vlen, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++) {
        if (strncasecmp(v + i, tok, tl) == 0) {
            bool start = i == 0 || v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t';
            bool end = i + tl == vlen || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == '\t';
            if (start && end)
                return true;
        }
    }
    return false;
}

/* Parses r->head[0..len) (ends with CRLF CRLF). Returns NULL or an error. */
static const char *resp_parse_head(struct resp *r, bool head_request)
{
    const char *p = r->head, *end = r->head + r->head_len;
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (r->head_len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return "malformed status line";
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (eol != p + 12 && p[12] != ' '))
        return "malformed status code";
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->conn_close = p[7] == '0'; /* HTTP/1.0: close unless told otherwise */
    for (p = eol + 2; p < end - 2; p = eol + 2) {
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return "malformed header line";
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(eol - v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (header_is(p, nlen, "content-length")) {
            uint64_t n = 0;
            if (vlen == 0 || vlen > 18)
                return "bad Content-Length";
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return "bad Content-Length";
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (r->have_length && n != r->remaining)
                return "conflicting Content-Length headers";
            r->have_length = true;
            r->remaining = n;
        } else if (header_is(p, nlen, "transfer-encoding")) {
            if (value_has_token(v, vlen, "chunked"))
                r->chunked = true;
        } else if (header_is(p, nlen, "connection")) {
            if (value_has_token(v, vlen, "close"))
                r->conn_close = true;
            else if (value_has_token(v, vlen, "keep-alive"))
                r->conn_close = false;
        }
    }
    if (r->chunked && r->have_length)
        return "both Content-Length and chunked";
    if (head_request || r->status == 204 || r->status == 304 || r->status < 200)
        r->remaining = 0, r->st = R_BODY_LENGTH;
    else if (r->chunked)
        r->st = R_CHUNK_SIZE;
    else if (r->have_length)
        r->st = R_BODY_LENGTH;
    else {
        r->st = R_BODY_EOF; /* the body ends when the server closes */
        r->conn_close = true;
    }
    return NULL;
}

/* Takes a CRLF-terminated line into r->line. Returns bytes used; sets *done. */
static size_t take_line(struct resp *r, const char *p, size_t n, bool *done)
{
    *done = false;
    for (size_t i = 0; i < n; i++) {
        if (r->line_len >= sizeof r->line) {
            r->err = "chunk line too long";
            return i;
        }
        r->line[r->line_len++] = p[i];
        if (r->line_len >= 2 && r->line[r->line_len - 2] == '\r' && r->line[r->line_len - 1] == '\n') {
            *done = true;
            return i + 1;
        }
    }
    return n;
}

/* Feeds n bytes. Returns 1 when a response is complete (*used bytes taken),
 * 0 when more is needed (all taken), -1 on error (r->err). 1xx responses are
 * skipped. Body bytes are written to stdout when verbose. */
static int resp_feed(struct resp *r, const char *p, size_t n, size_t *used, bool head_request)
{
    size_t i = 0;
    while (i < n) {
        switch (r->st) {
        case R_HEAD: {
            size_t old = r->head_len, take = n - i;
            if (take > sizeof r->head - old)
                take = sizeof r->head - old;
            memcpy(r->head + old, p + i, take);
            r->head_len += take;
            size_t from = old >= 3 ? old - 3 : 0;
            const char *t = memmem(r->head + from, r->head_len - from, "\r\n\r\n", 4);
            if (!t) {
                if (r->head_len == sizeof r->head) {
                    r->err = "response head too large";
                    return -1;
                }
                i += take;
                break;
            }
            size_t hlen = (size_t)(t - r->head) + 4;
            i += hlen - old;
            r->head_len = hlen;
            if ((r->err = resp_parse_head(r, head_request)) != NULL)
                return -1;
            if (g.o.verbose) {
                fwrite(r->head, 1, hlen, stdout);
            }
            if (r->status < 200) { /* 100 Continue and friends: another head follows */
                bool close = r->conn_close;
                resp_reset(r);
                r->conn_close = close;
                break;
            }
            if (r->st == R_BODY_LENGTH && r->remaining == 0) {
                *used = i;
                return 1;
            }
            break;
        }
        case R_BODY_LENGTH:
        case R_CHUNK_DATA: {
            size_t take = n - i;
            if (take > r->remaining)
                take = (size_t)r->remaining;
            if (g.o.verbose)
                fwrite(p + i, 1, take, stdout);
            i += take;
            r->remaining -= take;
            if (r->remaining == 0) {
                if (r->st == R_BODY_LENGTH) {
                    *used = i;
                    return 1;
                }
                r->st = R_CHUNK_CRLF;
                r->line_len = 0;
            }
            break;
        }
        case R_BODY_EOF:
            if (g.o.verbose)
                fwrite(p + i, 1, n - i, stdout);
            i = n;
            break;
        case R_CHUNK_SIZE:
        case R_CHUNK_CRLF:
        case R_TRAILER: {
            bool done;
            i += take_line(r, p + i, n - i, &done);
            if (r->err)
                return -1;
            if (!done)
                break;
            size_t ll = r->line_len - 2;
            r->line_len = 0;
            if (r->st == R_CHUNK_CRLF) {
                if (ll != 0) {
                    r->err = "missing CRLF after chunk";
                    return -1;
                }
                r->st = R_CHUNK_SIZE;
            } else if (r->st == R_CHUNK_SIZE) {
                uint64_t sz = 0;
                size_t k = 0;
                for (; k < ll && k < 16; k++) {
                    char ch = r->line[k];
                    int d = ch >= '0' && ch <= '9'   ? ch - '0'
                            : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                     : -1;
                    if (d < 0)
                        break;
                    sz = sz * 16 + (uint64_t)d;
                }
                if (k == 0 || (k < ll && r->line[k] != ';' && r->line[k] != ' ')) {
                    r->err = "bad chunk size";
                    return -1;
                }
                r->remaining = sz;
                r->st = sz ? R_CHUNK_DATA : R_TRAILER;
            } else { /* trailer: an empty line ends the message */
                if (ll == 0) {
                    *used = i;
                    return 1;
                }
            }
            break;
        }
        }
    }
    *used = i;
    return 0;
}

/* ---- connections ------------------------------------------------------------ */
static void conn_close(struct worker *w, struct conn *c, bool graceful)
{
    (void)w;
    if (c->ssl) {
        /* One close_notify, not waited for: what a polite client costs. */
        if (graceful && g.o.close_notify && c->state == C_ACTIVE)
            (void)wolfSSL_shutdown(c->ssl);
        wolfSSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    c->state = C_FREE;
    c->unsent = c->wr_k = c->outstanding = 0;
    c->ring_head = 0;
    c->reserved = c->priming = false;
    c->rx_off = c->rx_len = 0;
    c->rx_drained = c->rx_hup = false;
    resp_reset(c->rp);
}

/* What a slot does once its connection is gone. Never starts a connection
 * here: a connect that fails at once would recurse. */
static void slot_after_close(struct worker *w, struct conn *c)
{
    if (g_stop)
        return;
    if (g.o.rate > 0 && !persistent())
        push_avail(w, c);
    else
        push_restart(w, c);
}

static void conn_fail(struct worker *w, struct conn *c, enum err_kind k, const char *msg)
{
    uint64_t lost;
    if (persistent()) {
        /* A connection attempt that fails fails the request it was opened
         * for, and so spends the --requests budget: a dead server ends the
         * run. Closed loop: that request was reserved before connecting. */
        lost = c->outstanding + c->reserved - c->priming;
        w->inflight -= lost;
        c->reserved = c->priming = false;
        if (lost == 0) {
            lost = 1;
            (void)reserve(w);
        }
    } else {
        lost = 1;
        w->inflight--;
    }
    record_error(w, k, lost, msg);
    conn_close(w, c, false);
    slot_after_close(w, c);
}

static int conn_flush(struct worker *w, struct conn *c)
{
    while (c->wr_k || c->unsent) {
        if (!c->wr_k) {
            c->wr_k = c->unsent < g.o.pipeline ? c->unsent : g.o.pipeline;
            c->unsent -= c->wr_k;
        }
        int len = (int)(c->wr_k * g.req_len);
        int r = wolfSSL_write(c->ssl, g.req, len);
        if (r == len) {
            c->wr_k = 0;
            continue;
        }
        int e = wolfSSL_get_error(c->ssl, r);
        if (e == WOLFSSL_ERROR_WANT_WRITE || e == WOLFSSL_ERROR_WANT_READ)
            return 0; /* retried with the same arguments on the next event */
        char buf[256];
        conn_fail(w, c, ERR_IO, tls_error(c->ssl, r, buf, sizeof buf));
        return 1;
    }
    return 0;
}

static void queue_request(struct conn *c, uint64_t t)
{
    if (c->outstanding == 0)
        c->deadline = now_ns() + g.timeout_ns;
    c->sent_at[(c->ring_head + c->outstanding) % MAX_PIPELINE] = t;
    c->outstanding++;
    c->unsent++;
}

/* Keepalive, closed loop: keep `pipeline` requests outstanding. */
static void fill_pipeline(struct worker *w, struct conn *c)
{
    if (c->reserved) {
        c->reserved = false;
        queue_request(c, now_ns());
    }
    while (c->outstanding < g.o.pipeline && now_ns() < g.deadline && reserve(w)) {
        w->inflight++;
        queue_request(c, now_ns());
    }
}

static int conn_drive(struct worker *w, struct conn *c);

/* wolfSSL's receive callback (see the top of the file). errno stays as
 * recv() left it, for tls_error(). */
static int on_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct conn *c = arg;
    (void)ssl;
    if (c->rx_off == c->rx_len) {
        if (c->rx_drained)
            return WOLFSSL_CBIO_ERR_WANT_READ;
        ssize_t n;
        do
            n = recv(c->fd, c->rx, RX_BUF, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->rx_drained = true;
                return WOLFSSL_CBIO_ERR_WANT_READ;
            }
            return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
        }
        if (n == 0)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        c->rx_off = 0;
        c->rx_len = (size_t)n;
        /* Short: the socket was empty after it. Not once the FIN was seen:
         * the end of the stream must be read too. */
        if ((size_t)n < RX_BUF && !c->rx_hup)
            c->rx_drained = true;
    }
    size_t k = c->rx_len - c->rx_off;
    if (k > (size_t)sz)
        k = (size_t)sz;
    memcpy(buf, c->rx + c->rx_off, k);
    c->rx_off += k;
    return (int)k;
}

/* Counts NewSessionTicket messages: servers differ (OpenSSL sends two per
 * TLS 1.3 handshake by default) and each one costs the server. */
static int on_ticket(WOLFSSL *ssl, const unsigned char *ticket, int len, void *arg)
{
    (void)ssl, (void)ticket, (void)len;
    ((struct conn *)arg)->w->st.tickets++;
    return 0;
}

/* Keepalive rate mode: a connection joins the schedule after one warm-up
 * request. The client's handshake ends before the server has checked the
 * client's certificate; without the warm-up the first scheduled requests
 * would wait behind every connection's certificate check and the
 * percentiles would measure the connection storm, not the steady state. */
static void conn_ready(struct worker *w, struct conn *c)
{
    push_avail(w, c);
    if (!w->sched_started && ++w->established == w->nconns) {
        w->sched_started = true;
        w->next_due = now_ns() + w->interval * w->id / g.o.threads;
    }
}

static int on_response(struct worker *w, struct conn *c)
{
    uint64_t now = now_ns();
    uint64_t t = c->sent_at[c->ring_head];
    c->ring_head = (c->ring_head + 1) % MAX_PIPELINE;
    c->outstanding--;
    if (c->priming) {
        bool close_after = c->rp->conn_close;
        int s = c->rp->status;
        c->priming = false;
        resp_reset(c->rp);
        if (s < 200 || s >= 300) {
            char msg[80];
            snprintf(msg, sizeof msg, "the warm-up request was answered %d", s);
            record_error(w, ERR_HTTP, 1, msg);
        }
        if (close_after) {
            w->st.reconnects++;
            conn_close(w, c, true);
            slot_after_close(w, c);
            return 1;
        }
        conn_ready(w, c);
        return 0;
    }
    hist_add(&w->st.lat, now > t ? now - t : 0);
    int s = c->rp->status;
    w->st.status_class[s / 100]++;
    if (s >= 200 && s < 300)
        w->st.ok++;
    else
        w->st.non2xx++;
    bool close_after = c->rp->conn_close;
    resp_reset(c->rp);

    if (g.o.mode != MODE_KEEPALIVE) {
        w->inflight--;
        if (g.o.mode == MODE_RESUME) {
            WOLFSSL_SESSION *s1 = wolfSSL_get1_session(c->ssl);
            if (s1) {
                if (c->sess)
                    wolfSSL_SESSION_free(c->sess);
                c->sess = s1;
            }
        }
        conn_close(w, c, true);
        slot_after_close(w, c);
        return 1;
    }
    w->inflight--;
    c->deadline = now + g.timeout_ns;
    if (close_after) {
        if (c->outstanding) {
            conn_fail(w, c, ERR_HTTP, "server closed the connection with pipelined requests unanswered");
            return 1;
        }
        w->st.reconnects++;
        conn_close(w, c, true);
        slot_after_close(w, c);
        return 1;
    }
    if (g.o.rate > 0) {
        push_avail(w, c);
        return 0;
    }
    fill_pipeline(w, c);
    return conn_flush(w, c);
}

static int on_eof(struct worker *w, struct conn *c)
{
    if (c->outstanding && c->rp->st == R_BODY_EOF)
        return on_response(w, c); /* conn_close is set: it closes */
    if (c->outstanding) {
        conn_fail(w, c, ERR_HTTP, "connection closed before the response was complete");
        return 1;
    }
    /* An idle keep-alive connection closed by the server: reconnect. */
    w->st.reconnects++;
    conn_close(w, c, false);
    slot_after_close(w, c);
    return 1;
}

static int on_data(struct worker *w, struct conn *c, const char *p, size_t n)
{
    w->st.bytes += n;
    while (n > 0) {
        if (c->outstanding == 0 || c->outstanding == c->unsent) {
            conn_fail(w, c, ERR_HTTP, "data from the server before any request");
            return 1;
        }
        size_t used = 0;
        int r = resp_feed(c->rp, p, n, &used, strcmp(g.o.method, "HEAD") == 0);
        if (r < 0) {
            conn_fail(w, c, ERR_HTTP, c->rp->err);
            return 1;
        }
        p += used;
        n -= used;
        if (r == 1 && on_response(w, c))
            return 1;
    }
    return 0;
}

static void on_established(struct worker *w, struct conn *c)
{
    w->st.handshakes++;
    if (wolfSSL_session_reused(c->ssl))
        w->st.resumed++;
    if (g.o.verbose)
        fprintf(stderr, "* %s %s, session %s, server certificate %s\n", wolfSSL_get_version(c->ssl),
                wolfSSL_get_cipher_name(c->ssl), wolfSSL_session_reused(c->ssl) ? "resumed" : "new",
                g.o.insecure ? "NOT verified (--insecure)" : "verified");
    c->state = C_ACTIVE;
    if (g.o.mode == MODE_IDLE) {
        if (atomic_fetch_add(&g_established, 1) + 1 == g.o.connections && !g.o.quiet) {
            /* bench/compare waits for this line before it samples memory. */
            fprintf(stderr, "mtls-load: established %u idle connections\n", g.o.connections);
            fflush(stderr);
        }
    } else if (g.o.mode != MODE_KEEPALIVE)
        queue_request(c, c->op_start);
    else if (g.o.rate > 0) {
        if (w->sched_started) {
            conn_ready(w, c); /* a reconnect during the run */
        } else {
            c->priming = true;
            queue_request(c, now_ns());
        }
    } else
        fill_pipeline(w, c);
}

static int conn_drive(struct worker *w, struct conn *c)
{
    char buf[256];
    if (c->state == C_HANDSHAKE) {
        int r = wolfSSL_connect(c->ssl);
        if (r != WOLFSSL_SUCCESS) {
            int e = wolfSSL_get_error(c->ssl, r);
            if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
                return 0;
            conn_fail(w, c, ERR_TLS, tls_error(c->ssl, r, buf, sizeof buf));
            return 1;
        }
        on_established(w, c);
    }
    if (c->state != C_ACTIVE)
        return 0;
    if (conn_flush(w, c))
        return 1;
    for (;;) {
        if (c->rx_off == c->rx_len && c->rx_drained && mtls_wolfssl_read_idle(c->ssl))
            return 0; /* wolfSSL_read could only want more: the next event */
        int n = wolfSSL_read(c->ssl, w->rbuf, (int)sizeof w->rbuf);
        if (n > 0) {
            if (on_data(w, c, w->rbuf, (size_t)n))
                return 1;
            /* A response may have queued the next request. */
            if (conn_flush(w, c))
                return 1;
            continue;
        }
        int e = wolfSSL_get_error(c->ssl, n);
        if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
            return 0;
        if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E)
            return on_eof(w, c);
        if (e == SOCKET_ERROR_E && c->outstanding == 0 && persistent())
            return on_eof(w, c); /* reset of an idle connection */
        conn_fail(w, c, ERR_IO, tls_error(c->ssl, n, buf, sizeof buf));
        return 1;
    }
}

static void conn_on_event(struct worker *w, struct conn *c, uint32_t events)
{
    c->rx_drained = false; /* whatever came, recv() again */
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rx_hup = true;
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            conn_fail(w, c, ERR_CONNECT, strerror(err));
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        c->state = C_HANDSHAKE;
    }
    (void)conn_drive(w, c);
}

static int conn_start(struct worker *w, struct conn *c, uint64_t t)
{
    c->op_start = t;
    c->deadline = now_ns() + g.timeout_ns;
    c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(w, c, ERR_CONNECT, strerror(errno));
        return 1;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c->fd, (struct sockaddr *)&g.addr, g.addrlen);
    if (r < 0 && errno != EINPROGRESS) {
        conn_fail(w, c, ERR_CONNECT, strerror(errno));
        return 1;
    }
    c->ssl = wolfSSL_new(g.ctx);
    if (!c->ssl || wolfSSL_set_fd(c->ssl, c->fd) != WOLFSSL_SUCCESS) {
        conn_fail(w, c, ERR_TLS, "wolfSSL_new/set_fd failed (out of memory?)");
        return 1;
    }
    wolfSSL_SSLSetIORecv(c->ssl, on_recv);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    (void)wolfSSL_set_SessionTicket_cb(c->ssl, on_ticket, c);
    if (g.verify_name && wolfSSL_check_domain_name(c->ssl, g.verify_name) != WOLFSSL_SUCCESS) {
        conn_fail(w, c, ERR_TLS, "wolfSSL_check_domain_name failed");
        return 1;
    }
    if (c->sess && wolfSSL_set_session(c->ssl, c->sess) != WOLFSSL_SUCCESS) {
        /* Expired or refused: this connection does a full handshake. */
        wolfSSL_SESSION_free(c->sess);
        c->sess = NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(w, c, ERR_CONNECT, strerror(errno));
        return 1;
    }
    if (r == 0) {
        c->state = C_HANDSHAKE;
        return conn_drive(w, c);
    }
    c->state = C_CONNECTING;
    return 0;
}

/* ---- the loop --------------------------------------------------------------- */
static void run_restarts(struct worker *w)
{
    /* Only the slots queued so far: one that fails at once is retried on the
     * next iteration, after the deadline check, not in a tight loop here. */
    unsigned n = w->restart_n;
    while (n-- > 0 && !g_stop) {
        struct conn *c = &w->conns[w->restart[w->restart_head]];
        w->restart_head = (w->restart_head + 1) % w->nconns;
        w->restart_n--;
        if (now_ns() >= g.deadline)
            continue;
        if (persistent()) {
            if (w->exhausted)
                continue;
            if (g.o.rate == 0 && g.o.mode == MODE_KEEPALIVE) {
                if (!reserve(w))
                    continue;
                w->inflight++;
                c->reserved = true;
            }
        } else {
            if (!reserve(w))
                continue;
            w->inflight++;
        }
        (void)conn_start(w, c, now_ns());
    }
}

/* Rate mode: start every operation whose scheduled time has come, on a slot
 * that can take it; the rest wait (their latency keeps running). */
static void run_schedule(struct worker *w, uint64_t now)
{
    if (!w->sched_started && now >= g.t0 + g.timeout_ns)
        w->sched_started = true; /* some connections never came up: go anyway */
    if (!w->sched_started)
        return;
    while (w->next_due <= now && w->navail > 0 && w->next_due < g.deadline && !g_stop) {
        struct conn *c = &w->conns[w->avail[w->navail - 1]];
        bool usable = g.o.mode == MODE_KEEPALIVE ? c->state == C_ACTIVE && c->outstanding < g.o.pipeline
                                                  : c->state == C_FREE;
        if (!usable) { /* stale entry (slot closed or full since) */
            c->in_avail = false;
            w->navail--;
            continue;
        }
        if (!reserve(w))
            return;
        uint64_t due = w->next_due;
        w->next_due += w->interval;
        w->inflight++;
        if (g.o.mode == MODE_KEEPALIVE) {
            queue_request(c, due);
            if (c->outstanding >= g.o.pipeline) {
                c->in_avail = false;
                w->navail--;
            }
            (void)conn_flush(w, c);
        } else {
            c->in_avail = false;
            w->navail--;
            (void)conn_start(w, c, due);
        }
    }
}

static void scan_timeouts(struct worker *w, uint64_t now)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == C_FREE || (c->state == C_ACTIVE && c->outstanding == 0))
            continue;
        if (now > c->deadline)
            conn_fail(w, c, ERR_TIMEOUT,
                      c->state == C_CONNECTING  ? "no TCP connection within --timeout"
                      : c->state == C_HANDSHAKE ? "no TLS handshake within --timeout"
                                                : "no complete response within --timeout");
    }
}

#ifdef WOLFSSL_SSL_RNG_CB
/* A cheaper client: each thread lends one DRBG to all its connections
 * instead of wolfSSL seeding and testing one per connection (the server
 * does the same, src/tls.c). Freed when the thread's connections are. */
static __thread WC_RNG *thread_rng;

static WC_RNG *lend_thread_rng(WOLFSSL_CTX *ctx)
{
    (void)ctx;
    if (!thread_rng && (thread_rng = calloc(1, sizeof(*thread_rng))) && wc_InitRng(thread_rng) != 0) {
        free(thread_rng);
        thread_rng = NULL;
    }
    return thread_rng;
}
#endif

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[EPOLL_BATCH];
    bool have_pwait2 = true;

    pthread_barrier_wait(&g.start);
    uint64_t next_scan = g.t0 + TIMEOUT_SCAN_NS;
    if (g.o.rate > 0) {
        w->interval = (uint64_t)((double)NS_PER_S * g.o.threads / g.o.rate);
        if (w->interval == 0)
            w->interval = 1;
        w->next_due = g.t0 + w->interval * w->id / g.o.threads; /* interleave threads */
        w->sched_started = g.o.mode != MODE_KEEPALIVE;
    }
    if (persistent() || g.o.rate == 0) {
        for (unsigned i = 0; i < w->nconns; i++)
            push_restart(w, &w->conns[i]);
    } else {
        for (unsigned i = w->nconns; i-- > 0;)
            push_avail(w, &w->conns[i]);
    }

    for (;;) {
        uint64_t now = now_ns();
        if (g_stop || now >= g.deadline)
            break;
        run_restarts(w);
        if (g.o.rate > 0)
            run_schedule(w, now);
        if (w->exhausted && w->inflight == 0)
            break;

        uint64_t wake = next_scan < g.deadline ? next_scan : g.deadline;
        if (g.o.rate > 0 && w->navail > 0 && w->next_due < wake)
            wake = w->next_due;
        now = now_ns();
        uint64_t wait = w->restart_n ? 0 : (wake > now ? wake - now : 0);
        int n;
        if (have_pwait2) {
            struct timespec ts = {.tv_sec = (time_t)(wait / NS_PER_S), .tv_nsec = (long)(wait % NS_PER_S)};
            n = epoll_pwait2(w->epfd, evs, EPOLL_BATCH, &ts, NULL);
            if (n < 0 && errno == ENOSYS) {
                have_pwait2 = false; /* kernel < 5.11: millisecond timeouts */
                continue;
            }
        } else {
            n = epoll_wait(w->epfd, evs, EPOLL_BATCH, (int)((wait + NS_PER_MS - 1) / NS_PER_MS));
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("mtls-load: epoll_wait");
            g_stop = 1;
            break;
        }
        for (int i = 0; i < n; i++)
            conn_on_event(w, evs[i].data.ptr, evs[i].events);
        now = now_ns();
        if (now >= next_scan) {
            scan_timeouts(w, now);
            next_scan = now + TIMEOUT_SCAN_NS;
        }
    }
    w->end = now_ns();
    if (w->end > g.deadline)
        w->end = g.deadline;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state != C_FREE) {
            w->st.abandoned += persistent() ? c->outstanding + c->reserved - c->priming : 1;
            conn_close(w, c, false);
        }
        if (c->sess) {
            wolfSSL_SESSION_free(c->sess);
            c->sess = NULL;
        }
    }
#ifdef WOLFSSL_SSL_RNG_CB
    if (thread_rng) {
        wc_FreeRng(thread_rng);
        free(thread_rng);
    }
#endif
    return NULL;
}

/* ---- start-up --------------------------------------------------------------- */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: mtls-load [options] [https://HOST[:PORT][/PATH]]\n"
            "load:\n"
            "  -m, --mode new|resume|keepalive  what one operation is (default keepalive)\n"
            "         idle            connections handshake and stay open, no requests\n"
            "  -t, --threads N        event-loop threads (default 1)\n"
            "  -c, --connections C    concurrent connections (default 50; capped by --requests)\n"
            "  -P, --pipeline P       keepalive: requests in flight per connection (default 1)\n"
            "  -R, --rate R           open model: R operations/s in total, latency from the\n"
            "                         scheduled time (default: closed loop)\n"
            "  -d, --duration S       run time, e.g. 10, 10s, 500ms, 2m (default 10 s unless -n)\n"
            "  -n, --requests N       stop after N operations (requests; connections in new/resume)\n"
            "      --timeout S        per connect/handshake/response (default 10 s)\n"
            "TLS:\n"
            "      --cert F --key F   client certificate (chain) and key, PEM\n"
            "      --cacert F         CA file to verify the server; or -k, --insecure\n"
            "      --servername NAME  SNI and the name checked in the certificate (default HOST)\n"
            "      --tls 1.3|1.2      protocol version (default 1.3)\n"
            "      --group x25519|p256|p384  key exchange group (default x25519)\n"
            "      --ciphers LIST     wolfSSL cipher list\n"
            "      --no-tickets       TLS 1.2: resume by session ID instead of tickets\n"
            "      --psk-ke-only      TLS 1.3: offer only psk_ke (resumption without\n"
            "                         (EC)DHE), to test that a server refuses it\n"
            "      --key-signer auto|wolfssl|openssl  who makes the client's RSA-PSS\n"
            "                         signature (default wolfssl; auto: libcrypto where\n"
            "                         its AVX-512 IFMA code runs, as mtlsd --key-signer)\n"
            "      --reuse-key-share  one X25519 key share for all connections (no\n"
            "                         forward secrecy; a cheaper client for benchmarks)\n"
            "      --no-close-notify  close without sending close_notify\n"
            "HTTP:\n"
            "      --host H --port P --path P   instead of the URL (default 127.0.0.1 443 /)\n"
            "  -X, --method M         (default GET)\n"
            "  -H, --header 'N: V'    extra request header (repeatable)\n"
            "      --data STR         request body (sets Content-Length)\n"
            "output:\n"
            "  -v, --verbose          print responses (stdout) and TLS details (stderr)\n"
            "      --json             one JSON object on stdout (summary to stderr)\n"
            "  -q, --quiet            no human summary\n"
            "      --allow-errors     exit 0 even if requests failed or were not 2xx\n"
            "one-shot client: mtls-load -n 1 -v --cert c.crt --key c.key --cacert ca.crt https://localhost:8443/\n");
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "mtls-load: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static uint64_t parse_uint(const char *s, const char *what, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "mtls-load: %s must be an integer between %" PRIu64 " and %" PRIu64 " (got \"%s\")\n",
                what, min, max, s);
        exit(2);
    }
    return v;
}

static double parse_seconds(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (strcmp(end, "ms") == 0)
        mul = 1e-3;
    else if (strcmp(end, "s") == 0 || *end == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else
        end = NULL;
    if (errno || end == s || !end || !(v > 0) || v * mul > 1e7) {
        fprintf(stderr, "mtls-load: %s must be a positive time such as 10, 10s, 500ms or 2m (got \"%s\")\n",
                what, s);
        exit(2);
    }
    return v * mul;
}

static void copy_field(char *dst, size_t cap, const char *src, size_t len, const char *what)
{
    if (len >= cap)
        die("%s is too long", what);
    memcpy(dst, src, len);
    dst[len] = 0;
}

static void parse_url(struct opts *o, const char *url)
{
    if (strncasecmp(url, "https://", 8) != 0)
        die("the URL must start with https:// (got \"%s\")", url);
    const char *h = url + 8, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend)
            die("unterminated IPv6 address in \"%s\"", url);
        copy_field(o->host, sizeof o->host, h + 1, (size_t)(hend - h - 1), "host");
        p = hend + 1;
    } else {
        hend = h + strcspn(h, ":/?");
        copy_field(o->host, sizeof o->host, h, (size_t)(hend - h), "host");
        p = hend;
    }
    if (!o->host[0])
        die("no host in \"%s\"", url);
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/?");
        copy_field(o->port, sizeof o->port, p + 1, n, "port");
        (void)parse_uint(o->port, "the port", 1, 65535);
        p += 1 + n;
    }
    if (*p == '/')
        copy_field(o->path, sizeof o->path, p, strlen(p), "path");
    else if (*p == '?') {
        o->path[0] = '/';
        copy_field(o->path + 1, sizeof o->path - 1, p, strlen(p), "path");
    }
}

static void add_header(struct opts *o, const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || strpbrk(h, "\r\n"))
        die("a header must look like 'Name: value' on one line (got \"%s\")", h);
    size_t n = strlen(h);
    if (o->headers_len + n + 3 > sizeof o->headers)
        die("the -H headers are too long together (limit %s bytes)", "8192");
    memcpy(o->headers + o->headers_len, h, n);
    memcpy(o->headers + o->headers_len + n, "\r\n", 2);
    o->headers_len += n + 2;
    o->headers[o->headers_len] = 0;
}

static bool header_given(const struct opts *o, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = o->headers; *p; p = strstr(p, "\r\n") + 2)
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return true;
    return false;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
    const char *why; /* mtls_keysign_cpu_fast says why not; unused here */
    enum {
        OPT_CERT = 256, OPT_KEY, OPT_CACERT, OPT_HOST, OPT_PORT, OPT_PATH, OPT_SNI, OPT_TLS, OPT_GROUP, OPT_CIPHERS,
        OPT_NO_TICKETS, OPT_PSK_KE_ONLY, OPT_REUSE_KS, OPT_KEY_SIGNER, OPT_NO_CN, OPT_JSON, OPT_ALLOW, OPT_TIMEOUT, OPT_DATA,
    };
    static const struct option lo[] = {
        {"mode", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"pipeline", required_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'R'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, 'k'},
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"path", required_argument, NULL, OPT_PATH},
        {"method", required_argument, NULL, 'X'},
        {"header", required_argument, NULL, 'H'},
        {"data", required_argument, NULL, OPT_DATA},
        {"servername", required_argument, NULL, OPT_SNI},
        {"tls", required_argument, NULL, OPT_TLS},
        {"group", required_argument, NULL, OPT_GROUP},
        {"ciphers", required_argument, NULL, OPT_CIPHERS},
        {"no-tickets", no_argument, NULL, OPT_NO_TICKETS},
        {"psk-ke-only", no_argument, NULL, OPT_PSK_KE_ONLY},
        {"reuse-key-share", no_argument, NULL, OPT_REUSE_KS},
        {"key-signer", required_argument, NULL, OPT_KEY_SIGNER},
        {"no-close-notify", no_argument, NULL, OPT_NO_CN},
        {"json", no_argument, NULL, OPT_JSON},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"allow-errors", no_argument, NULL, OPT_ALLOW},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){
        .mode = MODE_KEEPALIVE, .threads = 1, .connections = 50, .pipeline = 1, .timeout = 10,
        .method = "GET", .tls = 13, .group = WOLFSSL_ECC_X25519, .tickets = true, .close_notify = true,
    };
    strcpy(o->host, "127.0.0.1");
    strcpy(o->port, "443");
    strcpy(o->path, "/");
    bool conn_set = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "m:t:c:P:R:d:n:kX:H:vqh", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (strcmp(optarg, "new") == 0)
                o->mode = MODE_NEW;
            else if (strcmp(optarg, "resume") == 0)
                o->mode = MODE_RESUME;
            else if (strcmp(optarg, "keepalive") == 0)
                o->mode = MODE_KEEPALIVE;
            else if (strcmp(optarg, "idle") == 0)
                o->mode = MODE_IDLE;
            else
                die("--mode must be new, resume, keepalive or idle (got \"%s\")", optarg);
            break;
        case 't': o->threads = (unsigned)parse_uint(optarg, "--threads", 1, MAX_THREADS); break;
        case 'c':
            o->connections = (unsigned)parse_uint(optarg, "--connections", 1, MAX_CONNECTIONS);
            conn_set = true;
            break;
        case 'P': o->pipeline = (unsigned)parse_uint(optarg, "--pipeline", 1, MAX_PIPELINE); break;
        case 'R': {
            char *end;
            o->rate = strtod(optarg, &end);
            if (end == optarg || *end || !(o->rate > 0) || o->rate > 1e8)
                die("--rate must be a positive number of operations per second (got \"%s\")", optarg);
            break;
        }
        case 'd': o->duration = parse_seconds(optarg, "--duration"); break;
        case 'n': o->requests = parse_uint(optarg, "--requests", 1, UINT64_MAX / 2); break;
        case OPT_TIMEOUT: o->timeout = parse_seconds(optarg, "--timeout"); break;
        case OPT_CERT: o->cert = optarg; break;
        case OPT_KEY: o->key = optarg; break;
        case OPT_CACERT: o->cacert = optarg; break;
        case 'k': o->insecure = true; break;
        case OPT_HOST: copy_field(o->host, sizeof o->host, optarg, strlen(optarg), "--host"); break;
        case OPT_PORT:
            (void)parse_uint(optarg, "--port", 1, 65535);
            copy_field(o->port, sizeof o->port, optarg, strlen(optarg), "--port");
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
                die("--path must start with / and contain no spaces (got \"%s\")", optarg);
            copy_field(o->path, sizeof o->path, optarg, strlen(optarg), "--path");
            break;
        case 'X':
            if (!optarg[0] || strpbrk(optarg, " \r\n"))
                die("--method must be one token (got \"%s\")", optarg);
            o->method = optarg;
            break;
        case 'H': add_header(o, optarg); break;
        case OPT_DATA: o->data = optarg; break;
        case OPT_SNI: o->servername = optarg; break;
        case OPT_TLS:
            if (strcmp(optarg, "1.3") == 0)
                o->tls = 13;
            else if (strcmp(optarg, "1.2") == 0)
                o->tls = 12;
            else
                die("--tls must be 1.3 or 1.2 (got \"%s\")", optarg);
            break;
        case OPT_GROUP:
            if (strcasecmp(optarg, "x25519") == 0)
                o->group = WOLFSSL_ECC_X25519;
            else if (strcasecmp(optarg, "p256") == 0 || strcasecmp(optarg, "secp256r1") == 0)
                o->group = WOLFSSL_ECC_SECP256R1;
            else if (strcasecmp(optarg, "p384") == 0 || strcasecmp(optarg, "secp384r1") == 0)
                o->group = WOLFSSL_ECC_SECP384R1;
            else
                die("--group must be x25519, p256 or p384 (got \"%s\")", optarg);
            break;
        case OPT_CIPHERS: o->ciphers = optarg; break;
        case OPT_NO_TICKETS: o->tickets = false; break;
        case OPT_PSK_KE_ONLY: o->psk_ke_only = true; break;
        case OPT_REUSE_KS: o->reuse_key_share = true; break;
        case OPT_KEY_SIGNER:
            if (strcmp(optarg, "auto") == 0)
                o->openssl_signer = mtls_keysign_built() && mtls_keysign_cpu_fast(&why);
            else if (strcmp(optarg, "openssl") == 0 || strcmp(optarg, "wolfssl") == 0)
                o->openssl_signer = optarg[0] == 'o';
            else
                die("%s", "--key-signer takes auto, wolfssl or openssl");
            break;
        case OPT_NO_CN: o->close_notify = false; break;
        case OPT_JSON: o->json = true; break;
        case 'v': o->verbose = true; break;
        case 'q': o->quiet = true; break;
        case OPT_ALLOW: o->allow_errors = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc - 1)
        die("one URL at most (extra argument \"%s\")", argv[optind + 1]);
    if (optind == argc - 1)
        parse_url(o, argv[optind]);
    if (!o->cacert && !o->insecure)
        die("%s", "give --cacert FILE to verify the server, or --insecure to skip verification");
    if (!!o->cert != !!o->key)
        die("%s", "--cert and --key go together");
    if (o->duration == 0 && o->requests == 0)
        o->duration = 10; /* every run is bounded */
    if (o->pipeline > 1 && o->mode != MODE_KEEPALIVE)
        die("%s", "--pipeline needs --mode keepalive");
    if (o->mode == MODE_IDLE && (o->rate > 0 || o->requests))
        die("%s", "--mode idle sends no requests: use --duration, not --rate or --requests");
    if (o->requests && o->connections > o->requests) {
        if (conn_set && !o->quiet)
            fprintf(stderr, "mtls-load: note: %u connections capped to --requests %" PRIu64 "\n",
                    o->connections, o->requests);
        o->connections = (unsigned)o->requests;
    }
    if (o->threads > o->connections)
        o->threads = o->connections;
}

static bool is_ip_literal(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static void build_request(const struct opts *o)
{
    char host[300];
    bool v6 = strchr(o->host, ':') != NULL;
    if (strcmp(o->port, "443") == 0)
        snprintf(host, sizeof host, v6 ? "[%s]" : "%s", o->host);
    else
        snprintf(host, sizeof host, v6 ? "[%s]:%s" : "%s:%s", o->host, o->port);
    size_t dlen = o->data ? strlen(o->data) : 0;
    size_t cap = strlen(o->method) + strlen(o->path) + strlen(host) + o->headers_len + dlen + 256;
    char *one = malloc(cap);
    if (!one)
        die("%s", "out of memory");
    int n = snprintf(one, cap, "%s %s HTTP/1.1\r\n%s%s%s%s", o->method, o->path,
                     header_given(o, "host") ? "" : "Host: ", header_given(o, "host") ? "" : host,
                     header_given(o, "host") ? "" : "\r\n",
                     header_given(o, "user-agent") ? "" : "User-Agent: mtls-load\r\n");
    size_t len = (size_t)n;
    /* new/resume: one request per connection; say so, so the server closes
     * first and keeps the TIME_WAIT state (the client's ports would run out). */
    if (!persistent() && !header_given(o, "connection"))
        len += (size_t)snprintf(one + len, cap - len, "Connection: close\r\n");
    if (o->data)
        len += (size_t)snprintf(one + len, cap - len, "Content-Length: %zu\r\n", dlen);
    memcpy(one + len, o->headers, o->headers_len);
    len += o->headers_len;
    memcpy(one + len, "\r\n", 2);
    len += 2;
    if (dlen) {
        memcpy(one + len, o->data, dlen);
        len += dlen;
    }
    g.req_len = len;
    g.req = malloc(len * o->pipeline);
    if (!g.req)
        die("%s", "out of memory");
    for (unsigned i = 0; i < o->pipeline; i++)
        memcpy(g.req + i * len, one, len);
    free(one);
}

/* One X25519 private key for every connection's key share: the client's
 * key generation (about half its X25519 cost) is paid once. Loaded as a
 * static ephemeral key (PKCS#8, RFC 8410), which needs a wolfSSL built with
 * WOLFSSL_STATIC_EPHEMERAL (scripts/deps.sh does). */
static void reuse_key_share(const struct opts *o)
{
#ifdef WOLFSSL_STATIC_EPHEMERAL
    static const uint8_t pkcs8[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                      0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20};
    uint8_t der[48];
    WC_RNG rng;

    if (o->group != WOLFSSL_ECC_X25519 || o->tls != 13)
        die("%s", "--reuse-key-share works with --tls 1.3 --group x25519 only");
    memcpy(der, pkcs8, sizeof pkcs8);
    if (wc_InitRng(&rng) != 0 || wc_RNG_GenerateBlock(&rng, der + 16, 32) != 0)
        die("%s", "cannot generate the key share");
    wc_FreeRng(&rng);
    der[16] &= 248; /* X25519 clamping (little-endian scalar) */
    der[47] = (uint8_t)((der[47] & 127) | 64);
    if (wolfSSL_CTX_set_ephemeral_key(g.ctx, WC_PK_TYPE_CURVE25519, (const char *)der,
                                      sizeof der, WOLFSSL_FILETYPE_ASN1) != 0) /* 0: ok */
        die("%s", "wolfSSL refused the static X25519 key share");
    explicit_bzero(der, sizeof der);
#else
    (void)o;
    die("%s", "--reuse-key-share needs wolfSSL built with WOLFSSL_STATIC_EPHEMERAL "
              "(scripts/deps.sh)");
#endif
}

#if defined(HAVE_PK_CALLBACKS) && defined(MTLSD_HAVE_WOLFSSL_INTERNAL) && defined(WC_RSA_PSS)
/* --key-signer openssl: the client's RSA-PSS signature (its TLS 1.3
 * CertificateVerify) made by libcrypto through mtlsd's own signer
 * (src/keysign.c). With an RSA-2048 client certificate the load tool's
 * signature was dearer than the server's whole handshake, so the closed-loop
 * rows could not saturate a server. Other signatures stay with wolfSSL. */
static int on_client_pss_sign(WOLFSSL *ssl, const unsigned char *in, unsigned in_len,
                              unsigned char *out, unsigned *out_len, int hash, int mgf,
                              const unsigned char *key, unsigned key_len, void *arg)
{
    enum mtls_keysign_alg alg = hash == SHA256h && mgf == WC_MGF1SHA256   ? MTLS_KEYSIGN_PSS_SHA256
                                : hash == SHA384h && mgf == WC_MGF1SHA384 ? MTLS_KEYSIGN_PSS_SHA384
                                : hash == SHA512h && mgf == WC_MGF1SHA512 ? MTLS_KEYSIGN_PSS_SHA512
                                                                          : MTLS_KEYSIGN_N;
    size_t n = *out_len;

    (void)ssl, (void)arg;
    if (alg == MTLS_KEYSIGN_N || mtls_keysign_rsa(alg, key, key_len, in, in_len, out, &n) < 0)
        return WC_HW_E;
    *out_len = (unsigned)n;
    return 0;
}
#endif

static void client_signer(const struct opts *o)
{
    char err[256];

    if (!o->openssl_signer)
        return;
#if defined(HAVE_PK_CALLBACKS) && defined(MTLSD_HAVE_WOLFSSL_INTERNAL) && defined(WC_RSA_PSS)
    if (!mtls_keysign_built() || mtls_keysign_init(err, sizeof err) < 0)
        die("--key-signer openssl: %s", mtls_keysign_built() ? err : "built without libcrypto");
    wolfSSL_CTX_SetRsaPssSignCb(g.ctx, on_client_pss_sign);
#else
    (void)err;
    die("%s", "--key-signer openssl needs wolfSSL PK callbacks (scripts/deps.sh)");
#endif
}

static void setup_tls(const struct opts *o)
{
    WOLFSSL_METHOD *m = o->tls == 13 ? wolfTLSv1_3_client_method() : wolfTLSv1_2_client_method();
    g.ctx = m ? wolfSSL_CTX_new(m) : NULL;
    if (!g.ctx)
        die("%s", "wolfSSL_CTX_new failed (is TLS 1.2 compiled into this wolfSSL?)");
    if (o->cert) {
        if (wolfSSL_CTX_use_certificate_chain_file(g.ctx, o->cert) != WOLFSSL_SUCCESS)
            die("cannot load the client certificate from %s (PEM expected)", o->cert);
        if (wolfSSL_CTX_use_PrivateKey_file(g.ctx, o->key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            die("cannot load the client key from %s (PEM expected)", o->key);
        if (wolfSSL_CTX_check_private_key(g.ctx) != WOLFSSL_SUCCESS)
            die("the key in %s does not match the client certificate", o->key);
        client_signer(o);
    }
    if (o->insecure) {
        wolfSSL_CTX_set_verify(g.ctx, WOLFSSL_VERIFY_NONE, NULL);
    } else {
        if (wolfSSL_CTX_load_verify_locations(g.ctx, o->cacert, NULL) != WOLFSSL_SUCCESS)
            die("cannot load CA certificates from %s (PEM expected)", o->cacert);
        wolfSSL_CTX_set_verify(g.ctx, WOLFSSL_VERIFY_PEER, NULL);
        g.verify_name = o->servername ? o->servername : o->host;
    }
    const char *sni = o->servername ? o->servername : (is_ip_literal(o->host) ? NULL : o->host);
    if (sni && wolfSSL_CTX_UseSNI(g.ctx, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni)) != WOLFSSL_SUCCESS)
        die("cannot set SNI %s", sni);
    /* The chosen group first (TLS 1.3 key share); the NIST curves after it so
     * a server without it can still answer, and because TLS 1.2 servers check
     * their ECDSA certificate's curve against this list. */
    int groups[3] = {o->group}, ng = 1;
    if (o->group != WOLFSSL_ECC_SECP256R1)
        groups[ng++] = WOLFSSL_ECC_SECP256R1;
    if (o->group != WOLFSSL_ECC_SECP384R1)
        groups[ng++] = WOLFSSL_ECC_SECP384R1;
    if (o->reuse_key_share)
        reuse_key_share(o);
    if (o->tls == 13) {
        if (wolfSSL_CTX_set_groups(g.ctx, groups, ng) != WOLFSSL_SUCCESS)
            die("%s", "cannot set the key exchange groups");
        if (o->psk_ke_only && wolfSSL_CTX_no_dhe_psk(g.ctx) != 0)
            die("%s", "cannot restrict PSK key exchange to psk_ke");
    } else {
        for (int i = 0; i < ng; i++)
            if (wolfSSL_CTX_UseSupportedCurve(g.ctx, (word16)groups[i]) != WOLFSSL_SUCCESS)
                die("%s", "cannot set the supported groups");
        if (o->tickets && wolfSSL_CTX_UseSessionTicket(g.ctx) != WOLFSSL_SUCCESS)
            die("%s", "cannot enable TLS 1.2 session tickets");
    }
    if (o->ciphers && wolfSSL_CTX_set_cipher_list(g.ctx, o->ciphers) != WOLFSSL_SUCCESS)
        die("wolfSSL rejected the cipher list %s", o->ciphers);
}

static void resolve(const struct opts *o)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
    int r = getaddrinfo(o->host, o->port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "mtls-load: cannot resolve %s:%s: %s\n", o->host, o->port, gai_strerror(r));
        exit(2);
    }
    memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
    g.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void report(const struct stats *t, double elapsed, double user_s, double sys_s)
{
    const struct opts *o = &g.o;
    uint64_t ops = t->ok + t->non2xx;
    double rate = elapsed > 0 ? (double)ops / elapsed : 0;
    double cpu_us_op = ops ? (user_s + sys_s) * 1e6 / (double)ops : 0;
    double p50 = (double)hist_quantile(&t->lat, 0.50) / 1e3, p90 = (double)hist_quantile(&t->lat, 0.90) / 1e3,
           p99 = (double)hist_quantile(&t->lat, 0.99) / 1e3, p999 = (double)hist_quantile(&t->lat, 0.999) / 1e3,
           max = (double)t->lat.max / 1e3, mean = t->lat.n ? t->lat.sum / (double)t->lat.n / 1e3 : 0;

    if (!o->quiet) {
        FILE *f = (o->json || o->verbose) ? stderr : stdout;
        char loop[64];
        if (o->rate > 0)
            snprintf(loop, sizeof loop, "open loop at %.0f/s", o->rate);
        else
            snprintf(loop, sizeof loop, "closed loop");
        fprintf(f, "mtls-load: %s, TLS 1.%d, %u thread%s, %u connection%s, pipeline %u, %s, %.2f s\n",
                mode_names[o->mode], o->tls - 10, o->threads, o->threads == 1 ? "" : "s", o->connections,
                o->connections == 1 ? "" : "s", o->pipeline, loop, elapsed);
        fprintf(f, "  %-12s %" PRIu64 " (%.1f/s)  2xx %" PRIu64 "  non-2xx %" PRIu64 "  errors %" PRIu64, 
                persistent() ? "requests" : "connections", ops, rate, t->ok, t->non2xx, t->errors);
        if (t->abandoned)
            fprintf(f, "  unfinished at the end %" PRIu64, t->abandoned);
        fprintf(f, "\n");
        if (t->errors) {
            fprintf(f, "  errors by kind:");
            for (int k = 0; k < ERR_KINDS; k++)
                if (t->err_kind[k])
                    fprintf(f, " %s %" PRIu64, err_names[k], t->err_kind[k]);
            fprintf(f, "; first: %s\n", t->first_error);
        }
        fprintf(f, "  latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", p50, p90, p99,
                p999, max, mean);
        fprintf(f, "  handshakes   %" PRIu64 " (resumed %" PRIu64 ", session tickets received %" PRIu64 ")",
                t->handshakes, t->resumed, t->tickets);
        if (t->reconnects)
            fprintf(f, "  reconnects %" PRIu64, t->reconnects);
        fprintf(f, "\n  client CPU   %.2f s user + %.2f s sys = %.1f us/op\n", user_s, sys_s, cpu_us_op);
    }
    if (o->json) {
        FILE *f = stdout;
        fprintf(f, "{\"tool\":\"mtls-load\",\"mode\":\"%s\",\"tls\":\"1.%d\",\"threads\":%u,\"connections\":%u,"
                   "\"pipeline\":%u,\"target_rate\":%.3f,\"elapsed_s\":%.6f,",
                mode_names[o->mode], o->tls - 10, o->threads, o->connections, o->pipeline, o->rate, elapsed);
        fprintf(f, "\"operations\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"non2xx\":%" PRIu64 ",\"errors\":%" PRIu64
                   ",\"abandoned\":%" PRIu64 ",\"rate\":%.3f,",
                ops, t->ok, t->non2xx, t->errors, t->abandoned, rate);
        fprintf(f, "\"errors_by_kind\":{");
        for (int k = 0; k < ERR_KINDS; k++)
            fprintf(f, "%s\"%s\":%" PRIu64, k ? "," : "", err_names[k], t->err_kind[k]);
        fprintf(f, "},\"status\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64 ",\"4xx\":%" PRIu64
                   ",\"5xx\":%" PRIu64 "},",
                t->status_class[1], t->status_class[2], t->status_class[3], t->status_class[4], t->status_class[5]);
        fprintf(f, "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,\"mean\":%.1f,"
                   "\"min\":%.1f},",
                p50, p90, p99, p999, max, mean, (double)t->lat.min / 1e3);
        fprintf(f, "\"handshakes\":%" PRIu64 ",\"resumed\":%" PRIu64 ",\"tickets\":%" PRIu64
                   ",\"reconnects\":%" PRIu64 ",\"bytes_received\":%" PRIu64 ",",
                t->handshakes, t->resumed, t->tickets, t->reconnects, t->bytes);
        fprintf(f, "\"cpu\":{\"user_s\":%.6f,\"sys_s\":%.6f,\"us_per_op\":%.3f},\"first_error\":", user_s, sys_s,
                cpu_us_op);
        json_string(f, t->first_error);
        fprintf(f, "}\n");
    }
}

int main(int argc, char **argv)
{
    parse_args(&g.o, argc, argv);
    const struct opts *o = &g.o;
    g.timeout_ns = (uint64_t)(o->timeout * (double)NS_PER_S);
    resolve(o);
    build_request(o);
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        die("%s", "wolfSSL_Init failed");
#ifdef WOLFSSL_SSL_RNG_CB
    wolfSSL_SetSslRngCb(lend_thread_rng);
#endif
    setup_tls(o);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* thousands of connections need thousands of fds */
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct worker **ws = calloc(o->threads, sizeof *ws);
    if (!ws)
        die("%s", "out of memory");
    for (unsigned i = 0; i < o->threads; i++) {
        struct worker *w = calloc(1, sizeof *w);
        if (!w)
            die("%s", "out of memory");
        w->id = i;
        w->nconns = o->connections / o->threads + (i < o->connections % o->threads);
        w->conns = calloc(w->nconns, sizeof *w->conns);
        w->restart = calloc(w->nconns, sizeof *w->restart);
        w->avail = calloc(w->nconns, sizeof *w->avail);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!w->conns || !w->restart || !w->avail || w->epfd < 0)
            die("%s", "cannot allocate a worker (memory or file descriptors)");
        for (unsigned j = 0; j < w->nconns; j++) {
            w->conns[j].w = w;
            w->conns[j].fd = -1;
            w->conns[j].rp = malloc(sizeof(struct resp));
            w->conns[j].rx = malloc(RX_BUF);
            if (!w->conns[j].rp || !w->conns[j].rx)
                die("%s", "out of memory");
            resp_reset(w->conns[j].rp);
        }
        ws[i] = w;
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    pthread_barrier_init(&g.start, NULL, o->threads + 1);
    for (unsigned i = 0; i < o->threads; i++) {
        if (pthread_create(&ws[i]->tid, NULL, worker_main, ws[i]) != 0)
            die("%s", "cannot create a thread");
    }
    g.t0 = now_ns();
    g.deadline = o->duration > 0 ? g.t0 + (uint64_t)(o->duration * (double)NS_PER_S) : UINT64_MAX;
    pthread_barrier_wait(&g.start);

    static struct stats total;
    uint64_t end = g.t0;
    for (unsigned i = 0; i < o->threads; i++) {
        struct worker *w = ws[i];
        pthread_join(w->tid, NULL);
        hist_merge(&total.lat, &w->st.lat);
        total.ok += w->st.ok;
        total.non2xx += w->st.non2xx;
        total.errors += w->st.errors;
        total.abandoned += w->st.abandoned;
        total.handshakes += w->st.handshakes;
        total.resumed += w->st.resumed;
        total.reconnects += w->st.reconnects;
        total.bytes += w->st.bytes;
        total.tickets += w->st.tickets;
        for (int k = 0; k < ERR_KINDS; k++)
            total.err_kind[k] += w->st.err_kind[k];
        for (int k = 0; k < 6; k++)
            total.status_class[k] += w->st.status_class[k];
        if (!total.first_error[0] && w->st.first_error[0])
            memcpy(total.first_error, w->st.first_error, sizeof total.first_error);
        if (w->end > end)
            end = w->end;
    }
    getrusage(RUSAGE_SELF, &ru1);
    double user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime), sys_s = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    if (o->verbose)
        fflush(stdout);
    report(&total, (double)(end - g.t0) / 1e9, user_s, sys_s);

    for (unsigned i = 0; i < o->threads; i++) {
        for (unsigned j = 0; j < ws[i]->nconns; j++)
            free(ws[i]->conns[j].rp), free(ws[i]->conns[j].rx);
        close(ws[i]->epfd);
        free(ws[i]->conns);
        free(ws[i]->restart);
        free(ws[i]->avail);
        free(ws[i]);
    }
    free(ws);
    free(g.req);
    wolfSSL_CTX_free(g.ctx);
    if (o->openssl_signer)
        mtls_keysign_shutdown();
    wolfSSL_Cleanup();

    bool failed = total.errors || total.non2xx ||
                  (o->mode == MODE_IDLE ? total.handshakes < o->connections : total.ok == 0 && !g_stop);
    return failed && !o->allow_errors ? 1 : 0;
}
