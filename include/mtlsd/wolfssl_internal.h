/* wolfSSL's private header, for the two places that need the library's
 * internals (tickets.c: the client's PSK key exchange modes and where the
 * received ticket lies; sessions.c: a session's ID). scripts/deps.sh installs it
 * from the same source tree as the library, so its layouts match;
 * MTLSD_HAVE_WOLFSSL_INTERNAL is left undefined when it is missing (a
 * system library), and those features turn themselves off. */
#ifndef MTLSD_WOLFSSL_INTERNAL_H
#define MTLSD_WOLFSSL_INTERNAL_H

#include "mtlsd/wolfssl.h"

#if __has_include(<wolfssl/internal.h>)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <wolfssl/internal.h>
#pragma GCC diagnostic pop
#define MTLSD_HAVE_WOLFSSL_INTERNAL 1
#endif

#endif
