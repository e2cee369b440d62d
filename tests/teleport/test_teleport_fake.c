/* test_teleport_fake.c - integration tests of the Teleport client (src/teleport/teleport.c) against the
 * fake Teleport (tests/lib/tpdtest/fake_teleport.py) over real gRPC with mutual TLS on loopback.
 *
 * The group setup generates the test PKI (tests/pki/gen.sh, idempotent), spawns the fake as a
 * process (`fake_teleport.py --port 0 --pki-dir DIR`), reads its JSON ready line and then drives
 * it through its HTTP control API (libcurl + json-c) while the client under test talks gRPC.
 * Waiting is always "poll a condition until a deadline", never a bare sleep. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "tpd/teleport.h"
#include "tpd/util.h"

static struct {
	pid_t pid;
	char addr[128];
	char control[128];
	char pki[1024];
	char *key, *crt, *ca, *key2, *crt2, *evil_key, *evil_crt;
	char serial1[32], serial2[32];
} F;

/* --- process and control helpers ---------------------------------------------------------- */

static const char *env_or(const char *k, const char *d)
{
	const char *v = getenv(k);
	return v && *v ? v : d;
}

static char *slurp(const char *name)
{
	char path[1200], err[TPD_ERRLEN];
	snprintf(path, sizeof(path), "%s/%s", F.pki, name);
	char *out = NULL;
	size_t len = 0;
	if (tpd_read_file(path, 1 << 20, &out, &len, err) != 0) {
		fprintf(stderr, "cannot read %s: %s\n", path, err);
		return NULL;
	}
	return out;
}

static void read_serial(const char *name, char *dst, size_t cap)
{
	char *s = slurp("serials.txt");
	dst[0] = '\0';
	if (!s)
		return;
	size_t nl = strlen(name);
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strncmp(line, name, nl) && line[nl] == ' ') {
			const char *v = line + nl + 1;
			while (*v == '0' && v[1])
				v++;
			snprintf(dst, cap, "%s", v);
		}
	}
	free(s);
}

static size_t curl_sink(char *p, size_t sz, size_t n, void *ud)
{
	tpd_buf *b = ud;
	return tpd_buf_append(b, p, sz * n) ? sz * n : 0;
}

/* Calls the control API; returns the HTTP status and the parsed JSON answer (caller puts). */
static long ctl(const char *method, const char *path, const char *body, json_object **out)
{
	CURL *c = curl_easy_init();
	tpd_buf b;
	tpd_buf_init(&b, 16 << 20);
	char url[512];
	snprintf(url, sizeof(url), "%s%s", F.control, path);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	long code = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (out)
		*out = b.data ? json_tokener_parse(b.data) : NULL;
	tpd_buf_free(&b);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return code;
}

