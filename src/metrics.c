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
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tpd/metrics.h"
#include "tpd/util.h"

typedef enum {
	KIND_COUNTER,
	KIND_GAUGE,
	KIND_HISTOGRAM,
} metric_kind;

typedef struct {
	char **values; /* n_labels strings */
	uint64_t hash;
	double value;      /* counter / gauge */
	uint64_t *buckets; /* histogram: n_bounds + 1 counts, not cumulative; last is +Inf */
	double sum;
	uint64_t count;
} series;

struct tpd_metric {
	tpd_metrics *reg;
	metric_kind kind;
	char *name;
	char *help;
	char **labels;
	size_t n_labels;
	double *bounds;
	size_t n_bounds;
	series **series;
	size_t n_series, cap_series;
	size_t *index; /* open addressing: series position + 1, 0 = empty */
	size_t index_cap;
};

typedef struct {
	tpd_metrics_collect_fn fn;
	void *ud;
} collector;

/* State of the built-in collectors, owned by the registry. */
typedef struct {
	tpd_metric *cpu, *rss, *vsize, *fds, *max_fds, *start;
	double start_time;
	long clk_tck;
	long page_size;
} process_state;

struct tpd_metrics {
	pthread_mutex_t mu;
	tpd_metric **fams;
	size_t n_fams, cap_fams;
	collector *collectors;
	size_t n_collectors, cap_collectors;
	size_t series_limit;
	uint64_t dropped;
	process_state *proc;
	tpd_metric *dropped_family;
};

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

static void set_raw(tpd_metric *f, double v, ...)
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

/* --- rendering --------------------------------------------------------------------------------- */

void tpd_metrics_format_value(double v, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 1e18) {
		snprintf(buf, len, "%.0f", v == 0 ? 0.0 : v); /* no "-0", no exponent */
	} else {
		/* Shortest precision that reads back as the same double. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, len, "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
}

/* Appends s with the given characters escaped (label values escape '"' too, HELP does not). */
static bool put_escaped(tpd_buf *b, const char *s, bool quote)
{
	const char *run = s;

	for (const char *p = s;; p++) {
		const char *rep = NULL;

		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '\n')
			rep = "\\n";
		else if (*p == '"' && quote)
			rep = "\\\"";
		else if (*p != '\0')
			continue;
		if (!tpd_buf_append(b, run, (size_t)(p - run)))
			return false;
		if (!rep)
			return true;
		if (!tpd_buf_puts(b, rep))
			return false;
		run = p + 1;
	}
}

/* name{labels[,le="x"]} value\n */
static bool put_sample(tpd_buf *b, const tpd_metric *f, const series *s, const char *suffix, const char *le,
                       double v)
{
	char num[40];
	bool any = false;

	if (!tpd_buf_puts(b, f->name) || !tpd_buf_puts(b, suffix))
		return false;
	for (size_t i = 0; i < f->n_labels; i++) {
		if (!tpd_buf_puts(b, i == 0 ? "{" : ",") || !tpd_buf_puts(b, f->labels[i]) ||
		    !tpd_buf_puts(b, "=\"") || !put_escaped(b, s->values[i], true) || !tpd_buf_puts(b, "\""))
			return false;
		any = true;
	}
	if (le) {
		if (!tpd_buf_puts(b, any ? ",le=\"" : "{le=\"") || !tpd_buf_puts(b, le) ||
		    !tpd_buf_puts(b, "\""))
			return false;
		any = true;
	}
	if (any && !tpd_buf_puts(b, "}"))
		return false;
	tpd_metrics_format_value(v, num, sizeof(num));
	return tpd_buf_printf(b, " %s\n", num);
}

