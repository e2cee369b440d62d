/* metrics.c - a small thread-safe Prometheus registry and text exposition (format 0.0.4).
 *
 * One mutex per registry guards every family and series: observations are a hash lookup and an
 * addition, and rendering holds the lock only while it formats text, so both are short. Families
 * keep registration order and series keep first-seen order, which makes the output deterministic
 * (tests compare it byte for byte). Each labelled family is capped in series; label combinations
 * beyond the cap are dropped and counted instead of growing memory without bound.
 *
 * Collectors (for example the process collector reading /proc/self) run before the lock is taken
 * at render time and refresh gauges through the normal setters. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_impl.h"
#include "tpd/util.h"

static const double default_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

/* --- registry ---------------------------------------------------------------------------------- */

tpd_metrics *tpd_metrics_new(void)
{
	tpd_metrics *m = tpd_new(tpd_metrics);

	pthread_mutex_init(&m->mu, NULL);
	m->series_limit = TPD_METRICS_DEFAULT_SERIES_LIMIT;
	return m;
}

static void series_free(series *s, size_t n_labels)
{
	if (!s)
		return;
	for (size_t i = 0; i < n_labels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->buckets);
	free(s);
}

static void family_free(tpd_metric *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_series; i++)
		series_free(f->series[i], f->n_labels);
	free(f->series);
	free(f->index);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->labels);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}

void tpd_metrics_free(tpd_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_fams; i++)
		family_free(m->fams[i]);
	free(m->fams);
	free(m->collectors);
	free(m->proc);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void tpd_metrics_set_series_limit(tpd_metrics *m, size_t limit)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->series_limit = limit ? limit : TPD_METRICS_DEFAULT_SERIES_LIMIT;
	pthread_mutex_unlock(&m->mu);
}

uint64_t tpd_metrics_dropped_series(tpd_metrics *m)
{
	uint64_t n;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->mu);
	n = m->dropped;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void tpd_metrics_add_collector(tpd_metrics *m, tpd_metrics_collect_fn fn, void *ud)
{
	if (!m || !fn)
		return;
	pthread_mutex_lock(&m->mu);
	if (m->n_collectors == m->cap_collectors) {
		m->cap_collectors = m->cap_collectors ? m->cap_collectors * 2 : 4;
		m->collectors = xreallocarray(m->collectors, m->cap_collectors, sizeof(*m->collectors));
	}
	m->collectors[m->n_collectors++] = (collector){fn, ud};
	pthread_mutex_unlock(&m->mu);
}

/* --- names and registration -------------------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
	if (tpd_str_empty(s) || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':') || (unsigned char)*p > 127)
			return false;
	return true;
}

static bool valid_label_name(const char *s)
{
	if (tpd_str_empty(s) || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	if (s[0] == '_' && s[1] == '_')
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_') || (unsigned char)*p > 127)
			return false;
	return true;
}

/* Splits "a, b,c" into trimmed names; returns false on an invalid or duplicate name. */
static bool parse_labels(const char *spec, metric_kind kind, char ***out, size_t *n_out)
{
	char **names = NULL;
	size_t n = 0;
	bool ok = false;
	char *copy = NULL, *rest;

	*out = NULL;
	*n_out = 0;
	if (tpd_str_empty(spec))
		return true;
	copy = rest = xstrdup(spec);
	while (rest) {
		char *name = rest, *comma = strchr(rest, ',');

		if (comma)
			*comma = '\0';
		rest = comma ? comma + 1 : NULL;
		name = tpd_str_trim(name); /* an empty name ("a,,b") fails validation below */

		if (!valid_label_name(name) || (kind == KIND_HISTOGRAM && strcmp(name, "le") == 0))
			goto out;
		for (size_t i = 0; i < n; i++)
			if (strcmp(names[i], name) == 0)
				goto out;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(name);
	}
	ok = true;
out:
	free(copy);
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return false;
	}
	*out = names;
	*n_out = n;
	return true;
}

static bool same_labels(const tpd_metric *f, char **labels, size_t n)
{
	if (f->n_labels != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(f->labels[i], labels[i]) != 0)
			return false;
	return true;
}

static series *series_alloc(const tpd_metric *f)
{
	series *s = tpd_new(series);

	s->values = xcalloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
	if (f->kind == KIND_HISTOGRAM)
		s->buckets = xcalloc(f->n_bounds + 1, sizeof(uint64_t));
	return s;
}

