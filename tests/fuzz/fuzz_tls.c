/* libFuzzer driver for the server's TLS input (issue 10 part 3 (a)): bytes
 * from a client fed to a server connection built by the real tls.c set-up
 * (mtls_tls_ctx_new: mtlsd's verify, ticket and session callbacks), over
 * memory as conn.c does (mtls_tls_feed, handshake, then reads). The first
 * byte picks how the rest is cut into reads (1..256 bytes, or all at once).
 * The server's certificate, key and --client-ca come from the directory in
 * MTLSD_FUZZ_PKI (certs/gen.sh output; ctest makes one per run); the client
 * certificate is optional (--client-auth optional) so that resumption and
 * certificate-less paths are reached too; the ticket key is a fixed one.
 *
 * Seeds (tests/fuzz/corpus/tls/) are real first flights of openssl s_client
 * (TLS 1.3, TLS 1.2, with a ticket, with a certificate chain), captured by
 * tls_seeds.sh. Built with -DMTLSD_FUZZ=ON (clang); tests/fuzz/replay.c runs
 * the corpus and regression/tls/ in every test run under the sanitizers. */
#include "mtlsd/buf.h"
#include "mtlsd/config.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/tickets.h"
#include "mtlsd/tls.h"

#include <fcntl.h>
#include <unistd.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mtls_tls_ctx *fuzz_ctx;

static void fuzz_init(void)
{
    static struct mtls_config cfg; /* tls.c keeps a pointer to it */
    static char cert[4096], key[4096], ca[4096], tkey[4096];
    uint8_t k[MTLS_TICKET_KEY_SIZE];
    const char *dir = getenv("MTLSD_FUZZ_PKI");
    char err[512];

    if (!dir) {
        fprintf(stderr, "fuzz_tls: set MTLSD_FUZZ_PKI to a certs/gen.sh directory\n");
        exit(2);
    }
    mtls_log_level = MTLS_LOG_ERROR;
    mtls_config_defaults(&cfg);
    snprintf(cert, sizeof(cert), "%s/server.crt", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.verify.client_ca_file = ca;
    cfg.verify.client_auth = MTLS_AUTH_OPTIONAL;
    /* A fixed ticket key (bytes 0..79, as tls_seeds.sh gives the server it
     * records): the seeds' tickets then name a known key and reach the MAC
     * and the bounds checks of the ticket callback (issue 10 review item 2). */
    snprintf(tkey, sizeof(tkey), "%s/fuzz-ticket.key", dir);
    for (size_t i = 0; i < sizeof(k); i++)
        k[i] = (uint8_t)i;
    int fd = open(tkey, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, k, sizeof(k)) != (ssize_t)sizeof(k) || close(fd) != 0) {
        perror(tkey);
        exit(2);
    }
    cfg.resume.ticket_key_file = tkey;
    if (mtls_tls_ctx_new(&fuzz_ctx, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
        exit(2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mtls_metrics metrics;
    struct mtls_buf out = {0};
    struct mtls_tls *t;
    enum mtls_tls_status st = MTLS_TLS_AGAIN;
    bool done = false;
    size_t step, off = 1;

    if (!fuzz_ctx)
        fuzz_init();
    if (size < 1)
        return 0;
    step = data[0] ? data[0] : size;
    if (mtls_tls_new(&t, fuzz_ctx, &out, &metrics) < 0)
        __builtin_trap();
    while (off < size && st != MTLS_TLS_ERROR && st != MTLS_TLS_CLOSED) {
        size_t n = size - off < step ? size - off : step;
        const uint8_t *rest;
        mtls_tls_feed(t, data + off, n);
        off += n;
        /* as conn.c: the handshake, then reads, until the input is used up */
        for (int guard = 0; guard < 64; guard++) {
            const char *why = NULL;
            if (!done) {
                st = mtls_tls_handshake(t, &why);
                if (st == MTLS_TLS_ERROR && !why)
                    __builtin_trap(); /* every failure says why */
                done = st == MTLS_TLS_OK;
            } else {
                uint8_t plain[4096];
                size_t got = 0;
                st = mtls_tls_read(t, plain, sizeof(plain), &got);
                if (st == MTLS_TLS_OK && got == 0)
                    __builtin_trap();
            }
            out.len = 0; /* what the server sends is not looked at */
            if (st != MTLS_TLS_OK || mtls_tls_unread(t, &rest) == 0)
                break;
        }
        mtls_tls_feed(t, NULL, 0);
    }
    mtls_tls_free(t);
    mtls_buf_free(&out);
    return 0;
}
