/* notifyall.c - one incident per notify service ([pagerduty] notify_all_services), the executor's
 * side: open the further services' incidents, and give them the notes and the resolution the
 * first one gets. The decisions are in src/core (tpd/extras.h, the planner's CREATE_EXTRAS). */
#include "executor_impl.h"

/* The note, at most once, on every recorded incident of the further notify services; then, with
 * `resolve`, resolves each (resolving a resolved incident again is harmless). */
static tpd_err each_recorded(struct job *j, const char *note, bool resolve)
{
	char **ids = NULL;
	size_t n = j->have_pd ? tpd_extras_ids(j->pd.extra_incidents, &ids) : 0;
	tpd_err rc = TPD_ERR_OK;

	for (size_t i = 0; i < n && !rc; i++) {
		rc = ctl_w_add_note(j->c, j->id, ids[i], note, true, NULL, j->err);
		if (!rc && resolve)
			rc = ctl_w_resolve_incident(j->c, j->id, ids[i], j->err);
	}
	tpd_strv_free(ids, n);
	return rc;
}

tpd_err extras_add_note(struct job *j, const char *note)
{
	return each_recorded(j, note, false);
}

/* Opens (or adopts, by its key) the incident of further notify service `name` (PagerDuty id
 * svc_id), counts and logs it. */
static tpd_err open_extra(struct job *j, const char *name, const char *svc_id, const char *key,
                          char **incident)
{
	bool adopted = false;
	tpd_err rc = job_open_incident(j, name, svc_id, key, incident, &adopted);

	if (!rc)
		job_opened(j, name, *incident, adopted, key);
	return rc;
}

/* The same for a deleted request, whose plugin data (and so extra_incidents) went with it: the
 * further services come from its snapshot as last seen PENDING, their incidents from their keys
 * (opened first when missing). */
static tpd_err resolve_by_key(struct job *j, const char *note)
{
	tpd_controller *c = j->c;
	char **names = NULL;
	size_t n = c->ropts.notify_all ? tpd_notify_services(j->snap, c->ropts.notify_annotation, &names) : 0;
	tpd_err rc = TPD_ERR_OK;

	for (size_t i = 1; i < n && !rc; i++) {
		tpd_pd_service svc = {0};
		char *key, *incident = NULL, *status = NULL;

		rc = tpd_pd_find_service(c->pd, names[i], &svc, j->err);
		if (rc == TPD_ERR_NOT_FOUND) {
			rc = TPD_ERR_OK;
			continue;
		}
		if (rc)
			break;
		key = tpd_extra_incident_key(j->id, svc.id);
		rc = ctl_r_incident_by_key(c, key, &incident, &status, j->err);
		if (rc == TPD_ERR_NOT_FOUND) {
			/* Deleted before its further incidents were opened: like the first one, each is
			 * opened now and resolved at once, so the audit trail is the same on every service.
			 */
			rc = open_extra(j, names[i], svc.id, key, &incident);
		}
		if (!rc && !tpd_streq(status, "resolved")) {
			rc = ctl_w_add_note(c, j->id, incident, note, true, NULL, j->err);
			if (!rc)
				rc = ctl_w_resolve_incident(c, j->id, incident, j->err);
		}
		free(key);
		free(incident);
		free(status);
		tpd_pd_service_clear(&svc);
	}
	if (!rc)
		j->err[0] = '\0';
	tpd_strv_free(names, n);
	return rc;
}

/* notify_all_services: opens the further services' incidents, catches them up with the notes
 * posted so far, and records them (one plugin data write for all). */
tpd_err act_create_extras(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	const tpd_access_request *r = job_subject(j);
	char *extras = xstrdup(j->pd.extra_incidents ? j->pd.extra_incidents : "");
	size_t noted = tpd_plugin_data_reviews_count(&j->pd);
	tpd_err rc = TPD_ERR_OK;

	for (size_t i = 0; i < a->n_services && !rc; i++) {
		tpd_pd_service svc = {0};
		char *key = NULL, *incident = NULL, *next;

		rc = tpd_pd_find_service(c->pd, a->services[i], &svc, j->err);
		if (rc == TPD_ERR_NOT_FOUND) {
			tpd_log(c->lg, TPD_LOG_WARN,
			        "Notify service not found in PagerDuty, no incident there", "pd_service_name",
			        a->services[i], "request_id", j->id, NULL);
			j->err[0] = '\0';
			rc = TPD_ERR_OK;
		} else if (!rc) {
			key = tpd_extra_incident_key(j->id, svc.id);
			rc = open_extra(j, a->services[i], svc.id, key, &incident);
			for (size_t k = 0; !rc && r && k < noted && k < r->n_reviews; k++) {
				char *note = tpd_review_note(&r->reviews[k]);

				rc = ctl_w_add_note(c, j->id, incident, note, true, NULL, j->err);
				free(note);
			}
		}
		if (rc) {
			j->reason = "pagerduty";
		} else {
			/* An empty id records a service PagerDuty does not know (not tried again). */
			next = tpd_extras_add(extras, a->services[i], incident ? incident : "");
			free(extras);
			extras = next;
		}
		tpd_pd_service_clear(&svc);
		free(key);
		free(incident);
	}
	if (!rc) {
		rc = job_set_or_local(j, "extra_incidents", extras, NULL, NULL);
		if (rc)
			j->reason = "teleport";
	}
	free(extras);
	return rc;
}

tpd_err extras_resolve(struct job *j, const char *note)
{
	return j->req ? each_recorded(j, note, true) : resolve_by_key(j, note);
}
