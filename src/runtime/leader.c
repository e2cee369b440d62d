/* leader.c - leader election on a Kubernetes coordination.k8s.io/v1 Lease, following client-go's
 * tryAcquireOrRenew algorithm and default timings (15 s lease, 10 s renew deadline, 2 s retry).
 *
 * One election thread per process. Every retry period it GETs the Lease (POSTing it when it does
 * not exist). The Lease is free when its holder is empty, ours, or when the record has not changed
 * for leaseDurationSeconds of *our own monotonic time* since we first saw it (client-go's observed
 * time: no comparison of the server's renewTime with a local clock, so clock skew does not
 * matter). A free Lease is taken, and a held one renewed, by PUTting the whole object as read,
 * metadata.resourceVersion included: the API server refuses a stale write with 409 Conflict,
 * which makes concurrent candidates serialise. The leader counts its renew deadline from the
 * *start* of its last successful write; when no write succeeded within renew_deadline it stops
 * leading (tpd_leader_is_leader turns false at that instant, the callback follows), which is
 * before any other candidate can see the record expire (it needs lease_duration from a later
 * observation). Freeing a leader releases the Lease (empty holder, leaseDurationSeconds 1, as
 * client-go's ReleaseOnCancel), so a follower takes over at its next poll.
 *
 * The bearer token is re-read whenever its file changes (projected service-account tokens
 * rotate), registered with the logger's secrets and never put into an error text. Responses
 * are capped at 1 MiB; every request has a timeout bounded by the retry period (and, for the
 * leader, by the time left before its renew deadline). */
#include "leader_impl.h"

/* --- small helpers ---------------------------------------------------------------------------- */

/* DNS-1123 subdomain (lease names, namespaces, holder identities are used in URLs or JSON only,
 * but names are also path segments, so they are checked). */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

/* MicroTime: RFC 3339 in UTC with exactly six fractional digits. */
static void microtime_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* Field values are bounded (the modulos tell gcc too, for -Wformat-truncation). */
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", (tm.tm_year + 1900) % 10000,
	         (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
	         (long)(ts.tv_nsec / 1000) % 1000000);
}

