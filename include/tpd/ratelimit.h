/* ratelimit.h - the client-side limiter shared by every thread that talks to PagerDuty, shaped
 * like PagerDuty's own limits.
 *
 * Two kinds of constraint decide when a call may go out:
 *
 *   the budget   at most `budget` calls in any rolling 60 s (the configured
 *                rate_limit_per_minute). Calls go out at once while the calls of the last
 *                minute are under the budget; call budget+1 waits until the oldest of them is a
 *                minute old. Kept as a sorted log of send times (8 bytes per call of the last
 *                minute, never more than `budget` entries).
 *   the server   what PagerDuty's `ratelimit-limit` / `ratelimit-remaining` / `ratelimit-reset`
 *                headers and 429s say about its own window. There is one such "lane" for the
 *                whole key and one for each operation PagerDuty limits more tightly (POST and
 *                PUT /incidents, GET /oncalls; docs/pagerduty-api.md "Errors, limits and retries"). A lane
 *                knows how many calls are left until its window resets: while plenty are left
 *                it lets calls through, below a low-water mark it spreads the rest evenly until
 *                the reset, with none left it holds calls until the reset, and once it knows
 *                the window's limit and length it starts the next window with `limit` calls.
 *                A 429 holds the lane until the time the caller's back-off gives. Headers of an
 *                operation-limited call describe whichever limit is closest to being reached, so
 *                they go to the operation's lane when their limit is below the budget (or absent)
 *                and to the key's lane otherwise.
 *
 * A reservation is made under one mutex and the caller sleeps outside it; reservations may lie in
 * the future, so concurrent callers queue in order instead of spinning. Times are caller-supplied
 * monotonic milliseconds, so tests need no clock and no sleeps. No defaults live here: the
 * budget comes from the configuration. */
#ifndef TPD_RATELIMIT_H
#define TPD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tpd_ratelimit tpd_ratelimit;

/* The operations PagerDuty limits on top of the key's budget (its OpenAPI spec marks them
 * "x-pd-operation-limit"); everything else is TPD_RL_OP_OTHER. */
typedef enum {
	TPD_RL_OP_OTHER = 0,
	TPD_RL_OP_CREATE_INCIDENT,  /* POST /incidents */
	TPD_RL_OP_MANAGE_INCIDENTS, /* PUT /incidents (bulk) */
	TPD_RL_OP_ONCALLS,          /* GET /oncalls */
	TPD_RL_NOPS
} tpd_rl_op;

/* What a reservation hands back, to pass with the answer's headers: which call it was and how
 * many reservations each lane had issued before it (so that calls sent after it are not counted
 * twice against the `ratelimit-remaining` it reports). */
typedef struct {
	tpd_rl_op op;
	uint64_t seq_key, seq_op;
} tpd_rl_ticket;

/* The operation of a request; path may carry a query string. */
tpd_rl_op tpd_ratelimit_op(const char *method, const char *path);
/* Short name of an operation for logs and metric labels ("other", "create_incident", ...). */
const char *tpd_ratelimit_op_name(tpd_rl_op op);

/* A limiter with a budget of budget_per_minute calls per rolling minute (>= 1; smaller values
 * are raised to 1: the caller validates the configuration). */
tpd_ratelimit *tpd_ratelimit_new(int budget_per_minute);
void tpd_ratelimit_free(tpd_ratelimit *rl);

/* Reserves a send slot for one call of `op` at now_ms. On true, *wait_ms (>= 0) is how long the
 * caller must wait before sending, and *ticket (may be NULL) identifies the call for
 * tpd_ratelimit_observe/_rejected. When the wait would exceed max_wait_ms (< 0 = unbounded),
 * nothing is reserved and false is returned with *wait_ms set to the wait that was needed. */
bool tpd_ratelimit_reserve(tpd_ratelimit *rl, tpd_rl_op op, int64_t now_ms, int64_t max_wait_ms,
                           int64_t *wait_ms, tpd_rl_ticket *ticket);

/* Feeds the headers of an answer (any status) received at now_ms: `ratelimit-limit`,
 * `ratelimit-remaining` and `ratelimit-reset` (seconds); -1 = header absent. Answers that carry
 * no remaining/reset change nothing, and an answer older than one already seen on the same lane
 * is ignored. */
void tpd_ratelimit_observe(tpd_ratelimit *rl, const tpd_rl_ticket *t, int64_t now_ms, int64_t limit,
                           int64_t remaining, int64_t reset_s);

/* A 429 for the call t at now_ms: its lane takes no call before until_ms (the caller's back-off,
 * which honours `ratelimit-reset` / `Retry-After`). limit is the answer's `ratelimit-limit`
 * (-1 = absent); with it, the lane starts its next window with that many calls. Never shortens a
 * hold. */
void tpd_ratelimit_rejected(tpd_ratelimit *rl, const tpd_rl_ticket *t, int64_t now_ms, int64_t limit,
                            int64_t until_ms);

/* Calls of the last minute counted against the budget at now_ms, including reservations not yet
 * sent; tests. */
int tpd_ratelimit_in_window(tpd_ratelimit *rl, int64_t now_ms);

#endif
