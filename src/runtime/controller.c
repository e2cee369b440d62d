/* controller.c - the operator-style controller: lifecycle (new, start, stop, wait, free), the
 * threads, the readiness checks and the small helpers the other parts share.
 *
 * Threads (all created by tpd_controller_start, all joined by tpd_controller_free):
 *   watcher      WatchEvents on access_request. On every INIT it lists all requests, refreshes the
 *                request cache and enqueues every key (level-triggered: nothing created or
 *                changed while disconnected is missed). PUT/DELETE update the cache and enqueue.
 *   workers (N)  take keys from the work queue and reconcile them: fetch plugin data, ask the
 *                pure core (reconcile.c) for the next step, execute it, repeat until done.
 *                Failures are re-queued with per-key exponential backoff.
 *   housekeeper  identity rotation (inotify + polling fallback + SIGHUP), periodic resync, the
 *                orphaned-incident scan, the PagerDuty health check and readiness bookkeeping.
 * The status server (if enabled) runs its own thread and only reads atomics through checks.
 *
 * State: the request cache (id → latest request seen) and the seen-pending memory (requests seen
 * PENDING that left that state before they were handled, see seenpending.h) are the shared data,
 * under cache_mu. Both are kept by every process, followers included, so a new leader knows what
 * its predecessor saw. Everything durable lives in Teleport's plugin data; a restart rebuilds
 * the rest.
 *
 * The controller is split into files along its jobs; they share the context struct and a few
 * functions through controller_impl.h:
 *   controller.c   lifecycle, threads, status checks (this file)
 *   informer.c     list, watch, request cache, relist, seen-pending recording
 *   executor.c     jobs, the act_* steps, per-key reconcile, the worker loop
 *   pdstate.c      plugin data as the executor sees it (CAS write, read, what it remembers)
 *   housekeeper.c  identity reload, orphan scan, PagerDuty health (sleeps until due or woken) */
#include "controller_impl.h"

#include <limits.h>
#include <sys/eventfd.h>
#include "tpd/wiring.h"

/* ---------------------------------------------------------------------------------------------- */
/* small helpers                                                                                  */

void ctl_entry_free(void *p)
{
	ctl_entry *e = p;

	if (!e)
		return;
	tpd_access_request_free(e->req);
	ctl_known_free(e->known);
	free(e);
}

tpd_access_request *ctl_cache_put(tpd_strmap *cache, tpd_access_request *r, bool keep_known)
{
	ctl_entry *e = tpd_strmap_get(cache, r->id);
	tpd_access_request *old;

	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->req = r;
		tpd_strmap_put(cache, r->id, e);
		return NULL;
	}
	/* A newer version of a cached request: same entry, so what is known of its data stays. */
	old = e->req;
	e->req = r;
	if (!keep_known) {
		ctl_known_free(e->known);
		e->known = NULL;
	}
	return old;
}

tpd_access_request *ctl_cache_del(tpd_strmap *cache, const char *id)
{
	ctl_entry *e = tpd_strmap_del(cache, id);
	tpd_access_request *r = e ? e->req : NULL;

	if (e) {
		e->req = NULL;
		ctl_entry_free(e);
	}
	return r;
}

const tpd_access_request *ctl_cache_req(tpd_strmap *cache, const char *id)
{
	const ctl_entry *e = tpd_strmap_get(cache, id);

	return e ? e->req : NULL;
}

/* Sleeps up to ms or until woken (stop, reload, orphan scan); returns true when stopping. */
bool ctl_wait_or_stop(tpd_controller *c, int64_t ms)
{
	pthread_mutex_lock(&c->wake_mu);
	if (!atomic_load(&c->stop))
		tpd_cond_wait_until(&c->wake_cv, &c->wake_mu, tpd_now_ms() + ms);
	pthread_mutex_unlock(&c->wake_mu);
	return atomic_load(&c->stop);
}

/* Makes an eventfd readable. Its counter cannot reach the limit (every reader drains it, and
 * done_fd is written once), so a failed write can only mean it is readable already. */
static void eventfd_signal(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* readable already */
	}
}

