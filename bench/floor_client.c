/* floor_client.c - what one call costs the client libraries themselves, without the plugin.
 *
 * bench/floor.py builds and runs this against the fakes. It makes N calls one after another, the
 * way the plugin's worker does, and prints the client's CPU time per call (getrusage: user +
 * system, this process only; the fakes run in another process):
 *   grpc  - unary GetPluginData (or UpdatePluginData of 10 keys) over mutual TLS with gRPC core, the plugin's
 * channel settings (poll engine, no retries, channelz or BDP probes), one completion queue reused; curl  -
 * POST of a note over a kept-alive HTTPS connection with one reused easy handle, the body fed by a read
 * callback as the plugin does; mix   - the two alternating in a lifecycle's order (5 writes, 4 POSTs), so
 * that each call runs with the other library's code and data in the caches, as in the plugin; tcp   - a bare
 * 300-byte request and answer over loopback TCP (no TLS, no library). Usage: floor_client grpc ADDR CA CERT
 * KEY RID N [update] floor_client curl URL CA API_KEY_FILE N floor_client mix ADDR CA CERT KEY RID N URL CA
 * API_KEY_FILE floor_client tcp PORT N Output: one JSON line
 * {"mode":..,"calls":N,"cpu_us_per_call":..,"failures":..}. Not part of the product; kept short on purpose.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static double cpu_us(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 +
	       (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *b = calloc(1, 1 << 16);
	size_t n = b ? fread(b, 1, (1 << 16) - 1, f) : 0;
	(void)n;
	fclose(f);
	return b;
}

static void report(const char *mode, int n, double us, int failures)
{
	printf("{\"mode\": \"%s\", \"calls\": %d, \"cpu_us_per_call\": %.1f, \"failures\": %d}\n", mode, n,
	       us / n, failures);
}

/* One protobuf string field: tag, length, bytes (all lengths here are below 128). */
static size_t pb_str(unsigned char *p, int field, const char *s)
{
	size_t l = strlen(s);
	p[0] = (unsigned char)(field << 3 | 2);
	p[1] = (unsigned char)l;
	memcpy(p + 2, s, l);
	return l + 2;
}

/* The four ops that start a call: metadata, the request, close, and the answer's metadata. */
static void start_ops(grpc_op ops[4], grpc_byte_buffer *req, grpc_metadata_array *im)
{
	memset(ops, 0, 4 * sizeof(*ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = im;
}

/* A byte buffer per call: gRPC takes the slices of a sent one (as the plugin's calls do too). */
static int one_grpc(grpc_channel *ch, grpc_completion_queue *cq, grpc_slice method, grpc_slice msg)
{
	grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&msg, 1);
	grpc_call *call = grpc_channel_create_call(
	    ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
	    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(10000, GPR_TIMESPAN)), NULL);
	grpc_metadata_array im, tm;
	grpc_metadata_array_init(&im);
	grpc_metadata_array_init(&tm);
	grpc_byte_buffer *resp = NULL;
	grpc_status_code st = GRPC_STATUS_UNKNOWN;
	grpc_slice details;
	grpc_op ops[6];
	start_ops(ops, req, &im);
	memset(ops + 4, 0, 2 * sizeof(*ops));
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &tm;
	ops[5].data.recv_status_on_client.status = &st;
	ops[5].data.recv_status_on_client.status_details = &details;
	grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
	grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_slice_unref(details);
	if (resp)
		grpc_byte_buffer_destroy(resp);
	grpc_metadata_array_destroy(&im);
	grpc_metadata_array_destroy(&tm);
	grpc_call_unref(call);
	grpc_byte_buffer_destroy(req);
	if (st != GRPC_STATUS_OK && getenv("FLOOR_DEBUG"))
		fprintf(stderr, "status %d\n", (int)st);
	return st == GRPC_STATUS_OK ? 0 : 1;
}

typedef struct {
	grpc_channel_credentials *cr;
	grpc_channel *ch;
	grpc_completion_queue *cq;
	grpc_slice method, msg;
	char *pem[3];
} gside;

/* v: ADDR CA CERT KEY RID [update]. GetPluginData(Kind, Resource, Plugin), or with "update"
 * UpdatePluginData of the same resource setting 10 keys of the plugin's sizes (Set = field 4, map
 * entries {1: key, 2: value}). */
