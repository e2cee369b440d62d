/* workqueue.c - keyed work queue with dedup, in-progress exclusion and per-key backoff.
 *
 * Data: a FIFO of ready keys, a string map of key state (queued/processing/dirty, merged flags,
 * failure count, enqueue time), and a min-heap of delayed adds. One mutex, one condvar. A key's
 * state entry lives while it is queued, processing, delayed or has failures recorded. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tpd/strmap.h"
#include "tpd/util.h"
#include "tpd/workqueue.h"

struct entry {
	char *key;
	unsigned flags; /* flags merged while queued or dirty */
	bool queued;    /* in the ready FIFO */
	bool processing;
	bool dirty;       /* added while processing: re-queue on done */
	unsigned delayed; /* number of pending delayed adds */
	unsigned failures;
	int64_t queued_at_ms;
	int64_t started_ms;
};

struct delayed {
	int64_t ready_ms;
	struct entry *e;
	unsigned flags;
};

struct tpd_workqueue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool shutdown;
	int64_t base_ms, max_ms;

	tpd_strmap *entries; /* key → struct entry */

	struct entry **fifo; /* ring buffer */
	size_t fifo_cap, fifo_head, fifo_len;

	struct delayed *heap;
	size_t heap_cap, heap_len;

	size_t processing;

	tpd_metric *m_depth, *m_adds, *m_retries, *m_queue_dur, *m_work_dur;
};

/* --- key state --------------------------------------------------------------------------------- */

static struct entry *lookup(tpd_workqueue *q, const char *key)
{
	return tpd_strmap_get(q->entries, key);
}

static struct entry *get_or_create(tpd_workqueue *q, const char *key)
{
	struct entry *e = tpd_strmap_get(q->entries, key);

	if (e)
		return e;
	e = tpd_new(struct entry);
	e->key = xstrdup(key);
	tpd_strmap_put(q->entries, key, e);
	return e;
}

static void free_entry(void *p)
{
	struct entry *e = p;

	free(e->key);
	free(e);
}

/* Removes an entry that is idle (not queued, processing or delayed, no failures). */
static void maybe_remove(tpd_workqueue *q, struct entry *e)
{
	if (e->queued || e->processing || e->delayed || e->failures || e->dirty)
		return;
	tpd_strmap_del(q->entries, e->key);
	free_entry(e);
}

/* --- fifo and heap ---------------------------------------------------------------------------- */

static void fifo_push(tpd_workqueue *q, struct entry *e)
{
	if (q->fifo_len == q->fifo_cap) {
		size_t cap = q->fifo_cap ? q->fifo_cap * 2 : 64;
		struct entry **f = xcalloc(cap, sizeof(*f));

		for (size_t i = 0; i < q->fifo_len; i++)
			f[i] = q->fifo[(q->fifo_head + i) % q->fifo_cap];
		free(q->fifo);
		q->fifo = f;
		q->fifo_cap = cap;
		q->fifo_head = 0;
	}
	q->fifo[(q->fifo_head + q->fifo_len) % q->fifo_cap] = e;
	q->fifo_len++;
}

static struct entry *fifo_pop(tpd_workqueue *q)
{
	struct entry *e = q->fifo[q->fifo_head];

	q->fifo_head = (q->fifo_head + 1) % q->fifo_cap;
	q->fifo_len--;
	return e;
}

static void heap_push(tpd_workqueue *q, struct delayed d)
{
	size_t i;

	if (q->heap_len == q->heap_cap) {
		q->heap_cap = q->heap_cap ? q->heap_cap * 2 : 32;
		q->heap = xreallocarray(q->heap, q->heap_cap, sizeof(*q->heap));
	}
	i = q->heap_len++;
	while (i && q->heap[(i - 1) / 2].ready_ms > d.ready_ms) {
		q->heap[i] = q->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	q->heap[i] = d;
}

static struct delayed heap_pop(tpd_workqueue *q)
{
	struct delayed top = q->heap[0], last = q->heap[--q->heap_len];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= q->heap_len)
			break;
		if (c + 1 < q->heap_len && q->heap[c + 1].ready_ms < q->heap[c].ready_ms)
			c++;
		if (q->heap[c].ready_ms >= last.ready_ms)
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->heap_len)
		q->heap[i] = last;
	return top;
}