void ctl_thread_exit(tpd_controller *c)
{
	if (atomic_fetch_sub(&c->live_threads, 1) == 1)
		eventfd_signal(c->done_fd);
}

int tpd_controller_done_fd(const tpd_controller *c)
{
	return c->done_fd;
}

void ctl_wake_all(tpd_controller *c)
{
	pthread_mutex_lock(&c->wake_mu);
	pthread_cond_broadcast(&c->wake_cv);
	pthread_mutex_unlock(&c->wake_mu);
	eventfd_signal(c->wake_fd); /* the housekeeper sleeps in poll() on it */
}

void ctl_fail(tpd_controller *c, const char *err)
{
	pthread_mutex_lock(&c->fail_mu);
	if (!c->failed) {
		c->failed = true;
		snprintf(c->fail_err, sizeof(c->fail_err), "%.*s", (int)sizeof(c->fail_err) - 1, err);
	}
	pthread_mutex_unlock(&c->fail_mu);
	tpd_controller_request_stop(c);
}

void ctl_fmt_seconds(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%.3fs", (double)ms / 1000.0);
}

/* Deep copies of the cached request (NULL when the cache does not know it) and of its
 * seen-pending snapshot (NULL when there is none; *gen its generation), taken together. */
void ctl_cache_get(tpd_controller *c, const char *id, tpd_access_request **req, tpd_access_request **snap,
                   uint64_t *gen)
{
	const tpd_access_request *r, *s;

	pthread_mutex_lock(&c->cache_mu);
	r = ctl_cache_req(c->cache, id);
	s = tpd_seen_pending_get(c->seen, id, gen);
	*req = r ? tpd_access_request_dup(r) : NULL;
	*snap = s ? tpd_access_request_dup(s) : NULL;
	pthread_mutex_unlock(&c->cache_mu);
}

/* ---------------------------------------------------------------------------------------------- */
/* status checks                                                                                  */

static bool check_watcher(void *ud, char *reason, size_t len)
{
	tpd_controller *c = ud;

	if (atomic_load(&c->watch_synced))
		return true;
	snprintf(reason, len, "Teleport watcher not connected or initial listing not finished");
	return false;
}

static bool check_identity(void *ud, char *reason, size_t len)
{
	tpd_controller *c = ud;

	if (atomic_load(&c->identity_valid))
		return true;
	snprintf(reason, len, "Teleport identity expired at unix time %" PRIdFAST64,
	         atomic_load(&c->identity_not_after));
	return false;
}

static bool check_pagerduty(void *ud, char *reason, size_t len)
{
	tpd_controller *c = ud;

	if (atomic_load(&c->pd_healthy))
		return true;
	snprintf(reason, len, "last PagerDuty API health check failed");
	return false;
}

static bool check_loops(void *ud, char *reason, size_t len)
{
	tpd_controller *c = ud;
	int64_t age = tpd_now_ms() - atomic_load(&c->housekeeper_tick_ms);

	if (age <= LIVENESS_MAX_AGE_MS && atomic_load(&c->live_threads) == c->n_workers + 2)
		return true;
	snprintf(reason, len, "controller loop stalled (last tick %lld ms ago, %d of %d threads alive)",
	         (long long)age, atomic_load(&c->live_threads), c->n_workers + 2);
	return false;
}

/* A configured auto-approval schedule PagerDuty does not know is a warning at start (and a log
 * line at every decision, executor.c): never fatal, never an approval through it. */
static void warn_unknown_schedules(tpd_controller *c)
{
	const tpd_cfg_strlist *names = &c->cfg->pagerduty.auto_approve_schedules;

	for (size_t i = 0; i < names->n; i++) {
		tpd_pd_schedule s = {0};
		char e[TPD_ERRLEN];
		tpd_err rc = tpd_pd_find_schedule(c->pd, names->v[i], &s, e);

		if (rc == TPD_ERR_NOT_FOUND)
			tpd_log(
			    c->lg, TPD_LOG_WARN,
			    "Auto-approval schedule not found in PagerDuty: nobody is approved through it",
			    "pd_schedule_name", names->v[i], NULL);
		else if (rc)
			tpd_log(c->lg, TPD_LOG_WARN, "Could not look up an auto-approval schedule",
			        "pd_schedule_name", names->v[i], "error", e, NULL);
		tpd_pd_schedule_clear(&s);
	}
}

