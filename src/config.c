/* config.c: long options with defaults and messages that tell the operator
 * what to fix. Nothing here opens a socket; file checks happen in server.c.
 *
 * Every flag is one row of `opts` below: its name, the kind of value, the
 * bounds, the field it sets, its default and its --help text. Parsing,
 * defaults, the getopt table and --help are all generated from the rows. */
#include "mtlsd/config.h"
#include "mtlsd/log.h"
#include "mtlsd/proxy_headers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind {
    K_HEADING,   /* not a flag: a section title in --help */
    K_STR,       /* const char *: the argument itself (argv outlives the config) */
    K_ON,        /* bool, no value: the flag sets it (false before) */
    K_OFF,       /* bool, no value: the flag clears it (true before) */
    K_UINT,      /* unsigned / size_t / uint64_t within [min, max] */
    K_SECONDS,   /* unsigned milliseconds from "S" seconds, fractions allowed */
    K_CHOICE,    /* int, enum or bool: one of `choices` */
    K_LIST,      /* const char *[MTLS_MAX_LIST] + unsigned count at `aux` (repeatable) */
    K_FUNC,      /* `parse` does it all */
    K_ACTION,    /* -h, -V: mtls_config_parse answers them itself */
};

struct choice {
    const char *text;
    int value;
};

struct opt {
    const char *name;            /* without "--"; the title for K_HEADING */
    const char *arg;             /* the value's name in --help; NULL: takes no value */
    enum kind kind;
    unsigned long long min, max; /* K_UINT */
    size_t off, size;            /* the field in struct mtls_config */
    size_t aux;                  /* K_LIST: the count; else a bool "was given" (0: none) */
    const struct choice *choices;
    const char *def;             /* default, parsed like a value (NULL: zero) */
    int (*parse)(struct mtls_config *cfg, const char *v, char *err, size_t errlen);
    /* extra validation after the kind's own (`n`: the parsed number) */
    int (*check)(const char *v, unsigned long long n, char *err, size_t errlen);
    char short_name;             /* 'h' for -h; 0: none */
    const char *help;            /* lines after the first are indented under it */
};

#define FIELD(f) .off = offsetof(struct mtls_config, f), .size = sizeof(((struct mtls_config *)0)->f)
#define GIVEN(f) .aux = offsetof(struct mtls_config, f)
#define HEADING(title) {.name = title, .kind = K_HEADING}
#define STR(n, a, f, h, ...) {.name = n, .arg = a, .kind = K_STR, FIELD(f), .help = h, __VA_ARGS__}
#define ON(n, f, h) {.name = n, .kind = K_ON, FIELD(f), .help = h}
#define OFF(n, f, h) {.name = n, .kind = K_OFF, FIELD(f), .help = h}
#define UINT(n, a, f, lo, hi, d, h, ...)                                                      \
    {.name = n, .arg = a, .kind = K_UINT, .min = lo, .max = hi, FIELD(f), .def = d, .help = h, \
     __VA_ARGS__}
#define SECONDS(n, a, f, d, h) {.name = n, .arg = a, .kind = K_SECONDS, FIELD(f), .def = d, .help = h}
#define CHOICE(n, a, f, c, d, h) \
    {.name = n, .arg = a, .kind = K_CHOICE, FIELD(f), .choices = c, .def = d, .help = h}
#define LIST(n, a, f, count, h, ...) \
    {.name = n, .arg = a, .kind = K_LIST, FIELD(f), .aux = offsetof(struct mtls_config, count), \
     .help = h, __VA_ARGS__}

