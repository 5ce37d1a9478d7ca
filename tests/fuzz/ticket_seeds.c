/* Writes the seed corpus of fuzz_ticket.c into OUTDIR from identities the
 * code itself makes out of real certificates (DER files, leaf first):
 *   fuzz_ticket_seeds OUTDIR LEAF.der [CHAIN.der...]
 * tests/fuzz/ticket_seeds.sh runs it on a fresh certs/gen.sh PKI. Seeds:
 * the serialized identity (with and without the kept certificates), a
 * ticket's plaintext around each, a sealed ticket, and truncated and
 * bit-flipped variants. */
#include "../../src/tickets.c"

static const char *dir;

static void put(const char *name, uint8_t mode, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")) || fwrite(&mode, 1, 1, f) != 1 ||
        (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The seed, then one cut at two-thirds and one with a bit flipped in the middle. */
static void put3(const char *name, uint8_t mode, const uint8_t *p, size_t n)
{
    static uint8_t v[MTLS_IDENTITY_CERTS_MAX * 2];
    char s[256];

    put(name, mode, p, n);
    snprintf(s, sizeof(s), "%s_cut", name);
    put(s, mode, p, n * 2 / 3);
    if (n && n <= sizeof(v)) {
        memcpy(v, p, n);
        v[n / 2] ^= 0x10;
        snprintf(s, sizeof(s), "%s_flip", name);
        put(s, mode, v, n);
    }
}

/* A ticket's plaintext as ticket_encrypt lays it out around `rec`. */
static size_t plaintext(uint8_t *out, const uint8_t *idn, size_t n)
{
    const size_t it_len = 76; /* sizeof(InternalTicket) in this build */
    size_t len = it_len, pad;

    memset(out, 0x33, it_len);
    out[len] = RECORD_VERSION;
    out[len + 1] = RECORD_USABLE;
    mtls_put_be(out + len + 2, mtls_verify_trust_id(), 8);
    mtls_put_be(out + len + 10, (uint64_t)time(NULL), 8);
    len += RECORD_HEADER;
    memcpy(out + len, idn, n);
    len += n;
    out[len] = (uint8_t)(it_len >> 8);
    out[len + 1] = (uint8_t)it_len;
    len += 2;
    pad = AES_BLOCK - len % AES_BLOCK;
    memset(out + len, (int)pad, pad);
    return len + pad;
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;

    if (!f || n == 0 || n == cap) {
        fprintf(stderr, "%s: unreadable or too large\n", path);
        exit(1);
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    static uint8_t der[MTLS_IDENTITY_MAX_CERTS][8192], idn[MTLS_IDENTITY_CERTS_MAX * 2],
        pt[TICKET_MAX * 2];
    struct mtls_der certs[MTLS_IDENTITY_MAX_CERTS];
    struct mtls_identity *id;
    unsigned n = 0;
    long l;
    size_t p;

    if (argc < 3 || argc - 2 > MTLS_IDENTITY_MAX_CERTS) {
        fprintf(stderr, "usage: %s OUTDIR LEAF.der [CHAIN.der...]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    wolfSSL_Init();
    for (int i = 2; i < argc; i++, n++)
        certs[n] = (struct mtls_der){der[n], read_file(argv[i], der[n], sizeof(der[n]))};
    if (!(id = mtls_identity_from_der(certs[0].der, certs[0].len)) ||
        (l = mtls_identity_serialize(id, idn, sizeof(idn))) < 0) {
        fprintf(stderr, "%s: no identity\n", argv[2]);
        return 1;
    }
    put3("identity", 0, idn, (size_t)l);
    p = plaintext(pt, idn, (size_t)l);
    put3("ticket", 1, pt, p);
    /* a sealed ticket (IV, MAC, ciphertext) under a key of this run: the
     * fuzzer's key differs, so it reaches the MAC check only */
    {
        uint8_t key[MTLS_TICKET_KEY_SIZE], iv[16], mac[32], sealed[48 + sizeof(pt)];
        struct mtls_config cfg;
        char err[256];

        mtls_config_defaults(&cfg);
        if (mtls_tickets_init(&cfg.resume, err, sizeof(err)) != 0 || key_lookup(NULL, key) < 0)
            return 1;
        memset(iv, 0x5a, sizeof(iv));
        if (aes_cbc(key, iv, sealed + 48, pt, p, true) < 0 ||
            mac_ticket(key, key, iv, sealed + 48, p, mac) < 0)
            return 1;
        memcpy(sealed, iv, 16);
        memcpy(sealed + 16, mac, 32);
        put("sealed", 2, sealed, 48 + p);
    }
    id = mtls_identity_with_certs(id, certs, n);
    if (!id->certs_z || (l = mtls_identity_serialize(id, idn, sizeof(idn))) < 0) {
        fprintf(stderr, "cannot keep the certificates\n");
        return 1;
    }
    put3("identity_certs", 0, idn, (size_t)l);
    if ((p = plaintext(pt, idn, (size_t)l)) <= TICKET_MAX)
        put3("ticket_certs", 1, pt, p);
    mtls_identity_free(id);
    return 0;
}
