/* Unit tests for metrics.c: exact exposition text for counters, gauges and histograms, label and
 * HELP escaping, value formatting, registration rules, the series cap, NULL safety, the process
 * collector, and exact totals under concurrent updates from several threads. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tpd/metrics.h"
#include "tpd/util.h"

static void assert_render(tpd_metrics *m, const char *want)
{
	char *got = tpd_metrics_render(m);

	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, got);
	assert_string_equal(got, want);
	free(got);
}

static void test_counter_gauge_text(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	tpd_metric *c, *g, *u;

	(void)state;
	c = tpd_metrics_counter(m, "teleport_pagerduty_reconcile_total", "Reconciles by result.", "result");
	g = tpd_metrics_gauge(m, "teleport_pagerduty_workqueue_depth", "Items waiting.", NULL);
	u = tpd_metrics_counter(m, "teleport_pagerduty_unused_total", "Never used labelled family.", "x");
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(u);
	/* Unlabelled families show 0 from the start; labelled families without series are omitted. */
	assert_render(m, "# HELP teleport_pagerduty_workqueue_depth Items waiting.\n"
	                 "# TYPE teleport_pagerduty_workqueue_depth gauge\n"
	                 "teleport_pagerduty_workqueue_depth 0\n");

	tpd_metric_inc(c, "success");
	tpd_metric_add(c, 2, "error");
	tpd_metric_inc(c, "success");
	tpd_metric_add(c, -5, "success");    /* counters reject negative values */
	tpd_metric_add(c, NAN, "success");   /* and NaN */
	tpd_metric_set(c, 100, "success");   /* set is for gauges only */
	tpd_metric_observe(c, 1, "success"); /* observe is for histograms only */
	tpd_metric_set(g, 7);
	tpd_metric_add(g, -2.5);
	tpd_metric_inc(g);
	assert_true(tpd_metric_value(c, "success") == 2);
	assert_true(tpd_metric_value(c, "error") == 2);
	assert_true(tpd_metric_value(c, "absent") == 0);
	assert_true(tpd_metric_value(g) == 5.5);
	assert_render(m, "# HELP teleport_pagerduty_reconcile_total Reconciles by result.\n"
	                 "# TYPE teleport_pagerduty_reconcile_total counter\n"
	                 "teleport_pagerduty_reconcile_total{result=\"success\"} 2\n"
	                 "teleport_pagerduty_reconcile_total{result=\"error\"} 2\n"
	                 "# HELP teleport_pagerduty_workqueue_depth Items waiting.\n"
	                 "# TYPE teleport_pagerduty_workqueue_depth gauge\n"
	                 "teleport_pagerduty_workqueue_depth 5.5\n");
	tpd_metrics_free(m);
}

static void test_histogram_text(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	const double b[] = {0.1, 1, 2.5};
	tpd_metric *h, *d;

	(void)state;
	h = tpd_metrics_histogram(m, "req_duration_seconds", "Request latency.", "call", b, 3);
	assert_non_null(h);
	tpd_metric_observe(h, 0.05, "get");
	tpd_metric_observe(h, 0.1, "get"); /* le is inclusive */
	tpd_metric_observe(h, 2, "get");
	tpd_metric_observe(h, 30, "get");
	tpd_metric_observe(h, NAN, "get"); /* ignored */
	tpd_metric_observe(h, 1, "post");
	tpd_metric_inc(h, "get"); /* not a counter: ignored */
	assert_true(tpd_metric_value(h, "get") == 4);
	assert_render(m, "# HELP req_duration_seconds Request latency.\n"
	                 "# TYPE req_duration_seconds histogram\n"
	                 "req_duration_seconds_bucket{call=\"get\",le=\"0.1\"} 2\n"
	                 "req_duration_seconds_bucket{call=\"get\",le=\"1\"} 2\n"
	                 "req_duration_seconds_bucket{call=\"get\",le=\"2.5\"} 3\n"
	                 "req_duration_seconds_bucket{call=\"get\",le=\"+Inf\"} 4\n"
	                 "req_duration_seconds_sum{call=\"get\"} 32.15\n"
	                 "req_duration_seconds_count{call=\"get\"} 4\n"
	                 "req_duration_seconds_bucket{call=\"post\",le=\"0.1\"} 0\n"
	                 "req_duration_seconds_bucket{call=\"post\",le=\"1\"} 1\n"
	                 "req_duration_seconds_bucket{call=\"post\",le=\"2.5\"} 1\n"
	                 "req_duration_seconds_bucket{call=\"post\",le=\"+Inf\"} 1\n"
	                 "req_duration_seconds_sum{call=\"post\"} 1\n"
	                 "req_duration_seconds_count{call=\"post\"} 1\n");
	tpd_metrics_free(m);

	/* Default buckets, no labels: present (all zero) from registration. */
	m = tpd_metrics_new();
	d = tpd_metrics_histogram(m, "work_seconds", "Work.", NULL, NULL, 0);
	tpd_metric_observe(d, 0.007);
	assert_render(m, "# HELP work_seconds Work.\n"
	                 "# TYPE work_seconds histogram\n"
	                 "work_seconds_bucket{le=\"0.005\"} 0\n"
	                 "work_seconds_bucket{le=\"0.01\"} 1\n"
	                 "work_seconds_bucket{le=\"0.025\"} 1\n"
	                 "work_seconds_bucket{le=\"0.05\"} 1\n"
	                 "work_seconds_bucket{le=\"0.1\"} 1\n"
	                 "work_seconds_bucket{le=\"0.25\"} 1\n"
	                 "work_seconds_bucket{le=\"0.5\"} 1\n"
	                 "work_seconds_bucket{le=\"1\"} 1\n"
	                 "work_seconds_bucket{le=\"2.5\"} 1\n"
	                 "work_seconds_bucket{le=\"5\"} 1\n"
	                 "work_seconds_bucket{le=\"10\"} 1\n"
	                 "work_seconds_bucket{le=\"+Inf\"} 1\n"
	                 "work_seconds_sum 0.007\n"
	                 "work_seconds_count 1\n");
	tpd_metrics_free(m);
}

