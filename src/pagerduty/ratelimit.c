/* ratelimit.c - the budget's rolling minute and the server's windows; see include/tpd/ratelimit.h.
 *
 * The budget is a log of send times, sorted, in a circular buffer that grows up to `budget`
 * entries and drops entries a minute old. A new call may go at c when fewer than `budget`
 * entries are logged, or c >= oldest + 60 s: then no window of 60 s that holds c holds more than
 * `budget` calls, the ones reserved for the future included (every window holding c starts after
 * the oldest entry, which leaves at most budget-1 others). Reservations can land out of order (a
 * call held by its operation's lane is logged later than one sent now), so an insertion moves the
 * few later entries up by one.
 *
 * A lane follows one server window: `credits` calls left until `reset_at`, from the newest answer
 * minus the calls reserved after the one that answer belongs to. Everything is under one mutex;
 * callers sleep outside it. */
#include "tpd/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tpd/util.h"

#define WINDOW_MS 60000
#define NONE      INT64_MIN
/* Below this many calls left in a server window the rest are spread evenly until its reset. */
#define LOW_WATER 20
/* A `ratelimit-reset` beyond this is hostile or confused: never hold calls longer. */
#define MAX_RESET_S 3600

typedef struct {
	int64_t limit;      /* the window's `ratelimit-limit`, -1 unknown */
	int64_t credits;    /* calls left in the window ending at reset_at */
	int64_t reset_at;   /* NONE: no window known */
	int64_t open_at;    /* credits of a window started by rolling over are usable from here */
	int64_t win_len;    /* longest `ratelimit-reset` seen (ms): the window's length; 0 unknown */
	int64_t next_slot;  /* earliest next call while the rest are spread out */
	int64_t held_until; /* a 429 */
	uint64_t issued;    /* reservations made on this lane */
	uint64_t seen;      /* 1 + sequence number of the newest answer applied; 0 none */
} lane;

struct tpd_ratelimit {
	pthread_mutex_t mu;
	int budget;
	int64_t *log; /* sorted send times, circular: log[(head + i) % cap], i < n */
	size_t cap, head, n;
	int64_t last_now;        /* clocks read by different threads may arrive slightly out of order */
	lane lanes[TPD_RL_NOPS]; /* lanes[TPD_RL_OP_OTHER] is the key's */
};

static const char *const op_names[TPD_RL_NOPS] = {"other", "create_incident", "manage_incidents", "oncalls"};

tpd_rl_op tpd_ratelimit_op(const char *method, const char *path)
{
	size_t n;

	if (!method || !path)
		return TPD_RL_OP_OTHER;
	n = strcspn(path, "?");
	if (n == strlen("/incidents") && strncmp(path, "/incidents", n) == 0) {
		if (strcasecmp(method, "POST") == 0)
			return TPD_RL_OP_CREATE_INCIDENT;
		if (strcasecmp(method, "PUT") == 0)
			return TPD_RL_OP_MANAGE_INCIDENTS;
	}
	if (n == strlen("/oncalls") && strncmp(path, "/oncalls", n) == 0 && strcasecmp(method, "GET") == 0)
		return TPD_RL_OP_ONCALLS;
	return TPD_RL_OP_OTHER;
}

const char *tpd_ratelimit_op_name(tpd_rl_op op)
{
	return op >= 0 && op < TPD_RL_NOPS ? op_names[op] : "other";
}

tpd_ratelimit *tpd_ratelimit_new(int budget_per_minute)
{
	tpd_ratelimit *rl = tpd_new(tpd_ratelimit);

	pthread_mutex_init(&rl->mu, NULL);
	rl->budget = budget_per_minute < 1 ? 1 : budget_per_minute;
	rl->last_now = NONE;
	for (int i = 0; i < TPD_RL_NOPS; i++) {
		lane *l = &rl->lanes[i];
		l->limit = -1;
		l->reset_at = l->open_at = l->next_slot = l->held_until = NONE;
	}
	return rl;
}

void tpd_ratelimit_free(tpd_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->mu);
	free(rl->log);
	free(rl);
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* ---- the budget's log ------------------------------------------------------------------------- */

static int64_t *log_at(tpd_ratelimit *rl, size_t i)
{
	return &rl->log[(rl->head + i) % rl->cap];
}

/* Drops entries that no call at or after now can share a minute with. */
static void log_prune(tpd_ratelimit *rl, int64_t now)
{
	while (rl->n > 0 && *log_at(rl, 0) <= now - WINDOW_MS) {
		rl->head = (rl->head + 1) % rl->cap;
		rl->n--;
	}
}

static int64_t budget_slot(tpd_ratelimit *rl, int64_t now)
{
	if (rl->n < (size_t)rl->budget)
		return now;
	return max64(now, *log_at(rl, 0) + WINDOW_MS);
}

static void log_insert(tpd_ratelimit *rl, int64_t c)
{
	size_t i;

	if (rl->n == (size_t)rl->budget) { /* full: c >= oldest + a minute, so the oldest goes */
		rl->head = (rl->head + 1) % rl->cap;
		rl->n--;
	}
	if (rl->n == rl->cap) {
		size_t ncap = rl->cap ? rl->cap * 2 : 16;
		int64_t *nl;

		if (ncap > (size_t)rl->budget)
			ncap = (size_t)rl->budget;
		nl = xreallocarray(NULL, ncap, sizeof(*nl));
		for (i = 0; i < rl->n; i++)
			nl[i] = *log_at(rl, i);
		free(rl->log);
		rl->log = nl;
		rl->cap = ncap;
		rl->head = 0;
	}
	for (i = rl->n; i > 0 && *log_at(rl, i - 1) > c; i--)
		*log_at(rl, i) = *log_at(rl, i - 1);
	*log_at(rl, i) = c;
	rl->n++;
}

