/* The shared bounded table (shardmap.c) behind the verified-chain and
 * session-ID caches: least-recently-used eviction order, the capacity bound
 * split exactly over shards, replacing, dropping from a visitor, removing,
 * keys whose hashes collide (and keys that are prefixes of each other), a key
 * too long to keep, and four threads using one map at once (values are
 * refcounted objects, so a use after drop shows under ASan, a lost drop as a
 * leak count). */
#include "check.h"
#include "mtlsd/shardmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct val {
    int n;
    int *obj; /* refcounted in the threaded test, NULL elsewhere */
};

static int drops, drop_log[64], n_log;

static void on_drop(void *v)
{
    struct val *x = v;

    drops++;
    if (n_log < 64)
        drop_log[n_log++] = x->n;
}

static enum mtls_shardmap_visit read_n(void *v, void *ctx)
{
    *(int *)ctx = ((struct val *)v)->n;
    return MTLS_SHARDMAP_KEEP;
}

static enum mtls_shardmap_visit drop_it(void *v, void *ctx)
{
    (void)v;
    (void)ctx;
    return MTLS_SHARDMAP_DROP;
}

/* key "k<i>" hashed by the map's FNV-1a */
static unsigned put_i(struct mtls_shardmap *m, int i)
{
    char k[16];
    struct val v = {i, NULL};
    int len = snprintf(k, sizeof(k), "k%d", i);

    return mtls_shardmap_put(m, mtls_shardmap_hash(k, (size_t)len), k, (size_t)len, &v);
}

/* the value stored under "k<i>", or -1 */
static int get_i(struct mtls_shardmap *m, int i)
{
    char k[16];
    int n = -1, len = snprintf(k, sizeof(k), "k%d", i);

    if (mtls_shardmap_get(m, mtls_shardmap_hash(k, (size_t)len), k, (size_t)len, read_n, &n) != 1)
        return -1;
    return n;
}

static void test_lru_order(void)
{
    struct mtls_shardmap *m = mtls_shardmap_create(3, 1, sizeof(struct val), on_drop);
    struct mtls_shardmap_stats st;

    CHECK(m != NULL);
    drops = n_log = 0;
    CHECK(put_i(m, 1) == 0 && put_i(m, 2) == 0 && put_i(m, 3) == 0);
    CHECK(get_i(m, 1) == 1);               /* 1 is now the most recent */
    CHECK(put_i(m, 4) == 1);               /* evicts 2, the least recent */
    CHECK(n_log == 1 && drop_log[0] == 2);
    CHECK(get_i(m, 2) == -1 && get_i(m, 3) == 3 && get_i(m, 1) == 1 && get_i(m, 4) == 4);
    CHECK(put_i(m, 5) == 1 && drop_log[1] == 3); /* 3 was touched first */
    CHECK(put_i(m, 6) == 1 && drop_log[2] == 1);
    CHECK(put_i(m, 7) == 1 && drop_log[3] == 4);
    mtls_shardmap_stats(m, &st);
    CHECK(st.entries == 3 && st.capacity == 3 && st.evictions == 4 && st.inserts == 7);

    /* Replacing: the old value is dropped, nothing evicted, the new one seen. */
    {
        struct val v = {70, NULL};

        CHECK(mtls_shardmap_put(m, mtls_shardmap_hash("k7", 2), "k7", 2, &v) == 0);
        CHECK(drops == 5 && drop_log[4] == 7 && get_i(m, 7) == 70);
    }
    /* A visitor that finds the entry stale drops it. */
    CHECK(mtls_shardmap_get(m, mtls_shardmap_hash("k5", 2), "k5", 2, drop_it, NULL) == -1);
    CHECK(drops == 6 && drop_log[5] == 5 && get_i(m, 5) == -1);
    CHECK(mtls_shardmap_get(m, mtls_shardmap_hash("k5", 2), "k5", 2, drop_it, NULL) == 0);
    /* Removing. */
    CHECK(mtls_shardmap_remove(m, mtls_shardmap_hash("k6", 2), "k6", 2) == 1);
    CHECK(mtls_shardmap_remove(m, mtls_shardmap_hash("k6", 2), "k6", 2) == 0);
    mtls_shardmap_stats(m, &st);
    CHECK(st.entries == 1 && st.replaced == 1 && st.dropped == 1);
    /* Freed nodes are reused: three more fit without evicting. */
    CHECK(put_i(m, 8) == 0 && put_i(m, 9) == 0 && put_i(m, 10) == 1);
    drops = 0;
    mtls_shardmap_destroy(m);
    CHECK(drops == 3);
}

static void test_capacity(void)
{
    struct mtls_shardmap_stats st;
    struct mtls_shardmap *m;
    unsigned ev = 0;

    CHECK(mtls_shardmap_create(0, 64, sizeof(struct val), on_drop) == NULL);
    /* 130 over 64 shards: the shards' capacities add up to exactly 130. */
    m = mtls_shardmap_create(130, 64, sizeof(struct val), on_drop);
    drops = n_log = 0;
    for (int i = 0; i < 20000; i++)
        ev += put_i(m, i);
    mtls_shardmap_stats(m, &st);
    CHECK(st.capacity == 130 && st.entries == 130);
    CHECK(ev == 20000 - 130 && st.evictions == ev && drops == (int)ev);
    /* The newest entries survive (each is the most recent of its shard). */
    CHECK(get_i(m, 19999) == 19999);
    drops = 0;
    mtls_shardmap_destroy(m);
    CHECK(drops == 130);

    /* Fewer entries than shards: one shard each. */
    m = mtls_shardmap_create(5, 64, sizeof(struct val), on_drop);
    for (int i = 0; i < 100; i++)
        put_i(m, i);
    mtls_shardmap_stats(m, &st);
    CHECK(st.capacity == 5 && st.entries <= 5);
    mtls_shardmap_destroy(m);
    mtls_shardmap_destroy(NULL);
}

