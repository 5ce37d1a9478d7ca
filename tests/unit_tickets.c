/* The ticket callback and the key table without sockets: seal and open
 * round trip restores the identity; tampering, unknown keys, rotation out,
 * lifetime, expired certificates and identities that do not fit are all
 * refused (wolfSSL then does a full handshake); one ticket per handshake; a
 * ticket outside what wolfSSL received is refused; key file checks. */
#include "../src/tickets.c"
#include "check.h"

#include <stdio.h>
#include <sys/stat.h>

#define IT_LEN 76     /* sizeof(InternalTicket) in this build */
#define ENC_CAP 1100  /* WOLFSSL_TICKET_ENC_SZ with deps.sh's padding */

static struct mtls_identity *make_id(size_t name_len, time_t not_after)
{
    struct mtls_identity *id = calloc(1, sizeof(*id) + sizeof(struct mtls_san) + name_len + 64);
    struct mtls_san *san = (struct mtls_san *)(id + 1);
    char *s = (char *)(san + 1);

    memset(s, 'A', name_len);
    s[name_len] = 0;
    id->subject = s;
    id->issuer = s + name_len; /* "" */
    strcpy(s + name_len + 1, "01");
    id->serial_hex = s + name_len + 1;
    strcpy(s + name_len + 4, "spiffe://t/x");
    san->type = MTLS_SAN_URI;
    san->value = s + name_len + 4;
    id->san = san;
    id->n_san = 1;
    id->not_before = 0;
    id->not_after = not_after;
    id->valid_until = not_after;
    id->cn = id->issuer;
    id->ou = id->issuer;
    id->refs = 1;
    return id;
}

static struct mtls_tls *t_global;

struct sealed {
    uint8_t name[16], iv[16], mac[32], ct[ENC_CAP];
    int len;
};

static int seal(WOLFSSL *ssl, struct sealed *s, const uint8_t *it)
{
    memcpy(s->ct, it, IT_LEN);
    s->len = ENC_CAP;
    return on_ticket(ssl, s->name, s->iv, s->mac, 1, s->ct, IT_LEN, &s->len, NULL);
}

static int open_(WOLFSSL *ssl, struct sealed *s, int *out)
{
    struct sealed c = *s; /* the callback decrypts in place */
    /* one connection per attempt */
    t_global->ticket_refused = false;
    mtls_identity_free(t_global->ticket_identity);
    t_global->ticket_identity = NULL;
    /* past on_ticket's check that the ticket lies in what wolfSSL received */
    int ret = ticket_decrypt(ssl, t_global, c.name, c.iv, c.mac, c.ct, c.len, out);
    if (ret == WOLFSSL_TICKET_RET_OK || ret == WOLFSSL_TICKET_RET_CREATE)
        CHECK(memcmp(c.ct, "\x11\x22", 2) == 0);
    return ret;
}

