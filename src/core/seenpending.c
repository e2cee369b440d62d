/* seenpending.c - bounded memory of requests seen PENDING that left that state before they were
 * handled (see seenpending.h). An id → entry map plus a doubly linked list in insertion order,
 * so expiry and eviction take the oldest entries in O(1) each. */
#include <stdlib.h>
#include <string.h>

#include "tpd/seenpending.h"
#include "tpd/strmap.h"
#include "tpd/util.h"

struct entry {
	tpd_access_request *snap;
	int64_t put_ms;
	uint64_t gen;
	struct entry *prev, *next;
};

struct tpd_seen_pending {
	tpd_strmap *by_id;         /* id → struct entry* */
	struct entry *head, *tail; /* oldest first */
	size_t cap;
	int64_t ttl_ms;
	uint64_t next_gen;
	char *notify_key, *services_key;
};

tpd_seen_pending *tpd_seen_pending_new(size_t cap, int64_t ttl_ms, const char *notify_key,
                                       const char *services_key)
{
	tpd_seen_pending *s = tpd_new(tpd_seen_pending);

	s->by_id = tpd_strmap_new();
	s->cap = cap ? cap : 1;
	s->ttl_ms = ttl_ms;
	s->next_gen = 1;
	s->notify_key = xstrdup(notify_key);
	s->services_key = xstrdup(services_key);
	return s;
}

static void unlink_entry(tpd_seen_pending *s, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		s->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		s->tail = e->prev;
	e->prev = e->next = NULL;
}

static void drop(tpd_seen_pending *s, struct entry *e)
{
	tpd_strmap_del(s->by_id, e->snap->id);
	unlink_entry(s, e);
	tpd_access_request_free(e->snap);
	free(e);
}

void tpd_seen_pending_free(tpd_seen_pending *s)
{
	if (!s)
		return;
	while (s->head)
		drop(s, s->head);
	tpd_strmap_free(s->by_id, NULL);
	free(s->notify_key);
	free(s->services_key);
	free(s);
}

static void copy_annotation(tpd_access_request *d, const tpd_access_request *r, const char *key)
{
	const tpd_annotation *a = tpd_access_request_annotation(r, key);

	if (a)
		tpd_access_request_add_annotation(d, a->key, (const char *const *)a->values, a->n_values);
}

tpd_access_request *tpd_seen_pending_snapshot(const tpd_access_request *r, const char *notify_key,
                                              const char *services_key)
{
	tpd_access_request *d = tpd_access_request_dup_head(r);

	copy_annotation(d, r, notify_key);
	if (!tpd_streq(notify_key, services_key))
		copy_annotation(d, r, services_key);
	return d;
}

size_t tpd_seen_pending_put(tpd_seen_pending *s, const tpd_access_request *r, int64_t now_ms)
{
	struct entry *e;
	size_t evicted = 0;

	if (!r || tpd_str_empty(r->id))
		return 0;
	e = tpd_strmap_get(s->by_id, r->id);
	if (e) {
		unlink_entry(s, e);
		tpd_access_request_free(e->snap);
	} else {
		while (tpd_strmap_len(s->by_id) >= s->cap && s->head) {
			drop(s, s->head);
			evicted++;
		}
		e = tpd_new(struct entry);
	}
	e->snap = tpd_seen_pending_snapshot(r, s->notify_key, s->services_key);
	e->put_ms = now_ms;
	e->gen = s->next_gen++;
	e->prev = s->tail;
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	tpd_strmap_put(s->by_id, e->snap->id, e);
	return evicted;
}

const tpd_access_request *tpd_seen_pending_get(const tpd_seen_pending *s, const char *id, uint64_t *gen)
{
	struct entry *e = id ? tpd_strmap_get(s->by_id, id) : NULL;

	if (gen)
		*gen = e ? e->gen : 0;
	return e ? e->snap : NULL;
}

bool tpd_seen_pending_forget(tpd_seen_pending *s, const char *id, uint64_t gen)
{
	struct entry *e = id ? tpd_strmap_get(s->by_id, id) : NULL;

	if (!e || (gen && e->gen != gen))
		return false;
	drop(s, e);
	return true;
}

size_t tpd_seen_pending_expire(tpd_seen_pending *s, int64_t now_ms)
{
	size_t n = 0;

	while (s->head && s->head->put_ms <= now_ms - s->ttl_ms) {
		drop(s, s->head);
		n++;
	}
	return n;
}

size_t tpd_seen_pending_len(const tpd_seen_pending *s)
{
	return tpd_strmap_len(s->by_id);
}

void tpd_seen_pending_each(const tpd_seen_pending *s,
                           void (*fn)(void *ud, const char *id, const tpd_access_request *snap), void *ud)
{
	for (const struct entry *e = s->head; e; e = e->next)
		fn(ud, e->snap->id, e->snap);
}
