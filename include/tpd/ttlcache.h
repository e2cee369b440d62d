/* ttlcache.h - a small thread-safe string-keyed cache with per-entry expiry and negative entries.
 *
 * Values are opaque; the cache copies them in and out through the callbacks given at creation,
 * so a caller never holds a pointer into the cache. An entry may also be negative ("looked it up,
 * it does not exist"), cached under its own (shorter) TTL. The cache holds at most max_entries:
 * inserting into a full cache first drops expired entries, then the entry closest to expiry.
 * Times are caller-supplied monotonic milliseconds. */
#ifndef TPD_TTLCACHE_H
#define TPD_TTLCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tpd_ttlcache tpd_ttlcache;

typedef void *(*tpd_ttlcache_copy_fn)(const void *value);
typedef void (*tpd_ttlcache_free_fn)(void *value);

typedef enum {
	TPD_CACHE_MISS = 0,
	TPD_CACHE_HIT,      /* *out holds a copy the caller frees with its free function */
	TPD_CACHE_NEGATIVE, /* cached "does not exist" */
} tpd_cache_result;

/* max_entries 0 → 1024. copy/free may not be NULL. */
tpd_ttlcache *tpd_ttlcache_new(size_t max_entries, tpd_ttlcache_copy_fn copy, tpd_ttlcache_free_fn free_fn);
void tpd_ttlcache_free(tpd_ttlcache *c);
/* Looks key up at now_ms; expired entries count as a miss (and are dropped). */
tpd_cache_result tpd_ttlcache_get(tpd_ttlcache *c, const char *key, int64_t now_ms, void **out);
/* Stores a copy of value (NULL = negative entry) valid until now_ms + ttl_ms. ttl_ms <= 0 stores
 * nothing and removes any existing entry. */
void tpd_ttlcache_put(tpd_ttlcache *c, const char *key, const void *value, int64_t now_ms, int64_t ttl_ms);
/* Removes one key (no-op when absent). */
void tpd_ttlcache_remove(tpd_ttlcache *c, const char *key);
/* Number of stored entries, expired or not; tests. */
size_t tpd_ttlcache_size(tpd_ttlcache *c);

#endif
