/* libFuzzer driver for what a client's session ticket reaches (issue 10
 * part 3 (b)): the identity record (identity.c mtls_identity_deserialize)
 * and the ticket callback's decryption (tickets.c ticket_decrypt) under a
 * known key. The first byte picks the mode, the rest is the input:
 *
 *   0  a serialized identity; one that is accepted must round-trip
 *      (serialize, deserialize, serialize gives the same bytes)
 *   1  a ticket's plaintext (wolfSSL's InternalTicket, the record, the
 *      identity, the length, the padding): sealed here with the current key
 *      (cut to whole AES blocks) so that the fuzzer gets past the MAC
 *   2  a ticket as the client sends it: IV (16), MAC (32), ciphertext, under
 *      the current key's name: must be refused unless the MAC is right
 *
 * Seeds (tests/fuzz/corpus/ticket/) are identities and tickets made by the
 * code itself (ticket_seeds.c). Built with -DMTLSD_FUZZ=ON (clang);
 * tests/fuzz/replay.c runs the corpus and regression/ticket/ in every test
 * run under the sanitizers. */
#include "../../src/tickets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static WOLFSSL *fuzz_ssl;
static struct mtls_metrics fuzz_metrics;

static void fuzz_init(void)
{
    struct mtls_config cfg;
    char err[256];
    WOLFSSL_CTX *ctx;

    mtls_log_level = MTLS_LOG_ERROR;
    mtls_config_defaults(&cfg);
    wolfSSL_Init();
    /* a client object: a server one needs a certificate; TLS 1.2, so that
     * the PSK-mode check of TLS 1.3 does not stop before the identity */
    ctx = wolfSSL_CTX_new(wolfTLSv1_2_client_method());
    fuzz_ssl = ctx ? wolfSSL_new(ctx) : NULL;
    if (!fuzz_ssl || mtls_tickets_init(&cfg.resume, err, sizeof(err)) != 0)
        __builtin_trap();
    /* seeds stay inside the lifetime for good (~35 years) */
    cfg_t.lifetime_s = (int64_t)1 << 30;
}

static void fuzz_identity(const uint8_t *p, size_t n)
{
    /* room for the largest identity (kept certificates) */
    static uint8_t a[MTLS_IDENTITY_CERTS_MAX * 2], b[MTLS_IDENTITY_CERTS_MAX * 2];
    struct mtls_identity *id = mtls_identity_deserialize(p, n), *id2;
    long la, lb;

    if (!id)
        return;
    la = mtls_identity_serialize(id, a, sizeof(a));
    id2 = la >= 0 ? mtls_identity_deserialize(a, (size_t)la) : NULL;
    if (!id2)
        __builtin_trap(); /* accepted but does not round-trip */
    lb = mtls_identity_serialize(id2, b, sizeof(b));
    if (lb != la || memcmp(a, b, (size_t)la) != 0 || strcmp(id->subject, id2->subject) != 0 ||
        id->n_san != id2->n_san || memcmp(id->sha256, id2->sha256, 32) != 0)
        __builtin_trap();
    mtls_identity_free(id2);
    mtls_identity_free(id);
}

static void fuzz_decrypt(uint8_t name[16], uint8_t iv[16], uint8_t mac[32], uint8_t *ct,
                         size_t n, bool mac_ok)
{
    struct mtls_tls t;
    int out = 0, ret;

    memset(&t, 0, sizeof(t));
    t.metrics = &fuzz_metrics;
    wolfSSL_SetIOReadCtx(fuzz_ssl, &t);
    ret = ticket_decrypt(fuzz_ssl, &t, name, iv, mac, ct, (int)n, &out);
    if (ret == WOLFSSL_TICKET_RET_OK || ret == WOLFSSL_TICKET_RET_CREATE) {
        if (!mac_ok || !t.ticket_identity || out <= 0 || (size_t)out > n)
            __builtin_trap(); /* resumed without an authentic ticket or identity */
    } else if (t.ticket_identity) {
        __builtin_trap();
    }
    mtls_identity_free(t.ticket_identity);
    wolfSSL_SetIOReadCtx(fuzz_ssl, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t ct[TICKET_MAX + 64];
    uint8_t key[MTLS_TICKET_KEY_SIZE], name[16], iv[16], mac[32], want[32];
    size_t n;

    if (!fuzz_ssl)
        fuzz_init();
    if (size < 1)
        return 0;
    if (key_lookup(NULL, key) < 0)
        __builtin_trap();
    memcpy(name, key, sizeof(name));
    data++, size--;
    switch (data[-1] % 3) {
    case 0:
        fuzz_identity(data, size);
        break;
    case 1:
        n = size > TICKET_MAX ? TICKET_MAX : size - size % AES_BLOCK;
        memset(iv, 0x5a, sizeof(iv));
        if (aes_cbc(key, iv, ct, data, n, true) < 0 || mac_ticket(key, name, iv, ct, n, mac) < 0)
            __builtin_trap();
        fuzz_decrypt(name, iv, mac, ct, n, true);
        break;
    default:
        if (size < 48)
            break;
        n = size - 48 > sizeof(ct) ? sizeof(ct) : size - 48;
        memcpy(iv, data, 16);
        memcpy(mac, data + 16, 32);
        memcpy(ct, data + 48, n);
        fuzz_decrypt(name, iv, mac, ct, n,
                     n <= TICKET_MAX && mac_ticket(key, name, iv, ct, n, want) == 0 &&
                         equal_ct(want, mac, 32));
        break;
    }
    explicit_bzero(key, sizeof(key));
    return 0;
}
