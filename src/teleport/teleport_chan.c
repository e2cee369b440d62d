/* teleport_chan.c - the Teleport client's channels: PEM checks, gRPC credentials, the direct path
 * (gRPC's own mTLS) and the TLS-routing path (src/teleport/tlsdial.c), reference-counted replacement when
 * the identity rotates; and connecting: the paths in order, Ping retried within each. See
 * teleport_impl.h and docs/teleport-wire.md §3. */
#include "teleport_impl.h"

void tpd_ping_info_clear(tpd_ping_info *p)
{
	if (!p)
		return;
	free(p->cluster_name);
	free(p->server_version);
	free(p->proxy_public_addr);
	memset(p, 0, sizeof(*p));
}

/* gRPC core logs to stderr by itself; its failures reach us through call statuses instead, so its
 * own lines are dropped unless the operator asked for them with GRPC_VERBOSITY/GRPC_TRACE. */
void tp_grpc_log_drop(gpr_log_func_args *args)
{
	(void)args;
}

/* Checks that the PEMs parse and that key and certificate belong together. Never quotes them. */
tpd_err tp_check_pems(const char *key_pem, const char *cert_pem, const char *ca_pem, char *err)
{
	tpd_err rc = TPD_ERR_OK;
	EVP_PKEY *key = NULL;
	X509 *crt = NULL, *ca = NULL;

	if (tpd_str_empty(key_pem) || tpd_str_empty(cert_pem) || tpd_str_empty(ca_pem)) {
		rc = tpd_seterr(
		    err, TPD_ERR_INVAL,
		    "Teleport credentials need a client key, a client certificate and the cluster CA");
		goto out;
	}
	if (strlen(key_pem) > MAX_PEM || strlen(cert_pem) > MAX_PEM || strlen(ca_pem) > MAX_PEM) {
		rc = tpd_seterr(err, TPD_ERR_TOO_LARGE, "Teleport credentials are larger than %d bytes",
		                MAX_PEM);
		goto out;
	}
	key = tpd_pem_read_key(key_pem, strlen(key_pem));
	if (!key) {
		rc = tpd_seterr(err, TPD_ERR_PARSE,
		                "the client private key is not a readable unencrypted PEM key");
		goto out;
	}
	crt = tpd_pem_read_cert(cert_pem, strlen(cert_pem));
	if (!crt) {
		rc = tpd_seterr(err, TPD_ERR_PARSE,
		                "the client certificate is not a readable PEM certificate");
		goto out;
	}
	if (X509_check_private_key(crt, key) != 1) {
		rc = tpd_seterr(err, TPD_ERR_INVAL, "the client certificate does not match the private key");
		goto out;
	}
	ca = tpd_pem_read_cert(ca_pem, strlen(ca_pem));
	if (!ca) {
		rc = tpd_seterr(err, TPD_ERR_PARSE, "the cluster CA is not a readable PEM certificate");
		goto out;
	}
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(crt);
	X509_free(ca);
	return rc;
}

/* Channel arguments both paths share: keepalive never below Teleport's 60 s minimum, pings
 * allowed while idle, the receive limit; and no gRPC-level retries, channelz or BDP probes, which
 * cost CPU on every call or message (metadata copies, counters, a PING and its answer per read)
 * for nothing here: the controller retries a failed pass itself, with back-off, nothing reads
 * channelz, and the messages are a few KiB, far below any flow-control window. */
