/* pagerduty_calls.c - the PagerDuty API operations: service, user and on-call look-ups with their
 * caches, incidents (idempotent create, adopt by key, resolve), notes (at most once). See
 * pagerduty_impl.h. */
#include "pagerduty_impl.h"

/* ---- calls ------------------------------------------------------------------------------------- */

tpd_err tpd_pd_health(tpd_pd *pd, char *err)
{
	pd_req r = {.call = "health", .method = "GET", .path = "/abilities"};
	pd_res res;
	tpd_err rc = pd_call(pd, &r, &res, err);

	json_object_put(res.json);
	return rc;
}

/* Pages through a list endpoint: GET <path>?limit=100&offset=N<extra>, calling match() on each
 * element of the array named `key` until it returns true or the pages run out. */
typedef bool (*item_fn)(void *ud, json_object *item);

static tpd_err list_pages(tpd_pd *pd, const char *call, const char *path, const char *extra, const char *key,
                          item_fn fn, void *ud, bool *stopped, char *err)
{
	tpd_err rc = TPD_ERR_OK;
	size_t offset = 0;
	pd_res res = {0};

	if (stopped)
		*stopped = false;
	for (;;) {
		char *p = xasprintf("%s?limit=%d&offset=%zu%s", path, PAGE_LIMIT, offset, extra ? extra : "");
		pd_req r = {.call = call, .method = "GET", .path = p};
		rc = pd_call(pd, &r, &res, err);
		free(p);
		if (rc != TPD_ERR_OK)
			goto out;
		json_object *arr = pd_jobj(res.json, key, json_type_array);
		if (!arr) {
			rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "PagerDuty %s: answer has no \"%s\" array",
			                call, key);
			goto out;
		}
		size_t n = json_object_array_length(arr);
		for (size_t i = 0; i < n; i++) {
			json_object *it = json_object_array_get_idx(arr, i);
			if (!json_object_is_type(it, json_type_object))
				continue; /* hostile or broken element: skip, never crash */
			if (fn(ud, it)) {
				if (stopped)
					*stopped = true;
				goto out;
			}
		}
		if (!pd_jmore(res.json) || n == 0)
			goto out;
		offset += n;
		if (offset + PAGE_LIMIT > MAX_OFFSET) {
			tpd_log(pd->log, TPD_LOG_WARN,
			        "PagerDuty returned more results than can be paged (10000)", "call", call,
			        NULL);
			goto out;
		}
		json_object_put(res.json);
		res.json = NULL;
	}
out:
	json_object_put(res.json);
	return rc;
}

typedef struct {
	const char *want; /* lower-cased */
	tpd_pd_service *svc;
	tpd_pd_user *user;
	tpd_pd_schedule *sched;
	size_t seen;
} find_ctx;

static bool match_service(void *ud, json_object *it)
{
	find_ctx *c = ud;
	const char *name = pd_jstr(it, "name"), *id = pd_jid(it);

	c->seen++;
	if (!name || !id || !tpd_strcaseeq(name, c->want))
		return false;
	c->svc->id = xstrdup(id);
	c->svc->name = xstrdup(name);
	const char *ep = pd_jid(pd_jobj(it, "escalation_policy", json_type_object));
	c->svc->escalation_policy_id = xstrdup(ep ? ep : "");
	return true;
}

static bool match_schedule(void *ud, json_object *it)
{
	find_ctx *c = ud;
	const char *name = pd_jstr(it, "name"), *id = pd_jid(it);

	c->seen++;
	if (!name || !id || !tpd_strcaseeq(name, c->want))
		return false;
	c->sched->id = xstrdup(id);
	c->sched->name = xstrdup(name);
	return true;
}

static bool match_user(void *ud, json_object *it)
{
	find_ctx *c = ud;
	const char *email = pd_jstr(it, "email"), *id = pd_jid(it), *name = pd_jstr(it, "name");

	c->seen++;
	if (!email || !id || !tpd_strcaseeq(email, c->want))
		return false;
	c->user->id = xstrdup(id);
	c->user->email = xstrdup(email);
	c->user->name = xstrdup(name ? name : "");
	return true;
}

