/* pagerduty.c - the PagerDuty REST client; see include/tpd/pagerduty.h.
 *
 * Layers, bottom up:
 *   transport   libcurl (pooled easy handles sharing DNS, TLS sessions and connections) or a
 *               test hook; one HTTP exchange, size-capped body, ratelimit-* headers captured;
 *   attempt     rate limiter reservation, the exchange, metrics and trace logging;
 *   pd_call     retries with decorrelated jitter inside a total budget, error mapping;
 *   calls       the API operations, JSON parsing, caches and idempotent create.
 * Nothing in this file keeps global state; libcurl's global init is reference-counted by libcurl. */
#include "pagerduty_impl.h"

/* ---- small helpers ----------------------------------------------------------------------- */

int64_t pd_now_ms(tpd_pd *pd)
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
void pd_scrub(tpd_pd *pd, char *err)
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

char *pd_lower_dup(const char *s)
{
	char *d = xstrdup(s ? s : "");

	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

const char *pd_jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* An object's "id": NULL when absent, not a string, or empty (an empty id would read as "no
 * incident yet" in plugin data and lead to a duplicate, or to /incidents//notes). */
const char *pd_jid(json_object *o)
{
	const char *id = pd_jstr(o, "id");

	return id && *id ? id : NULL;
}

json_object *pd_jobj(json_object *o, const char *key, json_type t)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, t))
		return NULL;
	return v;
}

bool pd_jmore(json_object *root)
{
	json_object *v = pd_jobj(root, "more", json_type_boolean);

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

static void *sched_copy(const void *v)
{
	const tpd_pd_schedule *s = v;
	tpd_pd_schedule *d = tpd_new(tpd_pd_schedule);

	d->id = xstrdup(s->id);
	d->name = xstrdup(s->name);
	return d;
}

static void sched_free(void *v)
{
	tpd_pd_schedule_clear(v);
	free(v);
}

void tpd_pd_schedule_clear(tpd_pd_schedule *s)
{
	if (!s)
		return;
	free(s->id);
	free(s->name);
	memset(s, 0, sizeof(*s));
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
	int64_t t0 = pd_now_ms(pd), t1;
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
		rc = pd_curl_transport(pd, &req, resp);
	t1 = pd_now_ms(pd);
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
	int64_t t = pd_now_ms(pd);

	if (!r->doubt_incident)
		return;
	snprintf(until, sizeof(until), "%lld", (long long)(t + pd->request_timeout));
	tpd_ttlcache_put(pd->doubt_cache, r->doubt_incident, until, t, pd->request_timeout);
}

/* Waits until no write to incident_id is in doubt (see note_doubt). False when shutting down. */
bool pd_settle_doubt(tpd_pd *pd, const char *incident_id)
{
	void *v = NULL;
	int64_t t = pd_now_ms(pd), until;

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
tpd_err pd_call(tpd_pd *pd, const pd_req *r, pd_res *res, char *err)
{
	tpd_pd_http_resp resp;
	int64_t start = pd_now_ms(pd), deadline = start + pd->max_retry, prev = 0, wait;
	tpd_err rc = TPD_ERR_OK, last = TPD_ERR_UNAVAILABLE;
	char msg[TPD_ERRLEN] = "";
	int attempts = 0;
	tpd_rl_op op = tpd_ratelimit_op(r->method, r->path);
	tpd_rl_ticket ticket = {0};

	memset(res, 0, sizeof(*res));
	res->pd_code = -1;
	memset(&resp, 0, sizeof(resp));
	for (;;) {
		int64_t t = pd_now_ms(pd);
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
			int64_t slept = pd_now_ms(pd) - t;

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
		t = pd_now_ms(pd);
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
		pd_scrub(pd, err);
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
	/* The config table owns these defaults; a caller that forgot one is told, not silently
	 * given a second copy of the default. */
	if (o->cache_ttl_ms == 0 || o->connect_timeout_ms <= 0 || o->request_timeout_ms <= 0) {
		rc = tpd_seterr(err, TPD_ERR_INVAL,
		                "PagerDuty client: cache_ttl_ms (%lld), connect_timeout_ms (%lld) and "
		                "request_timeout_ms (%lld) must be set",
		                (long long)o->cache_ttl_ms, (long long)o->connect_timeout_ms,
		                (long long)o->request_timeout_ms);
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
	pd->cache_ttl = o->cache_ttl_ms > 0 ? o->cache_ttl_ms : 0; /* negative: caching off */
	pd->oncall_ttl = pd->cache_ttl < ONCALL_TTL_MAX_MS ? pd->cache_ttl : ONCALL_TTL_MAX_MS;
	pd->negative_ttl = pd->cache_ttl < NEGATIVE_TTL_MAX_MS ? pd->cache_ttl : NEGATIVE_TTL_MAX_MS;
	pd->connect_timeout = o->connect_timeout_ms;
	pd->request_timeout = o->request_timeout_ms;
	pd->max_retry = o->max_retry_ms > 0 ? o->max_retry_ms : TPD_PD_MAX_RETRY_MS;
	pd->log = o->log;
	tpd_logger_add_secret(pd->log, pd->api_key);
	if (o->hooks)
		pd->hooks = *o->hooks;
	pd->rl = tpd_ratelimit_new(o->rate_limit_per_minute);
	pd->svc_cache = tpd_ttlcache_new(1024, svc_copy, svc_free);
	pd->user_cache = tpd_ttlcache_new(4096, user_copy, user_free);
	pd->sched_cache = tpd_ttlcache_new(256, sched_copy, sched_free);
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
	curl_share_setopt(pd->share, CURLSHOPT_LOCKFUNC, pd_share_lock);
	curl_share_setopt(pd->share, CURLSHOPT_UNLOCKFUNC, pd_share_unlock);
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
		pd_scrub(*out ? *out : NULL, err);
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
	tpd_ttlcache_free(pd->sched_cache);
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
