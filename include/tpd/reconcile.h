/* reconcile.h - the pure core of the controller: (access request, plugin data) → next action.
 *
 * No I/O, no clocks, no globals: the controller fetches state, asks tpd_reconcile_next() for the
 * next step, executes it, updates its local copy of the plugin data and asks again, until the
 * answer is TPD_ACT_NONE. Every step is idempotent given the stored plugin data, so a crash or
 * restart at any point resumes where it stopped (see README "Crash safety").
 *
 * Besides the newest state of the request and its plugin data, the planner gets the fact that
 * the controller saw the request PENDING (a snapshot of it as last seen so): the work queue
 * collapses a request's events, so a request reviewed or deleted a moment after its creation
 * reaches the planner already resolved or gone, and it must still get its incident.
 *
 * Texts are upstream's, byte for byte (incident title and details, review notes, resolution
 * notes, the auto-approval reason), so users see what the Go plugin showed them. */
#ifndef TPD_RECONCILE_H
#define TPD_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/types.h"

#define TPD_INCIDENT_KEY_PREFIX "teleport-access-request/"
typedef enum {
	TPD_ACT_NONE = 0,
	/* Open an incident on `service_name` (idempotent by incident key). If no plugin data exists
	 * yet (write_intent), first write it (user, roles, created, reason) as the intent; that works
	 * for a resolved request too. */
	TPD_ACT_CREATE_INCIDENT,
	/* Post notes for reviews[from..to) on the incident, then store reviews_count = to. */
	TPD_ACT_POST_REVIEW_NOTES,
	/* Store resolution/resolve_reason (intent), post the resolution note, resolve the incident,
	 * then mark pd_resolved. `recover` = the intent was stored earlier but PagerDuty was not
	 * confirmed (crash, or upstream wrote it): check the incident before repeating anything. */
	TPD_ACT_RESOLVE,
	/* An incident may exist without its id being stored: plugin data without an incident id (a
	 * run stopped between the two), or a deleted request seen PENDING (nothing can be stored for
	 * it). Look the key up (any status) and adopt what is found. If none exists and
	 * `service_name` is set, create the incident there (the request was seen PENDING: the intent
	 * proves it, or the snapshot); otherwise (tag set, no service known) record the outcome. The
	 * tag is NULL for a pending request. */
	TPD_ACT_ADOPT_BY_KEY,
	/* Ask PagerDuty whether the requester is on call for one of `services`; if so, approve. */
	TPD_ACT_AUTO_APPROVE,
	/* notify_all_services: open the incidents of the further notify services in `services`
	 * (idempotent by their keys, tpd/extras.h), post the notes of the reviews noted so far on
	 * each, then record them in extra_incidents. */
	TPD_ACT_CREATE_EXTRAS,
} tpd_action_kind;

/* Why the planner answered NONE, with upstream's log text and how loudly the executor says it:
 * QUIET (not logged: the normal end of a pass), DEBUG, or WARN. */
#define TPD_IDLE_MAP(X)                                                                                      \
	X(NOTHING, QUIET, "nothing to do")                                                                   \
	X(RESOLVED, QUIET, "incident already resolved")                                                      \
	X(UNKNOWN_STATE, WARN, "Unknown request state")                                                      \
	X(NO_ANNOTATIONS, DEBUG, "Cannot proceed further. Request is missing any annotations")               \
	X(NOTIFY_MISSING, DEBUG, "Skipping the notification: notify service annotation is missing")          \
	X(NOTIFY_EMPTY, DEBUG, "Skipping the notification: notify service annotation is present but empty")  \
	X(NO_PLUGIN_DATA, DEBUG, "Failed to resolve the incident: plugin data is missing")                   \
	X(SERVICES_MISSING, DEBUG, "Skipping the approval: services annotation is missing")                  \
	X(SERVICES_EMPTY, DEBUG, "Skipping the approval: services annotation is present but empty")

typedef enum {
#define TPD_IDLE_ENUM(name, level, text) TPD_IDLE_##name,
	TPD_IDLE_MAP(TPD_IDLE_ENUM)
#undef TPD_IDLE_ENUM
} tpd_idle;

typedef enum { TPD_IDLE_LEVEL_QUIET, TPD_IDLE_LEVEL_DEBUG, TPD_IDLE_LEVEL_WARN } tpd_idle_level;

/* Upstream's text for an idle reason, and how loudly it is logged. */
const char *tpd_idle_text(tpd_idle why);
tpd_idle_level tpd_idle_level_of(tpd_idle why);

typedef struct {
	tpd_action_kind kind;
	tpd_idle why; /* NONE: why nothing is done */
	/* CREATE_INCIDENT / ADOPT_BY_KEY: the notify service name (points into the request or the
	 * seen-pending snapshot); NULL when unknown. */
	const char *service_name;
	bool write_intent; /* CREATE_INCIDENT: no plugin data stored yet */
	/* POST_REVIEW_NOTES: review index range. */
	size_t from, to;
	/* RESOLVE / ADOPT_BY_KEY: the tag (approved, denied, promoted, expired) and reason. */
	const char *tag;
	const char *reason; /* points into the request or plugin data; "" when none */
	bool recover;
	/* AUTO_APPROVE: sorted, de-duplicated service names; CREATE_EXTRAS: the notify services
	 * still without an incident, in annotation order (owned; free with tpd_action_clear). */
	char **services;
	size_t n_services;
} tpd_action;