/* --- core ------------------------------------------------------------------------------------- */

static void update_depth(tpd_workqueue *q)
{
	tpd_metric_set(q->m_depth, (double)q->fifo_len);
}

/* Adds a key now; caller holds the lock. */
static void add_locked(tpd_workqueue *q, struct entry *e, unsigned flags)
{
	tpd_metric_inc(q->m_adds);
	e->flags |= flags;
	if (e->processing) {
		e->dirty = true;
		return;
	}
	if (e->queued)
		return;
	e->queued = true;
	e->queued_at_ms = tpd_now_ms();
	fifo_push(q, e);
	update_depth(q);
	pthread_cond_signal(&q->cv);
}

/* Moves due delayed adds to the FIFO; returns ms until the next one (or -1). Lock held. */
static int64_t promote_due(tpd_workqueue *q)
{
	int64_t now = tpd_now_ms();

	while (q->heap_len && q->heap[0].ready_ms <= now) {
		struct delayed d = heap_pop(q);

		d.e->delayed--;
		add_locked(q, d.e, d.flags);
	}
	return q->heap_len ? q->heap[0].ready_ms - now : -1;
}

tpd_workqueue *tpd_workqueue_new(int64_t base_delay_ms, int64_t max_delay_ms, tpd_metrics *m)
{
	tpd_workqueue *q = tpd_new(tpd_workqueue);

	pthread_mutex_init(&q->mu, NULL);
	tpd_cond_init(&q->cv);
	q->entries = tpd_strmap_new();
	q->base_ms = base_delay_ms > 0 ? base_delay_ms : 50;
	q->max_ms = max_delay_ms > 0 ? max_delay_ms : 5 * 60 * 1000;
	q->m_depth = tpd_metrics_gauge(m, "teleport_pagerduty_workqueue_depth",
	                               "Keys waiting in the work queue.", NULL);
	q->m_adds = tpd_metrics_counter(m, "teleport_pagerduty_workqueue_adds_total",
	                                "Keys added to the work queue.", NULL);
	q->m_retries = tpd_metrics_counter(m, "teleport_pagerduty_workqueue_retries_total",
	                                   "Keys re-queued after a failure.", NULL);
	q->m_queue_dur =
	    tpd_metrics_histogram(m, "teleport_pagerduty_workqueue_queue_duration_seconds",
	                          "Time a key waits in the queue before a worker takes it.", NULL, NULL, 0);
	q->m_work_dur = tpd_metrics_histogram(m, "teleport_pagerduty_workqueue_work_duration_seconds",
	                                      "Time a worker spends on one key.", NULL, NULL, 0);
	return q;
}

