/* Authorization (authz.c): --allow matching on hand-built identities and
 * --public-path prefixes. Matching must be exact and byte-for-byte: no case
 * folding, no substrings, the trailing '*' of a uri: spec the only wildcard,
 * a SAN of one type never matching a spec of another, and an identity past
 * its valid_until never allowed. */
#include "check.h"
#include "mtlsd/authz.h"
#include "mtlsd/config.h"
#include "mtlsd/identity.h"

#include <string.h>

static struct mtls_config cfg;
static char err[512];

/* init with the NULL-terminated list of --allow specs; returns init's result */
static int rules(const char *first, ...)
{
    __builtin_va_list ap;
    const char *s = first;

    mtls_authz_free();
    mtls_config_defaults(&cfg);
    cfg.authz.n_allow = 0;
    __builtin_va_start(ap, first);
    while (s) {
        cfg.authz.allow[cfg.authz.n_allow++] = s;
        s = __builtin_va_arg(ap, const char *);
    }
    __builtin_va_end(ap);
    err[0] = '\0';
    return mtls_authz_init(&cfg.authz, err, sizeof(err));
}

static const struct mtls_san sans[] = {
    {MTLS_SAN_URI, "spiffe://mtlsd.test/client"},
    {MTLS_SAN_DNS, "client.mtlsd.test"},
    {MTLS_SAN_EMAIL, "client@mtlsd.test"},
    {MTLS_SAN_IP, "127.0.0.1"},
    {MTLS_SAN_URI, "https://second.example/"},
};

/* sha256 = 00 01 02 ... 1f */
#define PIN_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define PIN_COLON                                                                       \
    "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:" \
    "1B:1C:1D:1E:1F"

static struct mtls_identity make_id(time_t valid_until)
{
    struct mtls_identity id;

    memset(&id, 0, sizeof(id));
    id.subject = "/O=mtlsd dev/OU=clients/CN=client";
    id.issuer = "/O=mtlsd dev/CN=mtlsd dev CA";
    id.serial_hex = "1234";
    id.cn = "client";
    id.ou = "clients";
    for (int i = 0; i < 32; i++)
        id.sha256[i] = (uint8_t)i;
    id.not_before = 1000;
    id.not_after = valid_until;
    id.valid_until = valid_until;
    id.refs = 1;
    id.n_san = sizeof(sans) / sizeof(sans[0]);
    id.san = sans;
    return id;
}

static bool allowed_by(const struct mtls_identity *id, const char *spec)
{
    if (rules(spec, NULL) != 0) {
        fprintf(stderr, "spec %s refused: %s\n", spec, err);
        return false;
    }
    return mtls_authz_allowed(id, 5000);
}

