/* status.c - /healthz, /readyz and /metrics over HTTP/1.1, served by libwebsockets on its own thread.
 *
 * Threading: the lws context is created on the caller's thread (tpd_status_new binds the port so
 * that a port in use is reported at start-up), then used only by the status thread, which loops
 * in lws_service until `stop` is set. Other threads touch the server only through atomics, the
 * check list (a short mutex) and lws_cancel_service, the one thread-safe lws call. Checks and the
 * metrics render run on the status thread and must not block.
 *
 * Each response is built completely in LWS_CALLBACK_HTTP (status, headers and body in one heap
 * buffer with LWS_PRE bytes of headroom) and written in chunks from LWS_CALLBACK_HTTP_WRITEABLE.
 *
 * Hostile clients: lws caps the sockets (fd_limit_per_thread), the header bytes per request
 * (max_http_header_data), the time to deliver a request (timeout_secs_ah_idle, which is not
 * renewed by trickled bytes) and idle keep-alive time. Any method other than GET/HEAD gets 405
 * and the connection is closed, so an unread request body can never be taken for a request. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "tpd/status.h"
#include "tpd/util.h"

#define REASON_MAX      256
#define HEADER_ROOM     512
#define CHUNK           16384
#define METRICS_MAX     (32u << 20)
#define CHECKS_BODY_MAX (256u << 10)

typedef struct {
	char *name;
	bool readiness;
	tpd_status_check_fn fn;
	void *ud;
} check;

struct tpd_status {
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	struct lws_protocols protocols[2];
	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_bool shutting_down;
	pthread_mutex_t mu; /* guards the check list */
	check *checks;
	size_t n_checks, cap_checks;
	tpd_metrics *metrics;
	tpd_metric *requests;
	tpd_logger *lg;
	tpd_status_limits limits;
	char host[INET6_ADDRSTRLEN + 1];
	char display[300];
	int port;
};

/* Per-connection state: the response being written. */
typedef struct {
	unsigned char *buf; /* LWS_PRE headroom, then headers and body */
	size_t len;         /* bytes after the headroom */
	size_t off;         /* bytes already written */
	bool close;         /* close the connection after this response */
} pss;

/* --- listen address ---------------------------------------------------------------------------- */

tpd_err tpd_status_parse_addr(const char *addr, char *host, size_t host_len, int *port, char *err)
{
	const char *colon, *h, *p;
	size_t hlen;
	long v = 0;
	const char *fix = "use HOST:PORT, :PORT for all interfaces or [IPV6]:PORT, for example \":8081\"";

	if (tpd_str_empty(addr))
		return tpd_seterr(err, TPD_ERR_CONFIG, "status listen address is empty: %s", fix);
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return tpd_seterr(err, TPD_ERR_CONFIG, "bad status listen address \"%s\": %s", addr,
			                  fix);
		h = addr + 1;
		hlen = (size_t)(close - h);
		p = close + 2;
		if (hlen == 0)
			return tpd_seterr(err, TPD_ERR_CONFIG,
			                  "bad status listen address \"%s\": empty IPv6 address; %s", addr,
			                  fix);
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return tpd_seterr(err, TPD_ERR_CONFIG,
			                  "bad status listen address \"%s\": no port; %s", addr, fix);
		if (memchr(addr, ':', (size_t)(colon - addr)))
			return tpd_seterr(
			    err, TPD_ERR_CONFIG,
			    "bad status listen address \"%s\": IPv6 addresses need brackets; %s", addr, fix);
		h = addr;
		hlen = (size_t)(colon - addr);
		p = colon + 1;
	}
	if (*p == '\0' || strlen(p) > 5)
		return tpd_seterr(err, TPD_ERR_CONFIG,
		                  "bad status listen address \"%s\": port must be 0-65535; %s", addr, fix);
	for (const char *q = p; *q; q++) {
		if (*q < '0' || *q > '9')
			return tpd_seterr(err, TPD_ERR_CONFIG,
			                  "bad status listen address \"%s\": port must be 0-65535; %s", addr,
			                  fix);
		v = v * 10 + (*q - '0');
	}
	if (v > 65535)
		return tpd_seterr(err, TPD_ERR_CONFIG,
		                  "bad status listen address \"%s\": port must be 0-65535; %s", addr, fix);
	if (hlen + 1 > host_len)
		return tpd_seterr(err, TPD_ERR_CONFIG, "bad status listen address \"%s\": host name too long",
		                  addr);
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c <= ' ' || c >= 127 || c == '/' || c == '[' || c == ']')
			return tpd_seterr(err, TPD_ERR_CONFIG,
			                  "bad status listen address \"%s\": bad host; %s", addr, fix);
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)v;
	return TPD_ERR_OK;
}

