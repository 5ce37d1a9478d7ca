/* The HTTP adapter fed whole, byte by byte and in random pieces; pipelining;
 * limits; a request-smuggling table. */
#include "check.h"
#include "mtlsd/http.h"

#include <stdlib.h>
#include <string.h>

static const struct mtls_http_limits limits = {
    .max_header_bytes = 1024, .max_headers = 8, .max_body_bytes = 100};

/* Shared by every parser of this test, as a worker's connections share
 * theirs: each request below runs on buffers another one gave back. */
static struct mtls_buf_pool pool = MTLS_HTTP_POOL_INIT;

struct outcome {
    int requests;
    int error;                /* status, 0 if none */
    char targets[8][64];
    int methods[8];
    int keep_alive[8];
    int heads;
    char fields[8][128];      /* "name=value|..." of each request */
    size_t body_at_head;      /* body bytes seen when the head came */
};

struct body_sink {
    char data[64];
    size_t len;
};

static int on_body(void *ctx, const uint8_t *p, size_t n)
{
    struct body_sink *b = ctx;
    if (b->len + n > sizeof(b->data))
        return 500;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Feeds `s` in pieces of `step` bytes (0: random 1..7); the body to `sink`
 * if not NULL. */
static struct outcome run_body(const char *s, size_t step, struct body_sink *sink)
{
    struct mtls_http h;
    struct outcome o;
    size_t len = strlen(s), off = 0;

    memset(&o, 0, sizeof(o));
    mtls_http_init(&h, &limits);
    mtls_http_set_pool(&h, &pool);
    if (sink)
        mtls_http_set_body(&h, on_body, sink);
    while (off < len && !o.error) {
        size_t n = step ? step : (size_t)(rand() % 7 + 1);
        if (n > len - off)
            n = len - off;
        const uint8_t *p = (const uint8_t *)s + off;
        size_t left = n;
        off += n;
        for (;;) {
            struct mtls_http_request req;
            size_t used;
            int status = 0;
            enum mtls_http_result r = mtls_http_parse(&h, p, left, &used, &req, &status);
            p += used;
            left -= used;
            if (r == MTLS_HTTP_NEED_MORE)
                break;
            if (r == MTLS_HTTP_HEAD) {
                o.heads++;
                o.body_at_head = sink ? sink->len : 0;
                continue; /* the body and the end follow */
            }
            if (r == MTLS_HTTP_ERROR) {
                o.error = status;
                break;
            }
            if (o.requests < 8) {
                size_t used_f = 0;
                for (unsigned i = 0; i < req.n_headers; i++) {
                    int w = snprintf(o.fields[o.requests] + used_f, 128 - used_f, "%s=%s|",
                                     req.headers[i].name, req.headers[i].value);
                    if (w < 0 || (size_t)w >= 128 - used_f ||
                        strlen(req.headers[i].name) != req.headers[i].name_len ||
                        strlen(req.headers[i].value) != req.headers[i].value_len)
                        break;
                    used_f += (size_t)w;
                }
                snprintf(o.targets[o.requests], 64, "%.*s", (int)req.path_len, req.target);
                o.methods[o.requests] = req.method;
                o.keep_alive[o.requests] = req.keep_alive;
            }
            o.requests++;
        }
    }
    mtls_http_free(&h);
    return o;
}

static struct outcome run(const char *s, size_t step)
{
    return run_body(s, step, NULL);
}

static void each_split(const char *s, int requests, int error)
{
    size_t steps[] = {1000000, 1, 2, 3, 0, 0, 0};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct outcome o = run(s, steps[i]);
        CHECK(o.requests == requests);
        CHECK(o.error == error);
        if (o.requests != requests || o.error != error)
            fprintf(stderr, "  input %.40s... step %zu: %d requests, error %d\n", s,
                    steps[i], o.requests, o.error);
    }
}

/* The handler boundary: a head with every header field in order, then the
 * body to the callback, then the request. */
static void head_and_body(size_t step)
{
    static const char s[] = "POST /up?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 2\r\nx-two: second\r\n"
                            "Empty:\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    struct body_sink b = {.len = 0};
    struct outcome o = run_body(s, step, &b);

    CHECK(o.error == 0 && o.heads == 1 && o.requests == 1);
    CHECK(o.body_at_head == 0); /* the head comes before its body */
    CHECK(b.len == 5 && memcmp(b.data, "abcde", 5) == 0);
    CHECK(strcmp(o.targets[0], "/up") == 0);
    CHECK(strcmp(o.fields[0], "Host=a|X-Two=2|x-two=second|Empty=|Transfer-Encoding=chunked|") == 0);
}

#define CHUNKED "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

