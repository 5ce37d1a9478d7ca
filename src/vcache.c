/* vcache.c: the verified-chain table.
 *
 * Sharded LRU hash tables: a chain's key picks the shard, and a hit locks
 * only that shard's mutex, for a lookup and a list splice. Per-worker tables
 * were the alternative; they would verify each client once per worker and
 * make an eviction or a trust change per-worker state. Read-copy-update would
 * make hits lock-free but needs deferred reclamation of identities that
 * connections still hold; the refcount already gives that, so the remaining
 * cost of a mutex per hit (tens of ns, uncontended with 64 shards) is not
 * worth the complexity. */
#include "mtlsd/vcache.h"
#include "mtlsd/list.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64

struct entry {
    uint8_t key[32];
    uint64_t generation;
    time_t expires;              /* min(chain's notAfter, inserted + ttl) */
    struct mtls_identity *id;
    struct entry *hnext;         /* hash chain */
    struct mtls_link lru;        /* head of the shard's list: most recent */
};

struct shard {
    pthread_mutex_t lock;
    struct entry **buckets;
    unsigned mask;
    unsigned count, cap;
    struct mtls_list lru;
} __attribute__((aligned(64)));

static struct shard *shards;
static unsigned nshards;
static unsigned ttl;

int mtls_vcache_init(unsigned capacity, unsigned ttl_s)
{
    unsigned per, nb;

    ttl = ttl_s;
    if (capacity == 0)
        return 0;
    /* The shards' capacities add up to exactly --verify-cache. */
    nshards = capacity < SHARDS ? capacity : SHARDS;
    shards = aligned_alloc(64, sizeof(struct shard) * nshards);
    if (!shards)
        return -1;
    for (unsigned i = 0; i < nshards; i++) {
        struct shard *s = &shards[i];
        per = capacity / nshards + (i < capacity % nshards ? 1 : 0);
        for (nb = 1; nb < per * 2; nb <<= 1)
            ;
        memset(s, 0, sizeof(*s));
        pthread_mutex_init(&s->lock, NULL);
        s->buckets = calloc(nb, sizeof(*s->buckets));
        if (!s->buckets)
            return -1;
        s->mask = nb - 1;
        s->cap = per;
    }
    return 0;
}

static uint32_t bucket_of(const uint8_t key[32])
{
    uint32_t v;
    memcpy(&v, key + 4, sizeof(v)); /* SHA-256 output: any bytes are uniform */
    return v;
}

static void remove_entry(struct shard *s, struct entry *e)
{
    struct entry **pp = &s->buckets[bucket_of(e->key) & s->mask];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    mtls_list_unlink(&s->lru, &e->lru);
    s->count--;
    mtls_identity_free(e->id);
    free(e);
}

struct mtls_identity *mtls_vcache_get(const uint8_t key[32], uint64_t generation, time_t now)
{
    struct shard *s;
    struct entry *e;
    struct mtls_identity *id = NULL;

    if (!shards)
        return NULL;
    s = &shards[key[0] % nshards];
    pthread_mutex_lock(&s->lock);
    for (e = s->buckets[bucket_of(key) & s->mask]; e; e = e->hnext)
        if (memcmp(e->key, key, 32) == 0)
            break;
    if (e) {
        /* Never used past the chain's validity, the TTL, or a trust change. */
        if (e->generation != generation || now >= e->expires) {
            remove_entry(s, e);
        } else {
            id = mtls_identity_ref(e->id);
            mtls_list_unlink(&s->lru, &e->lru);
            mtls_list_push_front(&s->lru, &e->lru);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return id;
}

unsigned mtls_vcache_put(const uint8_t key[32], uint64_t generation, time_t now,
                         struct mtls_identity *id)
{
    struct shard *s;
    struct entry *e, *old;
    unsigned evicted = 0;

    if (!shards)
        return 0;
    e = calloc(1, sizeof(*e));
    if (!e)
        return 0;
    memcpy(e->key, key, 32);
    e->generation = generation;
    e->expires = now + (time_t)ttl;
    if (id->valid_until < e->expires)
        e->expires = id->valid_until;
    e->id = mtls_identity_ref(id);
    s = &shards[key[0] % nshards];
    pthread_mutex_lock(&s->lock);
    for (old = s->buckets[bucket_of(key) & s->mask]; old; old = old->hnext)
        if (memcmp(old->key, key, 32) == 0)
            break;
    if (old) /* two workers verified the same new chain at once */
        remove_entry(s, old);
    while (s->count >= s->cap && s->lru.tail) {
        remove_entry(s, mtls_container_of(s->lru.tail, struct entry, lru));
        evicted++;
    }
    uint32_t b = bucket_of(key) & s->mask;
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    mtls_list_push_front(&s->lru, &e->lru);
    s->count++;
    pthread_mutex_unlock(&s->lock);
    return evicted;
}

void mtls_vcache_destroy(void)
{
    if (!shards)
        return;
    for (unsigned i = 0; i < nshards; i++) {
        struct shard *s = &shards[i];
        while (s->lru.head)
            remove_entry(s, mtls_container_of(s->lru.head, struct entry, lru));
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(shards);
    shards = NULL;
}
