/* keysign.c without a handshake: every algorithm's signature verifies with
 * libcrypto under the key given (PKCS#1 and PKCS#8 DER), never under
 * another; a thread switching between keys (a reload) always signs with the
 * one asked for; bad keys, an ECDSA key, a wrong digest length, a short
 * output buffer and an unknown algorithm fail, each cause logged once; the
 * start-up check tells RSA from ECDSA and refuses what it cannot use
 * (without prompting for a passphrase); two threads sign at once. */
#include "mtlsd/keysign.h"
#include "check.h"

#ifdef MTLSD_HAVE_LIBCRYPTO
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct key {
    EVP_PKEY *pkey;
    uint8_t *der, *p8;   /* PKCS#1 and PKCS#8 DER */
    int der_len, p8_len;
};

static void key_make(struct key *k, const char *type)
{
    PKCS8_PRIV_KEY_INFO *info;

    k->pkey = strcmp(type, "RSA") == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    k->der = NULL;
    k->der_len = i2d_PrivateKey(k->pkey, &k->der);
    info = EVP_PKEY2PKCS8(k->pkey);
    k->p8 = NULL;
    k->p8_len = i2d_PKCS8_PRIV_KEY_INFO(info, &k->p8);
    PKCS8_PRIV_KEY_INFO_free(info);
}

static const EVP_MD *md_of(int alg)
{
    return alg == MTLS_KEYSIGN_PSS_SHA256   ? EVP_sha256()
           : alg == MTLS_KEYSIGN_PSS_SHA384 ? EVP_sha384()
           : alg == MTLS_KEYSIGN_PSS_SHA512 ? EVP_sha512()
                                            : NULL;
}

