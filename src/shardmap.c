/* shardmap.c: the bounded, sharded, locked hash table behind the
 * verified-chain cache and the TLS 1.2 session-ID cache.
 *
 * The hash picks a shard, and an operation locks only that shard's mutex for
 * a bucket walk and a list splice. A global lock would serialize every
 * worker's handshakes; per-worker tables would verify (or resume) each client
 * once per worker; read-copy-update would need deferred reclamation, and the
 * users' values are refcounted or copied out under the lock anyway, so an
 * uncontended mutex per operation (64 shards) is the simpler bound.
 *
 * Each shard owns exactly its share of the capacity as one array of nodes,
 * handed out in order and recycled through a free list: inserts and lookups
 * never allocate, and an array that is never filled is never touched (calloc
 * of a large array maps zero pages lazily). A full shard evicts its least
 * recently used entry. */
#include "mtlsd/shardmap.h"
#include "mtlsd/list.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *hnext;      /* hash chain, or the free list */
    struct mtls_link lru;    /* head of the shard's list: most recent */
    uint64_t hash;
    uint8_t klen;
    uint8_t key[MTLS_SHARDMAP_KEY_MAX];
    alignas(max_align_t) unsigned char value[];
};

struct shard {
    pthread_mutex_t lock;
    struct node **buckets;
    unsigned mask;
    unsigned count, cap;
    unsigned used;           /* nodes of `pool` handed out so far */
    struct node *free;
    unsigned char *pool;     /* cap nodes of the map's stride */
    struct mtls_list lru;
    uint64_t hits, misses, dropped, inserts, replaced, evictions;
} __attribute__((aligned(64))); /* no false sharing between shards' locks */

struct mtls_shardmap {
    struct shard *shards;
    unsigned nshards;
    size_t stride, value_size;
    mtls_shardmap_drop_fn on_drop;
};

uint64_t mtls_shardmap_hash(const void *key, size_t len)
{
    /* FNV-1a: session IDs are random when we issued them; a client sending
     * chosen IDs can only make its own lookups miss, it cannot insert, so a
     * keyed hash buys nothing here. */
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    /* FNV's high bits barely depend on the last bytes (keys "k1".."k20000"
     * left 42 of 64 shards empty): mix them down (MurmurHash3's fmix64). */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

struct mtls_shardmap *mtls_shardmap_create(unsigned capacity, unsigned max_shards,
                                           size_t value_size, mtls_shardmap_drop_fn on_drop)
{
    struct mtls_shardmap *m;
    unsigned nb;

    if (capacity == 0 || max_shards == 0)
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nshards = capacity < max_shards ? capacity : max_shards;
    m->value_size = value_size;
    m->stride = (sizeof(struct node) + value_size + alignof(max_align_t) - 1) &
                ~(alignof(max_align_t) - 1);
    m->on_drop = on_drop;
    m->shards = aligned_alloc(64, sizeof(struct shard) * m->nshards);
    if (!m->shards) {
        free(m);
        return NULL;
    }
    memset(m->shards, 0, sizeof(struct shard) * m->nshards);
    for (unsigned i = 0; i < m->nshards; i++)
        pthread_mutex_init(&m->shards[i].lock, NULL); /* before destroy can run */
    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *s = &m->shards[i];

        /* The shards' capacities add up to exactly `capacity`. */
        s->cap = capacity / m->nshards + (i < capacity % m->nshards ? 1 : 0);
        for (nb = 1; nb < s->cap * 2; nb <<= 1)
            ; /* load factor at most 1/2 */
        s->mask = nb - 1;
        s->buckets = calloc(nb, sizeof(*s->buckets));
        s->pool = calloc(s->cap, m->stride);
        if (!s->buckets || !s->pool) {
            mtls_shardmap_destroy(m);
            return NULL;
        }
    }
    return m;
}

static struct shard *shard_of(struct mtls_shardmap *m, uint64_t hash)
{
    /* The high half picks the shard, the low half the bucket. */
    return &m->shards[(uint32_t)(hash >> 32) % m->nshards];
}

static struct node **find(struct shard *s, uint64_t hash, const void *key, size_t klen)
{
    struct node **pp = &s->buckets[hash & s->mask];

    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->hash == hash && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            break;
    return pp;
}