/* What differs between looking up a service by name and a user by e-mail. */
typedef struct {
	const char *label;    /* metric label and error noun: "service", "user" */
	const char *key_name; /* "name", "e-mail" */
	const char *call, *path, *array;
	item_fn match;
	void (*clear)(void *out);
} lookup_kind;

/* Cached, case-insensitive lookup: the cache (positive or negative), else the list endpoint
 * with ?query=, paged until match() takes an element, which fills out; the result (found or not)
 * is cached. */
static tpd_err cached_lookup(tpd_pd *pd, const lookup_kind *k, tpd_ttlcache *cache, const char *want,
                             void *out, size_t out_size, find_ctx *c, char *err)
{
	char *key = pd_lower_dup(want), *q = NULL, *extra = NULL;
	void *hit = NULL;
	tpd_err rc = TPD_ERR_OK;
	bool found;

	memset(out, 0, out_size);
	c->want = key;
	if (tpd_str_empty(want)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty %s %s is empty", k->label, k->key_name);
		goto out;
	}
	switch (tpd_ttlcache_get(cache, key, pd_now_ms(pd), &hit)) {
	case TPD_CACHE_HIT:
		tpd_metric_inc(pd->m_hit, k->label);
		memcpy(out, hit, out_size); /* takes over the copy's strings */
		free(hit);
		goto out;
	case TPD_CACHE_NEGATIVE:
		tpd_metric_inc(pd->m_hit, k->label);
		rc = tpd_seterr(err, TPD_ERR_NOT_FOUND, "PagerDuty %s %s not found", k->label, want);
		goto out;
	case TPD_CACHE_MISS:
		tpd_metric_inc(pd->m_miss, k->label);
		break;
	}
	q = tpd_pd_urlencode(key);
	extra = xasprintf("&query=%s", q);
	rc = list_pages(pd, k->call, k->path, extra, k->array, k->match, c, &found, err);
	if (rc != TPD_ERR_OK) {
		k->clear(out);
		goto out;
	}
	if (!found) {
		tpd_ttlcache_put(cache, key, NULL, pd_now_ms(pd), pd->negative_ttl);
		rc = tpd_seterr(err, TPD_ERR_NOT_FOUND,
		                "PagerDuty %s %s not found (%zu %ss matched the query)", k->label, want,
		                c->seen, k->label);
		goto out;
	}
	tpd_ttlcache_put(cache, key, out, pd_now_ms(pd), pd->cache_ttl);
out:
	c->want = NULL;
	free(key);
	free(q);
	free(extra);
	if (rc)
		pd_scrub(pd, err);
	return rc;
}

static void service_clear(void *out)
{
	tpd_pd_service_clear(out);
}

static void user_clear(void *out)
{
	tpd_pd_user_clear(out);
}

tpd_err tpd_pd_find_service(tpd_pd *pd, const char *name, tpd_pd_service *out, char *err)
{
	static const lookup_kind k = {"service",  "name",        "find_service", "/services",
	                              "services", match_service, service_clear};
	find_ctx c = {.svc = out};

	return cached_lookup(pd, &k, pd->svc_cache, name, out, sizeof(*out), &c, err);
}

static void schedule_clear(void *out)
{
	tpd_pd_schedule_clear(out);
}

tpd_err tpd_pd_find_schedule(tpd_pd *pd, const char *name, tpd_pd_schedule *out, char *err)
{
	static const lookup_kind k = {"schedule",  "name",         "find_schedule", "/schedules",
	                              "schedules", match_schedule, schedule_clear};
	find_ctx c = {.sched = out};

	return cached_lookup(pd, &k, pd->sched_cache, name, out, sizeof(*out), &c, err);
}

tpd_err tpd_pd_find_user(tpd_pd *pd, const char *email, tpd_pd_user *out, char *err)
{
	static const lookup_kind k = {"user",  "e-mail",   "find_user", "/users",
	                              "users", match_user, user_clear};
	find_ctx c = {.user = out};

	return cached_lookup(pd, &k, pd->user_cache, email, out, sizeof(*out), &c, err);
}

