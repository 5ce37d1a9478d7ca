/* proxy_stream.c: an upstream's HTTP/1.1 response, parsed and re-framed
 * for the client as it arrives (see include/mtlsd/proxy_stream.h).
 *
 * Framing rules (RFC 9112 6.3), strict because a proxy that passes on a
 * disagreeing framing is a request-smuggling relay:
 * - Content-Length and Transfer-Encoding together, two different
 *   Content-Lengths, or a Transfer-Encoding other than a final "chunked":
 *   502 (llhttp refuses most of these itself; no lenient flag is set);
 * - a body delimited by the upstream's close reaches the client chunked,
 *   so the client connection survives it;
 * - HEAD, 1xx, 204 and 304 carry no body; 1xx interim answers are dropped
 *   (the proxy never forwards Expect or Upgrade, so none is owed);
 * - an upstream that sends bytes after its response, or says close, is not
 *   reused. Trailers of a chunked body are dropped (TE and Trailer are
 *   hop-by-hop, and the client was never offered them). */
#include "mtlsd/proxy_stream.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define R_FROM_PARSER(p) \
    ((struct mtls_ups_resp *)((char *)(p) - offsetof(struct mtls_ups_resp, parser)))

static int fail(struct mtls_ups_resp *r, const char *why)
{
    if (!r->error)
        r->error = why;
    return -1;
}

static int head_room(struct mtls_ups_resp *r, size_t n)
{
    if (r->fields.len + r->reason.len + n > MTLS_UPS_MAX_HEAD_BYTES)
        return fail(r, "response head too large");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);

    r->fields.len = 0;
    r->spans.len = 0;
    r->reason.len = 0;
    r->in_value = false;
    r->n_cl = r->n_te = 0;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);

    if (head_room(r, n) < 0)
        return -1;
    return mtls_buf_append(&r->reason, at, n) < 0 ? fail(r, "out of memory") : 0;
}

static uint32_t *span(struct mtls_ups_resp *r, size_t i)
{
    return (uint32_t *)(void *)r->spans.data + 4 * i;
}

static size_t n_spans(const struct mtls_ups_resp *r)
{
    return r->spans.len / (4 * sizeof(uint32_t));
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);
    uint32_t s[4];

    if (head_room(r, n) < 0)
        return -1;
    if (r->in_value || r->spans.len == 0) { /* a new field */
        if (n_spans(r) == MTLS_UPS_MAX_HEADERS)
            return fail(r, "too many response header fields");
        s[0] = (uint32_t)r->fields.len;
        s[1] = s[2] = s[3] = 0;
        if (mtls_buf_append(&r->spans, s, sizeof(s)) < 0)
            return fail(r, "out of memory");
        r->in_value = false;
    }
    span(r, n_spans(r) - 1)[1] += (uint32_t)n;
    return mtls_buf_append(&r->fields, at, n) < 0 ? fail(r, "out of memory") : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);
    uint32_t *s;

    if (head_room(r, n) < 0 || r->spans.len == 0)
        return -1;
    s = span(r, n_spans(r) - 1);
    if (!r->in_value) {
        s[2] = (uint32_t)r->fields.len;
        r->in_value = true;
    }
    s[3] += (uint32_t)n;
    return mtls_buf_append(&r->fields, at, n) < 0 ? fail(r, "out of memory") : 0;
}

static bool field_is(struct mtls_ups_resp *r, const uint32_t *s, const char *name)
{
    return s[1] == strlen(name) &&
           strncasecmp((const char *)r->fields.data + s[0], name, s[1]) == 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);
    struct mtls_http_header h[MTLS_UPS_MAX_HEADERS];
    struct mtls_response_framing fr;
    size_t n = n_spans(r);
    int status = (int)p->status_code, ret;
    bool chunked_in = (p->flags & F_CHUNKED) != 0;

    for (size_t i = 0; i < n; i++) {
        const uint32_t *s = span(r, i);
        h[i].name = (const char *)r->fields.data + s[0];
        h[i].name_len = s[1];
        h[i].value = (const char *)r->fields.data + s[2];
        h[i].value_len = s[3];
        if (field_is(r, s, "content-length"))
            r->n_cl++;
        if (field_is(r, s, "transfer-encoding"))
            r->n_te++;
    }
    if (status >= 100 && status < 200) {
        if (status == 101)
            return fail(r, "upstream switched protocols (never asked for)");
        return 0; /* interim: dropped, the final answer follows */
    }
    if (r->n_te && (r->n_cl || !chunked_in))
        return fail(r, "response framing: Transfer-Encoding with Content-Length, or not chunked");
    if (r->n_cl > 1) /* llhttp refuses two; same values or not, so do we */
        return fail(r, "response framing: more than one Content-Length");
    r->status = status;
    memset(&fr, 0, sizeof(fr));
    fr.close = r->client_close;
    if (r->head_request || status == 204 || status == 304) {
        fr.no_body = true;
        fr.length_known = r->n_cl == 1 && status != 204;
        fr.content_length = p->content_length;
    } else if (r->n_cl == 1) {
        fr.content_length = p->content_length;
        r->content_length = p->content_length;
    } else if (r->client_http10) {
        /* HTTP/1.0 knows no chunked framing: the body ends when the client
         * connection does (the caller closes it after this answer). */
        fr.until_close = true;
        fr.close = r->client_close = true;
        r->close_delimited = !chunked_in;
    } else if (chunked_in) {
        fr.chunked = true;
    } else {
        fr.chunked = true; /* delimited by the upstream's close */
        r->close_delimited = true;
    }
    r->chunked_out = fr.chunked;
    ret = mtls_proxy_response_head(status, (const char *)r->reason.data, r->reason.len, h,
                                   (unsigned)n, &fr, r->to_client);
    if (ret != 0)
        return fail(r, ret < 0 ? "out of memory" : "response header value refused");
    r->head_sent = true;
    /* HEAD: 1 tells llhttp no body follows, whatever the framing says (the
     * message then completes at once). Else pause, so that the caller
     * learns the head arrived (its response timer ends). */
    if (r->head_request)
        return 1;
    if (fr.no_body || (r->n_cl == 1 && p->content_length == 0))
        return 0; /* completes at once: DONE says it all */
    r->paused_head = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);
    int ret;

    if (!r->head_sent)
        return 0; /* a 1xx has no body; nothing else gets here */
    r->body_bytes += n;
    ret = r->chunked_out ? mtls_chunk_append(r->to_client, at, n)
                         : mtls_buf_append(r->to_client, at, n);
    return ret < 0 ? fail(r, "out of memory") : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct mtls_ups_resp *r = R_FROM_PARSER(p);

    if (!r->head_sent)
        return 0; /* the end of a 1xx interim answer */
    if (r->chunked_out && !r->head_request && r->status != 204 && r->status != 304 &&
        mtls_chunk_last(r->to_client) < 0)
        return fail(r, "out of memory");
    r->complete = true;
    r->reusable = !r->close_delimited && llhttp_should_keep_alive(p);
    return HPE_PAUSED; /* whatever follows is not this response's */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void mtls_ups_resp_init(struct mtls_ups_resp *r, struct mtls_buf *to_client, bool head_request,
                        bool client_close)
{
    memset(r, 0, sizeof(*r));
    llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
    r->to_client = to_client;
    r->head_request = head_request;
    r->client_close = client_close;
}

