/* vcache.c: the verified-chain table, a user of the shared bounded table
 * (shardmap.c: 64 locked shards, LRU eviction, a fixed capacity). This file
 * keeps the policy: a value is the identity decided when the chain was
 * verified, the trust generation it was verified under and when it stops
 * being usable (the chain's validity, which verify.c already clamped to the
 * CRLs' nextUpdate, or the TTL, whichever comes first). Per-worker tables
 * were the alternative; they would verify each client once per worker and
 * make an eviction or a trust change per-worker state. */
#include "mtlsd/vcache.h"
#include "mtlsd/shardmap.h"

#include <string.h>

#define SHARDS 64
_Static_assert(MTLS_SHARDMAP_KEY_MAX >= 32, "a SHA-256 is the table's key");

struct value {
    uint64_t generation;
    time_t expires;              /* min(valid_until, inserted + ttl) */
    struct mtls_identity *id;    /* one reference, held by the table */
};

struct lookup {
    uint64_t generation;
    time_t now;
    struct mtls_identity *id;
};

static struct mtls_shardmap *table;
static unsigned ttl;

static void on_drop(void *value)
{
    mtls_identity_free(((struct value *)value)->id);
}

int mtls_vcache_init(unsigned capacity, unsigned ttl_s)
{
    ttl = ttl_s;
    if (capacity == 0)
        return 0;
    table = mtls_shardmap_create(capacity, SHARDS, sizeof(struct value), on_drop);
    return table ? 0 : -1;
}

static uint64_t hash_of(const uint8_t key[32])
{
    uint64_t h;

    memcpy(&h, key, sizeof(h)); /* SHA-256 output: any bytes are uniform */
    return h;
}

static enum mtls_shardmap_visit on_visit(void *value, void *ctx)
{
    struct value *v = value;
    struct lookup *l = ctx;

    /* Never used past the chain's validity, the TTL, or a trust change. */
    if (v->generation != l->generation || l->now >= v->expires)
        return MTLS_SHARDMAP_DROP;
    l->id = mtls_identity_ref(v->id);
    return MTLS_SHARDMAP_KEEP;
}

struct mtls_identity *mtls_vcache_get(const uint8_t key[32], uint64_t generation, time_t now)
{
    struct lookup l = {generation, now, NULL};

    if (!table)
        return NULL;
    mtls_shardmap_get(table, hash_of(key), key, 32, on_visit, &l);
    return l.id;
}

unsigned mtls_vcache_put(const uint8_t key[32], uint64_t generation, time_t now,
                         struct mtls_identity *id)
{
    struct value v;

    if (!table)
        return 0;
    v.generation = generation;
    v.expires = now + (time_t)ttl;
    if (id->valid_until < v.expires)
        v.expires = id->valid_until;
    v.id = mtls_identity_ref(id);
    return mtls_shardmap_put(table, hash_of(key), key, 32, &v);
}

void mtls_vcache_destroy(void)
{
    mtls_shardmap_destroy(table);
    table = NULL;
}
