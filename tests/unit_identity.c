/* Identity (de)serialization: round trip, and every truncation, trailing
 * byte, embedded NUL, bad count or type refused. */
#include "check.h"
#include "mtlsd/identity.h"

#include <stdlib.h>
#include <string.h>

static struct mtls_identity *make(unsigned n_san, size_t name_len)
{
    static const char *vals[] = {"client.example", "spiffe://example.org/ns/a/sa/b",
                                 "c@example.org", "10.0.0.1"};
    struct mtls_identity *id;
    struct mtls_san *san;
    char *s;
    size_t total = name_len + 1 + 64 + 64 + 16;

    for (unsigned i = 0; i < n_san; i++)
        total += strlen(vals[i % 4]) + 1;
    id = calloc(1, sizeof(*id) + n_san * sizeof(*san) + total);
    san = (struct mtls_san *)(id + 1);
    s = (char *)(san + n_san);
    memset(s, 'S', name_len);
    s[name_len] = '\0';
    id->subject = s;
    s += name_len + 1;
    strcpy(s, "/O=test/CN=issuer");
    id->issuer = s;
    s += strlen(s) + 1;
    strcpy(s, "0a1b2c");
    id->serial_hex = s;
    s += strlen(s) + 1;
    strcpy(s, "cn1");
    id->cn = s;
    s += strlen(s) + 1;
    strcpy(s, "ou-x");
    id->ou = s;
    s += strlen(s) + 1;
    for (unsigned i = 0; i < n_san; i++) {
        strcpy(s, vals[i % 4]);
        san[i].type = (enum mtls_san_type)(i % 4);
        san[i].value = s;
        s += strlen(s) + 1;
    }
    for (int i = 0; i < 32; i++)
        id->sha256[i] = (uint8_t)(i * 7 + 1);
    id->not_before = 1700000000;
    id->not_after = 1900000000;
    id->valid_until = 1800000000;
    id->refs = 1;
    id->n_san = n_san;
    id->san = san;
    return id;
}

static int same(const struct mtls_identity *a, const struct mtls_identity *b)
{
    if (strcmp(a->subject, b->subject) || strcmp(a->issuer, b->issuer) ||
        strcmp(a->serial_hex, b->serial_hex) || strcmp(a->cn, b->cn) || strcmp(a->ou, b->ou) ||
        a->valid_until != b->valid_until || b->refs != 1 || memcmp(a->sha256, b->sha256, 32) ||
        a->not_before != b->not_before || a->not_after != b->not_after || a->n_san != b->n_san)
        return 0;
    for (unsigned i = 0; i < a->n_san; i++)
        if (a->san[i].type != b->san[i].type || strcmp(a->san[i].value, b->san[i].value))
            return 0;
    return 1;
}

int main(void)
{
    uint8_t buf[8192];
    struct mtls_identity *id = make(5, 40), *back;
    long n = mtls_identity_serialize(id, buf, sizeof(buf));

    CHECK(n > 0);
    back = mtls_identity_deserialize(buf, (size_t)n);
    CHECK(back && same(id, back));
    mtls_identity_free(back);

    /* Every truncation and a trailing byte are refused. */
    int truncated_ok = 0;
    for (long k = 0; k < n; k++) {
        back = mtls_identity_deserialize(buf, (size_t)k);
        truncated_ok += back != NULL;
        mtls_identity_free(back);
    }
    CHECK(truncated_ok == 0);
    buf[n] = 0;
    CHECK(mtls_identity_deserialize(buf, (size_t)n + 1) == NULL);

    /* A NUL inside a string: subject starts at 1+8+8+8+32+2. */
    uint8_t bad[8192];
    memcpy(bad, buf, (size_t)n);
    bad[1 + 8 + 8 + 8 + 32 + 2 + 3] = 0;
    CHECK(mtls_identity_deserialize(bad, (size_t)n) == NULL);
    /* Wrong version. */
    memcpy(bad, buf, (size_t)n);
    bad[0] = 2;
    CHECK(mtls_identity_deserialize(bad, (size_t)n) == NULL);
    /* A string length pointing past the end. */
    memcpy(bad, buf, (size_t)n);
    bad[1 + 8 + 8 + 8 + 32] = 0xff;
    CHECK(mtls_identity_deserialize(bad, (size_t)n) == NULL);
    /* Corruption anywhere either fails or yields a well-formed identity; it
     * never crashes (ASan build) or reads out of bounds. */
    for (long k = 0; k < n; k++) {
        memcpy(bad, buf, (size_t)n);
        bad[k] ^= 0x80;
        back = mtls_identity_deserialize(bad, (size_t)n);
        if (back)
            CHECK(back->n_san <= MTLS_IDENTITY_MAX_SAN);
        mtls_identity_free(back);
    }
    /* The SAN count above the bound, and an unknown SAN type. */
    {
        struct mtls_identity *many = make(MTLS_IDENTITY_MAX_SAN, 10);
        long m = mtls_identity_serialize(many, buf, sizeof(buf));
        CHECK(m > 0);
        size_t count_at = 1 + 8 + 8 + 8 + 32 + 2 + 10 + 2 + strlen(many->issuer) + 2 +
                          strlen(many->serial_hex) + 2 + strlen(many->cn) + 2 +
                          strlen(many->ou);
        CHECK(buf[count_at] == MTLS_IDENTITY_MAX_SAN);
        buf[count_at] = MTLS_IDENTITY_MAX_SAN + 1;
        CHECK(mtls_identity_deserialize(buf, (size_t)m) == NULL);
        buf[count_at] = MTLS_IDENTITY_MAX_SAN;
        buf[count_at + 1] = 9; /* first SAN's type */
        CHECK(mtls_identity_deserialize(buf, (size_t)m) == NULL);
        mtls_identity_free(many);
    }
    /* Does not fit: -1, never a truncated identity. */
    {
        struct mtls_identity *big = make(3, 3000);
        CHECK(mtls_identity_serialize(big, buf, 1000) == -1);
        long m = mtls_identity_serialize(big, buf, sizeof(buf));
        CHECK(m > 3000);
        CHECK(mtls_identity_serialize(big, buf, (size_t)m - 1) == -1);
        CHECK(mtls_identity_serialize(big, buf, (size_t)m) == m);
        mtls_identity_free(big);
    }
    mtls_identity_free(id);
    return check_report();
}
