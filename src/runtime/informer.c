/* informer.c - the controller's view of Teleport's access requests: the watcher thread (list,
 * watch, relist on every INIT), the request cache it keeps, and the seen-pending recording
 * (requests seen PENDING that left it before they were handled). Shared data is under
 * cache_mu; see controller.c for the whole picture. */
#include "controller_impl.h"

/* ---------------------------------------------------------------------------------------------- */
/* seen pending                                                                                   */

/* The informer saw a cached request change from prev to next (NULL: deleted or gone from a
 * listing). A request that leaves PENDING is remembered as it was last seen PENDING, so the
 * planner can still open its incident although the collapsed work queue only shows it resolved
 * or gone. Runs on every process (followers too). Caller holds cache_mu. */
static void seen_transition(tpd_controller *c, const tpd_access_request *prev, const tpd_access_request *next)
{
	size_t evicted;

	if (!prev || prev->state != TPD_STATE_PENDING || (next && next->state == TPD_STATE_PENDING))
		return;
	evicted = tpd_seen_pending_put(c->seen, prev, tpd_now_ms());
	if (evicted) {
		tpd_metric_add(c->m_seen_forgotten, (double)evicted, "evicted");
		tpd_log(c->lg, TPD_LOG_WARN,
		        "Seen-pending memory full, forgot the oldest request that left PENDING unhandled",
		        "request_id", prev->id, NULL);
	}
	tpd_metric_set(c->m_seen, (double)tpd_seen_pending_len(c->seen));
}

/* A pass handled the request (resolved or deleted, nothing left to do): forget its snapshot,
 * unless a newer one replaced it meanwhile. */
void ctl_seen_handled(tpd_controller *c, const char *id, uint64_t gen)
{
	pthread_mutex_lock(&c->cache_mu);
	if (tpd_seen_pending_forget(c->seen, id, gen)) {
		tpd_metric_inc(c->m_seen_forgotten, "handled");
		tpd_metric_set(c->m_seen, (double)tpd_seen_pending_len(c->seen));
	}
	pthread_mutex_unlock(&c->cache_mu);
}

/* Housekeeping: entries older than the TTL go, handled or not. */
void ctl_seen_expire(tpd_controller *c)
{
	size_t n;

	pthread_mutex_lock(&c->cache_mu);
	n = tpd_seen_pending_expire(c->seen, tpd_now_ms());
	if (n) {
		tpd_metric_add(c->m_seen_forgotten, (double)n, "expired");
		tpd_metric_set(c->m_seen, (double)tpd_seen_pending_len(c->seen));
	}
	pthread_mutex_unlock(&c->cache_mu);
}

void ctl_enqueue_seen(void *ud, const char *id, const tpd_access_request *snap)
{
	tpd_controller *c = ud;

	(void)snap;
	/* Not in the cache (deleted) or resolved: either way not enqueued with the cache's keys. */
	tpd_workqueue_add(c->q, id, TPD_WQ_EVENT);
}

/* ---------------------------------------------------------------------------------------------- */
/* watcher                                                                                        */

struct listing {
	tpd_controller *c;
	tpd_strmap *fresh;
};

static int list_cb(void *ud, const tpd_access_request *r)
{
	struct listing *l = ud;

	if (r->id)
		tpd_access_request_free(ctl_cache_put(l->fresh, tpd_access_request_dup(r), false));
	return atomic_load(&l->c->stop) ? 1 : 0;
}

struct resync {
	tpd_controller *c;
	tpd_strmap *old; /* previous cache, entries removed as they are matched */
	bool first;
	size_t n;
};

/* A request is "changed" when its state or reviews differ from what the cache held. */
static bool changed(const tpd_access_request *a, const tpd_access_request *b)
{
	return !a || !b || a->state != b->state || a->n_reviews != b->n_reviews;
}

static void enqueue_fresh(void *ud, const char *key, void *value)
{
	struct resync *s = ud;
	const tpd_access_request *r = ((const ctl_entry *)value)->req;
	tpd_access_request *prev = ctl_cache_del(s->old, key);

	ctl_unsure_first_seen(s->c, r); /* cache_mu is held by relist */
	seen_transition(s->c, prev, r);
	/* New or changed requests count as events (auto-approval is tried); the rest is a resync. */
	tpd_workqueue_add(s->c->q, key, (s->first || changed(prev, r)) ? TPD_WQ_EVENT : TPD_WQ_RESYNC);
	tpd_access_request_free(prev);
	s->n++;
}

static void enqueue_gone(void *ud, const char *key, void *value)
{
	struct resync *s = ud;

	tpd_strmap_del(s->c->unsure, key); /* cache_mu is held by relist */
	seen_transition(s->c, ((const ctl_entry *)value)->req, NULL);
	tpd_workqueue_add(s->c->q, key, TPD_WQ_EVENT);
	s->n++;
}