static tpd_metric *do_register(tpd_metrics *m, metric_kind kind, const char *name, const char *help,
                               const char *label_spec, const double *buckets, size_t n_buckets)
{
	tpd_metric *f = NULL;
	char **labels = NULL;
	size_t n_labels = 0;

	if (!m || !valid_metric_name(name))
		return NULL;
	if (!parse_labels(label_spec, kind, &labels, &n_labels))
		return NULL;
	if (kind == KIND_HISTOGRAM) {
		if (!buckets || n_buckets == 0) {
			buckets = default_buckets;
			n_buckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
		}
		for (size_t i = 0; i < n_buckets; i++) {
			if (isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])) ||
			    (isinf(buckets[i]) && buckets[i] > 0))
				goto out;
		}
	}

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_fams; i++) {
		tpd_metric *e = m->fams[i];

		if (strcmp(e->name, name) != 0)
			continue;
		f = (e->kind == kind && same_labels(e, labels, n_labels)) ? e : NULL;
		pthread_mutex_unlock(&m->mu);
		goto out;
	}
	f = tpd_new(tpd_metric);
	f->reg = m;
	f->kind = kind;
	f->name = xstrdup(name);
	f->help = xstrdup(help ? help : "");
	f->labels = labels;
	f->n_labels = n_labels;
	labels = NULL;
	if (kind == KIND_HISTOGRAM) {
		f->bounds = xcalloc(n_buckets, sizeof(double));
		memcpy(f->bounds, buckets, n_buckets * sizeof(double));
		f->n_bounds = n_buckets;
	}
	if (f->n_labels == 0) {
		/* The one series of an unlabelled family exists from the start (value 0). */
		f->series = xcalloc(1, sizeof(series *));
		f->cap_series = 1;
		f->series[f->n_series++] = series_alloc(f);
	}
	if (m->n_fams == m->cap_fams) {
		m->cap_fams = m->cap_fams ? m->cap_fams * 2 : 16;
		m->fams = xreallocarray(m->fams, m->cap_fams, sizeof(*m->fams));
	}
	m->fams[m->n_fams++] = f;
	pthread_mutex_unlock(&m->mu);
out:
	if (labels) {
		for (size_t i = 0; i < n_labels; i++)
			free(labels[i]);
		free(labels);
	}
	return f;
}

tpd_metric *tpd_metrics_counter(tpd_metrics *m, const char *name, const char *help, const char *labels)
{
	return do_register(m, KIND_COUNTER, name, help, labels, NULL, 0);
}

tpd_metric *tpd_metrics_gauge(tpd_metrics *m, const char *name, const char *help, const char *labels)
{
	return do_register(m, KIND_GAUGE, name, help, labels, NULL, 0);
}

tpd_metric *tpd_metrics_histogram(tpd_metrics *m, const char *name, const char *help, const char *labels,
                                  const double *buckets, size_t n_buckets)
{
	return do_register(m, KIND_HISTOGRAM, name, help, labels, buckets, n_buckets);
}

/* --- series lookup ----------------------------------------------------------------------------- */

static uint64_t hash_values(const char **values, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
			h ^= *p;
			h *= 1099511628211ULL;
		}
		h ^= 0xff; /* separator: ("ab","c") differs from ("a","bc") */
		h *= 1099511628211ULL;
	}
	return h;
}

static bool series_matches(const tpd_metric *f, const series *s, uint64_t h, const char **values)
{
	if (s->hash != h)
		return false;
	for (size_t i = 0; i < f->n_labels; i++)
		if (strcmp(s->values[i], values[i]) != 0)
			return false;
	return true;
}

static void index_insert(tpd_metric *f, size_t pos)
{
	size_t mask = f->index_cap - 1;
	size_t i = (size_t)f->series[pos]->hash & mask;

	while (f->index[i])
		i = (i + 1) & mask;
	f->index[i] = pos + 1;
}

static void index_grow(tpd_metric *f)
{
	size_t cap = f->index_cap ? f->index_cap * 2 : 16;

	free(f->index);
	f->index = xcalloc(cap, sizeof(size_t));
	f->index_cap = cap;
	for (size_t i = 0; i < f->n_series; i++)
		index_insert(f, i);
}

