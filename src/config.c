/* config.c: long options with defaults and messages that tell the operator
 * what to fix. Nothing here opens a socket; file checks happen in server.c. */
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

void mtls_config_defaults(struct mtls_config *cfg)
{
    char err[64];

    memset(cfg, 0, sizeof(*cfg));
    mtls_config_parse_listen(cfg, "0.0.0.0:8443", err, sizeof(err));
    cfg->workers = 0;
    cfg->pin_cpus = true;
    cfg->tls_min = 12;
    cfg->tickets = true;
    cfg->ticket_rotate_s = 3600;
    cfg->session_lifetime_s = 3600;
    cfg->tls13_tickets = 1;
    cfg->session_cache = 10000;
    cfg->client_auth = MTLS_AUTH_VERIFY;
    cfg->verify_depth = 4;
    cfg->verify_cache = 10000;
    cfg->verify_cache_ttl_s = 3600;
    cfg->max_conns = 10000;
    cfg->max_header_bytes = 8192;
    cfg->max_headers = 64;
    cfg->max_body_bytes = 1u << 20;
    cfg->handshake_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->shutdown_grace_ms = 5000;
    cfg->recv_buffers = 256;
    cfg->recv_buffer_size = 16384;
    cfg->log_level = MTLS_LOG_INFO;
    cfg->upstream_connect_timeout_ms = 2000;
    cfg->upstream_timeout_ms = 30000;
    cfg->upstream_idle_ms = 60000;
    cfg->upstream_conns = 64;
    cfg->client_cert_headers = MTLS_CERT_HEADER_RFC9440;
}