/* Always passes: shows "[+]dry-run ok" in /readyz?verbose, so a dry-run replica says what it is. */
static bool check_dry_run(void *ud, char *reason, size_t len)
{
	(void)ud;
	(void)reason;
	(void)len;
	return true;
}

/* ---------------------------------------------------------------------------------------------- */
/* lifecycle                                                                                      */

tpd_err tpd_controller_new(const tpd_config *cfg, tpd_logger *lg, tpd_controller **out, char *err)
{
	tpd_controller *c;

	*out = NULL;
	/* first, so that nothing else needs undoing when they fail */
	int done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int wake_fd = done_fd < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (wake_fd < 0) {
		int e = errno;

		if (done_fd >= 0)
			close(done_fd);
		return tpd_seterr(err, TPD_ERR_INTERNAL, "cannot create the controller's eventfds: %s",
		                  strerror(e));
	}
	c = tpd_new(tpd_controller);
	c->done_fd = done_fd;
	c->wake_fd = wake_fd;
	c->cfg = cfg;
	c->lg = lg;
	c->metrics = tpd_metrics_new();
	c->ropts.notify_annotation = cfg->pagerduty.notify_service_annotation;
	c->ropts.services_annotation = cfg->pagerduty.services_annotation;
	c->ropts.notify_all = cfg->pagerduty.notify_all_services;
	c->q = tpd_workqueue_new(50, 5 * 60 * 1000, c->metrics);
	c->cache = tpd_strmap_new();
	c->orphans = tpd_strmap_new();
	c->known_services = tpd_strmap_new();
	c->unsure = tpd_strmap_new();
	c->dry_run = cfg->reconcile.dry_run;
	c->dry_pd = tpd_strmap_new();
	c->dry_incidents = tpd_strmap_new();
	c->seen = tpd_seen_pending_new(SEEN_PENDING_CAP, SEEN_PENDING_TTL_MS,
	                               cfg->pagerduty.notify_service_annotation,
	                               cfg->pagerduty.services_annotation);
	/* The config loader keeps workers within 1..64; the clamp only guards the array. */
	c->n_workers = cfg->reconcile.workers < 1 ? 1 : cfg->reconcile.workers;
	if (c->n_workers > MAX_WORKERS)
		c->n_workers = MAX_WORKERS;
	pthread_mutex_init(&c->cache_mu, NULL);
	pthread_mutex_init(&c->fail_mu, NULL);
	pthread_mutex_init(&c->wake_mu, NULL);
	tpd_cond_init(&c->wake_cv);
	c->m_reconcile = tpd_metrics_counter(c->metrics, "teleport_pagerduty_reconcile_total",
	                                     "Reconcile passes by result.", "result");
	c->m_reconcile_err = tpd_metrics_counter(c->metrics, "teleport_pagerduty_reconcile_errors_total",
	                                         "Failed reconcile passes by cause.", "reason");
	c->m_created = tpd_metrics_counter(c->metrics, "teleport_pagerduty_incidents_created_total",
	                                   "PagerDuty incidents created.", NULL);
	c->m_resolved = tpd_metrics_counter(c->metrics, "teleport_pagerduty_incidents_resolved_total",
	                                    "PagerDuty incidents resolved, by resolution.", "resolution");
	c->m_notes = tpd_metrics_counter(c->metrics, "teleport_pagerduty_notes_posted_total",
	                                 "Notes posted on PagerDuty incidents.", NULL);
	c->m_approvals = tpd_metrics_counter(c->metrics, "teleport_pagerduty_auto_approvals_total",
	                                     "Auto-approval decisions, by result.", "result");
	c->m_reconnects = tpd_metrics_counter(c->metrics, "teleport_pagerduty_watch_reconnects_total",
	                                      "Teleport watch stream reconnections.", NULL);
	c->m_watch_connected = tpd_metrics_gauge(c->metrics, "teleport_pagerduty_watch_connected",
	                                         "1 while the Teleport watch stream is up.", NULL);
	c->m_id_expiry = tpd_metrics_gauge(c->metrics, "teleport_pagerduty_identity_expiry_timestamp_seconds",
	                                   "Expiry of the Teleport identity in use (unix seconds).", NULL);
	c->m_id_reloads = tpd_metrics_counter(c->metrics, "teleport_pagerduty_identity_reloads_total",
	                                      "Identity reloads, by result.", "result");
	c->m_seen = tpd_metrics_gauge(c->metrics, "teleport_pagerduty_seen_pending_requests",
	                              "Requests seen PENDING that left it and are not handled yet.", NULL);
	c->m_seen_forgotten = tpd_metrics_counter(
	    c->metrics, "teleport_pagerduty_seen_pending_forgotten_total",
	    "Seen-pending entries forgotten, by reason (handled, expired, evicted).", "reason");
	c->m_by_service = tpd_metrics_counter(c->metrics, "teleport_pagerduty_incidents_by_service_total",
	                                      "PagerDuty incidents created, by service.", "service");
	c->m_dry = tpd_metrics_counter(c->metrics, "teleport_pagerduty_dry_run_actions_total",
	                               "Writes a dry run did not make, by action.", "action");
	tpd_metrics_add_standard(c->metrics, TPD_VERSION, TPD_GIT_COMMIT);
	*out = c;
	return TPD_ERR_OK;
}