static const struct choice tls_versions[] = {{"1.2", 12}, {"1.3", 13}, {NULL, 0}};
static const struct choice on_off[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const struct choice client_auth_modes[] = {
    {"verify", MTLS_AUTH_VERIFY}, {"present", MTLS_AUTH_PRESENT},
    {"optional", MTLS_AUTH_OPTIONAL}, {NULL, 0}};
static const struct choice io_backends[] = {
    {"auto", MTLS_IO_AUTO}, {"io_uring", MTLS_IO_URING}, {"epoll", MTLS_IO_EPOLL}, {NULL, 0}};
static const struct choice key_signers[] = {
    {"auto", MTLS_SIGNER_AUTO}, {"wolfssl", MTLS_SIGNER_WOLFSSL},
    {"openssl", MTLS_SIGNER_OPENSSL}, {NULL, 0}};
static const struct choice log_levels[] = {
    {"error", MTLS_LOG_ERROR}, {"warn", MTLS_LOG_WARN}, {"info", MTLS_LOG_INFO},
    {"debug", MTLS_LOG_DEBUG}, {NULL, 0}};

static int power_of_two(const char *v, unsigned long long n, char *err, size_t errlen)
{
    (void)v;
    if (n & (n - 1)) {
        snprintf(err, errlen, "--recv-buffers: %llu is not a power of two", n);
        return -1;
    }
    return 0;
}

static int absolute_path(const char *v, unsigned long long n, char *err, size_t errlen)
{
    (void)n;
    if (v[0] != '/') {
        snprintf(err, errlen, "--public-path: '%s' must start with /", v);
        return -1;
    }
    return 0;
}

static int parse_status_listen(struct mtls_config *cfg, const char *v, char *err,
                               size_t errlen);
static int parse_shutdown_delay(struct mtls_config *cfg, const char *v, char *err,
                                size_t errlen);

static int not_empty(const char *v, unsigned long long n, char *err, size_t errlen)
{
    (void)n;
    if (v[0] == '\0') {
        snprintf(err, errlen, "--user: a user name is required");
        return -1;
    }
    return 0;
}

static int header_name(const char *v, unsigned long long n, char *err, size_t errlen)
{
    (void)n;
    if (!v[0] || v[strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "!#$%&'*+-.^_`|~")]) {
        snprintf(err, errlen, "--strip-header: '%s' is not a header name", v);
        return -1;
    }
    return 0;
}

static int path_prefix(const char *v, unsigned long long n, char *err, size_t errlen)
{
    size_t len = strlen(v);

    (void)n;
    if (v[0] != '/' || len < 2 || v[len - 1] == '/' || len > 200 || strpbrk(v, "?#% ")) {
        snprintf(err, errlen,
                 "--builtin-prefix: '%s' must be a path like /.mtlsd (starting with /, not "
                 "ending with /)",
                 v);
        return -1;
    }
    return 0;
}

/* Repeatable; the first one given replaces the default (rfc9440). */
static int parse_cert_header(struct mtls_config *cfg, const char *v, char *err, size_t errlen)
{
    struct mtls_proxy_settings *p = &cfg->proxy;
    unsigned bit = strcmp(v, "rfc9440") == 0 ? MTLS_CERT_HEADER_RFC9440
                 : strcmp(v, "xfcc") == 0    ? MTLS_CERT_HEADER_XFCC
                 : strcmp(v, "none") == 0    ? 0
                                             : ~0u;

    if (bit == ~0u) {
        snprintf(err, errlen, "--client-cert-header: '%s' must be rfc9440, xfcc or none", v);
        return -1;
    }
    if (p->cert_header_set && (bit == 0) != (p->cert_headers == 0)) {
        snprintf(err, errlen,
                 "--client-cert-header none cannot be combined with rfc9440 or xfcc");
        return -1;
    }
    p->cert_headers |= bit;
    p->cert_header_set = true;
    return 0;
}

/* ---- The flags. To add one: add its field to struct mtls_config (or to the
 * settings struct of the module that uses it, include/mtlsd/config.h) and one
 * row here, in the --help section it belongs to. The row's kind says how the
 * value is parsed and checked (bounds in the row give the error message);
 * `.check` adds a rule, `.parse` replaces the parsing; `.def` is the default
 * as the operator would write it. Cross-flag rules go in mtls_config_parse's
 * tail. tests/integration/flags.sh checks that --help lists the flag. ---- */