typedef struct {
	const char *user_id;
	const char *const *ids;
	size_t n;
	const tpd_pd_oncall_filter *f; /* NULL: every entry counts */
	bool *on;                      /* per index into ids */
	char **why;                    /* per index: what qualified the entry (filtered calls only) */
	bool *ask;                     /* which indices were asked */
	size_t left;                   /* asked and not yet matched */
	size_t seen, matched;
} oncall_ctx;

static bool int_in(int v, const int *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

static bool str_in(const char *v, const char *const *set, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		if (set[i] && strcmp(set[i], v) == 0)
			return true;
	return false;
}

/* Whether an on-call entry passes the filter; *why gets the qualifier text ("level 1, schedule
 * Primary": only the parts the filter asks about). */
static bool oncall_qualifies(const tpd_pd_oncall_filter *f, json_object *it, char **why)
{
	json_object *sched = pd_jobj(it, "schedule", json_type_object), *lv = NULL;
	const char *sid = pd_jid(sched), *sname = pd_jstr(sched, "summary");
	int level = 0;

	*why = NULL;
	if (!f)
		return true;
	if (json_object_object_get_ex(it, "escalation_level", &lv) && json_object_is_type(lv, json_type_int))
		level = json_object_get_int(lv);
	if (f->n_levels && !int_in(level, f->levels, f->n_levels))
		return false;
	if (f->schedules && !str_in(sid, f->schedule_ids, f->n_schedule_ids))
		return false;
	if (f->n_levels && f->schedules)
		*why = xasprintf("level %d, schedule %s", level, sname ? sname : sid);
	else if (f->n_levels)
		*why = xasprintf("level %d", level);
	else if (f->schedules)
		*why = xasprintf("schedule %s", sname ? sname : sid);
	return true;
}

static bool match_oncall(void *ud, json_object *it)
{
	oncall_ctx *c = ud;
	json_object *user = pd_jobj(it, "user", json_type_object);
	const char *uid = pd_jid(user), *utype = pd_jstr(user, "type");
	const char *ep = pd_jid(pd_jobj(it, "escalation_policy", json_type_object));
	char *why = NULL;

	c->seen++;
	if (!uid || !ep || strcmp(uid, c->user_id) != 0)
		return false;
	if (utype && strcmp(utype, "user_reference") != 0 && strcmp(utype, "user") != 0)
		return false;
	if (!oncall_qualifies(c->f, it, &why))
		return false;
	for (size_t i = 0; i < c->n; i++) {
		if (c->ask[i] && !c->on[i] && strcmp(c->ids[i], ep) == 0) {
			c->on[i] = true;
			if (c->why)
				c->why[i] = why ? xstrdup(why) : NULL;
			c->left--;
			c->matched++;
		}
	}
	free(why);
	return c->left == 0; /* every asked policy matched: stop paging */
}

/* The cache key of one answer: user, policy and the filter (the schedules' ids may change). */
static char *oncall_key(const char *user_id, const char *policy, const tpd_pd_oncall_filter *f)
{
	tpd_buf b;

	tpd_buf_init(&b, 0);
	tpd_buf_printf(&b, "%s\x1f%s", user_id, policy);
	if (f) {
		tpd_buf_puts(&b, "\x1fL");
		for (size_t i = 0; i < f->n_levels; i++)
			tpd_buf_printf(&b, "%d,", f->levels[i]);
		tpd_buf_printf(&b, "\x1fS%d", f->schedules ? 1 : 0);
		for (size_t i = 0; i < f->n_schedule_ids; i++)
			tpd_buf_printf(&b, "%s,", f->schedule_ids[i] ? f->schedule_ids[i] : "");
	}
	return tpd_buf_steal(&b);
}

tpd_err tpd_pd_oncall(tpd_pd *pd, const char *user_id, const char *const *policy_ids, size_t n, bool *on_call,
                      char *err)
{
	return tpd_pd_oncall_filtered(pd, user_id, policy_ids, n, NULL, on_call, NULL, err);
}

tpd_err tpd_pd_oncall_filtered(tpd_pd *pd, const char *user_id, const char *const *policy_ids, size_t n,
                               const tpd_pd_oncall_filter *f, bool *on_call, char **why, char *err)
{
	oncall_ctx c = {.user_id = user_id, .ids = policy_ids, .n = n, .f = f, .on = on_call, .why = why};
	tpd_err rc = TPD_ERR_OK;
	tpd_buf extra;
	char *enc = NULL;

	tpd_buf_init(&extra, 0);
	c.ask = xcalloc(n ? n : 1, sizeof(bool));
	for (size_t i = 0; why && i < n; i++)
		why[i] = NULL;
	if (tpd_str_empty(user_id)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty on-call check: empty user id");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *key, *hit = NULL;
		bool dup = false;
		on_call[i] = false;
		if (tpd_str_empty(policy_ids[i]))
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = c.ask[j] && strcmp(policy_ids[j], policy_ids[i]) == 0;
		key = oncall_key(user_id, policy_ids[i], f);
		if (tpd_ttlcache_get(pd->oncall_cache, key, pd_now_ms(pd), (void **)&hit) == TPD_CACHE_HIT) {
			/* "0", or "1" followed by the qualifier text */
			tpd_metric_inc(pd->m_hit, "oncall");
			on_call[i] = hit[0] == '1';
			if (why && on_call[i] && hit[1])
				why[i] = xstrdup(hit + 1);
		} else if (!dup) {
			tpd_metric_inc(pd->m_miss, "oncall");
			c.ask[i] = true;
			c.left++;
			free(enc);
			enc = tpd_pd_urlencode(policy_ids[i]);
			tpd_buf_printf(&extra, "&escalation_policy_ids%%5B%%5D=%s", enc);
		}
		free(hit);
		free(key);
	}
	if (c.left) {
		free(enc);
		enc = tpd_pd_urlencode(user_id);
		tpd_buf_printf(&extra, "&user_ids%%5B%%5D=%s", enc);
		rc = list_pages(pd, "oncall", "/oncalls", extra.data, "oncalls", match_oncall, &c, NULL, err);
		if (rc != TPD_ERR_OK)
			goto out;
		if (c.seen && !c.matched && !f)
			tpd_log(pd->log, TPD_LOG_WARN,
			        "PagerDuty returned some oncalls array but none of them matched "
			        "the query",
			        "pd_user_id", user_id, NULL);
		for (size_t i = 0; i < n; i++) {
			if (!c.ask[i])
				continue;
			char *key = oncall_key(user_id, policy_ids[i], f);
			char *val = xasprintf("%c%s", on_call[i] ? '1' : '0',
			                      why && on_call[i] && why[i] ? why[i] : "");
			tpd_ttlcache_put(pd->oncall_cache, key, val, pd_now_ms(pd), pd->oncall_ttl);
			free(val);
			free(key);
		}
	}
	/* Duplicated ids take the answer of their first occurrence. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (!tpd_str_empty(policy_ids[i]) && strcmp(policy_ids[j], policy_ids[i]) == 0) {
				on_call[i] = on_call[j];
				if (why) {
					free(why[i]);
					why[i] = why[j] ? xstrdup(why[j]) : NULL;
				}
				break;
			}
out:
	free(enc);
	free(c.ask);
	tpd_buf_free(&extra);
	if (rc) {
		for (size_t i = 0; why && i < n; i++) {
			free(why[i]);
			why[i] = NULL;
		}
		pd_scrub(pd, err);
	}
	return rc;
}

/* ---- incidents ----------------------------------------------------------------------------------- */

typedef struct {
	const char *key;
	char *id, *status;
	bool open;
} key_ctx;

static bool is_open(const char *status)
{
	return tpd_streq(status, "triggered") || tpd_streq(status, "acknowledged");
}

static bool match_key(void *ud, json_object *it)
{
	key_ctx *c = ud;
	const char *id = pd_jid(it), *status = pd_jstr(it, "status"), *key = pd_jstr(it, "incident_key");
	json_object *kv;

	if (!id)
		return false;
	/* An incident with child alerts has no key of its own (null) and matched through an alert's
	 * key; a different non-null key means the server ignored the filter: skip it. */
	if (key && strcmp(key, c->key) != 0)
		return false;
	if (!key && json_object_object_get_ex(it, "incident_key", &kv) && kv != NULL)
		return false;
	if (c->id && (c->open || !is_open(status)))
		return false;
	free(c->id);
	free(c->status);
	c->id = xstrdup(id);
	c->status = xstrdup(status ? status : "");
	c->open = is_open(status);
	return c->open;
}

tpd_err tpd_pd_find_incident_by_key(tpd_pd *pd, const char *incident_key, char **incident_id, char **status,
                                    char *err)
{
	key_ctx c = {.key = incident_key};
	char *q = NULL, *extra = NULL;
	tpd_err rc = TPD_ERR_OK;

	*incident_id = NULL;
	if (status)
		*status = NULL;
	if (tpd_str_empty(incident_key)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty incident lookup: empty incident_key");
		goto out;
	}
	q = tpd_pd_urlencode(incident_key);
	extra = xasprintf("&date_range=all&incident_key=%s", q);
	rc = list_pages(pd, "find_incident", "/incidents", extra, "incidents", match_key, &c, NULL, err);
	if (rc != TPD_ERR_OK)
		goto out;
	if (!c.id) {
		rc = tpd_seterr(err, TPD_ERR_NOT_FOUND, "PagerDuty incident with key %s not found",
		                incident_key);
		goto out;
	}
	*incident_id = c.id;
	c.id = NULL;
	if (status) {
		*status = c.status;
		c.status = NULL;
	}
out:
	free(c.id);
	free(c.status);
	free(q);
	free(extra);
	if (rc)
		pd_scrub(pd, err);
	return rc;
}

typedef struct {
	tpd_pd *pd;
	const char *key;
	char *id;
} adopt_ctx;

/* Looks for an open incident with the key; true (and ctx->id set) when there is one. */
static retry_check adopt_existing(void *ud)
{
	adopt_ctx *a = ud;
	char *id = NULL, *status = NULL, e[TPD_ERRLEN];
	retry_check chk = RETRY_SEND;
	tpd_err rc = tpd_pd_find_incident_by_key(a->pd, a->key, &id, &status, e);

	if (rc == TPD_ERR_OK && is_open(status)) {
		free(a->id);
		a->id = id;
		id = NULL;
		chk = RETRY_DONE;
	} else if (rc != TPD_ERR_OK && rc != TPD_ERR_NOT_FOUND) {
		chk = RETRY_UNKNOWN;
	}
	free(id);
	free(status);
	return chk;
}

tpd_err tpd_pd_create_incident(tpd_pd *pd, const tpd_pd_incident_spec *s, char **incident_id, bool *adopted,
                               char *err)
{
	char *body = NULL;
	adopt_ctx a = {.pd = pd, .key = s ? s->incident_key : NULL};
	pd_req r = {.call = "create_incident", .method = "POST", .path = "/incidents", .from = true};
	pd_res res = {0};
	tpd_err rc = TPD_ERR_OK;

	*incident_id = NULL;
	if (adopted)
		*adopted = false;
	if (!s || tpd_str_empty(s->service_id) || tpd_str_empty(s->title)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty incident: title and service id are required");
		goto out;
	}
	if (tpd_str_empty(pd->user_email)) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.user_email is required to create incidents");
		goto out;
	}
	body = tpd_pd_build_incident_body(s, pd->urgency, pd->priority_id);
	r.body = body;
	if (!tpd_str_empty(s->incident_key)) {
		r.before_retry = adopt_existing;
		r.ud = &a;
	}
	rc = pd_call(pd, &r, &res, err);
	if (rc == TPD_ERR_OK && a.id) {
		/* A retry found the incident an earlier, ambiguous attempt had created. */
		*incident_id = a.id;
		a.id = NULL;
		if (adopted)
			*adopted = true;
		goto out;
	}
	if (rc == TPD_ERR_OK) {
		const char *id = pd_jid(pd_jobj(res.json, "incident", json_type_object));
		if (id) {
			*incident_id = xstrdup(id);
			goto out;
		}
		res.ambiguous = true;
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL,
		                "PagerDuty create_incident: HTTP %ld answer has no incident.id", res.status);
	}
	/* PagerDuty says the key is taken (or we cannot tell whether the create happened): adopt. */
	if (!tpd_str_empty(s->incident_key) &&
	    (res.duplicate_key || (res.ambiguous && rc != TPD_ERR_CANCELLED))) {
		char e2[TPD_ERRLEN];
		tpd_err frc = tpd_pd_find_incident_by_key(pd, s->incident_key, incident_id, NULL, e2);
		if (frc == TPD_ERR_OK) {
			if (adopted)
				*adopted = true;
			rc = TPD_ERR_OK;
			goto out;
		}
		if (res.duplicate_key)
			rc = tpd_seterr(
			    err, TPD_ERR_EXISTS,
			    "PagerDuty reports an open incident with key %s but it cannot be found: %s",
			    s->incident_key, e2);
	}
out:
	json_object_put(res.json);
	free(a.id);
	free(body);
	if (rc)
		pd_scrub(pd, err);
	return rc;
}

