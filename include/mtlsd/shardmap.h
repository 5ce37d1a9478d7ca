/* A bounded hash table shared by threads (src/shardmap.c): a fixed total
 * capacity split over up to `max_shards` shards, each with its own mutex,
 * hash buckets and LRU order. Used by the verified-chain cache (vcache.c) and
 * the TLS 1.2 session-ID cache (sessions.c), which keep only their policy:
 * what a value is, when it is stale, what to count.
 *
 * Keys are up to MTLS_SHARDMAP_KEY_MAX bytes with a hash the caller supplies
 * (a digest's first bytes, or mtls_shardmap_hash() of the key); equal hashes
 * are told apart by comparing the keys. Values are fixed-size records copied
 * into preallocated nodes: no call allocates after create. */
#ifndef MTLSD_SHARDMAP_H
#define MTLSD_SHARDMAP_H

#include <stddef.h>
#include <stdint.h>

#define MTLS_SHARDMAP_KEY_MAX 32

struct mtls_shardmap;

/* What a visitor tells the map to do with the entry it was shown. */
enum mtls_shardmap_visit {
    MTLS_SHARDMAP_KEEP, /* a hit: the entry becomes the most recent */
    MTLS_SHARDMAP_DROP, /* stale: removed (and dropped) now */
};

/* Called under the shard lock with the stored value: check it, copy out or
 * take a reference. It must not call into the map. */
typedef enum mtls_shardmap_visit (*mtls_shardmap_visit_fn)(void *value, void *ctx);
/* Releases what a value owns (a reference, a secret) when the entry is
 * evicted, replaced, removed, dropped or destroyed; under the shard lock. */
typedef void (*mtls_shardmap_drop_fn)(void *value);

struct mtls_shardmap_stats {
    uint64_t entries, capacity; /* now, and the bound */
    uint64_t hits, misses, dropped, inserts, replaced, evictions;
};

/* capacity >= 1 entries in min(capacity, max_shards) shards whose capacities
 * add up to exactly `capacity`; NULL when out of memory. */
struct mtls_shardmap *mtls_shardmap_create(unsigned capacity, unsigned max_shards,
                                           size_t value_size, mtls_shardmap_drop_fn on_drop);
/* Drops every value and frees the map (NULL: nothing). */
void mtls_shardmap_destroy(struct mtls_shardmap *m);

/* FNV-1a, for byte keys that are not already uniform. */
uint64_t mtls_shardmap_hash(const void *key, size_t len);

/* Looks `key` up and, when present, shows its value to `visit`.
 * Returns 1 when found and kept, 0 when absent, -1 when found and dropped. */
int mtls_shardmap_get(struct mtls_shardmap *m, uint64_t hash, const void *key, size_t klen,
                      mtls_shardmap_visit_fn visit, void *ctx);
/* Inserts a copy of `value` (value_size bytes) under `key`, replacing an entry
 * with the same key and evicting the shard's least recent ones past its
 * capacity. The map owns the value from now on, whatever happens (a key
 * longer than MTLS_SHARDMAP_KEY_MAX is dropped at once). Returns the number
 * of entries evicted. */
unsigned mtls_shardmap_put(struct mtls_shardmap *m, uint64_t hash, const void *key, size_t klen,
                           const void *value);
/* Removes and drops the entry; 1 when there was one. */
int mtls_shardmap_remove(struct mtls_shardmap *m, uint64_t hash, const void *key, size_t klen);
/* Sums the shards' counters (each shard read under its lock). */
void mtls_shardmap_stats(struct mtls_shardmap *m, struct mtls_shardmap_stats *st);

#endif
