/* dryrun.c - the controller's writes to PagerDuty and Teleport, in one place. Each goes to its
 * client, or in dry-run mode ([reconcile] dry_run = true, `start --dry-run`) is logged at INFO
 * ("Dry run: would ..."), counted in teleport_pagerduty_dry_run_actions_total{action} and
 * recorded in an in-memory shadow instead, so the planner moves on as if the write had been made
 * (a note after the incident, the resolution after the notes) rather than repeating "would
 * create" on every event and resync:
 *   - plugin data: the shadow (c->dry_pd) is what reads return while it holds the request; a
 *     write to a request the cache no longer has fails NOT_FOUND, as Teleport would answer;
 *   - incidents: a created one gets the id "dry-run-<key without its prefix>", found by its key
 *     (c->dry_incidents: key → status) until resolved.
 * Reads (services, users, on-call, incidents by key, plugin data without a shadow) still go to
 * both sides, so look-ups and permissions are exercised. Both shadows are bounded (DRY_CAP
 * entries; a full one starts over, so a request dropped with it may be reported again). A live
 * process only passes through. */
#include "controller_impl.h"

#define DRY_CAP             20000
#define DRY_INCIDENT_PREFIX "dry-run-"

static void dry_count(tpd_controller *c, const char *action)
{
	tpd_metric_inc(c->m_dry, action);
}

/* Keeps a shadow map under DRY_CAP: when full it starts over (caller holds cache_mu). */
static void dry_make_room(tpd_strmap **m, void (*free_fn)(void *))
{
	if (tpd_strmap_len(*m) < DRY_CAP)
		return;
	tpd_strmap_free(*m, free_fn);
	*m = tpd_strmap_new();
}

/* "key=value ..." of the keys that are set, for the log. */
static char *pd_summary(const tpd_plugin_data *pd)
{
	tpd_buf b;

	tpd_buf_init(&b, 0);
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		const char *v = tpd_plugin_data_get(pd, tpd_plugin_data_keys[i]);

		if (!tpd_str_empty(v))
			tpd_buf_printf(&b, "%s%s=%s", b.len ? " " : "", tpd_plugin_data_keys[i], v);
	}
	return tpd_buf_steal(&b);
}

static void pd_free(void *p)
{
	if (p) {
		tpd_plugin_data_clear(p);
		free(p);
	}
}

/* --- plugin data --------------------------------------------------------------------------- */

tpd_err ctl_w_update_plugin_data(tpd_controller *c, const char *id, const tpd_plugin_data *next,
                                 const tpd_plugin_data *expect, char *err)
{
	tpd_plugin_data *copy;
	char *summary;
	bool cached;

	if (!c->dry_run)
		return tpd_teleport_update_plugin_data(c->tp, id, next, expect, err);
	pthread_mutex_lock(&c->cache_mu);
	cached = tpd_strmap_get(c->cache, id) != NULL;
	if (cached) {
		copy = xcalloc(1, sizeof(*copy));
		tpd_plugin_data_init(copy);
		tpd_plugin_data_copy(copy, next);
		if (!tpd_strmap_get(c->dry_pd, id))
			dry_make_room(&c->dry_pd, pd_free);
		pd_free(tpd_strmap_put(c->dry_pd, id, copy));
	}
	pthread_mutex_unlock(&c->cache_mu);
	if (!cached)
		return tpd_seterr(err, TPD_ERR_NOT_FOUND, "access request %s not found (dry run)", id);
	summary = pd_summary(next);
	dry_count(c, "update_plugin_data");
	tpd_log(c->lg, TPD_LOG_INFO, "Dry run: would update the plugin data", "request_id", id, "plugin_data",
	        summary, NULL);
	free(summary);
	return TPD_ERR_OK;
}

tpd_err ctl_r_plugin_data(tpd_controller *c, const char *id, tpd_plugin_data *out, char *err)
{
	if (c->dry_run) {
		const tpd_plugin_data *shadow;
		bool cached, found = false;

		pthread_mutex_lock(&c->cache_mu);
		cached = tpd_strmap_get(c->cache, id) != NULL;
		if (!cached) {
			/* Deleted: Teleport has no data for it any more, and neither has the shadow. */
			pd_free(tpd_strmap_del(c->dry_pd, id));
		} else if ((shadow = tpd_strmap_get(c->dry_pd, id)) != NULL) {
			tpd_plugin_data_init(out);
			tpd_plugin_data_copy(out, shadow);
			found = true;
		}
		pthread_mutex_unlock(&c->cache_mu);
		if (!cached)
			return tpd_seterr(err, TPD_ERR_NOT_FOUND, "access request %s not found", id);
		if (found)
			return TPD_ERR_OK;
	}
	return tpd_teleport_get_plugin_data(c->tp, id, out, err);
}

/* --- PagerDuty ----------------------------------------------------------------------------- */

/* The id a dry run gives the incident of `key`: "dry-run-" + the key without its prefix
 * (dry-run-<request id>, or dry-run-<request id>/<service id> for a further notify service). */