typedef struct {
	tpd_pd *pd;
	const char *incident_id, *content;
} note_retry;

/* before_retry hook of add_note: after an ambiguous failure (dropped connection, 5xx after the
 * request was sent) the note may have been stored; posting again would duplicate it. */
static retry_check note_already_posted(void *ud)
{
	note_retry *n = ud;
	char err[TPD_ERRLEN];
	bool have = false;

	if (tpd_pd_incident_has_note(n->pd, n->incident_id, n->content, &have, err))
		return RETRY_UNKNOWN;
	return have ? RETRY_DONE : RETRY_SEND;
}

/* A write on an incident needs its id and the From address PagerDuty requires for it. */
static tpd_err incident_write_check(const tpd_pd *pd, const char *incident_id, const char *call,
                                    const char *what, char *err)
{
	if (tpd_str_empty(incident_id))
		return tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty %s: empty incident id", call);
	if (tpd_str_empty(pd->user_email))
		return tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.user_email is required to %s", what);
	return TPD_ERR_OK;
}

tpd_err tpd_pd_add_note(tpd_pd *pd, const char *incident_id, const char *content, char *err)
{
	char *body = NULL, *id = NULL, *path = NULL;
	pd_res res = {0};
	tpd_err rc;

	if ((rc = incident_write_check(pd, incident_id, "note", "post notes", err)))
		goto out;
	body = tpd_pd_build_note_body(content);
	id = tpd_pd_urlencode(incident_id);
	path = xasprintf("/incidents/%s/notes", id);
	note_retry nr = {pd, incident_id, content};
	pd_req r = {.call = "add_note",
	            .method = "POST",
	            .path = path,
	            .body = body,
	            .from = true,
	            .before_retry = note_already_posted,
	            .ud = &nr,
	            .doubt_incident = incident_id};
	rc = pd_call(pd, &r, &res, err);
out:
	json_object_put(res.json);
	free(body);
	free(id);
	free(path);
	return rc;
}