/* Resolves host to a numeric address (numeric_len >= INET6_ADDRSTRLEN) and its family. An empty
 * host means all interfaces: "" and AF_INET6 when the kernel has IPv6 (dual stack), else AF_INET. */
static tpd_err resolve_host(const char *addr, const char *host, char *numeric, size_t numeric_len,
                            int *family, char *err)
{
	struct addrinfo hints = {0}, *res = NULL;
	int rc;

	if (host[0] == '\0') {
		int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

		*family = fd >= 0 ? AF_INET6 : AF_INET;
		if (fd >= 0)
			close(fd);
		numeric[0] = '\0';
		return TPD_ERR_OK;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res)
		return tpd_seterr(
		    err, TPD_ERR_CONFIG,
		    "status listen address \"%s\": cannot resolve host \"%s\" (%s); use an IP address "
		    "of this machine or leave the host out to listen on all interfaces",
		    addr, host, gai_strerror(rc));
	*family = res->ai_family;
	rc = getnameinfo(res->ai_addr, res->ai_addrlen, numeric, (socklen_t)numeric_len, NULL, 0,
	                 NI_NUMERICHOST);
	freeaddrinfo(res);
	if (rc != 0)
		return tpd_seterr(err, TPD_ERR_CONFIG, "status listen address \"%s\": %s", addr,
		                  gai_strerror(rc));
	return TPD_ERR_OK;
}

/* Binds (and releases) a socket on the address, so that the usual mistakes get a clear message
 * before lws, which would only log them, tries the same. */
static tpd_err probe_bind(const char *addr, const char *numeric, int family, int port, char *err)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd = -1, one = 1;
	tpd_err e = TPD_ERR_OK;

	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_any;
		if (numeric[0] && inet_pton(AF_INET6, numeric, &s6->sin6_addr) != 1)
			return tpd_seterr(err, TPD_ERR_CONFIG,
			                  "status listen address \"%s\": bad IPv6 address", addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		if (numeric[0] && inet_pton(AF_INET, numeric, &s4->sin_addr) != 1)
			return tpd_seterr(err, TPD_ERR_CONFIG,
			                  "status listen address \"%s\": bad IPv4 address", addr);
		sl = sizeof(*s4);
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = tpd_seterr(err, TPD_ERR_IO, "status listen address \"%s\": cannot create a socket: %s",
		               addr, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) == 0)
		goto out;
	if (errno == EADDRINUSE)
		e = tpd_seterr(
		    err, TPD_ERR_EXISTS,
		    "status listen address \"%s\": port %d is already in use by another process; stop it "
		    "or set [status] listen_addr to a free port",
		    addr, port);
	else if (errno == EACCES)
		e = tpd_seterr(
		    err, TPD_ERR_ACCESS_DENIED,
		    "status listen address \"%s\": no permission to bind port %d; use a port above 1023 "
		    "or grant CAP_NET_BIND_SERVICE",
		    addr, port);
	else if (errno == EADDRNOTAVAIL)
		e = tpd_seterr(
		    err, TPD_ERR_CONFIG,
		    "status listen address \"%s\": %s is not an address of this machine; use one of its "
		    "addresses or \":%d\" for all interfaces",
		    addr, numeric, port);
	else
		e = tpd_seterr(err, TPD_ERR_IO, "status listen address \"%s\": bind failed: %s", addr,
		               strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	return e;
}

/* --- responses --------------------------------------------------------------------------------- */

/* Copies a check's reason into b as one printable line. */
static void put_reason(tpd_buf *b, const char *r)
{
	size_t n = 0;

	for (const char *p = r; *p && n < REASON_MAX; p++, n++) {
		char c = (unsigned char)*p < ' ' || *p == 127 ? ' ' : *p;

		tpd_buf_append(b, &c, 1);
	}
}

/* Runs the checks of one kind (or only the one named `only`) into body; returns the HTTP code, or
 * 404 when `only` names no check. */
