/* teleport.c - the Teleport Auth Service gRPC client (see tpd/teleport.h).
 *
 * Built on gRPC C core (completion queues, batches, byte buffers) with protobuf-c messages from
 * proto/. Each call gets its own completion queue, so calls from several threads never share
 * queue state. The channel lives in a small reference-counted holder: set_credentials swaps in a
 * new holder under the client's mutex, calls keep the holder they started with, and the old
 * channel is destroyed when its last call ends. Channels use a local subchannel pool so that a
 * new holder really opens a new TLS connection with the new client certificate.
 *
 * Connection facts (docs/teleport-wire.md §3): the cluster CA is the only trust root, the target name
 * is teleport.cluster.local, keepalive pings at most every 60 s (grpc-go answers faster pings with
 * GOAWAY too_many_pings), reconnect backoff capped at 2 s like grpc-go's MaxDelay, 4 MiB receive
 * limit. No `version` metadata is sent, so the server's client-version check does not apply.
 *
 * Two connection paths (docs/teleport-wire.md §3.4): "direct" uses gRPC's own TLS channel (which
 * reconnects by itself); "tls-routing" dials our own OpenSSL connection with ALPN
 * teleport-auth@<hex(cluster)>.teleport.cluster.local (src/teleport/tlsdial.c) and hands the plaintext end
 * to grpc_channel_create_from_fd. Such a channel never reconnects, so before each call a dead one
 * is replaced by a fresh dial (serialised by dmu, outside the main mutex). AUTO picks the path by
 * address like tpd_tlsdial_choose_path (ports 443/3080, teleport.sh hosts → routing);
 * tpd_teleport_connect (teleport_chan.c) tries the other path when the first fails. */
#include "teleport_impl.h"

#include <dlfcn.h>

/* --- small helpers ------------------------------------------------------------------------- */

static const char *const code_names[] = {
    "OK",        "CANCELLED",       "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS",  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",    "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED",
};

const char *tpd_teleport_code_name(int grpc_code)
{
	if (grpc_code >= 0 && (size_t)grpc_code < sizeof(code_names) / sizeof(code_names[0]))
		return code_names[grpc_code];
	return "UNKNOWN";
}

tpd_err tpd_teleport_status_err(int code, const char *details)
{
	/* Upstream treats any error ending in this text as "already done" (docs/teleport-wire.md §5.1). */
	if (details && tpd_str_endswith(details, "has already reviewed this request"))
		return TPD_ERR_ALREADY_REVIEWED;
	switch (code) {
	case GRPC_STATUS_OK:
		return TPD_ERR_OK;
	case GRPC_STATUS_CANCELLED:
		return TPD_ERR_CANCELLED;
	case GRPC_STATUS_INVALID_ARGUMENT:
	case GRPC_STATUS_OUT_OF_RANGE:
		return TPD_ERR_INVAL;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return TPD_ERR_TIMEOUT;
	case GRPC_STATUS_NOT_FOUND:
		return TPD_ERR_NOT_FOUND;
	case GRPC_STATUS_ALREADY_EXISTS:
		return TPD_ERR_EXISTS;
	case GRPC_STATUS_PERMISSION_DENIED:
	case GRPC_STATUS_UNAUTHENTICATED:
		return TPD_ERR_ACCESS_DENIED;
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
		return TPD_ERR_RATE_LIMITED;
	case GRPC_STATUS_FAILED_PRECONDITION: /* trace.CompareFailed */
	case GRPC_STATUS_ABORTED:
		return TPD_ERR_COMPARE_FAILED;
	case GRPC_STATUS_UNIMPLEMENTED:
		return TPD_ERR_UNIMPLEMENTED;
	case GRPC_STATUS_UNAVAILABLE:
		return TPD_ERR_UNAVAILABLE;
	case GRPC_STATUS_INTERNAL:
	case GRPC_STATUS_DATA_LOSS:
		return TPD_ERR_REMOTE;
	default:
		return TPD_ERR_REMOTE;
	}
}

