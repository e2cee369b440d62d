/* ttlcache.c - TTL cache; see include/tpd/ttlcache.h.
 *
 * A flat array searched linearly: the plugin caches tens of services and users, not millions,
 * and a linear scan under one mutex is simpler and faster than a hash table at that size. */
#include "tpd/ttlcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "tpd/util.h"

typedef struct {
	char *key;
	void *value; /* NULL = negative entry */
	int64_t expires;
} entry;

struct tpd_ttlcache {
	pthread_mutex_t mu;
	entry *e;
	size_t n, max;
	tpd_ttlcache_copy_fn copy;
	tpd_ttlcache_free_fn free_fn;
};

tpd_ttlcache *tpd_ttlcache_new(size_t max_entries, tpd_ttlcache_copy_fn copy, tpd_ttlcache_free_fn free_fn)
{
	tpd_ttlcache *c = tpd_new(tpd_ttlcache);

	pthread_mutex_init(&c->mu, NULL);
	c->max = max_entries ? max_entries : 1024;
	c->e = xcalloc(c->max, sizeof(entry));
	c->copy = copy;
	c->free_fn = free_fn;
	return c;
}

static void drop(tpd_ttlcache *c, size_t i)
{
	free(c->e[i].key);
	if (c->e[i].value)
		c->free_fn(c->e[i].value);
	c->e[i] = c->e[--c->n];
}

void tpd_ttlcache_free(tpd_ttlcache *c)
{
	if (!c)
		return;
	while (c->n)
		drop(c, 0);
	free(c->e);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static ssize_t find(tpd_ttlcache *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

tpd_cache_result tpd_ttlcache_get(tpd_ttlcache *c, const char *key, int64_t now_ms, void **out)
{
	tpd_cache_result r = TPD_CACHE_MISS;
	ssize_t i;

	*out = NULL;
	pthread_mutex_lock(&c->mu);
	i = find(c, key);
	if (i >= 0 && c->e[i].expires <= now_ms) {
		drop(c, (size_t)i);
		i = -1;
	}
	if (i >= 0) {
		if (c->e[i].value) {
			*out = c->copy(c->e[i].value);
			r = TPD_CACHE_HIT;
		} else {
			r = TPD_CACHE_NEGATIVE;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

void tpd_ttlcache_put(tpd_ttlcache *c, const char *key, const void *value, int64_t now_ms, int64_t ttl_ms)
{
	ssize_t i;

	pthread_mutex_lock(&c->mu);
	i = find(c, key);
	if (i >= 0)
		drop(c, (size_t)i);
	if (ttl_ms <= 0)
		goto out;
	if (c->n == c->max) {
		for (size_t j = c->n; j-- > 0;)
			if (c->e[j].expires <= now_ms)
				drop(c, j);
	}
	if (c->n == c->max) {
		size_t victim = 0;
		for (size_t j = 1; j < c->n; j++)
			if (c->e[j].expires < c->e[victim].expires)
				victim = j;
		drop(c, victim);
	}
	c->e[c->n].key = xstrdup(key);
	c->e[c->n].value = value ? c->copy(value) : NULL;
	c->e[c->n].expires = now_ms + ttl_ms;
	c->n++;
out:
	pthread_mutex_unlock(&c->mu);
}

void tpd_ttlcache_remove(tpd_ttlcache *c, const char *key)
{
	ssize_t i;

	pthread_mutex_lock(&c->mu);
	i = find(c, key);
	if (i >= 0)
		drop(c, (size_t)i);
	pthread_mutex_unlock(&c->mu);
}

size_t tpd_ttlcache_size(tpd_ttlcache *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}