void mtls_config_usage(FILE *f)
{
    fputs(
        "Usage: mtlsd --cert FILE --key FILE --client-ca FILE [options]\n"
        "\n"
        "A mutual-TLS HTTPS server: every client must present a certificate that\n"
        "chains to --client-ca. Routes: GET / (Hello World!), GET /whoami (the\n"
        "verified client identity as JSON), GET /healthz, GET /metrics.\n"
        "\n"
        "TLS:\n"
        "  --cert FILE              server certificate chain, PEM (leaf first)\n"
        "  --key FILE               private key of --cert, PEM\n"
        "  --client-ca FILE         PEM bundle of CAs that client certificates must\n"
        "                           chain to (intermediates may come from the client)\n"
        "  --tls-min 1.2|1.3        lowest TLS version accepted (default 1.2)\n"
        "\n"
        "Client identity:\n"
        "  --client-auth MODE       verify: a certificate chaining to --client-ca is\n"
        "                           required at the handshake (default);\n"
        "                           present: a certificate is required, but one that\n"
        "                           does not verify gets 403 on every request;\n"
        "                           optional: no certificate needed; requests without a\n"
        "                           verified identity get 403 (except --public-path)\n"
        "  --public-path PREFIX     with --client-auth optional/present: paths served\n"
        "                           without a verified identity (repeatable)\n"
        "  --crl FILE               PEM CRL issued by a CA in --client-ca (repeatable);\n"
        "                           with any CRL, every certificate in a client chain\n"
        "                           needs a current CRL from its issuer\n"
        "  --clock-skew S           tolerance on certificate validity dates (default 0)\n"
        "  --verify-depth N         intermediates allowed below a root (default 4)\n"
        "  --verify-cache N         verified chains remembered (default 10000; 0: off)\n"
        "  --verify-cache-ttl S     a cached chain is re-verified after S (default 3600)\n"
        "  --allow SPEC             only these identities are authorized (repeatable):\n"
        "                           cn:NAME ou:NAME dns:NAME uri:URI (trailing * for a\n"
        "                           prefix) email:ADDR sha256:HEX (certificate pin);\n"
        "                           others get 403\n"
        "  --max-conn-lifetime S    a connection older than S is closed after its next\n"
        "                           answer (idle ones at --idle-timeout; default: no limit)\n"
        "  --access-log FILE|-      one line per request (default: off)\n"
        "\n"
        "Session resumption (the client identity travels sealed in the ticket):\n"
        "  --tickets on|off         TLS 1.3 and TLS 1.2 (RFC 5077) session tickets\n"
        "                           (default on)\n"
        "  --ticket-key-file FILE   ticket keys shared by instances: 80-byte records,\n"
        "                           newest first (16-byte name, 32-byte HMAC-SHA256\n"
        "                           key, 32-byte AES-256 key; nginx's format: e.g.\n"
        "                           openssl rand 80 > FILE). The newest encrypts, all\n"
        "                           decrypt; at most 16. Must not be readable by group\n"
        "                           or others. Re-read on SIGHUP; never rotated\n"
        "                           automatically (rewrite it and send SIGHUP)\n"
        "  --ticket-rotate S        without a key file: generate a new key every S\n"
        "                           seconds; the previous one still decrypts for one\n"
        "                           more period (default 3600)\n"
        "  --session-lifetime S     resume only within S seconds of the full handshake\n"
        "                           that verified the client, and never past its\n"
        "                           certificate's notAfter or a trust reload (SIGHUP)\n"
        "                           (default 3600)\n"
        "  --tls13-tickets N        tickets sent after a full TLS 1.3 handshake, 0-10\n"
        "                           (default 1; a resumption gets one new ticket)\n"
        "  --tls13-psk-ke           also resume TLS 1.3 clients that offer only psk_ke\n"
        "                           (no (EC)DHE): loses forward secrecy; default: such\n"
        "                           clients get a full handshake\n"
        "  --session-cache N        TLS 1.2 session-ID resumption: sessions kept, shared\n"
        "                           by all workers, each with its client identity and\n"
        "                           the same checks as tickets; 0 disables (default\n"
        "                           10000, about 0.5 KB each when used)\n"
        "\n"
        "Network and workers:\n"
        "  --listen HOST:PORT       address to listen on; [V6ADDR]:PORT for IPv6\n"
        "                           (default 0.0.0.0:8443)\n"
        "  --workers N              worker threads, each with its own io_uring and\n"
        "                           SO_REUSEPORT listener (default: online CPUs)\n"
        "  --no-pin                 do not pin worker N to CPU N\n"
        "  --max-conns N            connections per worker; more are closed at\n"
        "                           accept (default 10000)\n"
        "  --recv-buffers N         receive buffers per worker, a power of two\n"
        "                           (default 256)\n"
        "  --recv-buffer-size BYTES size of each receive buffer (default 16384)\n"
        "\n"
        "HTTP limits:\n"
        "  --max-header-bytes N     request line + headers, else 431 (default 8192)\n"
        "  --max-headers N          header fields per request, else 431 (default 64)\n"
        "  --max-body-bytes N       request body, else 413 (default 1048576)\n"
        "\n"
        "Timeouts (seconds, fractions allowed):\n"
        "  --handshake-timeout S    close connections that have not finished the\n"
        "                           TLS handshake (default 10)\n"
        "  --idle-timeout S         close connections idle this long (default 60)\n"
        "  --shutdown-grace S       on SIGTERM/SIGINT, time in-flight requests get\n"
        "                           before connections are closed (default 5)\n"
        "\n"
        "Reverse proxy (forward every authorized request to an application):\n"
        "  --upstream URL           http://HOST:PORT (IPv4, [IPv6] or a name resolved\n"
        "                           at start) or unix:/path/to.sock; the built-in\n"
        "                           routes are then served only under --builtin-prefix\n"
        "  --builtin-prefix PREFIX  with --upstream: serve the built-in routes under\n"
        "                           PREFIX (e.g. /.mtlsd gives /.mtlsd/whoami)\n"
        "  --client-cert-header H   identity headers sent upstream (repeatable):\n"
        "                           rfc9440 (Client-Cert, Client-Cert-Chain; default),\n"
        "                           xfcc (X-Forwarded-Client-Cert), none. Inbound\n"
        "                           copies are always removed\n"
        "  --strip-header NAME      also remove this request header (repeatable)\n"
        "  --upstream-connect-timeout S  connect timeout (default 2); then 502\n"
        "  --upstream-timeout S     time to the response head (default 30); then 504\n"
        "  --upstream-idle S        pooled connections idle longer are closed\n"
        "                           (default 60)\n"
        "  --upstream-conns N       idle keep-alive upstream connections kept per\n"
        "                           worker (default 64)\n"
        "\n"
        "Other:\n"
        "  --log-level LEVEL        error, warn, info or debug (default info)\n"
        "  -h, --help               this text\n"
        "  -V, --version            version, wolfSSL version and its assembly speed-ups\n",
        f);
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

static int add_list(const char *name, const char **list, unsigned *n, const char *v,
                    char *err, size_t errlen)
{
    if (*n >= MTLS_MAX_LIST) {
        snprintf(err, errlen, "--%s: at most %d values", name, MTLS_MAX_LIST);
        return -1;
    }
    list[(*n)++] = v;
    return 0;
}

int mtls_config_parse_listen(struct mtls_config *cfg, const char *s, char *err, size_t errlen)
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
    if (parse_uint("listen", port_s, 1, 65535, &port, err, errlen) < 0)
        goto bad;

    memset(&cfg->listen_addr, 0, sizeof(cfg->listen_addr));
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)&cfg->listen_addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&cfg->listen_addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        cfg->listen_addrlen = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        cfg->listen_addrlen = sizeof(*v6);
    } else {
        goto bad;
    }
    snprintf(cfg->listen_str, sizeof(cfg->listen_str), "%s", s);
    return 0;