/* Parses "v1.2.3-pre+build" into numbers and the pre-release part. */
static bool semver_parse(const char *s, long v[3], const char **pre, size_t *pre_len)
{
	if (!s)
		return false;
	if (*s == 'v' || *s == 'V')
		s++;
	for (int i = 0; i < 3; i++) {
		if (*s < '0' || *s > '9')
			return false;
		char *end;
		v[i] = strtol(s, &end, 10);
		if (v[i] < 0 || v[i] > 1000000)
			return false;
		s = end;
		if (i < 2) {
			if (*s != '.')
				return false;
			s++;
		}
	}
	*pre = NULL;
	*pre_len = 0;
	if (*s == '-') {
		s++;
		*pre = s;
		*pre_len = strcspn(s, "+");
		if (*pre_len == 0)
			return false;
		s += *pre_len;
	}
	if (*s == '+')
		return s[1] != '\0';
	return *s == '\0';
}

bool tpd_semver_cmp(const char *a, const char *b, int *result)
{
	long va[3], vb[3];
	const char *pa, *pb;
	size_t la, lb;
	if (!semver_parse(a, va, &pa, &la) || !semver_parse(b, vb, &pb, &lb))
		return false;
	for (int i = 0; i < 3; i++) {
		if (va[i] != vb[i]) {
			*result = va[i] < vb[i] ? -1 : 1;
			return true;
		}
	}
	if (!pa || !pb) {
		*result = (!pa && !pb) ? 0 : (pa ? -1 : 1); /* a pre-release sorts first */
		return true;
	}
	int c = strncmp(pa, pb, la < lb ? la : lb);
	*result = c ? (c < 0 ? -1 : 1) : (la == lb ? 0 : (la < lb ? -1 : 1));
	return true;
}

tpd_err tpd_teleport_check_version(const char *server_version, char *err)
{
	int c;
	if (!tpd_semver_cmp(server_version, TPD_TELEPORT_MIN_SERVER_VERSION, &c))
		return tpd_seterr(err, TPD_ERR_PARSE, "cannot parse Teleport server version \"%.64s\"",
		                  server_version ? server_version : "");
	if (c < 0)
		return tpd_seterr(
		    err, TPD_ERR_CONFIG,
		    "Teleport server version %.64s is less than %s; upgrade the cluster to %s or newer",
		    server_version, TPD_TELEPORT_MIN_SERVER_VERSION, TPD_TELEPORT_MIN_SERVER_VERSION);
	return TPD_ERR_OK;
}

/* --- lifecycle ----------------------------------------------------------------------------- */

void tpd_teleport_process_init(void)
{
	/* setenv(..., 0) keeps an operator's choice; gRPC reads the variable in grpc_init. Should
	 * it fail (ENOMEM), gRPC keeps its default engine, which works too, only costlier. */
	(void)setenv("GRPC_POLL_STRATEGY", "poll", 0);
	(void)tp_abseil_deadlock_checks_off();
}

bool tp_abseil_deadlock_checks_off(void)
{
	/* gRPC's mutexes are abseil's. Debian 12 builds abseil without NDEBUG, so every lock and
	 * unlock also maintains a lock-order graph for deadlock detection (GraphCycles: 2-3 % of the
	 * plugin's CPU in bench/cost.py's profile, a debugging aid that only reports). abseil's C++
	 * switch for it is absl::SetMutexDeadlockDetectionMode(OnDeadlockCycle::kIgnore); its C++
	 * name is found at run time, as Debian 12's build of abseil spells it and as an upstream
	 * build of the same release does. Not found (another abseil): nothing changes. */
	static const char *const names[] = {TP_ABSL_DEADLOCK_MODE_DEBIAN, TP_ABSL_DEADLOCK_MODE_LTS};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *sym = dlsym(RTLD_DEFAULT, names[i]);
		if (!sym)
			continue;
		void (*set_mode)(int);
		memcpy(&set_mode, &sym, sizeof(set_mode)); /* object to function pointer, as POSIX allows */
		set_mode(0);                               /* OnDeadlockCycle::kIgnore */
		return true;
	}
	return false;
}