tpd_err tpd_pd_incident_has_note(tpd_pd *pd, const char *incident_id, const char *content, bool *found,
                                 char *err)
{
	char *id = NULL, *path = NULL;
	pd_res res = {0};
	json_object *notes;
	tpd_err rc;

	*found = false;
	if (tpd_str_empty(incident_id))
		return tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty notes: empty incident id");
	if (!pd_settle_doubt(pd, incident_id))
		return tpd_seterr(err, TPD_ERR_CANCELLED, "PagerDuty notes of %s: cancelled (shutting down)",
		                  incident_id);
	id = tpd_pd_urlencode(incident_id);
	path = xasprintf("/incidents/%s/notes", id);
	pd_req r = {.call = "list_notes", .method = "GET", .path = path};
	rc = pd_call(pd, &r, &res, err);
	if (rc)
		goto out;
	notes = pd_jobj(res.json, "notes", json_type_array);
	if (!notes) {
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "PagerDuty notes of %s: answer has no notes array",
		                incident_id);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(notes) && !*found; i++) {
		const char *c = pd_jstr(json_object_array_get_idx(notes, i), "content");

		*found = c && content && !strcmp(c, content);
	}
out:
	json_object_put(res.json);
	free(id);
	free(path);
	if (rc)
		pd_scrub(pd, err);
	return rc;
}

