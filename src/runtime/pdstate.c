/* pdstate.c - what the executor knows about a request's plugin data: the compare-and-swap write
 * and the read, the per-request memory of the last data read or written (so a pass need not read
 * it again), and the memory of review notes that may have been posted but not counted. See
 * executor.c, which uses them, and README "Crash safety". */
#include "controller_impl.h"

/* ---------------------------------------------------------------------------------------------- */
/* plugin data                                                                                    */

/* Compare-and-swap of plugin data: writes `next` expecting `cur` (NULL = nothing stored). On
 * success cur becomes next. Returns the Teleport error otherwise (COMPARE_FAILED: re-read). */
tpd_err ctl_pd_write(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have,
                     const tpd_plugin_data *next, char *err)
{
	tpd_err rc = ctl_w_update_plugin_data(c, id, next, *have ? cur : NULL, err);

	if (rc)
		return rc;
	if (!*have)
		tpd_plugin_data_init(cur);
	tpd_plugin_data_copy(cur, next);
	*have = true;
	return TPD_ERR_OK;
}

/* Reads plugin data; *have = false when none is stored. */
tpd_err ctl_pd_read(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have, char *err)
{
	tpd_err rc;

	if (*have)
		tpd_plugin_data_clear(cur);
	*have = false;
	rc = ctl_r_plugin_data(c, id, cur, err);
	if (rc == TPD_ERR_NOT_FOUND) {
		tpd_plugin_data_clear(cur);
		return TPD_ERR_OK;
	}
	if (rc) {
		tpd_plugin_data_clear(cur);
		return rc;
	}
	*have = true;
	return TPD_ERR_OK;
}

/* The plugin data this process last read or wrote for a request, taken as current at the start
 * of the next pass instead of a GetPluginData: the compare-and-swap of the next write catches
 * anyone else's write (COMPARE_FAILED: re-read, plan again). Kept only after a pass that ended
 * well with everything it holds confirmed by Teleport; forgotten after a failed pass, when the
 * request is deleted, on every relist (start, reconnect, resync: those read afresh) and when this
 * process becomes leader (another one may have written meanwhile). It lives in the request's cache
 * entry (ctl_entry), which a newer version of the request takes over (ctl_cache_put). */
struct known {
	bool have;
	/* Bit i set: key i (tpd_plugin_data_keys order) holds what the cached request gives it
	 * (tpd_plugin_data_from_request: user, roles, created, request_reason; "" for the others),
	 * and is not stored. The other keys' values follow in packed, each ending in NUL. */
	uint16_t derived;
	char packed[];
};
_Static_assert(TPD_PLUGIN_DATA_NKEYS <= 16, "struct known: one bit per plugin data key");

/* It is kept for every request the cache holds, so it keeps only what the request itself cannot
 * give back: typically the incident and service ids, 30-odd bytes in one allocation, where a
 * tpd_plugin_data would take 11 strings and a struct (about 600 bytes). Should the request's
 * fields differ from the stored ones after all, the next write's compare-and-swap fails and the
 * pass reads afresh, as for anyone else's change. Caller holds cache_mu; r: the cached request. */
static struct known *known_pack(const tpd_access_request *r, const tpd_plugin_data *pd, bool have)
{
	tpd_plugin_data d;
	const char *v[TPD_PLUGIN_DATA_NKEYS];
	uint16_t derived = 0;
	size_t n = 0;
	struct known *k;
	char *p;

	tpd_plugin_data_init(&d);
	if (r)
		tpd_plugin_data_from_request(&d, r);
	for (size_t i = 0; have && i < TPD_PLUGIN_DATA_NKEYS; i++) {
		v[i] = tpd_plugin_data_get(pd, tpd_plugin_data_keys[i]);
		if (strcmp(v[i], tpd_plugin_data_get(&d, tpd_plugin_data_keys[i])) == 0)
			derived |= (uint16_t)(1u << i);
		else
			n += strlen(v[i]) + 1;
	}
	tpd_plugin_data_clear(&d);
	k = xmalloc(sizeof(*k) + n);
	k->have = have;
	k->derived = derived;
	p = k->packed;
	for (size_t i = 0; have && i < TPD_PLUGIN_DATA_NKEYS; i++) {
		if (derived & (1u << i))
			continue;
		size_t l = strlen(v[i]) + 1;

		memcpy(p, v[i], l);
		p += l;
	}
	return k;
}