static char *dry_id(const char *key)
{
	size_t n = strlen(TPD_INCIDENT_KEY_PREFIX);

	return xasprintf(DRY_INCIDENT_PREFIX "%s", strncmp(key, TPD_INCIDENT_KEY_PREFIX, n) ? key : key + n);
}

static void dry_set_incident(tpd_controller *c, const char *key, const char *status)
{
	pthread_mutex_lock(&c->cache_mu);
	if (!tpd_strmap_get(c->dry_incidents, key))
		dry_make_room(&c->dry_incidents, free);
	free(tpd_strmap_put(c->dry_incidents, key, xstrdup(status)));
	pthread_mutex_unlock(&c->cache_mu);
}

tpd_err ctl_w_create_incident(tpd_controller *c, const char *id, const char *service_name,
                              const tpd_pd_incident_spec *s, char **incident, bool *adopted, char *err)
{
	char *status = NULL;
	tpd_err rc;

	if (!c->dry_run)
		return tpd_pd_create_incident(c->pd, s, incident, adopted, err);
	/* What the real call would do first when the key exists: adopt (a read, no write). */
	*adopted = false;
	rc = ctl_r_incident_by_key(c, s->incident_key, incident, &status, err);
	if (rc == TPD_ERR_OK && !tpd_streq(status, "resolved")) {
		free(status);
		*adopted = true;
		return TPD_ERR_OK;
	}
	free(status);
	free(*incident);
	*incident = NULL;
	if (rc && rc != TPD_ERR_NOT_FOUND)
		return rc;
	err[0] = '\0';
	*incident = dry_id(s->incident_key);
	dry_set_incident(c, s->incident_key, "triggered");
	dry_count(c, "create_incident");
	tpd_log(c->lg, TPD_LOG_INFO, "Dry run: would create an incident", "request_id", id, "pd_service_name",
	        service_name, "pd_service_id", s->service_id, "incident_key", s->incident_key, "title",
	        s->title, NULL);
	return TPD_ERR_OK;
}

tpd_err ctl_r_incident_by_key(tpd_controller *c, const char *key, char **incident, char **status, char *err)
{
	*incident = NULL;
	*status = NULL;
	if (c->dry_run) {
		const char *st;

		pthread_mutex_lock(&c->cache_mu);
		st = tpd_strmap_get(c->dry_incidents, key);
		if (st) {
			*incident = dry_id(key);
			*status = xstrdup(st);
		}
		pthread_mutex_unlock(&c->cache_mu);
		if (*incident)
			return TPD_ERR_OK;
	}
	return tpd_pd_find_incident_by_key(c->pd, key, incident, status, err);
}

tpd_err ctl_w_add_note(tpd_controller *c, const char *id, const char *incident, const char *note, bool once,
                       bool *posted, char *err)
{
	bool dummy;

	posted = posted ? posted : &dummy;
	*posted = true;
	if (!c->dry_run)
		return once ? tpd_pd_add_note_once(c->pd, incident, note, posted, err)
		            : tpd_pd_add_note(c->pd, incident, note, err);
	dry_count(c, "add_note");
	tpd_log(c->lg, TPD_LOG_INFO, "Dry run: would add a note", "request_id", id, "pd_incident_id",
	        incident, "note", note, NULL);
	return TPD_ERR_OK;
}

tpd_err ctl_w_resolve_incident(tpd_controller *c, const char *id, const char *incident, char *err)
{
	char *key;

	if (!c->dry_run)
		return tpd_pd_resolve_incident(c->pd, incident, err);
	/* One this run "created": its key is in its id. (A real incident stays as PagerDuty has it.) */
	if (!strncmp(incident, DRY_INCIDENT_PREFIX, strlen(DRY_INCIDENT_PREFIX))) {
		key = xasprintf(TPD_INCIDENT_KEY_PREFIX "%s", incident + strlen(DRY_INCIDENT_PREFIX));
		dry_set_incident(c, key, "resolved");
		free(key);
	}
	dry_count(c, "resolve_incident");
	tpd_log(c->lg, TPD_LOG_INFO, "Dry run: would resolve the incident", "request_id", id,
	        "pd_incident_id", incident, NULL);
	return TPD_ERR_OK;
}

/* --- Teleport review ----------------------------------------------------------------------- */

tpd_err ctl_w_submit_review(tpd_controller *c, const char *id, const char *reason, char *err)
{
	if (!c->dry_run)
		return tpd_teleport_submit_review(c->tp, id, reason, err);
	dry_count(c, "submit_review");
	tpd_log(c->lg, TPD_LOG_INFO, "Dry run: would approve the request", "request_id", id, "reason", reason,
	        NULL);
	return TPD_ERR_OK;
}

void ctl_dry_free(tpd_controller *c)
{
	tpd_strmap_free(c->dry_pd, pd_free);
	tpd_strmap_free(c->dry_incidents, free);
}