static bool init_wait(void *ud, int64_t ms)
{
	return ctl_wait_or_stop(ud, ms);
}

/* Connects the way `check` does (tpd_teleport_connect) and keeps what Ping said. */
static tpd_err init_teleport(tpd_controller *c, tpd_teleport_opts *to, char *err)
{
	tpd_ping_info ping = {0};
	tpd_err rc =
	    tpd_teleport_connect(to, TPD_TELEPORT_CONNECT_TIMEOUT_MS, init_wait, c, &c->tp, &ping, err);

	if (rc)
		return rc;
	c->cluster_name = xstrdup(ping.cluster_name);
	if (ping.advanced_workflows && !tpd_str_empty(ping.proxy_public_addr))
		c->proxy_addr = xstrdup(ping.proxy_public_addr);
	tpd_ping_info_clear(&ping);
	return TPD_ERR_OK;
}

/* Starts the watcher, the housekeeper and the workers. If one cannot be created the others are
 * stopped; only created threads are joined later (n_workers and the flags say which). */
static tpd_err start_threads(tpd_controller *c, char *err)
{
	int want = c->n_workers, e;

	if ((e = pthread_create(&c->watcher, NULL, ctl_watcher_main, c)) != 0)
		goto fail;
	c->watcher_started = true;
	pthread_setname_np(c->watcher, "tpd-watcher"); /* names are for debuggers and top -H */
	if ((e = pthread_create(&c->housekeeper, NULL, ctl_housekeeper_main, c)) != 0)
		goto fail;
	c->housekeeper_started = true;
	pthread_setname_np(c->housekeeper, "tpd-housekeep");
	for (c->n_workers = 0; c->n_workers < want; c->n_workers++) {
		struct worker *w = &c->workers[c->n_workers];
		char name[16]; /* thread names are at most 15 characters */

		w->c = c;
		w->index = c->n_workers;
		if ((e = pthread_create(&w->thread, NULL, ctl_worker_main, w)) != 0)
			goto fail;
		snprintf(name, sizeof(name), "tpd-worker-%d", w->index);
		pthread_setname_np(w->thread, name);
	}
	return TPD_ERR_OK;
fail:
	/* Threads never created never decrement live_threads: account for them. */
	{
		int never = (want - c->n_workers) + !c->watcher_started + !c->housekeeper_started;

		if (atomic_fetch_sub(&c->live_threads, never) == never)
			eventfd_signal(c->done_fd);
	}
	tpd_controller_request_stop(c);
	return tpd_seterr(err, TPD_ERR_INTERNAL, "cannot start a controller thread: %s", strerror(e));
}