/* ---- a server window ---------------------------------------------------------------------------- */

/* The earliest time >= c at which lane l lets a call go. */
static int64_t lane_slot(const lane *l, int64_t c)
{
	c = max64(c, l->held_until);
	if (l->reset_at == NONE || c >= l->reset_at)
		return c; /* no window known, or a later one: its calls are all there */
	c = max64(c, l->open_at);
	if (l->credits <= 0)
		return l->reset_at;
	if (l->credits < LOW_WATER)
		c = max64(c, l->next_slot);
	return c < l->reset_at ? c : l->reset_at;
}

/* Books a call at c (a time lane_slot allowed). */
static void lane_commit(lane *l, int64_t c)
{
	int64_t k;

	l->issued++;
	if (l->reset_at == NONE)
		return;
	if (c >= l->reset_at) {
		if (l->limit <= 0 || l->win_len <= 0) {
			l->reset_at = NONE; /* unknown window: wait for the next answer's headers */
			return;
		}
		k = (c - l->reset_at) / l->win_len;
		l->open_at = l->reset_at + k * l->win_len;
		l->reset_at = l->open_at + l->win_len;
		l->credits = l->limit;
		l->next_slot = l->open_at;
	}
	k = l->credits--;
	if (k > 0 && k < LOW_WATER)
		l->next_slot = c + (l->reset_at - c) / k;
}

/* The lane an answer's headers describe, and the answer's sequence number on it. */
static lane *lane_of(tpd_ratelimit *rl, const tpd_rl_ticket *t, int64_t limit, uint64_t *seq)
{
	if (t->op > TPD_RL_OP_OTHER && t->op < TPD_RL_NOPS && (limit < 0 || limit < rl->budget)) {
		*seq = t->seq_op;
		return &rl->lanes[t->op];
	}
	*seq = t->seq_key;
	return &rl->lanes[TPD_RL_OP_OTHER];
}

static int64_t clamp_now(tpd_ratelimit *rl, int64_t now)
{
	if (now < rl->last_now)
		return rl->last_now;
	rl->last_now = now;
	return now;
}

/* ---- API ---------------------------------------------------------------------------------------- */

bool tpd_ratelimit_reserve(tpd_ratelimit *rl, tpd_rl_op op, int64_t now_ms, int64_t max_wait_ms,
                           int64_t *wait_ms, tpd_rl_ticket *ticket)
{
	int64_t now, c;
	bool ok;

	if (op < TPD_RL_OP_OTHER || op >= TPD_RL_NOPS)
		op = TPD_RL_OP_OTHER;
	pthread_mutex_lock(&rl->mu);
	now = clamp_now(rl, now_ms);
	log_prune(rl, now);
	c = budget_slot(rl, now);
	c = lane_slot(&rl->lanes[TPD_RL_OP_OTHER], c);
	if (op != TPD_RL_OP_OTHER)
		c = lane_slot(&rl->lanes[op], c);
	ok = max_wait_ms < 0 || c - now <= max_wait_ms;
	if (ok) {
		log_insert(rl, c);
		if (ticket) {
			ticket->op = op;
			ticket->seq_key = rl->lanes[TPD_RL_OP_OTHER].issued;
			ticket->seq_op = rl->lanes[op].issued;
		}
		lane_commit(&rl->lanes[TPD_RL_OP_OTHER], c);
		if (op != TPD_RL_OP_OTHER)
			lane_commit(&rl->lanes[op], c);
	}
	pthread_mutex_unlock(&rl->mu);
	if (wait_ms)
		*wait_ms = c - now_ms > 0 ? c - now_ms : 0;
	return ok;
}

void tpd_ratelimit_observe(tpd_ratelimit *rl, const tpd_rl_ticket *t, int64_t now_ms, int64_t limit,
                           int64_t remaining, int64_t reset_s)
{
	uint64_t seq;
	int64_t now;
	lane *l;

	if (!t || remaining < 0 || reset_s < 0)
		return;
	if (reset_s > MAX_RESET_S)
		reset_s = MAX_RESET_S;
	pthread_mutex_lock(&rl->mu);
	now = clamp_now(rl, now_ms);
	l = lane_of(rl, t, limit, &seq);
	if (seq + 1 >= l->seen) {
		l->seen = seq + 1;
		/* Calls reserved after this one were not counted in `remaining` yet. */
		l->credits = remaining - (int64_t)(l->issued - seq - 1);
		l->reset_at = now + reset_s * 1000;
		l->open_at = NONE;
		if (limit > 0)
			l->limit = limit;
		if (reset_s * 1000 > l->win_len)
			l->win_len = reset_s * 1000;
	}
	pthread_mutex_unlock(&rl->mu);
}

void tpd_ratelimit_rejected(tpd_ratelimit *rl, const tpd_rl_ticket *t, int64_t now_ms, int64_t limit,
                            int64_t until_ms)
{
	uint64_t seq;
	lane *l;

	if (!t)
		return;
	pthread_mutex_lock(&rl->mu);
	(void)clamp_now(rl, now_ms);
	l = lane_of(rl, t, limit, &seq);
	if (until_ms > l->held_until)
		l->held_until = until_ms;
	if (limit > 0)
		l->limit = limit;
	pthread_mutex_unlock(&rl->mu);
}

int tpd_ratelimit_in_window(tpd_ratelimit *rl, int64_t now_ms)
{
	int n;

	pthread_mutex_lock(&rl->mu);
	log_prune(rl, clamp_now(rl, now_ms));
	n = (int)rl->n;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
