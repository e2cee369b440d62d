/* approval.c - the auto-approval step of the executor: is the requester on call (optionally only
 * at some escalation levels or through some schedules) in one of the request's services? If so,
 * approve it with upstream's reason text. */
#include "executor_impl.h"

/* The on-call filter of [pagerduty] auto_approve_escalation_levels / auto_approve_schedules, with
 * the schedules' names resolved to ids (cached by the client). A schedule PagerDuty does not know
 * is logged and left out; with schedules configured and none known, nobody qualifies. *f holds
 * ids in scheds, which the caller clears. Returns a PagerDuty error (j->err filled), else OK. */
static tpd_err make_filter(struct job *j, tpd_pd_oncall_filter *f, tpd_pd_schedule *scheds)
{
	const tpd_config *cfg = j->c->cfg;
	const tpd_cfg_strlist *names = &cfg->pagerduty.auto_approve_schedules;
	const char **ids = (const char **)f->schedule_ids;

	f->levels = cfg->pagerduty.auto_approve_escalation_levels.v;
	f->n_levels = cfg->pagerduty.auto_approve_escalation_levels.n;
	f->schedules = names->n > 0;
	f->n_schedule_ids = 0;
	for (size_t i = 0; i < names->n; i++) {
		tpd_err rc = tpd_pd_find_schedule(j->c->pd, names->v[i], &scheds[f->n_schedule_ids], j->err);

		if (rc == TPD_ERR_NOT_FOUND) {
			tpd_log(
			    j->c->lg, TPD_LOG_WARN,
			    "Auto-approval schedule not found in PagerDuty: nobody is approved through it",
			    "pd_schedule_name", names->v[i], "request_id", j->id, NULL);
			j->err[0] = '\0';
			continue;
		}
		if (rc)
			return rc;
		ids[f->n_schedule_ids] = scheds[f->n_schedule_ids].id;
		f->n_schedule_ids++;
	}
	return TPD_ERR_OK;
}

