/* http.c: llhttp adapter with every limit enforced as bytes arrive.
 * No lenient flags, and llhttp is built in strict mode (CMakeLists.txt): a
 * parser error is final for the connection. */
#include "mtlsd/http.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#define HTTP_FROM_PARSER(p) ((struct mtls_http *)((char *)(p) - offsetof(struct mtls_http, parser)))

static int fail(struct mtls_http *h, int status)
{
    if (!h->error_status)
        h->error_status = status;
    return -1;
}

/* Header bytes count fragments plus the ": " and CRLF around them, so a
 * flood of tiny headers is charged for its framing too. */
static int charge(struct mtls_http *h, size_t n)
{
    h->header_bytes += n;
    if (h->header_bytes > h->limits->max_header_bytes)
        return fail(h, 431);
    return 0;
}

/* Between requests a keep-alive connection holds none of these: they go
 * back to the worker's pool (or to malloc), and the next request of any
 * connection of the worker takes them again instead of four allocations. */
static void pool_put(struct mtls_http *h, struct mtls_buf *b)
{
    if (h->pool)
        mtls_buf_pool_put(h->pool, b);
    else
        mtls_buf_free(b);
}

static void release(struct mtls_http *h)
{
    pool_put(h, &h->target);
    pool_put(h, &h->fields);
    pool_put(h, &h->spans);
    pool_put(h, &h->headers);
}

static void pool_get(struct mtls_http *h, struct mtls_buf *b)
{
    if (h->pool)
        mtls_buf_pool_get(h->pool, b);
}

static int on_message_begin(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    h->target.len = 0;
    h->fields.len = 0;
    h->spans.len = 0;
    h->headers.len = 0;
    h->field_start = 0;
    h->header_count = 0;
    h->host_count = 0;
    h->header_bytes = 0;
    h->body_bytes = 0;
    h->complete = false;
    h->in_message = true;
    pool_get(h, &h->target);
    pool_get(h, &h->fields);
    pool_get(h, &h->spans);
    pool_get(h, &h->headers);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    if (h->target.len + n > h->limits->max_header_bytes)
        return fail(h, 414);
    if (charge(h, n) < 0)
        return -1;
    return mtls_buf_append(&h->target, at, n) < 0 ? fail(h, 500) : 0;
}

/* Header fields are kept, in order, for the handler (a proxy forwards
 * them): names and values in `fields`, bounded like the bytes charged. */
static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    if (charge(h, n + 4) < 0)
        return -1;
    return mtls_buf_append(&h->fields, at, n) < 0 ? fail(h, 500) : 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);
    const char *name = (const char *)h->fields.data + h->field_start;
    size_t len = h->fields.len - h->field_start;

    if (++h->header_count > h->limits->max_headers)
        return fail(h, 431);
    if (len == 4 && strncasecmp(name, "host", 4) == 0)
        h->host_count++;
    h->value_start = h->fields.len + 1;
    return mtls_buf_append(&h->fields, "", 1) < 0 ? fail(h, 500) : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    /* Folded lines (obs-fold) are refused in mtls_http_parse(). */
    if (charge(h, n) < 0)
        return -1;
    return mtls_buf_append(&h->fields, at, n) < 0 ? fail(h, 500) : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);
    uint32_t span[4] = {(uint32_t)h->field_start,
                        (uint32_t)(h->value_start - 1 - h->field_start),
                        (uint32_t)h->value_start, (uint32_t)(h->fields.len - h->value_start)};

    if (mtls_buf_append(&h->fields, "", 1) < 0 || mtls_buf_append(&h->spans, span, sizeof(span)) < 0)
        return fail(h, 500);
    h->field_start = h->fields.len;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    /* RFC 9112 3.2: exactly one Host in HTTP/1.1; more than one is a
     * classic request-smuggling and cache-poisoning vector. */
    if (h->host_count > 1 || (p->http_major == 1 && p->http_minor == 1 && h->host_count == 0))
        return fail(h, 400);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > h->limits->max_body_bytes)
        return fail(h, 413);
    if (mtls_buf_append(&h->target, "", 1) < 0) /* NUL-terminate the target */
        return fail(h, 500);
    h->target.len--;
    /* Stop here so the caller knows where the header section ends. */
    h->headers_paused = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    h->body_bytes += n;
    if (h->body_bytes > h->limits->max_body_bytes)
        return fail(h, 413);
    if (h->on_body) {
        int status = h->on_body(h->body_ctx, (const uint8_t *)at, n);
        if (status)
            return fail(h, status);
    }
    return 0;
}

/* The last chunk's size line: what follows (trailers, the final CRLF) is
 * line-framed like a head, so it gets the same line-end checks. */
static int on_chunk_header(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    if (p->content_length != 0)
        return 0;
    h->trailers_paused = true;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    h->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    h->complete = true;
    h->in_message = false;
    h->in_headers = true; /* the next bytes are the next request's head */
    return HPE_PAUSED; /* one request at a time: answers stay in order */
}

static llhttp_settings_t settings;

static void settings_init(void)
{
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_field_complete = on_header_field_complete;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_chunk_header = on_chunk_header;
    settings.on_message_complete = on_message_complete;
}

void mtls_http_init(struct mtls_http *h, const struct mtls_http_limits *limits)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, settings_init);
    memset(h, 0, sizeof(*h));
    h->limits = limits;
    h->in_headers = true;
    llhttp_init(&h->parser, HTTP_REQUEST, &settings);
}

void mtls_http_set_pool(struct mtls_http *h, struct mtls_buf_pool *pool)
{
    h->pool = pool;
}

void mtls_http_free(struct mtls_http *h)
{
    release(h);
}