void mtls_ups_resp_free(struct mtls_ups_resp *r)
{
    mtls_buf_free(&r->fields);
    mtls_buf_free(&r->spans);
    mtls_buf_free(&r->reason);
}

/* LF followed by SP or HTAB in head bytes, across feeds. */
static bool has_fold(struct mtls_ups_resp *r, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n, *lf;

    if (n == 0)
        return false;
    if (r->last_lf && (p[0] == ' ' || p[0] == '\t'))
        return true;
    while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL && lf + 1 < end) {
        if (lf[1] == ' ' || lf[1] == '\t')
            return true;
        p = lf + 1;
    }
    r->last_lf = end[-1] == '\n';
    return false;
}

enum mtls_ups_event mtls_ups_resp_feed(struct mtls_ups_resp *r, const uint8_t *p, size_t n,
                                       size_t *consumed)
{
    llhttp_errno_t e;
    size_t pos, out_len;
    bool in_head;

    *consumed = 0;
    if (r->error)
        return MTLS_UPS_ERROR;
    if (r->complete)
        return MTLS_UPS_DONE;
    if (r->paused_head) {
        r->paused_head = false;
        llhttp_resume(&r->parser);
    } else if (n == 0) {
        return MTLS_UPS_NEED_MORE;
    }
    in_head = !r->head_sent;
    out_len = r->to_client->len;
    e = llhttp_execute(&r->parser, (const char *)p, n);
    pos = e == HPE_OK ? n
                      : (size_t)(llhttp_get_error_pos(&r->parser) - (const char *)p);
    /* llhttp 8 accepts obs-fold and joins the pieces: proxies disagree on
     * unfolding, so a folded field is refused (RFC 9112 5.2). */
    if (in_head && has_fold(r, p, pos)) {
        r->to_client->len = out_len; /* the head was framed, never sent */
        r->head_sent = false;
        fail(r, "folded response header line");
        return MTLS_UPS_ERROR;
    }
    if (e == HPE_OK) {
        *consumed = n;
        return MTLS_UPS_NEED_MORE;
    }
    if (e == HPE_PAUSED) {
        *consumed = pos;
        if (r->complete) {
            if (*consumed < n)
                r->reusable = false; /* more than it was asked for */
            return MTLS_UPS_DONE;
        }
        return MTLS_UPS_HEAD;
    }
    fail(r, llhttp_get_error_reason(&r->parser) ? llhttp_get_error_reason(&r->parser)
                                                 : "malformed response");
    return MTLS_UPS_ERROR;
}

enum mtls_ups_event mtls_ups_resp_eof(struct mtls_ups_resp *r)
{
    if (r->error)
        return MTLS_UPS_ERROR;
    if (r->complete)
        return MTLS_UPS_DONE;
    if (r->head_sent && r->close_delimited) {
        if (r->paused_head) {
            r->paused_head = false;
            llhttp_resume(&r->parser);
        }
        if (llhttp_finish(&r->parser) == HPE_OK || r->complete) {
            if (!r->complete && mtls_chunk_last(r->to_client) < 0)
                return MTLS_UPS_ERROR;
            r->complete = true;
            r->reusable = false;
            return MTLS_UPS_DONE;
        }
    }
    fail(r, r->head_sent ? "upstream closed mid-response" : "upstream closed before a response");
    return MTLS_UPS_ERROR;
}

int mtls_chunk_append(struct mtls_buf *out, const void *p, size_t n)
{
    char size[24];
    int k;

    if (n == 0)
        return 0; /* a zero-size chunk would end the body */
    k = snprintf(size, sizeof(size), "%zx\r\n", n);
    if (mtls_buf_reserve(out, (size_t)k + n + 2) < 0)
        return -1;
    mtls_buf_append(out, size, (size_t)k);
    mtls_buf_append(out, p, n);
    mtls_buf_append(out, "\r\n", 2);
    return 0;
}

int mtls_chunk_last(struct mtls_buf *out)
{
    return mtls_buf_append(out, "0\r\n\r\n", 5);
}
