/* pagerduty.c - the PagerDuty REST client; see include/tpd/pagerduty.h.
 *
 * Layers, bottom up:
 *   transport   libcurl (pooled easy handles sharing DNS, TLS sessions and connections) or a
 *               test hook; one HTTP exchange, size-capped body, ratelimit-* headers captured;
 *   attempt     rate limiter reservation, the exchange, metrics and trace logging;
 *   pd_call     retries with decorrelated jitter inside a total budget, error mapping;
 *   calls       the API operations, JSON parsing, caches and idempotent create.
 * Nothing in this file keeps global state; libcurl's global init is reference-counted by libcurl. */
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
	tpd_ttlcache *svc_cache, *user_cache, *oncall_cache;
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

/* ---- small helpers ----------------------------------------------------------------------- */

static int64_t now_ms(tpd_pd *pd)
{
	return pd->hooks.now_ms ? pd->hooks.now_ms(pd->hooks.clock_ud) : tpd_now_ms();
}

/* No new waits and no new sends: shut down, or draining for a graceful stop. */
static bool pd_winding_down(void *ud)
{
	tpd_pd *pd = ud;

	return atomic_load(&pd->stopping) || atomic_load(&pd->draining);
}

/* Sleeps ms unless the client is shut down or drained first; returns false when it was. */
static bool pd_sleep(tpd_pd *pd, int64_t ms)
{
	if (pd_winding_down(pd))
		return false;
	if (ms <= 0)
		return true;
	if (pd->hooks.sleep_ms) {
		pd->hooks.sleep_ms(pd->hooks.clock_ud, ms);
		return !pd_winding_down(pd);
	}
	pthread_mutex_lock(&pd->mu);
	tpd_cond_wait_for(&pd->cv, &pd->mu, tpd_now_ms() + ms, pd_winding_down, pd);
	pthread_mutex_unlock(&pd->mu);
	return !pd_winding_down(pd);
}

/* Replaces every occurrence of the API key in err (belt and braces: a hostile or buggy server
 * could echo it back inside an error body). */
static void scrub(tpd_pd *pd, char *err)
{
	char *p;
	size_t klen;

	if (!err || !pd || tpd_str_empty(pd->api_key))
		return;
	klen = strlen(pd->api_key);
	while ((p = strstr(err, pd->api_key)) != NULL) {
		static const char r[] = "[REDACTED]";
		size_t rest = strlen(p + klen);
		if (klen >= sizeof(r) - 1) {
			memcpy(p, r, sizeof(r) - 1);
			memmove(p + sizeof(r) - 1, p + klen, rest + 1);
		} else {
			memset(p, '*', klen); /* too short to hold the marker: mask in place */
		}
	}
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s ? s : "");

	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* An object's "id": NULL when absent, not a string, or empty (an empty id would read as "no
 * incident yet" in plugin data and lead to a duplicate, or to /incidents//notes). */
static const char *jid(json_object *o)
{
	const char *id = jstr(o, "id");

	return id && *id ? id : NULL;
}

static json_object *jobj(json_object *o, const char *key, json_type t)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, t))
		return NULL;
	return v;
}

static bool jmore(json_object *root)
{
	json_object *v = jobj(root, "more", json_type_boolean);

	return v && json_object_get_boolean(v);
}

/* ---- caches' value types ---------------------------------------------------------------------- */

static void *svc_copy(const void *v)
{
	const tpd_pd_service *s = v;
	tpd_pd_service *d = tpd_new(tpd_pd_service);

	d->id = xstrdup(s->id);
	d->name = xstrdup(s->name);
	d->escalation_policy_id = xstrdup(s->escalation_policy_id);
	return d;
}

static void svc_free(void *v)
{
	tpd_pd_service_clear(v);
	free(v);
}

static void *user_copy(const void *v)
{
	const tpd_pd_user *u = v;
	tpd_pd_user *d = tpd_new(tpd_pd_user);

	d->id = xstrdup(u->id);
	d->name = xstrdup(u->name);
	d->email = xstrdup(u->email);
	return d;
}

static void user_free(void *v)
{
	tpd_pd_user_clear(v);
	free(v);
}

static void *str_copy(const void *v)
{
	return xstrdup(v);
}

void tpd_pd_service_clear(tpd_pd_service *s)
{
	if (!s)
		return;
	free(s->id);
	free(s->name);
	free(s->escalation_policy_id);
	memset(s, 0, sizeof(*s));
}

void tpd_pd_user_clear(tpd_pd_user *u)
{
	if (!u)
		return;
	free(u->id);
	free(u->name);
	free(u->email);
	memset(u, 0, sizeof(*u));
}

/* ---- libcurl transport --------------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	tpd_pd *pd = ud;

	(void)h;
	(void)access;
	pthread_mutex_lock(&pd->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	tpd_pd *pd = ud;

	(void)h;
	pthread_mutex_unlock(&pd->share_mu[data]);
}

typedef struct {
	tpd_pd_http_resp *resp;
	bool too_large;
	tpd_pd *pd;
	const char *body; /* request body of a write, read out by on_read */
	size_t body_len, body_off;
} xfer;

/* Feeds a write's body to libcurl. There is deliberately no seek callback: libcurl resends a
 * request by itself when a reused connection dies before any answer byte arrives, even after
 * PagerDuty may have acted on it. Such a resend needs the body rewound, which then fails
 * (CURLE_SEND_FAIL_REWIND), so the failure reaches pd_call, which treats it as ambiguous and
 * checks before writing again. A note is never posted twice behind our back. */
static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t left = x->body_len - x->body_off, want = size * n;

	if (want > left)
		want = left;
	memcpy(buf, x->body + x->body_off, want);
	x->body_off += want;
	return want;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;

	if (!tpd_buf_append(&x->resp->body, p, size * n)) {
		x->too_large = true;
		return 0;
	}
	return size * n;
}

static int64_t header_int(const char *v, size_t len)
{
	int64_t n = 0;
	size_t i = 0;

	while (i < len && (v[i] == ' ' || v[i] == '\t'))
		i++;
	if (i == len || v[i] < '0' || v[i] > '9')
		return -1;
	for (; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
		if (n > 100000000)
			return -1; /* absurd: treat as absent */
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	const char *colon = memchr(p, ':', len);

	if (!colon)
		return len;
	size_t nl = (size_t)(colon - p), vl = len - nl - 1;
	const char *v = colon + 1;
#define HDR(name) (nl == sizeof(name) - 1 && strncasecmp(p, name, nl) == 0)
	if (HDR("ratelimit-remaining"))
		x->resp->rl_remaining = header_int(v, vl);
	else if (HDR("ratelimit-reset"))
		x->resp->rl_reset_s = header_int(v, vl);
	else if (HDR("ratelimit-limit"))
		x->resp->rl_limit = header_int(v, vl);
	else if (HDR("retry-after"))
		x->resp->retry_after_s = header_int(v, vl); /* an HTTP date is ignored (-1) */
#undef HDR
	return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	xfer *x = ud;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&x->pd->stopping) ? 1 : 0;
}