static const struct opt opts[] = {
    HEADING("TLS:"),
    STR("cert", "FILE", cert_file, "server certificate chain, PEM (leaf first)"),
    STR("key", "FILE", key_file, "private key of --cert, PEM"),
    STR("client-ca", "FILE", verify.client_ca_file,
        "PEM bundle of CAs that client certificates must\n"
        "chain to (intermediates may come from the client)"),
    CHOICE("tls-min", "1.2|1.3", tls_min, tls_versions, "1.2",
           "lowest TLS version accepted (default 1.2)"),
    CHOICE("send-ca-names", "on|off", send_ca_names, on_off, "on",
           "list the subject names of --client-ca in the\n"
           "certificate request, so that clients holding\n"
           "several certificates pick the right one (default\n"
           "on; off for bundles too large for one message)"),
    CHOICE("key-signer", "auto|wolfssl|openssl", key_signer, key_signers, "auto",
           "who signs with an RSA --key: openssl (libcrypto,\n"
           "twice as fast as wolfSSL for RSA-2048 on CPUs\n"
           "with AVX-512 IFMA), wolfssl, or auto (default:\n"
           "openssl for RSA-2048 when the CPU has AVX-512\n"
           "IFMA, else wolfssl). An ECDSA key is always\n"
           "signed by wolfSSL"),

    HEADING("Client identity:"),
    CHOICE("client-auth", "MODE", verify.client_auth, client_auth_modes, "verify",
           "verify: a certificate chaining to --client-ca is\n"
           "required at the handshake (default);\n"
           "present: a certificate is required, but one that\n"
           "does not verify gets 403 on every request;\n"
           "optional: no certificate needed; requests without a\n"
           "verified identity get 403 (except --public-path)"),
    LIST("public-path", "PREFIX", authz.public_paths, authz.n_public_paths,
         "with --client-auth optional/present: paths served\n"
         "without a verified identity (repeatable)",
         .check = absolute_path),
    LIST("crl", "FILE", verify.crl_files, verify.n_crl_files,
         "PEM CRL issued by a CA in --client-ca (repeatable);\n"
         "with any CRL, every certificate in a client chain\n"
         "needs a current CRL from its issuer"),
    UINT("clock-skew", "S", verify.clock_skew_s, 0, 86400, NULL,
         "tolerance on certificate validity dates (default 0)"),
    UINT("verify-depth", "N", verify.verify_depth, 0, 7, "4",
         "intermediates allowed below a root (default 4)"),
    UINT("verify-cache", "N", verify.verify_cache, 0, 10000000, "10000",
         "verified chains remembered (default 10000; 0: off)"),
    UINT("verify-cache-ttl", "S", verify.verify_cache_ttl_s, 1, 86400 * 365, "3600",
         "a cached chain is re-verified after S (default 3600)"),
    LIST("allow", "SPEC", authz.allow, authz.n_allow,
         "only these identities are authorized (repeatable):\n"
         "cn:NAME ou:NAME dns:NAME uri:URI (trailing * for a\n"
         "prefix) email:ADDR sha256:HEX (certificate pin);\n"
         "others get 403"),
    SECONDS("max-conn-lifetime", "S", conn.max_conn_lifetime_ms, NULL,
            "a connection older than S is closed after its next\n"
            "answer (idle ones at --idle-timeout; default: no limit)"),
    STR("access-log", "FILE|-", access_log, "one line per request (default: off)"),

    HEADING("Session resumption (the client identity travels sealed in the ticket):"),
    CHOICE("tickets", "on|off", resume.tickets, on_off, "on",
           "TLS 1.3 and TLS 1.2 (RFC 5077) session tickets\n"
           "(default on)"),
    STR("ticket-key-file", "FILE", resume.ticket_key_file,
        "ticket keys shared by instances: 80-byte records,\n"
        "newest first (16-byte name, 32-byte HMAC-SHA256\n"
        "key, 32-byte AES-256 key; nginx's format: e.g.\n"
        "openssl rand 80 > FILE). The newest encrypts, all\n"
        "decrypt; at most 16. Must not be readable by others,\n"
        "nor by a group other than the server's own (a\n"
        "Kubernetes fsGroup). Re-read when it changes\n"
        "(--watch) or on SIGHUP; never rotated by mtlsd:\n"
        "prepend a key, wait --session-lifetime, drop the last"),
    UINT("ticket-rotate", "S", resume.ticket_rotate_s, 1, 86400u * 365, "3600",
         "without a key file: generate a new key every S\n"
         "seconds; the previous one still decrypts for one\n"
         "more period (default 3600)",
         GIVEN(resume.ticket_rotate_set)),
    UINT("session-lifetime", "S", resume.session_lifetime_s, 1, 7u * 86400, "3600",
         "resume only within S seconds of the full handshake\n"
         "that verified the client, and never past its\n"
         "certificate's notAfter or a trust reload (SIGHUP)\n"
         "(default 3600)"),
    UINT("tls13-tickets", "N", resume.tls13_tickets, 0, 10, "1",
         "tickets sent after a full TLS 1.3 handshake, 0-10\n"
         "(default 1; a resumption gets one new ticket)"),
    ON("tls13-psk-ke", resume.tls13_psk_ke,
       "also resume TLS 1.3 clients that offer only psk_ke\n"
       "(no (EC)DHE): loses forward secrecy; default: such\n"
       "clients get a full handshake"),
    UINT("session-cache", "N", resume.session_cache, 0, 10000000, "10000",
         "TLS 1.2 session-ID resumption: sessions kept, shared\n"
         "by all workers, each with its client identity and\n"
         "the same checks as tickets; 0 disables (default\n"
         "10000, about 0.5 KB each when used)",
         GIVEN(resume.session_cache_set)),

    HEADING("Network and workers:"),
    {.name = "listen", .arg = "HOST:PORT", .kind = K_FUNC, .parse = mtls_config_parse_listen,
     .def = "0.0.0.0:8443",
     .help = "address to listen on; [V6ADDR]:PORT for IPv6\n"
             "(default 0.0.0.0:8443)"},
    UINT("workers", "N", workers, 1, 1024, NULL,
         "worker threads, each with its own io_uring and\n"
         "SO_REUSEPORT listener (default: online CPUs)"),
    CHOICE("io", "auto|io_uring|epoll", io, io_backends, "auto",
           "I/O backend (default auto, or $MTLSD_IO): auto\n"
           "uses io_uring when the kernel and seccomp allow\n"
           "it, else epoll (one log line says why);\n"
           "io_uring refuses to start without it"),
    OFF("no-pin", pin_cpus, "do not pin worker N to CPU N"),
    UINT("max-conns", "N", max_conns, 1, 1000000, "10000",
         "connections per worker; more are closed at\n"
         "accept (default 10000)"),
    UINT("recv-buffers", "N", recv_buffers, 1, 32768, "256",
         "receive buffers per worker, a power of two\n"
         "(default 256)",
         .check = power_of_two),
    UINT("recv-buffer-size", "BYTES", recv_buffer_size, 512, 1u << 20, "16384",
         "size of each receive buffer (default 16384)"),
    UINT("buffer-budget", "BYTES", conn.buffer_budget, 65536, 1ull << 40, "134217728",
         "per worker: input and output its connections keep\n"
         "between events; past it the connection keeping the\n"
         "most is closed (default 134217728 = 128 MiB)"),

    HEADING("HTTP limits:"),
    UINT("max-header-bytes", "N", http.max_header_bytes, 256, 1u << 20, "8192",
         "request line + headers, else 431 (default 8192)"),
    UINT("max-headers", "N", http.max_headers, 1, 1000, "64",
         "header fields per request, else 431 (default 64)"),
    UINT("max-body-bytes", "N", http.max_body_bytes, 0, 1ull << 40, "1048576",
         "request body, else 413 (default 1048576)"),

    HEADING("Timeouts (seconds, fractions allowed):"),
    SECONDS("handshake-timeout", "S", handshake_timeout_ms, "10",
            "close connections that have not finished the\n"
            "TLS handshake (default 10)"),
    SECONDS("idle-timeout", "S", idle_timeout_ms, "60",
            "close connections idle this long (default 60)"),
    SECONDS("shutdown-grace", "S", shutdown_grace_ms, "5",
            "on SIGTERM/SIGINT, time in-flight requests get\n"
            "before connections are closed (default 5)"),

    HEADING("Operations:"),
    CHOICE("watch", "on|off", watch, on_off, "on",
           "reload when --cert, --key, --client-ca, --crl or\n"
           "--ticket-key-file change (inotify on their\n"
           "directories, Kubernetes ..data swaps included;\n"
           "the same reload as SIGHUP; default on)"),
    SECONDS("reload-interval", "S", reload_interval_ms, NULL,
            "also check those files every S seconds (file\n"
            "systems without inotify; default: off)"),
    UINT("expiry-warning", "S", expiry_warning_s, 0, 86400u * 3650, "604800",
         "log a warning when the server certificate expires\n"
         "within S seconds (default 604800, 7 days)"),
    {.name = "status-listen", .arg = "HOST:PORT", .kind = K_FUNC, .parse = parse_status_listen,
     .help = "plain-HTTP probes without a client certificate:\n"
             "GET /healthz, /readyz, /metrics (default: off)"},
    {.name = "shutdown-delay", .arg = "S", .kind = K_FUNC, .parse = parse_shutdown_delay,
     .help = "on SIGTERM, /readyz answers 503 at once and the\n"
             "server keeps serving S seconds before draining\n"
             "(default 0)"},
    STR("user", "NAME", user,
        "switch to this user after binding and loading keys\n"
        "(the files must stay readable by it for reloads)",
        .check = not_empty),
    OFF("no-sandbox", sandbox,
        "no PR_SET_NO_NEW_PRIVS and no Landlock rule set\n"
        "(default: files readable only in the directories of\n"
        "the configured files, where the kernel supports it)"),

    HEADING("Reverse proxy (forward every authorized request to an application):"),
    {.name = "upstream", .arg = "URL", .kind = K_FUNC, .parse = mtls_config_parse_upstream,
     .help = "http://HOST:PORT (IPv4, [IPv6] or a name resolved\n"
             "at start) or unix:/path/to.sock; the built-in\n"
             "routes are then served only under --builtin-prefix"},
    STR("builtin-prefix", "PREFIX", proxy.builtin_prefix,
        "with --upstream: serve the built-in routes under\n"
        "PREFIX (e.g. /.mtlsd gives /.mtlsd/whoami)",
        .check = path_prefix),
    {.name = "client-cert-header", .arg = "H", .kind = K_FUNC, .parse = parse_cert_header,
     .help = "identity headers sent upstream (repeatable):\n"
             "rfc9440 (Client-Cert, Client-Cert-Chain; default),\n"
             "xfcc (X-Forwarded-Client-Cert), none. Inbound\n"
             "copies are always removed"},
    LIST("strip-header", "NAME", proxy.strip_headers, proxy.n_strip_headers,
         "also remove this request header (repeatable)", .check = header_name),
    SECONDS("upstream-connect-timeout", "S", proxy.connect_timeout_ms, "2",
            "connect timeout (default 2); then 502"),
    SECONDS("upstream-timeout", "S", proxy.timeout_ms, "30",
            "time to the response head (default 30); then 504"),
    SECONDS("upstream-idle", "S", proxy.idle_ms, "60",
            "pooled connections idle longer are closed\n"
            "(default 60)"),
    UINT("upstream-conns", "N", proxy.conns, 0, 100000, "64",
         "idle keep-alive upstream connections kept per\n"
         "worker (default 64)"),

    HEADING("Other:"),
    CHOICE("log-level", "LEVEL", log_level, log_levels, "info",
           "error, warn, info or debug (default info)"),
    {.name = "help", .kind = K_ACTION, .short_name = 'h', .help = "this text"},
    {.name = "version", .kind = K_ACTION, .short_name = 'V',
     .help = "version, wolfSSL version and its assembly speed-ups"},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char usage_head[] =
    "Usage: mtlsd --cert FILE --key FILE --client-ca FILE [options]\n"
    "\n"
    "A mutual-TLS HTTPS server: every client must present a certificate that\n"
    "chains to --client-ca. Routes: GET / (Hello World!), GET /whoami (the\n"
    "verified client identity as JSON), GET /healthz, GET /metrics.\n";

#define HELP_COLUMN 27 /* where the description starts */

void mtls_config_usage(FILE *f)
{
    fputs(usage_head, f);
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char left[64];
        const char *h, *nl;
        int n;

        if (o->kind == K_HEADING) {
            fprintf(f, "\n%s\n", o->name);
            continue;
        }
        if (o->short_name)
            n = snprintf(left, sizeof(left), "  -%c, --%s", o->short_name, o->name);
        else
            n = snprintf(left, sizeof(left), "  --%s%s%s", o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
        fputs(left, f);
        fprintf(f, "%*s", n < HELP_COLUMN - 1 ? HELP_COLUMN - n : 1, "");
        for (h = o->help; (nl = strchr(h, '\n')) != NULL; h = nl + 1)
            fprintf(f, "%.*s\n%*s", (int)(nl - h), h, HELP_COLUMN, "");
        fprintf(f, "%s\n", h);
    }
}

static int parse_uint(const char *name, const char *s, unsigned long long min,
                      unsigned long long max, unsigned long long *out, char *err,
                      size_t errlen)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (*s == '-' || *s == '\0')
        goto bad;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    snprintf(err, errlen, "--%s: '%s' is not an integer between %llu and %llu", name, s,
             min, max);
    return -1;
}

