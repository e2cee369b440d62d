/* test_clockstep.c - timed waits must not follow the wall clock.
 *
 * This executable defines its own clock_gettime, which the product code (linked statically) calls
 * instead of libc's: CLOCK_REALTIME reads shifted by `wall_shift_s`, every other clock is the
 * kernel's. A shift set just before a wait is what a wall-clock step (NTP, an operator, a VM
 * resume) between "read the clock" and "wait until" looks like. The kernel's own timeouts still
 * use the real clocks, so a wait computed from the shifted wall clock ends an hour early or an
 * hour late, while a wait on CLOCK_MONOTONIC is untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../src/pagerduty/pagerduty_hooks.h"
#include "tpd/pagerduty.h"
#include "tpd/util.h"

static atomic_long wall_shift_s;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = (int)syscall(SYS_clock_gettime, id, ts);

	if (rc == 0 && id == CLOCK_REALTIME)
		ts->tv_sec += atomic_load(&wall_shift_s);
	return rc;
}

/* The interposition itself works (otherwise the tests below prove nothing). */
static void test_interposed(void **state)
{
	(void)state;
	int64_t before = tpd_wall_ms();

	atomic_store(&wall_shift_s, -3600);
	assert_true(before - tpd_wall_ms() > 3500 * 1000);
	atomic_store(&wall_shift_s, 0);
}

/* ---- the util helper directly ------------------------------------------------------------------ */

static void test_cond_wait_ignores_wall_step(void **state)
{
	(void)state;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	int64_t t0, waited;

	tpd_cond_init(&cv);
	for (int dir = -1; dir <= 1; dir += 2) {
		atomic_store(&wall_shift_s, dir * 3600L);
		pthread_mutex_lock(&mu);
		t0 = tpd_now_ms();
		while (tpd_cond_wait_until(&cv, &mu, t0 + 200))
			;
		waited = tpd_now_ms() - t0;
		pthread_mutex_unlock(&mu);
		atomic_store(&wall_shift_s, 0);
		assert_in_range(waited, 200, 5000);
	}
	/* A deadline already past returns at once, without waiting. */
	pthread_mutex_lock(&mu);
	assert_false(tpd_cond_wait_until(&cv, &mu, tpd_now_ms() - 1));
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cv);
}

static bool flag_set(void *ud)
{
	return *(bool *)ud;
}

static void test_cond_wait_for_predicate(void **state)
{
	(void)state;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	bool flag = true;

	tpd_cond_init(&cv);
	pthread_mutex_lock(&mu);
	assert_true(tpd_cond_wait_for(&cv, &mu, tpd_now_ms() + 60000, flag_set, &flag));
	flag = false;
	assert_false(tpd_cond_wait_for(&cv, &mu, tpd_now_ms() + 50, flag_set, &flag));
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cv);
}

/* ---- the PagerDuty client's retry sleep ------------------------------------------------------- */

typedef struct {
	int calls;
	long shift_after_first; /* wall shift applied once the first (429) answer is given */
} script;

static tpd_err transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp)
{
	script *s = ud;

	(void)req;
	if (s->calls++ == 0) {
		resp->status = 429;
		resp->retry_after_s = 1;
		tpd_buf_puts(&resp->body, "{\"error\":{\"message\":\"Rate Limit Exceeded\"}}");
		atomic_store(&wall_shift_s, s->shift_after_first);
		return TPD_ERR_OK;
	}
	resp->status = 200;
	tpd_buf_puts(&resp->body, "{}");
	return TPD_ERR_OK;
}

typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	tpd_pd *pd;
} watchdog;

/* Cancels the client if the call under test has not finished within 5 s (so a stretched sleep
 * fails the test instead of hanging it for an hour). */
static void *watchdog_main(void *arg)
{
	watchdog *w = arg;

	pthread_mutex_lock(&w->mu);
	if (!tpd_cond_wait_for(&w->cv, &w->mu, tpd_now_ms() + 5000, flag_set, &w->done))
		tpd_pd_shutdown(w->pd);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void retry_sleep_with_step(long shift_s)
{
	script s = {.shift_after_first = shift_s};
	tpd_pd_hooks hooks = {.transport = transport, .transport_ud = &s}; /* real clock, real sleep */
	tpd_pd_opts o = {.api_endpoint = "https://pd.example.test/",
	                 .api_key = "u+SECRETKEY123456",
	                 .user_email = "bot@example.com",
	                 .user_agent_version = "9.9.9",
	                 .hooks = &hooks,
	                 .rate_limit_per_minute = 60000,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	watchdog w = {.done = false};
	pthread_t th;
	char err[TPD_ERRLEN];
	int64_t t0, took;
	tpd_err rc;

	assert_int_equal(tpd_pd_new(&o, &w.pd, err), TPD_ERR_OK);
	pthread_mutex_init(&w.mu, NULL);
	tpd_cond_init(&w.cv);
	assert_int_equal(pthread_create(&th, NULL, watchdog_main, &w), 0);
	t0 = tpd_now_ms();
	rc = tpd_pd_health(w.pd, err);
	took = tpd_now_ms() - t0;
	pthread_mutex_lock(&w.mu);
	w.done = true;
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.mu);
	pthread_join(th, NULL);
	atomic_store(&wall_shift_s, 0);
	tpd_pd_free(w.pd);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);

	if (rc != TPD_ERR_OK)
		print_message("tpd_pd_health: %s\n", err);
	/* Retry-After: 1 → the client sleeps 1 s (plus up to 25 % jitter) and then succeeds. */
	assert_int_equal(rc, TPD_ERR_OK);
	assert_int_equal(s.calls, 2);
	assert_in_range(took, 1000, 3000);
}

/* The wall clock steps back an hour during the sleep: a wall-clock wait would end at once. */
static void test_pd_retry_sleep_wall_step_back(void **state)
{
	(void)state;
	retry_sleep_with_step(-3600);
}

/* The wall clock steps forward an hour: a wall-clock wait would last an hour and one second. */
static void test_pd_retry_sleep_wall_step_forward(void **state)
{
	(void)state;
	retry_sleep_with_step(3600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_interposed),
	    cmocka_unit_test(test_cond_wait_ignores_wall_step),
	    cmocka_unit_test(test_cond_wait_for_predicate),
	    cmocka_unit_test(test_pd_retry_sleep_wall_step_back),
	    cmocka_unit_test(test_pd_retry_sleep_wall_step_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
