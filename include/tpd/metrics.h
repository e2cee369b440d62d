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

/* --- Additions by the status module (existing declarations above are unchanged). ---------------
 *
 * Registration details: a name that is not a valid Prometheus metric name, a label name that is
 * not valid (or "le" on a histogram, or starts with "__"), buckets that are not strictly ascending,
 * or re-registering a name with another type or other label names all return NULL (and the NULL
 * family then ignores every call). Unlabelled families expose their single series (value 0) from
 * registration on; labelled families create a series on the first use of a label combination, up
 * to the per-family series limit, after which new combinations are dropped and counted. A NULL
 * label value counts as "". Histograms ignore NaN observations. tpd_metric_value on a histogram
 * returns its observation count. Output order: families in registration order, series in
 * first-seen order; families with no series are left out. */

#include <stdbool.h>
#include <stdint.h>

#include "tpd/util.h"

/* Prefix of every application metric (process_* metrics carry none). */
#define TPD_METRICS_PREFIX "teleport_pagerduty_"
/* Default cap of series per labelled family. */
#define TPD_METRICS_DEFAULT_SERIES_LIMIT 1000

/* Sets the cap of series per labelled family (0 restores the default); affects new series only. */
void tpd_metrics_set_series_limit(tpd_metrics *m, size_t limit);
/* Total label combinations dropped so far because their family was at the series limit. */
uint64_t tpd_metrics_dropped_series(tpd_metrics *m);

/* A collector runs at the start of every render, on the rendering thread and outside the registry
 * lock, to refresh values from the outside world (it may call tpd_metric_set etc.). */
typedef void (*tpd_metrics_collect_fn)(tpd_metrics *m, void *ud);
/* Adds a collector; ud stays owned by the caller and must outlive the registry. */
void tpd_metrics_add_collector(tpd_metrics *m, tpd_metrics_collect_fn fn, void *ud);
/* Registers process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds, read from /proc at render time. */
void tpd_metrics_add_process_collector(tpd_metrics *m);
/* Sets teleport_pagerduty_build_info{version,commit} 1 (NULL strings become "unknown"). */
void tpd_metrics_set_build_info(tpd_metrics *m, const char *version, const char *commit);
/* Sets teleport_pagerduty_start_time_seconds (Unix seconds). */
void tpd_metrics_set_start_time(tpd_metrics *m, double unix_seconds);
/* The standard set for the daemon: build info, start time = now, process collector, and
 * teleport_pagerduty_metrics_series_dropped_total. */
void tpd_metrics_add_standard(tpd_metrics *m, const char *version, const char *commit);
/* Appends the exposition to b; false when b's max was hit (b then holds a truncated text). */
bool tpd_metrics_render_to(tpd_metrics *m, tpd_buf *b);
/* Formats v the way the exposition does ("3", "0.25", "+Inf", "NaN"); buf >= 32 bytes. */
void tpd_metrics_format_value(double v, char *buf, size_t len);

#endif
