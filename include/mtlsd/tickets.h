/* Session tickets: the keys that protect them (generated and rotated, or
 * loaded from --ticket-key-file) and the wolfSSL ticket callback that seals
 * the client identity into each ticket and refuses to resume an identity
 * that is no longer trusted. */
#ifndef MTLSD_TICKETS_H
#define MTLSD_TICKETS_H

#include "mtlsd/config.h"
#include "mtlsd/refusals.h"
#include "mtlsd/wolfssl.h"

#include <stddef.h>
#include <stdint.h>

/* Key record: nginx's 80-byte ticket key layout, so the same file format
 * and tools (openssl rand 80 > file) work:
 *   name[16] | HMAC-SHA256 key[32] | AES-256 key[32] */
#define MTLS_TICKET_NAME_SIZE 16
#define MTLS_TICKET_HMAC_SIZE 32
#define MTLS_TICKET_AES_SIZE 32
#define MTLS_TICKET_KEY_SIZE 80
/* Records in a key file (and keys held at once). */
#define MTLS_TICKET_MAX_KEYS 16

/* Start-up: loads --ticket-key-file or generates the first key. Fills
 * `err` (for exit code 2) on failure. A no-op with --tickets off. */
int mtls_tickets_init(const struct mtls_resume_settings *cfg, char *err, size_t errlen);
/* Installs the ticket callback and the resumption policy on `ctx`. */
int mtls_tickets_setup(WOLFSSL_CTX *ctx, const struct mtls_resume_settings *cfg, char *err,
                       size_t errlen);
/* SIGHUP: re-reads the key file (keys unchanged on failure: -1 and `err`).
 * 0 and nothing done with generated keys. */
int mtls_tickets_reload(char *err, size_t errlen);
/* Main thread, called at least every second: rotates generated keys when
 * due. Returns the milliseconds until it next needs to be called (<= 1000). */
unsigned mtls_tickets_tick(void);
/* Zeroes the keys. */
void mtls_tickets_shutdown(void);

/* Why a resumption is refused (a full handshake follows): refusals.h. */
enum {
    MTLS_REFUSE_NONE,
    MTLS_RESUME_REFUSALS(MTLS_REFUSAL_ENUM, _)
    MTLS_REFUSE_COUNT
};
/* The policy shared by tickets and session IDs: MTLS_REFUSE_NONE when an
 * identity verified under trust `trust` (mtls_verify_trust_id()) at
 * `auth_time` (unix seconds), whose certificate ends at `not_after`, may
 * resume now. */
int mtls_resume_check(uint64_t trust, int64_t auth_time, int64_t not_after);
struct mtls_identity;
struct mtls_tls;
/* Logs (debug) and counts a refusal, once per connection. */
void mtls_resume_count_refusal(struct mtls_tls *t, int reason);

/* Reads a key file into `keys` (newest first); -1 with `err` when the file is
 * unreadable, readable by group or others, empty, not a whole number of
 * records, or has more than `max`. Exposed for the unit test. */
int mtls_tickets_read_file(const char *path, uint8_t (*keys)[MTLS_TICKET_KEY_SIZE],
                           unsigned max, unsigned *n, char *err, size_t errlen);

#endif
