/* metrics_impl.h - the registry's data structures, shared by its three files (private to
 * src/metrics*.c): metrics.c (registry, registration, series lookup, observations),
 * metrics_render.c (the text exposition) and metrics_std.c (process and build metrics). */
#ifndef TPD_METRICS_IMPL_H
#define TPD_METRICS_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "tpd/metrics.h"

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

/* Sets a counter or gauge without the counter's monotonicity check (collectors refresh counters
 * such as CPU seconds from /proc). Histograms are ignored. */
void tpd_metric_set_raw(tpd_metric *f, double v, ...);

#endif