const char *lease_jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static json_object *jobj(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

json_object *lease_parse_json(const char *s, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(32);
	json_object *o;

	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* --- the algorithm ---------------------------------------------------------------------------- */

/* Remembers the Lease o (taking ownership); a new resourceVersion restarts the observed time. */
static void observe(tpd_leader *l, json_object *o)
{
	const char *rv = lease_jstr(jobj(o, "metadata"), "resourceVersion");

	if (!rv || !tpd_streq(rv, l->obs_rv)) {
		free(l->obs_rv);
		l->obs_rv = xstrdup(rv ? rv : "");
		l->obs_time_ms = tpd_now_ms();
	}
	json_object_put(l->lease);
	l->lease = o;
}

static const char *holder_of(json_object *lease)
{
	const char *h = lease_jstr(jobj(lease, "spec"), "holderIdentity");

	return h ? h : "";
}

/* Lease duration of a record in ms (ours when the record has none). */
static int64_t duration_of(const tpd_leader *l, json_object *lease)
{
	int64_t s = jint(jobj(lease, "spec"), "leaseDurationSeconds", 0);

	if (s <= 0 || s > 86400 * 365)
		return l->lease_ms;
	return s * 1000;
}

static int64_t lease_seconds(const tpd_leader *l)
{
	int64_t s = (l->lease_ms + 999) / 1000;

	return s < 1 ? 1 : s;
}

/* Fills spec for holder `holder` (we take or renew, or "" to release). */
static void fill_spec(tpd_leader *l, json_object *spec, const char *holder, bool release)
{
	char now[40];
	const char *old_holder = lease_jstr(spec, "holderIdentity");
	bool ours = tpd_streq(old_holder, l->id);
	int64_t transitions = jint(spec, "leaseTransitions", 0);

	microtime_now(now, sizeof(now));
	if (!release && !ours)
		transitions++;
	if (!ours || release || !lease_jstr(spec, "acquireTime"))
		json_object_object_add(spec, "acquireTime", json_object_new_string(now));
	json_object_object_add(spec, "holderIdentity", json_object_new_string(holder));
	json_object_object_add(spec, "leaseDurationSeconds",
	                       json_object_new_int64(release ? 1 : lease_seconds(l)));
	json_object_object_add(spec, "renewTime", json_object_new_string(now));
	json_object_object_add(spec, "leaseTransitions", json_object_new_int64(transitions));
}

/* One client-go tryAcquireOrRenew. OK: we hold the Lease. EXISTS: another holder's unexpired
 * Lease (or a lost create race). COMPARE_FAILED: a concurrent write won. Else a request error. */
static tpd_err try_acquire_or_renew(tpd_leader *l, int64_t deadline_ms, char *err)
{
	json_object *got = NULL, *obj = NULL, *spec;
	const char *holder;
	char *body = NULL;
	tpd_err rc;

	rc = lease_http_do(l, "GET", l->url_item, NULL, deadline_ms, &got, err);
	if (rc == TPD_ERR_NOT_FOUND) {
		obj = json_object_new_object();
		json_object *meta = json_object_new_object();
		json_object_object_add(obj, "apiVersion", json_object_new_string("coordination.k8s.io/v1"));
		json_object_object_add(obj, "kind", json_object_new_string("Lease"));
		json_object_object_add(meta, "name", json_object_new_string(l->name));
		json_object_object_add(meta, "namespace", json_object_new_string(l->ns));
		json_object_object_add(obj, "metadata", meta);
		spec = json_object_new_object();
		json_object_object_add(obj, "spec", spec);
		fill_spec(l, spec, l->id, false);
		json_object_object_add(spec, "leaseTransitions", json_object_new_int64(0));
		body = xstrdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
		rc = lease_http_do(l, "POST", l->url_coll, body, deadline_ms, &got, err);
		if (rc == TPD_ERR_OK)
			observe(l, got);
		goto out;
	}
	if (rc != TPD_ERR_OK)
		goto out;
	observe(l, got);
	holder = holder_of(l->lease);
	if (holder[0] && !tpd_streq(holder, l->id) &&
	    l->obs_time_ms + duration_of(l, l->lease) > tpd_now_ms()) {
		rc = TPD_ERR_EXISTS;
		goto out;
	}
	obj = json_object_get(l->lease);
	spec = jobj(obj, "spec");
	if (!spec) {
		spec = json_object_new_object();
		json_object_object_add(obj, "spec", spec);
	}
	fill_spec(l, spec, l->id, false);
	body = xstrdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
	rc = lease_http_do(l, "PUT", l->url_item, body, deadline_ms, &got, err);
	if (rc == TPD_ERR_OK)
		observe(l, got);
out:
	/* The spec edits above happened on the remembered object; forget it on failure so the next
	 * round starts from a fresh GET (its rv still gets compared with obs_rv). */
	if (rc != TPD_ERR_OK && rc != TPD_ERR_EXISTS && obj && obj == l->lease) {
		json_object_put(l->lease);
		l->lease = NULL;
	}
	json_object_put(obj);
	free(body);
	return rc;
}

static void set_leading(tpd_leader *l, bool leading, const char *why)
{
	char lease[2 * NAME_MAX_LEN + 2];

	snprintf(lease, sizeof(lease), "%s/%s", l->ns, l->name);
	tpd_metric_set(l->m_is_leader, leading ? 1.0 : 0.0);
	tpd_metric_inc(l->m_transitions);
	if (leading) {
		tpd_log(l->log, TPD_LOG_INFO, "Became leader", "lease", lease, "identity", l->id, NULL);
		free(l->followed);
		l->followed = NULL;
	} else {
		tpd_log(l->log, TPD_LOG_WARN, "Lost leadership", "lease", lease, "identity", l->id, "error",
		        why, NULL);
	}
	if (l->cb)
		l->cb(l->cb_ud, leading);
}

static void log_follow(tpd_leader *l)
{
	const char *holder = holder_of(l->lease);
	char *msg;

	if (tpd_streq(holder, l->followed))
		return;
	free(l->followed);
	l->followed = xstrdup(holder);
	msg = xasprintf("Following leader %s", holder);
	tpd_log(l->log, TPD_LOG_INFO, msg, "leader", holder, "identity", l->id, NULL);
	free(msg);
}

static bool leader_stopped(void *ud)
{
	return ((tpd_leader *)ud)->stop;
}

/* Waits until the monotonic time `until` or a stop; returns true when stopping. */
static bool wait_until(tpd_leader *l, int64_t until)
{
	bool stop;

	pthread_mutex_lock(&l->mu);
	stop = tpd_cond_wait_for(&l->cv, &l->mu, until, leader_stopped, l);
	pthread_mutex_unlock(&l->mu);
	return stop;
}

static void *election_thread(void *arg)
{
	tpd_leader *l = arg;
	char err[TPD_ERRLEN];

	for (;;) {
		int64_t start = tpd_now_ms(), deadline = start + l->retry_ms, next;
		bool leading;
		tpd_err rc;

		pthread_mutex_lock(&l->mu);
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		leading = l->leading;
		if (leading && start - l->renewed_ms >= l->renew_ms) {
			l->leading = false;
			pthread_mutex_unlock(&l->mu);
			set_leading(l, false, "the lease was not renewed within the renew deadline");
			leading = false;
		} else {
			pthread_mutex_unlock(&l->mu);
		}
		if (leading && l->renewed_ms + l->renew_ms < deadline)
			deadline = l->renewed_ms + l->renew_ms;

		err[0] = '\0';
		rc = try_acquire_or_renew(l, deadline, err);
		if (rc == TPD_ERR_CANCELLED)
			break;
		if (rc == TPD_ERR_OK) {
			pthread_mutex_lock(&l->mu);
			l->renewed_ms = start;
			l->leading = true;
			pthread_mutex_unlock(&l->mu);
			if (!leading)
				set_leading(l, true, NULL);
			next = start + l->retry_ms;
		} else {
			if (rc == TPD_ERR_EXISTS) {
				if (l->lease && !leading)
					log_follow(l);
			} else if (rc == TPD_ERR_COMPARE_FAILED) {
				tpd_log(l->log, TPD_LOG_DEBUG, "Lease was updated concurrently, retrying",
				        "error", err, NULL);
			} else {
				tpd_log(l->log, leading ? TPD_LOG_WARN : TPD_LOG_DEBUG,
				        leading ? "Failed to renew the leader lease"
				                : "Failed to acquire the leader lease",
				        "error", err, NULL);
			}
			if (leading && rc == TPD_ERR_EXISTS) {
				/* someone else wrote the Lease: step down at once */
				char *why = xasprintf("the lease is now held by %s", holder_of(l->lease));
				pthread_mutex_lock(&l->mu);
				l->leading = false;
				pthread_mutex_unlock(&l->mu);
				set_leading(l, false, why);
				free(why);
				leading = false;
				log_follow(l);
			} else if (leading && tpd_now_ms() - l->renewed_ms >= l->renew_ms) {
				pthread_mutex_lock(&l->mu);
				l->leading = false;
				pthread_mutex_unlock(&l->mu);
				set_leading(l, false,
				            err[0] ? err
				                   : "the lease was not renewed within the renew deadline");
				leading = false;
			}
			if (leading) {
				/* retry at once-ish, but never sleep past the deadline */
				next = start + l->retry_ms;
				if (next > l->renewed_ms + l->renew_ms)
					next = l->renewed_ms + l->renew_ms;
			} else {
				/* Followers poll every 0.4-0.5 retry periods and wake just after an
				 * observed holder's lease would expire. Expiry counts from when we first
				 * saw the holder's last renewal, so polling at half the leader's renew
				 * period keeps that lag under retry_period / 2 and the take-over after a
				 * crash under lease_duration + retry_period (client-go polls every 1-2.2
				 * retry periods, which can take up to lease_duration + 2 x 2.2 retry
				 * periods). The jitter spreads the candidates. */
				next = start + l->retry_ms / 2 -
				       (int64_t)tpd_rand_below((uint64_t)(l->retry_ms / 10 + 1));
				if (rc == TPD_ERR_EXISTS && l->lease) {
					int64_t exp = l->obs_time_ms + duration_of(l, l->lease) + 5;
					if (exp > tpd_now_ms() && exp < next)
						next = exp;
				}
			}
		}
		if (wait_until(l, next))
			break;
	}
	return NULL;
}

/* --- public API ------------------------------------------------------------------------------- */

static char *opt_or(const char *v, const char *dflt)
{
	return xstrdup(tpd_str_empty(v) ? dflt : v);
}

tpd_err tpd_leader_new(const tpd_leader_opts *o, tpd_leader **out, char *err)
{
	tpd_leader *l = NULL;
	char host[256];
	const char *env;
	tpd_err rc = TPD_ERR_OK;

	*out = NULL;
	if (!o)
		return tpd_seterr(err, TPD_ERR_INVAL, "leader election: no options");
	l = tpd_new(tpd_leader);
	pthread_mutex_init(&l->mu, NULL);
	tpd_cond_init(&l->cv);
	atomic_init(&l->stopping, false);
	l->cb = o->cb;
	l->cb_ud = o->cb_ud;
	l->log = o->log;
	l->lease_ms = o->lease_duration_ms;
	l->renew_ms = o->renew_deadline_ms;
	l->retry_ms = o->retry_period_ms;
	if (!(l->lease_ms > l->renew_ms && l->renew_ms > l->retry_ms && l->retry_ms > 0)) {
		rc = tpd_seterr(
		    err, TPD_ERR_INVAL,
		    "leader election: need lease_duration (%lldms) > renew_deadline (%lldms) > retry_period "
		    "(%lldms) > 0",
		    (long long)l->lease_ms, (long long)l->renew_ms, (long long)l->retry_ms);
		goto out;
	}
	l->token_file = opt_or(o->token_file, SA_DIR "/token");
	if (!tpd_str_empty(o->ca_file))
		l->ca_file = xstrdup(o->ca_file);
	else if (access(SA_DIR "/ca.crt", R_OK) == 0)
		l->ca_file = xstrdup(SA_DIR "/ca.crt");
	l->name = opt_or(o->lease_name, "teleport-plugin-pagerduty");
	if (!tpd_str_empty(o->lease_namespace)) {
		l->ns = xstrdup(o->lease_namespace);
	} else if (!tpd_str_empty(env = getenv("POD_NAMESPACE"))) {
		l->ns = xstrdup(env);
	} else {
		char *s = NULL;
		if (tpd_read_file(SA_DIR "/namespace", 4096, &s, NULL, NULL) == TPD_ERR_OK && s)
			tpd_str_trim(s);
		l->ns = (s && s[0]) ? s : xstrdup("default");
		if (l->ns != s)
			free(s);
	}
	if (!tpd_str_empty(o->identity)) {
		l->id = xstrdup(o->identity);
	} else if (!tpd_str_empty(env = getenv("POD_NAME"))) {
		l->id = xstrdup(env);
	} else {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "pid-%ld", (long)getpid());
		host[sizeof(host) - 1] = '\0';
		l->id = xstrdup(host);
	}
	if (!valid_name(l->name) || !valid_name(l->ns)) {
		rc = tpd_seterr(err, TPD_ERR_INVAL,
		                "leader election: invalid lease name or namespace \"%s/%s\"", l->ns, l->name);
		goto out;
	}
	if (strlen(l->id) > NAME_MAX_LEN || strpbrk(l->id, "\"\\\r\n")) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "leader election: invalid holder identity");
		goto out;
	}
	if (!tpd_str_empty(o->api_url)) {
		size_t n = strlen(o->api_url);
		while (n > 0 && o->api_url[n - 1] == '/')
			n--;
		char *base = xstrndup(o->api_url, n);
		l->url_coll = xasprintf("%s/apis/coordination.k8s.io/v1/namespaces/%s/leases", base, l->ns);
		free(base);
	} else {
		const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
		if (tpd_str_empty(h) || tpd_str_empty(p)) {
			rc = tpd_seterr(
			    err, TPD_ERR_CONFIG,
			    "leader election: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT "
			    "unset) and no API server URL given");
			goto out;
		}
		l->url_coll = xasprintf(
		    strchr(h, ':') ? "https://[%s]:%s/apis/coordination.k8s.io/v1/namespaces/%s/leases"
		                   : "https://%s:%s/apis/coordination.k8s.io/v1/namespaces/%s/leases",
		    h, p, l->ns);
	}
	l->url_item = xasprintf("%s/%s", l->url_coll, l->name);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "libcurl global initialisation failed");
		goto out;
	}
	l->curl_inited = true;
	l->curl = curl_easy_init();
	if (!l->curl) {
		rc = tpd_seterr(err, TPD_ERR_NOMEM, "cannot create a libcurl handle");
		goto out;
	}
	l->m_is_leader =
	    tpd_metrics_gauge(o->metrics, TPD_METRICS_PREFIX "leader_is_leader",
	                      "1 while this process holds the leader-election Lease, else 0", NULL);
	l->m_transitions =
	    tpd_metrics_counter(o->metrics, TPD_METRICS_PREFIX "leader_transitions_total",
	                        "Times this process became leader or stopped being leader", NULL);
	tpd_metric_set(l->m_is_leader, 0.0);
	*out = l;
	l = NULL;