tpd_err tpd_pd_add_note_once(tpd_pd *pd, const char *incident_id, const char *content, bool *posted,
                             char *err)
{
	bool have = false;
	tpd_err rc = tpd_pd_incident_has_note(pd, incident_id, content, &have, err);

	if (posted)
		*posted = false;
	if (rc || have)
		return rc;
	rc = tpd_pd_add_note(pd, incident_id, content, err);
	if (!rc && posted)
		*posted = true;
	return rc;
}

tpd_err tpd_pd_resolve_incident(tpd_pd *pd, const char *incident_id, char *err)
{
	char *body = NULL, *id = NULL, *path = NULL;
	pd_res res = {0};
	tpd_err rc;

	if ((rc = incident_write_check(pd, incident_id, "resolve", "resolve incidents", err)))
		goto out;
	body = tpd_pd_build_resolve_body();
	id = tpd_pd_urlencode(incident_id);
	path = xasprintf("/incidents/%s", id);
	pd_req r = {.call = "resolve_incident", .method = "PUT", .path = path, .body = body, .from = true};
	rc = pd_call(pd, &r, &res, err);
	if (rc != TPD_ERR_OK && res.pd_code == 1001) { /* Incident Already Resolved */
		rc = TPD_ERR_OK;
		if (err)
			err[0] = '\0';
	}
out:
	json_object_put(res.json);
	free(body);
	free(id);
	free(path);
	return rc;
}

