/* housekeeper.c - the controller's housekeeper thread: identity rotation and reload, the
 * orphaned-incident scan, the PagerDuty health check and periodic resync. See controller.c. */
#include "controller_impl.h"
#include "tpd/wiring.h"

/* ---------------------------------------------------------------------------------------------- */
/* housekeeper                                                                                    */

void ctl_note_identity(tpd_controller *c, const tpd_identity *id)
{
	atomic_store(&c->identity_not_after, tpd_identity_not_after(id));
	tpd_metric_set(c->m_id_expiry, (double)tpd_identity_not_after(id));
}

/* Re-reads the identity; swaps credentials when it changed and is valid. Returns false when the
 * file is unusable (the caller retries later). */
static bool reload_identity(tpd_controller *c, bool forced)
{
	char err[TPD_ERRLEN];
	tpd_identity *id = NULL;
	char expiry[40];

	if (tpd_wiring_load_identity(c->cfg, &id, err)) {
		tpd_metric_inc(c->m_id_reloads, "error");
		tpd_log(c->lg, TPD_LOG_ERROR,
		        "Failed to reload identity file from disk, keeping the current one", "error", err,
		        NULL);
		return false;
	}
	if (!memcmp(tpd_identity_fingerprint(id), tpd_identity_fingerprint(c->identity), 32)) {
		if (forced)
			tpd_log(c->lg, TPD_LOG_DEBUG, "Identity unchanged", NULL);
		tpd_identity_free(id);
		return true;
	}
	if (tpd_identity_check_time(id, tpd_wall_ms() / 1000, err)) {
		tpd_metric_inc(c->m_id_reloads, "error");
		tpd_log(c->lg, TPD_LOG_ERROR, "The new identity is not valid, keeping the current one",
		        "error", err, NULL);
		tpd_identity_free(id);
		return false;
	}
	if (tpd_teleport_set_credentials(c->tp, tpd_identity_key_pem(id), tpd_identity_cert_pem(id),
	                                 tpd_identity_ca_pem(id), err)) {
		tpd_metric_inc(c->m_id_reloads, "error");
		tpd_log(c->lg, TPD_LOG_ERROR, "Failed to use the new identity, keeping the current one",
		        "error", err, NULL);
		tpd_identity_free(id);
		return false;
	}
	/* Move the watch onto the new credentials too. */
	tpd_teleport_watch_reconnect(c->tp);
	tpd_identity_free(c->identity);
	c->identity = id;
	ctl_note_identity(c, id);
	atomic_store(&c->identity_valid, true);
	tpd_metric_inc(c->m_id_reloads, "success");
	tpd_format_rfc3339(tpd_identity_not_after(id) * 1000, expiry, sizeof(expiry));
	tpd_log(c->lg, TPD_LOG_INFO, "Reloaded identity", "expires", expiry, "serial",
	        tpd_identity_serial(id), NULL);
	return true;
}

static void enqueue_cached(void *ud, const char *key, void *value)
{
	(void)value;
	tpd_workqueue_add(((tpd_controller *)ud)->q, key, TPD_WQ_RESYNC);
}

struct orphan_scan {
	tpd_controller *c;
	size_t found;
};

static void orphan_cb(void *ud, const char *incident_id, const char *incident_key)
{
	struct orphan_scan *s = ud;
	char *id = tpd_incident_key_request_id(incident_key);
	bool known;

	if (!id)
		return;
	pthread_mutex_lock(&s->c->cache_mu);
	known = tpd_strmap_get(s->c->cache, id) != NULL || tpd_seen_pending_get(s->c->seen, id, NULL) != NULL;
	if (!known)
		free(tpd_strmap_put(s->c->orphans, id, xstrdup(incident_id)));
	pthread_mutex_unlock(&s->c->cache_mu);
	if (!known) {
		tpd_workqueue_add(s->c->q, id, TPD_WQ_ORPHAN);
		s->found++;
	}
	free(id);
}

struct notify_names {
	const char *annotation;
	tpd_strmap *names;
};

static void collect_notify(struct notify_names *nn, const tpd_access_request *r)
{
	const tpd_annotation *a = tpd_access_request_annotation(r, nn->annotation);

	if (a && a->n_values && !tpd_str_empty(a->values[0]) && tpd_strmap_len(nn->names) < 256)
		tpd_strmap_put(nn->names, a->values[0], NULL);
}