/* libcurl's trace output at TPD_LOG_TRACE, with the Authorization header cut out. Bodies are not
 * traced here (pd_attempt traces them, bounded). */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
	tpd_pd *pd = ud;
	tpd_buf b;
	const char *what;

	(void)h;
	if (type == CURLINFO_TEXT)
		what = "curl";
	else if (type == CURLINFO_HEADER_OUT)
		what = "curl request headers";
	else if (type == CURLINFO_HEADER_IN)
		what = "curl response header";
	else
		return 0;
	tpd_buf_init(&b, 16384);
	for (size_t i = 0; i < size;) {
		const char *eol = memchr(data + i, '\n', size - i);
		size_t ll = eol ? (size_t)(eol - (data + i)) + 1 : size - i;
		if (ll >= 14 && strncasecmp(data + i, "authorization:", 14) == 0)
			tpd_buf_puts(&b, "Authorization: [REDACTED]\n");
		else
			tpd_buf_append(&b, data + i, ll);
		i += ll;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (b.data)
		tpd_log(pd->log, TPD_LOG_TRACE, what, "data", b.data, NULL);
	tpd_buf_free(&b);
	return 0;
}

static CURL *pool_get(tpd_pd *pd)
{
	CURL *h = NULL;

	pthread_mutex_lock(&pd->mu);
	if (pd->npool)
		h = pd->pool[--pd->npool];
	pthread_mutex_unlock(&pd->mu);
	if (!h)
		h = curl_easy_init();
	else
		curl_easy_reset(h);
	return h;
}

static void pool_put(tpd_pd *pd, CURL *h)
{
	pthread_mutex_lock(&pd->mu);
	if (pd->npool < POOL_MAX) {
		pd->pool[pd->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&pd->mu);
	if (h)
		curl_easy_cleanup(h);
}

static tpd_err curl_transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp)
{
	tpd_pd *pd = ud;
	struct curl_slist *hdrs = NULL;
	xfer x = {.resp = resp, .pd = pd};
	tpd_err rc = TPD_ERR_OK;
	CURLcode cc;
	CURL *h = pool_get(pd);

	if (!h) {
		snprintf(resp->transport_err, sizeof(resp->transport_err), "cannot create a libcurl handle");
		return TPD_ERR_NOMEM;
	}
	for (size_t i = 0; i < req->n_headers; i++)
		hdrs = curl_slist_append(hdrs, req->headers[i]);
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip on POST */
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (pd->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, pd->ca_file);
	if (pd->ca_path)
		curl_easy_setopt(h, CURLOPT_CAPATH, pd->ca_path);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)pd->connect_timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)pd->request_timeout);
	curl_easy_setopt(h, CURLOPT_SHARE, pd->share);
	/* The shared connection cache is trimmed to each transfer's MAXCONNECTS (default 5): keep one
	 * connection per concurrent caller instead of reconnecting with more than 5 workers. */
	curl_easy_setopt(h, CURLOPT_MAXCONNECTS, (long)POOL_MAX);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	if (tpd_logger_enabled(pd->log, TPD_LOG_TRACE)) {
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
		curl_easy_setopt(h, CURLOPT_DEBUGDATA, pd);
	}
	if (strcmp(req->method, "GET") != 0) {
		x.body = req->body ? req->body : "";
		x.body_len = strlen(x.body);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x.body_len);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
		goto out;
	}
	resp->status = 0;
	snprintf(resp->transport_err, sizeof(resp->transport_err), "%s", curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		rc = TPD_ERR_TIMEOUT;
		break;
	case CURLE_WRITE_ERROR:
		rc = x.too_large ? TPD_ERR_TOO_LARGE : TPD_ERR_UNAVAILABLE;
		if (x.too_large)
			snprintf(resp->transport_err, sizeof(resp->transport_err),
			         "response body larger than %u bytes", TPD_PD_MAX_BODY);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		rc = TPD_ERR_CANCELLED;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		resp->permanent = true;
		rc = TPD_ERR_UNAVAILABLE;
		break;
	default:
		rc = TPD_ERR_UNAVAILABLE;
	}
out:
	curl_slist_free_all(hdrs);
	pool_put(pd, h);
	return rc;
}

/* ---- one attempt, then the retry loop -------------------------------------------------------- */

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

static void status_label(long status, tpd_err terr, char *buf, size_t len)
{
	if (status)
		snprintf(buf, len, "%ld", status);
	else
		snprintf(buf, len, "%s", terr == TPD_ERR_TIMEOUT ? "timeout" : "error");
}

/* One exchange. Returns the transport's code; resp is filled. t is the limiter's reservation. */
static tpd_err pd_attempt(tpd_pd *pd, const pd_req *r, tpd_pd_http_resp *resp, const tpd_rl_ticket *t)
{
	const char *headers[6];
	size_t nh = 0;
	char *url = xasprintf("%s%s", pd->endpoint, r->path), code[16];
	tpd_pd_http_req req;
	int64_t t0 = now_ms(pd), t1;
	tpd_err rc;

	headers[nh++] = pd->auth_header;
	headers[nh++] = "Accept: application/vnd.pagerduty+json;version=2";
	headers[nh++] = "Content-Type: application/json";
	headers[nh++] = pd->ua_header;
	if (r->from)
		headers[nh++] = pd->from_header;
	req = (tpd_pd_http_req){
	    .method = r->method, .url = url, .headers = headers, .n_headers = nh, .body = r->body};
	tpd_buf_init(&resp->body, TPD_PD_MAX_BODY);
	resp->status = 0;
	resp->rl_remaining = resp->rl_reset_s = resp->rl_limit = resp->retry_after_s = -1;
	resp->permanent = false;
	resp->transport_err[0] = '\0';
	if (tpd_logger_enabled(pd->log, TPD_LOG_TRACE))
		tpd_log(pd->log, TPD_LOG_TRACE, "PagerDuty request", "call", r->call, "method", r->method,
		        "url", url, "body", r->body, NULL);
	if (pd->hooks.transport)
		rc = pd->hooks.transport(pd->hooks.transport_ud, &req, resp);
	else
		rc = curl_transport(pd, &req, resp);
	t1 = now_ms(pd);
	status_label(rc == TPD_ERR_OK ? resp->status : 0, rc, code, sizeof(code));
	tpd_metric_inc(pd->m_req, r->call, code);
	tpd_metric_observe(pd->m_dur, (double)(t1 - t0) / 1000.0, r->call);
	if (rc == TPD_ERR_OK)
		tpd_ratelimit_observe(pd->rl, t, t1, resp->rl_limit, resp->rl_remaining, resp->rl_reset_s);
	if (tpd_logger_enabled(pd->log, TPD_LOG_TRACE)) {
		char excerpt[1024];
		snprintf(excerpt, sizeof(excerpt), "%.*s",
		         (int)(resp->body.len < 1000 ? resp->body.len : 1000),
		         resp->body.data ? resp->body.data : "");
		tpd_log(pd->log, TPD_LOG_TRACE, "PagerDuty response", "call", r->call, "status", code, "body",
		        excerpt, "error", resp->transport_err, NULL);
	}
	free(url);
	return rc;
}

