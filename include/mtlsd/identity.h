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
    /* The certificates the client presented (the leaf, then the
     * intermediates it sent, in TLS order), raw-deflate compressed, kept
     * only when the proxy forwards them (--client-cert-header): they travel
     * in tickets and session IDs so that a resumed connection forwards the
     * same headers. NULL when not kept. */
    const uint8_t *certs_z;
    uint32_t certs_z_len;
    /* one allocation: the strings, the SAN array and certs_z follow */
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

/* Presented chains larger than this (uncompressed) are not kept. */
#define MTLS_IDENTITY_CERTS_MAX (48 * 1024)
#define MTLS_IDENTITY_MAX_CERTS 10
/* One certificate's DER. */
struct mtls_der {
    const uint8_t *der;
    size_t len;
};
/* A copy of `id` that also holds the presented certificates certs[0..n)
 * (leaf first); drops the caller's reference to `id`. On failure (too
 * large, out of memory) returns `id` itself, without certificates. */
struct mtls_identity *mtls_identity_with_certs(struct mtls_identity *id,
                                               const struct mtls_der *certs, unsigned n);
/* Inflates id->certs_z into `raw` (caller frees it with mtls_buf_free) and
 * points out[0..max) into it; returns the number of certificates, 0 when
 * none are kept, -1 when the data is corrupt. */
struct mtls_buf;
/* The identity of the first certificate of a PEM file (the server's own,
 * for XFCC By=); NULL when unreadable. */
struct mtls_identity *mtls_identity_from_pem_file(const char *path);
int mtls_identity_certs(const struct mtls_identity *id, struct mtls_buf *raw,
                        struct mtls_der *out, unsigned max);

#endif
