/* http.c: llhttp adapter with every limit enforced as bytes arrive.
 * No lenient flags: a parser error is final for the connection. */
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

static int on_message_begin(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    h->target.len = 0;
    h->field_len = 0;
    h->field_long = false;
    h->header_count = 0;
    h->host_count = 0;
    h->header_bytes = 0;
    h->body_bytes = 0;
    h->complete = false;
    h->in_message = true;
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

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    if (charge(h, n + 4) < 0)
        return -1;
    if (h->field_len + n > sizeof(h->field)) {
        h->field_long = true;
    } else {
        memcpy(h->field + h->field_len, at, n);
        h->field_len = (uint8_t)(h->field_len + n);
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    if (++h->header_count > h->limits->max_headers)
        return fail(h, 431);
    if (!h->field_long && h->field_len == 4 && strncasecmp(h->field, "host", 4) == 0)
        h->host_count++;
    h->field_len = 0;
    h->field_long = false;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    /* Folded lines (obs-fold) are refused in mtls_http_parse(). */
    (void)at;
    return charge(HTTP_FROM_PARSER(p), n);
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

    (void)at; /* no route takes a body: count it and drop it */
    h->body_bytes += n;
    if (h->body_bytes > h->limits->max_body_bytes)
        return fail(h, 413);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct mtls_http *h = HTTP_FROM_PARSER(p);

    h->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    h->complete = true;
    h->in_message = false;
    h->in_headers = true; /* the next bytes are the next request's head */
    h->last_lf = false;
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
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
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

void mtls_http_free(struct mtls_http *h)
{
    mtls_buf_free(&h->target);
}

/* Looks for LF followed by SP or HTAB in header bytes, across reads. */
static bool has_fold(struct mtls_http *h, const char *p, const char *end)
{
    for (; p < end; p++) {
        if (h->last_lf && (*p == ' ' || *p == '\t'))
            return true;
        h->last_lf = *p == '\n';
    }
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
        /* The previous request was answered: forget it. Its target buffer is
         * released so an idle keep-alive connection holds no memory. */
        h->complete = false;
        mtls_buf_free(&h->target);
    }
    if (len == 0) {
        *consumed = 0;
        return MTLS_HTTP_NEED_MORE;
    }
    const char *start = (const char *)data, *end = start + len;
    for (;;) {
        bool in_headers = h->in_headers;
        err = llhttp_execute(&h->parser, start, (size_t)(end - start));
        pos = err == HPE_OK ? end : llhttp_get_error_pos(&h->parser);
        /* llhttp 8 accepts obs-fold (a header line continued by a line
         * starting with SP or HTAB) and hands the pieces over as one value.
         * Proxies disagree on unfolding, so a folded Transfer-Encoding or
         * Content-Length is a smuggling vector: refuse it (RFC 9112 5.2). */
        if (in_headers && pos && has_fold(h, start, pos)) {
            *consumed = len;
            *status = 400;
            return MTLS_HTTP_ERROR;
        }
        if (err == HPE_PAUSED && h->headers_paused) {
            h->headers_paused = false;
            h->in_headers = false;
            llhttp_resume(&h->parser);
            /* Go on even at the end of the input: a request without a body
             * completes right here, with no more bytes. */
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
        llhttp_resume(&h->parser);
        req->method = h->parser.method;
        req->method_name = llhttp_method_name((llhttp_method_t)h->parser.method);
        req->target = h->target.data ? (const char *)h->target.data : "";
        req->target_len = h->target.len;
        pos = memchr(req->target, '?', req->target_len);
        req->path_len = pos ? (size_t)(pos - req->target) : req->target_len;
        req->version_major = h->parser.http_major;
        req->version_minor = h->parser.http_minor;
        req->keep_alive = h->keep_alive;
        return MTLS_HTTP_REQUEST;
    }
    *consumed = len;
    *status = h->error_status ? h->error_status : 400;
    return MTLS_HTTP_ERROR;
}
