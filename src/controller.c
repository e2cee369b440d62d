/* controller.c - the operator-style controller.
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
 * the rest. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tpd/controller.h"
#include "tpd/identity.h"
#include "tpd/idwatch.h"
#include "tpd/leader.h"
#include "tpd/metrics.h"
#include "tpd/pagerduty.h"
#include "tpd/reconcile.h"
#include "tpd/seenpending.h"
#include "tpd/status.h"
#include "tpd/strmap.h"
#include "tpd/teleport.h"
#include "tpd/tlsdial.h"
#include "tpd/util.h"
#include "tpd/workqueue.h"

#define MAX_WORKERS         64
#define MAX_STEPS           24    /* reconcile steps per key per pass */
#define INIT_TIMEOUT_MS     10000 /* upstream's initTimeout */
#define IDENTITY_RETRY_MS   5000  /* re-read a bad rotated identity this often */
#define LIVENESS_MAX_AGE_MS 60000 /* housekeeper loop must tick within this */
/* Seen-pending memory (README "Requests that leave PENDING at once"): an entry is forgotten
 * once its request is handled, after this long, or to make room beyond this many. */
#define SEEN_PENDING_TTL_MS (60 * 60 * 1000)
#define SEEN_PENDING_CAP    20000
/* Work-queue keys of housekeeping jobs; a request id (a UUID) never starts with a control char. */
#define KEY_ORPHAN_SCAN "\x01orphan-scan"
#define KEY_PD_HEALTH   "\x01pagerduty-health"

struct worker {
	struct tpd_controller *c;
	pthread_t thread;
	int index;
};

struct tpd_controller {
	const tpd_config *cfg;
	tpd_logger *lg;
	tpd_metrics *metrics;
	tpd_reconcile_opts ropts;

	/* Clients. The identity is only touched by start and the housekeeper. */
	tpd_identity *identity;
	tpd_idwatch *idwatch;
	tpd_teleport *tp;
	tpd_pd *pd;
	tpd_status *status;
	tpd_leader *leader; /* NULL unless leader election is on */
	atomic_bool leading;
	char *cluster_name;
	char *proxy_addr; /* set when the cluster has advanced workflows (links) */

	/* Work. */
	tpd_workqueue *q;
	pthread_mutex_t cache_mu;
	tpd_strmap *cache;          /* id → tpd_access_request* */
	tpd_strmap *orphans;        /* request id → incident id (char*), under cache_mu */
	tpd_strmap *known_services; /* PagerDuty service ids seen in plugin data, under cache_mu */
	/* request id → how many of its review notes may have been posted without being counted
	 * (see unsure_notes_*), under cache_mu */
	tpd_strmap *unsure;
	tpd_seen_pending *seen; /* requests seen PENDING that left it unhandled, under cache_mu */
	bool listed_once;       /* under cache_mu: the first listing after start is done */

	/* Threads. */
	pthread_t watcher, housekeeper;
	struct worker workers[MAX_WORKERS];
	int n_workers;
	bool threads_started;
	bool watcher_started, housekeeper_started;
	atomic_int live_threads;

	/* Stop and wake-ups. */
	atomic_bool stop;
	pthread_mutex_t wake_mu;
	pthread_cond_t wake_cv;
	atomic_bool reload_requested;
	atomic_bool resync_requested;
	atomic_bool orphan_scan_requested;

	/* Readiness and liveness, read by status checks. */
	atomic_bool watch_synced;
	atomic_bool identity_valid;
	atomic_bool pd_healthy;
	atomic_int_fast64_t identity_not_after;
	atomic_int_fast64_t housekeeper_tick_ms;

	/* Fatal error (the controller stops by itself). */
	pthread_mutex_t fail_mu;
	bool failed;
	char fail_err[TPD_ERRLEN];

	/* Metrics. */
	tpd_metric *m_reconcile, *m_reconcile_err, *m_created, *m_resolved, *m_notes, *m_approvals;
	tpd_metric *m_reconnects, *m_watch_connected, *m_id_expiry, *m_id_reloads;
	tpd_metric *m_seen, *m_seen_forgotten;
};

/* ---------------------------------------------------------------------------------------------- */
/* small helpers                                                                                  */

static void free_request(void *p)
{
	tpd_access_request_free(p);
}

/* Sleeps up to ms or until woken (stop, reload, orphan scan); returns true when stopping. */
static bool wait_or_stop(tpd_controller *c, int64_t ms)
{
	pthread_mutex_lock(&c->wake_mu);
	if (!atomic_load(&c->stop))
		tpd_cond_wait_until(&c->wake_cv, &c->wake_mu, tpd_now_ms() + ms);
	pthread_mutex_unlock(&c->wake_mu);
	return atomic_load(&c->stop);
}

static void wake_all(tpd_controller *c)
{
	pthread_mutex_lock(&c->wake_mu);
	pthread_cond_broadcast(&c->wake_cv);
	pthread_mutex_unlock(&c->wake_mu);
}