/* After INIT: list everything, replace the cache, enqueue every key. */
static tpd_err relist(tpd_controller *c, char *err)
{
	struct listing l = {c, tpd_strmap_new()};
	struct resync s = {c, NULL, false, 0};
	int64_t t0 = tpd_now_ms();
	char n[24], took[32];
	tpd_err rc;

	rc = tpd_teleport_list_requests(c->tp, list_cb, &l, err);
	if (rc || atomic_load(&c->stop)) {
		tpd_strmap_free(l.fresh, ctl_entry_free);
		return rc ? rc : TPD_ERR_CANCELLED;
	}
	pthread_mutex_lock(&c->cache_mu);
	s.old = c->cache;
	s.first = !c->listed_once;
	/* A relist (start, reconnect, periodic resync) reads every request's plugin data afresh: the
	 * fresh entries remember none. */
	c->cache = l.fresh;
	c->listed_once = true;
	tpd_strmap_each(c->cache, enqueue_fresh, &s);
	/* What the old cache had and the listing has not: deleted while we were disconnected. */
	tpd_strmap_each(s.old, enqueue_gone, &s);
	pthread_mutex_unlock(&c->cache_mu);
	tpd_strmap_free(s.old, ctl_entry_free);
	snprintf(n, sizeof(n), "%zu", s.n);
	ctl_fmt_seconds(tpd_now_ms() - t0, took, sizeof(took));
	tpd_log(c->lg, TPD_LOG_INFO, "Listed access requests", "count", n, "took", took, NULL);
	return TPD_ERR_OK;
}

static int on_event(void *ud, const tpd_event *ev)
{
	tpd_controller *c = ud;
	tpd_access_request *prev;
	char err[TPD_ERRLEN];

	if (atomic_load(&c->stop))
		return 1;
	switch (ev->op) {
	case TPD_EV_INIT:
		tpd_log(c->lg, TPD_LOG_DEBUG, "Watcher connected", NULL);
		tpd_metric_set(c->m_watch_connected, 1);
		if (relist(c, err)) {
			if (!atomic_load(&c->stop))
				tpd_log(c->lg, TPD_LOG_ERROR, "Failed to list access requests, reconnecting",
				        "error", err, NULL);
			return 1;
		}
		if (!atomic_exchange(&c->watch_synced, true))
			tpd_log(c->lg, TPD_LOG_INFO, "Plugin is ready", NULL);
		atomic_store(&c->orphan_scan_requested, true);
		ctl_wake_all(c);
		break;
	case TPD_EV_PUT:
		if (!ev->request || !ev->request->id)
			break;
		pthread_mutex_lock(&c->cache_mu);
		prev = ctl_cache_put(c->cache, tpd_access_request_dup(ev->request), true);
		seen_transition(c, prev, ev->request);
		if (!prev) /* created after the list: nothing stored for it yet */
			ctl_known_assume_new(c, ev->request->id);
		tpd_access_request_free(prev);
		ctl_unsure_first_seen(c, ev->request);
		pthread_mutex_unlock(&c->cache_mu);
		tpd_log(c->lg, TPD_LOG_DEBUG, "Access request event", "request_id", ev->request->id,
		        "request_op", "put", "request_state", tpd_request_state_name(ev->request->state),
		        NULL);
		tpd_workqueue_add(c->q, ev->request->id, TPD_WQ_EVENT);
		break;
	case TPD_EV_DELETE:
		if (!ev->deleted_id)
			break;
		pthread_mutex_lock(&c->cache_mu);
		prev = ctl_cache_del(c->cache, ev->deleted_id); /* and what was known of its data */
		seen_transition(c, prev, NULL);
		tpd_access_request_free(prev);
		tpd_strmap_del(c->unsure, ev->deleted_id);
		pthread_mutex_unlock(&c->cache_mu);
		tpd_log(c->lg, TPD_LOG_DEBUG, "Access request event", "request_id", ev->deleted_id,
		        "request_op", "delete", NULL);
		tpd_workqueue_add(c->q, ev->deleted_id, TPD_WQ_EVENT);
		break;
	}
	return 0;
}

void *ctl_watcher_main(void *arg)
{
	tpd_controller *c = arg;
	int64_t backoff = 0;

	while (!atomic_load(&c->stop)) {
		char err[TPD_ERRLEN] = "";
		char retry[32];
		int64_t started = tpd_now_ms();
		tpd_err rc = tpd_teleport_watch(c->tp, on_event, c, err);

		atomic_store(&c->watch_synced, false);
		tpd_metric_set(c->m_watch_connected, 0);
		if (atomic_load(&c->stop) || rc == TPD_ERR_CANCELLED)
			break;
		if (rc == TPD_ERR_ACCESS_DENIED) {
			char msg[TPD_ERRLEN + 128];

			/* Retrying cannot fix a role without access_request list/read: stop, like upstream.
			 */
			snprintf(
			    msg, sizeof(msg),
			    "watching access requests was denied (grant the plugin's role list and read on "
			    "access_request): %s",
			    err);
			ctl_fail(c, msg);
			break;
		}
		/* A stream that lived a while starts the backoff over. */
		if (tpd_now_ms() - started > 30000)
			backoff = 0;
		backoff = tpd_backoff_decorr(20, 5000, backoff);
		ctl_fmt_seconds(backoff, retry, sizeof(retry));
		tpd_metric_inc(c->m_reconnects);
		tpd_log(c->lg, rc ? TPD_LOG_ERROR : TPD_LOG_WARN,
		        rc ? "Connection problem detected, attempting to reconnect"
		           : "Watcher stream closed, attempting to reconnect",
		        "error", rc ? err : "", "retry_in", retry, NULL);
		if (ctl_wait_or_stop(c, backoff))
			break;
		/* Connect now rather than on gRPC's slow backup poller (the watch fails fast while the
		 * channel is down); a channel that does not get there in time fails the next watch
		 * with the real cause. */
		tpd_teleport_await_ready(c->tp, RECONNECT_WAIT_MS);
	}
	ctl_thread_exit(c);
	return NULL;
}
