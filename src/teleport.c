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
 * teleport-auth@<hex(cluster)>.teleport.cluster.local (src/tlsdial.c) and hands the plaintext end
 * to grpc_channel_create_from_fd. Such a channel never reconnects, so before each call a dead one
 * is replaced by a fresh dial (serialised by dmu, outside the main mutex). AUTO picks the path by
 * address like tpd_tlsdial_choose_path (ports 443/3080, teleport.sh hosts → routing); trying the
 * other path when the first fails is the caller's job (controller.c init_teleport). */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "teleport_authservice.pb-c.h"
#include "teleport_types.pb-c.h"

#include "tpd/identity.h"
#include "tpd/pem.h"
#include "tpd/teleport.h"
#include "tpd/tlsdial.h"
#include "tpd/util.h"

#define DEFAULT_ADDR            "localhost:3025"
#define DEFAULT_CALL_TIMEOUT_MS 10000
#define DEFAULT_INIT_TIMEOUT_MS 15000
#define KEEPALIVE_TIME_MS       60000 /* never lower: Teleport's enforcement minimum */
#define KEEPALIVE_TIMEOUT_MS    20000
#define LIST_PAGE_SIZE          256
#define LIST_MAX_PAGES          100000
#define MAX_PEM                 262144
#define METHOD_PREFIX           "/proto.AuthService/"

/* Channel holder; refs and replacement under tpd_teleport.mu. */
typedef struct chan {
	grpc_channel *ch; /* NULL: a routing placeholder not dialled yet */
	grpc_channel_credentials *creds;
	tpd_tlsdial *dial; /* routing path only */
	bool routing;
	int refs;
	unsigned gen;
} chan;

enum { WATCH_RUN = 0, WATCH_STOP = 1, WATCH_RECONNECT = 2 };

struct tpd_teleport {
	char *addr;
	int64_t call_timeout_ms;
	int64_t init_timeout_ms;
	char *author;
	tpd_logger *log;
	tpd_metric *m_req, *m_dur, *m_ev, *m_conn;

	pthread_mutex_t mu;
	chan *cur;
	unsigned gen;
	bool routing;        /* path chosen at creation */
	char *cluster;       /* for the routing ALPN; "" → from the identity */
	pthread_mutex_t dmu; /* serialises routing dials; guards id */
	tpd_identity *id;    /* routing path: current credentials */

	pthread_mutex_t wmu;
	grpc_call *wcall; /* the running watch's call, or NULL */
	bool wactive;
	bool wstop;  /* sticky */
	int wreason; /* why the running watch was cancelled */
};

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
static void grpc_log_drop(gpr_log_func_args *args)
{
	(void)args;
}

/* Checks that the PEMs parse and that key and certificate belong together. Never quotes them. */
static tpd_err check_pems(const char *key_pem, const char *cert_pem, const char *ca_pem, char *err)
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
 * allowed while idle, and the receive limit. */
#define CHANNEL_COMMON_ARGS                                                                                  \
	{.type = GRPC_ARG_INTEGER,                                                                           \
	 .key = (char *)GRPC_ARG_KEEPALIVE_TIME_MS,                                                          \
	 .value.integer = KEEPALIVE_TIME_MS},                                                                \
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

static chan *chan_create(tpd_teleport *t, const char *key_pem, const char *cert_pem, const char *ca_pem)
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
	c->refs = 1;
	return c;
}

static void chan_destroy(chan *c)
{
	if (c->ch)
		grpc_channel_destroy(c->ch);
	if (c->creds)
		grpc_channel_credentials_release(c->creds);
	tpd_tlsdial_free(c->dial); /* after the channel: the pump then sees gRPC's EOF */
	free(c);
}