int main(void)
{
    struct mtls_identity id = make_id(10000), bare;

    /* No --allow: any verified identity that is still valid. */
    CHECK(rules(NULL) == 0);
    CHECK(mtls_authz_allowed(&id, 5000));
    CHECK(mtls_authz_allowed(&id, 10000)); /* the last second of validity */
    CHECK(!mtls_authz_allowed(&id, 10001)); /* expired while connected */
    CHECK(!mtls_authz_allowed(NULL, 5000)); /* no identity */

    /* Each kind, exact. */
    CHECK(allowed_by(&id, "cn:client"));
    CHECK(allowed_by(&id, "ou:clients"));
    CHECK(allowed_by(&id, "dns:client.mtlsd.test"));
    CHECK(allowed_by(&id, "uri:spiffe://mtlsd.test/client"));
    CHECK(allowed_by(&id, "uri:https://second.example/")); /* any URI SAN, not just the first */
    CHECK(allowed_by(&id, "email:client@mtlsd.test"));
    CHECK(allowed_by(&id, "sha256:" PIN_HEX));
    CHECK(allowed_by(&id, "sha256:" PIN_COLON)); /* openssl -fingerprint form, upper case */

    /* No case folding, no substrings, no prefixes without '*'. */
    CHECK(!allowed_by(&id, "cn:CLIENT"));
    CHECK(!allowed_by(&id, "cn:clien"));
    CHECK(!allowed_by(&id, "cn:lient"));
    CHECK(!allowed_by(&id, "cn:client2"));
    CHECK(!allowed_by(&id, "cn:client "));
    CHECK(!allowed_by(&id, "ou:client"));
    CHECK(!allowed_by(&id, "ou:Clients"));
    CHECK(!allowed_by(&id, "dns:CLIENT.mtlsd.test"));
    CHECK(!allowed_by(&id, "dns:mtlsd.test"));
    CHECK(!allowed_by(&id, "dns:*.mtlsd.test")); /* no DNS wildcards */
    CHECK(!allowed_by(&id, "uri:spiffe://mtlsd.test/clien"));
    CHECK(!allowed_by(&id, "uri:spiffe://mtlsd.test/client/"));
    CHECK(!allowed_by(&id, "uri:SPIFFE://mtlsd.test/client"));
    CHECK(!allowed_by(&id, "uri:spiffe://MTLSD.test/client"));
    CHECK(!allowed_by(&id, "email:CLIENT@mtlsd.test"));
    CHECK(!allowed_by(&id, "email:client@mtlsd.tes"));
    CHECK(!allowed_by(&id, "sha256:" "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));

    /* The uri: prefix form. */
    CHECK(allowed_by(&id, "uri:spiffe://mtlsd.test/*"));
    CHECK(allowed_by(&id, "uri:spiffe://mtlsd.test/cl*"));
    CHECK(allowed_by(&id, "uri:spiffe://mtlsd.test/client*"));
    CHECK(!allowed_by(&id, "uri:spiffe://mtlsd.test/client/*"));
    CHECK(!allowed_by(&id, "uri:spiffe://other.test/*"));
    CHECK(!allowed_by(&id, "uri:SPIFFE://mtlsd.test/*"));
    /* '*' is a wildcard only at the end of a uri: spec */
    CHECK(!allowed_by(&id, "cn:clien*"));
    CHECK(!allowed_by(&id, "dns:client.*"));

    /* A SAN of one type never matches a spec of another. */
    CHECK(!allowed_by(&id, "dns:spiffe://mtlsd.test/client"));
    CHECK(!allowed_by(&id, "uri:client.mtlsd.test"));
    CHECK(!allowed_by(&id, "email:client.mtlsd.test"));
    CHECK(!allowed_by(&id, "dns:127.0.0.1"));
    CHECK(!allowed_by(&id, "cn:spiffe://mtlsd.test/client"));

    /* Several rules: any one is enough; none: refused. */
    CHECK(rules("cn:nobody", "uri:spiffe://x/*", "ou:clients", NULL) == 0);
    CHECK(mtls_authz_allowed(&id, 5000));
    CHECK(rules("cn:nobody", "uri:spiffe://x/*", "email:a@b", NULL) == 0);
    CHECK(!mtls_authz_allowed(&id, 5000));

    /* A matching identity past its validity is still refused. */
    CHECK(rules("cn:client", NULL) == 0);
    CHECK(!mtls_authz_allowed(&id, 10001));
    CHECK(!mtls_authz_allowed(NULL, 5000));

    /* An identity without SANs, CN or OU matches no SAN, cn: or ou: rule. */
    bare = make_id(10000);
    bare.n_san = 0;
    bare.san = NULL;
    bare.cn = "";
    bare.ou = "";
    CHECK(!allowed_by(&bare, "uri:*")); /* prefix "" needs a URI SAN to exist */
    CHECK(allowed_by(&id, "uri:*"));
    CHECK(!allowed_by(&bare, "dns:client.mtlsd.test"));
    CHECK(!allowed_by(&bare, "email:client@mtlsd.test"));
    CHECK(allowed_by(&bare, "sha256:" PIN_HEX));

    /* Bad specs are refused at start, with the spec in the message. */
    CHECK(rules("foo:bar", NULL) != 0 && strstr(err, "foo:bar"));
    CHECK(rules("cn:", NULL) != 0 && strstr(err, "cn:"));
    CHECK(rules("uri:", NULL) != 0);
    CHECK(rules("CN:client", NULL) != 0); /* kinds are lower case */
    CHECK(rules("client", NULL) != 0);
    CHECK(rules("sha256:12", NULL) != 0 && strstr(err, "sha256:12"));
    CHECK(rules("sha256:" PIN_HEX "00", NULL) != 0); /* 33 bytes */
    CHECK(rules("sha256:" "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", NULL) != 0);
    CHECK(rules("cn:ok", "email:", NULL) != 0); /* any bad spec fails the set */

    /* --public-path: byte prefixes of the path. */
    mtls_authz_free();
    mtls_config_defaults(&cfg);
    cfg.authz.public_paths[0] = "/healthz";
    cfg.authz.public_paths[1] = "/pub/";
    cfg.authz.n_public_paths = 2;
    CHECK(mtls_authz_init(&cfg.authz, err, sizeof(err)) == 0);
    CHECK(mtls_authz_public("/healthz", 8));
    CHECK(mtls_authz_public("/pub/x", 6));
    CHECK(!mtls_authz_public("/health", 7));
    CHECK(!mtls_authz_public("/HEALTHZ", 8));
    CHECK(!mtls_authz_public("/pub", 4));
    CHECK(!mtls_authz_public("/", 1));
    CHECK(!mtls_authz_public("/whoami", 7));
    /* the length is the path's, not the string's: "/healthz" cut at 7 */
    CHECK(!mtls_authz_public("/healthz", 7));
    mtls_authz_free();
    return check_report();
}
