/* extras.c - one incident per notify service: the annotation's services in order, and the
 * extra_incidents plugin data value (see tpd/extras.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tpd/extras.h"
#include "tpd/reconcile.h"
#include "tpd/util.h"

size_t tpd_notify_services(const tpd_access_request *r, const char *annotation, char ***out)
{
	const tpd_annotation *a = r ? tpd_access_request_annotation(r, annotation) : NULL;
	char **v;
	size_t k = 0;

	*out = NULL;
	if (!a || !a->n_values)
		return 0;
	v = xcalloc(a->n_values, sizeof(char *));
	for (size_t i = 0; i < a->n_values; i++) {
		bool dup = tpd_str_empty(a->values[i]);

		for (size_t j = 0; j < k && !dup; j++)
			dup = strcasecmp(v[j], a->values[i]) == 0;
		if (!dup)
			v[k++] = xstrdup(a->values[i]);
	}
	if (!k) {
		free(v);
		return 0;
	}
	*out = v;
	return k;
}

static bool must_escape(unsigned char c)
{
	return c == '%' || c == ',' || c == '=' || c < 0x20 || c == 0x7f;
}

static char *encode(const char *s)
{
	tpd_buf b;

	tpd_buf_init(&b, 0);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (must_escape(*p))
			tpd_buf_printf(&b, "%%%02X", *p);
		else
			tpd_buf_printf(&b, "%c", *p);
	}
	return b.data ? tpd_buf_steal(&b) : xstrdup("");
}

/* Decodes s[0..n) (a malformed escape is kept as written). */
static char *decode(const char *s, size_t n)
{
	char *d = xcalloc(n + 1, 1);
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (s[i] == '%' && i + 2 < n && (h = tpd_hexval(s[i + 1])) >= 0 &&
		    (l = tpd_hexval(s[i + 2])) >= 0) {
			d[w++] = (char)(h * 16 + l);
			i += 2;
		} else {
			d[w++] = s[i];
		}
	}
	return d;
}

/* Calls fn(ud, name, id) for each "name=id" entry; stops when fn returns true. */
static bool each(const char *extras, bool (*fn)(void *ud, const char *name, const char *id), void *ud)
{
	const char *p = extras ? extras : "";

	while (*p) {
		const char *end = strchr(p, ','), *eq;
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool stop = false;

		eq = memchr(p, '=', len);
		if (eq) {
			char *name = decode(p, (size_t)(eq - p)),
			     *id = xstrndup(eq + 1, len - (size_t)(eq - p) - 1);

			stop = fn(ud, name, id);
			free(name);
			free(id);
		}
		if (stop)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

struct find {
	const char *service;
	char *id;
};

static bool find_fn(void *ud, const char *name, const char *id)
{
	struct find *f = ud;

	if (strcmp(name, f->service))
		return false;
	f->id = xstrdup(id);
	return true;
}

bool tpd_extras_get(const char *extras, const char *service, char **id)
{
	struct find f = {service, NULL};
	bool found = each(extras, find_fn, &f);

	if (id)
		*id = f.id;
	else
		free(f.id);
	return found;
}

char *tpd_extras_add(const char *extras, const char *service, const char *id)
{
	char *name = encode(service), *out;

	out = xasprintf("%s%s%s=%s", extras ? extras : "", tpd_str_empty(extras) ? "" : ",", name,
	                id ? id : "");
	free(name);
	return out;
}

struct ids {
	char **v;
	size_t n, cap;
};

static bool ids_fn(void *ud, const char *name, const char *id)
{
	struct ids *s = ud;

	(void)name;
	if (tpd_str_empty(id))
		return false;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4;
		s->v = xrealloc(s->v, s->cap * sizeof(char *));
	}
	s->v[s->n++] = xstrdup(id);
	return false;
}

size_t tpd_extras_ids(const char *extras, char ***ids)
{
	struct ids s = {NULL, 0, 0};

	each(extras, ids_fn, &s);
	*ids = s.v;
	return s.n;
}

char *tpd_extra_incident_key(const char *request_id, const char *service_id)
{
	return xasprintf(TPD_INCIDENT_KEY_PREFIX "%s/%s", request_id, service_id);
}