tpd_err tpd_controller_start(tpd_controller *c, char *err)
{
	const tpd_config *cfg = c->cfg;
	tpd_teleport_opts to = {0};
	tpd_pd_opts po = {0};
	char inner[TPD_ERRLEN];
	tpd_err rc;

	rc = tpd_wiring_load_identity(cfg, &c->identity, err);
	if (rc)
		return rc;
	rc = tpd_identity_check_time(c->identity, tpd_wall_ms() / 1000, err);
	if (rc)
		return rc;
	ctl_note_identity(c, c->identity);
	atomic_store(&c->identity_valid, true);
	if (!tpd_str_empty(cfg->teleport.identity)) {
		if (tpd_idwatch_new(cfg->teleport.identity, &c->idwatch, inner))
			tpd_log(c->lg, TPD_LOG_WARN,
			        "Cannot watch the identity file for changes, polling only", "error", inner,
			        NULL);
	}

	tpd_wiring_teleport_opts(cfg, c->identity, c->lg, c->metrics, &to);
	rc = init_teleport(c, &to, err);
	if (rc)
		return rc;

	tpd_wiring_pd_opts(cfg, c->lg, c->metrics, &po);
	rc = tpd_pd_new(&po, &c->pd, err);
	if (rc)
		return rc;
	tpd_log(c->lg, TPD_LOG_DEBUG, "Starting PagerDuty API health check...", NULL);
	rc = tpd_pd_health(c->pd, inner);
	if (rc == TPD_ERR_ACCESS_DENIED || rc == TPD_ERR_CONFIG) {
		/* A rejected key or a bad endpoint will not fix itself: stop, like upstream. */
		return tpd_seterr(err, rc,
		                  "api health check failed. check your credentials and endpoint settings: %s",
		                  inner);
	}
	if (rc) {
		/* Transient (429, 5xx, network): start anyway; /readyz reports it until it passes and
		 * failed work is retried with backoff. */
		tpd_log(c->lg, TPD_LOG_ERROR,
		        "PagerDuty API health check failed, starting anyway and retrying", "error", inner,
		        NULL);
	} else {
		tpd_log(c->lg, TPD_LOG_DEBUG, "PagerDuty API health check finished ok", NULL);
		warn_unknown_schedules(c);
	}
	atomic_store(&c->pd_healthy, rc == TPD_ERR_OK);

	if (!tpd_str_empty(cfg->status.listen_addr)) {
		rc = tpd_status_new(cfg->status.listen_addr, c->metrics, c->lg, &c->status, err);
		if (rc)
			return rc;
		tpd_status_add_check(c->status, "teleport-watcher", true, check_watcher, c);
		tpd_status_add_check(c->status, "teleport-identity", true, check_identity, c);
		tpd_status_add_check(c->status, "pagerduty", true, check_pagerduty, c);
		tpd_status_add_check(c->status, "controller-loops", false, check_loops, c);
		if (c->dry_run)
			tpd_status_add_check(c->status, "dry-run", true, check_dry_run, c);
		rc = tpd_status_start(c->status, err);
		if (rc)
			return rc;
	}

	if (cfg->leader.enabled && c->dry_run)
		/* A dry-run replica must never be able to stop a live one: it leaves the Lease alone
		 * and, writing nothing, may run next to the leader. */
		tpd_log(c->lg, TPD_LOG_WARN, "Dry run: leader election is off, the Lease is left alone",
		        NULL);
	if (cfg->leader.enabled && !c->dry_run) {
		tpd_leader_opts lo = {0};

		lo.api_url = cfg->leader.api_server;
		lo.token_file = cfg->leader.token_file;
		lo.ca_file = cfg->leader.ca_file;
		lo.lease_name = cfg->leader.lease_name;
		lo.lease_namespace = cfg->leader.lease_namespace;
		lo.lease_duration_ms = cfg->leader.lease_duration_ms;
		lo.renew_deadline_ms = cfg->leader.renew_deadline_ms;
		lo.retry_period_ms = cfg->leader.retry_period_ms;
		lo.cb = ctl_on_leadership;
		lo.cb_ud = c;
		lo.log = c->lg;
		lo.metrics = c->metrics;
		rc = tpd_leader_new(&lo, &c->leader, err);
		if (rc)
			return rc;
	}

	atomic_store(&c->housekeeper_tick_ms, tpd_now_ms());
	atomic_store(&c->live_threads, c->n_workers + 2);
	c->threads_started = true;
	if ((rc = start_threads(c, err)) != TPD_ERR_OK)
		return rc;
	{
		char workers[16], port[16] = "disabled";

		snprintf(workers, sizeof(workers), "%d", c->n_workers);
		if (c->status)
			snprintf(port, sizeof(port), "%d", tpd_status_port(c->status));
		tpd_log(c->lg, TPD_LOG_INFO, "Controller started", "workers", workers, "status_port", port,
		        "leader_election", c->leader ? "on" : "off", "dry_run", c->dry_run ? "true" : "false",
		        NULL);
	}
	/* Last, so that leadership callbacks find the threads running. */
	if (c->leader)
		return tpd_leader_start(c->leader, err);
	return TPD_ERR_OK;
}

