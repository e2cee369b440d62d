/* test_ratelimit.c - the limiter: the budget per rolling minute (bursts go at once, call
 * budget+1 waits for the window), PagerDuty's windows from headers (pacing the rest, holding at
 * zero, rolling into the next window), an operation's tighter window learnt from a 429, bounded
 * waits, and consistency under concurrent reservations. Times are injected; no sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "tpd/ratelimit.h"

#define OTHER  TPD_RL_OP_OTHER
#define CREATE TPD_RL_OP_CREATE_INCIDENT

static int64_t res(tpd_ratelimit *rl, tpd_rl_op op, int64_t now, tpd_rl_ticket *t)
{
	int64_t w = -1;

	assert_true(tpd_ratelimit_reserve(rl, op, now, -1, &w, t));
	assert_true(w >= 0);
	return w;
}

static void test_burst_of_150_goes_at_once(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);

	for (int i = 0; i < 150; i++)
		assert_int_equal(res(rl, i % 3 ? OTHER : CREATE, 1000, NULL), 0);
	assert_int_equal(tpd_ratelimit_in_window(rl, 1000), 150);
	tpd_ratelimit_free(rl);
}

static void test_call_901_waits_for_the_window(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);

	/* 900 calls spread over the first 30 s: none waits. */
	for (int i = 0; i < 900; i++)
		assert_int_equal(res(rl, OTHER, (int64_t)i * 33, NULL), 0);
	/* Call 901 at 30 s waits until the first is a minute old, call 902 until the second is. */
	assert_int_equal(res(rl, OTHER, 30000, NULL), 30000);
	assert_int_equal(res(rl, OTHER, 30000, NULL), 30033);
	/* The window rolls: at 61 s the calls of the first second have left it. */
	assert_int_equal(res(rl, OTHER, 61000, NULL), 0);
	tpd_ratelimit_free(rl);
}

static void test_budget_counts_reservations_in_any_order(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(3);
	tpd_rl_ticket t;

	/* A create now, one held 10 s by its lane, then other calls now: the log stays sorted
	 * (0, 0, 10 s), so calls 4 and 5 wait for the two sent at 0, and call 6 for the one at 10 s. */
	res(rl, CREATE, 0, &t);
	tpd_ratelimit_rejected(rl, &t, 0, -1, 10000);
	assert_int_equal(res(rl, CREATE, 0, NULL), 10000);
	assert_int_equal(res(rl, OTHER, 0, NULL), 0);
	assert_int_equal(res(rl, OTHER, 0, NULL), 60000);
	assert_int_equal(res(rl, OTHER, 0, NULL), 60000);
	assert_int_equal(res(rl, OTHER, 0, NULL), 70000);
	tpd_ratelimit_free(rl);
}

static void test_headers_five_left_pace_the_rest_over_the_reset(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);
	tpd_rl_ticket t;

	res(rl, OTHER, 0, &t);
	tpd_ratelimit_observe(rl, &t, 0, -1, 5, 20); /* "5 left, reset in 20 s" */
	for (int i = 0; i < 5; i++)
		assert_int_equal(res(rl, OTHER, 0, NULL), i * 4000);
	/* The sixth waits for the reset; after it nothing is known, so nothing holds. */
	assert_int_equal(res(rl, OTHER, 0, NULL), 20000);
	assert_int_equal(res(rl, OTHER, 20000, NULL), 0);
	tpd_ratelimit_free(rl);
}

static void test_plenty_remaining_does_not_pace(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);
	tpd_rl_ticket t;

	res(rl, OTHER, 0, &t);
	tpd_ratelimit_observe(rl, &t, 0, 960, 500, 30);
	for (int i = 0; i < 100; i++)
		assert_int_equal(res(rl, OTHER, 0, NULL), 0);
	/* Absent headers change nothing. */
	tpd_ratelimit_observe(rl, &t, 0, -1, -1, -1);
	assert_int_equal(res(rl, OTHER, 0, NULL), 0);
	tpd_ratelimit_free(rl);
}

static void test_remaining_counts_calls_sent_after_the_answered_one(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);
	tpd_rl_ticket a, b;

	res(rl, OTHER, 0, &a);
	res(rl, OTHER, 0, NULL);
	res(rl, OTHER, 0, NULL);
	/* a's answer says 2 left, but two more calls went out since: none is left. */
	tpd_ratelimit_observe(rl, &a, 10, 960, 2, 30);
	assert_int_equal(res(rl, OTHER, 10, &b), 30000); /* the reset: 10 + 30 s */
	/* A stale answer (older than one applied) is ignored. */
	tpd_ratelimit_observe(rl, &b, 30000, 960, 900, 60);
	tpd_ratelimit_observe(rl, &a, 30001, 960, 0, 60);
	assert_int_equal(res(rl, OTHER, 30001, NULL), 0);
	tpd_ratelimit_free(rl);
}

static void test_zero_remaining_holds_until_reset_then_next_window(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);
	tpd_rl_ticket t;

	res(rl, OTHER, 0, &t);
	tpd_ratelimit_observe(rl, &t, 0, 960, 959, 60); /* learns a 60 s window of 960 */
	res(rl, OTHER, 40000, &t);
	tpd_ratelimit_observe(rl, &t, 40000, 960, 0, 20);
	assert_int_equal(res(rl, OTHER, 40000, NULL), 20000);
	/* In the next window the key's 960 are there again: the budget (900) decides. */
	for (int i = 0; i < 50; i++)
		assert_int_equal(res(rl, OTHER, 60000, NULL), 0);
	tpd_ratelimit_free(rl);
}

