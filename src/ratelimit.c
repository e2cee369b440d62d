/* ratelimit.c - token bucket with server-driven pauses; see include/tpd/ratelimit.h.
 *
 * State is a token count at a reference time plus two server-driven constraints: a hard pause
 * (nobody sends before paused_until) and a soft spacing (at most one request per spacing_ms
 * until spacing_until). Everything is protected by one mutex; callers sleep outside it. */
#include "tpd/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

#include "tpd/util.h"

/* Below this many remaining requests in PagerDuty's window we start spacing requests out. */
#define TPD_RL_LOW_WATER 20

struct tpd_ratelimit {
	pthread_mutex_t mu;
	double per_ms;        /* refill rate, tokens per millisecond */
	double burst;         /* bucket capacity */
	double tokens;        /* tokens at `last` (may be negative: queued reservations) */
	int64_t last;         /* time of the last refill; INT64_MIN before the first use */
	int64_t paused_until; /* hard pause from a 429 / remaining == 0 */
	int64_t spacing_ms;   /* soft spacing while the server says we are nearly out */
	int64_t spacing_until;
	int64_t next_slot; /* earliest send time under the soft spacing */
};

tpd_ratelimit *tpd_ratelimit_new(int rate_per_minute, int burst)
{
	tpd_ratelimit *rl = tpd_new(tpd_ratelimit);

	if (rate_per_minute <= 0)
		rate_per_minute = 900;
	if (burst <= 0)
		burst = rate_per_minute / 60;
	if (burst < 1)
		burst = 1;
	pthread_mutex_init(&rl->mu, NULL);
	rl->per_ms = (double)rate_per_minute / 60000.0;
	rl->burst = burst;
	rl->tokens = burst;
	rl->last = INT64_MIN;
	rl->paused_until = INT64_MIN;
	rl->spacing_until = INT64_MIN;
	rl->next_slot = INT64_MIN;
	return rl;
}

void tpd_ratelimit_free(tpd_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

/* Brings the token count forward to now (never backwards: clocks of different threads may be
 * read slightly out of order). */
static void refill(tpd_ratelimit *rl, int64_t now)
{
	if (rl->last == INT64_MIN) {
		rl->last = now;
		return;
	}
	if (now <= rl->last)
		return;
	rl->tokens += (double)(now - rl->last) * rl->per_ms;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	rl->last = now;
}

bool tpd_ratelimit_reserve(tpd_ratelimit *rl, int64_t now_ms, int64_t max_wait_ms, int64_t *wait_ms)
{
	int64_t wait = 0, start;
	bool ok;

	pthread_mutex_lock(&rl->mu);
	refill(rl, now_ms);
	/* The bucket's own wait: a token borrowed from the future is ready when the count,
	 * after taking it, climbs back to zero. */
	if (rl->tokens < 1.0)
		wait = (int64_t)((1.0 - rl->tokens) / rl->per_ms + 0.999);
	start = now_ms + wait;
	if (rl->paused_until > start)
		start = rl->paused_until;
	if (rl->spacing_until > start && rl->next_slot > start)
		start = rl->next_slot;
	wait = start - now_ms;
	ok = max_wait_ms < 0 || wait <= max_wait_ms;
	if (ok) {
		rl->tokens -= 1.0;
		if (rl->spacing_until > start)
			rl->next_slot = start + rl->spacing_ms;
	}
	pthread_mutex_unlock(&rl->mu);
	if (wait_ms)
		*wait_ms = wait;
	return ok;
}

void tpd_ratelimit_pause_until(tpd_ratelimit *rl, int64_t until_ms)
{
	pthread_mutex_lock(&rl->mu);
	if (until_ms > rl->paused_until)
		rl->paused_until = until_ms;
	pthread_mutex_unlock(&rl->mu);
}

void tpd_ratelimit_observe(tpd_ratelimit *rl, int64_t now_ms, int64_t remaining, int64_t reset_s)
{
	int64_t reset_at;

	if (remaining < 0 || reset_s < 0)
		return;
	if (reset_s > 3600) /* hostile or confused header: never stall for more than an hour */
		reset_s = 3600;
	reset_at = now_ms + reset_s * 1000;
	if (remaining == 0) {
		tpd_ratelimit_pause_until(rl, reset_at);
		return;
	}
	if (remaining >= TPD_RL_LOW_WATER)
		return;
	pthread_mutex_lock(&rl->mu);
	rl->spacing_ms = reset_s * 1000 / remaining;
	rl->spacing_until = reset_at;
	if (rl->next_slot < now_ms)
		rl->next_slot = now_ms;
	pthread_mutex_unlock(&rl->mu);
}

double tpd_ratelimit_tokens(tpd_ratelimit *rl, int64_t now_ms)
{
	double t;

	pthread_mutex_lock(&rl->mu);
	refill(rl, now_ms);
	t = rl->tokens;
	pthread_mutex_unlock(&rl->mu);
	return t;
}