/* Builds an identity from PEM strings (key, cert, CAs in identity-file order). */
static tpd_err identity_from_pems(const char *key_pem, const char *cert_pem, const char *ca_pem,
                                  tpd_identity **out, char *err)
{
	char *text = xasprintf("%s\n%s\n%s\n", key_pem, cert_pem, ca_pem);
	tpd_err rc = tpd_identity_parse("teleport credentials", text, strlen(text), out, err);
	explicit_bzero(text, strlen(text));
	free(text);
	return rc;
}

static chan *chan_placeholder(void)
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

static void chan_release(tpd_teleport *t, chan *c);

static bool chan_usable(const chan *c)
{
	return !c->routing || (c->ch && tpd_tlsdial_alive(c->dial));
}

/* The channel for a new call; on the routing path a dead or missing connection is re-dialled. */
static tpd_err chan_get(tpd_teleport *t, chan **out, char *err)
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
	chan_release(t, old);
	*out = n;
	return TPD_ERR_OK;
}

static void chan_release(tpd_teleport *t, chan *c)
{
	pthread_mutex_lock(&t->mu);
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&t->mu);
	if (last)
		chan_destroy(c);
}

/* --- lifecycle ----------------------------------------------------------------------------- */

tpd_err tpd_teleport_new(const tpd_teleport_opts *o, tpd_teleport **out, char *err)
{
	*out = NULL;
	if (!o)
		return tpd_seterr(err, TPD_ERR_INVAL, "no Teleport client options");
	tpd_err rc = check_pems(o->key_pem, o->cert_pem, o->ca_pem, err);
	if (rc)
		return rc;

	if (!getenv("GRPC_VERBOSITY") && !getenv("GRPC_TRACE"))
		gpr_set_log_function(grpc_log_drop);
	/* Calls fail fast while the channel is down, so between calls nobody polls the channel's
	 * sockets and a reconnect only advances on gRPC's backup poller, every 5 s per step by
	 * default (a TLS reconnect then takes 10-15 s and may time out on the server). Poll once a
	 * second: a reconnect takes a few seconds, and an idle process is not woken 20 times a second
	 * (at 100 ms gRPC's two timer threads cost 0.28 % of a core while idle; bench/idle.py).
	 * gRPC reads this once, at its first grpc_init(); an operator's value wins. */
	setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "1000", 0);
	grpc_init();

	tpd_teleport *t = tpd_new(tpd_teleport);
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
	if (t->routing) {
		rc = identity_from_pems(o->key_pem, o->cert_pem, o->ca_pem, &t->id, err);
		if (rc) {
			tpd_teleport_free(t);
			return rc;
		}
		t->cur = chan_placeholder(); /* dialled by the first call */
	} else {
		t->cur = chan_create(t, o->key_pem, o->cert_pem, o->ca_pem);
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
		chan_release(t, t->cur);
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
	tpd_err rc = check_pems(key_pem, cert_pem, ca_pem, err);
	if (rc)
		return rc;
	chan *c;
	if (t->routing) {
		tpd_identity *id = NULL;
		rc = identity_from_pems(key_pem, cert_pem, ca_pem, &id, err);
		if (rc)
			return rc;
		/* The next call dials with the new identity; open calls keep the old connection. */
		pthread_mutex_lock(&t->dmu);
		tpd_identity_free(t->id);
		t->id = id;
		c = chan_placeholder();
		pthread_mutex_lock(&t->mu);
		chan *old = t->cur;
		c->gen = ++t->gen;
		t->cur = c;
		pthread_mutex_unlock(&t->mu);
		pthread_mutex_unlock(&t->dmu);
		chan_release(t, old);
		tpd_log(t->log, TPD_LOG_DEBUG, "Teleport client credentials replaced; the next call re-dials",
		        NULL);
		return TPD_ERR_OK;
	}
	c = chan_create(t, key_pem, cert_pem, ca_pem);
	pthread_mutex_lock(&t->mu);
	chan *old = t->cur;
	c->gen = ++t->gen;
	t->cur = c;
	unsigned gen = c->gen;
	pthread_mutex_unlock(&t->mu);
	chan_release(t, old);
	char g[24];
	snprintf(g, sizeof(g), "%u", gen);
	tpd_log(t->log, TPD_LOG_DEBUG, "Teleport client credentials replaced; new calls use a new channel",
	        "channel_generation", g, NULL);
	return TPD_ERR_OK;
}