tpd_err act_auto_approve(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	const char *email = j->req->user;
	tpd_pd_user user = {0};
	tpd_pd_service *svcs = xcalloc(a->n_services ? a->n_services : 1, sizeof(*svcs));
	const char **policies = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	bool *on_call = xcalloc(a->n_services ? a->n_services : 1, sizeof(bool));
	const char **names = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	const char **svc_names = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	const char **svc_policies = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	char **why = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	const char **quals = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	const tpd_cfg_strlist *sched_names = &c->cfg->pagerduty.auto_approve_schedules;
	tpd_pd_schedule *scheds = xcalloc(sched_names->n ? sched_names->n : 1, sizeof(*scheds));
	tpd_pd_oncall_filter filter = {.schedule_ids =
	                                   xcalloc(sched_names->n ? sched_names->n : 1, sizeof(char *))};
	bool filtered = sched_names->n || c->cfg->pagerduty.auto_approve_escalation_levels.n;
	size_t n_found = 0, n_pol = 0, n_names = 0;
	char *reason = NULL;
	tpd_err rc = TPD_ERR_OK;

	if (!tpd_is_bare_email(email)) {
		char msg[300];

		snprintf(msg, sizeof(msg), "Skipping the approval: \"%s\" does not look like a valid email",
		         email);
		tpd_log(c->lg, TPD_LOG_WARN, msg, "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "invalid_email");
		goto out;
	}
	rc = tpd_pd_find_user(c->pd, email, &user, j->err);
	if (rc == TPD_ERR_NOT_FOUND) {
		tpd_log(c->lg, TPD_LOG_DEBUG, "Skipping the approval: email is not found", "pd_user_email",
		        email, "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "unknown_user");
		rc = TPD_ERR_OK;
		goto out;
	}
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	for (size_t i = 0; i < a->n_services; i++) {
		rc = tpd_pd_find_service(c->pd, a->services[i], &svcs[n_found], j->err);
		if (rc == TPD_ERR_NOT_FOUND) {
			rc = TPD_ERR_OK;
			continue;
		}
		if (rc) {
			j->reason = "pagerduty";
			goto out;
		}
		n_found++;
	}
	if (!n_found) {
		tpd_log(c->lg, TPD_LOG_WARN, "Failed to find any service", "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "unknown_service");
		goto out;
	}
	for (size_t i = 0; i < n_found; i++) {
		svc_names[i] = svcs[i].name;
		svc_policies[i] = svcs[i].escalation_policy_id;
	}
	n_pol = tpd_oncall_policies(svc_policies, n_found, policies);
	if (filtered && (rc = make_filter(j, &filter, scheds)) != TPD_ERR_OK) {
		j->reason = "pagerduty";
		goto out;
	}
	if (filter.schedules && !filter.n_schedule_ids) {
		tpd_log(c->lg, TPD_LOG_WARN,
		        "Skipping the approval: none of the auto-approval schedules exists in PagerDuty",
		        "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "unknown_schedule");
		goto out;
	}
	if (n_pol) {
		rc = tpd_pd_oncall_filtered(c->pd, user.id, policies, n_pol, filtered ? &filter : NULL,
		                            on_call, why, j->err);
		if (rc) {
			j->reason = "pagerduty";
			goto out;
		}
	}
	n_names = tpd_oncall_services(svc_names, svc_policies, n_found, policies, on_call, n_pol, names);
	/* What qualified each approving service (only with the options; else upstream's text). */
	for (size_t k = 0; filtered && k < n_names; k++)
		for (size_t s = 0; s < n_found && !quals[k]; s++)
			if (!strcmp(svc_names[s], names[k]))
				for (size_t p = 0; p < n_pol && !quals[k]; p++)
					if (!strcmp(policies[p], svc_policies[s]) && on_call[p])
						quals[k] = why[p];
	if (!n_names) {
		tpd_log(c->lg, TPD_LOG_DEBUG, "Skipping the approval: user is not on call", "pd_user_email",
		        email, "pd_user_name", user.name, "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "not_on_call");
		goto out;
	}
	reason = tpd_approval_reason_q(user.name, user.email ? user.email : email, names, quals, n_names);
	rc = ctl_w_submit_review(c, j->id, reason, j->err);
	if (rc == TPD_ERR_ALREADY_REVIEWED) {
		tpd_log(c->lg, TPD_LOG_DEBUG, "Already reviewed the request", "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "already_reviewed");
		rc = TPD_ERR_OK;
		goto out;
	}
	if (rc == TPD_ERR_NOT_FOUND) {
		/* Deleted meanwhile: nothing left to approve. */
		rc = TPD_ERR_OK;
		goto out;
	}
	if (rc) {
		char inner[TPD_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", j->err);
		tpd_seterr(j->err, rc, "submitting access request approval: %s", inner);
		j->reason = "teleport";
		goto out;
	}
	tpd_metric_inc(c->m_approvals, "approved");
	if (!c->dry_run)
		tpd_log(c->lg, TPD_LOG_INFO, "Successfully submitted a request approval", "pd_user_email",
		        email, "pd_user_name", user.name, "request_id", j->id, NULL);
out:
	for (size_t i = 0; i < n_found; i++)
		tpd_pd_service_clear(&svcs[i]);
	free(svcs);
	free(policies);
	free(on_call);
	free(names);
	free(svc_names);
	free(svc_policies);
	for (size_t i = 0; i < n_pol; i++)
		free(why[i]);
	free(why);
	free(quals);
	for (size_t i = 0; i < filter.n_schedule_ids; i++)
		tpd_pd_schedule_clear(&scheds[i]);
	free(scheds);
	free((void *)filter.schedule_ids);
	free(reason);
	tpd_pd_user_clear(&user);
	/* A final answer (approved, not on call, unknown user...) ends the attempt; an error retries it. */
	if (!rc)
		j->try_approval = false;
	return rc;
}