out:
	tpd_leader_free(l);
	return rc;
}

tpd_err tpd_leader_start(tpd_leader *l, char *err)
{
	int e;

	if (!l)
		return tpd_seterr(err, TPD_ERR_INVAL, "leader election: no elector");
	if (l->started)
		return tpd_seterr(err, TPD_ERR_INVAL, "leader election: already started");
	e = pthread_create(&l->thread, NULL, election_thread, l);
	if (e != 0)
		return tpd_seterr(err, TPD_ERR_INTERNAL, "leader election: cannot start a thread: %s",
		                  strerror(e));
	pthread_setname_np(l->thread, "tpd-leader");
	l->started = true;
	return TPD_ERR_OK;
}

bool tpd_leader_is_leader(tpd_leader *l)
{
	bool r;

	if (!l)
		return false;
	pthread_mutex_lock(&l->mu);
	r = l->leading && tpd_now_ms() - l->renewed_ms < l->renew_ms;
	pthread_mutex_unlock(&l->mu);
	return r;
}

/* Client-go's ReleaseOnCancel: clears the holder of a Lease we hold (CAS on resourceVersion).
 * The Lease we remember may be stale or forgotten: a renewal cut short by the stop itself may
 * still have reached the API server (409 on our write) or left nothing remembered. Then read it
 * again and, if it still names us, release that version: within the renew deadline, not the
 * retry period, so a slow API server does not turn a clean hand-over into a wait for the whole
 * lease duration. */