static void test_operation_window_learnt_from_a_429(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);
	tpd_rl_ticket t;
	int64_t w;
	int in_window = 0;

	/* POST /incidents answers 429 with the operation's own window: 30, reset in 20 s. The caller's
	 * back-off ends at 20.1 s. */
	res(rl, CREATE, 0, &t);
	tpd_ratelimit_observe(rl, &t, 0, 30, 0, 20);
	tpd_ratelimit_rejected(rl, &t, 0, 30, 20100);
	/* Other calls, GET /oncalls included, are not held. */
	assert_int_equal(res(rl, OTHER, 0, NULL), 0);
	assert_int_equal(res(rl, TPD_RL_OP_ONCALLS, 0, NULL), 0);
	/* Creates wait for the hold, then spend the learnt window (30 per 20 s) and no more: the
	 * 31st waits for the window after. Nobody retries blindly into a 429. */
	for (int i = 0; i < 31; i++) {
		w = res(rl, CREATE, 0, NULL);
		assert_true(w >= 20100);
		if (w < 40000)
			in_window++;
	}
	assert_int_equal(in_window, 30);
	assert_true(w >= 40000);
	/* The answer of a create with the key's limit (>= the budget) describes the key: all wait. */
	res(rl, CREATE, 50000, &t);
	tpd_ratelimit_observe(rl, &t, 50000, 960, 0, 10);
	assert_int_equal(res(rl, OTHER, 50000, NULL), 10000);
	tpd_ratelimit_free(rl);
}

static void test_429_without_headers_holds_the_lane(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(900);
	tpd_rl_ticket t;

	res(rl, OTHER, 0, &t);
	tpd_ratelimit_rejected(rl, &t, 0, -1, 700);
	tpd_ratelimit_rejected(rl, &t, 0, -1, 300); /* never shortens */
	assert_int_equal(res(rl, CREATE, 0, NULL), 700);
	assert_int_equal(res(rl, OTHER, 800, NULL), 0);
	tpd_ratelimit_free(rl);
}

static void test_max_wait_refuses_without_consuming(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(1);
	int64_t w;

	assert_int_equal(res(rl, OTHER, 0, NULL), 0);
	assert_false(tpd_ratelimit_reserve(rl, OTHER, 0, 500, &w, NULL));
	assert_int_equal(w, 60000);
	assert_int_equal(tpd_ratelimit_in_window(rl, 0), 1);
	assert_int_equal(res(rl, OTHER, 0, NULL), 60000);
	tpd_ratelimit_free(rl);
}

static void test_op_of(void **state)
{
	(void)state;
	assert_int_equal(tpd_ratelimit_op("POST", "/incidents"), CREATE);
	assert_int_equal(tpd_ratelimit_op("PUT", "/incidents"), TPD_RL_OP_MANAGE_INCIDENTS);
	assert_int_equal(tpd_ratelimit_op("GET", "/oncalls?user_ids[]=U1&limit=100"), TPD_RL_OP_ONCALLS);
	assert_int_equal(tpd_ratelimit_op("GET", "/incidents?incident_key=x"), OTHER);
	assert_int_equal(tpd_ratelimit_op("PUT", "/incidents/P1"), OTHER);
	assert_int_equal(tpd_ratelimit_op("POST", "/incidents/P1/notes"), OTHER);
	assert_int_equal(tpd_ratelimit_op("GET", "/oncallsx"), OTHER);
	assert_int_equal(tpd_ratelimit_op(NULL, "/oncalls"), OTHER);
	assert_string_equal(tpd_ratelimit_op_name(CREATE), "create_incident");
}

typedef struct {
	tpd_ratelimit *rl;
	int immediate, waited;
	int64_t max_wait;
} thr_arg;

static void *reserver(void *p)
{
	thr_arg *a = p;
	int64_t w;

	for (int i = 0; i < 250; i++) {
		tpd_ratelimit_reserve(a->rl, i % 2 ? OTHER : CREATE, 0, -1, &w, NULL);
		if (w == 0)
			a->immediate++;
		else
			a->waited++;
		if (w > a->max_wait)
			a->max_wait = w;
	}
	return NULL;
}

static void test_concurrent_reservations_are_consistent(void **state)
{
	(void)state;
	tpd_ratelimit *rl = tpd_ratelimit_new(600);
	pthread_t t[4];
	thr_arg a[4] = {0};
	int immediate = 0, waited = 0;
	int64_t maxw = 0;

	for (int i = 0; i < 4; i++) {
		a[i].rl = rl;
		pthread_create(&t[i], NULL, reserver, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		immediate += a[i].immediate;
		waited += a[i].waited;
		if (a[i].max_wait > maxw)
			maxw = a[i].max_wait;
	}
	/* 1000 reservations at t=0 with a budget of 600: exactly 600 go now, 400 a minute later. */
	assert_int_equal(immediate, 600);
	assert_int_equal(waited, 400);
	assert_int_equal(maxw, 60000);
	tpd_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_of_150_goes_at_once),
	    cmocka_unit_test(test_call_901_waits_for_the_window),
	    cmocka_unit_test(test_budget_counts_reservations_in_any_order),
	    cmocka_unit_test(test_headers_five_left_pace_the_rest_over_the_reset),
	    cmocka_unit_test(test_plenty_remaining_does_not_pace),
	    cmocka_unit_test(test_remaining_counts_calls_sent_after_the_answered_one),
	    cmocka_unit_test(test_zero_remaining_holds_until_reset_then_next_window),
	    cmocka_unit_test(test_operation_window_learnt_from_a_429),
	    cmocka_unit_test(test_429_without_headers_holds_the_lane),
	    cmocka_unit_test(test_max_wait_refuses_without_consuming),
	    cmocka_unit_test(test_op_of),
	    cmocka_unit_test(test_concurrent_reservations_are_consistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