typedef struct {
	const char *notify_annotation;   /* default pagerduty_notify_service */
	const char *services_annotation; /* default pagerduty_services */
	bool notify_all;                 /* [pagerduty] notify_all_services: one incident per service */
} tpd_reconcile_opts;

typedef struct {
	const tpd_access_request *request; /* NULL: the request was deleted (expired) */
	const tpd_plugin_data *pd;         /* NULL: no plugin data stored */
	/* The caller wants the auto-approval tried in this pass (an event or the first listing
	 * showed the request, and approval was not tried yet since). */
	bool try_approval;
	/* The request as this controller last saw it PENDING (watch event or listing), or NULL when
	 * it never saw it PENDING (or forgot it, see seenpending.h). Read for a request that is
	 * resolved or deleted: it names the notify service and, for a deleted one, gives the
	 * incident's title and details. */
	const tpd_access_request *seen_pending;
} tpd_reconcile_input;

/* Computes the next step. Never fails; unknown or inconsistent state yields NONE with a reason. */
void tpd_reconcile_next(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_action *out);
void tpd_action_clear(tpd_action *a);
const char *tpd_action_name(tpd_action_kind k);

/* After step `failed` failed (conflict: with a plugin-data compare-and-swap conflict), whether to
 * try the auto-approval before the retry: like upstream, a failed notification of a pending
 * request must not hold back its approval. */
bool tpd_reconcile_approve_after_failure(const tpd_reconcile_input *in, tpd_action_kind failed,
                                         bool conflict);

/* --- auto-approval: which services have the requester on call ---------------------------------- */

/* The escalation policies to ask PagerDuty about: the distinct non-empty ones of policy[0..n) (one
 * per found service), in order. Writes them to out (room for n) and returns how many. */
size_t tpd_oncall_policies(const char *const *policy, size_t n, const char **out);
/* The names of the services (name[i], policy[i]) whose policy is one of policies[0..n_pol) with
 * on_call[k] set, in service order. Writes them to out (room for n) and returns how many. */
size_t tpd_oncall_services(const char *const *name, const char *const *policy, size_t n,
                           const char *const *policies, const bool *on_call, size_t n_pol, const char **out);

/* Resolution tag for a resolved state: approved, denied, promoted; NULL otherwise. */
const char *tpd_resolution_tag(tpd_request_state s);

/* --- upstream texts (all return malloc'd strings) ---------------------------------------------- */

/* "teleport-access-request/<id>". */
char *tpd_incident_key(const char *request_id);
/* Request id from an incident key (a further notify service's key, "<id>/<service id>", gives
 * <id>), or NULL if the key is not ours. */
char *tpd_incident_key_request_id(const char *incident_key);
/* "Access request from <user>". */
char *tpd_incident_title(const tpd_access_request *r);
/* Upstream's details template; link may be NULL (no AdvancedAccessWorkflows). */
char *tpd_incident_details(const tpd_access_request *r, const char *link);
/* "https://<proxy>/web/requests/<escaped id>" from a proxy public address, or NULL. */
char *tpd_request_link(const char *proxy_public_addr, const char *request_id);
/* "<author> reviewed the request at <RFC822>.\nResolution: <STATE>.\n[Reason: <r>.]" */
char *tpd_review_note(const tpd_review *v);
/* "Access request has been <tag>\n[Reason: <r>]" */
char *tpd_resolution_note(const char *tag, const char *reason);
/* "Access requested by user <name> (<email>) who is on call in service(s) <a,b>" */
char *tpd_approval_reason(const char *user_name, const char *user_email, const char *const *services,
                          size_t n);
/* The same with what qualified each service's on-call entry, when auto-approval is limited to
 * escalation levels or schedules: "... service(s) Service 1 (level 1, schedule Primary)". A NULL
 * or empty qualifier (or quals NULL) adds nothing, so without the options the text is upstream's. */
char *tpd_approval_reason_q(const char *user_name, const char *user_email, const char *const *services,
                            const char *const *quals, size_t n);

/* Plugin data that records the request (user, roles, created, reason), upstream's encoding. */
void tpd_plugin_data_from_request(tpd_plugin_data *pd, const tpd_access_request *r);

/* Annotation values: sorted and de-duplicated copy of the list under key. Returns 0 and fills
 * out/n, or -1 when the annotation is missing, -2 when it is present but empty. */
int tpd_annotation_names(const tpd_access_request *r, const char *key, char ***out, size_t *n);
/* Upstream's e-mail test (Go net/mail ParseAddress(s).Address == s, for plain addresses). */
bool tpd_is_bare_email(const char *s);

#endif