int main(void)
{
    struct outcome o;
    char big[4096];

    srand(1);
    /* Whole, byte by byte, random pieces: the same answer. */
    each_split("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0);
    o = run("GET /whoami?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 1);
    CHECK(strcmp(o.targets[0], "/whoami") == 0);
    CHECK(o.keep_alive[0] == 1);

    /* Pipelining: three requests in one buffer, answered in order. */
    const char *pipe3 = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nHEAD /b HTTP/1.1\r\nHost: a\r\n\r\n"
                        "GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    each_split(pipe3, 3, 0);
    o = run(pipe3, 1000000);
    CHECK(strcmp(o.targets[0], "/a") == 0 && strcmp(o.targets[1], "/b") == 0 &&
          strcmp(o.targets[2], "/c") == 0);
    CHECK(o.methods[1] == HTTP_HEAD);
    CHECK(o.keep_alive[1] == 1 && o.keep_alive[2] == 0);

    /* HTTP/1.0: no Host needed, no keep-alive unless asked. */
    o = run("GET / HTTP/1.0\r\n\r\n", 1000000);
    CHECK(o.requests == 1 && o.keep_alive[0] == 0);
    o = run("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1000000);
    CHECK(o.requests == 1 && o.keep_alive[0] == 1);

    /* A body is read and dropped; the next request follows. */
    each_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n"
               "Host: a\r\n\r\n", 2, 0);
    each_split("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n", 1, 0);

    /* Limits. */
    each_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 0, 413);
    each_split("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               "65\r\n", 0, 0); /* incomplete: no error yet */
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    char req[8192];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n", big);
    each_split(req, 0, 431);
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", big);
    each_split(req, 0, 414);
    each_split("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n"
               "G: 1\r\nH: 1\r\n\r\n", 0, 431);

    /* Request smuggling and malformed input: 400, never a request. */
    each_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: "
               "chunked\r\n\r\n0\r\n\r\n", 0, 400);
    each_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
               "abcd", 0, 400);
    each_split("GET / HTTP/1.1\nHost: a\n\n", 0, 400);          /* bare LF */
    each_split("GET / HTTP/1.1\nHost: a\r\n\r\n", 0, 400);      /* after the request line */
    each_split("GET / HTTP/1.1\r\nHost: a\r\n\n", 0, 400);      /* as the empty line */
    each_split("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 0, 400);
    each_split("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\nHost: a\r\n\r\n", 1, 400);
    /* chunk data not followed by CRLF; bare LF in the chunked framing */
    each_split(CHUNKED "3\r\nabcXY0\r\n\r\n", 0, 400);
    each_split(CHUNKED "3\r\nabc\n0\r\n\r\n", 0, 400);
    each_split(CHUNKED "3\nabc\r\n0\r\n\r\n", 0, 400);
    each_split(CHUNKED "3\r\nabc\r\n0\r\n\n", 0, 400);
    each_split(CHUNKED "3\r\nabc\r\n0\r\nT: 1\n\r\n", 0, 400);
    each_split(CHUNKED "3;a=b\nabc\r\n0\r\n\r\n", 0, 400);
    each_split(CHUNKED "3\rXabc\r\n0\r\n\r\n", 0, 400);
    each_split("GET / HTTP/1.1\rHost: a\r\n\r\n", 0, 400);    /* bare CR */
    /* strict mode: the target is ASCII without TAB (RFC 9112 3.2) */
    each_split("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400);
    each_split("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400);
    /* trailers and chunk data holding LF are fine; the next request follows */
    each_split(CHUNKED "3\r\na\n\n\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 2, 0);
    each_split("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0, 400); /* obs-fold */
    each_split("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 0, 400);
    each_split("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
               "0\r\n\r\n", 0, 400);
    /* a body may contain LF + SP: only the head is checked */
    each_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\na\n bGET / HTTP/1.1\r\n"
               "Host: a\r\n\r\n", 2, 0);
    each_split("GET / HTTP/1.1\r\n\r\n", 0, 400);               /* no Host */
    each_split("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400);
    each_split("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400);   /* space before colon */
    each_split("GET / HTTP/9.9\r\nHost: a\r\n\r\n", 0, 400);
    each_split("\x16\x03\x01\x02\x00", 0, 400);                 /* TLS on the HTTP side */
    each_split("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, x\r\n\r\n", 0,
               400);
    each_split("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400);
    head_and_body(1);
    head_and_body(3);
    head_and_body(1000);

    /* The pool: what finished requests gave back, bounded; the next parser
     * takes it (a request's buffers are four). */
    CHECK(pool.n >= 4 && pool.n <= sizeof(pool.spare) / sizeof(pool.spare[0]));
    unsigned before = pool.n;
    o = run("GET /pooled HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n", 1000000);
    CHECK(o.requests == 1 && strcmp(o.targets[0], "/pooled") == 0);
    CHECK(strcmp(o.fields[0], "Host=a|X=y|") == 0);
    CHECK(pool.n == before);
    mtls_buf_pool_free(&pool);
    CHECK(pool.n == 0);
    o = run("GET /unpooled HTTP/1.1\r\nHost: a\r\n\r\n", 1);
    CHECK(o.requests == 1 && strcmp(o.targets[0], "/unpooled") == 0);
    mtls_buf_pool_free(&pool);
    return check_report();
}