static void warn_auth_once(tpd_pd *pd, long status, const char *msg)
{
	atomic_bool *flag = status == 401 ? &pd->warned_401 : &pd->warned_403;

	if (atomic_exchange(flag, true))
		return;
	tpd_log(pd->log, TPD_LOG_ERROR,
	        status == 401
	            ? "PagerDuty rejected the API key: check pagerduty.api_key"
	            : "PagerDuty refused the request: is pagerduty.api_key a read-only key, or does "
	              "pagerduty.user_email lack permissions?",
	        "error", msg, NULL);
}

static bool is_write(const pd_req *r)
{
	return strcmp(r->method, "GET") != 0;
}

/* The write r was sent and its outcome is unknown because PagerDuty may still be working on it
 * (the client timed out, or a gateway did): a straggler can land up to one more request_timeout
 * later. */
static void note_doubt(tpd_pd *pd, const pd_req *r)
{
	char until[24];
	int64_t t = now_ms(pd);

	if (!r->doubt_incident)
		return;
	snprintf(until, sizeof(until), "%lld", (long long)(t + pd->request_timeout));
	tpd_ttlcache_put(pd->doubt_cache, r->doubt_incident, until, t, pd->request_timeout);
}

/* Waits until no write to incident_id is in doubt (see note_doubt). False when shutting down. */
static bool settle_doubt(tpd_pd *pd, const char *incident_id)
{
	void *v = NULL;
	int64_t t = now_ms(pd), until;

	if (tpd_ttlcache_get(pd->doubt_cache, incident_id, t, &v) != TPD_CACHE_HIT)
		return true;
	until = strtoll(v, NULL, 10);
	free(v);
	if (until <= t)
		return true;
	tpd_log(pd->log, TPD_LOG_DEBUG,
	        "Waiting for a timed-out PagerDuty write to settle before checking the incident's notes",
	        "pd_incident_id", incident_id, NULL);
	return pd_sleep(pd, until - t);
}

/* Performs r with retries. On success res->json holds the parsed body (caller puts it). */
static tpd_err pd_call(tpd_pd *pd, const pd_req *r, pd_res *res, char *err)
{
	tpd_pd_http_resp resp;
	int64_t start = now_ms(pd), deadline = start + pd->max_retry, prev = 0, wait;
	tpd_err rc = TPD_ERR_OK, last = TPD_ERR_UNAVAILABLE;
	char msg[TPD_ERRLEN] = "";
	int attempts = 0;
	tpd_rl_op op = tpd_ratelimit_op(r->method, r->path);
	tpd_rl_ticket ticket = {0};

	memset(res, 0, sizeof(*res));
	res->pd_code = -1;
	memset(&resp, 0, sizeof(resp));
	for (;;) {
		int64_t t = now_ms(pd);
		tpd_err trc = TPD_ERR_OK;

		if (pd_winding_down(pd)) {
			rc = tpd_seterr(err, TPD_ERR_CANCELLED, "PagerDuty %s %s: cancelled (shutting down)",
			                r->method, r->call);
			goto out;
		}
		/* A wait in the limiter is not a failure: it does not use up the retry budget. */
		if (!tpd_ratelimit_reserve(pd->rl, op, t,
		                           deadline - t > LIMITER_MAX_WAIT_MS ? deadline - t
		                                                              : LIMITER_MAX_WAIT_MS,
		                           &wait, &ticket)) {
			tpd_metric_inc(pd->m_rl);
			rc = tpd_seterr(
			    err, TPD_ERR_RATE_LIMITED,
			    "PagerDuty %s: client-side rate limit (%s, or PagerDuty's window) leaves no "
			    "time within the %lld ms retry budget%s%s",
			    r->call, "rate_limit_per_minute", (long long)pd->max_retry,
			    msg[0] ? "; last: " : "", msg);
			goto out;
		}
		if (wait > 0) {
			bool up = pd_sleep(pd, wait);
			int64_t slept = now_ms(pd) - t;

			tpd_metric_inc(pd->m_wait, tpd_ratelimit_op_name(op));
			tpd_metric_add(pd->m_wait_s, (double)slept / 1000.0, tpd_ratelimit_op_name(op));
			deadline += slept;
			if (!up)
				continue; /* shutting down: reported at the top */
		}
		if (attempts > 0 && res->ambiguous && r->before_retry) {
			retry_check chk = r->before_retry(r->ud);

			if (chk == RETRY_DONE) {
				rc = TPD_ERR_OK;
				goto out;
			}
			if (chk == RETRY_UNKNOWN) {
				/* No new attempt: back off as after a failed one, then check again. */
				snprintf(msg, sizeof(msg),
				         "cannot tell whether an earlier attempt succeeded");
				trc = TPD_ERR_UNAVAILABLE;
				goto backoff;
			}
		}
		attempts++;
		tpd_buf_free(&resp.body);
		trc = pd_attempt(pd, r, &resp, &ticket);
		res->status = trc == TPD_ERR_OK ? resp.status : 0;
		if (trc == TPD_ERR_OK && resp.status >= 200 && resp.status < 300) {
			/* Success. An empty body is fine for callers that do not need one. */
			if (resp.body.len)
				res->json = tpd_pd_parse_json(resp.body.data, resp.body.len);
			if (!resp.body.len || res->json) {
				rc = TPD_ERR_OK;
				goto out;
			}
			/* A 2xx whose body is cut or garbled: something between us and PagerDuty broke
			 * the answer, and whether the write happened cannot be told from it. A read
			 * fails; a write is retried like any ambiguous failure (its before_retry check
			 * finds what did happen; a resolve is idempotent). */
			snprintf(msg, sizeof(msg), "HTTP %ld with a body that is not JSON (%zu bytes)",
			         resp.status, resp.body.len);
			if (!is_write(r)) {
				rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "PagerDuty %s: %s", r->call, msg);
				goto out;
			}
			res->ambiguous = true;
			last = TPD_ERR_PROTOCOL;
		} else if (trc == TPD_ERR_CANCELLED) {
			rc = tpd_seterr(err, TPD_ERR_CANCELLED, "PagerDuty %s: cancelled (shutting down)",
			                r->call);
			goto out;
		} else if (trc != TPD_ERR_OK) {
			snprintf(msg, sizeof(msg), "%s", resp.transport_err);
			last = trc == TPD_ERR_TIMEOUT ? TPD_ERR_TIMEOUT : TPD_ERR_UNAVAILABLE;
			if (is_write(r))
				res->ambiguous = true;
			if (is_write(r) && trc == TPD_ERR_TIMEOUT)
				note_doubt(pd, r);
			if (resp.permanent || trc == TPD_ERR_TOO_LARGE || trc == TPD_ERR_NOMEM) {
				rc = tpd_seterr(
				    err, trc == TPD_ERR_TOO_LARGE ? TPD_ERR_TOO_LARGE : TPD_ERR_UNAVAILABLE,
				    "PagerDuty %s: %s", r->call, msg);
				goto out;
			}
		} else {
			tpd_err mapped = tpd_pd_parse_error(resp.status, resp.body.data, resp.body.len,
			                                    &res->pd_code, msg, sizeof(msg));
			if (!tpd_pd_status_retryable(resp.status)) {
				if (resp.status == 400)
					res->duplicate_key =
					    tpd_pd_is_duplicate_key_error(resp.body.data, resp.body.len);
				if (resp.status == 401 || resp.status == 403)
					warn_auth_once(pd, resp.status, msg);
				rc = tpd_seterr(err, mapped, "PagerDuty %s: %s", r->call, msg);
				goto out;
			}
			if (resp.status == 429) {
				tpd_metric_inc(pd->m_rl);
				last = TPD_ERR_RATE_LIMITED;
			} else {
				last = resp.status == 408 ? TPD_ERR_TIMEOUT : TPD_ERR_UNAVAILABLE;
				if (is_write(r))
					res->ambiguous = true;
				if (is_write(r) && resp.status == 504)
					note_doubt(pd, r);
			}
		}
	backoff:
		/* Retryable failure: wait, unless the budget does not allow it. */
		wait = tpd_pd_retry_delay_ms(res->status, resp.rl_reset_s, resp.retry_after_s, RETRY_BASE_MS,
		                             RETRY_CAP_MS, prev);
		prev = wait;
		t = now_ms(pd);
		/* Everyone calling the same operation holds back until then, not just this caller. */
		if (res->status == 429)
			tpd_ratelimit_rejected(pd->rl, &ticket, t, resp.rl_limit, t + wait);
		if (t + wait > deadline) {
			rc = tpd_seterr(err, last,
			                "PagerDuty %s: giving up after %d attempt%s in %lld ms: %s", r->call,
			                attempts, attempts == 1 ? "" : "s", (long long)(t - start), msg);
			goto out;
		}
		{
			char st[16], in[24];
			status_label(res->status, trc, st, sizeof(st));
			snprintf(in, sizeof(in), "%lld", (long long)wait);
			tpd_log(pd->log, TPD_LOG_DEBUG, "PagerDuty request failed, retrying", "call", r->call,
			        "status", st, "retry_in_ms", in, "error", msg, NULL);
		}
		if (!pd_sleep(pd, wait))
			continue;
	}