tpd_err tpd_teleport_new(const tpd_teleport_opts *o, tpd_teleport **out, char *err)
{
	*out = NULL;
	if (!o)
		return tpd_seterr(err, TPD_ERR_INVAL, "no Teleport client options");
	tpd_err rc = o->hooks ? TPD_ERR_OK : tp_check_pems(o->key_pem, o->cert_pem, o->ca_pem, err);
	if (rc)
		return rc;

	if (!getenv("GRPC_VERBOSITY") && !getenv("GRPC_TRACE"))
		gpr_set_log_function(tp_grpc_log_drop);
	/* gRPC's backup poller stays at its default (5 s; GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS
	 * overrides): reconnects are driven by tpd_teleport_await_ready and by calls, so an idle
	 * process is not woken for it (at 100 ms its two timer threads cost 0.28 % of a core while
	 * idle, at 1 s 0.06 %; bench/idle.py). */
	grpc_init();

	tpd_teleport *t = tpd_new(tpd_teleport);
	if (o->hooks)
		t->hooks = *o->hooks;
	t->addr = xstrdup(tpd_str_empty(o->addr) ? DEFAULT_ADDR : o->addr);
	t->call_timeout_ms = o->call_timeout_ms > 0 ? o->call_timeout_ms : DEFAULT_CALL_TIMEOUT_MS;
	t->init_timeout_ms =
	    o->watch_init_timeout_ms > 0 ? o->watch_init_timeout_ms : DEFAULT_INIT_TIMEOUT_MS;
	t->author = xstrdup(o->review_author ? o->review_author : "");
	t->log = o->log;
	t->m_req = tpd_metrics_counter(o->metrics, "teleport_pagerduty_grpc_requests_total",
	                               "Teleport gRPC calls by method and status code.", "method,code");
	t->m_dur = tpd_metrics_histogram(o->metrics, "teleport_pagerduty_grpc_request_duration_seconds",
	                                 "Duration of Teleport gRPC calls (streams: until they end).",
	                                 "method", NULL, 0);
	t->m_ev = tpd_metrics_counter(o->metrics, "teleport_pagerduty_watch_events_total",
	                              "Teleport watch events received, by operation.", "op");
	t->m_conn = tpd_metrics_gauge(o->metrics, "teleport_pagerduty_watch_connected",
	                              "1 while the Teleport watch stream is open and past INIT.", NULL);
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->wmu, NULL);
	pthread_mutex_init(&t->dmu, NULL);
	t->cluster = xstrdup(o->cluster_name ? o->cluster_name : "");
	if (o->path == TPD_TELEPORT_PATH_ROUTING)
		t->routing = true;
	else if (o->path == TPD_TELEPORT_PATH_AUTO)
		t->routing = tpd_tlsdial_choose_path(t->addr) == TPD_TLSPATH_ROUTING_FIRST;
	if (o->hooks) {
		t->cur = tp_chan_placeholder(); /* nothing to dial: the hooks answer */
	} else if (t->routing) {
		rc = tp_identity_from_pems(o->key_pem, o->cert_pem, o->ca_pem, &t->id, err);
		if (rc) {
			tpd_teleport_free(t);
			return rc;
		}
		t->cur = tp_chan_placeholder(); /* dialled by the first call */
	} else {
		t->cur = tp_chan_create(t, o->key_pem, o->cert_pem, o->ca_pem);
	}
	t->cur->gen = t->gen = 1;
	tpd_log(t->log, TPD_LOG_DEBUG, "Teleport client created", "addr", t->addr, "path",
	        tpd_teleport_path_name(t), NULL);
	*out = t;
	return TPD_ERR_OK;
}

void tpd_teleport_free(tpd_teleport *t)
{
	if (!t)
		return;
	if (t->cur)
		tp_chan_release(t, t->cur);
	tp_cq_idle_free(t);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->wmu);
	pthread_mutex_destroy(&t->dmu);
	tpd_identity_free(t->id);
	free(t->cluster);
	free(t->addr);
	free(t->author);
	free(t);
	grpc_shutdown();
}

const char *tpd_teleport_addr(const tpd_teleport *t)
{
	return t->addr;
}

const char *tpd_teleport_path_name(const tpd_teleport *t)
{
	return t->routing ? "tls-routing" : "direct";
}