void tpd_controller_request_stop(tpd_controller *c)
{
	if (!c || atomic_exchange(&c->stop, true))
		return;
	if (c->status)
		tpd_status_set_shutting_down(c->status);
	tpd_workqueue_shutdown(c->q);
	/* A PagerDuty call not sent yet (waiting in the limiter or a back-off) gives up now, so a
	 * backlog at the default budget does not hold the stop until shutdown_timeout; what is
	 * already on the wire finishes. Nothing is lost: the next start reconciles again. */
	if (c->pd)
		tpd_pd_drain(c->pd);
	if (c->tp)
		tpd_teleport_watch_stop(c->tp);
	ctl_wake_all(c);
}

bool tpd_controller_wait(tpd_controller *c, int64_t timeout_ms)
{
	int64_t deadline = tpd_now_ms() + timeout_ms;

	if (!c->threads_started)
		return atomic_load(&c->stop);
	/* done_fd turns readable when the last thread ends (ctl_thread_exit) */
	while (atomic_load(&c->live_threads) != 0) {
		struct pollfd p = {.fd = c->done_fd, .events = POLLIN};
		int64_t left = deadline - tpd_now_ms();

		if (left <= 0)
			return false;
		if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR)
			return false;
	}
	return true;
}

bool tpd_controller_failed(tpd_controller *c, char *err)
{
	bool failed;

	pthread_mutex_lock(&c->fail_mu);
	failed = c->failed;
	if (failed && err)
		snprintf(err, TPD_ERRLEN, "%s", c->fail_err);
	pthread_mutex_unlock(&c->fail_mu);
	return failed;
}

void tpd_controller_reload(tpd_controller *c)
{
	atomic_store(&c->reload_requested, true);
	ctl_wake_all(c);
}

void tpd_controller_free(tpd_controller *c)
{
	if (!c)
		return;
	tpd_controller_request_stop(c);
	if (c->pd)
		tpd_pd_shutdown(c->pd);
	if (c->threads_started) {
		if (c->watcher_started)
			pthread_join(c->watcher, NULL);
		if (c->housekeeper_started)
			pthread_join(c->housekeeper, NULL);
		for (int i = 0; i < c->n_workers; i++)
			pthread_join(c->workers[i].thread, NULL);
	}
	/* After the workers: a leader releases its lease only once nothing reconciles any more. */
	tpd_leader_free(c->leader);
	tpd_status_free(c->status);
	tpd_pd_free(c->pd);
	tpd_teleport_free(c->tp);
	tpd_idwatch_free(c->idwatch);
	tpd_identity_free(c->identity);
	tpd_workqueue_free(c->q);
	tpd_strmap_free(c->cache, ctl_entry_free);
	tpd_strmap_free(c->orphans, free);
	tpd_strmap_free(c->known_services, NULL);
	tpd_strmap_free(c->unsure, NULL);
	ctl_dry_free(c);
	tpd_seen_pending_free(c->seen);
	tpd_metrics_free(c->metrics);
	free(c->cluster_name);
	free(c->proxy_addr);
	pthread_cond_destroy(&c->wake_cv);
	if (c->done_fd >= 0)
		close(c->done_fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	pthread_mutex_destroy(&c->wake_mu);
	pthread_mutex_destroy(&c->fail_mu);
	pthread_mutex_destroy(&c->cache_mu);
	free(c);
}