static void ctlf(const char *method, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ctlf(const char *method, const char *path, const char *fmt, ...)
{
	char body[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	assert_int_equal(ctl(method, path, body, NULL), 200);
}

static char *create_request(const char *user, const char *extra_json)
{
	char body[2048];
	snprintf(body, sizeof(body),
	         "{\"user\":\"%s\",\"roles\":[\"editor\",\"viewer\"],\"reason\":\"because of\","
	         "\"annotations\":{\"pagerduty_notify_service\":[\"Teleport Notifications\"],"
	         "\"pagerduty_services\":[\"Service 1\",\"Service 2\"]}%s%s}",
	         user, extra_json ? "," : "", extra_json ? extra_json : "");
	json_object *o = NULL;
	assert_int_equal(ctl("POST", "/requests", body, &o), 200);
	json_object *id;
	assert_true(json_object_object_get_ex(o, "id", &id));
	char *s = xstrdup(json_object_get_string(id));
	json_object_put(o);
	return s;
}

/* The recorded calls of one method (JSON array; caller puts). */
static json_object *calls_of(const char *method)
{
	char path[128];
	snprintf(path, sizeof(path), "/calls?method=%s", method);
	json_object *o = NULL;
	assert_int_equal(ctl("GET", path, NULL, &o), 200);
	return o;
}

static const char *last_call_field(json_object *calls, const char *field)
{
	size_t n = json_object_array_length(calls);
	if (n == 0)
		return "";
	json_object *c = json_object_array_get_idx(calls, n - 1), *v;
	return json_object_object_get_ex(c, field, &v) ? json_object_get_string(v) : "";
}

static int group_setup(void **state)
{
	(void)state;
	const char *src = env_or("TPD_SOURCE_DIR", ".");
	const char *build = env_or("TPD_BUILD_DIR", ".");
	snprintf(F.pki, sizeof(F.pki), "%s/teleport-test-pki", build);
	char cmd[2600];
	snprintf(cmd, sizeof(cmd), "'%s/tests/pki/gen.sh' '%s' >/dev/null", src, F.pki);
	if (system(cmd) != 0) {
		fprintf(stderr, "PKI generation failed\n");
		return -1;
	}
	F.key = slurp("client.key");
	F.crt = slurp("client.crt");
	F.ca = slurp("ca.crt");
	F.key2 = slurp("client2.key");
	F.crt2 = slurp("client2.crt");
	F.evil_key = slurp("evil.key");
	F.evil_crt = slurp("evil.crt");
	read_serial("client", F.serial1, sizeof(F.serial1));
	read_serial("client2", F.serial2, sizeof(F.serial2));
	if (!F.key || !F.crt || !F.ca || !F.key2 || !F.crt2 || !F.serial1[0])
		return -1;

	int pfd[2];
	if (pipe(pfd) != 0)
		return -1;
	char fake[1200];
	snprintf(fake, sizeof(fake), "%s/tests/lib/tpdtest/fake_teleport.py", src);
	F.pid = fork();
	if (F.pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl("/usr/bin/python3", "python3", fake, "--port", "0", "--pki-dir", F.pki, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	/* The first start may generate the _pb2 modules: allow some time. */
	char line[2048];
	size_t n = 0;
	int64_t deadline = tpd_now_ms() + 60000;
	while (n < sizeof(line) - 1 && tpd_now_ms() < deadline) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		if (poll(&p, 1, 500) <= 0)
			continue;
		ssize_t r = read(pfd[0], line + n, 1);
		if (r <= 0)
			break;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(pfd[0]);
	json_object *o = json_tokener_parse(line), *v;
	if (!o || !json_object_object_get_ex(o, "addr", &v)) {
		fprintf(stderr, "fake Teleport did not start (got \"%s\")\n", line);
		json_object_put(o);
		return -1;
	}
	snprintf(F.addr, sizeof(F.addr), "%s", json_object_get_string(v));
	json_object_object_get_ex(o, "control_url", &v);
	snprintf(F.control, sizeof(F.control), "%s", json_object_get_string(v));
	json_object_put(o);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (F.pid > 0) {
		kill(F.pid, SIGTERM);
		int st;
		int64_t deadline = tpd_now_ms() + 10000;
		while (waitpid(F.pid, &st, WNOHANG) == 0) {
			if (tpd_now_ms() > deadline) {
				kill(F.pid, SIGKILL);
				waitpid(F.pid, &st, 0);
				break;
			}
			struct timespec ts = {0, 20000000};
			nanosleep(&ts, NULL);
		}
	}
	free(F.key);
	free(F.crt);
	free(F.ca);
	free(F.key2);
	free(F.crt2);
	free(F.evil_key);
	free(F.evil_crt);
	return 0;
}

static tpd_teleport *client_with(tpd_metrics *m, int64_t init_timeout_ms)
{
	char err[TPD_ERRLEN];
	tpd_teleport_opts o = {.addr = F.addr,
	                       .key_pem = F.key,
	                       .cert_pem = F.crt,
	                       .ca_pem = F.ca,
	                       .call_timeout_ms = 5000,
	                       .watch_init_timeout_ms = init_timeout_ms,
	                       .metrics = m};
	tpd_teleport *t = NULL;
	tpd_err rc = tpd_teleport_new(&o, &t, err);
	if (rc)
		fprintf(stderr, "tpd_teleport_new: %s\n", err);
	assert_int_equal(rc, TPD_ERR_OK);
	return t;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* --- watch runner: a thread that records events ------------------------------------------- */

typedef struct {
	tpd_teleport *t;
	pthread_t th;
	pthread_mutex_t mu;
	int n_init, n_put, n_delete;
	char last_put_id[128], last_put_user[128], last_deleted[128];
	size_t last_put_roles, last_put_annotations;
	tpd_request_state last_put_state;
	tpd_err rc;
	char err[TPD_ERRLEN];
	bool done;
	int stop_after_puts; /* 0: never */
} watcher;

static int on_event(void *ud, const tpd_event *ev)
{
	watcher *w = ud;
	pthread_mutex_lock(&w->mu);
	int stop = 0;
	if (ev->op == TPD_EV_INIT)
		w->n_init++;
	else if (ev->op == TPD_EV_PUT) {
		w->n_put++;
		snprintf(w->last_put_id, sizeof(w->last_put_id), "%s", ev->request->id);
		snprintf(w->last_put_user, sizeof(w->last_put_user), "%s", ev->request->user);
		w->last_put_roles = ev->request->n_roles;
		w->last_put_annotations = ev->request->n_annotations;
		w->last_put_state = ev->request->state;
		if (w->stop_after_puts && w->n_put >= w->stop_after_puts)
			stop = 1;
	} else {
		w->n_delete++;
		snprintf(w->last_deleted, sizeof(w->last_deleted), "%s", ev->deleted_id);
	}
	pthread_mutex_unlock(&w->mu);
	return stop;
}

static void *watch_main(void *ud)
{
	watcher *w = ud;
	char err[TPD_ERRLEN] = "";
	tpd_err rc = tpd_teleport_watch(w->t, on_event, w, err);
	pthread_mutex_lock(&w->mu);
	w->rc = rc;
	snprintf(w->err, sizeof(w->err), "%s", err);
	w->done = true;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void watcher_start(watcher *w, tpd_teleport *t)
{
	memset(w, 0, sizeof(*w));
	w->t = t;
	pthread_mutex_init(&w->mu, NULL);
	assert_int_equal(pthread_create(&w->th, NULL, watch_main, w), 0);
}

static void watcher_join(watcher *w)
{
	pthread_join(w->th, NULL);
	pthread_mutex_destroy(&w->mu);
}

/* Polls until pred(w) holds or the deadline passes; returns whether it held. */
static bool wait_for(watcher *w, bool (*pred)(watcher *, const void *), const void *arg, int64_t ms)
{
	int64_t deadline = tpd_now_ms() + ms;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		bool ok = pred(w, arg);
		pthread_mutex_unlock(&w->mu);
		if (ok)
			return true;
		if (tpd_now_ms() > deadline)
			return false;
		nap_ms(10);
	}
}

static bool p_inited(watcher *w, const void *a)
{
	(void)a;
	return w->n_init > 0;
}
static bool p_put_id(watcher *w, const void *a)
{
	return !strcmp(w->last_put_id, (const char *)a);
}
static bool p_deleted(watcher *w, const void *a)
{
	return !strcmp(w->last_deleted, (const char *)a);
}
static bool p_done(watcher *w, const void *a)
{
	(void)a;
	return w->done;
}

static int watchers_open(void)
{
	json_object *o = NULL, *v;
	ctl("GET", "/watchers", NULL, &o);
	int n = o && json_object_object_get_ex(o, "count", &v) ? json_object_get_int(v) : -1;
	json_object_put(o);
	return n;
}

static bool wait_watchers(int n, int64_t ms)
{
	int64_t deadline = tpd_now_ms() + ms;
	while (watchers_open() != n) {
		if (tpd_now_ms() > deadline)
			return false;
		nap_ms(20);
	}
	return true;
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_ping(void **state)
{
	(void)state;
	tpd_metrics *m = tpd_metrics_new();
	tpd_teleport *t = client_with(m, 0);
	tpd_ping_info pi;
	char err[TPD_ERRLEN];
	tpd_err rc = tpd_teleport_ping(t, &pi, err);
	if (rc)
		fprintf(stderr, "ping: %s\n", err);
	assert_int_equal(rc, TPD_ERR_OK);
	assert_string_equal(pi.cluster_name, "example.com");
	assert_string_equal(pi.server_version, "16.4.0");
	assert_string_equal(pi.proxy_public_addr, "teleport.example.com:443");
	assert_true(pi.advanced_workflows);
	tpd_ping_info_clear(&pi);
	tpd_metric *req = tpd_metrics_counter(m, "teleport_pagerduty_grpc_requests_total", "", "method,code");
	assert_true(tpd_metric_value(req, "Ping", "OK") >= 1.0);
	char *text = tpd_metrics_render(m);
	assert_non_null(strstr(text, "teleport_pagerduty_grpc_request_duration_seconds"));
	free(text);

	/* The fake saw our client certificate. */
	json_object *calls = calls_of("Ping");
	assert_string_equal(last_call_field(calls, "serial"), F.serial1);
	assert_string_equal(last_call_field(calls, "cn"), "teleport-plugin");
	json_object_put(calls);

	/* An old server is refused with a clear message. */
	ctlf("POST", "/config", "{\"server_version\":\"6.0.3\",\"advanced_workflows\":false}");
	rc = tpd_teleport_ping(t, &pi, err);
	assert_int_equal(rc, TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "6.0.3"));
	assert_non_null(strstr(err, "6.1.0"));
	assert_false(pi.advanced_workflows);
	tpd_ping_info_clear(&pi);
	ctlf("POST", "/config", "{\"server_version\":\"16.4.0\",\"advanced_workflows\":true}");
	tpd_teleport_free(t);
	tpd_metrics_free(m);
}

static void test_wrong_client_cert(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	tpd_teleport_opts o = {.addr = F.addr,
	                       .key_pem = F.evil_key,
	                       .cert_pem = F.evil_crt,
	                       .ca_pem = F.ca,
	                       .call_timeout_ms = 3000};
	tpd_teleport *t = NULL;
	assert_int_equal(tpd_teleport_new(&o, &t, err), TPD_ERR_OK);
	tpd_ping_info pi;
	tpd_err rc = tpd_teleport_ping(t, &pi, err);
	assert_int_equal(rc, TPD_ERR_UNAVAILABLE);
	assert_non_null(strstr(err, "Ping"));
	tpd_ping_info_clear(&pi);
	tpd_teleport_free(t);

	/* Mismatched key and certificate never reach the network. */
	tpd_teleport_opts bad = {.addr = F.addr, .key_pem = F.key2, .cert_pem = F.crt, .ca_pem = F.ca};
	assert_int_equal(tpd_teleport_new(&bad, &t, err), TPD_ERR_INVAL);
	assert_null(strstr(err, "PRIVATE KEY"));
	tpd_teleport_opts garbage = {.addr = F.addr, .key_pem = "nope", .cert_pem = F.crt, .ca_pem = F.ca};
	assert_int_equal(tpd_teleport_new(&garbage, &t, err), TPD_ERR_PARSE);
}

static void test_watch_events(void **state)
{
	(void)state;
	tpd_metrics *m = tpd_metrics_new();
	tpd_teleport *t = client_with(m, 0);
	watcher w;
	watcher_start(&w, t);
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	tpd_metric *conn = tpd_metrics_gauge(m, "teleport_pagerduty_watch_connected", "", NULL);
	assert_true(tpd_metric_value(conn) == 1.0);

	char *id = create_request("requester@example.com", NULL);
	assert_true(wait_for(&w, p_put_id, id, 10000));
	pthread_mutex_lock(&w.mu);
	assert_string_equal(w.last_put_user, "requester@example.com");
	assert_int_equal(w.last_put_roles, 2);
	assert_int_equal(w.last_put_annotations, 2);
	assert_int_equal(w.last_put_state, TPD_STATE_PENDING);
	pthread_mutex_unlock(&w.mu);

	/* A review by someone else: another PUT, now APPROVED. */
	char path[256];
	snprintf(path, sizeof(path), "/requests/%s/review", id);
	ctlf("POST", path,
	     "{\"author\":\"reviewer1@example.com\",\"state\":\"APPROVED\",\"reason\":\"okay\"}");
	int64_t deadline = tpd_now_ms() + 10000;
	for (;;) {
		pthread_mutex_lock(&w.mu);
		bool ok = w.n_put >= 2 && w.last_put_state == TPD_STATE_APPROVED;
		pthread_mutex_unlock(&w.mu);
		if (ok)
			break;
		assert_true(tpd_now_ms() < deadline);
		nap_ms(10);
	}

	snprintf(path, sizeof(path), "/requests/%s", id);
	assert_int_equal(ctl("DELETE", path, NULL, NULL), 200);
	assert_true(wait_for(&w, p_deleted, id, 10000));

	tpd_metric *ev = tpd_metrics_counter(m, "teleport_pagerduty_watch_events_total", "", "op");
	assert_true(tpd_metric_value(ev, "init") == 1.0);
	assert_true(tpd_metric_value(ev, "put") >= 2.0);
	assert_true(tpd_metric_value(ev, "delete") == 1.0);

	tpd_teleport_watch_stop(t);
	assert_true(wait_for(&w, p_done, NULL, 10000));
	assert_int_equal(w.rc, TPD_ERR_CANCELLED);
	watcher_join(&w);
	assert_true(tpd_metric_value(conn) == 0.0);
	/* Stop is sticky: a later watch returns at once. */
	char err[TPD_ERRLEN];
	assert_int_equal(tpd_teleport_watch(t, on_event, &w, err), TPD_ERR_CANCELLED);
	free(id);
	tpd_teleport_free(t);
	tpd_metrics_free(m);
}

static void test_watch_callback_stop(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	watcher w;
	watcher_start(&w, t);
	w.stop_after_puts = 1;
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	char *id = create_request("cbstop@example.com", NULL);
	assert_true(wait_for(&w, p_done, NULL, 10000));
	assert_int_equal(w.rc, TPD_ERR_OK);
	watcher_join(&w);
	free(id);
	tpd_teleport_free(t);
}

static void drop_and_expect(const char *mode)
{
	tpd_teleport *t = client_with(NULL, 0);
	assert_true(wait_watchers(0, 10000));
	watcher w;
	watcher_start(&w, t);
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	assert_true(wait_watchers(1, 10000));
	char body[64];
	snprintf(body, sizeof(body), "{\"drop_streams\":\"%s\"}", mode);
	assert_int_equal(ctl("POST", "/faults", body, NULL), 200);
	assert_true(wait_for(&w, p_done, NULL, 15000));
	if (w.rc != TPD_ERR_UNAVAILABLE)
		fprintf(stderr, "drop %s: %s (%s)\n", mode, tpd_errname(w.rc), w.err);
	assert_int_equal(w.rc, TPD_ERR_UNAVAILABLE);
	assert_true(w.err[0] != '\0');
	watcher_join(&w);

	/* And the next watch works again. */
	watcher_start(&w, t);
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	tpd_teleport_watch_stop(t);
	assert_true(wait_for(&w, p_done, NULL, 10000));
	watcher_join(&w);
	tpd_teleport_free(t);
}

static void test_stream_drop_abort(void **state)
{
	(void)state;
	drop_and_expect("abort");
}

static void test_stream_drop_eof(void **state)
{
	(void)state;
	drop_and_expect("eof");
}

static void test_stream_drop_reset(void **state)
{
	(void)state;
	drop_and_expect("reset");
}

static void test_watch_init_timeout(void **state)
{
	(void)state;
	ctlf("POST", "/faults", "{\"init_delay\":3}");
	tpd_teleport *t = client_with(NULL, 500);
	char err[TPD_ERRLEN];
	int64_t start = tpd_now_ms();
	watcher w;
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	tpd_err rc = tpd_teleport_watch(t, on_event, &w, err);
	int64_t took = tpd_now_ms() - start;
	ctlf("POST", "/faults", "{\"init_delay\":0}");
	assert_int_equal(rc, TPD_ERR_TIMEOUT);
	assert_non_null(strstr(err, "initialization timed out"));
	assert_true(took < 2500);
	pthread_mutex_destroy(&w.mu);
	tpd_teleport_free(t);
}

typedef struct {
	int n;
	char ids[64][64];
} id_list;

static int collect(void *ud, const tpd_access_request *r)
{
	id_list *l = ud;
	if (l->n < 64)
		snprintf(l->ids[l->n], sizeof(l->ids[0]), "%s", r->id);
	l->n++;
	return 0;
}

static bool listed(const id_list *l, const char *id)
{
	for (int i = 0; i < l->n && i < 64; i++)
		if (!strcmp(l->ids[i], id))
			return true;
	return false;
}

static void test_list_paging_and_fallback(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	char *ids[7];
	for (int i = 0; i < 7; i++)
		ids[i] = create_request("lister@example.com", NULL);
	json_object *before = calls_of("ListAccessRequests");
	size_t nb = json_object_array_length(before);
	json_object_put(before);

	ctlf("POST", "/config", "{\"list_page_cap\":3}");
	id_list l = {0};
	char err[TPD_ERRLEN];
	tpd_err rc = tpd_teleport_list_requests(t, collect, &l, err);
	if (rc)
		fprintf(stderr, "list: %s\n", err);
	assert_int_equal(rc, TPD_ERR_OK);
	for (int i = 0; i < 7; i++)
		assert_true(listed(&l, ids[i]));
	json_object *after = calls_of("ListAccessRequests");
	size_t pages = json_object_array_length(after) - nb;
	json_object_put(after);
	assert_true(pages >= 3); /* at least ceil(7/3) pages */
	assert_int_equal(pages, (size_t)(l.n + 2) / 3);

	/* Fallback to GetAccessRequestsV2 on UNIMPLEMENTED. */
	ctlf("POST", "/config", "{\"list_unimplemented\":true}");
	id_list l2 = {0};
	rc = tpd_teleport_list_requests(t, collect, &l2, err);
	ctlf("POST", "/config", "{\"list_unimplemented\":false,\"list_page_cap\":0}");
	assert_int_equal(rc, TPD_ERR_OK);
	assert_int_equal(l2.n, l.n);
	for (int i = 0; i < 7; i++)
		assert_true(listed(&l2, ids[i]));
	json_object *v2 = calls_of("GetAccessRequestsV2");
	assert_true(json_object_array_length(v2) >= 1);
	json_object_put(v2);
	for (int i = 0; i < 7; i++)
		free(ids[i]);
	tpd_teleport_free(t);
}

static void test_plugin_data_cas(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	char *id = create_request("cas@example.com", NULL);
	char err[TPD_ERRLEN];
	tpd_plugin_data got, a, b;
	memset(&got, 0, sizeof(got));
	assert_int_equal(tpd_teleport_get_plugin_data(t, id, &got, err), TPD_ERR_NOT_FOUND);

	tpd_plugin_data_init(&a);
	tpd_plugin_data_set(&a, "incident_id", "INCIDENT1");
	tpd_plugin_data_set(&a, "service_id", "SERVICE1");
	tpd_plugin_data_set(&a, "user", "cas@example.com");
	tpd_plugin_data_set(&a, "roles", "editor,viewer");
	tpd_plugin_data_set(&a, "created", "1622554037");
	assert_int_equal(tpd_teleport_update_plugin_data(t, id, &a, NULL, err), TPD_ERR_OK);
	assert_int_equal(tpd_teleport_get_plugin_data(t, id, &got, err), TPD_ERR_OK);
	assert_true(tpd_plugin_data_equal(&got, &a));
	tpd_plugin_data_clear(&got);

	/* Expecting "nothing stored" again now fails, as in Teleport. */
	assert_int_equal(tpd_teleport_update_plugin_data(t, id, &a, NULL, err), TPD_ERR_COMPARE_FAILED);
	assert_non_null(strstr(err, "expectations not met"));

	/* A correct expectation succeeds. */
	tpd_plugin_data_init(&b);
	tpd_plugin_data_copy(&b, &a);
	tpd_plugin_data_set(&b, "reviews_count", "1");
	assert_int_equal(tpd_teleport_update_plugin_data(t, id, &b, &a, err), TPD_ERR_OK);

	/* A concurrent writer changes the data: our stale expectation fails, a retry with fresh data
	 * succeeds (the reconciler's loop). */
	char path[256];
	snprintf(path, sizeof(path), "/requests/%s/plugin_data", id);
	ctlf("PUT", path,
	     "{\"incident_id\":\"INCIDENT1\",\"service_id\":\"SERVICE1\",\"reviews_count\":\"2\"}");
	tpd_plugin_data c;
	tpd_plugin_data_init(&c);
	tpd_plugin_data_copy(&c, &b);
	tpd_plugin_data_set(&c, "resolution", "approved");
	assert_int_equal(tpd_teleport_update_plugin_data(t, id, &c, &b, err), TPD_ERR_COMPARE_FAILED);
	assert_int_equal(tpd_teleport_get_plugin_data(t, id, &got, err), TPD_ERR_OK);
	assert_string_equal(got.reviews_count, "2");
	assert_string_equal(got.user, "");
	assert_int_equal(tpd_teleport_update_plugin_data(t, id, &c, &got, err), TPD_ERR_OK);
	tpd_plugin_data_clear(&got);
	json_object *pd = NULL, *v;
	assert_int_equal(ctl("GET", path, NULL, &pd), 200);
	assert_true(json_object_object_get_ex(pd, "resolution", &v));
	assert_string_equal(json_object_get_string(v), "approved");
	json_object_put(pd);

	/* Unknown request: NOT_FOUND. */
	assert_int_equal(
	    tpd_teleport_update_plugin_data(t, "00000000-0000-0000-0000-000000000000", &a, NULL, err),
	    TPD_ERR_NOT_FOUND);
	tpd_plugin_data_clear(&a);
	tpd_plugin_data_clear(&b);
	tpd_plugin_data_clear(&c);
	free(id);
	tpd_teleport_free(t);
}

static void test_review(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	char err[TPD_ERRLEN];
	/* Threshold 1: our approval resolves it. */
	char *id = create_request("rev@example.com", NULL);
	tpd_err rc = tpd_teleport_submit_review(
	    t, id, "Access requested by user rev (rev@example.com) who is on call", err);
	if (rc)
		fprintf(stderr, "review: %s\n", err);
	assert_int_equal(rc, TPD_ERR_OK);
	char path[256];
	json_object *r = NULL, *v;
	snprintf(path, sizeof(path), "/requests/%s", id);
	assert_int_equal(ctl("GET", path, NULL, &r), 200);
	json_object_object_get_ex(r, "state", &v);
	assert_string_equal(json_object_get_string(v), "APPROVED");
	json_object *revs;
	json_object_object_get_ex(r, "reviews", &revs);
	assert_int_equal(json_object_array_length(revs), 1);
	json_object *rv0 = json_object_array_get_idx(revs, 0);
	json_object_object_get_ex(rv0, "author", &v);
	assert_string_equal(json_object_get_string(v), "teleport-plugin"); /* filled by the server */
	json_object_object_get_ex(rv0, "created", &v);
	assert_true(llabs((long long)json_object_get_int64(v) - (long long)(tpd_wall_ms() / 1000)) < 60);
	json_object_put(r);
	/* What went on the wire: APPROVED, empty annotations submessage, a real Created. */
	json_object *calls = calls_of("SubmitAccessReview"), *req, *review;
	json_object *last = json_object_array_get_idx(calls, json_object_array_length(calls) - 1);
	assert_true(json_object_object_get_ex(last, "request", &req));
	assert_true(json_object_object_get_ex(req, "Review", &review));
	assert_true(json_object_object_get_ex(review, "ProposedState", &v));
	assert_string_equal(json_object_get_string(v), "APPROVED");
	assert_true(json_object_object_get_ex(review, "Annotations", &v));
	assert_true(json_object_object_get_ex(review, "Created", &v));
	json_object_put(calls);

	/* A second review by the same author: ALREADY_REVIEWED (the reconciler treats it as done). */
	assert_int_equal(tpd_teleport_submit_review(t, id, "again", err), TPD_ERR_ALREADY_REVIEWED);
	assert_non_null(strstr(err, "has already reviewed this request"));
	free(id);

	/* Threshold 2: still pending after ours. */
	id = create_request("rev2@example.com",
	                    "\"thresholds\":[{\"name\":\"two\",\"approve\":2,\"deny\":2}]");
	assert_int_equal(tpd_teleport_submit_review(t, id, "on call", err), TPD_ERR_OK);
	snprintf(path, sizeof(path), "/requests/%s", id);
	assert_int_equal(ctl("GET", path, NULL, &r), 200);
	json_object_object_get_ex(r, "state", &v);
	assert_string_equal(json_object_get_string(v), "PENDING");
	json_object_put(r);
	free(id);

	/* Unknown request. */
	assert_int_equal(tpd_teleport_submit_review(t, "no-such-request", "x", err), TPD_ERR_NOT_FOUND);
	tpd_teleport_free(t);
}

static void test_credentials_swap_during_watch(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	assert_true(wait_watchers(0, 10000));
	watcher w;
	watcher_start(&w, t);
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	json_object *wc = calls_of("WatchEvents");
	assert_string_equal(last_call_field(wc, "serial"), F.serial1);
	json_object_put(wc);

	char err[TPD_ERRLEN];
	assert_int_equal(tpd_teleport_set_credentials(t, F.key2, F.crt2, F.ca, err), TPD_ERR_OK);
	/* Bad credentials are refused and change nothing. */
	assert_int_equal(tpd_teleport_set_credentials(t, F.key, F.crt2, F.ca, err), TPD_ERR_INVAL);

	tpd_ping_info pi;
	assert_int_equal(tpd_teleport_ping(t, &pi, err), TPD_ERR_OK);
	tpd_ping_info_clear(&pi);
	json_object *pc = calls_of("Ping");
	assert_string_equal(last_call_field(pc, "serial"), F.serial2);
	json_object_put(pc);

	/* The open watch keeps running on the old channel. */
	char *id = create_request("rotation@example.com", NULL);
	assert_true(wait_for(&w, p_put_id, id, 10000));
	pthread_mutex_lock(&w.mu);
	assert_false(w.done);
	pthread_mutex_unlock(&w.mu);

	/* Asking it to reconnect moves it to the new certificate. */
	tpd_teleport_watch_reconnect(t);
	assert_true(wait_for(&w, p_done, NULL, 10000));
	assert_int_equal(w.rc, TPD_ERR_UNAVAILABLE);
	watcher_join(&w);
	watcher_start(&w, t);
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	wc = calls_of("WatchEvents");
	assert_string_equal(last_call_field(wc, "serial"), F.serial2);
	json_object_put(wc);
	tpd_teleport_watch_stop(t);
	assert_true(wait_for(&w, p_done, NULL, 10000));
	watcher_join(&w);
	free(id);
	tpd_teleport_free(t);
}

static void test_refused_then_recovers(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	char err[TPD_ERRLEN];
	tpd_ping_info pi;
	ctlf("POST", "/faults", "{\"refuse_seconds\":2}");
	tpd_err rc = tpd_teleport_ping(t, &pi, err);
	tpd_ping_info_clear(&pi);
	assert_int_equal(rc, TPD_ERR_UNAVAILABLE);
	/* Ping until the fake accepts again; between pings the caller drives the reconnect (as the
	 * watcher and tpd_teleport_connect do: gRPC's backup poller is slow on purpose). */
	int64_t deadline = tpd_now_ms() + 15000;
	do {
		tpd_teleport_await_ready(t, 100);
		rc = tpd_teleport_ping(t, &pi, err);
		tpd_ping_info_clear(&pi);
	} while (rc != TPD_ERR_OK && tpd_now_ms() < deadline);
	if (rc)
		fprintf(stderr, "still failing after the refusal window: %s\n", err);
	assert_int_equal(rc, TPD_ERR_OK);
	tpd_teleport_free(t);
}

typedef struct {
	tpd_teleport *t;
	const char *id;
	int ok, failed;
} conc_arg;

static void *conc_main(void *p)
{
	conc_arg *a = p;
	char err[TPD_ERRLEN];
	for (int i = 0; i < 25; i++) {
		tpd_ping_info pi;
		tpd_plugin_data pd;
		memset(&pd, 0, sizeof(pd));
		if (tpd_teleport_ping(a->t, &pi, err) == TPD_ERR_OK)
			a->ok++;
		else
			a->failed++;
		tpd_ping_info_clear(&pi);
		tpd_err rc = tpd_teleport_get_plugin_data(a->t, a->id, &pd, err);
		if (rc == TPD_ERR_OK || rc == TPD_ERR_NOT_FOUND)
			a->ok++;
		else
			a->failed++;
		tpd_plugin_data_clear(&pd);
	}
	return NULL;
}

/* Several threads call at once while another swaps credentials back and forth. */
static void test_concurrent_calls_and_swaps(void **state)
{
	(void)state;
	tpd_teleport *t = client_with(NULL, 0);
	char *id = create_request("concurrent@example.com", NULL);
	enum { N = 4 };
	pthread_t th[N];
	conc_arg a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (conc_arg){.t = t, .id = id};
		assert_int_equal(pthread_create(&th[i], NULL, conc_main, &a[i]), 0);
	}
	char err[TPD_ERRLEN];
	for (int i = 0; i < 10; i++) {
		bool second = i % 2 == 0;
		assert_int_equal(tpd_teleport_set_credentials(t, second ? F.key2 : F.key,
		                                              second ? F.crt2 : F.crt, F.ca, err),
		                 TPD_ERR_OK);
		nap_ms(20);
	}
	int ok = 0, failed = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ok += a[i].ok;
		failed += a[i].failed;
	}
	assert_int_equal(failed, 0);
	assert_int_equal(ok, N * 50);
	free(id);
	tpd_teleport_free(t);
}

/* The TLS-routing path (our OpenSSL dial with ALPN teleport-auth@..., h2, fd channel): the fake's
 * gRPC server picks h2 from that list like Auth behind a routing Proxy does. Broken connections
 * are re-dialled by the next call; a credential swap re-dials with the new certificate. */
static void test_tls_routing_path(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	tpd_teleport_opts o = {.addr = F.addr,
	                       .key_pem = F.key,
	                       .cert_pem = F.crt,
	                       .ca_pem = F.ca,
	                       .call_timeout_ms = 5000,
	                       .path = TPD_TELEPORT_PATH_ROUTING};
	tpd_teleport *t = NULL;
	assert_int_equal(tpd_teleport_new(&o, &t, err), TPD_ERR_OK);
	assert_string_equal(tpd_teleport_path_name(t), "tls-routing");
	tpd_ping_info pi;
	tpd_err rc = tpd_teleport_ping(t, &pi, err);
	if (rc)
		fprintf(stderr, "routing ping: %s\n", err);
	assert_int_equal(rc, TPD_ERR_OK);
	assert_string_equal(pi.cluster_name, "example.com");
	tpd_ping_info_clear(&pi);
	json_object *pc = calls_of("Ping");
	assert_string_equal(last_call_field(pc, "serial"), F.serial1);
	json_object_put(pc);

	/* A watch works over it too. */
	watcher w;
	watcher_start(&w, t);
	assert_true(wait_for(&w, p_inited, NULL, 10000));
	char *id = create_request("routing@example.com", NULL);
	assert_true(wait_for(&w, p_put_id, id, 10000));
	/* Cut every connection: the watch reports it, the next call re-dials. */
	assert_int_equal(ctl("POST", "/faults", "{\"drop_streams\":\"reset\"}", NULL), 200);
	assert_true(wait_for(&w, p_done, NULL, 15000));
	assert_int_equal(w.rc, TPD_ERR_UNAVAILABLE);
	watcher_join(&w);
	int64_t deadline = tpd_now_ms() + 10000;
	do {
		rc = tpd_teleport_ping(t, &pi, err);
		tpd_ping_info_clear(&pi);
	} while (rc != TPD_ERR_OK && tpd_now_ms() < deadline);
	assert_int_equal(rc, TPD_ERR_OK);

	assert_int_equal(tpd_teleport_set_credentials(t, F.key2, F.crt2, F.ca, err), TPD_ERR_OK);
	assert_int_equal(tpd_teleport_ping(t, &pi, err), TPD_ERR_OK);
	tpd_ping_info_clear(&pi);
	pc = calls_of("Ping");
	assert_string_equal(last_call_field(pc, "serial"), F.serial2);
	json_object_put(pc);
	free(id);
	tpd_teleport_free(t);

	/* Nothing listening: a clear UNAVAILABLE from the dialer. */
	tpd_teleport_opts o2 = o;
	o2.addr = "127.0.0.1:9";
	assert_int_equal(tpd_teleport_new(&o2, &t, err), TPD_ERR_OK);
	rc = tpd_teleport_ping(t, &pi, err);
	assert_true(rc == TPD_ERR_UNAVAILABLE || rc == TPD_ERR_TIMEOUT);
	tpd_ping_info_clear(&pi);
	tpd_teleport_free(t);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (getenv("TPD_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TPD_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ping),
	    cmocka_unit_test(test_wrong_client_cert),
	    cmocka_unit_test(test_watch_events),
	    cmocka_unit_test(test_watch_callback_stop),
	    cmocka_unit_test(test_stream_drop_abort),
	    cmocka_unit_test(test_stream_drop_eof),
	    cmocka_unit_test(test_stream_drop_reset),
	    cmocka_unit_test(test_watch_init_timeout),
	    cmocka_unit_test(test_list_paging_and_fallback),
	    cmocka_unit_test(test_plugin_data_cas),
	    cmocka_unit_test(test_review),
	    cmocka_unit_test(test_credentials_swap_during_watch),
	    cmocka_unit_test(test_refused_then_recovers),
	    cmocka_unit_test(test_concurrent_calls_and_swaps),
	    cmocka_unit_test(test_tls_routing_path),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	curl_global_cleanup();
	return rc;
}
