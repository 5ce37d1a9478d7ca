/* libFuzzer driver for the HTTP adapter: the input's first byte picks how
 * the rest is cut into reads, so splits are fuzzed along with content.
 * Built with -DMTLSD_FUZZ=ON (clang); tests/fuzz/replay.c runs the corpus
 * and the regression inputs in every CI run, with any compiler. */
#include "mtlsd/http.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct mtls_http_limits limits = {
        .max_header_bytes = 512, .max_headers = 8, .max_body_bytes = 256};
    /* Kept across inputs, as a worker keeps it across connections: every
     * request runs on buffers an earlier one gave back. */
    static struct mtls_buf_pool pool = MTLS_HTTP_POOL_INIT;
    struct mtls_http h;
    size_t step, off = 1;

    if (size < 1)
        return 0;
    step = (size_t)(data[0] % 17) + 1;
    mtls_http_init(&h, &limits);
    mtls_http_set_pool(&h, &pool);
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        const uint8_t *p = data + off;
        size_t left = n;
        off += n;
        for (;;) {
            struct mtls_http_request req;
            size_t used = 0;
            int status = 0;
            enum mtls_http_result r = mtls_http_parse(&h, p, left, &used, &req, &status);
            if (used > left)
                __builtin_trap();
            p += used;
            left -= used;
            if (r == MTLS_HTTP_NEED_MORE)
                break;
            if (r == MTLS_HTTP_HEAD)
                continue; /* the body and the end follow */
            if (r == MTLS_HTTP_ERROR) {
                if (status < 400 || status > 599)
                    __builtin_trap();
                goto out;
            }
            /* A request's fields must be sane. */
            if (req.path_len > req.target_len || strlen(req.target) != req.target_len)
                __builtin_trap();
        }
    }
out:
    mtls_http_free(&h);
    return 0;
}
