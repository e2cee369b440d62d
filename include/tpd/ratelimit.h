/* ratelimit.h - a thread-safe token bucket shared by every worker that talks to PagerDuty.
 *
 * The bucket refills at rate_per_minute/60 tokens per second up to `burst` tokens. A caller
 * reserves one token and is told how long to wait before using it (reservations may run the
 * bucket negative, so concurrent callers queue up fairly instead of spinning). The server's own
 * view can slow the bucket down: a 429 or `ratelimit-remaining: 0` pauses everyone until the
 * window resets, and a low `ratelimit-remaining` spreads the remaining requests evenly over the
 * rest of the window. All times are caller-supplied monotonic milliseconds, so tests need no
 * clock and no sleeps. */
#ifndef TPD_RATELIMIT_H
#define TPD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tpd_ratelimit tpd_ratelimit;

/* A bucket of rate_per_minute (> 0, else 900) with burst tokens (<= 0 → one second's worth, at
 * least 1). It starts full. */
tpd_ratelimit *tpd_ratelimit_new(int rate_per_minute, int burst);
void tpd_ratelimit_free(tpd_ratelimit *rl);

/* Reserves one token at now_ms. On true, *wait_ms (>= 0) is how long the caller must wait before
 * sending. When the wait would exceed max_wait_ms (< 0 = unbounded), nothing is reserved and
 * false is returned with *wait_ms set to the wait that would have been needed. */
bool tpd_ratelimit_reserve(tpd_ratelimit *rl, int64_t now_ms, int64_t max_wait_ms, int64_t *wait_ms);

/* Blocks every reservation until until_ms (a 429 with `ratelimit-reset`). Never shortens a pause. */
void tpd_ratelimit_pause_until(tpd_ratelimit *rl, int64_t until_ms);

/* Feeds the server's `ratelimit-remaining`/`ratelimit-reset` (seconds) headers observed at now_ms.
 * remaining == 0 pauses until the reset; a remaining below the low-water mark spaces requests
 * reset/remaining apart until the reset. Negative values mean "header absent" and are ignored. */
void tpd_ratelimit_observe(tpd_ratelimit *rl, int64_t now_ms, int64_t remaining, int64_t reset_s);

/* Tokens currently available at now_ms (may be negative when reservations are queued); tests. */
double tpd_ratelimit_tokens(tpd_ratelimit *rl, int64_t now_ms);

#endif