static void test_collisions(void)
{
    /* 40 keys, one hash: all in one bucket chain, told apart by the bytes. */
    struct mtls_shardmap *m = mtls_shardmap_create(64, 1, sizeof(struct val), on_drop);
    char k[40];
    int n, ok = 1;

    drops = n_log = 0;
    memset(k, 'a', sizeof(k));
    for (int i = 0; i < 40; i++) {
        struct val v = {i, NULL};
        size_t len = i < 32 ? (size_t)i : (size_t)i - 31;

        CHECK(mtls_shardmap_put(m, 42, k, len, &v) == 0);
    }
    /* Keys 0..31 are "", "a", "aa", ...: prefixes of each other. 32..39 repeat
     * lengths 1..8 and so replace keys 1..8. */
    for (int i = 0; i < 32; i++) {
        n = -1;
        mtls_shardmap_get(m, 42, k, (size_t)i, read_n, &n);
        if (n != (i >= 1 && i <= 8 ? i + 31 : i))
            ok = 0;
    }
    CHECK(ok);
    CHECK(drops == 8);
    /* Same bytes, another hash: not the same key. */
    n = -1;
    CHECK(mtls_shardmap_get(m, 43, "aaa", 3, read_n, &n) == 0 && n == -1);
    /* Removing one of the chain leaves the others. */
    CHECK(mtls_shardmap_remove(m, 42, k, 11) == 1);
    n = -1;
    CHECK(mtls_shardmap_get(m, 42, k, 10, read_n, &n) == 1 && n == 10);
    CHECK(mtls_shardmap_get(m, 42, k, 12, read_n, &n) == 1 && n == 12);
    CHECK(mtls_shardmap_get(m, 42, k, 11, read_n, &n) == 0);
    /* A key longer than the map keeps is dropped at once, never stored. */
    {
        struct val v = {99, NULL};
        char big[MTLS_SHARDMAP_KEY_MAX + 1];

        memset(big, 'b', sizeof(big));
        drops = n_log = 0;
        CHECK(mtls_shardmap_put(m, 42, big, sizeof(big), &v) == 0);
        CHECK(drops == 1 && drop_log[0] == 99);
        CHECK(mtls_shardmap_get(m, 42, big, MTLS_SHARDMAP_KEY_MAX, read_n, &n) == 0);
    }
    mtls_shardmap_destroy(m);
}

/* ---- threads: refcounted values, as the chain cache's identities are ---- */

static int allocated, freed; /* atomics */

static void obj_unref(int *o)
{
    if (__atomic_sub_fetch(o, 1, __ATOMIC_ACQ_REL) == 0) {
        free(o);
        __atomic_add_fetch(&freed, 1, __ATOMIC_RELAXED);
    }
}

static void on_drop_ref(void *v)
{
    obj_unref(((struct val *)v)->obj);
}

static enum mtls_shardmap_visit take_ref(void *v, void *ctx)
{
    struct val *x = v;

    if (x->n % 7 == 0)
        return MTLS_SHARDMAP_DROP; /* some are "stale" */
    __atomic_add_fetch(x->obj, 1, __ATOMIC_RELAXED);
    *(int **)ctx = x->obj;
    return MTLS_SHARDMAP_KEEP;
}

static struct mtls_shardmap *shared;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;

    for (int i = 0; i < 20000; i++) {
        unsigned r = rand_r(&seed), key = r % 600;
        uint64_t h = key % 3 == 0 ? 7 : mtls_shardmap_hash(&key, sizeof(key)); /* some collide */
        int *o = NULL;

        switch ((r >> 16) % 8) {
        case 0: case 1: case 2: {
            struct val v = {(int)(r >> 20), malloc(sizeof(int))};

            *v.obj = 1;
            __atomic_add_fetch(&allocated, 1, __ATOMIC_RELAXED);
            mtls_shardmap_put(shared, h, &key, sizeof(key), &v);
            break;
        }
        case 3:
            mtls_shardmap_remove(shared, h, &key, sizeof(key));
            break;
        case 4: {
            struct mtls_shardmap_stats st;

            mtls_shardmap_stats(shared, &st);
            if (st.entries > st.capacity)
                abort();
            break;
        }
        default:
            if (mtls_shardmap_get(shared, h, &key, sizeof(key), take_ref, &o) == 1) {
                if (__atomic_load_n(o, __ATOMIC_RELAXED) < 1) /* alive: we hold one */
                    abort();
                obj_unref(o);
            }
        }
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[4];
    struct mtls_shardmap_stats st;

    shared = mtls_shardmap_create(256, 64, sizeof(struct val), on_drop_ref);
    CHECK(shared != NULL);
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(i + 1)) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    mtls_shardmap_stats(shared, &st);
    CHECK(st.entries <= 256 && st.capacity == 256 && st.inserts > 0 && st.hits > 0);
    CHECK(__atomic_load_n(&allocated, __ATOMIC_RELAXED) - __atomic_load_n(&freed, __ATOMIC_RELAXED) ==
          (int)st.entries);
    mtls_shardmap_destroy(shared);
    CHECK(allocated == freed);
}

int main(void)
{
    test_lru_order();
    test_capacity();
    test_collisions();
    test_threads();
    return check_report();
}