void tpd_workqueue_free(tpd_workqueue *q)
{
	if (!q)
		return;
	tpd_strmap_free(q->entries, free_entry);
	free(q->fifo);
	free(q->heap);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

void tpd_workqueue_add(tpd_workqueue *q, const char *key, unsigned flags)
{
	pthread_mutex_lock(&q->mu);
	if (!q->shutdown)
		add_locked(q, get_or_create(q, key), flags);
	pthread_mutex_unlock(&q->mu);
}

void tpd_workqueue_add_after(tpd_workqueue *q, const char *key, unsigned flags, int64_t delay_ms)
{
	struct entry *e;

	if (delay_ms <= 0) {
		tpd_workqueue_add(q, key, flags);
		return;
	}
	pthread_mutex_lock(&q->mu);
	if (!q->shutdown) {
		e = get_or_create(q, key);
		e->delayed++;
		heap_push(q, (struct delayed){tpd_now_ms() + delay_ms, e, flags});
		/* Wake a waiter so it recomputes its sleep. */
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
}

int64_t tpd_workqueue_add_rate_limited(tpd_workqueue *q, const char *key, unsigned flags)
{
	int64_t delay;
	unsigned f;

	pthread_mutex_lock(&q->mu);
	{
		struct entry *e = get_or_create(q, key);

		f = e->failures++;
	}
	pthread_mutex_unlock(&q->mu);
	/* base * 2^failures, capped, with up to 25% jitter either way so retries spread out. */
	delay = q->base_ms;
	for (unsigned i = 0; i < f && delay < q->max_ms; i++)
		delay *= 2;
	if (delay > q->max_ms)
		delay = q->max_ms;
	delay = delay * 3 / 4 + (int64_t)tpd_rand_below((uint64_t)(delay / 2 + 1));
	if (delay > q->max_ms)
		delay = q->max_ms;
	tpd_metric_inc(q->m_retries);
	tpd_workqueue_add_after(q, key, flags, delay);
	return delay;
}

unsigned tpd_workqueue_failures(tpd_workqueue *q, const char *key)
{
	struct entry *e;
	unsigned n;

	pthread_mutex_lock(&q->mu);
	e = lookup(q, key);
	n = e ? e->failures : 0;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void tpd_workqueue_forget(tpd_workqueue *q, const char *key)
{
	struct entry *e;

	pthread_mutex_lock(&q->mu);
	e = lookup(q, key);
	if (e) {
		e->failures = 0;
		maybe_remove(q, e);
	}
	pthread_mutex_unlock(&q->mu);
}

int tpd_workqueue_get(tpd_workqueue *q, int64_t timeout_ms, char **key, unsigned *flags)
{
	int64_t deadline = timeout_ms >= 0 ? tpd_now_ms() + timeout_ms : -1;
	struct entry *e;

	*key = NULL;
	*flags = 0;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		int64_t next, wait;

		if (q->shutdown) {
			pthread_mutex_unlock(&q->mu);
			return -1;
		}
		next = promote_due(q);
		if (q->fifo_len)
			break;
		wait = next;
		if (deadline >= 0) {
			int64_t left = deadline - tpd_now_ms();

			if (left <= 0) {
				pthread_mutex_unlock(&q->mu);
				return 1;
			}
			if (wait < 0 || left < wait)
				wait = left;
		}
		tpd_cond_wait_until(&q->cv, &q->mu, wait < 0 ? -1 : tpd_now_ms() + wait);
	}
	e = fifo_pop(q);
	e->queued = false;
	e->processing = true;
	e->started_ms = tpd_now_ms();
	*flags = e->flags;
	e->flags = 0;
	*key = xstrdup(e->key);
	q->processing++;
	update_depth(q);
	tpd_metric_observe(q->m_queue_dur, (double)(e->started_ms - e->queued_at_ms) / 1000.0);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

void tpd_workqueue_done(tpd_workqueue *q, const char *key)
{
	struct entry *e;

	pthread_mutex_lock(&q->mu);
	e = lookup(q, key);
	if (e && e->processing) {
		e->processing = false;
		q->processing--;
		tpd_metric_observe(q->m_work_dur, (double)(tpd_now_ms() - e->started_ms) / 1000.0);
		if (e->dirty && !q->shutdown) {
			e->dirty = false;
			add_locked(q, e, 0);
		} else {
			e->dirty = false;
			maybe_remove(q, e);
		}
	}
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void tpd_workqueue_shutdown(tpd_workqueue *q)
{
	pthread_mutex_lock(&q->mu);
	q->shutdown = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

size_t tpd_workqueue_len(tpd_workqueue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->fifo_len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t tpd_workqueue_delayed(tpd_workqueue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->heap_len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

int tpd_workqueue_wait_idle(tpd_workqueue *q, int64_t timeout_ms)
{
	int64_t deadline = tpd_now_ms() + timeout_ms;
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	while (q->fifo_len || q->processing || q->heap_len) {
		int64_t now = tpd_now_ms();

		if (now >= deadline) {
			rc = 1;
			break;
		}
		/* Delayed entries fall due without a signal: look again at least every 50 ms. */
		tpd_cond_wait_until(&q->cv, &q->mu, deadline - now < 50 ? deadline : now + 50);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}
