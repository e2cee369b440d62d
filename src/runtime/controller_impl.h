/* controller_impl.h - internals shared by the parts of the controller (controller.c, informer.c,
 * executor.c, housekeeper.c): the context struct and the functions one part calls in another.
 * Not part of the public API: only those files include it. */
#ifndef TPD_CONTROLLER_IMPL_H
#define TPD_CONTROLLER_IMPL_H

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
#include "tpd/extras.h"
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
#include "tpd/util.h"
#include "tpd/workqueue.h"

#define MAX_WORKERS         64
#define MAX_STEPS           24    /* reconcile steps per key per pass */
#define IDENTITY_RETRY_MS   5000  /* re-read a bad rotated identity this often */
#define RECONNECT_WAIT_MS   10000 /* the watcher drives a reconnect this long before it retries */
#define LIVENESS_MAX_AGE_MS 60000 /* housekeeper loop must tick within this */
/* The housekeeper sleeps until its next due time (identity poll, resync, health check, identity
 * expiry) or a wake-up, but never longer than this, so its liveness tick stays well within
 * LIVENESS_MAX_AGE_MS. */
#define HOUSEKEEPER_MAX_SLEEP_MS 20000
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
	tpd_strmap *cache;          /* id → ctl_entry* (ctl_cache_*) */
	tpd_strmap *orphans;        /* request id → incident id (char*), under cache_mu */
	tpd_strmap *known_services; /* PagerDuty service ids seen in plugin data, under cache_mu */
	/* request id → how many of its review notes may have been posted without being counted
	 * (see unsure_notes_*), under cache_mu */
	tpd_strmap *unsure;
	tpd_seen_pending *seen; /* requests seen PENDING that left it unhandled, under cache_mu */
	/* Dry-run mode (dryrun.c): its shadows of what would have been written, under cache_mu. */
	bool dry_run;
	tpd_strmap *dry_pd;        /* request id → tpd_plugin_data* */
	tpd_strmap *dry_incidents; /* incident key → status (char*) */
	bool listed_once;          /* under cache_mu: the first listing after start is done */

	/* Threads. */
	pthread_t watcher, housekeeper;
	struct worker workers[MAX_WORKERS];
	int n_workers;
	bool threads_started;
	bool watcher_started, housekeeper_started;
	atomic_int live_threads;
	int done_fd; /* eventfd, readable once live_threads reached 0 (tpd_controller_done_fd) */
	int wake_fd; /* eventfd written by ctl_wake_all: the housekeeper's poll() wakes on it */

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
	tpd_metric *m_seen, *m_seen_forgotten, *m_dry, *m_by_service;
};

/* A cached request and what the executor knows of its plugin data (pdstate.c): one entry, so the
 * memory of plugin data costs no key and no map slot of its own. Under cache_mu. */
typedef struct ctl_entry {
	tpd_access_request *req;
	struct known *known; /* NULL: nothing remembered, the next pass reads */
} ctl_entry;

/* controller.c: small helpers */
void ctl_entry_free(void *p); /* frees the request and the memory of its plugin data */
/* Puts r (taken) into cache in place of the previous version of the request, whose plugin-data
 * memory it keeps when keep_known; returns that previous version (the caller frees it) or NULL. */
tpd_access_request *ctl_cache_put(tpd_strmap *cache, tpd_access_request *r, bool keep_known);
/* Removes a request; returns it (the caller frees it) or NULL. */
tpd_access_request *ctl_cache_del(tpd_strmap *cache, const char *id);
/* The cached request, or NULL. */
const tpd_access_request *ctl_cache_req(tpd_strmap *cache, const char *id);
/* Sleeps up to ms or until woken; returns true when stopping. */
/* Every controller thread calls this last: the last one to end makes done_fd readable. */
void ctl_thread_exit(tpd_controller *c);
bool ctl_wait_or_stop(tpd_controller *c, int64_t ms);
void ctl_wake_all(tpd_controller *c);
/* Records a fatal error and stops the controller. */
void ctl_fail(tpd_controller *c, const char *err);
void ctl_fmt_seconds(int64_t ms, char *buf, size_t len);
void ctl_cache_get(tpd_controller *c, const char *id, tpd_access_request **req, tpd_access_request **snap,
                   uint64_t *gen);