/* Finds or creates the series for the label values in ap; NULL when the family is full.
 * Called with the registry lock held. */
static series *series_get(tpd_metric *f, va_list ap, bool create)
{
	const char *values[f->n_labels ? f->n_labels : 1];
	uint64_t h;
	series *s;

	if (f->n_labels == 0)
		return f->series[0];
	for (size_t i = 0; i < f->n_labels; i++) {
		const char *v = va_arg(ap, const char *);

		values[i] = v ? v : "";
	}
	h = hash_values(values, f->n_labels);
	if (f->index_cap) {
		size_t mask = f->index_cap - 1;

		for (size_t i = (size_t)h & mask; f->index[i]; i = (i + 1) & mask) {
			s = f->series[f->index[i] - 1];
			if (series_matches(f, s, h, values))
				return s;
		}
	}
	if (!create)
		return NULL;
	if (f->n_series >= f->reg->series_limit) {
		f->reg->dropped++;
		return NULL;
	}
	s = series_alloc(f);
	s->hash = h;
	for (size_t i = 0; i < f->n_labels; i++)
		s->values[i] = xstrdup(values[i]);
	if (f->n_series == f->cap_series) {
		f->cap_series = f->cap_series ? f->cap_series * 2 : 8;
		f->series = xreallocarray(f->series, f->cap_series, sizeof(series *));
	}
	f->series[f->n_series++] = s;
	/* Keep the load factor at or below one half. */
	if (f->n_series * 2 > f->index_cap)
		index_grow(f);
	else
		index_insert(f, f->n_series - 1);
	return s;
}

/* --- observations ------------------------------------------------------------------------------ */

static void family_add(tpd_metric *f, double v, va_list ap)
{
	series *s;

	if (!f || f->kind == KIND_HISTOGRAM)
		return;
	if (f->kind == KIND_COUNTER && !(v >= 0))
		return; /* rejects negatives and NaN */
	pthread_mutex_lock(&f->reg->mu);
	s = series_get(f, ap, true);
	if (s)
		s->value += v;
	pthread_mutex_unlock(&f->reg->mu);
}

void tpd_metric_add(tpd_metric *f, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	family_add(f, v, ap);
	va_end(ap);
}

void tpd_metric_inc(tpd_metric *f, ...)
{
	va_list ap;

	va_start(ap, f);
	family_add(f, 1, ap);
	va_end(ap);
}

/* Sets a series regardless of kind (gauges; the built-in collectors also set counters). */
static void family_set(tpd_metric *f, double v, va_list ap)
{
	series *s;

	pthread_mutex_lock(&f->reg->mu);
	s = series_get(f, ap, true);
	if (s)
		s->value = v;
	pthread_mutex_unlock(&f->reg->mu);
}

void tpd_metric_set(tpd_metric *f, double v, ...)
{
	va_list ap;

	if (!f || f->kind != KIND_GAUGE)
		return;
	va_start(ap, v);
	family_set(f, v, ap);
	va_end(ap);
}

void tpd_metric_set_raw(tpd_metric *f, double v, ...)
{
	va_list ap;

	if (!f || f->kind == KIND_HISTOGRAM)
		return;
	va_start(ap, v);
	family_set(f, v, ap);
	va_end(ap);
}

void tpd_metric_observe(tpd_metric *f, double v, ...)
{
	va_list ap;
	series *s;

	if (!f || f->kind != KIND_HISTOGRAM || isnan(v))
		return;
	va_start(ap, v);
	pthread_mutex_lock(&f->reg->mu);
	s = series_get(f, ap, true);
	if (s) {
		size_t i = 0;

		while (i < f->n_bounds && !(v <= f->bounds[i]))
			i++;
		s->buckets[i]++;
		s->sum += v;
		s->count++;
	}
	pthread_mutex_unlock(&f->reg->mu);
	va_end(ap);
}

double tpd_metric_value(tpd_metric *f, ...)
{
	va_list ap;
	series *s;
	double v = 0;

	if (!f)
		return 0;
	va_start(ap, f);
	pthread_mutex_lock(&f->reg->mu);
	s = series_get(f, ap, false);
	if (s)
		v = f->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
	pthread_mutex_unlock(&f->reg->mu);
	va_end(ap);
	return v;
}
