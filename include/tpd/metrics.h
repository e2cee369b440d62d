/* metrics.h - a small thread-safe Prometheus metrics registry (text exposition format 0.0.4).
 *
 * Families are registered once (by name; registering the same name again returns the existing
 * family) with a fixed list of label names. Observations pass exactly that many label values as
 * trailing const char * arguments. Every function accepts a NULL registry or family and then does
 * nothing, so modules work without metrics (unit tests).
 *
 * Label cardinality is the caller's duty: never a request id or a user name as a label value. */
#ifndef TPD_METRICS_H
#define TPD_METRICS_H

#include <stddef.h>

typedef struct tpd_metrics tpd_metrics;
typedef struct tpd_metric tpd_metric;

tpd_metrics *tpd_metrics_new(void);
void tpd_metrics_free(tpd_metrics *m);

/* labels: comma-separated label names ("method,code") or NULL for none. */
tpd_metric *tpd_metrics_counter(tpd_metrics *m, const char *name, const char *help, const char *labels);
tpd_metric *tpd_metrics_gauge(tpd_metrics *m, const char *name, const char *help, const char *labels);
/* buckets: ascending upper bounds (without +Inf); NULL/0 → default latency buckets
 * (.005 .01 .025 .05 .1 .25 .5 1 2.5 5 10). */
tpd_metric *tpd_metrics_histogram(tpd_metrics *m, const char *name, const char *help, const char *labels,
				  const double *buckets, size_t n_buckets);

/* Counter/gauge: add v (counters reject v < 0). Then one const char * per label. */
void tpd_metric_add(tpd_metric *f, double v, ...);
/* Counter/gauge: add 1. */
void tpd_metric_inc(tpd_metric *f, ...);
/* Gauge: set. */
void tpd_metric_set(tpd_metric *f, double v, ...);
/* Histogram: observe. */
void tpd_metric_observe(tpd_metric *f, double v, ...);
/* Current value of a counter/gauge series (0 if absent); for tests and readiness checks. */
double tpd_metric_value(tpd_metric *f, ...);

/* Renders all families in exposition format; the caller frees the result. */
char *tpd_metrics_render(tpd_metrics *m);

#endif
