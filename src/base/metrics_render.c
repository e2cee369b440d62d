/* metrics_render.c - the Prometheus text exposition (format 0.0.4) of a registry: collectors run
 * first, then families in registration order and series in first-seen order, under the lock. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_impl.h"
#include "tpd/util.h"

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
