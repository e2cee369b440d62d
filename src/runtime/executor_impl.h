/* executor_impl.h - what the executor's parts share (executor.c: jobs and the incident steps;
 * approval.c: auto-approval; notifyall.c: the further notify services): the job of one
 * reconcile pass and its helpers. Not part of the public API. */
#ifndef TPD_EXECUTOR_IMPL_H
#define TPD_EXECUTOR_IMPL_H

#include "controller_impl.h"

struct job {
	tpd_controller *c;
	const char *id;
	tpd_access_request *req;  /* NULL: deleted */
	tpd_access_request *snap; /* as last seen PENDING, when it left that state; or NULL */
	uint64_t snap_gen;
	tpd_plugin_data pd;
	bool have_pd;
	bool try_approval;
	bool local; /* pd holds a change Teleport did not store (local_set): not to be kept */
	char err[TPD_ERRLEN];
	const char *reason; /* metric label of the failure */
};

/* The request's state for logs ("DELETED" when gone). */
const char *job_state_name(const struct job *j);
/* What the incident's texts are made from: the request, or for a deleted one its snapshot. */
const tpd_access_request *job_subject(const struct job *j);
/* Opens (or adopts, by key) an incident on service `name` (PagerDuty id svc_id) with the request's
 * title, details and link; *incident: its id (the caller frees it). */
tpd_err job_open_incident(struct job *j, const char *name, const char *svc_id, const char *key,
                          char **incident, bool *adopted);
/* Counts and logs an incident job_open_incident opened or adopted; key NULL: not logged. */
void job_opened(struct job *j, const char *name, const char *incident, bool adopted, const char *key);
/* Writes one or two fields (CAS); a request deleted meanwhile gets them in the local copy only. */
tpd_err job_set_or_local(struct job *j, const char *k1, const char *v1, const char *k2, const char *v2);

/* approval.c */
tpd_err act_auto_approve(struct job *j, const tpd_action *a);

/* notifyall.c */
tpd_err act_create_extras(struct job *j, const tpd_action *a);
/* Posts a note, at most once, on every further notify service's incident. */
tpd_err extras_add_note(struct job *j, const char *note);
/* Notes (at most once) and resolves them: from extra_incidents, or for a deleted request by key. */
tpd_err extras_resolve(struct job *j, const char *note);

#endif