static void release(tpd_leader *l)
{
	int64_t deadline = tpd_now_ms() + l->renew_ms;
	char err[TPD_ERRLEN] = "";
	tpd_err rc = TPD_ERR_OK;

	for (int attempt = 0; attempt < 2; attempt++) {
		json_object *obj, *spec, *got = NULL;
		char *body;

		if (!l->lease || attempt > 0) {
			rc = lease_http_do(l, "GET", l->url_item, NULL, deadline, &got, err);
			if (rc != TPD_ERR_OK)
				break;
			observe(l, got);
		}
		if (!tpd_streq(holder_of(l->lease), l->id) || !(spec = jobj(l->lease, "spec")))
			return; /* not ours (any more): nothing to release */
		obj = json_object_get(l->lease);
		fill_spec(l, spec, "", true);
		body = xstrdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
		got = NULL;
		rc = lease_http_do(l, "PUT", l->url_item, body, deadline, &got, err);
		json_object_put(got);
		json_object_put(obj);
		free(body);
		if (rc == TPD_ERR_OK) {
			tpd_log(l->log, TPD_LOG_INFO, "Released leadership", "lease", l->name, "identity",
			        l->id, NULL);
			return;
		}
		if (rc != TPD_ERR_COMPARE_FAILED)
			break;
	}
	tpd_log(l->log, TPD_LOG_WARN, "Failed to release the leader lease", "error", err, NULL);
}

void tpd_leader_free(tpd_leader *l)
{
	bool was_leading;

	if (!l)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->mu);
		atomic_store(&l->stopping, true);
		pthread_join(l->thread, NULL);
		atomic_store(&l->stopping, false);
		pthread_mutex_lock(&l->mu);
		was_leading = l->leading;
		l->leading = false;
		pthread_mutex_unlock(&l->mu);
		if (was_leading)
			release(l);
		tpd_metric_set(l->m_is_leader, 0.0);
	}
	if (l->curl)
		curl_easy_cleanup(l->curl);
	if (l->curl_inited)
		curl_global_cleanup();
	json_object_put(l->lease);
	free(l->obs_rv);
	free(l->followed);
	if (l->token) {
		memset(l->token, 0, strlen(l->token));
		free(l->token);
	}
	free(l->url_item);
	free(l->url_coll);
	free(l->token_file);
	free(l->ca_file);
	free(l->name);
	free(l->ns);
	free(l->id);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