static int gside_open(gside *g, char **v, bool update)
{
	setenv("GRPC_POLL_STRATEGY", "poll", 0); /* the plugin's engine (tpd_teleport_process_init) */
	grpc_init();
	for (int i = 0; i < 3; i++)
		if (!(g->pem[i] = slurp(v[1 + i])))
			return 2;
	grpc_ssl_pem_key_cert_pair kp = {.private_key = g->pem[2], .cert_chain = g->pem[1]};
	g->cr = grpc_ssl_credentials_create(g->pem[0], &kp, NULL, NULL);
	grpc_arg args[] = {
	    {.type = GRPC_ARG_STRING,
	     .key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
	     .value.string = "localhost"},
	    {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
	    {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ENABLE_CHANNELZ, .value.integer = 0},
	    {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
	};
	grpc_channel_args ca = {.num_args = 4, .args = args};
	g->ch = grpc_channel_create(v[0], g->cr, &ca);
	g->cq = grpc_completion_queue_create_for_next(NULL);
	unsigned char pb[2048];
	size_t l = pb_str(pb, 1, "access_request");
	l += pb_str(pb + l, 2, v[4]);
	l += pb_str(pb + l, 3, "pagerduty");
	static const char *const kv[][2] = {{"user", "requester-0001@example.com"},
	                                    {"roles", "editor"},
	                                    {"created", "1764849600"},
	                                    {"resolution", ""},
	                                    {"resolve_reason", ""},
	                                    {"incident_id", "Q1A2B3C4D5E6F7"},
	                                    {"reviews_count", "1"},
	                                    {"service_id", "P9X8Y7Z"},
	                                    {"request_reason", "deploying the fix"},
	                                    {"pd_resolved", ""}};
	for (size_t i = 0; update && i < sizeof(kv) / sizeof(kv[0]); i++) {
		unsigned char e[256];
		size_t el = pb_str(e, 1, kv[i][0]);
		el += pb_str(e + el, 2, kv[i][1]);
		pb[l++] = 4 << 3 | 2;
		pb[l++] = (unsigned char)el;
		memcpy(pb + l, e, el);
		l += el;
	}
	g->msg = grpc_slice_from_copied_buffer((const char *)pb, l);
	g->method = grpc_slice_from_static_string(update ? "/proto.AuthService/UpdatePluginData"
	                                                 : "/proto.AuthService/GetPluginData");
	return 0;
}

static void gside_close(gside *g)
{
	grpc_slice_unref(g->msg);
	grpc_channel_destroy(g->ch);
	grpc_completion_queue_shutdown(g->cq);
	while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(g->cq);
	grpc_channel_credentials_release(g->cr);
	grpc_shutdown();
	for (int i = 0; i < 3; i++)
		free(g->pem[i]);
}

typedef struct {
	CURL *h;
	CURLSH *sh;
	char auth[512];
	const char *url, *ca;
} cside;

typedef struct {
	const char *p;
	size_t left;
} body;

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
	body *b = ud;
	size_t w = size * n < b->left ? size * n : b->left;
	memcpy(buf, b->p, w);
	b->p += w;
	b->left -= w;
	return w;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)ud, (void)a, (void)b, (void)c, (void)d;
	return 0;
}

/* v: URL CA API_KEY_FILE. The plugin's options (src/base/http.c): a share for connections, TLS
 * sessions and DNS, the cancel callback, timeouts, the body through a read callback. */
static int cside_open(cside *c, char **v)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	char *key = slurp(v[2]);
	if (!key)
		return 2;
	key[strcspn(key, "\r\n")] = '\0';
	snprintf(c->auth, sizeof(c->auth), "Authorization: Token token=%s", key);
	free(key);
	c->url = v[0];
	c->ca = v[1];
	c->h = curl_easy_init();
	c->sh = curl_share_init();
	curl_share_setopt(c->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(c->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	return c->h && c->sh ? 0 : 2;
}

static int one_curl(cside *c)
{
	static const char json[] = "{\"note\":{\"content\":\"floor probe\"}}";
	struct curl_slist *hd = NULL;
	hd = curl_slist_append(hd, c->auth);
	hd = curl_slist_append(hd, "Accept: application/vnd.pagerduty+json;version=2");
	hd = curl_slist_append(hd, "Content-Type: application/json");
	hd = curl_slist_append(hd, "From: bot@example.com");
	hd = curl_slist_append(hd, "Expect:");
	body b = {json, sizeof(json) - 1};
	CURL *h = c->h;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SHARE, c->sh);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &b);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b.left);
	long code = 0;
	CURLcode cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hd);
	if (code / 100 == 2)
		return 0;
	if (getenv("FLOOR_DEBUG"))
		fprintf(stderr, "curl %d, HTTP %ld\n", (int)cc, code);
	return 1;
}

static void cside_close(cside *c)
{
	curl_easy_cleanup(c->h);
	curl_share_cleanup(c->sh);
	curl_global_cleanup();
}

/* A watch on access requests (WatchEvents, Watch{Kinds: [{Kind: "access_request"}]}): prints
 * "ready" after the INIT event, then receives n events (floor.py creates the requests) one
 * message per batch, as the plugin's watcher does. */