/* Seconds with an optional fraction, stored as milliseconds. */
static int parse_seconds(const char *name, const char *s, unsigned *out_ms, char *err,
                         size_t errlen)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v > 0) || v > 86400.0 * 365) {
        snprintf(err, errlen, "--%s: '%s' is not a number of seconds > 0", name, s);
        return -1;
    }
    *out_ms = (unsigned)(v * 1000.0 + 0.5);
    if (*out_ms == 0)
        *out_ms = 1;
    return 0;
}

int mtls_config_parse_listen(struct mtls_config *cfg, const char *s, char *err, size_t errlen)
{
    if (mtls_config_parse_addr("listen", s, &cfg->listen_addr, &cfg->listen_addrlen, err,
                               errlen) < 0)
        return -1;
    snprintf(cfg->listen_str, sizeof(cfg->listen_str), "%s", s);
    return 0;
}

static int parse_status_listen(struct mtls_config *cfg, const char *v, char *err,
                               size_t errlen)
{
    if (mtls_config_parse_addr("status-listen", v, &cfg->status_addr, &cfg->status_addrlen,
                               err, errlen) < 0)
        return -1;
    snprintf(cfg->status_str, sizeof(cfg->status_str), "%s", v);
    return 0;
}

int mtls_config_parse_addr(const char *flag, const char *s, struct sockaddr_storage *addr,
                           socklen_t *addrlen, char *err, size_t errlen)
{
    char host[256];
    const char *colon, *port_s;
    unsigned long long port;
    size_t hlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            goto bad;
        hlen = (size_t)(close - s - 1);
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        port_s = close + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            goto bad;
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof(host) || memchr(s, ':', hlen))
            goto bad;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        port_s = colon + 1;
    }
    if (parse_uint(flag, port_s, 1, 65535, &port, err, errlen) < 0)
        goto bad;

    memset(addr, 0, sizeof(*addr));
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *addrlen = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *addrlen = sizeof(*v6);
    } else {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen,
             "--%s: '%s' is not HOST:PORT (an IPv4 address, [IPv6 address] or "
             "localhost, and a port 1-65535)",
             flag, s);
    return -1;
}

