/* The verified client identity: extracted once per connection at the
 * handshake, then only read (by routes, and later by authorization). Plain
 * data: the HTTP layer reads it without knowing about TLS. */
#ifndef MTLSD_IDENTITY_H
#define MTLSD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum mtls_san_type { MTLS_SAN_DNS, MTLS_SAN_URI, MTLS_SAN_EMAIL, MTLS_SAN_IP };

struct mtls_san {
    enum mtls_san_type type;
    const char *value;          /* NUL-terminated; IPs in text form */
};

struct mtls_identity {
    const char *subject;        /* "/O=.../CN=..." */
    const char *issuer;
    const char *serial_hex;     /* lowercase hex, as in the certificate */
    const char *cn;             /* subject CN ("" if none) */
    const char *ou;             /* subject OU ("" if none) */
    uint8_t sha256[32];         /* of the leaf certificate's DER */
    time_t not_before;
    time_t not_after;
    time_t valid_until;         /* earliest notAfter of the verified chain and
                                 * nextUpdate of the CRLs it was checked under */
    int refs;                   /* shared by the chain cache and connections */
    unsigned n_san;
    const struct mtls_san *san;
    /* one allocation: the strings and the SAN array follow */
};

/* Identities are immutable and reference-counted: a cached chain's identity
 * is shared by every connection that presented it. */
struct mtls_identity *mtls_identity_ref(struct mtls_identity *id);
/* Drops one reference; frees at zero. NULL is fine. */
void mtls_identity_free(struct mtls_identity *id);

/* Parses a certificate's DER into a freshly allocated identity; NULL when it
 * is malformed or carries a name with an embedded NUL. */
struct mtls_identity *mtls_identity_from_der(const uint8_t *der, size_t len);
/* When an identity stops being valid: its certificate's notAfter or the
 * earliest notAfter of its verified chain; -1 when unknown. */
int64_t mtls_identity_end(const struct mtls_identity *id);

/* Compact, bounded binary form of an identity, for session tickets
 * (src/identity.c). Strings are length-prefixed, never NUL-terminated, and
 * must not contain NUL. */
#define MTLS_IDENTITY_MAX_SAN 32
/* Writes the identity into out[0..cap); returns its length, or -1 when it
 * does not fit (never a truncated identity). */
long mtls_identity_serialize(const struct mtls_identity *id, uint8_t *out, size_t cap);
/* Parses exactly `len` bytes back into a fresh identity (free with
 * mtls_identity_free); NULL on any malformed, truncated or trailing input. */
struct mtls_identity *mtls_identity_deserialize(const uint8_t *in, size_t len);

#endif