bad:
    snprintf(err, errlen,
             "--listen: '%s' is not HOST:PORT (an IPv4 address, [IPv6 address] or "
             "localhost, and a port 1-65535)",
             s);
    return -1;
}

enum {
    OPT_CERT = 256, OPT_KEY, OPT_CLIENT_CA, OPT_TLS_MIN, OPT_LISTEN, OPT_WORKERS,
    OPT_NO_PIN, OPT_MAX_CONNS, OPT_RECV_BUFFERS, OPT_RECV_BUFFER_SIZE,
    OPT_MAX_HEADER_BYTES, OPT_MAX_HEADERS, OPT_MAX_BODY_BYTES, OPT_HANDSHAKE_TIMEOUT,
    OPT_IDLE_TIMEOUT, OPT_SHUTDOWN_GRACE, OPT_LOG_LEVEL, OPT_CLIENT_AUTH, OPT_PUBLIC_PATH,
    OPT_CRL, OPT_CLOCK_SKEW, OPT_VERIFY_DEPTH, OPT_VERIFY_CACHE, OPT_VERIFY_CACHE_TTL,
    OPT_ALLOW, OPT_MAX_CONN_LIFETIME, OPT_ACCESS_LOG,
    OPT_TICKETS, OPT_TICKET_KEY_FILE, OPT_TICKET_ROTATE, OPT_SESSION_LIFETIME,
    OPT_TLS13_TICKETS, OPT_TLS13_PSK_KE, OPT_SESSION_CACHE,
    OPT_UPSTREAM, OPT_UPSTREAM_CONNECT_TIMEOUT, OPT_UPSTREAM_TIMEOUT, OPT_UPSTREAM_IDLE,
    OPT_UPSTREAM_CONNS, OPT_CLIENT_CERT_HEADER, OPT_STRIP_HEADER, OPT_BUILTIN_PREFIX,
};