out:
	tpd_buf_free(&resp.body);
	if (rc != TPD_ERR_OK) {
		json_object_put(res->json);
		res->json = NULL;
	}
	if (rc)
		scrub(pd, err);
	return rc;
}

/* ---- lifecycle --------------------------------------------------------------------------------- */

static bool has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

tpd_err tpd_pd_new(const tpd_pd_opts *o, tpd_pd **out, char *err)
{
	tpd_pd *pd = NULL;
	tpd_err rc = TPD_ERR_OK;
	const char *ep;
	size_t n;

	*out = NULL;
	if (!o || tpd_str_empty(o->api_key)) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG,
		                "pagerduty.api_key is empty (set it to an API key or a file path)");
		goto out;
	}
	if (has_ctl(o->api_key)) {
		rc = tpd_seterr(
		    err, TPD_ERR_CONFIG,
		    "pagerduty.api_key contains control characters (a trailing newline in the key file?)");
		goto out;
	}
	if (has_ctl(o->user_email)) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.user_email contains control characters");
		goto out;
	}
	ep = tpd_str_empty(o->api_endpoint) ? "https://api.pagerduty.com" : o->api_endpoint;
	if (!tpd_str_startswith(ep, "https://") && !tpd_str_startswith(ep, "http://")) {
		rc =
		    tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.api_endpoint %s must start with https://", ep);
		goto out;
	}
	if (!tpd_str_empty(o->incident_urgency) && !tpd_streq(o->incident_urgency, "high") &&
	    !tpd_streq(o->incident_urgency, "low")) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG,
		                "pagerduty.incident_urgency must be \"high\", \"low\" or empty");
		goto out;
	}
	if (o->rate_limit_per_minute < 1) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.rate_limit_per_minute is %d, must be >= 1",
		                o->rate_limit_per_minute);
		goto out;
	}
	pd = tpd_new(tpd_pd);
	pd->endpoint = xstrdup(ep);
	n = strlen(pd->endpoint);
	while (n > 0 && pd->endpoint[n - 1] == '/')
		pd->endpoint[--n] = '\0';
	pd->api_key = xstrdup(o->api_key);
	pd->user_email = xstrdup(o->user_email ? o->user_email : "");
	pd->auth_header = xasprintf("Authorization: Token token=%s", o->api_key);
	pd->from_header = xasprintf("From: %s", pd->user_email);
	pd->ua_header = xasprintf("User-Agent: teleport-pagerduty/%s (%s)",
	                          tpd_str_empty(o->user_agent_version) ? "dev" : o->user_agent_version,
	                          curl_version_info(CURLVERSION_NOW)->version);
	pd->urgency = tpd_str_empty(o->incident_urgency) ? NULL : xstrdup(o->incident_urgency);
	pd->priority_id = tpd_str_empty(o->incident_priority_id) ? NULL : xstrdup(o->incident_priority_id);
	if (!tpd_str_empty(o->ca_file)) {
		pd->ca_file = xstrdup(o->ca_file);
	} else {
		/* Like OpenSSL and Go: SSL_CERT_FILE / SSL_CERT_DIR replace the default store. */
		const char *f = getenv("SSL_CERT_FILE"), *d = getenv("SSL_CERT_DIR");
		if (!tpd_str_empty(f))
			pd->ca_file = xstrdup(f);
		if (!tpd_str_empty(d))
			pd->ca_path = xstrdup(d);
	}
	pd->cache_ttl = o->cache_ttl_ms > 0 ? o->cache_ttl_ms : 300000;
	if (o->cache_ttl_ms < 0)
		pd->cache_ttl = 0; /* negative: caching off */
	pd->oncall_ttl = pd->cache_ttl < ONCALL_TTL_MAX_MS ? pd->cache_ttl : ONCALL_TTL_MAX_MS;
	pd->negative_ttl = pd->cache_ttl < NEGATIVE_TTL_MAX_MS ? pd->cache_ttl : NEGATIVE_TTL_MAX_MS;
	pd->connect_timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
	pd->request_timeout = o->request_timeout_ms > 0 ? o->request_timeout_ms : 10000;
	pd->max_retry = o->max_retry_ms > 0 ? o->max_retry_ms : 30000;
	pd->log = o->log;
	tpd_logger_add_secret(pd->log, pd->api_key);
	if (o->hooks)
		pd->hooks = *o->hooks;
	pd->rl = tpd_ratelimit_new(o->rate_limit_per_minute);
	pd->svc_cache = tpd_ttlcache_new(1024, svc_copy, svc_free);
	pd->user_cache = tpd_ttlcache_new(4096, user_copy, user_free);
	pd->oncall_cache = tpd_ttlcache_new(4096, str_copy, free);
	pd->doubt_cache = tpd_ttlcache_new(1024, str_copy, free);
	pthread_mutex_init(&pd->mu, NULL);
	tpd_cond_init(&pd->cv);
	atomic_init(&pd->stopping, false);
	atomic_init(&pd->draining, false);
	atomic_init(&pd->warned_401, false);
	atomic_init(&pd->warned_403, false);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&pd->share_mu[i], NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "libcurl global initialisation failed");
		goto out;
	}
	pd->curl_inited = true;
	pd->share = curl_share_init();
	if (!pd->share) {
		rc = tpd_seterr(err, TPD_ERR_NOMEM, "cannot create a libcurl share handle");
		goto out;
	}
	curl_share_setopt(pd->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(pd->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(pd->share, CURLSHOPT_USERDATA, pd);
	curl_share_setopt(pd->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(pd->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(pd->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	if (o->metrics) {
		pd->m_req = tpd_metrics_counter(
		    o->metrics, "teleport_pagerduty_pagerduty_requests_total",
		    "PagerDuty API requests by call and HTTP status (or error/timeout).", "call,code");
		pd->m_dur =
		    tpd_metrics_histogram(o->metrics, "teleport_pagerduty_pagerduty_request_duration_seconds",
		                          "PagerDuty API request duration.", "call", NULL, 0);
		pd->m_rl = tpd_metrics_counter(
		    o->metrics, "teleport_pagerduty_pagerduty_rate_limited_total",
		    "PagerDuty requests answered 429 or held back by the client-side limit.", NULL);
		pd->m_wait = tpd_metrics_counter(
		    o->metrics, "teleport_pagerduty_pagerduty_limiter_waits_total",
		    "PagerDuty calls that waited in the client-side rate limiter, by operation limit.", "op");
		pd->m_wait_s = tpd_metrics_counter(
		    o->metrics, "teleport_pagerduty_pagerduty_limiter_wait_seconds_total",
		    "Time PagerDuty calls spent waiting in the client-side rate limiter, by operation limit.",
		    "op");
		/* Every series from the start, so that "no wait" reads 0 rather than absent. */
		for (int i = 0; i < TPD_RL_NOPS; i++) {
			tpd_metric_add(pd->m_wait, 0.0, tpd_ratelimit_op_name((tpd_rl_op)i));
			tpd_metric_add(pd->m_wait_s, 0.0, tpd_ratelimit_op_name((tpd_rl_op)i));
		}
		pd->m_hit = tpd_metrics_counter(o->metrics, "teleport_pagerduty_pagerduty_cache_hits_total",
		                                "PagerDuty lookups answered from cache.", "cache");
		pd->m_miss =
		    tpd_metrics_counter(o->metrics, "teleport_pagerduty_pagerduty_cache_misses_total",
		                        "PagerDuty lookups that went to the API.", "cache");
	}
	if (tpd_str_startswith(pd->endpoint, "http://"))
		tpd_log(pd->log, TPD_LOG_WARN, "pagerduty.api_endpoint is plain http: only for local tests",
		        "endpoint", pd->endpoint, NULL);
	*out = pd;
	pd = NULL;
out:
	tpd_pd_free(pd);
	if (rc)
		scrub(*out ? *out : NULL, err);
	return rc;
}

void tpd_pd_shutdown(tpd_pd *pd)
{
	if (!pd)
		return;
	pthread_mutex_lock(&pd->mu);
	atomic_store(&pd->stopping, true);
	pthread_cond_broadcast(&pd->cv);
	pthread_mutex_unlock(&pd->mu);
}

void tpd_pd_drain(tpd_pd *pd)
{
	if (!pd)
		return;
	pthread_mutex_lock(&pd->mu);
	atomic_store(&pd->draining, true);
	pthread_cond_broadcast(&pd->cv);
	pthread_mutex_unlock(&pd->mu);
}

void tpd_pd_free(tpd_pd *pd)
{
	if (!pd)
		return;
	for (size_t i = 0; i < pd->npool; i++)
		curl_easy_cleanup(pd->pool[i]);
	if (pd->share)
		curl_share_cleanup(pd->share);
	if (pd->curl_inited)
		curl_global_cleanup();
	if (pd->rl) {
		/* fully initialised: the mutexes exist */
		pthread_mutex_destroy(&pd->mu);
		pthread_cond_destroy(&pd->cv);
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&pd->share_mu[i]);
	}
	tpd_ratelimit_free(pd->rl);
	tpd_ttlcache_free(pd->svc_cache);
	tpd_ttlcache_free(pd->user_cache);
	tpd_ttlcache_free(pd->oncall_cache);
	tpd_ttlcache_free(pd->doubt_cache);
	free(pd->endpoint);
	if (pd->api_key)
		memset(pd->api_key, 0, strlen(pd->api_key));
	if (pd->auth_header)
		memset(pd->auth_header, 0, strlen(pd->auth_header));
	free(pd->api_key);
	free(pd->auth_header);
	free(pd->user_email);
	free(pd->from_header);
	free(pd->ua_header);
	free(pd->urgency);
	free(pd->priority_id);
	free(pd->ca_file);
	free(pd->ca_path);
	free(pd);
}

/* ---- calls ------------------------------------------------------------------------------------- */

tpd_err tpd_pd_health(tpd_pd *pd, char *err)
{
	pd_req r = {.call = "health", .method = "GET", .path = "/abilities"};
	pd_res res;
	tpd_err rc = pd_call(pd, &r, &res, err);

	json_object_put(res.json);
	return rc;
}

/* Pages through a list endpoint: GET <path>?limit=100&offset=N<extra>, calling match() on each
 * element of the array named `key` until it returns true or the pages run out. */
typedef bool (*item_fn)(void *ud, json_object *item);

static tpd_err list_pages(tpd_pd *pd, const char *call, const char *path, const char *extra, const char *key,
                          item_fn fn, void *ud, bool *stopped, char *err)
{
	tpd_err rc = TPD_ERR_OK;
	size_t offset = 0;
	pd_res res = {0};

	if (stopped)
		*stopped = false;
	for (;;) {
		char *p = xasprintf("%s?limit=%d&offset=%zu%s", path, PAGE_LIMIT, offset, extra ? extra : "");
		pd_req r = {.call = call, .method = "GET", .path = p};
		rc = pd_call(pd, &r, &res, err);
		free(p);
		if (rc != TPD_ERR_OK)
			goto out;
		json_object *arr = jobj(res.json, key, json_type_array);
		if (!arr) {
			rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "PagerDuty %s: answer has no \"%s\" array",
			                call, key);
			goto out;
		}
		size_t n = json_object_array_length(arr);
		for (size_t i = 0; i < n; i++) {
			json_object *it = json_object_array_get_idx(arr, i);
			if (!json_object_is_type(it, json_type_object))
				continue; /* hostile or broken element: skip, never crash */
			if (fn(ud, it)) {
				if (stopped)
					*stopped = true;
				goto out;
			}
		}
		if (!jmore(res.json) || n == 0)
			goto out;
		offset += n;
		if (offset + PAGE_LIMIT > MAX_OFFSET) {
			tpd_log(pd->log, TPD_LOG_WARN,
			        "PagerDuty returned more results than can be paged (10000)", "call", call,
			        NULL);
			goto out;
		}
		json_object_put(res.json);
		res.json = NULL;
	}
out:
	json_object_put(res.json);
	return rc;
}

typedef struct {
	const char *want; /* lower-cased */
	tpd_pd_service *svc;
	tpd_pd_user *user;
	size_t seen;
} find_ctx;

static bool match_service(void *ud, json_object *it)
{
	find_ctx *c = ud;
	const char *name = jstr(it, "name"), *id = jid(it);

	c->seen++;
	if (!name || !id || !tpd_strcaseeq(name, c->want))
		return false;
	c->svc->id = xstrdup(id);
	c->svc->name = xstrdup(name);
	const char *ep = jid(jobj(it, "escalation_policy", json_type_object));
	c->svc->escalation_policy_id = xstrdup(ep ? ep : "");
	return true;
}

static bool match_user(void *ud, json_object *it)
{
	find_ctx *c = ud;
	const char *email = jstr(it, "email"), *id = jid(it), *name = jstr(it, "name");

	c->seen++;
	if (!email || !id || !tpd_strcaseeq(email, c->want))
		return false;
	c->user->id = xstrdup(id);
	c->user->email = xstrdup(email);
	c->user->name = xstrdup(name ? name : "");
	return true;
}

/* What differs between looking up a service by name and a user by e-mail. */
typedef struct {
	const char *label;    /* metric label and error noun: "service", "user" */
	const char *key_name; /* "name", "e-mail" */
	const char *call, *path, *array;
	item_fn match;
	void (*clear)(void *out);
} lookup_kind;

/* Cached, case-insensitive lookup: the cache (positive or negative), else the list endpoint
 * with ?query=, paged until match() takes an element, which fills out; the result (found or not)
 * is cached. */
static tpd_err cached_lookup(tpd_pd *pd, const lookup_kind *k, tpd_ttlcache *cache, const char *want,
                             void *out, size_t out_size, find_ctx *c, char *err)
{
	char *key = lower_dup(want), *q = NULL, *extra = NULL;
	void *hit = NULL;
	tpd_err rc = TPD_ERR_OK;
	bool found;

	memset(out, 0, out_size);
	c->want = key;
	if (tpd_str_empty(want)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty %s %s is empty", k->label, k->key_name);
		goto out;
	}
	switch (tpd_ttlcache_get(cache, key, now_ms(pd), &hit)) {
	case TPD_CACHE_HIT:
		tpd_metric_inc(pd->m_hit, k->label);
		memcpy(out, hit, out_size); /* takes over the copy's strings */
		free(hit);
		goto out;
	case TPD_CACHE_NEGATIVE:
		tpd_metric_inc(pd->m_hit, k->label);
		rc = tpd_seterr(err, TPD_ERR_NOT_FOUND, "PagerDuty %s %s not found", k->label, want);
		goto out;
	case TPD_CACHE_MISS:
		tpd_metric_inc(pd->m_miss, k->label);
		break;
	}
	q = tpd_pd_urlencode(key);
	extra = xasprintf("&query=%s", q);
	rc = list_pages(pd, k->call, k->path, extra, k->array, k->match, c, &found, err);
	if (rc != TPD_ERR_OK) {
		k->clear(out);
		goto out;
	}
	if (!found) {
		tpd_ttlcache_put(cache, key, NULL, now_ms(pd), pd->negative_ttl);
		rc = tpd_seterr(err, TPD_ERR_NOT_FOUND,
		                "PagerDuty %s %s not found (%zu %ss matched the query)", k->label, want,
		                c->seen, k->label);
		goto out;
	}
	tpd_ttlcache_put(cache, key, out, now_ms(pd), pd->cache_ttl);
out:
	c->want = NULL;
	free(key);
	free(q);
	free(extra);
	if (rc)
		scrub(pd, err);
	return rc;
}

static void service_clear(void *out)
{
	tpd_pd_service_clear(out);
}

static void user_clear(void *out)
{
	tpd_pd_user_clear(out);
}

tpd_err tpd_pd_find_service(tpd_pd *pd, const char *name, tpd_pd_service *out, char *err)
{
	static const lookup_kind k = {"service",  "name",        "find_service", "/services",
	                              "services", match_service, service_clear};
	find_ctx c = {.svc = out};

	return cached_lookup(pd, &k, pd->svc_cache, name, out, sizeof(*out), &c, err);
}

tpd_err tpd_pd_find_user(tpd_pd *pd, const char *email, tpd_pd_user *out, char *err)
{
	static const lookup_kind k = {"user",  "e-mail",   "find_user", "/users",
	                              "users", match_user, user_clear};
	find_ctx c = {.user = out};

	return cached_lookup(pd, &k, pd->user_cache, email, out, sizeof(*out), &c, err);
}

typedef struct {
	const char *user_id;
	const char *const *ids;
	size_t n;
	bool *on;    /* per index into ids */
	bool *ask;   /* which indices were asked */
	size_t left; /* asked and not yet matched */
	size_t seen, matched;
} oncall_ctx;

static bool match_oncall(void *ud, json_object *it)
{
	oncall_ctx *c = ud;
	json_object *user = jobj(it, "user", json_type_object);
	const char *uid = jid(user), *utype = jstr(user, "type");
	const char *ep = jid(jobj(it, "escalation_policy", json_type_object));

	c->seen++;
	if (!uid || !ep || strcmp(uid, c->user_id) != 0)
		return false;
	if (utype && strcmp(utype, "user_reference") != 0 && strcmp(utype, "user") != 0)
		return false;
	for (size_t i = 0; i < c->n; i++) {
		if (c->ask[i] && !c->on[i] && strcmp(c->ids[i], ep) == 0) {
			c->on[i] = true;
			c->left--;
			c->matched++;
		}
	}
	return c->left == 0; /* every asked policy matched: stop paging */
}

tpd_err tpd_pd_oncall(tpd_pd *pd, const char *user_id, const char *const *policy_ids, size_t n, bool *on_call,
                      char *err)
{
	oncall_ctx c = {.user_id = user_id, .ids = policy_ids, .n = n, .on = on_call};
	tpd_err rc = TPD_ERR_OK;
	tpd_buf extra;
	char *enc = NULL;

	tpd_buf_init(&extra, 0);
	c.ask = xcalloc(n ? n : 1, sizeof(bool));
	if (tpd_str_empty(user_id)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty on-call check: empty user id");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *key, *hit = NULL;
		bool dup = false;
		on_call[i] = false;
		if (tpd_str_empty(policy_ids[i]))
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = c.ask[j] && strcmp(policy_ids[j], policy_ids[i]) == 0;
		key = xasprintf("%s\x1f%s", user_id, policy_ids[i]);
		if (tpd_ttlcache_get(pd->oncall_cache, key, now_ms(pd), (void **)&hit) == TPD_CACHE_HIT) {
			tpd_metric_inc(pd->m_hit, "oncall");
			on_call[i] = hit[0] == '1';
		} else if (!dup) {
			tpd_metric_inc(pd->m_miss, "oncall");
			c.ask[i] = true;
			c.left++;
			free(enc);
			enc = tpd_pd_urlencode(policy_ids[i]);
			tpd_buf_printf(&extra, "&escalation_policy_ids%%5B%%5D=%s", enc);
		}
		free(hit);
		free(key);
	}
	if (c.left) {
		free(enc);
		enc = tpd_pd_urlencode(user_id);
		tpd_buf_printf(&extra, "&user_ids%%5B%%5D=%s", enc);
		rc = list_pages(pd, "oncall", "/oncalls", extra.data, "oncalls", match_oncall, &c, NULL, err);
		if (rc != TPD_ERR_OK)
			goto out;
		if (c.seen && !c.matched)
			tpd_log(pd->log, TPD_LOG_WARN,
			        "PagerDuty returned some oncalls array but none of them matched "
			        "the query",
			        "pd_user_id", user_id, NULL);
		for (size_t i = 0; i < n; i++) {
			if (!c.ask[i])
				continue;
			char *key = xasprintf("%s\x1f%s", user_id, policy_ids[i]);
			tpd_ttlcache_put(pd->oncall_cache, key, on_call[i] ? "1" : "0", now_ms(pd),
			                 pd->oncall_ttl);
			free(key);
		}
	}
	/* Duplicated ids take the answer of their first occurrence. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (!tpd_str_empty(policy_ids[i]) && strcmp(policy_ids[j], policy_ids[i]) == 0)
				on_call[i] = on_call[j];
out:
	free(enc);
	free(c.ask);
	tpd_buf_free(&extra);
	if (rc)
		scrub(pd, err);
	return rc;
}

/* ---- incidents ----------------------------------------------------------------------------------- */

typedef struct {
	const char *key;
	char *id, *status;
	bool open;
} key_ctx;

static bool is_open(const char *status)
{
	return tpd_streq(status, "triggered") || tpd_streq(status, "acknowledged");
}

static bool match_key(void *ud, json_object *it)
{
	key_ctx *c = ud;
	const char *id = jid(it), *status = jstr(it, "status"), *key = jstr(it, "incident_key");
	json_object *kv;

	if (!id)
		return false;
	/* An incident with child alerts has no key of its own (null) and matched through an alert's
	 * key; a different non-null key means the server ignored the filter: skip it. */
	if (key && strcmp(key, c->key) != 0)
		return false;
	if (!key && json_object_object_get_ex(it, "incident_key", &kv) && kv != NULL)
		return false;
	if (c->id && (c->open || !is_open(status)))
		return false;
	free(c->id);
	free(c->status);
	c->id = xstrdup(id);
	c->status = xstrdup(status ? status : "");
	c->open = is_open(status);
	return c->open;
}

tpd_err tpd_pd_find_incident_by_key(tpd_pd *pd, const char *incident_key, char **incident_id, char **status,
                                    char *err)
{
	key_ctx c = {.key = incident_key};
	char *q = NULL, *extra = NULL;
	tpd_err rc = TPD_ERR_OK;

	*incident_id = NULL;
	if (status)
		*status = NULL;
	if (tpd_str_empty(incident_key)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty incident lookup: empty incident_key");
		goto out;
	}
	q = tpd_pd_urlencode(incident_key);
	extra = xasprintf("&date_range=all&incident_key=%s", q);
	rc = list_pages(pd, "find_incident", "/incidents", extra, "incidents", match_key, &c, NULL, err);
	if (rc != TPD_ERR_OK)
		goto out;
	if (!c.id) {
		rc = tpd_seterr(err, TPD_ERR_NOT_FOUND, "PagerDuty incident with key %s not found",
		                incident_key);
		goto out;
	}
	*incident_id = c.id;
	c.id = NULL;
	if (status) {
		*status = c.status;
		c.status = NULL;
	}
out:
	free(c.id);
	free(c.status);
	free(q);
	free(extra);
	if (rc)
		scrub(pd, err);
	return rc;
}

typedef struct {
	tpd_pd *pd;
	const char *key;
	char *id;
} adopt_ctx;

/* Looks for an open incident with the key; true (and ctx->id set) when there is one. */
static retry_check adopt_existing(void *ud)
{
	adopt_ctx *a = ud;
	char *id = NULL, *status = NULL, e[TPD_ERRLEN];
	retry_check chk = RETRY_SEND;
	tpd_err rc = tpd_pd_find_incident_by_key(a->pd, a->key, &id, &status, e);

	if (rc == TPD_ERR_OK && is_open(status)) {
		free(a->id);
		a->id = id;
		id = NULL;
		chk = RETRY_DONE;
	} else if (rc != TPD_ERR_OK && rc != TPD_ERR_NOT_FOUND) {
		chk = RETRY_UNKNOWN;
	}
	free(id);
	free(status);
	return chk;
}

tpd_err tpd_pd_create_incident(tpd_pd *pd, const tpd_pd_incident_spec *s, char **incident_id, bool *adopted,
                               char *err)
{
	char *body = NULL;
	adopt_ctx a = {.pd = pd, .key = s ? s->incident_key : NULL};
	pd_req r = {.call = "create_incident", .method = "POST", .path = "/incidents", .from = true};
	pd_res res = {0};
	tpd_err rc = TPD_ERR_OK;

	*incident_id = NULL;
	if (adopted)
		*adopted = false;
	if (!s || tpd_str_empty(s->service_id) || tpd_str_empty(s->title)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty incident: title and service id are required");
		goto out;
	}
	if (tpd_str_empty(pd->user_email)) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.user_email is required to create incidents");
		goto out;
	}
	body = tpd_pd_build_incident_body(s, pd->urgency, pd->priority_id);
	r.body = body;
	if (!tpd_str_empty(s->incident_key)) {
		r.before_retry = adopt_existing;
		r.ud = &a;
	}
	rc = pd_call(pd, &r, &res, err);
	if (rc == TPD_ERR_OK && a.id) {
		/* A retry found the incident an earlier, ambiguous attempt had created. */
		*incident_id = a.id;
		a.id = NULL;
		if (adopted)
			*adopted = true;
		goto out;
	}
	if (rc == TPD_ERR_OK) {
		const char *id = jid(jobj(res.json, "incident", json_type_object));
		if (id) {
			*incident_id = xstrdup(id);
			goto out;
		}
		res.ambiguous = true;
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL,
		                "PagerDuty create_incident: HTTP %ld answer has no incident.id", res.status);
	}
	/* PagerDuty says the key is taken (or we cannot tell whether the create happened): adopt. */
	if (!tpd_str_empty(s->incident_key) &&
	    (res.duplicate_key || (res.ambiguous && rc != TPD_ERR_CANCELLED))) {
		char e2[TPD_ERRLEN];
		tpd_err frc = tpd_pd_find_incident_by_key(pd, s->incident_key, incident_id, NULL, e2);
		if (frc == TPD_ERR_OK) {
			if (adopted)
				*adopted = true;
			rc = TPD_ERR_OK;
			goto out;
		}
		if (res.duplicate_key)
			rc = tpd_seterr(
			    err, TPD_ERR_EXISTS,
			    "PagerDuty reports an open incident with key %s but it cannot be found: %s",
			    s->incident_key, e2);
	}
out:
	json_object_put(res.json);
	free(a.id);
	free(body);
	if (rc)
		scrub(pd, err);
	return rc;
}

typedef struct {
	tpd_pd *pd;
	const char *incident_id, *content;
} note_retry;

/* before_retry hook of add_note: after an ambiguous failure (dropped connection, 5xx after the
 * request was sent) the note may have been stored; posting again would duplicate it. */
static retry_check note_already_posted(void *ud)
{
	note_retry *n = ud;
	char err[TPD_ERRLEN];
	bool have = false;

	if (tpd_pd_incident_has_note(n->pd, n->incident_id, n->content, &have, err))
		return RETRY_UNKNOWN;
	return have ? RETRY_DONE : RETRY_SEND;
}

tpd_err tpd_pd_add_note(tpd_pd *pd, const char *incident_id, const char *content, char *err)
{
	char *body = NULL, *id = NULL, *path = NULL;
	pd_res res = {0};
	tpd_err rc;

	if (tpd_str_empty(incident_id)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty note: empty incident id");
		goto out;
	}
	if (tpd_str_empty(pd->user_email)) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.user_email is required to post notes");
		goto out;
	}
	body = tpd_pd_build_note_body(content);
	id = tpd_pd_urlencode(incident_id);
	path = xasprintf("/incidents/%s/notes", id);
	note_retry nr = {pd, incident_id, content};
	pd_req r = {.call = "add_note",
	            .method = "POST",
	            .path = path,
	            .body = body,
	            .from = true,
	            .before_retry = note_already_posted,
	            .ud = &nr,
	            .doubt_incident = incident_id};
	rc = pd_call(pd, &r, &res, err);
out:
	json_object_put(res.json);
	free(body);
	free(id);
	free(path);
	return rc;
}