static void test_escaping(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	tpd_metric *g;

	(void)state;
	g = tpd_metrics_gauge(m, "esc", "Back\\slash and\nnewline \"quotes\" stay.", "a,b");
	tpd_metric_set(g, 1, "q\"uote", "back\\slash\nnl");
	tpd_metric_set(g, 2, NULL, "");
	assert_render(m, "# HELP esc Back\\\\slash and\\nnewline \"quotes\" stay.\n"
	                 "# TYPE esc gauge\n"
	                 "esc{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 1\n"
	                 "esc{a=\"\",b=\"\"} 2\n");
	/* Label values with the same concatenation are different series. */
	tpd_metric_set(g, 3, "ab", "c");
	tpd_metric_set(g, 4, "a", "bc");
	assert_true(tpd_metric_value(g, "ab", "c") == 3);
	assert_true(tpd_metric_value(g, "a", "bc") == 4);
	tpd_metrics_free(m);
}

static void test_value_format(void **state)
{
	char buf[40];
	struct {
		double v;
		const char *want;
	} cases[] = {
	    {0, "0"},
	    {-0.0, "0"},
	    {1, "1"},
	    {-3, "-3"},
	    {1e6, "1000000"},
	    {1234567890123.0, "1234567890123"},
	    {0.1, "0.1"},
	    {0.25, "0.25"},
	    {1.0 / 3, "0.3333333333333333"},
	    {1e-9, "1e-09"},
	    {1e20, "1e+20"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	    {NAN, "NaN"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tpd_metrics_format_value(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
		if (!isnan(cases[i].v))
			assert_true(strtod(buf, NULL) == cases[i].v);
	}
}

static void test_registration_rules(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	tpd_metric *a, *b;
	const double bad[] = {1, 1};
	const double inf[] = {1, INFINITY};

	(void)state;
	a = tpd_metrics_counter(m, "x_total", "X.", "a, b");
	b = tpd_metrics_counter(m, "x_total", "other help", "a,b");
	assert_ptr_equal(a, b);                                    /* same name → same family */
	assert_null(tpd_metrics_gauge(m, "x_total", "X.", "a,b")); /* other type */
	assert_null(tpd_metrics_counter(m, "x_total", "X.", "a")); /* other labels */
	assert_null(tpd_metrics_counter(m, "1bad", "X.", NULL));   /* bad names */
	assert_null(tpd_metrics_counter(m, "has-dash", "X.", NULL));
	assert_null(tpd_metrics_counter(m, "", "X.", NULL));
	assert_null(tpd_metrics_counter(m, NULL, "X.", NULL));
	assert_null(tpd_metrics_counter(m, "y_total", "X.", "__reserved"));
	assert_null(tpd_metrics_counter(m, "y_total", "X.", "a,a"));
	assert_null(tpd_metrics_counter(m, "y_total", "X.", "a,,b"));
	assert_null(tpd_metrics_counter(m, "y_total", "X.", "bad-label"));
	assert_null(tpd_metrics_histogram(m, "h", "H.", "le", NULL, 0)); /* le reserved */
	assert_null(tpd_metrics_histogram(m, "h", "H.", NULL, bad, 2));  /* not ascending */
	assert_null(tpd_metrics_histogram(m, "h", "H.", NULL, inf, 2));  /* +Inf is implicit */
	assert_non_null(tpd_metrics_counter(m, "ns:sub_total", "Colons are allowed.", NULL));
	tpd_metrics_free(m);
}

static void test_series_limit(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	tpd_metric *c;
	char v[16];
	char *text;

	(void)state;
	tpd_metrics_set_series_limit(m, 3);
	c = tpd_metrics_counter(m, "calls_total", "Calls.", "k");
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		tpd_metric_inc(c, v);
	}
	tpd_metric_inc(c, "v0"); /* existing series still count */
	assert_true(tpd_metric_value(c, "v0") == 2);
	assert_true(tpd_metric_value(c, "v5") == 0);
	assert_int_equal(tpd_metrics_dropped_series(m), 7);
	text = tpd_metrics_render(m);
	assert_non_null(strstr(text, "calls_total{k=\"v2\"} 1\n"));
	assert_null(strstr(text, "v3"));
	free(text);

	/* The default cap is 1000 and the standard set exports the drop count. */
	tpd_metrics_set_series_limit(m, 0);
	tpd_metrics_add_standard(m, "1.2.3", "abc");
	for (int i = 0; i < 1100; i++) {
		snprintf(v, sizeof(v), "w%d", i);
		tpd_metric_inc(c, v);
	}
	assert_int_equal(tpd_metrics_dropped_series(m), 7 + 103);
	text = tpd_metrics_render(m);
	assert_non_null(strstr(text, "\nteleport_pagerduty_metrics_series_dropped_total 110\n"));
	free(text);
	tpd_metrics_free(m);
}

static void test_null_safety(void **state)
{
	tpd_metrics *m;
	tpd_metric *nf = NULL;
	tpd_buf b;

	(void)state;
	tpd_metrics_free(NULL);
	assert_null(tpd_metrics_counter(NULL, "a_total", "A.", NULL));
	assert_null(tpd_metrics_gauge(NULL, "a", "A.", "x"));
	assert_null(tpd_metrics_histogram(NULL, "a", "A.", NULL, NULL, 0));
	tpd_metric_add(nf, 1, "x");
	tpd_metric_inc(nf, "x");
	tpd_metric_set(nf, 1, "x");
	tpd_metric_observe(nf, 1, "x");
	assert_true(tpd_metric_value(nf, "x") == 0);
	assert_null(tpd_metrics_render(NULL));
	tpd_buf_init(&b, 0);
	assert_true(tpd_metrics_render_to(NULL, &b));
	assert_int_equal(b.len, 0);
	tpd_metrics_set_series_limit(NULL, 5);
	assert_int_equal(tpd_metrics_dropped_series(NULL), 0);
	tpd_metrics_add_collector(NULL, NULL, NULL);
	tpd_metrics_add_process_collector(NULL);
	tpd_metrics_set_build_info(NULL, "v", "c");
	tpd_metrics_set_start_time(NULL, 1);
	tpd_metrics_add_standard(NULL, "v", "c");

	/* NULL help and NULL label values are fine too. */
	m = tpd_metrics_new();
	tpd_metric_inc(tpd_metrics_counter(m, "n_total", NULL, "a"), NULL);
	assert_render(m, "# HELP n_total \n# TYPE n_total counter\nn_total{a=\"\"} 1\n");
	/* A render into a capped buffer fails cleanly. */
	tpd_buf_init(&b, 10);
	assert_false(tpd_metrics_render_to(m, &b));
	assert_true(b.len <= 10);
	tpd_buf_free(&b);
	tpd_metrics_free(m);
}

static int collector_calls;

static void count_collector(tpd_metrics *m, void *ud)
{
	(void)m;
	collector_calls++;
	tpd_metric_set(ud, collector_calls);
}

static void test_collectors_and_standard(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	tpd_metric *g = tpd_metrics_gauge(m, "collected", "Set by a collector.", NULL);
	char *text;
	double start;
	const char *p;

	(void)state;
	tpd_metrics_add_collector(m, count_collector, g);
	tpd_metrics_add_standard(m, "0.1.0", "deadbeef");
	tpd_metrics_add_standard(m, "0.1.0", "deadbeef"); /* idempotent */
	text = tpd_metrics_render(m);
	free(text);
	text = tpd_metrics_render(m);
	assert_int_equal(collector_calls, 2);
	assert_non_null(strstr(text, "collected 2\n"));
	assert_non_null(strstr(text,
	                       "# TYPE teleport_pagerduty_build_info gauge\n"
	                       "teleport_pagerduty_build_info{version=\"0.1.0\",commit=\"deadbeef\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
	assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
	assert_non_null(strstr(text, "\nprocess_virtual_memory_bytes "));
	assert_non_null(strstr(text, "\nprocess_open_fds "));
	assert_non_null(strstr(text, "\nprocess_max_fds "));
	assert_null(strstr(text, "\nprocess_resident_memory_bytes 0\n"));
	assert_null(strstr(text, "\nprocess_open_fds 0\n"));
	/* Only one copy of each family. */
	p = strstr(text, "# TYPE process_open_fds");
	assert_non_null(p);
	assert_null(strstr(p + 1, "# TYPE process_open_fds"));
	/* The process started within the last hour, and no later than the plugin's start time. */
	p = strstr(text, "\nprocess_start_time_seconds ");
	assert_non_null(p);
	start = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
	assert_true(start > (double)tpd_wall_ms() / 1000 - 3600);
	assert_true(start <= (double)tpd_wall_ms() / 1000 + 1);
	p = strstr(text, "\nteleport_pagerduty_start_time_seconds ");
	assert_non_null(p);
	assert_true(strtod(p + strlen("\nteleport_pagerduty_start_time_seconds "), NULL) >= start - 1);
	free(text);
	tpd_metrics_free(m);
}

#define THREADS 8
#define ITERS   20000

typedef struct {
	tpd_metrics *m;
	tpd_metric *c, *h, *g;
	int id;
} worker_arg;

static void *worker(void *p)
{
	worker_arg *a = p;
	char label[16];

	snprintf(label, sizeof(label), "t%d", a->id % 4);
	for (int i = 0; i < ITERS; i++) {
		tpd_metric_inc(a->c, label);
		tpd_metric_add(a->g, 1);
		tpd_metric_observe(a->h, (i % 2) ? 0.5 : 5, label);
		if (i % 2000 == 0)
			free(tpd_metrics_render(a->m)); /* renders race with updates */
		if (i % 5000 == 0) {
			/* Registering concurrently returns the same family. */
			assert_ptr_equal(tpd_metrics_counter(a->m, "ops_total", "Ops.", "t"), a->c);
		}
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	tpd_metrics *m = tpd_metrics_new();
	const double b[] = {1};
	pthread_t th[THREADS];
	worker_arg args[THREADS];
	double total = 0;
	char *text;

	(void)state;
	tpd_metric *c = tpd_metrics_counter(m, "ops_total", "Ops.", "t");
	tpd_metric *h = tpd_metrics_histogram(m, "op_seconds", "Op time.", "t", b, 1);
	tpd_metric *g = tpd_metrics_gauge(m, "inflight", "In flight.", NULL);
	for (int i = 0; i < THREADS; i++) {
		args[i] = (worker_arg){m, c, h, g, i};
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++) {
		char label[16];

		snprintf(label, sizeof(label), "t%d", i);
		assert_true(tpd_metric_value(c, label) == 2.0 * ITERS);
		assert_true(tpd_metric_value(h, label) == 2.0 * ITERS);
		total += tpd_metric_value(c, label);
	}
	assert_true(total == (double)THREADS * ITERS);
	assert_true(tpd_metric_value(g) == (double)THREADS * ITERS);
	text = tpd_metrics_render(m);
	assert_non_null(strstr(text, "op_seconds_bucket{t=\"t0\",le=\"1\"} 20000\n"));
	assert_non_null(strstr(text, "op_seconds_bucket{t=\"t0\",le=\"+Inf\"} 40000\n"));
	assert_non_null(strstr(text, "op_seconds_sum{t=\"t0\"} 110000\n"));
	assert_non_null(strstr(text, "inflight 160000\n"));
	free(text);
	tpd_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counter_gauge_text), cmocka_unit_test(test_histogram_text),
	    cmocka_unit_test(test_escaping),           cmocka_unit_test(test_value_format),
	    cmocka_unit_test(test_registration_rules), cmocka_unit_test(test_series_limit),
	    cmocka_unit_test(test_null_safety),        cmocka_unit_test(test_collectors_and_standard),
	    cmocka_unit_test(test_concurrency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