void mtls_http_set_body(struct mtls_http *h, mtls_http_body_fn fn, void *ctx)
{
    h->on_body = fn;
    h->body_ctx = ctx;
}

/* The request as parsed so far (the whole head is there). */
static int fill(struct mtls_http *h, struct mtls_http_request *req)
{
    const char *q;
    unsigned n = (unsigned)(h->spans.len / (4 * sizeof(uint32_t)));

    req->method = h->parser.method;
    req->method_name = llhttp_method_name((llhttp_method_t)h->parser.method);
    req->target = h->target.data ? (const char *)h->target.data : "";
    req->target_len = h->target.len;
    q = memchr(req->target, '?', req->target_len);
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    req->version_major = h->parser.http_major;
    req->version_minor = h->parser.http_minor;
    req->keep_alive = h->keep_alive;
    if (h->headers.len != n * sizeof(struct mtls_http_header)) {
        /* Pointers only now: `fields` no longer grows. */
        h->headers.len = 0;
        for (unsigned i = 0; i < n; i++) {
            uint32_t span[4];
            struct mtls_http_header f;
            memcpy(span, h->spans.data + i * sizeof(span), sizeof(span));
            f.name = (const char *)h->fields.data + span[0];
            f.name_len = span[1];
            f.value = (const char *)h->fields.data + span[2];
            f.value_len = span[3];
            if (mtls_buf_append(&h->headers, &f, sizeof(f)) < 0)
                return -1;
        }
    }
    req->headers = (const struct mtls_http_header *)(void *)h->headers.data;
    req->n_headers = n;
    return 0;
}

/* Looks, across reads, for LF followed by SP or HTAB (obs-fold) and for
 * LF without CR before it (bare LF) in head or trailer bytes. */
static bool bad_line_end(struct mtls_http *h, const char *p, const char *end)
{
    const char *lf = p;

    if (p == end)
        return false;
    if (h->last_lf && (*p == ' ' || *p == '\t'))
        return true;
    /* Only the bytes around each LF matter: memchr finds them, rather than
     * a byte-by-byte walk over every head (a keep-alive hot path). */
    while ((lf = memchr(lf, '\n', (size_t)(end - lf))) != NULL) {
        if (!(lf > p ? lf[-1] == '\r' : h->last_cr))
            return true;
        if (lf + 1 < end && (lf[1] == ' ' || lf[1] == '\t'))
            return true;
        lf++;
    }
    h->last_lf = end[-1] == '\n';
    h->last_cr = end[-1] == '\r';
    return false;
}

bool mtls_http_idle(const struct mtls_http *h)
{
    return !h->in_message;
}

enum mtls_http_result mtls_http_parse(struct mtls_http *h, const uint8_t *data, size_t len,
                                      size_t *consumed, struct mtls_http_request *req,
                                      int *status)
{
    llhttp_errno_t err;
    const char *pos;

    if (h->complete) {
        /* The previous request was answered: forget it. Its buffers are
         * released so an idle keep-alive connection holds no memory. */
        h->complete = false;
        release(h);
    }
    if (len == 0 && !h->resume) {
        *consumed = 0;
        return MTLS_HTTP_NEED_MORE;
    }
    const char *start = (const char *)data, *end = start + len;
    if (h->resume) {
        /* After a head: on, even at the end of the input, since a request
         * without a body completes right here, with no more bytes. */
        h->resume = false;
        llhttp_resume(&h->parser);
    }
    for (;;) {
        bool in_headers = h->in_headers;
        err = llhttp_execute(&h->parser, start, (size_t)(end - start));
        pos = err == HPE_OK ? end : llhttp_get_error_pos(&h->parser);
        /* llhttp 8 accepts obs-fold (a header line continued by a line
         * starting with SP or HTAB) and hands the pieces over as one value.
         * Proxies disagree on unfolding, so a folded Transfer-Encoding or
         * Content-Length is a smuggling vector: refuse it (RFC 9112 5.2).
         * It also takes a bare LF after the request line and as the empty
         * line; peers that split lines differently disagree on framing. */
        if (in_headers && pos && bad_line_end(h, start, pos)) {
            *consumed = len;
            *status = 400;
            return MTLS_HTTP_ERROR;
        }
        if (err == HPE_PAUSED && h->headers_paused) {
            h->headers_paused = false;
            h->in_headers = false;
            h->resume = true;
            h->keep_alive = llhttp_should_keep_alive(&h->parser) && !h->parser.upgrade;
            *consumed = (size_t)(pos - (const char *)data);
            if (fill(h, req) < 0) {
                *status = 500;
                return MTLS_HTTP_ERROR;
            }
            return MTLS_HTTP_HEAD;
        }
        if (err == HPE_PAUSED && h->trailers_paused) {
            h->trailers_paused = false;
            h->in_headers = true;
            h->last_lf = false;
            h->last_cr = false;
            llhttp_resume(&h->parser);
            start = pos;
            continue;
        }
        break;
    }
    if (err == HPE_OK) {
        *consumed = len;
        return MTLS_HTTP_NEED_MORE;
    }
    if (err == HPE_PAUSED && h->complete) {
        *consumed = (size_t)(pos - (const char *)data);
        /* Only now: the bytes up to here (trailers) were checked above. */
        h->last_lf = false;
        h->last_cr = false;
        llhttp_resume(&h->parser);
        if (fill(h, req) < 0) {
            *status = 500;
            return MTLS_HTTP_ERROR;
        }
        return MTLS_HTTP_REQUEST;
    }
    *consumed = len;
    *status = h->error_status ? h->error_status : 400;
    return MTLS_HTTP_ERROR;
}