typedef struct {
	const char *prefix;
	tpd_pd_incident_cb cb;
	void *ud;
} list_ctx;

static bool each_open(void *ud, json_object *it)
{
	list_ctx *c = ud;
	const char *id = pd_jid(it), *key = pd_jstr(it, "incident_key"), *status = pd_jstr(it, "status");

	if (id && key && is_open(status) && tpd_str_startswith(key, c->prefix ? c->prefix : ""))
		c->cb(c->ud, id, key);
	return false;
}

tpd_err tpd_pd_list_open_incidents(tpd_pd *pd, const char *key_prefix, tpd_pd_incident_cb cb, void *ud,
                                   char *err)
{
	list_ctx c = {.prefix = key_prefix, .cb = cb, .ud = ud};

	return list_pages(pd, "list_incidents", "/incidents",
	                  "&date_range=all&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged", "incidents",
	                  each_open, &c, NULL, err);
}

tpd_err tpd_pd_list_open_incidents_on(tpd_pd *pd, const char *key_prefix, const char *const *service_ids,
                                      size_t n, tpd_pd_incident_cb cb, void *ud, char *err)
{
	list_ctx c = {.prefix = key_prefix, .cb = cb, .ud = ud};
	tpd_buf q;
	tpd_err rc;

	if (!n)
		return TPD_ERR_OK;
	tpd_buf_init(&q, 0);
	tpd_buf_puts(&q, "&date_range=all&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged");
	for (size_t i = 0; i < n; i++) {
		char *e = tpd_pd_urlencode(service_ids[i]);

		tpd_buf_printf(&q, "&service_ids%%5B%%5D=%s", e);
		free(e);
	}
	rc = list_pages(pd, "list_incidents", "/incidents", q.data, "incidents", each_open, &c, NULL, err);
	tpd_buf_free(&q);
	return rc;
}