/* --- calls --------------------------------------------------------------------------------- */

static gpr_timespec deadline_in(int64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_byte_buffer *to_bb(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(n);
	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* Reads a byte buffer into a malloc'ed array (the caller frees). */
static uint8_t *from_bb(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, bb)) {
		*len = 0;
		return NULL;
	}
	grpc_slice all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	*len = GRPC_SLICE_LENGTH(all);
	uint8_t *p = xmalloc(*len ? *len : 1);
	memcpy(p, GRPC_SLICE_START_PTR(all), *len);
	grpc_slice_unref(all);
	return p;
}

/* Copies a status detail text, bounded and with control characters replaced. */
static void details_copy(grpc_slice s, char *dst, size_t cap)
{
	size_t n = GRPC_SLICE_LENGTH(s);
	if (n >= cap)
		n = cap - 1;
	const uint8_t *p = GRPC_SLICE_START_PTR(s);
	for (size_t i = 0; i < n; i++)
		dst[i] = (p[i] < 0x20 || p[i] == 0x7f) ? ' ' : (char)p[i];
	dst[n] = '\0';
}

static void observe(tpd_teleport *t, const char *method, int code, int64_t start_ms)
{
	tpd_metric_inc(t->m_req, method, tpd_teleport_code_name(code));
	tpd_metric_observe(t->m_dur, (double)(tpd_now_ms() - start_ms) / 1000.0, method);
}

static tpd_err status_error(const char *method, int code, const char *details, char *err)
{
	tpd_err e = tpd_teleport_status_err(code, details);
	return tpd_seterr(err, e, "Teleport %s: %s: %s", method, tpd_teleport_code_name(code),
	                  tpd_str_empty(details) ? "(no details)" : details);
}

static void cq_drain_destroy(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
}

/* One call's gRPC resources, from call_open to call_close. */
typedef struct {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *send, *recv;
	grpc_metadata_array md_init, md_trail;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
} call_state;

/* Creates a call to method on its own completion queue; cs takes send. */
static void call_open(call_state *cs, chan *c, const char *method, gpr_timespec deadline,
                      grpc_byte_buffer *send)
{
	memset(cs, 0, sizeof(*cs));
	cs->cq = grpc_completion_queue_create_for_next(NULL);
	char path[96];
	snprintf(path, sizeof(path), METHOD_PREFIX "%s", method);
	grpc_slice pslice = grpc_slice_from_copied_string(path);
	cs->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cs->cq, pslice, NULL,
	                                    deadline, NULL);
	grpc_slice_unref(pslice);
	cs->send = send;
	grpc_metadata_array_init(&cs->md_init);
	grpc_metadata_array_init(&cs->md_trail);
	cs->status = GRPC_STATUS_UNKNOWN;
	cs->details = grpc_empty_slice();
}

/* Frees everything call_open and the call's batches left in cs. */
static void call_close(call_state *cs)
{
	if (cs->recv)
		grpc_byte_buffer_destroy(cs->recv);
	grpc_byte_buffer_destroy(cs->send);
	grpc_slice_unref(cs->details);
	if (cs->error_string)
		gpr_free((void *)cs->error_string);
	grpc_metadata_array_destroy(&cs->md_init);
	grpc_metadata_array_destroy(&cs->md_trail);
	grpc_call_unref(cs->call);
	cq_drain_destroy(cs->cq);
}

/* One unary call with a serialised request. On success resp and resp_len hold the response bytes
 * (caller frees). */
