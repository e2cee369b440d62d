/* executor.c - the controller's workers: a job per key, the incident steps (create, notes,
 * resolve, adopt) that carry out what the pure core (reconcile.c) decides, per-key reconcile, and
 * leadership changes. The auto-approval step is in approval.c, the further notify services'
 * incidents in notifyall.c; plugin data reads, writes and memories in pdstate.c, every write's
 * dry-run switch in dryrun.c. See controller.c. */
#include "executor_impl.h"

/* ---------------------------------------------------------------------------------------------- */
/* actions                                                                                        */

const char *job_state_name(const struct job *j)
{
	return j->req ? tpd_request_state_name(j->req->state) : "DELETED";
}

/* What the incident's texts are made from: the request, or for a deleted one its snapshot. */
const tpd_access_request *job_subject(const struct job *j)
{
	return j->req ? j->req : j->snap;
}

/* Sets fields in the local copy only (for a request whose data can no longer be stored). */
static void local_set(struct job *j, const char *k1, const char *v1, const char *k2, const char *v2)
{
	j->local = true;
	if (!j->have_pd) {
		tpd_plugin_data_init(&j->pd);
		j->have_pd = true;
	}
	tpd_plugin_data_set(&j->pd, k1, v1);
	if (k2)
		tpd_plugin_data_set(&j->pd, k2, v2);
}

/* Writes fields (CAS); a request deleted meanwhile (NOT_FOUND) gets them in the local copy only,
 * so the planner goes on (its incident is then resolved as expired, nothing left open). */
tpd_err job_set_or_local(struct job *j, const char *k1, const char *v1, const char *k2, const char *v2)
{
	tpd_err rc = ctl_pd_set_field(j->c, j->id, &j->pd, &j->have_pd, k1, v1, k2, v2, j->err);

	if (rc == TPD_ERR_NOT_FOUND) {
		local_set(j, k1, v1, k2, v2);
		j->err[0] = '\0';
		rc = TPD_ERR_OK;
	}
	return rc;
}

tpd_err job_open_incident(struct job *j, const char *name, const char *svc_id, const char *key,
                          char **incident, bool *adopted)
{
	tpd_controller *c = j->c;
	const tpd_access_request *r = job_subject(j);
	char *link = tpd_request_link(c->proxy_addr, j->id), *title = tpd_incident_title(r);
	char *details = tpd_incident_details(r, link);
	tpd_pd_incident_spec spec = {
	    .title = title, .service_id = svc_id, .incident_key = key, .details = details};
	tpd_err rc = ctl_w_create_incident(c, j->id, name, &spec, incident, adopted, j->err);

	free(link);
	free(title);
	free(details);
	return rc;
}

void job_opened(struct job *j, const char *name, const char *incident, bool adopted, const char *key)
{
	tpd_controller *c = j->c;

	if (!adopted) {
		tpd_metric_inc(c->m_created);
		tpd_metric_inc(c->m_by_service, name);
	}
	/* In a dry run the "would create" line has said it (an adoption is real either way). */
	if (adopted || !c->dry_run)
		tpd_log(c->lg, TPD_LOG_INFO,
		        adopted ? "Adopted existing PagerDuty incident"
		                : "Successfully created PagerDuty incident",
		        "pd_incident_id", incident, "pd_service_name", name, "request_id", j->id,
		        "request_state", job_state_name(j), key ? "incident_key" : NULL, key, NULL);
}