static void fail(tpd_controller *c, const char *err)
{
	pthread_mutex_lock(&c->fail_mu);
	if (!c->failed) {
		c->failed = true;
		snprintf(c->fail_err, sizeof(c->fail_err), "%.*s", (int)sizeof(c->fail_err) - 1, err);
	}
	pthread_mutex_unlock(&c->fail_mu);
	tpd_controller_request_stop(c);
}

static void fmt_seconds(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%.3fs", (double)ms / 1000.0);
}

/* Deep copies of the cached request (NULL when the cache does not know it) and of its
 * seen-pending snapshot (NULL when there is none; *gen its generation), taken together. */
static void cache_get(tpd_controller *c, const char *id, tpd_access_request **req, tpd_access_request **snap,
                      uint64_t *gen)
{
	const tpd_access_request *r, *s;

	pthread_mutex_lock(&c->cache_mu);
	r = tpd_strmap_get(c->cache, id);
	s = tpd_seen_pending_get(c->seen, id, gen);
	*req = r ? tpd_access_request_dup(r) : NULL;
	*snap = s ? tpd_access_request_dup(s) : NULL;
	pthread_mutex_unlock(&c->cache_mu);
}

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
static void seen_handled(tpd_controller *c, const char *id, uint64_t gen)
{
	pthread_mutex_lock(&c->cache_mu);
	if (tpd_seen_pending_forget(c->seen, id, gen)) {
		tpd_metric_inc(c->m_seen_forgotten, "handled");
		tpd_metric_set(c->m_seen, (double)tpd_seen_pending_len(c->seen));
	}
	pthread_mutex_unlock(&c->cache_mu);
}

/* Housekeeping: entries older than the TTL go, handled or not. */
static void seen_expire(tpd_controller *c)
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

static void enqueue_seen(void *ud, const char *id, const tpd_access_request *snap)
{
	tpd_controller *c = ud;

	(void)snap;
	/* Not in the cache (deleted) or resolved: either way not enqueued with the cache's keys. */
	tpd_workqueue_add(c->q, id, TPD_WQ_EVENT);
}

/* ---------------------------------------------------------------------------------------------- */
/* plugin data                                                                                    */

/* Compare-and-swap of plugin data: writes `next` expecting `cur` (NULL = nothing stored). On
 * success cur becomes next. Returns the Teleport error otherwise (COMPARE_FAILED: re-read). */
static tpd_err pd_write(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have,
                        const tpd_plugin_data *next, char *err)
{
	tpd_err rc = tpd_teleport_update_plugin_data(c->tp, id, next, *have ? cur : NULL, err);

	if (rc)
		return rc;
	if (!*have)
		tpd_plugin_data_init(cur);
	tpd_plugin_data_copy(cur, next);
	*have = true;
	return TPD_ERR_OK;
}

/* Reads plugin data; *have = false when none is stored. */
static tpd_err pd_read(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have, char *err)
{
	tpd_err rc;

	if (*have)
		tpd_plugin_data_clear(cur);
	*have = false;
	rc = tpd_teleport_get_plugin_data(c->tp, id, cur, err);
	if (rc == TPD_ERR_NOT_FOUND) {
		tpd_plugin_data_clear(cur);
		return TPD_ERR_OK;
	}
	if (rc) {
		tpd_plugin_data_clear(cur);
		return rc;
	}
	*have = true;
	return TPD_ERR_OK;
}