static void collect_notify_cached(void *ud, const char *key, void *value)
{
	(void)key;
	collect_notify(ud, ((const ctl_entry *)value)->req);
}

static void collect_notify_seen(void *ud, const char *id, const tpd_access_request *snap)
{
	(void)id;
	collect_notify(ud, snap);
}

static void name_at(void *ud, const char *key, void *value)
{
	char ***cursor = ud;

	(void)value;
	*(*cursor)++ = xstrdup(key);
}

/* Resolves incidents of requests deleted while the plugin was away. Only incidents on services
 * this cluster uses (named by its requests' notify annotations, or seen in its plugin data) are
 * considered, so a PagerDuty account shared with other clusters keeps their incidents. Runs on a
 * worker (it pages through PagerDuty). */
void ctl_scan_orphans(tpd_controller *c)
{
	struct orphan_scan s = {c, 0};
	struct notify_names nn = {c->ropts.notify_annotation, tpd_strmap_new()};
	char err[TPD_ERRLEN], n[24];
	char **names, **cursor, **known, **kc;
	const char **ids;
	size_t n_names, n_ids, n_known;
	tpd_strmap *idset;

	if (!c->cfg->reconcile.resolve_orphans || !atomic_load(&c->watch_synced) || !ctl_may_reconcile(c)) {
		tpd_strmap_free(nn.names, NULL);
		return;
	}
	idset = tpd_strmap_new();
	pthread_mutex_lock(&c->cache_mu);
	tpd_strmap_each(c->cache, collect_notify_cached, &nn);
	tpd_seen_pending_each(c->seen, collect_notify_seen, &nn);
	n_known = tpd_strmap_len(c->known_services);
	known = xcalloc(n_known ? n_known : 1, sizeof(char *));
	kc = known;
	tpd_strmap_each(c->known_services, name_at, &kc);
	pthread_mutex_unlock(&c->cache_mu);
	n_names = tpd_strmap_len(nn.names);
	names = xcalloc(n_names ? n_names : 1, sizeof(char *));
	cursor = names;
	tpd_strmap_each(nn.names, name_at, &cursor);
	tpd_strmap_free(nn.names, NULL);
	for (size_t i = 0; i < n_known; i++)
		tpd_strmap_put(idset, known[i], NULL);
	for (size_t i = 0; i < n_names; i++) {
		tpd_pd_service svc = {0};

		if (!tpd_pd_find_service(c->pd, names[i], &svc, err))
			tpd_strmap_put(idset, svc.id, NULL);
		tpd_pd_service_clear(&svc);
	}
	n_ids = tpd_strmap_len(idset);
	ids = xcalloc(n_ids ? n_ids : 1, sizeof(char *));
	cursor = (char **)ids;
	tpd_strmap_each(idset, name_at, &cursor);
	tpd_strmap_free(idset, NULL);
	if (tpd_pd_list_open_incidents_on(c->pd, TPD_INCIDENT_KEY_PREFIX, ids, n_ids, orphan_cb, &s, err)) {
		tpd_log(c->lg, TPD_LOG_WARN,
		        "Failed to scan PagerDuty for orphaned incidents, will retry at the next resync",
		        "error", err, NULL);
	} else {
		snprintf(n, sizeof(n), "%zu", s.found);
		tpd_log(c->lg, s.found ? TPD_LOG_INFO : TPD_LOG_DEBUG,
		        "Scanned PagerDuty for orphaned incidents", "found", n, NULL);
	}
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	for (size_t i = 0; i < n_known; i++)
		free(known[i]);
	for (size_t i = 0; i < n_ids; i++)
		free((char *)ids[i]);
	free(names);
	free(known);
	free(ids);
}

/* The PagerDuty health check behind /readyz. Runs on a worker (it may retry for a while). */
void ctl_check_pd_health(tpd_controller *c)
{
	char err[TPD_ERRLEN];
	bool ok = tpd_pd_health(c->pd, err) == TPD_ERR_OK;

	if (ok != atomic_exchange(&c->pd_healthy, ok))
		tpd_log(c->lg, ok ? TPD_LOG_INFO : TPD_LOG_ERROR,
		        ok ? "PagerDuty API health check passed again" : "PagerDuty API health check failed",
		        "error", ok ? "" : err, NULL);
}

