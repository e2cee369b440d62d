/* types.c - the domain model: access requests, reviews, plugin data. No I/O. */
#include <stdlib.h>
#include <string.h>

#include "tpd/types.h"
#include "tpd/util.h"

static const char *const state_names[] = {"NONE", "PENDING", "APPROVED", "DENIED", "PROMOTED"};

const char *tpd_request_state_name(tpd_request_state s)
{
	if ((unsigned)s > TPD_STATE_PROMOTED)
		return "NONE";
	return state_names[s];
}

bool tpd_request_state_resolved(tpd_request_state s)
{
	return s == TPD_STATE_APPROVED || s == TPD_STATE_DENIED || s == TPD_STATE_PROMOTED;
}

void tpd_access_request_clear(tpd_access_request *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->user);
	tpd_strv_free(r->roles, r->n_roles);
	free(r->request_reason);
	free(r->resolve_reason);
	for (size_t i = 0; i < r->n_annotations; i++) {
		free(r->annotations[i].key);
		tpd_strv_free(r->annotations[i].values, r->annotations[i].n_values);
	}
	free(r->annotations);
	for (size_t i = 0; i < r->n_reviews; i++) {
		free(r->reviews[i].author);
		free(r->reviews[i].reason);
	}
	free(r->reviews);
	free(r->revision);
	memset(r, 0, sizeof(*r));
}

void tpd_access_request_free(tpd_access_request *r)
{
	tpd_access_request_clear(r);
	free(r);
}

void tpd_access_request_add_role(tpd_access_request *r, const char *role)
{
	r->roles = xreallocarray(r->roles, r->n_roles + 1, sizeof(char *));
	r->roles[r->n_roles++] = xstrdup(role ? role : "");
}

void tpd_access_request_add_annotation(tpd_access_request *r, const char *key, const char *const *values,
                                       size_t n)
{
	tpd_annotation *a;

	r->annotations = xreallocarray(r->annotations, r->n_annotations + 1, sizeof(tpd_annotation));
	a = &r->annotations[r->n_annotations++];
	a->key = xstrdup(key ? key : "");
	a->n_values = n;
	a->values = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		a->values[i] = xstrdup(values[i] ? values[i] : "");
}

void tpd_access_request_add_review(tpd_access_request *r, const char *author, tpd_request_state proposed,
                                   int64_t created, const char *reason)
{
	tpd_review *v;

	r->reviews = xreallocarray(r->reviews, r->n_reviews + 1, sizeof(tpd_review));
	v = &r->reviews[r->n_reviews++];
	v->author = xstrdup(author ? author : "");
	v->proposed_state = proposed;
	v->created = created;
	v->created_nanos = 0;
	v->reason = xstrdup(reason ? reason : "");
}

tpd_access_request *tpd_access_request_dup_head(const tpd_access_request *r)
{
	tpd_access_request *d = tpd_new(tpd_access_request);

	d->id = xstrdup(r->id);
	d->user = xstrdup(r->user);
	for (size_t i = 0; i < r->n_roles; i++)
		tpd_access_request_add_role(d, r->roles[i]);
	d->state = r->state;
	d->created = r->created;
	d->expires = r->expires;
	d->request_reason = xstrdup(r->request_reason);
	d->resolve_reason = xstrdup(r->resolve_reason);
	d->revision = xstrdup(r->revision);
	return d;
}

tpd_access_request *tpd_access_request_dup(const tpd_access_request *r)
{
	tpd_access_request *d = tpd_access_request_dup_head(r);

	for (size_t i = 0; i < r->n_annotations; i++)
		tpd_access_request_add_annotation(d, r->annotations[i].key,
		                                  (const char *const *)r->annotations[i].values,
		                                  r->annotations[i].n_values);
	for (size_t i = 0; i < r->n_reviews; i++) {
		tpd_access_request_add_review(d, r->reviews[i].author, r->reviews[i].proposed_state,
		                              r->reviews[i].created, r->reviews[i].reason);
		d->reviews[i].created_nanos = r->reviews[i].created_nanos;
	}
	return d;
}

const tpd_annotation *tpd_access_request_annotation(const tpd_access_request *r, const char *key)
{
	for (size_t i = 0; r && key && i < r->n_annotations; i++) {
		if (!strcmp(r->annotations[i].key, key))
			return &r->annotations[i];
	}
	return NULL;
}

/* --- plugin data ------------------------------------------------------------------------------ */

const char *const tpd_plugin_data_keys[TPD_PLUGIN_DATA_NKEYS] = {
    "incident_id",   "service_id", "user",           "roles",       "created",         "request_reason",
    "reviews_count", "resolution", "resolve_reason", "pd_resolved", "extra_incidents",
};

static char **field_at(tpd_plugin_data *pd, size_t i)
{
	char **fields[TPD_PLUGIN_DATA_NKEYS] = {
	    &pd->incident_id,     &pd->service_id,    &pd->user,       &pd->roles,          &pd->created,
	    &pd->request_reason,  &pd->reviews_count, &pd->resolution, &pd->resolve_reason, &pd->pd_resolved,
	    &pd->extra_incidents,
	};
	return fields[i];
}

void tpd_plugin_data_init(tpd_plugin_data *pd)
{
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++)
		*field_at(pd, i) = xstrdup("");
}

void tpd_plugin_data_clear(tpd_plugin_data *pd)
{
	if (!pd)
		return;
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		free(*field_at(pd, i));
		*field_at(pd, i) = NULL;
	}
}

void tpd_plugin_data_copy(tpd_plugin_data *dst, const tpd_plugin_data *src)
{
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		const char *v = *field_at((tpd_plugin_data *)src, i);

		free(*field_at(dst, i));
		*field_at(dst, i) = xstrdup(v ? v : "");
	}
}

bool tpd_plugin_data_equal(const tpd_plugin_data *a, const tpd_plugin_data *b)
{
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		const char *x = *field_at((tpd_plugin_data *)a, i);
		const char *y = *field_at((tpd_plugin_data *)b, i);

		if (strcmp(x ? x : "", y ? y : ""))
			return false;
	}
	return true;
}

bool tpd_plugin_data_is_empty(const tpd_plugin_data *pd)
{
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		if (!tpd_str_empty(*field_at((tpd_plugin_data *)pd, i)))
			return false;
	}
	return true;
}

char **tpd_plugin_data_field(tpd_plugin_data *pd, const char *key)
{
	for (size_t i = 0; key && i < TPD_PLUGIN_DATA_NKEYS; i++) {
		if (!strcmp(tpd_plugin_data_keys[i], key))
			return field_at(pd, i);
	}
	return NULL;
}

const char *tpd_plugin_data_get(const tpd_plugin_data *pd, const char *key)
{
	char **f = tpd_plugin_data_field((tpd_plugin_data *)pd, key);

	return f && *f ? *f : (f ? "" : NULL);
}

bool tpd_plugin_data_set(tpd_plugin_data *pd, const char *key, const char *value)
{
	char **f = tpd_plugin_data_field(pd, key);

	if (!f)
		return false;
	free(*f);
	*f = xstrdup(value ? value : "");
	return true;
}

size_t tpd_plugin_data_reviews_count(const tpd_plugin_data *pd)
{
	const char *s = pd->reviews_count;
	size_t n = 0;

	if (!s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > 1000000)
			return 0;
		n = n * 10 + (size_t)(*s - '0');
	}
	return n;
}