static tpd_err unary_raw(tpd_teleport *t, const char *method, const uint8_t *req, size_t req_len,
                         uint8_t **resp, size_t *resp_len, char *err)
{
	int64_t start = tpd_now_ms();
	chan *c = NULL;
	tpd_err rc = chan_get(t, &c, err);
	if (rc) {
		observe(t, method, GRPC_STATUS_UNAVAILABLE, start);
		return rc;
	}
	grpc_slice rs = grpc_slice_from_copied_buffer((const char *)req, req_len);
	call_state cs;
	call_open(&cs, c, method, deadline_in(t->call_timeout_ms), grpc_raw_byte_buffer_create(&rs, 1));
	grpc_slice_unref(rs);

	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = cs.send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &cs.md_init;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &cs.recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &cs.md_trail;
	ops[5].data.recv_status_on_client.status = &cs.status;
	ops[5].data.recv_status_on_client.status_details = &cs.details;
	ops[5].data.recv_status_on_client.error_string = &cs.error_string;

	grpc_call_error ce = grpc_call_start_batch(cs.call, ops, 6, (void *)1, NULL);
	if (ce != GRPC_CALL_OK) {
		rc =
		    tpd_seterr(err, TPD_ERR_INTERNAL, "Teleport %s: cannot start call (%d)", method, (int)ce);
		cs.status = GRPC_STATUS_INTERNAL;
		goto out;
	}
	/* The call's deadline bounds this wait; the batch always completes. */
	grpc_event ev = grpc_completion_queue_next(cs.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	(void)ev;
	char dtext[400];
	details_copy(cs.details, dtext, sizeof(dtext));
	if (cs.status != GRPC_STATUS_OK) {
		rc = status_error(method, cs.status, dtext, err);
		if (cs.error_string)
			tpd_log(t->log, TPD_LOG_DEBUG, "Teleport call failed", "method", method, "grpc_code",
			        tpd_teleport_code_name(cs.status), "error", cs.error_string, NULL);
		goto out;
	}
	if (!cs.recv) {
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "Teleport %s: OK status without a response message",
		                method);
		goto out;
	}
	*resp = from_bb(cs.recv, resp_len);
	if (!*resp)
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "Teleport %s: unreadable response message", method);
out:
	observe(t, method, cs.status, start);
	call_close(&cs);
	chan_release(t, c);
	return rc;
}

/* One unary call with a protobuf-c request message. */
static tpd_err unary(tpd_teleport *t, const char *method, const ProtobufCMessage *req, uint8_t **resp,
                     size_t *resp_len, char *err)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *b = xmalloc(n ? n : 1);
	protobuf_c_message_pack(req, b);
	tpd_err rc = unary_raw(t, method, b, n, resp, resp_len, err);
	free(b);
	return rc;
}

/* Server-stream message handler: returns 0 to continue, 1 to stop cleanly, -1 to stop with *rc. */
typedef int (*msg_fn)(void *ud, const uint8_t *b, size_t n, tpd_err *rc, char *err);
/* Called about every 200 ms while it returns 0; returns 1 (and fills rc/err) to cancel the stream,
 * -1 when it needs no more calls (the stream then waits for events only: no idle wake-ups). */
typedef int (*tick_fn)(void *ud, tpd_err *rc, char *err);

typedef struct {
	bool watch;         /* register the call for watch_stop/watch_reconnect */
	int64_t timeout_ms; /* 0: no deadline */
	msg_fn on_msg;
	tick_fn on_tick;
	void *ud;
} stream_spec;

