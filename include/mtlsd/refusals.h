/* Why a resumption is refused (a full handshake follows): one table that
 * generates the enum (tickets.h), the log text (tickets.c) and the
 * /metrics counter with its help (metrics.h). A new reason is one row.
 *   R(X, ENUM, metric suffix, log text, metric help)
 * X is passed through for metrics.h's own X-macro. */
#ifndef MTLSD_REFUSALS_H
#define MTLSD_REFUSALS_H

#define MTLS_RESUME_REFUSALS(R, X) \
    R(X, GENERATION, generation, "trust changed since the identity was verified", \
      "tickets refused: trust (CAs/CRLs) reloaded since the identity was verified") \
    R(X, LIFETIME, lifetime, "older than --session-lifetime", \
      "tickets refused: original handshake older than --session-lifetime") \
    R(X, EXPIRED_CERT, expired_cert, "client certificate expired", \
      "tickets refused: client certificate past its notAfter") \
    R(X, UNKNOWN_KEY, unknown_key, "unknown key (rotated out or another key file)", \
      "tickets refused: key rotated out or from another key file") \
    R(X, BAD, bad_ticket, "failed authentication or malformed", \
      "tickets refused: failed authentication or malformed") \
    R(X, NO_IDENTITY, no_identity, "issued without an identity", \
      "tickets refused: issued without an identity (too large)") \
    R(X, PSK_KE, psk_ke, "TLS 1.3 psk_ke without (EC)DHE", \
      "TLS 1.3 tickets refused: psk_ke without (EC)DHE (see --tls13-psk-ke)")

/* Expanders. */
#define MTLS_REFUSAL_ENUM(X, e, m, text, help) MTLS_REFUSE_##e,
#define MTLS_REFUSAL_METRIC(X, e, m, text, help) X(resumption_refused_##m, help)

#endif
