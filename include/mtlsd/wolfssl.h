/* The one way mtlsd code includes wolfSSL.
 *
 * MTLSD_WOLFSSL_OPTIONS_H is the absolute path of the options.h installed with
 * the library we link (set by CMake). Including it by path first means a
 * prefix without options.h cannot silently pick up the system's header, whose
 * defines (and so struct layouts) differ. */
#ifndef MTLSD_WOLFSSL_H
#define MTLSD_WOLFSSL_H

#ifndef MTLSD_WOLFSSL_OPTIONS_H
#error "MTLSD_WOLFSSL_OPTIONS_H must name the linked wolfSSL's options.h"
#endif
#include MTLSD_WOLFSSL_OPTIONS_H
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#ifndef WOLFSSL_TLS13
#error "mtlsd needs wolfSSL built with TLS 1.3"
#endif
#ifndef HAVE_SESSION_TICKET
#error "mtlsd needs wolfSSL built with session tickets"
#endif

#endif