void *ctl_housekeeper_main(void *arg)
{
	tpd_controller *c = arg;
	int64_t now = tpd_now_ms();
	int64_t next_resync = now + c->cfg->reconcile.resync_interval_ms;
	int64_t next_health =
	    now + (atomic_load(&c->pd_healthy) ? c->cfg->status.pagerduty_check_interval_ms : 1000);
	int64_t refresh = c->cfg->teleport.refresh_identity_interval_ms > 0
	                      ? c->cfg->teleport.refresh_identity_interval_ms
	                      : 60000;
	int64_t next_poll = now + refresh;
	int64_t retry_identity = 0;

	while (!atomic_load(&c->stop)) {
		bool id_event = false;
		struct pollfd p[2] = {{.fd = c->wake_fd, .events = POLLIN},
		                      {.fd = c->idwatch ? tpd_idwatch_fd(c->idwatch) : -1, .events = POLLIN}};
		int64_t wake = next_resync < next_health ? next_resync : next_health;
		int64_t expiry = atomic_load(&c->identity_not_after) * 1000 - tpd_wall_ms();

		now = tpd_now_ms();
		atomic_store(&c->housekeeper_tick_ms, now);
		/* Sleep until the first thing falls due (or a wake-up: stop, reload, resync, orphan
		 * scan, an identity file event), at most HOUSEKEEPER_MAX_SLEEP_MS. */
		if (next_poll < wake)
			wake = next_poll;
		if (retry_identity && retry_identity < wake)
			wake = retry_identity;
		if (atomic_load(&c->identity_valid) && expiry >= 0 && now + expiry + 1000 < wake)
			wake = now + expiry + 1000;
		if (wake > now + HOUSEKEEPER_MAX_SLEEP_MS)
			wake = now + HOUSEKEEPER_MAX_SLEEP_MS;
		if (poll(p, 2, wake > now ? (int)(wake - now) : 0) > 0) {
			uint64_t n;

			if ((p[0].revents & POLLIN) && read(c->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
				tpd_log(c->lg, TPD_LOG_ERROR, "Cannot read the housekeeper's wake-ups",
				        "error", strerror(errno), NULL);
			if (p[1].revents & POLLIN)
				id_event = tpd_idwatch_drain(c->idwatch);
		}
		if (atomic_load(&c->stop))
			break;
		now = tpd_now_ms();
		if (id_event || atomic_exchange(&c->reload_requested, false) || now >= next_poll ||
		    (retry_identity && now >= retry_identity)) {
			bool ok = reload_identity(c, !id_event);

			retry_identity = ok ? 0 : now + IDENTITY_RETRY_MS;
			next_poll = now + refresh;
		}
		/* Identity expiry while running makes us unready (tbot should have rotated it). */
		if (atomic_load(&c->identity_not_after) <= tpd_wall_ms() / 1000) {
			if (atomic_exchange(&c->identity_valid, false))
				tpd_log(c->lg, TPD_LOG_ERROR,
				        "The identity has expired; waiting for a renewed one", NULL);
		}
		if (now >= next_resync || atomic_exchange(&c->resync_requested, false)) {
			next_resync = now + c->cfg->reconcile.resync_interval_ms;
			if (atomic_load(&c->watch_synced) && ctl_may_reconcile(c)) {
				pthread_mutex_lock(&c->cache_mu);
				tpd_strmap_each(c->cache, enqueue_cached, c);
				tpd_seen_pending_each(c->seen, ctl_enqueue_seen, c);
				pthread_mutex_unlock(&c->cache_mu);
				atomic_store(&c->orphan_scan_requested, true);
			}
		}
		ctl_seen_expire(c);
		/* Network work goes to the workers, so this loop never blocks (liveness). */
		if (atomic_load(&c->watch_synced) && atomic_exchange(&c->orphan_scan_requested, false))
			tpd_workqueue_add(c->q, KEY_ORPHAN_SCAN, 0);
		if (now >= next_health) {
			int64_t every = c->cfg->status.pagerduty_check_interval_ms;

			/* Re-check an unhealthy API sooner, so readiness returns quickly. */
			next_health = now + (atomic_load(&c->pd_healthy) || every < 5000 ? every : 5000);
			tpd_workqueue_add(c->q, KEY_PD_HEALTH, 0);
		}
	}
	ctl_thread_exit(c);
	return NULL;
}