/* 0 is a valid delay (the default); any other value as for SECONDS rows. */
static int parse_shutdown_delay(struct mtls_config *cfg, const char *v, char *err,
                                size_t errlen)
{
    if (strcmp(v, "0") == 0) {
        cfg->shutdown_delay_ms = 0;
        return 0;
    }
    return parse_seconds("shutdown-delay", v, &cfg->shutdown_delay_ms, err, errlen);
}

static void store(struct mtls_config *cfg, const struct opt *o, unsigned long long v)
{
    char *p = (char *)cfg + o->off;

    if (o->size == sizeof(bool) && (o->kind == K_ON || o->kind == K_OFF || o->kind == K_CHOICE)) {
        bool b = v != 0;
        memcpy(p, &b, sizeof(b));
    } else if (o->size == sizeof(int) && o->kind == K_CHOICE) {
        int i = (int)v;
        memcpy(p, &i, sizeof(i));
    } else if (o->size == sizeof(unsigned)) {
        unsigned u = (unsigned)v;
        memcpy(p, &u, sizeof(u));
    } else {
        uint64_t u = v;
        memcpy(p, &u, sizeof(u));
    }
}

static int parse_choice(const struct opt *o, const char *v, unsigned long long *out, char *err,
                        size_t errlen)
{
    size_t n = 0, len;
    int w;

    for (const struct choice *c = o->choices; c->text; c++, n++)
        if (strcmp(v, c->text) == 0) {
            *out = (unsigned long long)c->value;
            return 0;
        }
    /* "--log-level: 'loud' must be error, warn, info or debug" */
    w = snprintf(err, errlen, "--%s: '%s' must be ", o->name, v);
    len = w < 0 ? 0 : (size_t)w;
    for (size_t i = 0; i < n && len < errlen; i++) {
        w = snprintf(err + len, errlen - len, "%s%s", o->choices[i].text,
                     i + 2 < n ? ", " : i + 1 < n ? " or " : "");
        len += w < 0 ? 0 : (size_t)w;
    }
    return -1;
}