int main(void)
{
    struct mtls_config cfg;
    struct mtls_metrics m = {0};
    struct mtls_tls t;
    struct sealed s, s2, bad;
    uint8_t it[IT_LEN];
    char err[512];
    int out, ret;
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;

    mtls_config_defaults(&cfg);
    CHECK(wolfSSL_Init() == WOLFSSL_SUCCESS);
    ctx = wolfSSL_CTX_new(wolfTLSv1_2_client_method()) /* a server one needs a certificate */;
    CHECK(ctx != NULL);
    ssl = wolfSSL_new(ctx);
    CHECK(ssl != NULL);
    if (!ssl)
        return check_report();
    memset(&t, 0, sizeof(t));
    t_global = &t;
    t.metrics = &m;
    t.generation = mtls_verify_generation();
    t.trust_id = mtls_verify_trust_id();
    wolfSSL_SetIOReadCtx(ssl, &t);
    memset(it, 0x33, sizeof(it));
    it[0] = 0x11;
    it[1] = 0x22;

    CHECK(mtls_tickets_init(&cfg.resume, err, sizeof(err)) == 0);

    /* Round trip. */
    t.identity = make_id(40, time(NULL) + 3600);
    CHECK(seal(ssl, &s, it) == WOLFSSL_TICKET_RET_OK);
    CHECK(s.len % 16 == 0 && s.len > IT_LEN && s.len <= ENC_CAP);
    CHECK(memcmp(s.ct, it, IT_LEN) != 0); /* encrypted */
    mtls_identity_free(t.identity);
    t.identity = NULL;
    ret = open_(ssl, &s, &out);
    CHECK(ret == WOLFSSL_TICKET_RET_OK);
    CHECK(out == IT_LEN);
    CHECK(t.ticket_identity && strlen(t.ticket_identity->subject) == 40 &&
          strcmp(t.ticket_identity->san[0].value, "spiffe://t/x") == 0);
    CHECK(t.ticket_trust == mtls_verify_trust_id());
    CHECK(m.tickets_issued == 1);

    /* Tampering anywhere is refused as a bad ticket. */
    int accepted = 0;
    for (int i = 0; i < s.len; i += 7) {
        bad = s;
        bad.ct[i] ^= 1;
        accepted += open_(ssl, &bad, &out) != WOLFSSL_TICKET_RET_REJECT;
    }
    bad = s;
    bad.mac[5] ^= 1;
    accepted += open_(ssl, &bad, &out) != WOLFSSL_TICKET_RET_REJECT;
    bad = s;
    bad.iv[0] ^= 1;
    accepted += open_(ssl, &bad, &out) != WOLFSSL_TICKET_RET_REJECT;
    bad = s;
    bad.len -= 16; /* truncated */
    accepted += open_(ssl, &bad, &out) != WOLFSSL_TICKET_RET_REJECT;
    CHECK(accepted == 0);
    CHECK(m.resumption_refused_bad_ticket > 0);
    bad = s;
    bad.name[0] ^= 1;
    CHECK(open_(ssl, &bad, &out) == WOLFSSL_TICKET_RET_REJECT);
    CHECK(m.resumption_refused_unknown_key == 1);

    /* One ticket per handshake: once one is accepted, another is refused
     * (wolfSSL may resume with an earlier one than the last accepted), the
     * same one again (after a HelloRetryRequest) is not. */
    {
        struct sealed c = s;
        t.identity = make_id(12, time(NULL) + 3600);
        CHECK(seal(ssl, &s2, it) == WOLFSSL_TICKET_RET_OK);
        mtls_identity_free(t.identity);
        t.identity = NULL;
        CHECK(open_(ssl, &s, &out) == WOLFSSL_TICKET_RET_OK);
        c = s2;
        CHECK(ticket_decrypt(ssl, &t, c.name, c.iv, c.mac, c.ct, c.len, &out) ==
              WOLFSSL_TICKET_RET_REJECT);
        CHECK(strlen(t.ticket_identity->subject) == 40);
        c = s;
        CHECK(ticket_decrypt(ssl, &t, c.name, c.iv, c.mac, c.ct, c.len, &out) ==
              WOLFSSL_TICKET_RET_OK);
        /* Through wolfSSL's entry: a MAC not right after the ciphertext, or
         * a ticket outside every buffer wolfSSL received, is refused before
         * any key is used. */
        c = s;
        t.ticket_refused = false;
        CHECK(on_ticket(ssl, c.name, c.iv, c.mac, 0, c.ct, c.len, &out, NULL) ==
              WOLFSSL_TICKET_RET_REJECT);
#ifdef MTLSD_HAVE_WOLFSSL_INTERNAL
        {
            uint8_t ext[sizeof(c.ct) + 32];
            memcpy(ext, s.ct, (size_t)s.len);
            memcpy(ext + s.len, s.mac, 32);
            CHECK(on_ticket(ssl, c.name, c.iv, ext + s.len, 0, ext, s.len, &out, NULL) ==
                  WOLFSSL_TICKET_RET_REJECT);
        }
#endif
    }

    /* Rotation: one period old still opens (TLS 1.2: asking wolfSSL for a
     * new ticket), two periods old does not. */
    CHECK(rotate(false) == 0);
    CHECK(open_(ssl, &s, &out) == WOLFSSL_TICKET_RET_CREATE);
    CHECK(rotate(false) == 0);
    CHECK(open_(ssl, &s, &out) == WOLFSSL_TICKET_RET_REJECT);
    CHECK(m.resumption_refused_unknown_key == 2);
    CHECK(mtls_ticket_key_rotations == 2);

    /* A ticket minted on a resumed session keeps the original auth time:
     * tested through the lifetime check with a tiny lifetime. */
    t.identity = make_id(10, time(NULL) + 3600);
    CHECK(seal(ssl, &s2, it) == WOLFSSL_TICKET_RET_OK);
    cfg_t.lifetime_s = -1;
    CHECK(open_(ssl, &s2, &out) == WOLFSSL_TICKET_RET_REJECT);
    CHECK(m.resumption_refused_lifetime == 1);
    cfg_t.lifetime_s = 3600;
    mtls_identity_free(t.identity);

    /* Expired client certificate. */
    t.identity = make_id(10, time(NULL) - 1);
    CHECK(seal(ssl, &s2, it) == WOLFSSL_TICKET_RET_OK);
    CHECK(open_(ssl, &s2, &out) == WOLFSSL_TICKET_RET_REJECT);
    CHECK(m.resumption_refused_expired_cert == 1);
    mtls_identity_free(t.identity);

    /* An identity too large for the ticket: a ticket that never resumes. */
    t.identity = make_id(2000, time(NULL) + 3600);
    CHECK(seal(ssl, &s2, it) == WOLFSSL_TICKET_RET_OK);
    CHECK(m.tickets_unusable == 1);
    CHECK(open_(ssl, &s2, &out) == WOLFSSL_TICKET_RET_REJECT);
    CHECK(m.resumption_refused_no_identity == 1);
    mtls_identity_free(t.identity);
    t.identity = NULL;

    /* No identity and not resumed: unusable too. */
    CHECK(seal(ssl, &s2, it) == WOLFSSL_TICKET_RET_OK);
    CHECK(open_(ssl, &s2, &out) == WOLFSSL_TICKET_RET_REJECT);
    CHECK(m.resumption_refused_no_identity == 2);

    /* Key files. */
    {
        char path[] = "/tmp/mtlsd-unit-keys.XXXXXX";
        uint8_t keys[MTLS_TICKET_MAX_KEYS][MTLS_TICKET_KEY_SIZE], rec[160];
        unsigned n;
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        for (unsigned i = 0; i < sizeof(rec); i++)
            rec[i] = (uint8_t)i;
        CHECK(write(fd, rec, 160) == 160);
        close(fd);
        chmod(path, 0600);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) == 0);
        CHECK(n == 2 && keys[1][0] == 80);
        chmod(path, 0644);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) < 0);
        CHECK(strstr(err, "0644") != NULL);
        chmod(path, 0640);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) < 0);
        chmod(path, 0600);
        CHECK(truncate(path, 81) == 0);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) < 0);
        CHECK(truncate(path, 0) == 0);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) < 0);
        CHECK(truncate(path, 17 * 80) == 0);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) < 0);
        unlink(path);
        CHECK(mtls_tickets_read_file(path, keys, MTLS_TICKET_MAX_KEYS, &n, err, sizeof(err)) < 0);
    }

    mtls_identity_free(t.ticket_identity);
    mtls_tickets_shutdown();
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    wolfSSL_Cleanup();
    return check_report();
}