#define CHANNEL_COMMON_ARGS                                                                                  \
	{.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},              \
	    {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ENABLE_CHANNELZ, .value.integer = 0},         \
	    {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},         \
	    {.type = GRPC_ARG_INTEGER,                                                                       \
	     .key = (char *)GRPC_ARG_KEEPALIVE_TIME_MS,                                                      \
	     .value.integer = KEEPALIVE_TIME_MS},                                                            \
	    {.type = GRPC_ARG_INTEGER,                                                                       \
	     .key = (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS,                                                   \
	     .value.integer = KEEPALIVE_TIMEOUT_MS},                                                         \
	    {.type = GRPC_ARG_INTEGER,                                                                       \
	     .key = (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,                                         \
	     .value.integer = 1},                                                                            \
	    {.type = GRPC_ARG_INTEGER,                                                                       \
	     .key = (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,                                           \
	     .value.integer = 0},                                                                            \
	{                                                                                                    \
		.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,                \
		.value.integer = TPD_TELEPORT_MAX_MSG                                                        \
	}

chan *tp_chan_create(tpd_teleport *t, const char *key_pem, const char *cert_pem, const char *ca_pem)
{
	chan *c = tpd_new(chan);
	grpc_ssl_pem_key_cert_pair kp = {.private_key = key_pem, .cert_chain = cert_pem};
	/* grpc copies the PEMs. */
	c->creds = grpc_ssl_credentials_create(ca_pem, &kp, NULL, NULL);
	char ua[64];
	snprintf(ua, sizeof(ua), "teleport-pagerduty/%s", TPD_VERSION);
	grpc_arg args[] = {
	    {.type = GRPC_ARG_STRING,
	     .key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
	     .value.string = (char *)TPD_TELEPORT_API_DOMAIN},
	    CHANNEL_COMMON_ARGS,
	    {.type = GRPC_ARG_INTEGER,
	     .key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
	     .value.integer = 100},
	    {.type = GRPC_ARG_INTEGER,
	     .key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
	     .value.integer = 2000},
	    {.type = GRPC_ARG_INTEGER,
	     .key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
	     .value.integer = 10000},
	    /* A fresh connection per channel, so rotated credentials are really presented. */
	    {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
	    {.type = GRPC_ARG_STRING, .key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING, .value.string = ua},
	};
	grpc_channel_args ca = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
	c->ch = grpc_channel_create(t->addr, c->creds, &ca);
	c->wch = grpc_channel_create(t->addr, c->creds, &ca);
	c->refs = 1;
	return c;
}

static void chan_destroy(chan *c)
{
	if (c->wch)
		grpc_channel_destroy(c->wch);
	if (c->ch)
		grpc_channel_destroy(c->ch);
	if (c->creds)
		grpc_channel_credentials_release(c->creds);
	tpd_tlsdial_free(c->dial); /* after the channel: the pump then sees gRPC's EOF */
	free(c);
}

/* Builds an identity from PEM strings (key, cert, CAs in identity-file order). */
tpd_err tp_identity_from_pems(const char *key_pem, const char *cert_pem, const char *ca_pem,
                              tpd_identity **out, char *err)
{
	char *text = xasprintf("%s\n%s\n%s\n", key_pem, cert_pem, ca_pem);
	tpd_err rc = tpd_identity_parse("teleport credentials", text, strlen(text), out, err);
	explicit_bzero(text, strlen(text));
	free(text);
	return rc;
}

chan *tp_chan_placeholder(void)
{
	chan *c = tpd_new(chan);
	c->routing = true;
	c->refs = 1;
	return c;
}

/* Dials the routing path and wraps it in an fd channel. */
static tpd_err chan_dial(tpd_teleport *t, chan **out, char *err)
{
	tpd_tlsdial_opts o = {.addr = t->addr,
	                      .id = t->id,
	                      .tls_routing = true,
	                      .cluster_name = t->cluster,
	                      .timeout_ms = t->call_timeout_ms};
	tpd_tlsdial *d = NULL;
	int fd = -1;
	tpd_err rc = tpd_tlsdial_connect(&o, &d, &fd, err);
	if (rc)
		return rc;
	chan *c = tpd_new(chan);
	c->routing = true;
	c->dial = d;
	c->creds = grpc_insecure_credentials_create();
	grpc_arg args[] = {
	    {.type = GRPC_ARG_STRING,
	     .key = (char *)GRPC_ARG_DEFAULT_AUTHORITY,
	     .value.string = (char *)TPD_TELEPORT_API_DOMAIN},
	    CHANNEL_COMMON_ARGS,
	};
	grpc_channel_args ca = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
	c->ch = grpc_channel_create_from_fd("tls-routing", fd, c->creds, &ca);
	c->refs = 1;
	tpd_log(t->log, TPD_LOG_INFO, "Connected to Teleport", "addr", t->addr, "path", "tls-routing", "alpn",
	        tpd_tlsdial_alpn(d), NULL);
	*out = c;
	return TPD_ERR_OK;
}

static bool chan_usable(const chan *c)
{
	return !c->routing || (c->ch && tpd_tlsdial_alive(c->dial));
}

/* The channel for a new call; on the routing path a dead or missing connection is re-dialled. */
tpd_err tp_chan_get(tpd_teleport *t, chan **out, char *err)
{
	pthread_mutex_lock(&t->mu);
	chan *c = t->cur;
	if (chan_usable(c)) {
		c->refs++;
		pthread_mutex_unlock(&t->mu);
		*out = c;
		return TPD_ERR_OK;
	}
	pthread_mutex_unlock(&t->mu);

	pthread_mutex_lock(&t->dmu);
	pthread_mutex_lock(&t->mu);
	c = t->cur;
	if (chan_usable(c)) { /* another thread re-dialled meanwhile */
		c->refs++;
		pthread_mutex_unlock(&t->mu);
		pthread_mutex_unlock(&t->dmu);
		*out = c;
		return TPD_ERR_OK;
	}
	pthread_mutex_unlock(&t->mu);
	chan *n = NULL;
	tpd_err rc = chan_dial(t, &n, err);
	if (rc) {
		pthread_mutex_unlock(&t->dmu);
		return rc;
	}
	pthread_mutex_lock(&t->mu);
	chan *old = t->cur;
	n->gen = ++t->gen;
	n->refs++; /* the caller's */
	t->cur = n;
	pthread_mutex_unlock(&t->mu);
	pthread_mutex_unlock(&t->dmu);
	tp_chan_release(t, old);
	*out = n;
	return TPD_ERR_OK;
}

void tp_chan_release(tpd_teleport *t, chan *c)
{
	pthread_mutex_lock(&t->mu);
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&t->mu);
	if (last)
		chan_destroy(c);
}

/* --- driving a reconnect ---------------------------------------------------------------------- */

/* Waits until ch is READY (or SHUTDOWN, or the deadline, or a stop), watching its state on cq. */
static grpc_connectivity_state drive_channel(tpd_teleport *t, grpc_channel *ch, grpc_completion_queue *cq,
                                             int64_t deadline)
{
	bool stop = false;
	/* Watching the state with a completion queue makes this thread poll the channel's sockets
	 * while it waits, so the connection attempt advances at once. */
	grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);

	while (st != GRPC_CHANNEL_READY && st != GRPC_CHANNEL_SHUTDOWN && !stop) {
		int64_t left = deadline - tpd_now_ms();

		if (left <= 0)
			break;
		grpc_channel_watch_connectivity_state(
		    ch, st,
		    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
		                 gpr_time_from_millis(left < 200 ? left : 200, GPR_TIMESPAN)),
		    cq, NULL);
		grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		st = grpc_channel_check_connectivity_state(ch, 1);
		pthread_mutex_lock(&t->wmu);
		stop = t->wstop;
		pthread_mutex_unlock(&t->wmu);
	}
	return st;
}

bool tpd_teleport_await_ready(tpd_teleport *t, int64_t timeout_ms)
{
	char err[TPD_ERRLEN];
	chan *c = NULL;
	grpc_connectivity_state st = GRPC_CHANNEL_READY;

	if (tp_chan_get(t, &c, err))
		return false;
	if (!c->routing && c->ch) {
		grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
		int64_t deadline = tpd_now_ms() + timeout_ms;

		if (c->wch) /* starts the watch channel's connection too; both reach the same server */
			grpc_channel_check_connectivity_state(c->wch, 1);
		st = drive_channel(t, c->ch, cq, deadline);
		if (st == GRPC_CHANNEL_READY && c->wch)
			st = drive_channel(t, c->wch, cq, deadline);
		grpc_completion_queue_shutdown(cq);
		while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
		       GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(cq);
	}
	tp_chan_release(t, c);
	return st == GRPC_CHANNEL_READY;
}

/* --- connecting: the paths in order, Ping retried within each -------------------------------- */

static bool plain_wait(void *ud, int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	(void)ud;
	nanosleep(&ts, NULL);
	return false;
}

/* The server answered: the path works even if the answer is a refusal. */
static bool answered(tpd_err rc)
{
	return !rc || rc == TPD_ERR_CONFIG || rc == TPD_ERR_ACCESS_DENIED;
}

tpd_err tpd_teleport_connect(tpd_teleport_opts *o, int64_t timeout_ms, tpd_teleport_wait_fn wait,
                             void *wait_ud, tpd_teleport **out, tpd_ping_info *ping, char *err)
{
	tpd_teleport_path order[2] = {TPD_TELEPORT_PATH_DIRECT, TPD_TELEPORT_PATH_ROUTING};
	int n_paths = 2;
	tpd_teleport *t = NULL;
	tpd_err rc = TPD_ERR_UNAVAILABLE;
	tpd_logger *lg = o->log;
	char addr[256] = "";

	*out = NULL;
	memset(ping, 0, sizeof(*ping));
	if (!wait)
		wait = plain_wait;
	switch (tpd_tlsdial_choose_path(tpd_str_empty(o->addr) ? DEFAULT_ADDR : o->addr)) {
	case TPD_TLSPATH_ROUTING_FIRST:
		order[0] = TPD_TELEPORT_PATH_ROUTING;
		order[1] = TPD_TELEPORT_PATH_DIRECT;
		break;
	case TPD_TLSPATH_DIRECT_FIRST:
		break;
	default:
		n_paths = 1;
		break;
	}
	tpd_log(lg, TPD_LOG_DEBUG, "Checking Teleport server version", NULL);
	for (int i = 0; i < n_paths; i++) {
		int64_t deadline = tpd_now_ms() + timeout_ms / n_paths, backoff = 0;

		tpd_teleport_free(t);
		t = NULL;
		o->path = order[i];
		if ((rc = tpd_teleport_new(o, &t, err)))
			return rc;
		snprintf(addr, sizeof(addr), "%s", tpd_teleport_addr(t));
		for (;;) {
			rc = tpd_teleport_ping(t, ping, err);
			if (answered(rc) || tpd_now_ms() >= deadline)
				break;
			tpd_ping_info_clear(ping);
			backoff = tpd_backoff_decorr(100, 2000, backoff);
			/* Drive the connection during the back-off (fail-fast calls do not), then wait
			 * out what is left of it. */
			int64_t t0 = tpd_now_ms();
			tpd_teleport_await_ready(t, backoff);
			int64_t left = backoff - (tpd_now_ms() - t0);
			if (wait(wait_ud, left > 0 ? left : 0)) {
				tpd_teleport_free(t);
				return tpd_seterr(err, TPD_ERR_CANCELLED,
				                  "stopped while connecting to Teleport");
			}
		}
		if (answered(rc))
			break;
		if (i + 1 < n_paths)
			tpd_log(lg, TPD_LOG_WARN, "Teleport path failed, trying the other one", "addr", addr,
			        "path", tpd_teleport_path_name(t), "error", err, NULL);
	}
	if (rc) {
		char inner[TPD_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", err);
		tpd_seterr(err, rc, "Unable to get Teleport server version from %s: %s", addr, inner);
		tpd_ping_info_clear(ping);
		tpd_teleport_free(t);
		return rc;
	}
	tpd_log(lg, TPD_LOG_INFO, "Connected to Teleport", "addr", addr, "path", tpd_teleport_path_name(t),
	        "cluster", ping->cluster_name, "server_version", ping->server_version, NULL);
	*out = t;
	return TPD_ERR_OK;
}