tpd_err tpd_pd_incident_has_note(tpd_pd *pd, const char *incident_id, const char *content, bool *found,
                                 char *err)
{
	char *id = NULL, *path = NULL;
	pd_res res = {0};
	json_object *notes;
	tpd_err rc;

	*found = false;
	if (tpd_str_empty(incident_id))
		return tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty notes: empty incident id");
	if (!settle_doubt(pd, incident_id))
		return tpd_seterr(err, TPD_ERR_CANCELLED, "PagerDuty notes of %s: cancelled (shutting down)",
		                  incident_id);
	id = tpd_pd_urlencode(incident_id);
	path = xasprintf("/incidents/%s/notes", id);
	pd_req r = {.call = "list_notes", .method = "GET", .path = path};
	rc = pd_call(pd, &r, &res, err);
	if (rc)
		goto out;
	notes = jobj(res.json, "notes", json_type_array);
	if (!notes) {
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "PagerDuty notes of %s: answer has no notes array",
		                incident_id);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(notes) && !*found; i++) {
		const char *c = jstr(json_object_array_get_idx(notes, i), "content");

		*found = c && content && !strcmp(c, content);
	}
out:
	json_object_put(res.json);
	free(id);
	free(path);
	if (rc)
		scrub(pd, err);
	return rc;
}