tpd_err tpd_teleport_set_credentials(tpd_teleport *t, const char *key_pem, const char *cert_pem,
                                     const char *ca_pem, char *err)
{
	tpd_err rc = tp_check_pems(key_pem, cert_pem, ca_pem, err);
	if (rc)
		return rc;
	chan *c;
	if (t->routing) {
		tpd_identity *id = NULL;
		rc = tp_identity_from_pems(key_pem, cert_pem, ca_pem, &id, err);
		if (rc)
			return rc;
		/* The next call dials with the new identity; open calls keep the old connection. */
		pthread_mutex_lock(&t->dmu);
		tpd_identity_free(t->id);
		t->id = id;
		c = tp_chan_placeholder();
		pthread_mutex_lock(&t->mu);
		chan *old = t->cur;
		c->gen = ++t->gen;
		t->cur = c;
		pthread_mutex_unlock(&t->mu);
		pthread_mutex_unlock(&t->dmu);
		tp_chan_release(t, old);
		tpd_log(t->log, TPD_LOG_DEBUG, "Teleport client credentials replaced; the next call re-dials",
		        NULL);
		return TPD_ERR_OK;
	}
	c = tp_chan_create(t, key_pem, cert_pem, ca_pem);
	pthread_mutex_lock(&t->mu);
	chan *old = t->cur;
	c->gen = ++t->gen;
	t->cur = c;
	unsigned gen = c->gen;
	pthread_mutex_unlock(&t->mu);
	tp_chan_release(t, old);
	char g[24];
	snprintf(g, sizeof(g), "%u", gen);
	tpd_log(t->log, TPD_LOG_DEBUG, "Teleport client credentials replaced; new calls use a new channel",
	        "channel_generation", g, NULL);
	return TPD_ERR_OK;
}

/* --- RPCs ---------------------------------------------------------------------------------- */

tpd_err tpd_teleport_ping(tpd_teleport *t, tpd_ping_info *out, char *err)
{
	memset(out, 0, sizeof(*out));
	Proto__PingRequest req = PROTO__PING_REQUEST__INIT;
	uint8_t *b = NULL;
	size_t n = 0;
	tpd_err rc = tp_unary(t, "Ping", &req.base, &b, &n, err);
	if (rc == TPD_ERR_UNIMPLEMENTED)
		return tpd_seterr(
		    err, TPD_ERR_CONFIG,
		    "Teleport server does not implement Ping: server version must be at least %s",
		    TPD_TELEPORT_MIN_SERVER_VERSION);
	if (rc)
		return rc;
	Proto__PingResponse *p = proto__ping_response__unpack(NULL, n, b);
	free(b);
	if (!p)
		return tpd_seterr(err, TPD_ERR_PROTOCOL, "Teleport Ping: malformed response");
	out->cluster_name = xstrdup(p->clustername ? p->clustername : "");
	out->server_version = xstrdup(p->serverversion ? p->serverversion : "");
	out->proxy_public_addr = xstrdup(p->proxypublicaddr ? p->proxypublicaddr : "");
	out->advanced_workflows = p->serverfeatures && p->serverfeatures->advancedaccessworkflows;
	proto__ping_response__free_unpacked(p, NULL);
	return tpd_teleport_check_version(out->server_version, err);
}

typedef struct {
	tpd_request_cb cb;
	void *ud;
	bool stopped;
} list_ctx;

static int list_stream_msg(void *ud, const uint8_t *b, size_t n, tpd_err *rc, char *err)
{
	list_ctx *lc = ud;
	tpd_access_request r = {0};
	*rc = tpd_teleport_decode_request(b, n, &r, err);
	if (*rc) {
		tpd_access_request_clear(&r);
		return -1;
	}
	int stop = lc->cb(lc->ud, &r);
	tpd_access_request_clear(&r);
	if (stop) {
		lc->stopped = true;
		return 1;
	}
	return 0;
}

static tpd_err list_v2(tpd_teleport *t, list_ctx *lc, char *err)
{
	Types__AccessRequestFilter f = TYPES__ACCESS_REQUEST_FILTER__INIT;
	int64_t to = t->call_timeout_ms * 6;
	stream_spec sp = {
	    .watch = false, .timeout_ms = to < 60000 ? 60000 : to, .on_msg = list_stream_msg, .ud = lc};
	return tp_server_stream(t, "GetAccessRequestsV2", &f.base, &sp, err);
}

