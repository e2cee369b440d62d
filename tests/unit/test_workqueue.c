/* Unit tests for the keyed work queue: dedup, flag merging, in-progress exclusion, backoff,
 * delayed adds, shutdown, and a multi-threaded stress run checking no key runs twice at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpd/util.h"
#include "tpd/workqueue.h"

static void test_dedup_and_flags(void **state)
{
	tpd_workqueue *q = tpd_workqueue_new(10, 1000, NULL);
	char *k;
	unsigned f;

	(void)state;
	tpd_workqueue_add(q, "a", TPD_WQ_EVENT);
	tpd_workqueue_add(q, "b", TPD_WQ_RESYNC);
	tpd_workqueue_add(q, "a", TPD_WQ_RESYNC);
	assert_int_equal(tpd_workqueue_len(q), 2);
	assert_int_equal(tpd_workqueue_get(q, 0, &k, &f), 0);
	assert_string_equal(k, "a");
	assert_int_equal(f, TPD_WQ_EVENT | TPD_WQ_RESYNC);
	/* While "a" is processed, adding it marks it dirty; it is not handed out again. */
	tpd_workqueue_add(q, "a", TPD_WQ_ORPHAN);
	{
		char *k2;
		unsigned f2;

		assert_int_equal(tpd_workqueue_get(q, 0, &k2, &f2), 0);
		assert_string_equal(k2, "b");
		free(k2);
		assert_int_equal(tpd_workqueue_get(q, 0, &k2, &f2), 1);
		assert_null(k2);
		tpd_workqueue_done(q, "b");
	}
	tpd_workqueue_done(q, "a");
	free(k);
	assert_int_equal(tpd_workqueue_get(q, 0, &k, &f), 0);
	assert_string_equal(k, "a");
	assert_int_equal(f, TPD_WQ_ORPHAN);
	tpd_workqueue_done(q, k);
	free(k);
	assert_int_equal(tpd_workqueue_wait_idle(q, 1000), 0);
	tpd_workqueue_free(q);
}

static void test_backoff(void **state)
{
	tpd_workqueue *q = tpd_workqueue_new(100, 1000, NULL);
	int64_t d[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		d[i] = tpd_workqueue_add_rate_limited(q, "k", 0);
	/* 100, 200, 400, 800, 1000, 1000 each with jitter in [75%, 125%], capped at 1000. */
	assert_in_range(d[0], 75, 125);
	assert_in_range(d[1], 150, 250);
	assert_in_range(d[2], 300, 500);
	assert_in_range(d[3], 600, 1000);
	assert_in_range(d[4], 750, 1000);
	assert_in_range(d[5], 750, 1000);
	assert_int_equal(tpd_workqueue_failures(q, "k"), 6);
	tpd_workqueue_forget(q, "k");
	assert_int_equal(tpd_workqueue_failures(q, "k"), 0);
	tpd_workqueue_free(q);
}

static void test_delayed_order(void **state)
{
	tpd_workqueue *q = tpd_workqueue_new(10, 1000, NULL);
	char *k;
	unsigned f;
	int64_t t0 = tpd_now_ms();

	(void)state;
	tpd_workqueue_add_after(q, "late", 0, 120);
	tpd_workqueue_add_after(q, "early", 0, 40);
	assert_int_equal(tpd_workqueue_len(q), 0);
	assert_int_equal(tpd_workqueue_delayed(q), 2);
	assert_int_equal(tpd_workqueue_get(q, 2000, &k, &f), 0);
	assert_string_equal(k, "early");
	assert_true(tpd_now_ms() - t0 >= 40);
	tpd_workqueue_done(q, k);
	free(k);
	assert_int_equal(tpd_workqueue_get(q, 2000, &k, &f), 0);
	assert_string_equal(k, "late");
	assert_true(tpd_now_ms() - t0 >= 120);
	tpd_workqueue_done(q, k);
	free(k);
	tpd_workqueue_free(q);
}

static void *shutdown_waiter(void *arg)
{
	tpd_workqueue *q = arg;
	char *k;
	unsigned f;

	return (void *)(intptr_t)tpd_workqueue_get(q, -1, &k, &f);
}

static void test_shutdown_wakes(void **state)
{
	tpd_workqueue *q = tpd_workqueue_new(10, 1000, NULL);
	pthread_t t;
	void *rc;

	(void)state;
	pthread_create(&t, NULL, shutdown_waiter, q);
	tpd_workqueue_shutdown(q);
	pthread_join(t, &rc);
	assert_int_equal((intptr_t)rc, -1);
	tpd_workqueue_add(q, "x", 0);
	assert_int_equal(tpd_workqueue_len(q), 0);
	tpd_workqueue_free(q);
}

#define NKEYS    64
#define NTHREADS 8
#define ROUNDS   20

struct stress {
	tpd_workqueue *q;
	atomic_int busy[NKEYS];
	atomic_int processed[NKEYS];
	atomic_int overlaps;
};

static void *stress_worker(void *arg)
{
	struct stress *s = arg;
	char *k;
	unsigned f;

	while (tpd_workqueue_get(s->q, -1, &k, &f) == 0) {
		int i = atoi(k);

		if (atomic_fetch_add(&s->busy[i], 1) != 0)
			atomic_fetch_add(&s->overlaps, 1);
		atomic_fetch_add(&s->processed[i], 1);
		atomic_fetch_sub(&s->busy[i], 1);
		tpd_workqueue_done(s->q, k);
		free(k);
	}
	return NULL;
}

static void test_stress_exclusion(void **state)
{
	struct stress *s = calloc(1, sizeof(*s));
	pthread_t t[NTHREADS];
	char key[16];

	(void)state;
	s->q = tpd_workqueue_new(1, 10, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, stress_worker, s);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < NKEYS; i++) {
			snprintf(key, sizeof(key), "%d", i);
			tpd_workqueue_add(s->q, key, TPD_WQ_EVENT);
		}
	}
	assert_int_equal(tpd_workqueue_wait_idle(s->q, 10000), 0);
	tpd_workqueue_shutdown(s->q);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&s->overlaps), 0);
	for (int i = 0; i < NKEYS; i++) {
		/* Every key ran at least once and never more often than it was added. */
		assert_in_range(atomic_load(&s->processed[i]), 1, ROUNDS);
	}
	tpd_workqueue_free(s->q);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dedup_and_flags),  cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_delayed_order),    cmocka_unit_test(test_shutdown_wakes),
	    cmocka_unit_test(test_stress_exclusion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