static int run_watch(char **v, int n)
{
	gside g = {0};
	int fails = 0;
	if (gside_open(&g, v, false))
		return 2;
	static const unsigned char watch[] = "\x0a\x10\x0a\x0e"
	                                     "access_request";
	grpc_slice ws = grpc_slice_from_static_buffer(watch, sizeof(watch) - 1);
	grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&ws, 1);
	grpc_call *call =
	    grpc_channel_create_call(g.ch, NULL, GRPC_PROPAGATE_DEFAULTS, g.cq,
	                             grpc_slice_from_static_string("/proto.AuthService/WatchEvents"), NULL,
	                             gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_metadata_array im;
	grpc_metadata_array_init(&im);
	grpc_op ops[4];
	start_ops(ops, req, &im);
	grpc_call_start_batch(call, ops, 4, (void *)1, NULL);
	grpc_completion_queue_next(g.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	double t0 = 0;
	for (int i = -1; i < n; i++) { /* i == -1: the INIT event */
		grpc_byte_buffer *msg = NULL;
		grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
		op.data.recv_message.recv_message = &msg;
		grpc_call_start_batch(call, &op, 1, (void *)2, NULL);
		grpc_event ev = grpc_completion_queue_next(g.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (!ev.success || !msg) {
			fails += n - i;
			break;
		}
		grpc_byte_buffer_destroy(msg);
		if (i == -1) {
			printf("ready\n");
			fflush(stdout);
			t0 = cpu_us();
		}
	}
	report("watch", n, cpu_us() - t0, fails);
	grpc_call_cancel(call, NULL);
	grpc_call_unref(call);
	grpc_byte_buffer_destroy(req);
	grpc_metadata_array_destroy(&im);
	gside_close(&g);
	return 0;
}

static int run_grpc(char **v, int n, bool update)
{
	gside g = {0};
	int fails = 0;
	if (gside_open(&g, v, update))
		return 2;
	for (int i = 0; i < 20; i++) /* connect and warm up */
		fails += one_grpc(g.ch, g.cq, g.method, g.msg);
	double t0 = cpu_us();
	for (int i = 0; i < n; i++)
		fails += one_grpc(g.ch, g.cq, g.method, g.msg);
	report(update ? "grpc-update" : "grpc", n, cpu_us() - t0, fails);
	gside_close(&g);
	return 0;
}

static int run_curl(char **v, int n)
{
	cside c = {0};
	int fails = 0;
	if (cside_open(&c, v))
		return 2;
	for (int i = 0; i < 20; i++)
		fails += one_curl(&c);
	double t0 = cpu_us();
	for (int i = 0; i < n; i++)
		fails += one_curl(&c);
	report("curl", n, cpu_us() - t0, fails);
	cside_close(&c);
	return 0;
}

/* A lifecycle's order of calls, n times: write, POST, write, POST, write, POST, write, POST,
 * write (5 UpdatePluginData, 4 POSTs); the figure is per call. */
static int run_mix(char **gv, char **cv, int n)
{
	gside g = {0};
	cside c = {0};
	int fails = 0;
	if (gside_open(&g, gv, true) || cside_open(&c, cv))
		return 2;
	for (int i = 0; i < 20; i++)
		fails += one_grpc(g.ch, g.cq, g.method, g.msg) + one_curl(&c);
	double t0 = cpu_us();
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 9; k++)
			fails += k % 2 ? one_curl(&c) : one_grpc(g.ch, g.cq, g.method, g.msg);
	report("mix", n * 9, cpu_us() - t0, fails);
	cside_close(&c);
	gside_close(&g);
	return 0;
}

static int run_tcp(char **v)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(v[0]))};
	a.sin_addr.s_addr = htonl(0x7f000001);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		return 2;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char b[512] = {0};
	int n = atoi(v[1]), fails = 0;
	double t0 = cpu_us();
	for (int i = 0; i < n; i++) {
		if (send(s, b, 300, 0) != 300)
			fails++;
		struct pollfd p = {.fd = s, .events = POLLIN};
		poll(&p, 1, -1);
		for (ssize_t got = 0; got < 300;) {
			ssize_t k = recv(s, b, sizeof(b), 0);
			if (k <= 0) {
				fails++;
				break;
			}
			got += k;
		}
	}
	report("tcp", n, cpu_us() - t0, fails);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 8 && strcmp(argv[1], "grpc") == 0)
		return run_grpc(argv + 2, atoi(argv[7]), argc >= 9 && strcmp(argv[8], "update") == 0);
	if (argc >= 6 && strcmp(argv[1], "curl") == 0)
		return run_curl(argv + 2, atoi(argv[5]));
	if (argc >= 11 && strcmp(argv[1], "mix") == 0)
		return run_mix(argv + 2, argv + 8, atoi(argv[7]));
	if (argc >= 8 && strcmp(argv[1], "watch") == 0)
		return run_watch(argv + 2, atoi(argv[7]));
	if (argc >= 4 && strcmp(argv[1], "tcp") == 0)
		return run_tcp(argv + 2);
	fprintf(stderr, "usage: see the comment at the top of floor_client.c\n");
	return 2;
}