static int run_checks(tpd_status *s, bool readiness, const char *only, bool verbose, tpd_buf *body)
{
	const char *kind = readiness ? "readyz" : "healthz";
	bool all_ok = true, found = false;
	tpd_buf lines;

	tpd_buf_init(&lines, CHECKS_BODY_MAX);
	if (readiness && atomic_load(&s->shutting_down) && (!only || strcmp(only, "shutdown") == 0)) {
		tpd_buf_puts(&lines, "[-]shutdown failed: shutting down\n");
		all_ok = false;
		found = true;
	}
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_checks; i++) {
		const check *c = &s->checks[i];
		char reason[REASON_MAX + 1] = "";
		bool ok;

		if (c->readiness != readiness || (only && strcmp(only, c->name) != 0))
			continue;
		found = true;
		ok = c->fn(c->ud, reason, sizeof(reason));
		reason[REASON_MAX] = '\0';
		if (ok) {
			if (verbose)
				tpd_buf_printf(&lines, "[+]%s ok\n", c->name);
			continue;
		}
		all_ok = false;
		tpd_buf_printf(&lines, "[-]%s failed", c->name);
		if (reason[0]) {
			tpd_buf_puts(&lines, ": ");
			put_reason(&lines, reason);
		}
		tpd_buf_puts(&lines, "\n");
	}
	pthread_mutex_unlock(&s->mu);
	if (only && !found) {
		tpd_buf_printf(body, "no such %s check: ", kind);
		put_reason(body, only);
		tpd_buf_puts(body, "\n");
		tpd_buf_free(&lines);
		return 404;
	}
	if (all_ok && !verbose) {
		tpd_buf_puts(body, "ok");
	} else {
		tpd_buf_append(body, lines.data ? lines.data : "", lines.len);
		tpd_buf_printf(body, "%s check %s\n", kind, all_ok ? "passed" : "failed");
	}
	tpd_buf_free(&lines);
	if (all_ok)
		return 200;
	return readiness ? 503 : 500;
}

static bool query_has_verbose(struct lws *wsi)
{
	char frag[64];

	for (int i = 0; i < 16; i++) {
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0)
			break;
		if (strcmp(frag, "verbose") == 0 || strncmp(frag, "verbose=", 8) == 0)
			return true;
	}
	return false;
}

static const char *handler_name(const char *path)
{
	if (strcmp(path, "/metrics") == 0)
		return "metrics";
	if (strcmp(path, "/healthz") == 0 || strncmp(path, "/healthz/", 9) == 0)
		return "healthz";
	if (strcmp(path, "/readyz") == 0 || strncmp(path, "/readyz/", 8) == 0)
		return "readyz";
	return "other";
}

/* Builds the response into ps->buf (headers via lws helpers, then the body) and returns 0, or -1
 * when the headers could not be built (the connection is then closed). */
