/* The cached verified-chain table: SHA-256 of a presented chain -> the
 * identity decided when it was verified. Shared by all workers; sharded so
 * that the hit path takes one uncontended per-shard lock, never a global one. */
#ifndef MTLSD_VCACHE_H
#define MTLSD_VCACHE_H

#include "mtlsd/identity.h"

#include <stdint.h>
#include <time.h>

/* capacity 0 disables the cache. */
int mtls_vcache_init(unsigned capacity, unsigned ttl_s);
void mtls_vcache_destroy(void);
/* A referenced identity when `key` was verified under `generation` and has
 * not expired at `now`; NULL otherwise (a stale entry is dropped). */
struct mtls_identity *mtls_vcache_get(const uint8_t key[32], uint64_t generation, time_t now);
/* Inserts (taking a reference); returns how many entries were evicted. */
unsigned mtls_vcache_put(const uint8_t key[32], uint64_t generation, time_t now,
                         struct mtls_identity *id);

#endif