static bool render_family(tpd_buf *b, const tpd_metric *f)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};

	if (f->n_series == 0)
		return true;
	if (!tpd_buf_printf(b, "# HELP %s ", f->name) || !put_escaped(b, f->help, false) ||
	    !tpd_buf_printf(b, "\n# TYPE %s %s\n", f->name, type_names[f->kind]))
		return false;
	for (size_t i = 0; i < f->n_series; i++) {
		const series *s = f->series[i];

		if (f->kind != KIND_HISTOGRAM) {
			if (!put_sample(b, f, s, "", NULL, s->value))
				return false;
			continue;
		}
		uint64_t cum = 0;
		char le[40];

		for (size_t j = 0; j <= f->n_bounds; j++) {
			cum += s->buckets[j];
			if (j < f->n_bounds)
				tpd_metrics_format_value(f->bounds[j], le, sizeof(le));
			else
				snprintf(le, sizeof(le), "+Inf");
			if (!put_sample(b, f, s, "_bucket", le, (double)cum))
				return false;
		}
		if (!put_sample(b, f, s, "_sum", NULL, s->sum) ||
		    !put_sample(b, f, s, "_count", NULL, (double)s->count))
			return false;
	}
	return true;
}

bool tpd_metrics_render_to(tpd_metrics *m, tpd_buf *b)
{
	bool ok = true;
	size_t n;

	if (!m || !b)
		return true;
	/* Collectors first, without the lock (they take it through the setters). The list only
	 * grows; each entry is copied under the lock, so a concurrent add is harmless. */
	pthread_mutex_lock(&m->mu);
	n = m->n_collectors;
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < n; i++) {
		collector c;

		pthread_mutex_lock(&m->mu);
		c = m->collectors[i];
		pthread_mutex_unlock(&m->mu);
		c.fn(m, c.ud);
	}
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_fams && ok; i++)
		ok = render_family(b, m->fams[i]);
	pthread_mutex_unlock(&m->mu);
	return ok;
}

char *tpd_metrics_render(tpd_metrics *m)
{
	tpd_buf b;

	if (!m)
		return NULL;
	tpd_buf_init(&b, 0);
	tpd_metrics_render_to(m, &b);
	return tpd_buf_steal(&b);
}

/* --- standard metrics -------------------------------------------------------------------------- */

/* Reads a small /proc file into buf; returns false when it cannot. */
static bool read_small(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "re");
	size_t n;

	if (!fp)
		return false;
	n = fread(buf, 1, len - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return n > 0;
}

/* Fields of /proc/self/stat after the command name: field k (1-based, as in proc(5)) is at index
 * k - 3 of the tokens that follow the last ')'. */
static bool proc_stat_fields(char *buf, size_t len, unsigned long long *utime, unsigned long long *stime,
                             unsigned long long *starttime, unsigned long long *vsize)
{
	char *p, *save = NULL;
	int field = 3;

	if (!read_small("/proc/self/stat", buf, len))
		return false;
	p = strrchr(buf, ')');
	if (!p)
		return false;
	for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
		if (field == 14)
			*utime = strtoull(tok, NULL, 10);
		else if (field == 15)
			*stime = strtoull(tok, NULL, 10);
		else if (field == 22)
			*starttime = strtoull(tok, NULL, 10);
		else if (field == 23) {
			*vsize = strtoull(tok, NULL, 10);
			return true;
		}
	}
	return false;
}

static double boot_time(void)
{
	char buf[8192];
	const char *p;

	if (!read_small("/proc/stat", buf, sizeof(buf)))
		return 0;
	p = strstr(buf, "\nbtime ");
	return p ? strtod(p + 7, NULL) : 0;
}