/* informer.c */
void ctl_seen_handled(tpd_controller *c, const char *id, uint64_t gen);
void ctl_seen_expire(tpd_controller *c);
void ctl_enqueue_seen(void *ud, const char *id, const tpd_access_request *snap);
void *ctl_watcher_main(void *arg);

/* pdstate.c: plugin data as the executor sees it */
/* Compare-and-swap write of `next` expecting `cur` (*have false: nothing stored); on success cur
 * becomes next. COMPARE_FAILED: someone else wrote (re-read). */
tpd_err ctl_pd_write(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have,
                     const tpd_plugin_data *next, char *err);
/* Reads it; *have = false when none is stored. */
tpd_err ctl_pd_read(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have, char *err);
/* Writes one or two fields on top of cur (CAS). */
tpd_err ctl_pd_set_field(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have, const char *k1,
                         const char *v1, const char *k2, const char *v2, char *err);
/* The memory of the data last read or written: load (false: none), store (kept only while the
 * request is cached), forget and free (callers of forget hold cache_mu); assume_new remembers
 * "nothing stored" for a request created after the list (caller holds cache_mu). */
bool ctl_known_load(tpd_controller *c, const char *id, tpd_plugin_data *cur, bool *have);
void ctl_known_store(tpd_controller *c, const char *id, const tpd_plugin_data *cur, bool have);
void ctl_known_forget(tpd_controller *c, const char *id);
void ctl_known_forget_all(tpd_controller *c); /* caller holds cache_mu */
void ctl_known_assume_new(tpd_controller *c, const char *id);
void ctl_known_free(void *p);
/* Notes that may have been posted but not counted: up to which review index (SIZE_MAX: unknown,
 * check); callers hold cache_mu. */
size_t ctl_unsure_get(tpd_controller *c, const char *id);
void ctl_unsure_set(tpd_controller *c, const char *id, size_t n);
void ctl_unsure_first_seen(tpd_controller *c, const tpd_access_request *r);
void ctl_unsure_reset_each(void *ud, const char *key, void *value);

/* executor.c */
/* One reconcile pass of key id (TPD_WQ_* flags): plans and acts until nothing is left to do. On
 * failure err and *reason (the failing side: teleport, pagerduty, internal) say why;
 * *approval_pending tells whether the auto-approval is still to be tried. tests/unit/
 * test_executor.c drives it through the clients' hook tables. */
tpd_err ctl_reconcile_key(tpd_controller *c, const char *id, unsigned flags, bool *approval_pending,
                          char *err, const char **reason);
bool ctl_may_reconcile(tpd_controller *c);
void ctl_on_leadership(void *ud, bool leading);
void *ctl_worker_main(void *arg);

/* dryrun.c: every write to PagerDuty and Teleport goes through these (in dry-run mode: logged,
 * counted and kept in the shadows instead), and the reads that must see the shadows. */
tpd_err ctl_w_update_plugin_data(tpd_controller *c, const char *id, const tpd_plugin_data *next,
                                 const tpd_plugin_data *expect, char *err);
tpd_err ctl_r_plugin_data(tpd_controller *c, const char *id, tpd_plugin_data *out, char *err);
tpd_err ctl_w_create_incident(tpd_controller *c, const char *id, const char *service_name,
                              const tpd_pd_incident_spec *s, char **incident, bool *adopted, char *err);
tpd_err ctl_r_incident_by_key(tpd_controller *c, const char *key, char **incident, char **status, char *err);
/* once: post only if the incident lacks the note (*posted says whether it was posted). */
tpd_err ctl_w_add_note(tpd_controller *c, const char *id, const char *incident, const char *note, bool once,
                       bool *posted, char *err);
tpd_err ctl_w_resolve_incident(tpd_controller *c, const char *id, const char *incident, char *err);
tpd_err ctl_w_submit_review(tpd_controller *c, const char *id, const char *reason, char *err);
void ctl_dry_free(tpd_controller *c);

/* housekeeper.c */
void ctl_scan_orphans(tpd_controller *c);
void ctl_check_pd_health(tpd_controller *c);
void ctl_note_identity(tpd_controller *c, const tpd_identity *id);
void *ctl_housekeeper_main(void *arg);

#endif