static tpd_err server_stream(tpd_teleport *t, const char *method, const ProtobufCMessage *req,
                             const stream_spec *sp, char *err)
{
	bool local_end = false; /* we ended it: rc/err already set */
	int64_t start = tpd_now_ms();
	chan *c = NULL;
	tpd_err rc = chan_get(t, &c, err);
	if (rc) {
		observe(t, method, GRPC_STATUS_UNAVAILABLE, start);
		return rc;
	}
	gpr_timespec dl =
	    sp->timeout_ms > 0 ? deadline_in(sp->timeout_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC);
	call_state cs;
	call_open(&cs, c, method, dl, to_bb(req));
	int pending = 0;
	bool got_status = false;

	if (sp->watch) {
		pthread_mutex_lock(&t->wmu);
		if (t->wactive) {
			pthread_mutex_unlock(&t->wmu);
			rc = tpd_seterr(err, TPD_ERR_INVAL,
			                "a Teleport watch is already running on this client");
			local_end = true;
			grpc_call_cancel(cs.call, NULL);
			goto out;
		}
		t->wactive = true;
		t->wcall = cs.call;
		t->wreason = t->wstop ? WATCH_STOP : WATCH_RUN;
		if (t->wstop)
			grpc_call_cancel(cs.call, NULL);
		pthread_mutex_unlock(&t->wmu);
	}

	grpc_op start_ops[4];
	memset(start_ops, 0, sizeof(start_ops));
	start_ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	start_ops[1].op = GRPC_OP_SEND_MESSAGE;
	start_ops[1].data.send_message.send_message = cs.send;
	start_ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	start_ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	start_ops[3].data.recv_initial_metadata.recv_initial_metadata = &cs.md_init;
	grpc_op st_op;
	memset(&st_op, 0, sizeof(st_op));
	st_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	st_op.data.recv_status_on_client.trailing_metadata = &cs.md_trail;
	st_op.data.recv_status_on_client.status = &cs.status;
	st_op.data.recv_status_on_client.status_details = &cs.details;
	st_op.data.recv_status_on_client.error_string = &cs.error_string;
	grpc_op rd_op;
	memset(&rd_op, 0, sizeof(rd_op));
	rd_op.op = GRPC_OP_RECV_MESSAGE;
	rd_op.data.recv_message.recv_message = &cs.recv;

	if (grpc_call_start_batch(cs.call, start_ops, 4, (void *)1, NULL) == GRPC_CALL_OK)
		pending++;
	if (grpc_call_start_batch(cs.call, &st_op, 1, (void *)2, NULL) == GRPC_CALL_OK)
		pending++;
	if (grpc_call_start_batch(cs.call, &rd_op, 1, (void *)3, NULL) == GRPC_CALL_OK)
		pending++;
	if (pending != 3) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "Teleport %s: cannot start stream", method);
		local_end = true;
		grpc_call_cancel(cs.call, NULL);
	}

	bool ticking = sp->on_tick != NULL;
	while (pending > 0) {
		grpc_event ev = grpc_completion_queue_next(
		    cs.cq, ticking ? deadline_in(200) : gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			int r = !local_end && !got_status && ticking ? sp->on_tick(sp->ud, &rc, err) : 0;
			if (r > 0) {
				local_end = true;
				grpc_call_cancel(cs.call, NULL);
			} else if (r < 0) {
				ticking = false;
			}
			continue;
		}
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		pending--;
		if (ev.tag == (void *)2) {
			got_status = true;
		} else if (ev.tag == (void *)3) {
			if (!ev.success || !cs.recv)
				continue; /* stream over; the status follows */
			size_t n;
			uint8_t *b = from_bb(cs.recv, &n);
			grpc_byte_buffer_destroy(cs.recv);
			cs.recv = NULL;
			int r = local_end
			            ? 1
			            : sp->on_msg(sp->ud, b ? b : (const uint8_t *)"", b ? n : 0, &rc, err);
			free(b);
			if (r != 0 && !local_end) {
				local_end = true;
				if (r > 0) {
					rc = TPD_ERR_OK;
					if (err)
						err[0] = '\0';
				}
				grpc_call_cancel(cs.call, NULL);
			}
			if (!local_end &&
			    grpc_call_start_batch(cs.call, &rd_op, 1, (void *)3, NULL) == GRPC_CALL_OK)
				pending++;
		}
	}

	if (sp->watch) {
		pthread_mutex_lock(&t->wmu);
		int why = t->wreason;
		t->wcall = NULL;
		t->wactive = false;
		pthread_mutex_unlock(&t->wmu);
		if (!local_end && why == WATCH_STOP) {
			local_end = true;
			rc = tpd_seterr(err, TPD_ERR_CANCELLED, "Teleport watch stopped");
		} else if (!local_end && why == WATCH_RECONNECT) {
			local_end = true;
			rc = tpd_seterr(err, TPD_ERR_UNAVAILABLE,
			                "Teleport watch restarted on request (reconnecting)");
		}
	}
	if (!local_end) {
		char dtext[400];
		details_copy(cs.details, dtext, sizeof(dtext));
		if (cs.status != GRPC_STATUS_OK) {
			rc = status_error(method, cs.status, dtext, err);
			if (cs.error_string)
				tpd_log(t->log, TPD_LOG_DEBUG, "Teleport stream failed", "method", method,
				        "grpc_code", tpd_teleport_code_name(cs.status), "error",
				        cs.error_string, NULL);
		} else if (sp->watch) {
			/* A watch never ends by itself: EOF is a broken stream (upstream reconnects). */
			rc = tpd_seterr(err, TPD_ERR_UNAVAILABLE,
			                "Teleport watch stream closed by the server");
		}
	}
