/* libwrk-mtls.so: an LD_PRELOAD shim that gives wrk a client certificate.
 *
 * Debian's wrk (OpenSSL) has no option for a client certificate, so it cannot
 * load a server that requires one. wrk makes one SSL_CTX at start-up
 * (SSL_CTX_new, then SSL_CTX_set_verify(NONE) and set_verify_depth(0)); this
 * shim wraps those three calls:
 *
 *   WRK_MTLS_CERT   PEM certificate (chain) to present          (required)
 *   WRK_MTLS_KEY    PEM private key of that certificate         (required)
 *   WRK_MTLS_CA     PEM CA file: verify the server's chain       (optional)
 *   WRK_MTLS_VERIFY_NAME  with WRK_MTLS_CA, also check this host name or IP
 *   WRK_MTLS_TLS    "1.2" or "1.3": pin the protocol version     (optional)
 *   WRK_MTLS_GROUPS OpenSSL groups list, e.g. "X25519:P-256" (optional; with
 *                   TLS 1.2 keep the curve of an ECDSA server certificate,
 *                   or the server finds no usable certificate)
 *
 * A setting that cannot be applied ends the process with a message: a
 * benchmark that silently ran without a client certificate would measure
 * 400 answers, not handshakes. Patching wrk instead was rejected: the point is
 * to run the wrk users already have. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef SSL_CTX *(*ctx_new_fn)(const SSL_METHOD *);
typedef void (*set_verify_fn)(SSL_CTX *, int, SSL_verify_cb);
typedef void (*set_depth_fn)(SSL_CTX *, int);

/* Depth wrk would leave (0 = leaf only) is too short for leaf + CA. */
#define WRK_MTLS_VERIFY_DEPTH 8

static void *next_sym(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "wrk-mtls: %s not found after the shim (is the program linked with libssl?)\n", name);
        exit(2);
    }
    return f;
}

static void fail(const char *what, const char *arg)
{
    fprintf(stderr, "wrk-mtls: %s %s\n", what, arg ? arg : "");
    ERR_print_errors_fp(stderr);
    exit(2);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *meth)
{
    ctx_new_fn real = (ctx_new_fn)next_sym("SSL_CTX_new");
    SSL_CTX *ctx = real(meth);
    if (!ctx)
        return NULL;

    const char *cert = env("WRK_MTLS_CERT"), *key = env("WRK_MTLS_KEY"), *ca = env("WRK_MTLS_CA");
    const char *name = env("WRK_MTLS_VERIFY_NAME"), *tls = env("WRK_MTLS_TLS"), *groups = env("WRK_MTLS_GROUPS");
    if (!cert || !key)
        fail("WRK_MTLS_CERT and WRK_MTLS_KEY must name the client certificate and key", NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        fail("cannot load the client certificate from", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        fail("cannot load the client key from", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        fail("the key does not match the certificate:", key);
    if (ca) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
            fail("cannot load CA certificates from", ca);
        set_verify_fn sv = (set_verify_fn)next_sym("SSL_CTX_set_verify");
        sv(ctx, SSL_VERIFY_PEER, NULL);
        if (name) {
            X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
            int ok = X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1 || X509_VERIFY_PARAM_set1_host(p, name, 0) == 1;
            if (!ok)
                fail("cannot set the name to verify:", name);
        }
    } else if (name) {
        fail("WRK_MTLS_VERIFY_NAME needs WRK_MTLS_CA", NULL);
    }
    if (tls) {
        int v = strcmp(tls, "1.3") == 0 ? TLS1_3_VERSION : strcmp(tls, "1.2") == 0 ? TLS1_2_VERSION : 0;
        if (!v)
            fail("WRK_MTLS_TLS must be 1.2 or 1.3, not", tls);
        if (SSL_CTX_set_min_proto_version(ctx, v) != 1 || SSL_CTX_set_max_proto_version(ctx, v) != 1)
            fail("cannot pin the TLS version", tls);
    }
    if (groups && SSL_CTX_set1_groups_list(ctx, groups) != 1)
        fail("OpenSSL rejected the groups list", groups);
    return ctx;
}

/* wrk turns verification off right after SSL_CTX_new: keep it on when a CA
 * was given, otherwise let wrk have its way. */
void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, SSL_verify_cb cb)
{
    set_verify_fn real = (set_verify_fn)next_sym("SSL_CTX_set_verify");
    if (env("WRK_MTLS_CA"))
        real(ctx, SSL_VERIFY_PEER, NULL);
    else
        real(ctx, mode, cb);
}

void SSL_CTX_set_verify_depth(SSL_CTX *ctx, int depth)
{
    set_depth_fn real = (set_depth_fn)next_sym("SSL_CTX_set_verify_depth");
    real(ctx, env("WRK_MTLS_CA") && depth < WRK_MTLS_VERIFY_DEPTH ? WRK_MTLS_VERIFY_DEPTH : depth);
}
