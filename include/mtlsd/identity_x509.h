/* Building an identity from a certificate (identity.c). wolfCrypt types:
 * for verify.c (and material.c, which reads certificate and CRL dates) only;
 * everything above them sees include/mtlsd/identity.h. */
#ifndef MTLSD_IDENTITY_X509_H
#define MTLSD_IDENTITY_X509_H

#include "mtlsd/identity.h"
#include "mtlsd/wolfssl.h"

#include <wolfssl/wolfcrypt/asn.h>

/* From a parsed certificate and its DER; NULL when out of memory or a name
 * carries an embedded NUL. */
struct mtls_identity *mtls_identity_from_decoded(DecodedCert *dc, const uint8_t *der,
                                                 size_t len);
/* ASN.1 UTCTime / GeneralizedTime (with or without tag and length) to
 * time_t; -1 when malformed. The one parser of certificate and CRL dates
 * (identity.c, verify.c, material.c). */
time_t mtls_asn1_time(const uint8_t *p, int len);

#endif