/* The input wolfSSL would pass: a digest, or a SHA-256 DigestInfo. */
static size_t input_for(int alg, uint8_t *in)
{
    static const uint8_t prefix[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                       0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    if (alg == MTLS_KEYSIGN_PKCS1) {
        memcpy(in, prefix, sizeof(prefix));
        memset(in + sizeof(prefix), 0x5a, 32);
        return sizeof(prefix) + 32;
    }
    memset(in, 0x5a, 64);
    return (size_t)EVP_MD_get_size(md_of(alg));
}

static bool verifies(EVP_PKEY *pkey, int alg, const uint8_t *in, size_t in_len, const uint8_t *sig,
                     size_t sig_len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = c && EVP_PKEY_verify_init(c) == 1;

    if (ok && alg == MTLS_KEYSIGN_PKCS1)
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1;
    else if (ok)
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c, md_of(alg)) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(c, md_of(alg)) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok && EVP_PKEY_verify(c, sig, sig_len, in, in_len) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* Signs with `signer`'s DER and says whether it verifies under `check`. */
static bool sign_check(const uint8_t *der, int der_len, EVP_PKEY *check, int alg)
{
    uint8_t in[64], sig[512];
    size_t in_len = input_for(alg, in), n = sizeof(sig);

    if (mtls_keysign_rsa(alg, der, (size_t)der_len, in, in_len, sig, &n) < 0 || n != 256)
        return false;
    return verifies(check, alg, in, in_len, sig, n);
}

static struct key ka, kb, kc, kec;

static void *thread_main(void *arg)
{
    struct key *k = arg;
    bool ok = true;

    for (int i = 0; i < 20; i++)
        ok &= sign_check(k->der, k->der_len, k->pkey, i % MTLS_KEYSIGN_N);
    return ok ? arg : NULL;
}

static char *pem_of(EVP_PKEY *pkey, const EVP_CIPHER *enc, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *copy;

    PEM_write_bio_PrivateKey(b, pkey, enc, enc ? (unsigned char *)"secret" : NULL, enc ? 6 : 0,
                             NULL, NULL);
    *len = (size_t)BIO_get_mem_data(b, &data);
    copy = malloc(*len);
    memcpy(copy, data, *len);
    BIO_free(b);
    return copy;
}

/* Runs `fn` with stderr sent to a file, kept in `captured`. */
static char captured[8192];

static void capture(void (*fn)(void))
{
    char path[] = "/tmp/unit_keysign.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    ssize_t got;

    fflush(stderr);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    got = read(fd, captured, sizeof(captured) - 1);
    captured[got > 0 ? got : 0] = '\0';
    close(fd);
    unlink(path);
}

static int count(const char *needle)
{
    int n = 0;

    for (char *p = captured; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void bad_keys(void)
{
    uint8_t junk[300], in[64], sig[512];
    size_t n;

    memset(junk, 0x30, sizeof(junk));
    for (int i = 0; i < 3; i++) {
        n = sizeof(sig);
        CHECK(mtls_keysign_rsa(MTLS_KEYSIGN_PSS_SHA256, junk, sizeof(junk), in, 32, sig, &n) < 0);
        n = sizeof(sig);
        CHECK(mtls_keysign_rsa(MTLS_KEYSIGN_PSS_SHA256, kec.der, (size_t)kec.der_len, in, 32, sig,
                               &n) < 0);
    }
}

static void bad_inputs(void)
{
    uint8_t in[64] = {0}, sig[512];
    size_t n;

    for (int i = 0; i < 3; i++) {
        n = sizeof(sig); /* SHA-256 PSS with a 20-byte digest */
        CHECK(mtls_keysign_rsa(MTLS_KEYSIGN_PSS_SHA256, ka.der, (size_t)ka.der_len, in, 20, sig,
                               &n) < 0);
        n = 100; /* no room for 256 bytes */
        CHECK(mtls_keysign_rsa(MTLS_KEYSIGN_PSS_SHA384, ka.der, (size_t)ka.der_len, in, 48, sig,
                               &n) < 0);
        n = sizeof(sig);
        CHECK(mtls_keysign_rsa(MTLS_KEYSIGN_N, ka.der, (size_t)ka.der_len, in, 32, sig, &n) < 0);
    }
}

int main(void)
{
    char err[300];
    const char *why = NULL;
    unsigned bits = 1;
    size_t len;
    char *pem;
    pthread_t th[2];
    void *res[2];

    CHECK(mtls_keysign_built());
    CHECK(mtls_keysign_init(err, sizeof(err)) == 0);
    if (!mtls_keysign_cpu_fast(&why))
        CHECK(why != NULL && why[0] != '\0');
    key_make(&ka, "RSA");
    key_make(&kb, "RSA");
    key_make(&kc, "RSA");
    key_make(&kec, "EC");

    /* every algorithm, both encodings; never under another key */
    for (int alg = 0; alg < MTLS_KEYSIGN_N; alg++) {
        CHECK(sign_check(ka.der, ka.der_len, ka.pkey, alg));
        CHECK(sign_check(ka.p8, ka.p8_len, ka.pkey, alg));
        CHECK(!sign_check(ka.der, ka.der_len, kb.pkey, alg));
    }
    /* a thread moving between keys signs with the one asked for, also once
     * a third key has pushed the first out of its two slots */
    struct key *order[] = {&kb, &ka, &kb, &kc, &ka, &kb, &kc, &kc, &ka};
    for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        CHECK(sign_check(order[i]->der, order[i]->der_len, order[i]->pkey,
                         (int)(i % MTLS_KEYSIGN_N)));

    /* refusals, each cause logged once however often it happens */
    capture(bad_keys);
    CHECK(count("cannot read the key") == 1);
    CHECK(count("is not an RSA key") == 1);
    capture(bad_inputs);
    CHECK(count("signing failed") == 1);
    CHECK(count("unknown signature algorithm") == 1);
    capture(bad_inputs);
    CHECK(count("--key-signer") == 0); /* logged once already */
    CHECK(sign_check(ka.der, ka.der_len, ka.pkey, MTLS_KEYSIGN_PSS_SHA256)); /* still signs */

    /* the start-up check */
    pem = pem_of(ka.pkey, NULL, &len);
    CHECK(mtls_keysign_check((uint8_t *)pem, len, &bits, err, sizeof(err)) == 0 && bits == 2048);
    free(pem);
    pem = pem_of(kec.pkey, NULL, &len);
    CHECK(mtls_keysign_check((uint8_t *)pem, len, &bits, err, sizeof(err)) == 0 && bits == 0);
    free(pem);
    pem = pem_of(ka.pkey, EVP_aes_128_cbc(), &len);
    CHECK(mtls_keysign_check((uint8_t *)pem, len, &bits, err, sizeof(err)) < 0);
    free(pem);
    CHECK(mtls_keysign_check((const uint8_t *)"-----BEGIN PRIVATE KEY-----\nAAAA\n", 33, &bits,
                             err, sizeof(err)) < 0 &&
          strstr(err, "cannot read") != NULL);

    /* two threads at once, each with its own key */
    pthread_create(&th[0], NULL, thread_main, &ka);
    pthread_create(&th[1], NULL, thread_main, &kb);
    pthread_join(th[0], &res[0]);
    pthread_join(th[1], &res[1]);
    CHECK(res[0] == &ka && res[1] == &kb);

    /* shutdown frees every thread's keys; signing afterwards starts over */
    mtls_keysign_shutdown();
    CHECK(sign_check(kb.der, kb.der_len, kb.pkey, MTLS_KEYSIGN_PKCS1));
    mtls_keysign_shutdown();

    struct key *all[] = {&ka, &kb, &kc, &kec};
    for (int i = 0; i < 4; i++) {
        EVP_PKEY_free(all[i]->pkey);
        OPENSSL_clear_free(all[i]->der, (size_t)all[i]->der_len);
        OPENSSL_clear_free(all[i]->p8, (size_t)all[i]->p8_len);
    }
    return check_report();
}

#else

int main(void)
{
    CHECK(!mtls_keysign_built());
    return check_report();
}

#endif