static void process_collect(tpd_metrics *m, void *ud)
{
	process_state *ps = ud;
	char buf[1024];
	unsigned long long ut = 0, st = 0, start = 0, vsize = 0;
	struct rlimit rl;
	DIR *d;

	(void)m;
	if (proc_stat_fields(buf, sizeof(buf), &ut, &st, &start, &vsize)) {
		set_raw(ps->cpu, (double)(ut + st) / (double)ps->clk_tck);
		set_raw(ps->vsize, (double)vsize);
	}
	if (read_small("/proc/self/statm", buf, sizeof(buf))) {
		unsigned long long size = 0, resident = 0;

		if (sscanf(buf, "%llu %llu", &size, &resident) == 2)
			set_raw(ps->rss, (double)resident * (double)ps->page_size);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		double n = 0;

		while (readdir(d))
			n++;
		closedir(d);
		set_raw(ps->fds, n > 3 ? n - 3 : 0); /* ".", ".." and the directory's own fd */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		set_raw(ps->max_fds, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
	set_raw(ps->start, ps->start_time);
}

void tpd_metrics_add_process_collector(tpd_metrics *m)
{
	process_state *ps;
	char buf[1024];
	unsigned long long ut = 0, st = 0, start = 0, vsize = 0;

	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	if (m->proc) {
		pthread_mutex_unlock(&m->mu);
		return;
	}
	ps = m->proc = tpd_new(process_state);
	pthread_mutex_unlock(&m->mu);
	ps->clk_tck = sysconf(_SC_CLK_TCK);
	if (ps->clk_tck <= 0)
		ps->clk_tck = 100;
	ps->page_size = sysconf(_SC_PAGESIZE);
	if (ps->page_size <= 0)
		ps->page_size = 4096;
	if (proc_stat_fields(buf, sizeof(buf), &ut, &st, &start, &vsize))
		ps->start_time = boot_time() + (double)start / (double)ps->clk_tck;
	else
		ps->start_time = (double)tpd_wall_ms() / 1000.0;
	ps->cpu = tpd_metrics_counter(m, "process_cpu_seconds_total",
	                              "Total user and system CPU time spent in seconds.", NULL);
	ps->rss =
	    tpd_metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
	ps->vsize =
	    tpd_metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL);
	ps->fds = tpd_metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", NULL);
	ps->max_fds =
	    tpd_metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.", NULL);
	ps->start = tpd_metrics_gauge(m, "process_start_time_seconds",
	                              "Start time of the process since unix epoch in seconds.", NULL);
	tpd_metrics_add_collector(m, process_collect, ps);
}

void tpd_metrics_set_build_info(tpd_metrics *m, const char *version, const char *commit)
{
	tpd_metric *f = tpd_metrics_gauge(
	    m, TPD_METRICS_PREFIX "build_info",
	    "A metric with a constant '1' value labelled by version and commit.", "version,commit");

	tpd_metric_set(f, 1, tpd_str_empty(version) ? "unknown" : version,
	               tpd_str_empty(commit) ? "unknown" : commit);
}

void tpd_metrics_set_start_time(tpd_metrics *m, double unix_seconds)
{
	tpd_metric *f = tpd_metrics_gauge(m, TPD_METRICS_PREFIX "start_time_seconds",
	                                  "Time the plugin started, in seconds since the Unix epoch.", NULL);

	tpd_metric_set(f, unix_seconds);
}

static void dropped_collect(tpd_metrics *m, void *ud)
{
	(void)ud;
	set_raw(m->dropped_family, (double)tpd_metrics_dropped_series(m));
}

void tpd_metrics_add_standard(tpd_metrics *m, const char *version, const char *commit)
{
	tpd_metric *f;

	if (!m)
		return;
	tpd_metrics_set_build_info(m, version, commit);
	tpd_metrics_set_start_time(m, (double)(tpd_wall_ms() / 1000));
	tpd_metrics_add_process_collector(m);
	f = tpd_metrics_counter(
	    m, TPD_METRICS_PREFIX "metrics_series_dropped_total",
	    "Label combinations not recorded because their metric family was at its series limit.", NULL);
	pthread_mutex_lock(&m->mu);
	bool first = m->dropped_family == NULL;
	m->dropped_family = f;
	pthread_mutex_unlock(&m->mu);
	if (first && f)
		tpd_metrics_add_collector(m, dropped_collect, NULL);
}