tpd_err tpd_teleport_list_requests(tpd_teleport *t, tpd_request_cb cb, void *ud, char *err)
{
	list_ctx lc = {.cb = cb, .ud = ud};
	char *key = xstrdup("");
	tpd_err rc = TPD_ERR_OK;
	int32_t limit = LIST_PAGE_SIZE;
	for (int page = 0;; page++) {
		if (page >= LIST_MAX_PAGES) {
			rc = tpd_seterr(err, TPD_ERR_PROTOCOL,
			                "Teleport ListAccessRequests: more than %d pages", LIST_MAX_PAGES);
			goto out;
		}
		Types__AccessRequestFilter f = TYPES__ACCESS_REQUEST_FILTER__INIT;
		Proto__ListAccessRequestsRequest req = PROTO__LIST_ACCESS_REQUESTS_REQUEST__INIT;
		req.filter = &f; /* Go sends the (empty) filter */
		req.limit = limit;
		req.startkey = key;
		uint8_t *b = NULL;
		size_t n = 0;
		rc = tp_unary(t, "ListAccessRequests", &req.base, &b, &n, err);
		if (rc == TPD_ERR_UNIMPLEMENTED && page == 0) {
			tpd_log(t->log, TPD_LOG_DEBUG,
			        "ListAccessRequests not implemented, falling back to GetAccessRequestsV2",
			        NULL);
			rc = list_v2(t, &lc, err);
			goto out;
		}
		if (rc == TPD_ERR_RATE_LIMITED && limit > 1) {
			/* RESOURCE_EXHAUSTED: most likely a page larger than the 4 MiB message limit
			 * (requests with long resource lists). Ask again for a smaller page. */
			limit /= 2;
			page--;
			continue;
		}
		if (rc)
			goto out;
		char *next = NULL;
		rc = tpd_teleport_decode_request_list(b, n, cb, ud, &lc.stopped, &next, err);
		free(b);
		if (rc) {
			free(next);
			goto out;
		}
		bool more = !tpd_str_empty(next) && !tpd_streq(next, key);
		bool same = !tpd_str_empty(next) && tpd_streq(next, key);
		free(key);
		key = next;
		if (same) {
			rc = tpd_seterr(err, TPD_ERR_PROTOCOL,
			                "Teleport ListAccessRequests: server repeated page key");
			goto out;
		}
		if (!more || lc.stopped)
			break;
	}
out:
	free(key);
	return rc;
}

tpd_err tpd_teleport_get_plugin_data(tpd_teleport *t, const char *request_id, tpd_plugin_data *out, char *err)
{
	if (tpd_str_empty(request_id))
		return tpd_seterr(err, TPD_ERR_INVAL, "GetPluginData needs a request id");
	if (t->hooks.get_plugin_data)
		return t->hooks.get_plugin_data(t->hooks.ud, request_id, out, err);
	Types__PluginDataFilter f = TYPES__PLUGIN_DATA_FILTER__INIT;
	f.kind = (char *)"access_request";
	f.resource = (char *)request_id;
	f.plugin = (char *)TPD_TELEPORT_PLUGIN_NAME;
	uint8_t *b = NULL;
	size_t n = 0;
	tpd_err rc = tp_unary(t, "GetPluginData", &f.base, &b, &n, err);
	if (rc)
		return rc;
	rc = tpd_teleport_decode_plugin_data(b, n, out, err);
	free(b);
	return rc;
}

tpd_err tpd_teleport_update_plugin_data(tpd_teleport *t, const char *request_id, const tpd_plugin_data *set,
                                        const tpd_plugin_data *expect, char *err)
{
	uint8_t *enc = NULL;
	size_t elen = 0;

	if (t->hooks.update_plugin_data)
		return t->hooks.update_plugin_data(t->hooks.ud, request_id, set, expect, err);
	tpd_err rc = tpd_teleport_encode_plugin_update(request_id, set, expect, &enc, &elen, err);
	if (rc)
		return rc;
	uint8_t *b = NULL;
	size_t n = 0;
	rc = tp_unary_raw(t, "UpdatePluginData", enc, elen, &b, &n, err);
	free(enc);
	free(b);
	return rc;
}

tpd_err tpd_teleport_submit_review(tpd_teleport *t, const char *request_id, const char *reason, char *err)
{
	uint8_t *enc = NULL;
	size_t elen = 0;
	struct timespec now;

	if (t->hooks.submit_review)
		return t->hooks.submit_review(t->hooks.ud, request_id, reason, err);
	/* Created = now with nanoseconds, like Go's time.Now(). */
	clock_gettime(CLOCK_REALTIME, &now);
	tpd_err rc = tpd_teleport_encode_review(request_id, t->author, reason, (int64_t)now.tv_sec,
	                                        (int32_t)now.tv_nsec, &enc, &elen, err);
	if (rc)
		return rc;
	uint8_t *b = NULL;
	size_t n = 0;
	rc = tp_unary_raw(t, "SubmitAccessReview", enc, elen, &b, &n, err);
	free(enc);
	free(b);
	return rc;
}