static tpd_err act_create_incident(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	tpd_pd_service svc = {0};
	char *key = NULL, *incident = NULL;
	bool adopted = false;
	tpd_err rc;

	rc = tpd_pd_find_service(c->pd, a->service_name, &svc, j->err);
	if (rc) {
		char inner[TPD_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", j->err);
		tpd_seterr(j->err, rc, "finding pagerduty service %s: %s", a->service_name, inner);
		j->reason = rc == TPD_ERR_NOT_FOUND ? "service_not_found" : "pagerduty";
		goto out;
	}
	if (a->write_intent) {
		tpd_plugin_data next;

		tpd_plugin_data_init(&next);
		tpd_plugin_data_from_request(&next, job_subject(j));
		rc = ctl_pd_write(c, j->id, &j->pd, &j->have_pd, &next, j->err);
		tpd_plugin_data_clear(&next);
		if (rc) {
			j->reason = "teleport";
			goto out;
		}
	}
	key = tpd_incident_key(j->id);
	rc = job_open_incident(j, a->service_name, svc.id, key, &incident, &adopted);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	rc = job_set_or_local(j, "incident_id", incident, "service_id", svc.id);
	if (rc) {
		j->reason = "teleport";
		goto out;
	}
	job_opened(j, a->service_name, incident, adopted, NULL);
out:
	tpd_pd_service_clear(&svc);
	free(key);
	free(incident);
	return rc;
}

static tpd_err act_post_notes(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	tpd_err rc = TPD_ERR_OK;
	size_t unsure;

	pthread_mutex_lock(&c->cache_mu);
	unsure = ctl_unsure_get(c, j->id);
	pthread_mutex_unlock(&c->cache_mu);
	for (size_t i = a->from; i < a->to && i < j->req->n_reviews; i++) {
		char *note = tpd_review_note(&j->req->reviews[i]);
		char count[24];
		bool posted = true;

		/* Only the note at the stored count can be posted but not counted (see unsure_*). */
		rc = ctl_w_add_note(c, j->id, j->pd.incident_id, note, i == a->from && i < unsure, &posted,
		                    j->err);
		/* The further notify services' incidents get it too, at most once each (a retry after a
		 * failure between them and the count must not post it twice). */
		if (!rc)
			rc = extras_add_note(j, note);
		free(note);
		if (!rc && posted)
			tpd_metric_inc(c->m_notes);
		/* Count after posting: never lose a note. */
		if (rc) {
			j->reason = "pagerduty";
		} else {
			snprintf(count, sizeof(count), "%zu", i + 1);
			rc = ctl_pd_set_field(c, j->id, &j->pd, &j->have_pd, "reviews_count", count, NULL,
			                      NULL, j->err);
			if (rc)
				j->reason = "teleport";
		}
		if (rc) {
			/* Posted, or maybe posted, but not counted: the retry checks first. */
			pthread_mutex_lock(&c->cache_mu);
			if (tpd_strmap_get(c->unsure, j->id) && ctl_unsure_get(c, j->id) < i + 1)
				ctl_unsure_set(c, j->id, i + 1);
			pthread_mutex_unlock(&c->cache_mu);
			return rc;
		}
		if (!c->dry_run)
			tpd_log(c->lg, TPD_LOG_INFO, "Successfully posted a review note", "pd_incident_id",
			        j->pd.incident_id, "request_id", j->id, "review_author",
			        j->req->reviews[i].author, NULL);
	}
	return rc;
}

static tpd_err act_resolve(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	char *tag = xstrdup(a->tag), *reason = xstrdup(a->reason ? a->reason : "");
	char *incident = NULL, *status = NULL, *note = NULL, *key = NULL;
	bool pd_writable = true, posted = true;
	tpd_err rc;

	if (!a->recover) {
		/* Intent first (upstream's order), so a PagerDuty failure is retried from it. */
		rc = ctl_pd_set_field(c, j->id, &j->pd, &j->have_pd, "resolution", tag, "resolve_reason",
		                      reason, j->err);
		if (rc == TPD_ERR_NOT_FOUND) {
			/* The request (and soon its data) is gone: resolve anyway, nothing to record. */
			pd_writable = false;
		} else if (rc) {
			j->reason = "teleport";
			goto out;
		}
	} else {
		key = tpd_incident_key(j->id);
		rc = ctl_r_incident_by_key(c, key, &incident, &status, j->err);
		if (rc && rc != TPD_ERR_NOT_FOUND) {
			j->reason = "pagerduty";
			goto out;
		}
		if (!rc && tpd_streq(status, "resolved"))
			goto mark;
	}
	incident = incident ? incident : xstrdup(j->pd.incident_id);
	note = tpd_resolution_note(tag, reason);
	/* A run stopped somewhere between storing the resolution and resolving (or, for a deleted
	 * request, nothing could be stored): the note may be there already, so it is posted only if
	 * it is not (exactly once, not at least once). */
	rc = ctl_w_add_note(c, j->id, incident, note, a->recover || !pd_writable, &posted, j->err);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	if (posted)
		tpd_metric_inc(c->m_notes);
	rc = extras_resolve(j, note);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	rc = ctl_w_resolve_incident(c, j->id, incident, j->err);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	tpd_metric_inc(c->m_resolved, tag);
	if (!c->dry_run)
		tpd_log(c->lg, TPD_LOG_INFO, "Successfully resolved the incident", "pd_incident_id", incident,
		        "request_id", j->id, "request_state", job_state_name(j), "pd_resolution", tag, NULL);
mark:
	rc = TPD_ERR_OK;
	if (pd_writable) {
		rc = ctl_pd_set_field(c, j->id, &j->pd, &j->have_pd, "pd_resolved", "true", NULL, NULL,
		                      j->err);
		if (rc == TPD_ERR_NOT_FOUND)
			rc = TPD_ERR_OK;
		else if (rc)
			j->reason = "teleport";
	}
	if (!pd_writable || rc == TPD_ERR_OK) {
		/* Keep the local copy in step so the planner sees the work as done. */
		j->local = j->local || !pd_writable;
		if (!j->have_pd) {
			tpd_plugin_data_init(&j->pd);
			j->have_pd = true;
		}
		tpd_plugin_data_set(&j->pd, "resolution", tag);
		tpd_plugin_data_set(&j->pd, "pd_resolved", "true");
	}
out:
	free(tag);
	free(reason);
	free(incident);
	free(status);
	free(note);
	free(key);
	return rc;
}

static tpd_err act_adopt(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	char *key = tpd_incident_key(j->id), *incident = NULL, *status = NULL;
	tpd_err rc;

	rc = ctl_r_incident_by_key(c, key, &incident, &status, j->err);
	if (rc == TPD_ERR_NOT_FOUND && a->service_name) {
		/* No incident was ever opened for a request seen PENDING (pending, or over a moment
		 * later): open it now; the next steps note and resolve it if the request is over. */
		tpd_action create = {.kind = TPD_ACT_CREATE_INCIDENT, .service_name = a->service_name};

		rc = act_create_incident(j, &create);
		goto out;
	}
	if (rc == TPD_ERR_NOT_FOUND) {
		/* No incident was ever opened and no service is known: record the outcome so nothing
		 * is retried. */
		char *tag = xstrdup(a->tag ? a->tag : ""), *reason = xstrdup(a->reason ? a->reason : "");

		rc = job_set_or_local(j, "resolution", tag, "resolve_reason", reason);
		if (!rc)
			rc = job_set_or_local(j, "pd_resolved", "true", NULL, NULL);
		free(tag);
		free(reason);
		if (rc)
			j->reason = "teleport";
		goto out;
	}
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	if (!j->req && tpd_streq(status, "resolved")) {
		/* A deleted request whose incident is resolved already (by an earlier run, or by the
		 * leader before this one): nothing is left to post, and nothing can be stored. */
		local_set(j, "incident_id", incident, NULL, NULL);
		local_set(j, "resolution", a->tag ? a->tag : "expired", "pd_resolved", "true");
		goto out;
	}
	tpd_log(c->lg, TPD_LOG_INFO, "Found the incident of an interrupted run", "pd_incident_id", incident,
	        "request_id", j->id, NULL);
	rc = job_set_or_local(j, "incident_id", incident, NULL, NULL);
	if (rc)
		j->reason = "teleport";
out:
	free(key);
	free(incident);
	free(status);
	return rc;
}

/* Resolves an incident whose request is gone and whose plugin data expired with it. */
static tpd_err resolve_orphan(tpd_controller *c, const char *id, char *err)
{
	char *incident;
	char *note;
	tpd_err rc;

	pthread_mutex_lock(&c->cache_mu);
	incident = xstrdup(tpd_strmap_get(c->orphans, id));
	pthread_mutex_unlock(&c->cache_mu);
	if (!incident)
		return TPD_ERR_OK;
	note = tpd_resolution_note("expired", "");
	/* Nothing records progress for an orphan: a run stopped before the resolve left the note
	 * behind, so it is posted only if missing. */
	rc = ctl_w_add_note(c, id, incident, note, true, NULL, err);
	if (!rc)
		rc = ctl_w_resolve_incident(c, id, incident, err);
	if (!rc) {
		tpd_metric_inc(c->m_resolved, "expired");
		tpd_log(c->lg, TPD_LOG_INFO,
		        "Resolved the incident of a request deleted while the plugin was away",
		        "pd_incident_id", incident, "request_id", id, "pd_resolution", "expired", NULL);
		pthread_mutex_lock(&c->cache_mu);
		free(tpd_strmap_del(c->orphans, id));
		pthread_mutex_unlock(&c->cache_mu);
	}
	free(note);
	free(incident);
	return rc;
}

/* Reconciles one key until nothing is left to do. */
tpd_err ctl_reconcile_key(tpd_controller *c, const char *id, unsigned flags, bool *approval_pending,
                          char *err, const char **reason)
{
	struct job j = {.c = c, .id = id, .try_approval = (flags & TPD_WQ_EVENT) != 0, .reason = "teleport"};
	tpd_err rc = TPD_ERR_OK;
	int steps = 0, conflicts = 0;

	j.err[0] = '\0';
	ctl_cache_get(c, id, &j.req, &j.snap, &j.snap_gen);
	if (!j.req || !ctl_known_load(c, id, &j.pd, &j.have_pd))
		rc = ctl_pd_read(c, id, &j.pd, &j.have_pd, j.err);
	if (rc)
		goto out;
	if (j.have_pd && !tpd_str_empty(j.pd.service_id)) {
		/* The orphan scan looks only at services this cluster uses. */
		pthread_mutex_lock(&c->cache_mu);
		if (tpd_strmap_len(c->known_services) < 256)
			tpd_strmap_put(c->known_services, j.pd.service_id, NULL);
		pthread_mutex_unlock(&c->cache_mu);
	}
	/* An open incident of a request this cache does not know. One seen PENDING goes through the
	 * planner instead (it finds the incident by key and resolves it as expired). */
	if (!j.req && !j.have_pd && !j.snap && (flags & TPD_WQ_ORPHAN)) {
		rc = resolve_orphan(c, id, j.err);
		j.reason = "pagerduty";
		goto out;
	}
	for (;;) {
		tpd_reconcile_input in = {j.req, j.have_pd ? &j.pd : NULL, j.try_approval, NULL};
		tpd_action a;

		/* Seen PENDING: a pending request is its own proof; one that left PENDING has its
		 * snapshot (if this process saw it pending). */
		in.seen_pending = j.req && j.req->state == TPD_STATE_PENDING ? j.req : j.snap;

		tpd_reconcile_next(&c->ropts, &in, &a);
		if (a.kind == TPD_ACT_NONE) {
			tpd_idle_level lvl = tpd_idle_level_of(a.why);

			if (lvl == TPD_IDLE_LEVEL_WARN)
				tpd_log(c->lg, TPD_LOG_WARN, tpd_idle_text(a.why), "request_id", id, NULL);
			else if (lvl == TPD_IDLE_LEVEL_DEBUG)
				tpd_log(c->lg, TPD_LOG_DEBUG, tpd_idle_text(a.why), "request_id", id,
				        "request_state", job_state_name(&j), NULL);
			tpd_action_clear(&a);
			break;
		}
		if (++steps > MAX_STEPS) {
			tpd_action_clear(&a);
			rc = tpd_seterr(j.err, TPD_ERR_INTERNAL,
			                "reconcile did not converge after %d steps (last: %s)", MAX_STEPS,
			                tpd_action_name(a.kind));
			j.reason = "internal";
			break;
		}
		tpd_log(c->lg, TPD_LOG_TRACE, "Reconcile step", "request_id", id, "action",
		        tpd_action_name(a.kind), NULL);
		switch (a.kind) {
		case TPD_ACT_CREATE_INCIDENT:
			rc = act_create_incident(&j, &a);
			break;
		case TPD_ACT_POST_REVIEW_NOTES:
			rc = act_post_notes(&j, &a);
			break;
		case TPD_ACT_RESOLVE:
			rc = act_resolve(&j, &a);
			break;
		case TPD_ACT_ADOPT_BY_KEY:
			rc = act_adopt(&j, &a);
			break;
		case TPD_ACT_AUTO_APPROVE:
			rc = act_auto_approve(&j, &a);
			break;
		case TPD_ACT_CREATE_EXTRAS:
			rc = act_create_extras(&j, &a);
			break;
		default:
			rc = TPD_ERR_OK;
			break;
		}
		in.try_approval = j.try_approval;
		if (rc && tpd_reconcile_approve_after_failure(&in, a.kind, rc == TPD_ERR_COMPARE_FAILED)) {
			/* Notification failed: still try the auto-approval, then retry. */
			tpd_action ap = {.kind = TPD_ACT_AUTO_APPROVE};
			char keep[TPD_ERRLEN];
			const char *keep_reason = j.reason;

			snprintf(keep, sizeof(keep), "%s", j.err);
			if (!tpd_annotation_names(j.req, c->ropts.services_annotation, &ap.services,
			                          &ap.n_services) &&
			    act_auto_approve(&j, &ap))
				tpd_log(c->lg, TPD_LOG_ERROR, "Failed to try the auto-approval", "request_id",
				        id, "error", j.err, NULL);
			tpd_action_clear(&ap);
			snprintf(j.err, sizeof(j.err), "%s", keep);
			j.reason = keep_reason;
		}
		tpd_action_clear(&a);
		if (rc == TPD_ERR_NOT_FOUND && j.req && tpd_streq(j.reason, "teleport") && ++conflicts < 16) {
			/* Teleport no longer knows the request: deleted under this pass (reviewed and
			 * deleted a moment after creation). Plan again from what the watch says now. */
			tpd_access_request_free(j.req);
			tpd_access_request_free(j.snap);
			ctl_cache_get(c, id, &j.req, &j.snap, &j.snap_gen);
			if (!j.req) {
				j.err[0] = '\0';
				rc = TPD_ERR_OK;
				continue;
			}
		}
		if (rc == TPD_ERR_COMPARE_FAILED && ++conflicts < 16) {
			/* Someone else wrote the plugin data: re-read and plan again. */
			rc = ctl_pd_read(c, id, &j.pd, &j.have_pd, j.err);
			if (rc)
				break;
			continue;
		}
		if (rc)
			break;
	}
out:
	if (!rc && (flags & TPD_WQ_ORPHAN)) {
		/* Handled through its plugin data or as an orphan: either way the entry is done. */
		pthread_mutex_lock(&c->cache_mu);
		free(tpd_strmap_del(c->orphans, id));
		pthread_mutex_unlock(&c->cache_mu);
	}
	/* Resolved or deleted, and this pass left nothing to do: its snapshot has served. (A failed
	 * pass keeps it for the retry; a pending request has none.) */
	if (!rc && j.snap && (!j.req || j.req->state != TPD_STATE_PENDING))
		ctl_seen_handled(c, id, j.snap_gen);
	if (!rc && j.req && !j.local)
		ctl_known_store(c, id, &j.pd, j.have_pd);
	else {
		pthread_mutex_lock(&c->cache_mu);
		ctl_known_forget(c, id);
		pthread_mutex_unlock(&c->cache_mu);
	}
	*approval_pending = j.try_approval;
	*reason = j.reason;
	if (rc)
		snprintf(err, TPD_ERRLEN, "%s", j.err);
	if (j.have_pd)
		tpd_plugin_data_clear(&j.pd);
	tpd_access_request_free(j.req);
	tpd_access_request_free(j.snap);
	return rc;
}

/* Only the leader reconciles; without leader election every process does. */
bool ctl_may_reconcile(tpd_controller *c)
{
	return !c->leader || atomic_load(&c->leading);
}

static void enqueue_cached_event(void *ud, const char *key, void *value)
{
	(void)value;
	tpd_workqueue_add(((tpd_controller *)ud)->q, key, TPD_WQ_EVENT);
}

/* Leadership changes (election thread). A new leader reconciles everything it knows, as events:
 * keys a follower saw were dropped, including their auto-approval attempts. */
void ctl_on_leadership(void *ud, bool leading)
{
	tpd_controller *c = ud;

	atomic_store(&c->leading, leading);
	if (leading) {
		pthread_mutex_lock(&c->cache_mu);
		/* Another leader may have posted notes for any review that exists now, and written
		 * plugin data this process does not know of. */
		tpd_strmap_free(c->unsure, NULL);
		c->unsure = tpd_strmap_new();
		ctl_known_forget_all(c);
		tpd_strmap_each(c->cache, ctl_unsure_reset_each, c);
		tpd_strmap_each(c->cache, enqueue_cached_event, c);
		/* And what left PENDING while another process led (deleted ones are not cached): the
		 * old leader may have died before it handled them. */
		tpd_seen_pending_each(c->seen, ctl_enqueue_seen, c);
		pthread_mutex_unlock(&c->cache_mu);
		atomic_store(&c->orphan_scan_requested, true);
		ctl_wake_all(c);
	}
}

void *ctl_worker_main(void *arg)
{
	struct worker *w = arg;
	tpd_controller *c = w->c;
	char *key;
	unsigned flags;

	while (tpd_workqueue_get(c->q, -1, &key, &flags) == 0) {
		char err[TPD_ERRLEN] = "";
		const char *reason = "";
		bool approval_pending = false;
		tpd_err rc;

		if (!strcmp(key, KEY_ORPHAN_SCAN) || !strcmp(key, KEY_PD_HEALTH)) {
			if (!strcmp(key, KEY_ORPHAN_SCAN))
				ctl_scan_orphans(c);
			else
				ctl_check_pd_health(c);
			tpd_workqueue_done(c->q, key);
			free(key);
			continue;
		}
		if (!ctl_may_reconcile(c)) {
			/* A follower: the next leader resyncs every key. */
			tpd_workqueue_done(c->q, key);
			free(key);
			continue;
		}
		rc = ctl_reconcile_key(c, key, flags, &approval_pending, err, &reason);
		if (!rc) {
			tpd_metric_inc(c->m_reconcile, "success");
			tpd_workqueue_forget(c->q, key);
		} else if (rc == TPD_ERR_CANCELLED || atomic_load(&c->stop)) {
			tpd_metric_inc(c->m_reconcile, "cancelled");
		} else {
			/* Keep the approval attempt pending if the failure came before it. */
			unsigned keep = (approval_pending ? TPD_WQ_EVENT : 0) | (flags & TPD_WQ_ORPHAN);
			int64_t delay = tpd_workqueue_add_rate_limited(c->q, key, keep);
			bool deleted;
			char retry[32];

			ctl_fmt_seconds(delay, retry, sizeof(retry));
			tpd_metric_inc(c->m_reconcile, "error");
			tpd_metric_inc(c->m_reconcile_err, reason);
			pthread_mutex_lock(&c->cache_mu);
			deleted = tpd_strmap_get(c->cache, key) == NULL;
			pthread_mutex_unlock(&c->cache_mu);
			tpd_log(c->lg, TPD_LOG_ERROR,
			        deleted ? "Failed to process deleted request" : "Failed to process request",
			        "request_id", key, "error", err, "error_kind", tpd_errname(rc), "retry_in",
			        retry, NULL);
		}
		tpd_workqueue_done(c->q, key);
		free(key);
	}
	ctl_thread_exit(c);
	return NULL;
}