static const struct option long_opts[] = {
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"client-ca", required_argument, NULL, OPT_CLIENT_CA},
    {"tls-min", required_argument, NULL, OPT_TLS_MIN},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"no-pin", no_argument, NULL, OPT_NO_PIN},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"recv-buffers", required_argument, NULL, OPT_RECV_BUFFERS},
    {"recv-buffer-size", required_argument, NULL, OPT_RECV_BUFFER_SIZE},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER_BYTES},
    {"max-headers", required_argument, NULL, OPT_MAX_HEADERS},
    {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY_BYTES},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"shutdown-grace", required_argument, NULL, OPT_SHUTDOWN_GRACE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"tickets", required_argument, NULL, OPT_TICKETS},
    {"ticket-key-file", required_argument, NULL, OPT_TICKET_KEY_FILE},
    {"ticket-rotate", required_argument, NULL, OPT_TICKET_ROTATE},
    {"session-lifetime", required_argument, NULL, OPT_SESSION_LIFETIME},
    {"tls13-tickets", required_argument, NULL, OPT_TLS13_TICKETS},
    {"tls13-psk-ke", no_argument, NULL, OPT_TLS13_PSK_KE},
    {"session-cache", required_argument, NULL, OPT_SESSION_CACHE},
    {"client-auth", required_argument, NULL, OPT_CLIENT_AUTH},
    {"public-path", required_argument, NULL, OPT_PUBLIC_PATH},
    {"crl", required_argument, NULL, OPT_CRL},
    {"clock-skew", required_argument, NULL, OPT_CLOCK_SKEW},
    {"verify-depth", required_argument, NULL, OPT_VERIFY_DEPTH},
    {"verify-cache", required_argument, NULL, OPT_VERIFY_CACHE},
    {"verify-cache-ttl", required_argument, NULL, OPT_VERIFY_CACHE_TTL},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"max-conn-lifetime", required_argument, NULL, OPT_MAX_CONN_LIFETIME},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"upstream-connect-timeout", required_argument, NULL, OPT_UPSTREAM_CONNECT_TIMEOUT},
    {"upstream-timeout", required_argument, NULL, OPT_UPSTREAM_TIMEOUT},
    {"upstream-idle", required_argument, NULL, OPT_UPSTREAM_IDLE},
    {"upstream-conns", required_argument, NULL, OPT_UPSTREAM_CONNS},
    {"client-cert-header", required_argument, NULL, OPT_CLIENT_CERT_HEADER},
    {"strip-header", required_argument, NULL, OPT_STRIP_HEADER},
    {"builtin-prefix", required_argument, NULL, OPT_BUILTIN_PREFIX},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

