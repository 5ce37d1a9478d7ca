/* Command-line configuration: parsed once at start, then read-only. */
#ifndef MTLSD_CONFIG_H
#define MTLSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define MTLS_MAX_LIST 64   /* entries of a repeatable flag */

enum mtls_client_auth { MTLS_AUTH_VERIFY, MTLS_AUTH_PRESENT, MTLS_AUTH_OPTIONAL };

/* --io: the worker's event loop (io.h); auto is resolved at start. */
enum mtls_io_backend { MTLS_IO_AUTO, MTLS_IO_URING, MTLS_IO_EPOLL };

/* --key-signer: who computes the server's RSA signatures (keysign.h). */
enum mtls_key_signer { MTLS_SIGNER_AUTO, MTLS_SIGNER_WOLFSSL, MTLS_SIGNER_OPENSSL };

/* Each module gets its own part of the configuration at init and keeps a
 * copy; no module holds a pointer to the whole struct mtls_config. */

/* verify.c: client-certificate policy and the verified-chain cache. */
struct mtls_verify_settings {
    const char *client_ca_file;
    const char *crl_files[MTLS_MAX_LIST];
    unsigned n_crl_files;
    unsigned clock_skew_s;
    unsigned verify_depth;     /* intermediates allowed between leaf and root */
    unsigned verify_cache;     /* entries; 0 disables */
    unsigned verify_cache_ttl_s;
    enum mtls_client_auth client_auth;
    bool keep_certs;           /* derived: the proxy forwards the presented chain */
};

/* authz.c: --allow and --public-path. */
struct mtls_authz_settings {
    const char *public_paths[MTLS_MAX_LIST];
    unsigned n_public_paths;
    const char *allow[MTLS_MAX_LIST];
    unsigned n_allow;
};

/* tickets.c and sessions.c: session resumption. */
struct mtls_resume_settings {
    bool tickets;              /* --tickets on|off */
    const char *ticket_key_file;
    unsigned ticket_rotate_s;  /* generated keys only */
    bool ticket_rotate_set;
    unsigned session_lifetime_s;
    unsigned tls13_tickets;    /* tickets per full TLS 1.3 handshake */
    bool tls13_psk_ke;         /* also resume without (EC)DHE */
    unsigned session_cache;    /* TLS 1.2 session-ID cache slots; 0: off */
    bool session_cache_set;
};

/* http.c: per-request limits. */
struct mtls_http_limits {
    size_t max_header_bytes;   /* request line + header fields */
    unsigned max_headers;
    uint64_t max_body_bytes;
};

/* proxy.c: the reverse proxy (--upstream; issue 11). */
struct mtls_proxy_settings {
    const char *upstream;           /* as given; NULL: no proxy */
    const char *upstream_unix;      /* unix:/path: the path */
    char upstream_host[256];        /* http://HOST:PORT: HOST (no brackets) */
    char upstream_port[8];
    unsigned connect_timeout_ms;
    unsigned timeout_ms;            /* to the response head */
    unsigned idle_ms;               /* idle pooled connections closed after this */
    unsigned conns;                 /* idle keep-alive connections kept per worker */
    unsigned cert_headers;          /* MTLS_CERT_HEADER_* bits (proxy_headers.h) */
    bool cert_header_set;
    const char *strip_headers[MTLS_MAX_LIST];
    unsigned n_strip_headers;
    const char *builtin_prefix;     /* NULL: built-in routes off with --upstream */
};

/* conn.c: per-connection limits. */
struct mtls_conn_settings {
    unsigned max_conn_lifetime_ms; /* 0: unbounded */
    size_t max_unread;         /* ciphertext kept while paused (derived) */
    size_t buffer_budget;      /* per worker: input and output kept by connections */
};

struct mtls_config {
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
    char listen_str[300];

    unsigned workers;          /* 0 before parsing: one per online CPU */
    bool pin_cpus;
    enum mtls_io_backend io;   /* --io; auto is resolved at start */
    const char *cert_file;
    const char *key_file;
    int tls_min;               /* 12 or 13 */
    bool send_ca_names;        /* --client-ca subjects in the CertificateRequest */
    enum mtls_key_signer key_signer;
    const char *access_log;    /* NULL: off; "-": stdout */

    unsigned max_conns;        /* per worker */
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned shutdown_grace_ms;
    unsigned recv_buffers;     /* per worker, a power of two */
    unsigned recv_buffer_size;
    int log_level;

    struct mtls_verify_settings verify;
    struct mtls_authz_settings authz;
    struct mtls_resume_settings resume;
    struct mtls_http_limits http;
    struct mtls_conn_settings conn;

    /* Operations (issue 13): reload without signals, probes, sandbox. */
    bool watch;                /* --watch on|off: inotify on the files' directories */
    unsigned reload_interval_ms; /* 0: off; else re-check the files this often */
    unsigned expiry_warning_s;
    struct sockaddr_storage status_addr; /* --status-listen; family 0: off */
    socklen_t status_addrlen;
    char status_str[300];
    unsigned shutdown_delay_ms; /* SIGTERM: /readyz 503, keep serving this long */
    const char *user;          /* --user: setuid after binding and loading */
    bool sandbox;              /* no_new_privs + Landlock; --no-sandbox turns off */
    struct mtls_proxy_settings proxy;
};

enum mtls_config_result { MTLS_CONFIG_OK, MTLS_CONFIG_EXIT, MTLS_CONFIG_VERSION, MTLS_CONFIG_ERROR };

/* Sets every flag's default (the table in config.c says which). */
void mtls_config_defaults(struct mtls_config *cfg);
/* Parses argv. On MTLS_CONFIG_ERROR `err` says what to fix. MTLS_CONFIG_EXIT
 * means --help was printed to `out`; MTLS_CONFIG_VERSION asks for --version. */
enum mtls_config_result mtls_config_parse(struct mtls_config *cfg, int argc, char **argv,
                                          FILE *out, char *err, size_t errlen);
/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into cfg->listen_addr. */
int mtls_config_parse_listen(struct mtls_config *cfg, const char *s, char *err, size_t errlen);
/* The same syntax into any address (`flag` names it in the error). */
int mtls_config_parse_addr(const char *flag, const char *s, struct sockaddr_storage *addr,
                           socklen_t *addrlen, char *err, size_t errlen);
void mtls_config_usage(FILE *f);
/* Parses --upstream's value (syntax only; a name is resolved when the
 * server starts). */
int mtls_config_parse_upstream(struct mtls_config *cfg, const char *s, char *err, size_t errlen);

#endif