/* --- watch --------------------------------------------------------------------------------- */

typedef struct {
	tpd_teleport *t;
	tpd_event_cb cb;
	void *ud;
	bool inited;
	int64_t init_deadline;
} watch_ctx;

static const char *op_label(tpd_event_op op)
{
	return op == TPD_EV_INIT ? "init" : op == TPD_EV_PUT ? "put" : "delete";
}

static int watch_msg(void *ud, const uint8_t *b, size_t n, tpd_err *rc, char *err)
{
	watch_ctx *w = ud;
	tpd_event_op op = TPD_EV_INIT;
	tpd_access_request req = {0};
	bool has_req = false;
	char *del = NULL;
	int ret = 0;

	*rc = tpd_teleport_decode_event(b, n, &op, &req, &has_req, &del, err);
	if (*rc) {
		ret = -1;
		goto out;
	}
	tpd_metric_inc(w->t->m_ev, op_label(op));
	if (!w->inited) {
		if (op != TPD_EV_INIT) {
			*rc =
			    tpd_seterr(err, TPD_ERR_UNAVAILABLE,
			               "Teleport watch: unexpected event type %s before INIT", op_label(op));
			ret = -1;
			goto out;
		}
		w->inited = true;
		tpd_metric_set(w->t->m_conn, 1.0);
		tpd_log(w->t->log, TPD_LOG_DEBUG, "Watcher connected", NULL);
	} else if (op == TPD_EV_INIT) {
		goto out; /* a repeated INIT carries nothing for us */
	}
	if (op == TPD_EV_PUT && !has_req)
		goto out; /* another kind or an unknown oneof member */
	if (op == TPD_EV_DELETE && !del)
		goto out;
	tpd_event ev = {.op = op, .request = has_req ? &req : NULL, .deleted_id = del};
	if (w->cb(w->ud, &ev))
		ret = 1;
out:
	tpd_access_request_clear(&req);
	free(del);
	return ret;
}

static int watch_tick(void *ud, tpd_err *rc, char *err)
{
	watch_ctx *w = ud;
	if (w->inited)
		return -1; /* the INIT deadline was all the ticks were for */
	if (tpd_now_ms() > w->init_deadline) {
		*rc = tpd_seterr(err, TPD_ERR_TIMEOUT,
		                 "Teleport watcher initialization timed out (no INIT event within %lld ms)",
		                 (long long)w->t->init_timeout_ms);
		return 1;
	}
	return 0;
}

tpd_err tpd_teleport_watch(tpd_teleport *t, tpd_event_cb cb, void *ud, char *err)
{
	Types__WatchKind k = TYPES__WATCH_KIND__INIT;
	Types__WatchKind *kinds[1] = {&k};
	Proto__Watch req = PROTO__WATCH__INIT;
	k.kind = (char *)"access_request";
	req.n_kinds = 1;
	req.kinds = kinds;
	watch_ctx w = {.t = t, .cb = cb, .ud = ud, .init_deadline = tpd_now_ms() + t->init_timeout_ms};
	stream_spec sp = {
	    .watch = true, .timeout_ms = 0, .on_msg = watch_msg, .on_tick = watch_tick, .ud = &w};
	tpd_err rc = tp_server_stream(t, "WatchEvents", &req.base, &sp, err);
	tpd_metric_set(t->m_conn, 0.0);
	return rc;
}

static void watch_cancel(tpd_teleport *t, int why)
{
	pthread_mutex_lock(&t->wmu);
	if (why == WATCH_STOP)
		t->wstop = true;
	if (t->wcall && t->wreason != WATCH_STOP) {
		t->wreason = why;
		grpc_call_cancel(t->wcall, NULL);
	}
	pthread_mutex_unlock(&t->wmu);
}

void tpd_teleport_watch_stop(tpd_teleport *t)
{
	watch_cancel(t, WATCH_STOP);
}

void tpd_teleport_watch_reconnect(tpd_teleport *t)
{
	watch_cancel(t, WATCH_RECONNECT);
}