/* Writes one field on top of the current data (CAS). */
static tpd_err pd_set_field(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have,
                            const char *k1, const char *v1, const char *k2, const char *v2, char *err)
{
	tpd_plugin_data next;
	tpd_err rc;

	tpd_plugin_data_init(&next);
	if (*have)
		tpd_plugin_data_copy(&next, cur);
	tpd_plugin_data_set(&next, k1, v1);
	if (k2)
		tpd_plugin_data_set(&next, k2, v2);
	rc = pd_write(c, id, cur, have, &next, err);
	tpd_plugin_data_clear(&next);
	return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* notes that may have been posted but not counted                                                */

/* reviews_count is stored after each note, so a note can be posted but not counted when a run
 * stops (crash, lost leadership) or fails in between, or when the post itself failed ambiguously.
 * Checking the incident's notes before every first post would cost a PagerDuty call per request;
 * instead this remembers, per request, up to which review index that can have happened:
 *  - the reviews a request already had when this process (or leadership) first knew it: a
 *    predecessor may have noted them;
 *  - a note this process tried to post, when the post or the count after it failed.
 * A note below that index is posted only if the incident does not have it yet. Values are stored
 * as count + 1 so that 0 is never a NULL pointer. Callers hold cache_mu. */
static size_t unsure_get(tpd_controller *c, const char *id)
{
	void *v = tpd_strmap_get(c->unsure, id);

	return v ? (size_t)((uintptr_t)v - 1) : SIZE_MAX; /* unknown: check */
}

static void unsure_set(tpd_controller *c, const char *id, size_t n)
{
	tpd_strmap_put(c->unsure, id, (void *)(uintptr_t)(n + 1));
}

/* A request entered the cache: what it has now may predate us. */
static void unsure_first_seen(tpd_controller *c, const tpd_access_request *r)
{
	if (!tpd_strmap_get(c->unsure, r->id))
		unsure_set(c, r->id, r->n_reviews);
}

static void unsure_reset_each(void *ud, const char *key, void *value)
{
	tpd_controller *c = ud;

	unsure_set(c, key, ((const tpd_access_request *)value)->n_reviews);
}

/* ---------------------------------------------------------------------------------------------- */
/* actions                                                                                        */

struct job {
	tpd_controller *c;
	const char *id;
	tpd_access_request *req;  /* NULL: deleted */
	tpd_access_request *snap; /* as last seen PENDING, when it left that state; or NULL */
	uint64_t snap_gen;
	tpd_plugin_data pd;
	bool have_pd;
	bool try_approval;
	char err[TPD_ERRLEN];
	const char *reason; /* metric label of the failure */
};

static const char *state_name(const struct job *j)
{
	return j->req ? tpd_request_state_name(j->req->state) : "DELETED";
}

/* What the incident's texts are made from: the request, or for a deleted one its snapshot. */
static const tpd_access_request *job_subject(const struct job *j)
{
	return j->req ? j->req : j->snap;
}

/* Sets fields in the local copy only (for a request whose data can no longer be stored). */
static void local_set(struct job *j, const char *k1, const char *v1, const char *k2, const char *v2)
{
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
static tpd_err set_or_local(struct job *j, const char *k1, const char *v1, const char *k2, const char *v2)
{
	tpd_err rc = pd_set_field(j->c, j->id, &j->pd, &j->have_pd, k1, v1, k2, v2, j->err);

	if (rc == TPD_ERR_NOT_FOUND) {
		local_set(j, k1, v1, k2, v2);
		j->err[0] = '\0';
		rc = TPD_ERR_OK;
	}
	return rc;
}

static tpd_err act_create_incident(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	tpd_pd_service svc = {0};
	tpd_pd_incident_spec spec;
	char *key = NULL, *title = NULL, *details = NULL, *link = NULL, *incident = NULL;
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
		rc = pd_write(c, j->id, &j->pd, &j->have_pd, &next, j->err);
		tpd_plugin_data_clear(&next);
		if (rc) {
			j->reason = "teleport";
			goto out;
		}
	}
	key = tpd_incident_key(j->id);
	title = tpd_incident_title(job_subject(j));
	link = tpd_request_link(c->proxy_addr, j->id);
	details = tpd_incident_details(job_subject(j), link);
	spec = (tpd_pd_incident_spec){
	    .title = title, .service_id = svc.id, .incident_key = key, .details = details};
	rc = tpd_pd_create_incident(c->pd, &spec, &incident, &adopted, j->err);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	rc = set_or_local(j, "incident_id", incident, "service_id", svc.id);
	if (rc) {
		j->reason = "teleport";
		goto out;
	}
	if (!adopted)
		tpd_metric_inc(c->m_created);
	tpd_log(c->lg, TPD_LOG_INFO,
	        adopted ? "Adopted existing PagerDuty incident" : "Successfully created PagerDuty incident",
	        "pd_incident_id", incident, "pd_service_name", a->service_name, "request_id", j->id,
	        "request_state", state_name(j), NULL);
out:
	tpd_pd_service_clear(&svc);
	free(key);
	free(title);
	free(details);
	free(link);
	free(incident);
	return rc;
}

static tpd_err act_post_notes(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	tpd_err rc = TPD_ERR_OK;
	size_t unsure;

	pthread_mutex_lock(&c->cache_mu);
	unsure = unsure_get(c, j->id);
	pthread_mutex_unlock(&c->cache_mu);
	for (size_t i = a->from; i < a->to && i < j->req->n_reviews; i++) {
		char *note = tpd_review_note(&j->req->reviews[i]);
		char count[24];
		bool posted = true;

		/* Only the note at the stored count can be posted but not counted (see unsure_*). */
		if (i == a->from && i < unsure)
			rc = tpd_pd_add_note_once(c->pd, j->pd.incident_id, note, &posted, j->err);
		else
			rc = tpd_pd_add_note(c->pd, j->pd.incident_id, note, j->err);
		free(note);
		if (!rc && posted)
			tpd_metric_inc(c->m_notes);
		/* Count after posting: never lose a note. */
		if (rc) {
			j->reason = "pagerduty";
		} else {
			snprintf(count, sizeof(count), "%zu", i + 1);
			rc = pd_set_field(c, j->id, &j->pd, &j->have_pd, "reviews_count", count, NULL, NULL,
			                  j->err);
			if (rc)
				j->reason = "teleport";
		}
		if (rc) {
			/* Posted, or maybe posted, but not counted: the retry checks first. */
			pthread_mutex_lock(&c->cache_mu);
			if (tpd_strmap_get(c->unsure, j->id) && unsure_get(c, j->id) < i + 1)
				unsure_set(c, j->id, i + 1);
			pthread_mutex_unlock(&c->cache_mu);
			return rc;
		}
		tpd_log(c->lg, TPD_LOG_INFO, "Successfully posted a review note", "pd_incident_id",
		        j->pd.incident_id, "request_id", j->id, "review_author", j->req->reviews[i].author,
		        NULL);
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
		rc = pd_set_field(c, j->id, &j->pd, &j->have_pd, "resolution", tag, "resolve_reason", reason,
		                  j->err);
		if (rc == TPD_ERR_NOT_FOUND) {
			/* The request (and soon its data) is gone: resolve anyway, nothing to record. */
			pd_writable = false;
		} else if (rc) {
			j->reason = "teleport";
			goto out;
		}
	} else {
		key = tpd_incident_key(j->id);
		rc = tpd_pd_find_incident_by_key(c->pd, key, &incident, &status, j->err);
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
	if (a->recover || !pd_writable)
		rc = tpd_pd_add_note_once(c->pd, incident, note, &posted, j->err);
	else
		rc = tpd_pd_add_note(c->pd, incident, note, j->err);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	if (posted)
		tpd_metric_inc(c->m_notes);
	rc = tpd_pd_resolve_incident(c->pd, incident, j->err);
	if (rc) {
		j->reason = "pagerduty";
		goto out;
	}
	tpd_metric_inc(c->m_resolved, tag);
	tpd_log(c->lg, TPD_LOG_INFO, "Successfully resolved the incident", "pd_incident_id", incident,
	        "request_id", j->id, "request_state", state_name(j), "pd_resolution", tag, NULL);
mark:
	rc = TPD_ERR_OK;
	if (pd_writable) {
		rc = pd_set_field(c, j->id, &j->pd, &j->have_pd, "pd_resolved", "true", NULL, NULL, j->err);
		if (rc == TPD_ERR_NOT_FOUND)
			rc = TPD_ERR_OK;
		else if (rc)
			j->reason = "teleport";
	}
	if (!pd_writable || rc == TPD_ERR_OK) {
		/* Keep the local copy in step so the planner sees the work as done. */
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

	rc = tpd_pd_find_incident_by_key(c->pd, key, &incident, &status, j->err);
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

		rc = set_or_local(j, "resolution", tag, "resolve_reason", reason);
		if (!rc)
			rc = set_or_local(j, "pd_resolved", "true", NULL, NULL);
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
	rc = set_or_local(j, "incident_id", incident, NULL, NULL);
	if (rc)
		j->reason = "teleport";
out:
	free(key);
	free(incident);
	free(status);
	return rc;
}

static tpd_err act_auto_approve(struct job *j, const tpd_action *a)
{
	tpd_controller *c = j->c;
	const char *email = j->req->user;
	tpd_pd_user user = {0};
	tpd_pd_service *svcs = xcalloc(a->n_services ? a->n_services : 1, sizeof(*svcs));
	const char **policies = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
	bool *on_call = xcalloc(a->n_services ? a->n_services : 1, sizeof(bool));
	const char **names = xcalloc(a->n_services ? a->n_services : 1, sizeof(char *));
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
	/* Distinct escalation policies, in the (sorted) order of their services. */
	for (size_t i = 0; i < n_found; i++) {
		bool dup = false;

		if (tpd_str_empty(svcs[i].escalation_policy_id))
			continue;
		for (size_t k = 0; k < n_pol; k++)
			dup = dup || !strcmp(policies[k], svcs[i].escalation_policy_id);
		if (!dup)
			policies[n_pol++] = svcs[i].escalation_policy_id;
	}
	if (n_pol) {
		rc = tpd_pd_oncall(c->pd, user.id, policies, n_pol, on_call, j->err);
		if (rc) {
			j->reason = "pagerduty";
			goto out;
		}
	}
	for (size_t i = 0; i < n_found; i++) {
		for (size_t k = 0; k < n_pol; k++) {
			if (on_call[k] && tpd_streq(policies[k], svcs[i].escalation_policy_id)) {
				names[n_names++] = svcs[i].name;
				break;
			}
		}
	}
	if (!n_names) {
		tpd_log(c->lg, TPD_LOG_DEBUG, "Skipping the approval: user is not on call", "pd_user_email",
		        email, "pd_user_name", user.name, "request_id", j->id, NULL);
		tpd_metric_inc(c->m_approvals, "not_on_call");
		goto out;
	}
	reason = tpd_approval_reason(user.name, user.email ? user.email : email, names, n_names);
	rc = tpd_teleport_submit_review(c->tp, j->id, reason, j->err);
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
	tpd_log(c->lg, TPD_LOG_INFO, "Successfully submitted a request approval", "pd_user_email", email,
	        "pd_user_name", user.name, "request_id", j->id, NULL);
out:
	for (size_t i = 0; i < n_found; i++)
		tpd_pd_service_clear(&svcs[i]);
	free(svcs);
	free(policies);
	free(on_call);
	free(names);
	free(reason);
	tpd_pd_user_clear(&user);
	/* A final answer (approved, not on call, unknown user...) ends the attempt; an error retries it. */
	if (!rc)
		j->try_approval = false;
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
	rc = tpd_pd_add_note_once(c->pd, incident, note, NULL, err);
	if (!rc)
		rc = tpd_pd_resolve_incident(c->pd, incident, err);
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
static tpd_err reconcile_key(tpd_controller *c, const char *id, unsigned flags, bool *approval_pending,
                             char *err, const char **reason)
{
	struct job j = {.c = c, .id = id, .try_approval = (flags & TPD_WQ_EVENT) != 0, .reason = "teleport"};
	tpd_err rc;
	int steps = 0, conflicts = 0;

	j.err[0] = '\0';
	cache_get(c, id, &j.req, &j.snap, &j.snap_gen);
	rc = pd_read(c, id, &j.pd, &j.have_pd, j.err);
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
			if (a.why && !strcmp(a.why, "Unknown request state"))
				tpd_log(c->lg, TPD_LOG_WARN, a.why, "request_id", id, NULL);
			else if (a.why && strcmp(a.why, "nothing to do") &&
			         strcmp(a.why, "incident already resolved"))
				tpd_log(c->lg, TPD_LOG_DEBUG, a.why, "request_id", id, "request_state",
				        state_name(&j), NULL);
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
		default:
			rc = TPD_ERR_OK;
			break;
		}
		if (rc && rc != TPD_ERR_COMPARE_FAILED && j.try_approval && j.req &&
		    j.req->state == TPD_STATE_PENDING &&
		    (a.kind == TPD_ACT_CREATE_INCIDENT || a.kind == TPD_ACT_ADOPT_BY_KEY)) {
			/* Notification failed: like upstream, still try the auto-approval, then retry. */
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
			cache_get(c, id, &j.req, &j.snap, &j.snap_gen);
			if (!j.req) {
				j.err[0] = '\0';
				rc = TPD_ERR_OK;
				continue;
			}
		}
		if (rc == TPD_ERR_COMPARE_FAILED && ++conflicts < 16) {
			/* Someone else wrote the plugin data: re-read and plan again. */
			rc = pd_read(c, id, &j.pd, &j.have_pd, j.err);
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
		seen_handled(c, id, j.snap_gen);
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

static void scan_orphans(tpd_controller *c);
static void check_pd_health(tpd_controller *c);

/* Only the leader reconciles; without leader election every process does. */
static bool may_reconcile(tpd_controller *c)
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
static void on_leadership(void *ud, bool leading)
{
	tpd_controller *c = ud;

	atomic_store(&c->leading, leading);
	if (leading) {
		pthread_mutex_lock(&c->cache_mu);
		/* Another leader may have posted notes for any review that exists now. */
		tpd_strmap_free(c->unsure, NULL);
		c->unsure = tpd_strmap_new();
		tpd_strmap_each(c->cache, unsure_reset_each, c);
		tpd_strmap_each(c->cache, enqueue_cached_event, c);
		/* And what left PENDING while another process led (deleted ones are not cached): the
		 * old leader may have died before it handled them. */
		tpd_seen_pending_each(c->seen, enqueue_seen, c);
		pthread_mutex_unlock(&c->cache_mu);
		atomic_store(&c->orphan_scan_requested, true);
		wake_all(c);
	}
}

static void *worker_main(void *arg)
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
				scan_orphans(c);
			else
				check_pd_health(c);
			tpd_workqueue_done(c->q, key);
			free(key);
			continue;
		}
		if (!may_reconcile(c)) {
			/* A follower: the next leader resyncs every key. */
			tpd_workqueue_done(c->q, key);
			free(key);
			continue;
		}
		rc = reconcile_key(c, key, flags, &approval_pending, err, &reason);
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

			fmt_seconds(delay, retry, sizeof(retry));
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
	atomic_fetch_sub(&c->live_threads, 1);
	return NULL;
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
		free_request(tpd_strmap_put(l->fresh, r->id, tpd_access_request_dup(r)));
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
	tpd_access_request *prev = tpd_strmap_del(s->old, key);

	unsure_first_seen(s->c, value); /* cache_mu is held by relist */
	seen_transition(s->c, prev, value);
	/* New or changed requests count as events (auto-approval is tried); the rest is a resync. */
	tpd_workqueue_add(s->c->q, key, (s->first || changed(prev, value)) ? TPD_WQ_EVENT : TPD_WQ_RESYNC);
	free_request(prev);
	s->n++;
}

static void enqueue_gone(void *ud, const char *key, void *value)
{
	struct resync *s = ud;

	tpd_strmap_del(s->c->unsure, key); /* cache_mu is held by relist */
	seen_transition(s->c, value, NULL);
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
		tpd_strmap_free(l.fresh, free_request);
		return rc ? rc : TPD_ERR_CANCELLED;
	}
	pthread_mutex_lock(&c->cache_mu);
	s.old = c->cache;
	s.first = !c->listed_once;
	c->cache = l.fresh;
	c->listed_once = true;
	tpd_strmap_each(c->cache, enqueue_fresh, &s);
	/* What the old cache had and the listing has not: deleted while we were disconnected. */
	tpd_strmap_each(s.old, enqueue_gone, &s);
	pthread_mutex_unlock(&c->cache_mu);
	tpd_strmap_free(s.old, free_request);
	snprintf(n, sizeof(n), "%zu", s.n);
	fmt_seconds(tpd_now_ms() - t0, took, sizeof(took));
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
		wake_all(c);
		break;
	case TPD_EV_PUT:
		if (!ev->request || !ev->request->id)
			break;
		pthread_mutex_lock(&c->cache_mu);
		prev = tpd_strmap_put(c->cache, ev->request->id, tpd_access_request_dup(ev->request));
		seen_transition(c, prev, ev->request);
		free_request(prev);
		unsure_first_seen(c, ev->request);
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
		prev = tpd_strmap_del(c->cache, ev->deleted_id);
		seen_transition(c, prev, NULL);
		free_request(prev);
		tpd_strmap_del(c->unsure, ev->deleted_id);
		pthread_mutex_unlock(&c->cache_mu);
		tpd_log(c->lg, TPD_LOG_DEBUG, "Access request event", "request_id", ev->deleted_id,
		        "request_op", "delete", NULL);
		tpd_workqueue_add(c->q, ev->deleted_id, TPD_WQ_EVENT);
		break;
	}
	return 0;
}

static void *watcher_main(void *arg)
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
			fail(c, msg);
			break;
		}
		/* A stream that lived a while starts the backoff over. */
		if (tpd_now_ms() - started > 30000)
			backoff = 0;
		backoff = tpd_backoff_decorr(20, 5000, backoff);
		fmt_seconds(backoff, retry, sizeof(retry));
		tpd_metric_inc(c->m_reconnects);
		tpd_log(c->lg, rc ? TPD_LOG_ERROR : TPD_LOG_WARN,
		        rc ? "Connection problem detected, attempting to reconnect"
		           : "Watcher stream closed, attempting to reconnect",
		        "error", rc ? err : "", "retry_in", retry, NULL);
		if (wait_or_stop(c, backoff))
			break;
	}
	atomic_fetch_sub(&c->live_threads, 1);
	return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* housekeeper                                                                                    */