tpd_err tpd_pd_add_note_once(tpd_pd *pd, const char *incident_id, const char *content, bool *posted,
                             char *err)
{
	bool have = false;
	tpd_err rc = tpd_pd_incident_has_note(pd, incident_id, content, &have, err);

	if (posted)
		*posted = false;
	if (rc || have)
		return rc;
	rc = tpd_pd_add_note(pd, incident_id, content, err);
	if (!rc && posted)
		*posted = true;
	return rc;
}

tpd_err tpd_pd_resolve_incident(tpd_pd *pd, const char *incident_id, char *err)
{
	char *body = NULL, *id = NULL, *path = NULL;
	pd_res res = {0};
	tpd_err rc;

	if (tpd_str_empty(incident_id)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "PagerDuty resolve: empty incident id");
		goto out;
	}
	if (tpd_str_empty(pd->user_email)) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG, "pagerduty.user_email is required to resolve incidents");
		goto out;
	}
	body = tpd_pd_build_resolve_body();
	id = tpd_pd_urlencode(incident_id);
	path = xasprintf("/incidents/%s", id);
	pd_req r = {.call = "resolve_incident", .method = "PUT", .path = path, .body = body, .from = true};
	rc = pd_call(pd, &r, &res, err);
	if (rc != TPD_ERR_OK && res.pd_code == 1001) { /* Incident Already Resolved */
		rc = TPD_ERR_OK;
		if (err)
			err[0] = '\0';
	}
