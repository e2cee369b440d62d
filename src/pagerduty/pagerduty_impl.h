/* pagerduty_impl.h - what the PagerDuty client's files share (private to src/pagerduty*.c):
 *   pagerduty.c       helpers, one attempt and the retry loop (pd_call), lifecycle
 *   pagerduty_http.c  the libcurl transport (pooled handles, capped bodies, rate-limit headers)
 *   pagerduty_calls.c the API operations: look-ups with caches, incidents, notes, on-call */
#ifndef TPD_PAGERDUTY_IMPL_H
#define TPD_PAGERDUTY_IMPL_H

#include "tpd/http.h"
#include "pagerduty_hooks.h"
#include "tpd/pagerduty.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tpd/ratelimit.h"
#include "tpd/ttlcache.h"

#define POOL_MAX            72 /* workers (max 64) + housekeeping callers */
#define RETRY_BASE_MS       250
#define RETRY_CAP_MS        10000
#define ONCALL_TTL_MAX_MS   10000
#define NEGATIVE_TTL_MAX_MS 30000
#define PAGE_LIMIT          100
#define MAX_OFFSET          10000 /* PagerDuty refuses offset + limit > 10000 */
/* Longest wait in the limiter before a call gives up (TPD_ERR_RATE_LIMITED) when its retry budget
 * is shorter: one rolling minute, the most the budget itself can make a call wait. */
#define LIMITER_MAX_WAIT_MS 60000

struct tpd_pd {
	char *endpoint; /* no trailing slash */
	char *api_key;
	char *user_email;
	char *auth_header, *from_header, *ua_header;
	char *urgency, *priority_id;
	char *ca_file, *ca_path;
	int64_t cache_ttl, oncall_ttl, negative_ttl;
	int64_t connect_timeout, request_timeout, max_retry;
	tpd_logger *log;
	tpd_metric *m_req, *m_dur, *m_rl, *m_hit, *m_miss, *m_wait, *m_wait_s;
	tpd_ratelimit *rl;
	tpd_ttlcache *svc_cache, *user_cache, *oncall_cache, *sched_cache;
	/* incident id → the time (ms, as text) until which a note write to it that timed out may
	 * still land: PagerDuty can finish a request after the client gave up on it, and notes have
	 * no idempotency key, so a check for the note waits for that straggler first. */
	tpd_ttlcache *doubt_cache;
	tpd_pd_hooks hooks;

	pthread_mutex_t mu; /* pool + shutdown condition */
	pthread_cond_t cv;
	atomic_bool stopping;
	/* Set by tpd_pd_drain: calls not yet sent give up instead of waiting (limiter, back-off);
	 * a request already on the wire still gets its answer. */
	atomic_bool draining;
	CURL *pool[POOL_MAX];
	size_t npool;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	atomic_bool warned_401, warned_403;
	bool curl_inited;
};

typedef enum {
	RETRY_SEND,    /* it did not happen: send the write again */
	RETRY_DONE,    /* it happened: the call succeeds without sending again */
	RETRY_UNKNOWN, /* the check itself failed: wait and check again, never send blindly */
} retry_check;

typedef struct {
	const char *call; /* metric label / log field */
	const char *method;
	const char *path; /* path + query, starting with '/' */
	const char *body; /* NULL for GET */
	bool from;        /* send From */
	/* Called before every retry that follows an ambiguous failure of a write: did the write
	 * happen after all? */
	retry_check (*before_retry)(void *ud);
	void *ud;
	/* A write that timed out (or got a 504) may still land later: note it in doubt_cache under
	 * this incident id for one request_timeout (see has_note). */
	const char *doubt_incident;
} pd_req;

typedef struct {
	long status;        /* final HTTP status (0 = transport) */
	json_object *json;  /* parsed 2xx body (NULL when empty) */
	bool duplicate_key; /* 400 saying an open incident with this key exists */
	int pd_code;        /* PagerDuty error code or -1 */
	bool ambiguous;     /* a write attempt failed in a way that may have reached PagerDuty */
} pd_res;

/* Shared helpers (pagerduty.c). */
int64_t pd_now_ms(tpd_pd *pd);
void pd_scrub(tpd_pd *pd, char *err);
char *pd_lower_dup(const char *s);
const char *pd_jstr(json_object *o, const char *key);
const char *pd_jid(json_object *o);
json_object *pd_jobj(json_object *o, const char *key, json_type t);
bool pd_jmore(json_object *root);
/* One API call with retries, limiter and error mapping (pagerduty.c). */
tpd_err pd_call(tpd_pd *pd, const pd_req *r, pd_res *res, char *err);
bool pd_settle_doubt(tpd_pd *pd, const char *incident_id);
/* libcurl transport (pagerduty_http.c). */
void pd_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud);
void pd_share_unlock(CURL *h, curl_lock_data data, void *ud);
tpd_err pd_curl_transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp);

#endif