static int build_response(struct lws *wsi, pss *ps, int code, const char *ctype, const tpd_buf *body,
                          bool head, bool close_after)
{
	size_t blen = body->len;
	unsigned char *start, *p, *end;
	char lenbuf[24];

	free(ps->buf);
	ps->buf = xmalloc(LWS_PRE + HEADER_ROOM + blen);
	ps->off = 0;
	ps->close = close_after;
	start = p = ps->buf + LWS_PRE;
	end = start + HEADER_ROOM - 1;
	snprintf(lenbuf, sizeof(lenbuf), "%zu", blen);
	if (lws_add_http_header_status(wsi, (unsigned int)code, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)ctype,
	                                 (int)strlen(ctype), &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (const unsigned char *)lenbuf,
	                                 (int)strlen(lenbuf), &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
	                                (const unsigned char *)"no-store", 8, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
	                                (const unsigned char *)"nosniff", 7, &p, end))
		return -1;
	if (code == 405 && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
	                                               (const unsigned char *)"GET, HEAD", 9, &p, end))
		return -1;
	if (close_after && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
	                                                (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (lws_finalize_http_header(wsi, &p, end))
		return -1;
	ps->len = (size_t)(p - start);
	if (!head && blen) {
		memcpy(p, body->data, blen);
		ps->len += blen;
	}
	return 0;
}

static int handle_request(tpd_status *s, struct lws *wsi, pss *ps, const char *path)
{
	bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	bool head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
	const char *text = "text/plain; charset=utf-8";
	const char *ctype = text;
	const char *handler = handler_name(path);
	char codebuf[8];
	tpd_buf body;
	int code;
	bool close_after = false;

	tpd_buf_init(&body, 0);
	if (!get && !head) {
		code = 405;
		close_after = true;
		tpd_buf_puts(&body, "method not allowed: use GET or HEAD\n");
	} else if (strcmp(path, "/metrics") == 0) {
		tpd_buf mb;

		tpd_buf_init(&mb, METRICS_MAX);
		if (tpd_metrics_render_to(s->metrics, &mb)) {
			code = 200;
			ctype = "text/plain; version=0.0.4; charset=utf-8";
			tpd_buf_free(&body);
			body = mb;
		} else {
			tpd_buf_free(&mb);
			code = 500;
			tpd_buf_puts(&body, "metrics exposition too large\n");
		}
	} else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
		code = run_checks(s, path[1] == 'r', NULL, query_has_verbose(wsi), &body);
	} else if (strncmp(path, "/healthz/", 9) == 0 && path[9]) {
		code = run_checks(s, false, path + 9, query_has_verbose(wsi), &body);
	} else if (strncmp(path, "/readyz/", 8) == 0 && path[8]) {
		code = run_checks(s, true, path + 8, query_has_verbose(wsi), &body);
	} else {
		code = 404;
		tpd_buf_puts(&body, "404 page not found: try /healthz, /readyz or /metrics\n");
	}
	snprintf(codebuf, sizeof(codebuf), "%d", code);
	tpd_metric_inc(s->requests, handler, codebuf);
	if (tpd_logger_enabled(s->lg, TPD_LOG_DEBUG))
		tpd_log(s->lg, TPD_LOG_DEBUG, "Status request", "handler", handler, "code", codebuf, NULL);
	code = build_response(wsi, ps, code, ctype, &body, head, close_after);
	tpd_buf_free(&body);
	if (code < 0)
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static void pss_release(pss *ps)
{
	if (!ps)
		return;
	free(ps->buf);
	ps->buf = NULL;
	ps->len = ps->off = 0;
}

/* Answers an Upgrade request with 400 and closes; returns what CONFIRM_UPGRADE expects (1 = we
 * answered, -1 = hang up). The answer is small enough to go out in one write. */
static int reject_upgrade(struct lws *wsi)
{
	static const char body[] = "protocol upgrades are not supported: use plain HTTP/1.1\n";
	unsigned char buf[LWS_PRE + HEADER_ROOM + sizeof(body)];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = start + HEADER_ROOM - 1;
	tpd_status *s = lws_context_user(lws_get_context(wsi));

	tpd_metric_inc(s ? s->requests : NULL, "other", "400");
	if (lws_add_http_header_status(wsi, 400, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
	                                 (const unsigned char *)"text/plain; charset=utf-8", 25, &p, end) ||
	    lws_add_http_header_content_length(wsi, sizeof(body) - 1, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
	                                (const unsigned char *)"no-store", 8, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p,
	                                 end) ||
	    lws_finalize_http_header(wsi, &p, end))
		return -1;
	memcpy(p, body, sizeof(body) - 1);
	p += sizeof(body) - 1;
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < (int)(p - start))
		return -1;
	return 1;
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	pss *ps = user;
	tpd_status *s;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		s = lws_context_user(lws_get_context(wsi));
		if (!ps || !s)
			return -1;
		{
			char path[256];
			size_t n = len < sizeof(path) - 1 ? len : sizeof(path) - 1;

			memcpy(path, in ? in : "", in ? n : 0);
			path[in ? n : 0] = '\0';
			return handle_request(s, wsi, ps, path);
		}
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* No WebSocket, no h2c: an upgraded connection would escape the HTTP timeouts. */
		return reject_upgrade(wsi);
	case LWS_CALLBACK_HTTP_BODY:
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return 0; /* bodies are ignored; a request with one got 405 and the connection closes */
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		size_t n;
		bool last;

		if (!ps || !ps->buf)
			return 0;
		n = ps->len - ps->off;
		last = n <= CHUNK;
		if (!last)
			n = CHUNK;
		/* The LWS_PRE bytes before each chunk are headroom or bytes already sent. */
		if (lws_write(wsi, ps->buf + LWS_PRE + ps->off, n,
		              last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
			return -1;
		ps->off += n;
		if (!last) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		{
			bool close_after = ps->close;

			pss_release(ps);
			if (close_after)
				return -1;
		}
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		pss_release(ps);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* lws messages that any client can trigger at will: logging them would hand an attacker a way to
 * flood the log, so they are dropped (the connection is closed all the same). */
static const char *const client_noise[] = {
    "Ran out of header data space",
    "lws_read_h1: read failed",
    "Unknown method",
    "hit fd limit",
};

/* lws logs (errors and warnings only) as logfmt lines on stderr; lws offers no per-context hook
 * in 4.1, and a stateless sink keeps the module free of global state. */
static void lws_emit(int level, const char *line)
{
	char out[640], ts[40];
	size_t n = 0;
	int k;

	for (size_t i = 0; i < sizeof(client_noise) / sizeof(client_noise[0]); i++)
		if (strstr(line, client_noise[i]))
			return;
	tpd_format_rfc3339(tpd_wall_ms(), ts, sizeof(ts));
	k = snprintf(out, sizeof(out), "ts=%s level=%s msg=\"", ts, level & LLL_ERR ? "error" : "warn");
	if (k < 0)
		return;
	n = (size_t)k;
	for (const char *p = line; *p && n < sizeof(out) - 40; p++) {
		if (*p == '\n' || *p == '\r')
			continue;
		if (*p == '"' || *p == '\\')
			out[n++] = '\\';
		out[n++] = (unsigned char)*p < ' ' ? ' ' : *p;
	}
	k = snprintf(out + n, sizeof(out) - n, "\" component=libwebsockets\n");
	if (k > 0)
		n += (size_t)k;
	if (n >= sizeof(out))
		n = sizeof(out) - 1;
	if (write(STDERR_FILENO, out, n) < 0)
		return;
}

/* --- lifecycle --------------------------------------------------------------------------------- */

tpd_err tpd_status_new_with_limits(const char *listen_addr, const tpd_status_limits *limits, tpd_metrics *m,
                                   tpd_logger *lg, tpd_status **out, char *err)
{
	struct lws_context_creation_info info;
	struct rlimit rl;
	char host[256];
	int port = 0, family = AF_INET;
	tpd_status *s = NULL;
	tpd_err e;

	if (!out)
		return tpd_seterr(err, TPD_ERR_INVAL, "tpd_status_new: out is NULL");
	*out = NULL;
	e = tpd_status_parse_addr(listen_addr, host, sizeof(host), &port, err);
	if (e)
		goto out;
	s = tpd_new(tpd_status);
	pthread_mutex_init(&s->mu, NULL);
	atomic_init(&s->stop, false);
	atomic_init(&s->shutting_down, false);
	s->metrics = m;
	s->lg = lg;
	s->limits = limits ? *limits : TPD_STATUS_LIMITS_DEFAULT;
	/* The controller needs file descriptors too: never take more than half of them. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    s->limits.max_connections > rl.rlim_cur / 2)
		s->limits.max_connections = (unsigned)(rl.rlim_cur / 2);
	if (s->limits.max_connections < 8)
		s->limits.max_connections = 8;
	if (s->limits.max_header_bytes < 1024)
		s->limits.max_header_bytes = 1024;
	if (s->limits.max_header_bytes > 65535)
		s->limits.max_header_bytes = 65535;
	if (s->limits.header_timeout_s == 0)
		s->limits.header_timeout_s = 5;
	if (s->limits.idle_timeout_s == 0)
		s->limits.idle_timeout_s = 5;
	snprintf(s->display, sizeof(s->display), "%s", listen_addr);
	e = resolve_host(listen_addr, host, s->host, sizeof(s->host), &family, err);
	if (e)
		goto out;
	e = probe_bind(listen_addr, s->host, family, port, err);
	if (e)
		goto out;
	s->requests = tpd_metrics_counter(m, TPD_METRICS_PREFIX "status_requests_total",
	                                  "HTTP requests served by the status server, by handler and code.",
	                                  "handler,code");

	s->protocols[0] = (struct lws_protocols){"http", cb_http, sizeof(pss), 0, 0, NULL, 0};
	memset(&s->protocols[1], 0, sizeof(s->protocols[1]));
	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = s->host[0] ? s->host : NULL;
	info.protocols = s->protocols;
	info.vhost_name = "tpd-status";
	info.server_string = "teleport-pagerduty";
	info.user = s;
	info.options = family == AF_INET ? LWS_SERVER_OPTION_DISABLE_IPV6 : 0;
	info.fd_limit_per_thread = s->limits.max_connections + 2; /* plus the listener and the cancel pipe */
	info.max_http_header_data = (unsigned short)s->limits.max_header_bytes;
	info.max_http_header_pool =
	    (unsigned short)(s->limits.max_connections > 65535 ? 65535 : s->limits.max_connections);
	info.timeout_secs = s->limits.header_timeout_s;
	info.timeout_secs_ah_idle = s->limits.header_timeout_s;
	info.keepalive_timeout = (int)s->limits.idle_timeout_s;
	info.pt_serv_buf_size = 8192;
	info.gid = -1;
	info.uid = -1;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
	s->ctx = lws_create_context(&info);
	if (!s->ctx) {
		e = tpd_seterr(
		    err, TPD_ERR_IO,
		    "status listen address \"%s\": could not start the HTTP server (see the libwebsockets "
		    "error above); check that the port is free",
		    listen_addr);
		goto out;
	}
	s->vhost = lws_get_vhost_by_name(s->ctx, info.vhost_name);
	s->port = s->vhost ? lws_get_vhost_listen_port(s->vhost) : -1;
	if (s->port <= 0) {
		e = tpd_seterr(
		    err, TPD_ERR_IO,
		    "status listen address \"%s\": the HTTP server is not listening (port in use?); set "
		    "[status] listen_addr to a free port",
		    listen_addr);
		goto out;
	}
	*out = s;
	s = NULL;
out:
	tpd_status_free(s);
	return e;
}

tpd_err tpd_status_new(const char *listen_addr, tpd_metrics *m, tpd_logger *lg, tpd_status **out, char *err)
{
	return tpd_status_new_with_limits(listen_addr, NULL, m, lg, out, err);
}

void tpd_status_add_check(tpd_status *s, const char *name, bool readiness, tpd_status_check_fn fn, void *ud)
{
	if (!s || tpd_str_empty(name) || !fn)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->n_checks == s->cap_checks) {
		s->cap_checks = s->cap_checks ? s->cap_checks * 2 : 8;
		s->checks = xreallocarray(s->checks, s->cap_checks, sizeof(*s->checks));
	}
	s->checks[s->n_checks++] = (check){xstrdup(name), readiness, fn, ud};
	pthread_mutex_unlock(&s->mu);
}

static void *status_thread(void *arg)
{
	tpd_status *s = arg;

	while (!atomic_load(&s->stop))
		if (lws_service(s->ctx, 0) < 0)
			break;
	return NULL;
}

tpd_err tpd_status_start(tpd_status *s, char *err)
{
	char portbuf[16];
	int rc;

	if (!s)
		return tpd_seterr(err, TPD_ERR_INVAL, "tpd_status_start: no server");
	if (s->started)
		return TPD_ERR_OK;
	rc = pthread_create(&s->thread, NULL, status_thread, s);
	if (rc != 0)
		return tpd_seterr(err, TPD_ERR_INTERNAL, "status server: cannot start thread: %s",
		                  strerror(rc));
	s->started = true;
	pthread_setname_np(s->thread, "tpd-status");
	snprintf(portbuf, sizeof(portbuf), "%d", s->port);
	tpd_log(s->lg, TPD_LOG_INFO, "Status server listening", "addr", s->display, "port", portbuf, NULL);
	return TPD_ERR_OK;
}

int tpd_status_port(const tpd_status *s)
{
	return s ? s->port : -1;
}

void tpd_status_set_shutting_down(tpd_status *s)
{
	if (!s)
		return;
	atomic_store(&s->shutting_down, true);
}

void tpd_status_free(tpd_status *s)
{
	if (!s)
		return;
	if (s->started) {
		atomic_store(&s->stop, true);
		lws_cancel_service(s->ctx);
		pthread_join(s->thread, NULL);
	}
	if (s->ctx)
		lws_context_destroy(s->ctx);
	for (size_t i = 0; i < s->n_checks; i++)
		free(s->checks[i].name);
	free(s->checks);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* --- heartbeat watchdog ------------------------------------------------------------------------ */

void tpd_status_heartbeat_init(tpd_status_heartbeat *hb, long long max_age_ms)
{
	if (!hb)
		return;
	hb->max_age_ms = max_age_ms > 0 ? max_age_ms : 1;
	atomic_init(&hb->last_ms, (long long)tpd_now_ms());
}

void tpd_status_heartbeat_beat(tpd_status_heartbeat *hb)
{
	if (hb)
		atomic_store(&hb->last_ms, (long long)tpd_now_ms());
}

bool tpd_status_heartbeat_check(void *ud, char *reason, size_t len)
{
	tpd_status_heartbeat *hb = ud;
	long long age;

	if (!hb)
		return true;
	age = (long long)tpd_now_ms() - atomic_load(&hb->last_ms);
	if (age <= hb->max_age_ms)
		return true;
	snprintf(reason, len, "no heartbeat for %llds (limit %llds)", age / 1000,
	         (hb->max_age_ms + 999) / 1000);
	return false;
}