/* One flag's value into its field. `given`: from argv (not a default). */
static int apply(struct mtls_config *cfg, const struct opt *o, const char *v, bool given,
                 char *err, size_t errlen)
{
    char *field = (char *)cfg + o->off;
    unsigned long long n = 0;
    unsigned ms;

    switch (o->kind) {
    case K_STR:
        memcpy(field, &v, sizeof(v));
        break;
    case K_ON:
    case K_OFF:
        store(cfg, o, o->kind == K_ON);
        break;
    case K_UINT:
        if (parse_uint(o->name, v, o->min, o->max, &n, err, errlen) < 0)
            return -1;
        break;
    case K_SECONDS:
        if (parse_seconds(o->name, v, &ms, err, errlen) < 0)
            return -1;
        n = ms;
        break;
    case K_CHOICE:
        if (parse_choice(o, v, &n, err, errlen) < 0)
            return -1;
        break;
    case K_LIST: {
        unsigned *count = (unsigned *)((char *)cfg + o->aux);
        if (o->check && o->check(v, 0, err, errlen) < 0)
            return -1;
        if (*count >= MTLS_MAX_LIST) {
            snprintf(err, errlen, "--%s: at most %d values", o->name, MTLS_MAX_LIST);
            return -1;
        }
        memcpy(field + *count * sizeof(v), &v, sizeof(v));
        (*count)++;
        return 0;
    }
    case K_FUNC:
        return o->parse(cfg, v, err, errlen);
    default:
        snprintf(err, errlen, "--%s: unsupported flag kind", o->name); /* fail closed */
        return -1;
    }
    if (o->check && o->check(v, n, err, errlen) < 0)
        return -1;
    if (o->kind == K_UINT || o->kind == K_SECONDS || o->kind == K_CHOICE)
        store(cfg, o, n);
    if (given && o->aux)
        *(bool *)((char *)cfg + o->aux) = true;
    return 0;
}

