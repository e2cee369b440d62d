/* test_ratelimit.c - the shared token bucket: burst, refill, bounded waits, server-driven pauses
 * and spacing, and consistency under concurrent reservations. Times are injected; no sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "tpd/ratelimit.h"

static void test_burst_then_wait(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(60, 2); /* one per second, burst 2 */
	int64_t w;

	assert_true(tpd_ratelimit_reserve(rl, 1000, -1, &w));
	assert_int_equal(w, 0);
	assert_true(tpd_ratelimit_reserve(rl, 1000, -1, &w));
	assert_int_equal(w, 0);
	assert_true(tpd_ratelimit_reserve(rl, 1000, -1, &w));
	assert_int_equal(w, 1000);
	/* A fourth queued caller waits behind the third. */
	assert_true(tpd_ratelimit_reserve(rl, 1000, -1, &w));
	assert_int_equal(w, 2000);
	tpd_ratelimit_free(rl);
}

static void test_refill_capped_at_burst(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(60, 3);
	int64_t w;

	for (int i = 0; i < 3; i++)
		assert_true(tpd_ratelimit_reserve(rl, 0, -1, &w));
	/* An hour later the bucket holds only `burst` tokens, not 3600. */
	assert_true(tpd_ratelimit_tokens(rl, 3600000) <= 3.0 + 1e-9);
	for (int i = 0; i < 3; i++) {
		assert_true(tpd_ratelimit_reserve(rl, 3600000, -1, &w));
		assert_int_equal(w, 0);
	}
	assert_true(tpd_ratelimit_reserve(rl, 3600000, -1, &w));
	assert_int_equal(w, 1000);
	tpd_ratelimit_free(rl);
}

static void test_max_wait_refuses_without_consuming(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(60, 1);
	int64_t w;

	assert_true(tpd_ratelimit_reserve(rl, 0, -1, &w));
	assert_false(tpd_ratelimit_reserve(rl, 0, 500, &w));
	assert_int_equal(w, 1000);
	/* The refusal consumed nothing: the next caller still waits only 1000 ms. */
	assert_true(tpd_ratelimit_reserve(rl, 0, 1000, &w));
	assert_int_equal(w, 1000);
	tpd_ratelimit_free(rl);
}

static void test_default_rate_900(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(0, 0); /* defaults: 900/min, burst 15 */
	int64_t w = 0;
	int immediate = 0;

	for (int i = 0; i < 20; i++) {
		assert_true(tpd_ratelimit_reserve(rl, 0, -1, &w));
		if (w == 0)
			immediate++;
	}
	assert_int_equal(immediate, 15);
	/* 900/min = one every 66.7 ms: the 20th waits 5 intervals. */
	assert_in_range(w, 330, 340);
	tpd_ratelimit_free(rl);
}

static void test_pause_until(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(600, 10);
	int64_t w;

	tpd_ratelimit_pause_until(rl, 5000);
	tpd_ratelimit_pause_until(rl, 3000); /* never shortens */
	assert_true(tpd_ratelimit_reserve(rl, 1000, -1, &w));
	assert_int_equal(w, 4000);
	assert_true(tpd_ratelimit_reserve(rl, 6000, -1, &w));
	assert_int_equal(w, 0);
	tpd_ratelimit_free(rl);
}

static void test_observe_remaining_zero_pauses(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(600, 10);
	int64_t w;

	tpd_ratelimit_observe(rl, 1000, 0, 20);
	assert_true(tpd_ratelimit_reserve(rl, 1000, -1, &w));
	assert_int_equal(w, 20000);
	/* Absent headers change nothing. */
	tpd_ratelimit_observe(rl, 1000, -1, -1);
	tpd_ratelimit_free(rl);
}

static void test_observe_low_remaining_spaces_requests(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(6000, 100);
	int64_t w;

	tpd_ratelimit_observe(rl, 0, 5, 10); /* 5 left for 10 s → one per 2 s */
	assert_true(tpd_ratelimit_reserve(rl, 0, -1, &w));
	assert_int_equal(w, 0);
	assert_true(tpd_ratelimit_reserve(rl, 0, -1, &w));
	assert_int_equal(w, 2000);
	assert_true(tpd_ratelimit_reserve(rl, 0, -1, &w));
	assert_int_equal(w, 4000);
	/* After the window resets the bucket alone decides again. */
	assert_true(tpd_ratelimit_reserve(rl, 10000, -1, &w));
	assert_int_equal(w, 0);
	/* Plenty remaining: no spacing. */
	tpd_ratelimit_observe(rl, 20000, 500, 10);
	assert_true(tpd_ratelimit_reserve(rl, 20000, -1, &w));
	assert_int_equal(w, 0);
	tpd_ratelimit_free(rl);
}

typedef struct {
	tpd_ratelimit *rl;
	int64_t max_wait;
} thr_arg;

static void *reserver(void *p)
{
	thr_arg *a = p;
	int64_t w;

	for (int i = 0; i < 250; i++) {
		tpd_ratelimit_reserve(a->rl, 0, -1, &w);
		if (w > a->max_wait)
			a->max_wait = w;
	}
	return NULL;
}

static void test_concurrent_reservations_are_consistent(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(60000, 10); /* 1 per ms */
	pthread_t t[4];
	thr_arg a[4] = {0};
	int64_t maxw = 0;

	for (int i = 0; i < 4; i++) {
		a[i].rl = rl;
		pthread_create(&t[i], NULL, reserver, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		if (a[i].max_wait > maxw)
			maxw = a[i].max_wait;
	}
	/* 1000 reservations at t=0 with burst 10: the last waits exactly 990 ms; nobody lost one. */
	assert_int_equal(maxw, 990);
	assert_true(tpd_ratelimit_tokens(rl, 0) < -989.0 && tpd_ratelimit_tokens(rl, 0) > -991.0);
	tpd_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_wait),
	    cmocka_unit_test(test_refill_capped_at_burst),
	    cmocka_unit_test(test_max_wait_refuses_without_consuming),
	    cmocka_unit_test(test_default_rate_900),
	    cmocka_unit_test(test_pause_until),
	    cmocka_unit_test(test_observe_remaining_zero_pauses),
	    cmocka_unit_test(test_observe_low_remaining_spaces_requests),
	    cmocka_unit_test(test_concurrent_reservations_are_consistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
