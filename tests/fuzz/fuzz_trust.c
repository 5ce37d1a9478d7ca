/* libFuzzer driver for the trust loader (--client-ca and --crl files,
 * verify.c trust_load) and for the chain checks run against what it loaded
 * (verify_chain), as a client's presented chain. The input is a list of
 * records, so that the fuzzer mutates DER rather than base64:
 *
 *   record = kind (1 byte), length (2 bytes, big endian), bytes
 *   kind % 4: 0  a --client-ca certificate (DER, written as a PEM block)
 *             1  a --crl file (a DER CRL, as PEM; at most 3 files)
 *             2  a certificate of the presented chain, leaf first (at most 10)
 *             3  bytes appended as they are to the --client-ca file (PEM scan)
 *
 * The files live in memfds, read through /proc/self/fd like any path. The
 * seed corpus (tests/fuzz/corpus/trust/) is made by trust_seeds.sh from a
 * per-run PKI. Built with -DMTLSD_FUZZ=ON (clang); tests/fuzz/replay.c runs
 * the corpus and regression/trust/ in every test run under the sanitizers. */
#define _GNU_SOURCE
#include "../../src/verify.c"

#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* PEM armour around DER (RFC 7468), 64 characters a line. */
static void pem_append(struct mtls_buf *b, const char *label, const uint8_t *der, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[80];
    size_t col = 0;

    snprintf(line, sizeof(line), "-----BEGIN %s-----\n", label);
    mtls_buf_append(b, line, strlen(line));
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16 | (i + 1 < n ? (uint32_t)der[i + 1] << 8 : 0) |
                     (i + 2 < n ? der[i + 2] : 0);
        char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        mtls_buf_append(b, q, 4);
        if ((col += 4) == 64) {
            mtls_buf_append(b, "\n", 1);
            col = 0;
        }
    }
    if (col)
        mtls_buf_append(b, "\n", 1);
    snprintf(line, sizeof(line), "-----END %s-----\n", label);
    mtls_buf_append(b, line, strlen(line));
}

/* A memfd holding `b`; its path in `path`. -1 on failure. */
static int memfile(const struct mtls_buf *b, char *path, size_t n)
{
    int fd = memfd_create("fuzz_trust", MFD_CLOEXEC);

    if (fd < 0)
        return -1;
    if (b->len && write(fd, b->data, b->len) != (ssize_t)b->len) {
        close(fd);
        return -1;
    }
    snprintf(path, n, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    static struct mtls_verify_settings cfg;
    struct mtls_buf ca = {0}, crl[3] = {{0}};
    WOLFSSL_BUFFER_INFO chain[MAX_CHAIN + 1];
    char ca_path[64], crl_path[3][64], err[512];
    int ca_fd = -1, crl_fd[3] = {-1, -1, -1}, n_chain = 0;
    unsigned n_crl = 0;
    struct trust *t;

    err[0] = '\0';
    if (!init) {
        wolfSSL_Init();
        mtls_log_level = MTLS_LOG_ERROR; /* not the v1-anchor line for every input */
        cfg.verify_depth = 2;
        cfg.clock_skew_s = 60;
        settings = cfg;
        init = true;
    }
    for (size_t off = 0; off + 3 <= size;) {
        uint8_t kind = data[off] % 4;
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        const uint8_t *p = data + off + 3;
        if (len > size - off - 3)
            len = size - off - 3;
        off += 3 + len;
        if (kind == 0)
            pem_append(&ca, "CERTIFICATE", p, len);
        else if (kind == 1 && n_crl < 3)
            pem_append(&crl[n_crl++], "X509 CRL", p, len);
        else if (kind == 2 && n_chain < MAX_CHAIN + 1)
            chain[n_chain++] = (WOLFSSL_BUFFER_INFO){.buffer = (uint8_t *)p, .length = (word32)len};
        else if (kind == 3)
            mtls_buf_append(&ca, p, len);
    }
    if ((ca_fd = memfile(&ca, ca_path, sizeof(ca_path))) < 0)
        goto out;
    cfg.client_ca_file = ca_path;
    for (unsigned i = 0; i < n_crl; i++) {
        if ((crl_fd[i] = memfile(&crl[i], crl_path[i], sizeof(crl_path[i]))) < 0)
            goto out;
        cfg.crl_files[i] = crl_path[i];
    }
    cfg.n_crl_files = n_crl;
    settings = cfg;
    t = trust_load(&cfg, err, sizeof(err));
    if (t) {
        struct mtls_identity *id = NULL;
        enum reject r = verify_chain(t, chain, n_chain, &id);
        if ((r == OK) != (id != NULL)) /* an identity exactly when accepted */
            __builtin_trap();
        mtls_identity_free(id);
        trust_free(t);
    } else if (!err[0]) {
        __builtin_trap(); /* every refusal says why */
    }
out:
    if (ca_fd >= 0)
        close(ca_fd);
    for (unsigned i = 0; i < 3; i++) {
        if (crl_fd[i] >= 0)
            close(crl_fd[i]);
        mtls_buf_free(&crl[i]);
    }
    mtls_buf_free(&ca);
    return 0;
}