out:
	json_object_put(res.json);
	free(body);
	free(id);
	free(path);
	return rc;
}

typedef struct {
	const char *prefix;
	tpd_pd_incident_cb cb;
	void *ud;
} list_ctx;

static bool each_open(void *ud, json_object *it)
{
	list_ctx *c = ud;
	const char *id = jid(it), *key = jstr(it, "incident_key"), *status = jstr(it, "status");

	if (id && key && is_open(status) && tpd_str_startswith(key, c->prefix ? c->prefix : ""))
		c->cb(c->ud, id, key);
	return false;
}

tpd_err tpd_pd_list_open_incidents(tpd_pd *pd, const char *key_prefix, tpd_pd_incident_cb cb, void *ud,
                                   char *err)
{
	list_ctx c = {.prefix = key_prefix, .cb = cb, .ud = ud};

	return list_pages(pd, "list_incidents", "/incidents",
	                  "&date_range=all&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged", "incidents",
	                  each_open, &c, NULL, err);
}

tpd_err tpd_pd_list_open_incidents_on(tpd_pd *pd, const char *key_prefix, const char *const *service_ids,
                                      size_t n, tpd_pd_incident_cb cb, void *ud, char *err)
{
	list_ctx c = {.prefix = key_prefix, .cb = cb, .ud = ud};
	tpd_buf q;
	tpd_err rc;

	if (!n)
		return TPD_ERR_OK;
	tpd_buf_init(&q, 0);
	tpd_buf_puts(&q, "&date_range=all&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged");
	for (size_t i = 0; i < n; i++) {
		char *e = tpd_pd_urlencode(service_ids[i]);

		tpd_buf_printf(&q, "&service_ids%%5B%%5D=%s", e);
		free(e);
	}
	rc = list_pages(pd, "list_incidents", "/incidents", q.data, "incidents", each_open, &c, NULL, err);
	tpd_buf_free(&q);
	return rc;
}