void mtls_config_defaults(struct mtls_config *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->kind == K_OFF)
            store(cfg, o, 1); /* the flag turns it off */
        else if (o->def && apply(cfg, o, o->def, false, err, sizeof(err)) < 0) {
            fprintf(stderr, "mtlsd: bad built-in default: %s\n", err);
            abort();
        }
    }
}

#define OPT_BASE 256 /* getopt codes of table rows: OPT_BASE + index */

enum mtls_config_result mtls_config_parse(struct mtls_config *cfg, int argc, char **argv,
                                          FILE *out, char *err, size_t errlen)
{
    struct option long_opts[N_OPTS + 1];
    size_t n = 0;
    int c;

    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].kind == K_HEADING)
            continue;
        long_opts[n].name = opts[i].name;
        long_opts[n].has_arg = opts[i].arg ? required_argument : no_argument;
        long_opts[n].flag = NULL;
        long_opts[n].val = opts[i].short_name ? opts[i].short_name : OPT_BASE + (int)i;
        n++;
    }
    memset(&long_opts[n], 0, sizeof(long_opts[n]));

    /* The environment sets --io's default (the test suite runs whole on one
     * backend with it); --io overrides. */
    const char *env_io = getenv("MTLSD_IO");
    for (size_t i = 0; env_io && *env_io && i < N_OPTS; i++)
        if (strcmp(opts[i].name, "io") == 0 &&
            apply(cfg, &opts[i], env_io, false, err, errlen) < 0) {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, " (from $MTLSD_IO)");
            return MTLS_CONFIG_ERROR;
        }

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hV", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            mtls_config_usage(out);
            return MTLS_CONFIG_EXIT;
        case 'V':
            return MTLS_CONFIG_VERSION;
        case ':':
            snprintf(err, errlen, "%s needs a value (see mtlsd --help)", argv[optind - 1]);
            return MTLS_CONFIG_ERROR;
        default:
            if (c < OPT_BASE || (size_t)(c - OPT_BASE) >= N_OPTS) {
                snprintf(err, errlen, "unknown option '%s' (see mtlsd --help)",
                         argv[optind - 1]);
                return MTLS_CONFIG_ERROR;
            }
            if (apply(cfg, &opts[c - OPT_BASE], optarg, true, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see mtlsd --help)", argv[optind]);
        return MTLS_CONFIG_ERROR;
    }
    /* Rules across flags. */
    if (!cfg->cert_file || !cfg->key_file || !cfg->verify.client_ca_file) {
        snprintf(err, errlen, "--cert, --key and --client-ca are required (missing: %s%s%s)",
                 cfg->cert_file ? "" : "--cert ", cfg->key_file ? "" : "--key ",
                 cfg->verify.client_ca_file ? "" : "--client-ca");
        return MTLS_CONFIG_ERROR;
    }
    if (cfg->resume.ticket_key_file && cfg->resume.ticket_rotate_set) {
        snprintf(err, errlen,
                 "--ticket-rotate applies to generated keys only: with --ticket-key-file, "
                 "rotate by rewriting the file and sending SIGHUP");
        return MTLS_CONFIG_ERROR;
    }
    if (cfg->status_addrlen && cfg->status_addrlen == cfg->listen_addrlen &&
        memcmp(&cfg->status_addr, &cfg->listen_addr, cfg->listen_addrlen) == 0) {
        snprintf(err, errlen, "--status-listen %s: must differ from --listen", cfg->status_str);
        return MTLS_CONFIG_ERROR;
    }
    if (cfg->proxy.builtin_prefix && !cfg->proxy.upstream) {
        snprintf(err, errlen, "--builtin-prefix applies with --upstream only (without it the "
                              "built-in routes are served at /)");
        return MTLS_CONFIG_ERROR;
    }
    if (!cfg->proxy.cert_header_set)
        cfg->proxy.cert_headers = MTLS_CERT_HEADER_RFC9440;
    cfg->verify.keep_certs = cfg->proxy.upstream && cfg->proxy.cert_headers;
    if (cfg->workers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = cpus > 0 ? (unsigned)cpus : 1;
    }
    /* Ciphertext a paused connection may keep, on both backends: the rest
     * of the buffer being parsed when it paused, plus (io_uring) the one
     * receive still in flight, which takes at most one buffer (io_uring.c
     * says why receives are single-shot); twice that and a TLS record for
     * slack. Past it the connection is closed; all of it counts against
     * --buffer-budget. */
    cfg->conn.max_unread = 4 * (size_t)cfg->recv_buffer_size + 16384 + 2048;
    return MTLS_CONFIG_OK;
}

