/* The upstream response parser and re-framer: each case fed whole and
 * byte by byte; framing that disagrees is an error before anything reaches
 * the client; a cut body is an error after the head. */
#include "check.h"
#include "mtlsd/proxy_stream.h"

#include <string.h>

struct run {
    struct mtls_buf out;
    enum mtls_ups_event last;
    int heads;
    bool head_sent, reusable;
    const char *error;
};

/* Feeds `in` in pieces of `step` bytes (0: whole), then EOF when `eof`. */
static void feed(const char *in, size_t step, bool head_req, bool eof, struct run *res)
{
    struct mtls_ups_resp r;
    size_t len = strlen(in), off = 0;

    memset(res, 0, sizeof(*res));
    mtls_ups_resp_init(&r, &res->out, head_req, false);
    res->last = MTLS_UPS_NEED_MORE;
    while (off < len && res->last != MTLS_UPS_DONE && res->last != MTLS_UPS_ERROR) {
        size_t n = step && len - off > step ? step : len - off, used;
        size_t piece_off = 0;
        for (;;) {
            res->last = mtls_ups_resp_feed(&r, (const uint8_t *)in + off + piece_off,
                                           n - piece_off, &used);
            piece_off += used;
            if (res->last == MTLS_UPS_HEAD) {
                res->heads++;
                continue;
            }
            break;
        }
        off += n;
    }
    if (eof && res->last != MTLS_UPS_DONE && res->last != MTLS_UPS_ERROR)
        res->last = mtls_ups_resp_eof(&r);
    mtls_buf_append(&res->out, "", 1);
    res->head_sent = r.head_sent;
    res->reusable = r.reusable;
    res->error = r.error;
    mtls_ups_resp_free(&r);
}

static void both(const char *in, bool head_req, bool eof, enum mtls_ups_event want,
                 const char *want_out, bool reusable)
{
    struct run a, b;

    feed(in, 0, head_req, eof, &a);
    feed(in, 1, head_req, eof, &b);
    CHECK(a.last == want);
    CHECK(b.last == want);
    if (a.last != want || b.last != want)
        fprintf(stderr, "  case: %s\n  got %d/%d (%s)\n", in, a.last, b.last,
                a.error ? a.error : "-");
    if (want_out) {
        CHECK(strcmp((char *)a.out.data, want_out) == 0);
        /* Fed byte by byte, a chunked body is re-chunked byte by byte:
         * compare the head only. */
        size_t head = (size_t)(strstr(want_out, "\r\n\r\n") - want_out) + 4;
        CHECK(strncmp((char *)b.out.data, want_out, head) == 0);
        if (strncmp((char *)b.out.data, want_out, head) != 0)
            fprintf(stderr, "  got out: [%s]\n", (char *)b.out.data);
    }
    if (want == MTLS_UPS_DONE) {
        CHECK(a.reusable == reusable && b.reusable == reusable);
    }
    mtls_buf_free(&a.out);
    mtls_buf_free(&b.out);
}