/* Unlinks *pp from its bucket and the LRU list, drops its value, frees it. */
static void unlink_node(struct mtls_shardmap *m, struct shard *s, struct node **pp)
{
    struct node *n = *pp;

    *pp = n->hnext;
    mtls_list_unlink(&s->lru, &n->lru);
    s->count--;
    m->on_drop(n->value);
    n->hnext = s->free;
    s->free = n;
}

static void evict_lru(struct mtls_shardmap *m, struct shard *s)
{
    struct node *n = mtls_container_of(s->lru.tail, struct node, lru);
    struct node **pp = &s->buckets[n->hash & s->mask];

    while (*pp != n)
        pp = &(*pp)->hnext;
    unlink_node(m, s, pp);
}

int mtls_shardmap_get(struct mtls_shardmap *m, uint64_t hash, const void *key, size_t klen,
                      mtls_shardmap_visit_fn visit, void *ctx)
{
    struct shard *s = shard_of(m, hash);
    struct node **pp;
    int ret = 0;

    pthread_mutex_lock(&s->lock);
    pp = find(s, hash, key, klen);
    if (!*pp) {
        s->misses++;
    } else if (visit && visit((*pp)->value, ctx) == MTLS_SHARDMAP_DROP) {
        unlink_node(m, s, pp);
        s->dropped++;
        ret = -1;
    } else {
        struct node *n = *pp;

        if (s->lru.head != &n->lru) {
            mtls_list_unlink(&s->lru, &n->lru);
            mtls_list_push_front(&s->lru, &n->lru);
        }
        s->hits++;
        ret = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

unsigned mtls_shardmap_put(struct mtls_shardmap *m, uint64_t hash, const void *key, size_t klen,
                           const void *value)
{
    struct shard *s = shard_of(m, hash);
    struct node **pp, *n;
    unsigned evicted = 0;

    if (klen > MTLS_SHARDMAP_KEY_MAX) {
        m->on_drop((void *)value); /* owned by the map, which cannot keep it */
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    pp = find(s, hash, key, klen);
    if (*pp) {
        /* Two workers verified (or created) the same key at once. */
        n = *pp;
        m->on_drop(n->value);
        memcpy(n->value, value, m->value_size);
        mtls_list_unlink(&s->lru, &n->lru);
        mtls_list_push_front(&s->lru, &n->lru);
        s->replaced++;
        goto out;
    }
    while (s->count >= s->cap) {
        evict_lru(m, s);
        evicted++;
    }
    if (s->free) {
        n = s->free;
        s->free = n->hnext;
    } else {
        n = (struct node *)(void *)(s->pool + (size_t)s->used++ * m->stride);
    }
    n->hash = hash;
    n->klen = (uint8_t)klen;
    memcpy(n->key, key, klen);
    memcpy(n->value, value, m->value_size);
    n->hnext = s->buckets[hash & s->mask];
    s->buckets[hash & s->mask] = n;
    mtls_list_push_front(&s->lru, &n->lru);
    s->count++;
    s->inserts++;
    s->evictions += evicted;
out:
    pthread_mutex_unlock(&s->lock);
    return evicted;
}

int mtls_shardmap_remove(struct mtls_shardmap *m, uint64_t hash, const void *key, size_t klen)
{
    struct shard *s = shard_of(m, hash);
    struct node **pp;
    int ret = 0;

    pthread_mutex_lock(&s->lock);
    pp = find(s, hash, key, klen);
    if (*pp) {
        unlink_node(m, s, pp);
        ret = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

void mtls_shardmap_stats(struct mtls_shardmap *m, struct mtls_shardmap_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *s = &m->shards[i];

        pthread_mutex_lock(&s->lock);
        st->entries += s->count;
        st->capacity += s->cap;
        st->hits += s->hits;
        st->misses += s->misses;
        st->dropped += s->dropped;
        st->inserts += s->inserts;
        st->replaced += s->replaced;
        st->evictions += s->evictions;
        pthread_mutex_unlock(&s->lock);
    }
}

void mtls_shardmap_destroy(struct mtls_shardmap *m)
{
    if (!m)
        return;
    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *s = &m->shards[i];

        while (s->lru.head)
            evict_lru(m, s);
        free(s->buckets);
        free(s->pool);
        pthread_mutex_destroy(&s->lock);
    }
    free(m->shards);
    free(m);
}