static tpd_err load_identity(const tpd_config *cfg, tpd_identity **out, char *err)
{
	if (!tpd_str_empty(cfg->teleport.identity))
		return tpd_identity_load_file(cfg->teleport.identity, out, err);
	if (!tpd_str_empty(cfg->teleport.client_crt))
		return tpd_identity_load_tls(cfg->teleport.client_key, cfg->teleport.client_crt,
		                             cfg->teleport.root_cas, out, err);
	return tpd_seterr(err, TPD_ERR_CONFIG,
	                  "no credentials configured: set [teleport] identity (a file from `tctl auth sign "
	                  "--format=file` or tbot) or client_key, client_crt and root_cas");
}

static void note_identity(tpd_controller *c, const tpd_identity *id)
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

	if (load_identity(c->cfg, &id, err)) {
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
	note_identity(c, id);
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

static void collect_notify(void *ud, const char *key, void *value)
{
	struct notify_names *nn = ud;
	const tpd_annotation *a = tpd_access_request_annotation(value, nn->annotation);

	(void)key;
	if (a && a->n_values && !tpd_str_empty(a->values[0]) && tpd_strmap_len(nn->names) < 256)
		tpd_strmap_put(nn->names, a->values[0], NULL);
}

static void collect_notify_seen(void *ud, const char *id, const tpd_access_request *snap)
{
	collect_notify(ud, id, (void *)snap);
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
static void scan_orphans(tpd_controller *c)
{
	struct orphan_scan s = {c, 0};
	struct notify_names nn = {c->ropts.notify_annotation, tpd_strmap_new()};
	char err[TPD_ERRLEN], n[24];
	char **names, **cursor, **known, **kc;
	const char **ids;
	size_t n_names, n_ids, n_known;
	tpd_strmap *idset;

	if (!c->cfg->reconcile.resolve_orphans || !atomic_load(&c->watch_synced) || !may_reconcile(c)) {
		tpd_strmap_free(nn.names, NULL);
		return;
	}
	idset = tpd_strmap_new();
	pthread_mutex_lock(&c->cache_mu);
	tpd_strmap_each(c->cache, collect_notify, &nn);
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
static void check_pd_health(tpd_controller *c)
{
	char err[TPD_ERRLEN];
	bool ok = tpd_pd_health(c->pd, err) == TPD_ERR_OK;

	if (ok != atomic_exchange(&c->pd_healthy, ok))
		tpd_log(c->lg, ok ? TPD_LOG_INFO : TPD_LOG_ERROR,
		        ok ? "PagerDuty API health check passed again" : "PagerDuty API health check failed",
		        "error", ok ? "" : err, NULL);
}

static void *housekeeper_main(void *arg)
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

		atomic_store(&c->housekeeper_tick_ms, tpd_now_ms());
		if (c->idwatch) {
			struct pollfd p = {.fd = tpd_idwatch_fd(c->idwatch), .events = POLLIN};

			if (poll(&p, 1, 1000) > 0)
				id_event = tpd_idwatch_drain(c->idwatch);
		} else {
			wait_or_stop(c, 1000);
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
			if (atomic_load(&c->watch_synced) && may_reconcile(c)) {
				pthread_mutex_lock(&c->cache_mu);
				tpd_strmap_each(c->cache, enqueue_cached, c);
				tpd_seen_pending_each(c->seen, enqueue_seen, c);
				pthread_mutex_unlock(&c->cache_mu);
				atomic_store(&c->orphan_scan_requested, true);
			}
		}
		seen_expire(c);
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
	atomic_fetch_sub(&c->live_threads, 1);
	return NULL;
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

/* ---------------------------------------------------------------------------------------------- */
/* lifecycle                                                                                      */

tpd_err tpd_controller_new(const tpd_config *cfg, tpd_logger *lg, tpd_controller **out, char *err)
{
	tpd_controller *c;

	(void)err; /* nothing can fail yet; kept for the API's shape */
	*out = NULL;
	c = tpd_new(tpd_controller);
	c->cfg = cfg;
	c->lg = lg;
	c->metrics = tpd_metrics_new();
	c->ropts.notify_annotation = cfg->pagerduty.notify_service_annotation;
	c->ropts.services_annotation = cfg->pagerduty.services_annotation;
	c->q = tpd_workqueue_new(50, 5 * 60 * 1000, c->metrics);
	c->cache = tpd_strmap_new();
	c->orphans = tpd_strmap_new();
	c->known_services = tpd_strmap_new();
	c->unsure = tpd_strmap_new();
	c->seen = tpd_seen_pending_new(SEEN_PENDING_CAP, SEEN_PENDING_TTL_MS,
	                               cfg->pagerduty.notify_service_annotation,
	                               cfg->pagerduty.services_annotation);
	c->n_workers = cfg->reconcile.workers > 0 ? cfg->reconcile.workers : 4;
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
	tpd_metrics_add_standard(c->metrics, TPD_VERSION, TPD_GIT_COMMIT);
	*out = c;
	return TPD_ERR_OK;
}

/* Connects like upstream's client: the address decides which path is tried first (port 3025:
 * Auth directly; 443/3080 or *.teleport.sh: the Proxy with TLS routing; anything else: direct,
 * then routing), each path gets its share of the init timeout, and Ping answers (with retries,
 * since the Auth server may still be starting). The log says which path connected. */
static tpd_err init_teleport(tpd_controller *c, tpd_teleport_opts *to, char *err)
{
	tpd_teleport_path order[2];
	int n_paths = 1;
	tpd_ping_info ping = {0};
	tpd_err rc = TPD_ERR_UNAVAILABLE;

	switch (tpd_tlsdial_choose_path(tpd_str_empty(to->addr) ? "localhost:3025" : to->addr)) {
	case TPD_TLSPATH_ROUTING_FIRST:
		order[0] = TPD_TELEPORT_PATH_ROUTING;
		order[1] = TPD_TELEPORT_PATH_DIRECT;
		n_paths = 2;
		break;
	case TPD_TLSPATH_DIRECT_FIRST:
		order[0] = TPD_TELEPORT_PATH_DIRECT;
		order[1] = TPD_TELEPORT_PATH_ROUTING;
		n_paths = 2;
		break;
	default:
		order[0] = TPD_TELEPORT_PATH_DIRECT;
		break;
	}
	tpd_log(c->lg, TPD_LOG_DEBUG, "Checking Teleport server version", NULL);
	for (int i = 0; i < n_paths; i++) {
		int64_t deadline = tpd_now_ms() + INIT_TIMEOUT_MS / n_paths, backoff = 0;

		tpd_teleport_free(c->tp);
		c->tp = NULL;
		to->path = order[i];
		rc = tpd_teleport_new(to, &c->tp, err);
		if (rc)
			return rc;
		for (;;) {
			rc = tpd_teleport_ping(c->tp, &ping, err);
			if (!rc || rc == TPD_ERR_CONFIG || rc == TPD_ERR_ACCESS_DENIED ||
			    tpd_now_ms() >= deadline)
				break;
			tpd_ping_info_clear(&ping);
			backoff = tpd_backoff_decorr(100, 2000, backoff);
			if (wait_or_stop(c, backoff))
				return TPD_ERR_CANCELLED;
		}
		/* The server answered (even with a refusal): the path works, do not try the other. */
		if (!rc || rc == TPD_ERR_CONFIG || rc == TPD_ERR_ACCESS_DENIED)
			break;
		if (i + 1 < n_paths)
			tpd_log(c->lg, TPD_LOG_WARN, "Teleport path failed, trying the other one", "addr",
			        tpd_teleport_addr(c->tp), "path", tpd_teleport_path_name(c->tp), "error", err,
			        NULL);
	}
	if (rc) {
		char inner[TPD_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", err);
		tpd_seterr(err, rc, "Unable to get Teleport server version from %s: %s",
		           tpd_teleport_addr(c->tp), inner);
		tpd_ping_info_clear(&ping);
		return rc;
	}
	c->cluster_name = xstrdup(ping.cluster_name);
	if (ping.advanced_workflows && !tpd_str_empty(ping.proxy_public_addr))
		c->proxy_addr = xstrdup(ping.proxy_public_addr);
	tpd_log(c->lg, TPD_LOG_INFO, "Connected to Teleport", "addr", tpd_teleport_addr(c->tp), "path",
	        tpd_teleport_path_name(c->tp), "cluster", ping.cluster_name, "server_version",
	        ping.server_version, NULL);
	tpd_ping_info_clear(&ping);
	return TPD_ERR_OK;
}

/* Starts the watcher, the housekeeper and the workers. If one cannot be created the others are
 * stopped; only created threads are joined later (n_workers and the flags say which). */
static tpd_err start_threads(tpd_controller *c, char *err)
{
	int want = c->n_workers, e;

	if ((e = pthread_create(&c->watcher, NULL, watcher_main, c)) != 0)
		goto fail;
	c->watcher_started = true;
	if ((e = pthread_create(&c->housekeeper, NULL, housekeeper_main, c)) != 0)
		goto fail;
	c->housekeeper_started = true;
	for (c->n_workers = 0; c->n_workers < want; c->n_workers++) {
		struct worker *w = &c->workers[c->n_workers];

		w->c = c;
		w->index = c->n_workers;
		if ((e = pthread_create(&w->thread, NULL, worker_main, w)) != 0)
			goto fail;
	}
	return TPD_ERR_OK;
fail:
	/* Threads never created never decrement live_threads: account for them. */
	atomic_fetch_sub(&c->live_threads,
	                 (want - c->n_workers) + !c->watcher_started + !c->housekeeper_started);
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

	rc = load_identity(cfg, &c->identity, err);
	if (rc)
		return rc;
	rc = tpd_identity_check_time(c->identity, tpd_wall_ms() / 1000, err);
	if (rc)
		return rc;
	note_identity(c, c->identity);
	atomic_store(&c->identity_valid, true);
	if (!tpd_str_empty(cfg->teleport.identity)) {
		if (tpd_idwatch_new(cfg->teleport.identity, &c->idwatch, inner))
			tpd_log(c->lg, TPD_LOG_WARN,
			        "Cannot watch the identity file for changes, polling only", "error", inner,
			        NULL);
	}

	to.addr = cfg->teleport.addr;
	to.key_pem = tpd_identity_key_pem(c->identity);
	to.cert_pem = tpd_identity_cert_pem(c->identity);
	to.ca_pem = tpd_identity_ca_pem(c->identity);
	to.log = c->lg;
	to.metrics = c->metrics;
	rc = init_teleport(c, &to, err);
	if (rc)
		return rc;

	po.api_endpoint = cfg->pagerduty.api_endpoint;
	po.api_key = cfg->pagerduty.api_key;
	po.user_email = cfg->pagerduty.user_email;
	po.rate_limit_per_minute = cfg->pagerduty.rate_limit_per_minute;
	po.cache_ttl_ms = cfg->pagerduty.cache_ttl_ms;
	po.connect_timeout_ms = cfg->pagerduty.connect_timeout_ms;
	po.request_timeout_ms = cfg->pagerduty.request_timeout_ms;
	po.incident_urgency = cfg->pagerduty.incident_urgency;
	po.incident_priority_id = cfg->pagerduty.incident_priority_id;
	po.user_agent_version = TPD_VERSION;
	po.log = c->lg;
	po.metrics = c->metrics;
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
		rc = tpd_status_start(c->status, err);
		if (rc)
			return rc;
	}

	if (cfg->leader.enabled) {
		tpd_leader_opts lo = {0};

		lo.api_url = cfg->leader.api_server;
		lo.token_file = cfg->leader.token_file;
		lo.ca_file = cfg->leader.ca_file;
		lo.lease_name = cfg->leader.lease_name;
		lo.lease_namespace = cfg->leader.lease_namespace;
		lo.lease_duration_ms = cfg->leader.lease_duration_ms;
		lo.renew_deadline_ms = cfg->leader.renew_deadline_ms;
		lo.retry_period_ms = cfg->leader.retry_period_ms;
		lo.cb = on_leadership;
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
		        "leader_election", c->leader ? "on" : "off", NULL);
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
	if (c->tp)
		tpd_teleport_watch_stop(c->tp);
	wake_all(c);
}

bool tpd_controller_wait(tpd_controller *c, int64_t timeout_ms)
{
	int64_t deadline = tpd_now_ms() + timeout_ms;

	if (!c->threads_started)
		return atomic_load(&c->stop);
	for (;;) {
		if (atomic_load(&c->live_threads) == 0)
			return true;
		if (tpd_now_ms() >= deadline)
			return false;
		wait_or_stop(c, 20);
		if (atomic_load(&c->stop)) {
			struct timespec ts = {0, 20 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
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
	wake_all(c);
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
	tpd_strmap_free(c->cache, free_request);
	tpd_strmap_free(c->orphans, free);
	tpd_strmap_free(c->known_services, NULL);
	tpd_strmap_free(c->unsure, NULL);
	tpd_seen_pending_free(c->seen);
	tpd_metrics_free(c->metrics);
	free(c->cluster_name);
	free(c->proxy_addr);
	pthread_cond_destroy(&c->wake_cv);
	pthread_mutex_destroy(&c->wake_mu);
	pthread_mutex_destroy(&c->fail_mu);
	pthread_mutex_destroy(&c->cache_mu);
	free(c);
}