int main(void)
{
    /* Content-Length passes through; hop-by-hop fields go. */
    both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n"
         "Keep-Alive: timeout=5\r\nX-B: 2\r\n\r\nhello",
         false, false, MTLS_UPS_DONE,
         "HTTP/1.1 200 OK\r\nX-B: 2\r\nVia: 1.1 mtlsd\r\nContent-Length: 5\r\n\r\nhello", true);
    /* Chunked in, chunked out (re-chunked; trailers dropped). */
    both("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n"
         "0\r\nX-Trailer: t\r\n\r\n",
         false, false, MTLS_UPS_DONE,
         "HTTP/1.1 201 Created\r\nVia: 1.1 mtlsd\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n0\r\n\r\n",
         true);
    /* Delimited by the upstream's close: chunked to the client, not reused. */
    both("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nabc", false, true, MTLS_UPS_DONE,
         "HTTP/1.1 200 OK\r\nX-A: 1\r\nVia: 1.1 mtlsd\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n0\r\n\r\n",
         false);
    /* An interim 100 is dropped. */
    both("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false, false,
         MTLS_UPS_DONE, "HTTP/1.1 204 No Content\r\nX-A: 1\r\nVia: 1.1 mtlsd\r\n\r\n", true);
    /* HEAD: the length the body would have, no body. */
    both("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, false, MTLS_UPS_DONE,
         "HTTP/1.1 200 OK\r\nVia: 1.1 mtlsd\r\nContent-Length: 100\r\n\r\n", true);
    /* Connection: close from the upstream: done, not reused. */
    both("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false, false,
         MTLS_UPS_DONE, "HTTP/1.1 200 OK\r\nVia: 1.1 mtlsd\r\nContent-Length: 0\r\n\r\n", false);
    /* HTTP/1.0 upstream without keep-alive: not reused. */
    both("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, false, MTLS_UPS_DONE, NULL,
         false);
    /* More bytes than one response: done, but the connection is not reused. */
    struct run x;
    feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", 0, false, false,
         &x);
    CHECK(x.last == MTLS_UPS_DONE && !x.reusable);
    mtls_buf_free(&x.out);

    /* Framing that disagrees, and garbage: errors before any byte is sent. */
    const char *bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
        "HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", /* obs-fold */
        "garbage\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct run a, b;
        feed(bad[i], 0, false, true, &a);
        feed(bad[i], 1, false, true, &b);
        CHECK(a.last == MTLS_UPS_ERROR && !a.head_sent && a.out.len == 1);
        CHECK(b.last == MTLS_UPS_ERROR && !b.head_sent && b.out.len == 1);
        if (a.last != MTLS_UPS_ERROR || a.head_sent)
            fprintf(stderr, "  bad case %zu accepted\n", i);
        mtls_buf_free(&a.out);
        mtls_buf_free(&b.out);
    }
    /* Cut: before the head (502), mid-body and mid-chunk (close the client). */
    struct run c;
    feed("HTTP/1.1 200 OK\r\nContent-", 0, false, true, &c);
    CHECK(c.last == MTLS_UPS_ERROR && !c.head_sent);
    mtls_buf_free(&c.out);
    feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 0, false, true, &c);
    CHECK(c.last == MTLS_UPS_ERROR && c.head_sent);
    mtls_buf_free(&c.out);
    feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 1, false, true, &c);
    CHECK(c.last == MTLS_UPS_ERROR && c.head_sent);
    mtls_buf_free(&c.out);
    /* A head over the bound. */
    static char big[MTLS_UPS_MAX_HEAD_BYTES + 200];
    strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
    memset(big + strlen(big), 'a', MTLS_UPS_MAX_HEAD_BYTES);
    strcat(big, "\r\n\r\n");
    feed(big, 0, false, true, &c);
    CHECK(c.last == MTLS_UPS_ERROR && !c.head_sent);
    mtls_buf_free(&c.out);

    /* An HTTP/1.0 client: no chunked framing; the body ends with the
     * connection (Connection: close), a Content-Length passes through. */
    {
        struct mtls_buf out = {0};
        struct mtls_ups_resp r;
        const char *in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        size_t used, off = 0;
        enum mtls_ups_event ev;

        mtls_ups_resp_init(&r, &out, false, false);
        r.client_http10 = true;
        do {
            ev = mtls_ups_resp_feed(&r, (const uint8_t *)in + off, strlen(in) - off, &used);
            off += used;
        } while (ev == MTLS_UPS_HEAD);
        CHECK(ev == MTLS_UPS_DONE && r.client_close);
        mtls_buf_append(&out, "", 1);
        CHECK(strcmp((char *)out.data,
                     "HTTP/1.1 200 OK\r\nVia: 1.1 mtlsd\r\nConnection: close\r\n\r\nabc") == 0);
        mtls_ups_resp_free(&r);
        mtls_buf_free(&out);
    }

    /* Request body framing. */
    struct mtls_buf b = {0};
    CHECK(mtls_chunk_append(&b, "hello world, 17 b", 17) == 0);
    CHECK(mtls_chunk_append(&b, "", 0) == 0);
    CHECK(mtls_chunk_last(&b) == 0);
    CHECK(b.len == 28 && memcmp(b.data, "11\r\nhello world, 17 b\r\n0\r\n\r\n", 28) == 0);
    mtls_buf_free(&b);
    return check_report();
}
