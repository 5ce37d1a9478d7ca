/* wolfSSL's private header, for the places that need the library's
 * internals (tickets.c: the client's PSK key exchange modes and where the
 * received ticket lies; sessions.c: a session's ID; tls.c and mtls-load:
 * whether a read can do anything). scripts/deps.sh installs it
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

#include <stdbool.h>

/* True when wolfSSL_read could only end in want-read unless new ciphertext
 * comes: wolfSSL holds neither plaintext nor unprocessed ciphertext, has
 * nothing queued to send and sits between records (processReply 0 is
 * internal.c's doProcessInit). Asking anyway costs more than the answer
 * (wolfSSL_read, ProcessReply and the error path, once per keep-alive
 * request; a wolfSSL with the OpenSSL layer also formats and allocates an
 * error-queue entry for it). Without the private header: false (always
 * read). */
static inline bool mtls_wolfssl_read_idle(const WOLFSSL *ssl)
{
#ifdef MTLSD_HAVE_WOLFSSL_INTERNAL
    return ssl->buffers.clearOutputBuffer.length == 0 &&
           ssl->buffers.inputBuffer.idx >= ssl->buffers.inputBuffer.length &&
           ssl->buffers.outputBuffer.length == 0 && ssl->options.processReply == 0 &&
           (ssl->error == 0 || ssl->error == WANT_READ);
#else
    (void)ssl;
    return false;
#endif
}

#endif