enum mtls_config_result mtls_config_parse(struct mtls_config *cfg, int argc, char **argv,
                                          FILE *out, char *err, size_t errlen)
{
    unsigned long long v;
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hV", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CERT: cfg->cert_file = optarg; break;
        case OPT_KEY: cfg->key_file = optarg; break;
        case OPT_CLIENT_CA: cfg->client_ca_file = optarg; break;
        case OPT_TLS_MIN:
            if (strcmp(optarg, "1.2") == 0)
                cfg->tls_min = 12;
            else if (strcmp(optarg, "1.3") == 0)
                cfg->tls_min = 13;
            else {
                snprintf(err, errlen, "--tls-min: '%s' must be 1.2 or 1.3", optarg);
                return MTLS_CONFIG_ERROR;
            }
            break;
        case OPT_LISTEN:
            if (mtls_config_parse_listen(cfg, optarg, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_WORKERS:
            if (parse_uint("workers", optarg, 1, 1024, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->workers = (unsigned)v;
            break;
        case OPT_NO_PIN: cfg->pin_cpus = false; break;
        case OPT_MAX_CONNS:
            if (parse_uint("max-conns", optarg, 1, 1000000, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->max_conns = (unsigned)v;
            break;
        case OPT_RECV_BUFFERS:
            if (parse_uint("recv-buffers", optarg, 1, 32768, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            if (v & (v - 1)) {
                snprintf(err, errlen, "--recv-buffers: %llu is not a power of two", v);
                return MTLS_CONFIG_ERROR;
            }
            cfg->recv_buffers = (unsigned)v;
            break;
        case OPT_RECV_BUFFER_SIZE:
            if (parse_uint("recv-buffer-size", optarg, 512, 1u << 20, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->recv_buffer_size = (unsigned)v;
            break;
        case OPT_MAX_HEADER_BYTES:
            if (parse_uint("max-header-bytes", optarg, 256, 1u << 20, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->max_header_bytes = (size_t)v;
            break;
        case OPT_MAX_HEADERS:
            if (parse_uint("max-headers", optarg, 1, 1000, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->max_headers = (unsigned)v;
            break;
        case OPT_MAX_BODY_BYTES:
            if (parse_uint("max-body-bytes", optarg, 0, 1ull << 40, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->max_body_bytes = v;
            break;
        case OPT_HANDSHAKE_TIMEOUT:
            if (parse_seconds("handshake-timeout", optarg, &cfg->handshake_timeout_ms, err,
                              errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_IDLE_TIMEOUT:
            if (parse_seconds("idle-timeout", optarg, &cfg->idle_timeout_ms, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_SHUTDOWN_GRACE:
            if (parse_seconds("shutdown-grace", optarg, &cfg->shutdown_grace_ms, err,
                              errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_LOG_LEVEL:
            if (strcmp(optarg, "error") == 0)
                cfg->log_level = MTLS_LOG_ERROR;
            else if (strcmp(optarg, "warn") == 0)
                cfg->log_level = MTLS_LOG_WARN;
            else if (strcmp(optarg, "info") == 0)
                cfg->log_level = MTLS_LOG_INFO;
            else if (strcmp(optarg, "debug") == 0)
                cfg->log_level = MTLS_LOG_DEBUG;
            else {
                snprintf(err, errlen, "--log-level: '%s' must be error, warn, info or debug",
                         optarg);
                return MTLS_CONFIG_ERROR;
            }
            break;
        case OPT_TICKETS:
            if (strcmp(optarg, "on") == 0)
                cfg->tickets = true;
            else if (strcmp(optarg, "off") == 0)
                cfg->tickets = false;
            else {
                snprintf(err, errlen, "--tickets: '%s' must be on or off", optarg);
                return MTLS_CONFIG_ERROR;
            }
            break;
        case OPT_TICKET_KEY_FILE: cfg->ticket_key_file = optarg; break;
        case OPT_TICKET_ROTATE:
            if (parse_uint("ticket-rotate", optarg, 1, 86400u * 365, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->ticket_rotate_s = (unsigned)v;
            cfg->ticket_rotate_set = true;
            break;
        case OPT_SESSION_LIFETIME:
            if (parse_uint("session-lifetime", optarg, 1, 7u * 86400, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->session_lifetime_s = (unsigned)v;
            break;
        case OPT_TLS13_TICKETS:
            if (parse_uint("tls13-tickets", optarg, 0, 10, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->tls13_tickets = (unsigned)v;
            break;
        case OPT_TLS13_PSK_KE: cfg->tls13_psk_ke = true; break;
        case OPT_SESSION_CACHE:
            if (parse_uint("session-cache", optarg, 0, 10000000, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->session_cache = (unsigned)v;
            cfg->session_cache_set = true;
            break;
        case OPT_CLIENT_AUTH:
            if (strcmp(optarg, "verify") == 0)
                cfg->client_auth = MTLS_AUTH_VERIFY;
            else if (strcmp(optarg, "present") == 0)
                cfg->client_auth = MTLS_AUTH_PRESENT;
            else if (strcmp(optarg, "optional") == 0)
                cfg->client_auth = MTLS_AUTH_OPTIONAL;
            else {
                snprintf(err, errlen, "--client-auth: '%s' must be verify, present or optional",
                         optarg);
                return MTLS_CONFIG_ERROR;
            }
            break;
        case OPT_PUBLIC_PATH:
            if (optarg[0] != '/') {
                snprintf(err, errlen, "--public-path: '%s' must start with /", optarg);
                return MTLS_CONFIG_ERROR;
            }
            if (add_list("public-path", cfg->public_paths, &cfg->n_public_paths, optarg, err,
                         errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_CRL:
            if (add_list("crl", cfg->crl_files, &cfg->n_crl_files, optarg, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_ALLOW:
            if (add_list("allow", cfg->allow, &cfg->n_allow, optarg, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_CLOCK_SKEW:
            if (parse_uint("clock-skew", optarg, 0, 86400, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->clock_skew_s = (unsigned)v;
            break;
        case OPT_VERIFY_DEPTH:
            if (parse_uint("verify-depth", optarg, 0, 7, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->verify_depth = (unsigned)v;
            break;
        case OPT_VERIFY_CACHE:
            if (parse_uint("verify-cache", optarg, 0, 10000000, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->verify_cache = (unsigned)v;
            break;
        case OPT_VERIFY_CACHE_TTL:
            if (parse_uint("verify-cache-ttl", optarg, 1, 86400 * 365, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->verify_cache_ttl_s = (unsigned)v;
            break;
        case OPT_MAX_CONN_LIFETIME:
            if (parse_seconds("max-conn-lifetime", optarg, &cfg->max_conn_lifetime_ms, err,
                              errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_ACCESS_LOG:
            cfg->access_log = optarg;
            break;
        case OPT_UPSTREAM:
            if (mtls_config_parse_upstream(cfg, optarg, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_UPSTREAM_CONNECT_TIMEOUT:
            if (parse_seconds("upstream-connect-timeout", optarg,
                              &cfg->upstream_connect_timeout_ms, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_UPSTREAM_TIMEOUT:
            if (parse_seconds("upstream-timeout", optarg, &cfg->upstream_timeout_ms, err,
                              errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_UPSTREAM_IDLE:
            if (parse_seconds("upstream-idle", optarg, &cfg->upstream_idle_ms, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_UPSTREAM_CONNS:
            if (parse_uint("upstream-conns", optarg, 0, 100000, &v, err, errlen) < 0)
                return MTLS_CONFIG_ERROR;
            cfg->upstream_conns = (unsigned)v;
            break;
        case OPT_CLIENT_CERT_HEADER: {
            unsigned bit = strcmp(optarg, "rfc9440") == 0 ? MTLS_CERT_HEADER_RFC9440
                         : strcmp(optarg, "xfcc") == 0    ? MTLS_CERT_HEADER_XFCC
                         : strcmp(optarg, "none") == 0    ? 0
                                                          : ~0u;
            if (bit == ~0u) {
                snprintf(err, errlen, "--client-cert-header: '%s' must be rfc9440, xfcc or none",
                         optarg);
                return MTLS_CONFIG_ERROR;
            }
            if (!cfg->client_cert_header_set)
                cfg->client_cert_headers = 0; /* the first one replaces the default */
            if ((bit == 0 && cfg->client_cert_headers) ||
                (bit && cfg->client_cert_header_set && !cfg->client_cert_headers)) {
                snprintf(err, errlen, "--client-cert-header none cannot be combined with "
                                      "rfc9440 or xfcc");
                return MTLS_CONFIG_ERROR;
            }
            cfg->client_cert_headers |= bit;
            cfg->client_cert_header_set = true;
            break;
        }
        case OPT_STRIP_HEADER:
            if (!optarg[0] || optarg[strspn(optarg, "abcdefghijklmnopqrstuvwxyz"
                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                                    "!#$%&'*+-.^_`|~")]) {
                snprintf(err, errlen, "--strip-header: '%s' is not a header name", optarg);
                return MTLS_CONFIG_ERROR;
            }
            if (add_list("strip-header", cfg->strip_headers, &cfg->n_strip_headers, optarg, err,
                         errlen) < 0)
                return MTLS_CONFIG_ERROR;
            break;
        case OPT_BUILTIN_PREFIX: {
            size_t n = strlen(optarg);
            if (optarg[0] != '/' || n < 2 || optarg[n - 1] == '/' || n > 200 ||
                strpbrk(optarg, "?#% ")) {
                snprintf(err, errlen,
                         "--builtin-prefix: '%s' must be a path like /.mtlsd (starting with /, "
                         "not ending with /)",
                         optarg);
                return MTLS_CONFIG_ERROR;
            }
            cfg->builtin_prefix = optarg;
            break;
        }
        case 'h':
            mtls_config_usage(out);
            return MTLS_CONFIG_EXIT;
        case 'V':
            return MTLS_CONFIG_VERSION;
        case ':':
            snprintf(err, errlen, "%s needs a value (see mtlsd --help)", argv[optind - 1]);
            return MTLS_CONFIG_ERROR;
        default:
            snprintf(err, errlen, "unknown option '%s' (see mtlsd --help)", argv[optind - 1]);
            return MTLS_CONFIG_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see mtlsd --help)", argv[optind]);
        return MTLS_CONFIG_ERROR;
    }
    if (!cfg->cert_file || !cfg->key_file || !cfg->client_ca_file) {
        snprintf(err, errlen, "--cert, --key and --client-ca are required (missing: %s%s%s)",
                 cfg->cert_file ? "" : "--cert ", cfg->key_file ? "" : "--key ",
                 cfg->client_ca_file ? "" : "--client-ca");
        return MTLS_CONFIG_ERROR;
    }
    if (cfg->ticket_key_file && cfg->ticket_rotate_set) {
        snprintf(err, errlen,
                 "--ticket-rotate applies to generated keys only: with --ticket-key-file, "
                 "rotate by rewriting the file and sending SIGHUP");
        return MTLS_CONFIG_ERROR;
    }
    if (cfg->builtin_prefix && !cfg->upstream) {
        snprintf(err, errlen, "--builtin-prefix applies with --upstream only (without it the "
                              "built-in routes are served at /)");
        return MTLS_CONFIG_ERROR;
    }
    if (cfg->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n > 0 ? (unsigned)n : 1;
    }
    return MTLS_CONFIG_OK;
}

int mtls_config_parse_upstream(struct mtls_config *cfg, const char *s, char *err, size_t errlen)
{
    const char *hp, *colon, *end;
    size_t hn;
    char *e;
    unsigned long port;

    if (strncmp(s, "unix:", 5) == 0) {
        /* sockaddr_un's path holds 107 bytes and a NUL. */
        if (s[5] != '/' || strlen(s + 5) > 107) {
            snprintf(err, errlen, "--upstream: '%s' must be unix:/absolute/path (at most 107 "
                                  "bytes)", s);
            return -1;
        }
        cfg->upstream = s;
        cfg->upstream_unix = s + 5;
        return 0;
    }
    if (strncmp(s, "http://", 7) != 0)
        goto bad;
    hp = s + 7;
    end = hp + strcspn(hp, "/");
    if (*end && strcmp(end, "/") != 0) {
        snprintf(err, errlen, "--upstream: '%s': a path prefix is not supported (the "
                              "request target is forwarded as received)", s);
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
    if (hn == 0 || hn >= sizeof(cfg->upstream_host))
        goto bad;
    errno = 0;
    port = strtoul(colon + 1, &e, 10);
    if (errno || e != end || e == colon + 1 || port == 0 || port > 65535)
        goto bad;
    memcpy(cfg->upstream_host, hp, hn);
    cfg->upstream_host[hn] = '\0';
    snprintf(cfg->upstream_port, sizeof(cfg->upstream_port), "%lu", port);
    cfg->upstream = s;
    cfg->upstream_unix = NULL;
    return 0;
bad:
    snprintf(err, errlen,
             "--upstream: '%s' must be http://HOST:PORT (HOST an IPv4 address, [IPv6 "
             "address] or a name) or unix:/path/to.sock",
             s);
    return -1;
}