int mtls_config_parse_upstream(struct mtls_config *cfg, const char *s, char *err, size_t errlen)
{
    struct mtls_proxy_settings *p = &cfg->proxy;
    const char *hp, *colon, *end;
    size_t hn;
    char *e;
    unsigned long port;

    if (strncmp(s, "unix:", 5) == 0) {
        /* sockaddr_un's path holds 107 bytes and a NUL. */
        if (s[5] != '/' || strlen(s + 5) > 107) {
            snprintf(err, errlen,
                     "--upstream: '%s' must be unix:/absolute/path (at most 107 bytes)", s);
            return -1;
        }
        p->upstream = s;
        p->upstream_unix = s + 5;
        return 0;
    }
    if (strncmp(s, "http://", 7) != 0)
        goto bad;
    hp = s + 7;
    end = hp + strcspn(hp, "/");
    if (*end && strcmp(end, "/") != 0) {
        snprintf(err, errlen,
                 "--upstream: '%s': a path prefix is not supported (the request target is "
                 "forwarded as received)",
                 s);
        return -1;
    }
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(end - hp));
        if (!rb || rb[1] != ':')
            goto bad;
        hn = (size_t)(rb - hp - 1);
        colon = rb + 1;
        hp++;
    } else {
        colon = memchr(hp, ':', (size_t)(end - hp));
        if (!colon)
            goto bad;
        hn = (size_t)(colon - hp);
    }
    if (hn == 0 || hn >= sizeof(p->upstream_host))
        goto bad;
    errno = 0;
    port = strtoul(colon + 1, &e, 10);
    if (errno || e != end || e == colon + 1 || port == 0 || port > 65535)
        goto bad;
    memcpy(p->upstream_host, hp, hn);
    p->upstream_host[hn] = '\0';
    snprintf(p->upstream_port, sizeof(p->upstream_port), "%lu", port);
    p->upstream = s;
    p->upstream_unix = NULL;
    return 0;
bad:
    snprintf(err, errlen,
             "--upstream: '%s' must be http://HOST:PORT (HOST an IPv4 address, [IPv6 "
             "address] or a name) or unix:/path/to.sock",
             s);
    return -1;
}