/* cur: uninitialised; initialised and filled when k->have. Caller holds cache_mu. */
static void known_unpack(const struct known *k, const tpd_access_request *r, tpd_plugin_data *cur)
{
	const char *p = k->packed;

	if (!k->have)
		return;
	tpd_plugin_data_init(cur);
	if (k->derived)
		tpd_plugin_data_from_request(cur, r);
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		if (k->derived & (1u << i))
			continue;
		tpd_plugin_data_set(cur, tpd_plugin_data_keys[i], p);
		p += strlen(p) + 1;
	}
}

void ctl_known_free(void *p)
{
	free(p);
}

void ctl_known_forget(tpd_controller *c, const char *id)
{
	ctl_entry *e = tpd_strmap_get(c->cache, id);

	if (e) {
		ctl_known_free(e->known);
		e->known = NULL;
	}
}

static void forget_each(void *ud, const char *key, void *value)
{
	ctl_entry *e = value;

	(void)ud;
	(void)key;
	ctl_known_free(e->known);
	e->known = NULL;
}

void ctl_known_forget_all(tpd_controller *c)
{
	tpd_strmap_each(c->cache, forget_each, NULL);
}

bool ctl_known_load(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have)
{
	const ctl_entry *e;
	bool found;

	pthread_mutex_lock(&c->cache_mu);
	e = tpd_strmap_get(c->cache, id);
	found = e && e->known;
	if (found) {
		/* Like ctl_pd_read: cur holds strings only when *have (the caller clears it then). */
		*have = e->known->have;
		known_unpack(e->known, e->req, cur);
	}
	pthread_mutex_unlock(&c->cache_mu);
	return found;
}

void ctl_known_store(tpd_controller *c, const char *id, const tpd_plugin_data *cur, bool have)
{
	ctl_entry *e;

	pthread_mutex_lock(&c->cache_mu);
	/* Only for a request the cache still knows: it is kept in the request's cache entry. */
	e = tpd_strmap_get(c->cache, id);
	if (e) {
		ctl_known_free(e->known);
		e->known = known_pack(e->req, cur, have);
	}
	pthread_mutex_unlock(&c->cache_mu);
}

/* A request first seen in a live watch event (created while the watch runs) has no plugin data
 * yet, so its first pass need not read it: this remembers "nothing stored". Were that wrong
 * (another process wrote first), the first write's compare-and-swap, which expects every key
 * empty, fails and the pass re-reads. Caller holds cache_mu; the request is in the cache. */
void ctl_known_assume_new(tpd_controller *c, const char *id)
{
	ctl_entry *e = tpd_strmap_get(c->cache, id);

	if (e && !e->known)
		e->known = known_pack(NULL, NULL, false);
}

/* Writes one field on top of the current data (CAS). */
tpd_err ctl_pd_set_field(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have, const char *k1,
                         const char *v1, const char *k2, const char *v2, char *err)
{
	tpd_plugin_data next;
	tpd_err rc;

	tpd_plugin_data_init(&next);
	if (*have)
		tpd_plugin_data_copy(&next, cur);
	tpd_plugin_data_set(&next, k1, v1);
	if (k2)
		tpd_plugin_data_set(&next, k2, v2);
	rc = ctl_pd_write(c, id, cur, have, &next, err);
	tpd_plugin_data_clear(&next);
	return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* notes that may have been posted but not counted                                                */

/* reviews_count is stored after each note, so a note can be posted but not counted when a run
 * stops (crash, lost leadership) or fails in between, or when the post itself failed ambiguously.
 * Checking the incident's notes before every first post would cost a PagerDuty call per request;
 * instead this remembers, per request, up to which review index that can have happened:
 *  - the reviews a request already had when this process (or leadership) first knew it: a
 *    predecessor may have noted them;
 *  - a note this process tried to post, when the post or the count after it failed.
 * A note below that index is posted only if the incident does not have it yet. Values are stored
 * as count + 1 so that 0 is never a NULL pointer. Callers hold cache_mu. */
size_t ctl_unsure_get(tpd_controller *c, const char *id)
{
	void *v = tpd_strmap_get(c->unsure, id);

	return v ? (size_t)((uintptr_t)v - 1) : SIZE_MAX; /* unknown: check */
}

void ctl_unsure_set(tpd_controller *c, const char *id, size_t n)
{
	tpd_strmap_put(c->unsure, id, (void *)(uintptr_t)(n + 1));
}

/* A request entered the cache: what it has now may predate us. */
void ctl_unsure_first_seen(tpd_controller *c, const tpd_access_request *r)
{
	if (!tpd_strmap_get(c->unsure, r->id))
		ctl_unsure_set(c, r->id, r->n_reviews);
}

void ctl_unsure_reset_each(void *ud, const char *key, void *value)
{
	tpd_controller *c = ud;

	ctl_unsure_set(c, key, ((const ctl_entry *)value)->req->n_reviews);
}