out:
	observe(t, method, local_end && rc == TPD_ERR_OK ? GRPC_STATUS_OK : (int)cs.status, start);
	call_close(&cs);
	chan_release(t, c);
	return rc;
}

/* --- RPCs ---------------------------------------------------------------------------------- */

tpd_err tpd_teleport_ping(tpd_teleport *t, tpd_ping_info *out, char *err)
{
	memset(out, 0, sizeof(*out));
	Proto__PingRequest req = PROTO__PING_REQUEST__INIT;
	uint8_t *b = NULL;
	size_t n = 0;
	tpd_err rc = unary(t, "Ping", &req.base, &b, &n, err);
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
	return server_stream(t, "GetAccessRequestsV2", &f.base, &sp, err);
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
		rc = unary(t, "ListAccessRequests", &req.base, &b, &n, err);
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
	Types__PluginDataFilter f = TYPES__PLUGIN_DATA_FILTER__INIT;
	f.kind = (char *)"access_request";
	f.resource = (char *)request_id;
	f.plugin = (char *)TPD_TELEPORT_PLUGIN_NAME;
	uint8_t *b = NULL;
	size_t n = 0;
	tpd_err rc = unary(t, "GetPluginData", &f.base, &b, &n, err);
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
	tpd_err rc = tpd_teleport_encode_plugin_update(request_id, set, expect, &enc, &elen, err);
	if (rc)
		return rc;
	uint8_t *b = NULL;
	size_t n = 0;
	rc = unary_raw(t, "UpdatePluginData", enc, elen, &b, &n, err);
	free(enc);
	free(b);
	return rc;
}

tpd_err tpd_teleport_submit_review(tpd_teleport *t, const char *request_id, const char *reason, char *err)
{
	uint8_t *enc = NULL;
	size_t elen = 0;
	struct timespec now;

	/* Created = now with nanoseconds, like Go's time.Now(). */
	clock_gettime(CLOCK_REALTIME, &now);
	tpd_err rc = tpd_teleport_encode_review(request_id, t->author, reason, (int64_t)now.tv_sec,
	                                        (int32_t)now.tv_nsec, &enc, &elen, err);
	if (rc)
		return rc;
	uint8_t *b = NULL;
	size_t n = 0;
	rc = unary_raw(t, "SubmitAccessReview", enc, elen, &b, &n, err);
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
	tpd_err rc = server_stream(t, "WatchEvents", &req.base, &sp, err);
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
