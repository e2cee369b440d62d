/* pd_integration.c - the PagerDuty client against the fake PagerDuty (tests/lib/tpdtest/fake_pagerduty.py)
 * run as a separate process over real HTTPS on loopback with its generated test CA.
 *
 * Covers every call, pagination across pages, 429 storms and dropped creates with zero duplicate
 * incidents, 5xx retries, timeouts, TLS trust through SSL_CERT_FILE, wrong CAs rejected, 401/403
 * mapping, and the API key never appearing in trace-level logs. The fake is driven through its
 * /_fake control API with libcurl. Needs TPD_SOURCE_DIR (set by ctest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tpd/log.h"
#include "tpd/pagerduty.h"

#define KEY    "it-SECRET-key-0123456789"
#define RO_KEY "it-READONLY-key-987654"

typedef struct {
	pid_t pid;
	char url[256], ca[512], ctl[300], dir[128];
} fake;

static fake F;

static void start_fake(fake *f)
{
	const char *src = getenv("TPD_SOURCE_DIR");
	char script[1024], line[2048];
	int p[2];
	size_t n = 0;

	assert_non_null(src);
	snprintf(script, sizeof(script), "%s/tests/lib/tpdtest/fake_pagerduty.py", src);
	snprintf(f->dir, sizeof(f->dir), "/tmp/tpd-pd-it-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(pipe(p), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/usr/bin/python3", "python3", script, "--port", "0", "--cert-dir", f->dir, "--api-key",
		      KEY, "--read-only-key", RO_KEY, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* Wait (bounded) for the one ready line. */
	int64_t deadline = tpd_now_ms() + 20000;
	while (n < sizeof(line) - 1 && tpd_now_ms() < deadline) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t r = read(p[0], line + n, 1);
		if (r <= 0)
			break;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(p[0]);
	json_object *o = json_tokener_parse(line);
	assert_non_null(o);
	json_object *v;
	assert_true(json_object_object_get_ex(o, "url", &v));
	snprintf(f->url, sizeof(f->url), "%s", json_object_get_string(v));
	assert_true(json_object_object_get_ex(o, "ca_file", &v));
	snprintf(f->ca, sizeof(f->ca), "%s", json_object_get_string(v));
	assert_true(json_object_object_get_ex(o, "control_url", &v));
	snprintf(f->ctl, sizeof(f->ctl), "%s", json_object_get_string(v));
	json_object_put(o);
}

static void stop_fake(fake *f)
{
	int st;
	char cmd[512];

	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, &st, 0);
		f->pid = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", f->dir);
}

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
	tpd_buf_append(ud, p, s * n);
	return s * n;
}

/* Control API call; returns the parsed answer (caller puts it). */
static json_object *ctl(const char *method, const char *path, const char *body)
{
	CURL *h = curl_easy_init();
	tpd_buf b;
	char url[1024];
	long code = 0;
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");

	tpd_buf_init(&b, 0);
	snprintf(url, sizeof(url), "%s%s", F.ctl, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, F.ca);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	assert_int_equal(code, 200);
	json_object *o = json_tokener_parse(b.data ? b.data : "null");
	tpd_buf_free(&b);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	return o;
}

static char *ctl_id(const char *path, const char *body)
{
	json_object *o = ctl("POST", path, body), *v;
	assert_true(json_object_object_get_ex(o, "id", &v));
	char *id = strdup(json_object_get_string(v));
	json_object_put(o);
	return id;
}

static void ctl_do(const char *method, const char *path, const char *body)
{
	json_object_put(ctl(method, path, body));
}

static size_t ctl_count(const char *path)
{
	json_object *o = ctl("GET", path, NULL);
	size_t n = json_object_array_length(o);
	json_object_put(o);
	return n;
}

static tpd_pd *client(tpd_logger *lg, int64_t timeout_ms, int64_t budget_ms, const char *ca, const char *key)
{
	tpd_pd_opts o = {.api_endpoint = F.url,
	                 .api_key = key ? key : KEY,
	                 .user_email = "bot@example.com",
	                 .ca_file = ca ? ca : F.ca,
	                 .log = lg,
	                 .request_timeout_ms = timeout_ms ? timeout_ms : 10000,
	                 .max_retry_ms = budget_ms,
	                 .rate_limit_per_minute = 900,
	                 .user_agent_version = "it",
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000};
	tpd_pd *pd = NULL;
	char err[TPD_ERRLEN];

	if (ca && ca[0] == '\0')
		o.ca_file = NULL;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_OK);
	return pd;
}

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	start_fake(&F);
	free(ctl_id("/services", "{\"name\":\"Bot svc\"}"));
	free(ctl_id("/users", "{\"name\":\"Bot\",\"email\":\"bot@example.com\"}"));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	stop_fake(&F);
	curl_global_cleanup();
	return 0;
}

static void test_every_call(void **state)
{
	(void)state;
	char body[256], err[TPD_ERRLEN],
	    *ep = ctl_id("/escalation_policies", "{\"name\":\"Team on-call\"}"),
	    *ep2 = ctl_id("/escalation_policies", "{\"name\":\"Other on-call\"}");
	/* 130 services match "team svc" so the wanted one (sorted last) is on page 2. */
	for (int i = 0; i < 130; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"Team Svc %03d\"}", i);
		free(ctl_id("/services", body));
	}
	snprintf(body, sizeof(body), "{\"name\":\"Team Svc ZZ\",\"escalation_policy_id\":\"%s\"}", ep);
	char *svc_id = ctl_id("/services", body);
	char *uid = ctl_id("/users", "{\"name\":\"Alice\",\"email\":\"Alice@Example.com\"}");
	snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"escalation_policy_id\":\"%s\"}", uid, ep);
	ctl_do("POST", "/oncalls", body);
	tpd_pd *pd = client(NULL, 0, 0, NULL, NULL);

	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);

	tpd_pd_service s;
	assert_int_equal(tpd_pd_find_service(pd, "team svc zz", &s, err), TPD_ERR_OK);
	assert_string_equal(s.id, svc_id);
	assert_string_equal(s.escalation_policy_id, ep);
	tpd_pd_service_clear(&s);
	assert_int_equal(tpd_pd_find_service(pd, "team svc", &s, err), TPD_ERR_NOT_FOUND);

	tpd_pd_user u;
	assert_int_equal(tpd_pd_find_user(pd, "alice@example.COM", &u, err), TPD_ERR_OK);
	assert_string_equal(u.id, uid);
	assert_string_equal(u.name, "Alice");
	tpd_pd_user_clear(&u);
	assert_int_equal(tpd_pd_find_user(pd, "nobody@example.com", &u, err), TPD_ERR_NOT_FOUND);

	const char *ids[] = {ep2, ep};
	bool on[2];
	assert_int_equal(tpd_pd_oncall(pd, uid, ids, 2, on, err), TPD_ERR_OK);
	assert_false(on[0]);
	assert_true(on[1]);

	tpd_pd_incident_spec spec = {.title = "Access request from alice",
	                             .service_id = svc_id,
	                             .incident_key = "teleport-access-request/every-call",
	                             .details = "details\n"};
	char *iid = NULL, *iid2 = NULL, *status = NULL;
	bool adopted = true;
	assert_int_equal(tpd_pd_create_incident(pd, &spec, &iid, &adopted, err), TPD_ERR_OK);
	assert_false(adopted);
	/* Same key again: PagerDuty's duplicate answer is turned into adoption. */
	assert_int_equal(tpd_pd_create_incident(pd, &spec, &iid2, &adopted, err), TPD_ERR_OK);
	assert_true(adopted);
	assert_string_equal(iid, iid2);
	free(iid2);
	assert_int_equal(tpd_pd_find_incident_by_key(pd, spec.incident_key, &iid2, &status, err), TPD_ERR_OK);
	assert_string_equal(iid2, iid);
	assert_string_equal(status, "triggered");
	free(iid2);
	free(status);

	assert_int_equal(tpd_pd_add_note(pd, iid, "bob reviewed the request", err), TPD_ERR_OK);
	char path[128];
	snprintf(path, sizeof(path), "/incidents/%s/notes", iid);
	assert_int_equal(ctl_count(path), 1);
	assert_int_equal(tpd_pd_add_note(pd, "PNOPE", "x", err), TPD_ERR_NOT_FOUND);

	int found = 0;
	void (*cb)(void *, const char *, const char *) = NULL;
	(void)cb;
	assert_int_equal(tpd_pd_resolve_incident(pd, iid, err), TPD_ERR_OK);
	assert_int_equal(tpd_pd_resolve_incident(pd, iid, err), TPD_ERR_OK); /* already resolved */
	assert_int_equal(tpd_pd_find_incident_by_key(pd, spec.incident_key, &iid2, &status, err), TPD_ERR_OK);
	assert_string_equal(status, "resolved");
	free(iid2);
	free(status);
	/* After resolution the key may open a new incident. */
	assert_int_equal(tpd_pd_create_incident(pd, &spec, &iid2, &adopted, err), TPD_ERR_OK);
	assert_false(adopted);
	assert_string_not_equal(iid2, iid);
	(void)found;
	free(iid2);
	free(iid);
	free(ep);
	free(ep2);
	free(svc_id);
	free(uid);
	tpd_pd_free(pd);
}

typedef struct {
	char ids[256][32];
	int n;
} collected;

static void collect(void *ud, const char *id, const char *key)
{
	collected *c = ud;
	(void)key;
	if (c->n < 256)
		snprintf(c->ids[c->n++], 32, "%s", id);
}

static void test_list_open_incidents_paged(void **state)
{
	(void)state;
	char body[256], err[TPD_ERRLEN];
	char *svc = ctl_id("/services", "{\"name\":\"Orphans\"}");

	ctl_do("POST", "/reset", "{}");
	for (int i = 0; i < 120; i++) {
		snprintf(body, sizeof(body),
		         "{\"service_id\":\"%s\",\"title\":\"t\",\"incident_key\":\"teleport-access-request/"
		         "o%d\"}",
		         svc, i);
		free(ctl_id("/incidents", body));
	}
	snprintf(body, sizeof(body), "{\"service_id\":\"%s\",\"title\":\"x\",\"incident_key\":\"other/1\"}",
	         svc);
	free(ctl_id("/incidents", body));
	snprintf(body, sizeof(body),
	         "{\"service_id\":\"%s\",\"title\":\"x\",\"incident_key\":\"teleport-access-request/"
	         "r\",\"status\":\"resolved\"}",
	         svc);
	free(ctl_id("/incidents", body));
	tpd_pd *pd = client(NULL, 0, 0, NULL, NULL);
	collected *c = calloc(1, sizeof(*c));
	assert_int_equal(tpd_pd_list_open_incidents(pd, TPD_PD_INCIDENT_KEY_PREFIX, collect, c, err),
	                 TPD_ERR_OK);
	assert_int_equal(c->n, 120);
	free(c);
	free(svc);
	tpd_pd_free(pd);
}

typedef struct {
	tpd_pd *pd;
	const char *svc;
	int idx;
	tpd_err rc;
	char id[64];
	char err[TPD_ERRLEN];
} worker;

static void *create_worker(void *p)
{
	worker *w = p;
	char key[64], *id = NULL;
	tpd_pd_incident_spec s = {
	    .title = "storm", .service_id = w->svc, .incident_key = key, .details = "d"};

	snprintf(key, sizeof(key), "teleport-access-request/storm-%d", w->idx);
	w->rc = tpd_pd_create_incident(w->pd, &s, &id, NULL, w->err);
	if (id)
		snprintf(w->id, sizeof(w->id), "%s", id);
	free(id);
	return NULL;
}

static void run_storm(const char *svc, int n)
{
	pthread_t t[16];
	worker w[16];
	tpd_pd *pd = client(NULL, 0, 20000, NULL, NULL);

	for (int i = 0; i < n; i++) {
		w[i] = (worker){.pd = pd, .svc = svc, .idx = i};
		pthread_create(&t[i], NULL, create_worker, &w[i]);
	}
	/* Every worker is joined before any assertion: a failed one must not leave the others
	 * running on this stack frame. */
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < n; i++) {
		if (w[i].rc != TPD_ERR_OK)
			print_error("storm worker %d: %s\n", i, w[i].err);
		assert_int_equal(w[i].rc, TPD_ERR_OK);
		assert_true(w[i].id[0] != '\0');
	}
	tpd_pd_free(pd);
}

static void assert_no_duplicates(int n)
{
	json_object *all = ctl("GET", "/incidents", NULL);
	int per[16] = {0};
	size_t len = json_object_array_length(all);

	for (size_t i = 0; i < len; i++) {
		json_object *k;
		json_object_object_get_ex(json_object_array_get_idx(all, i), "incident_key", &k);
		int idx;
		if (k && sscanf(json_object_get_string(k), "teleport-access-request/storm-%d", &idx) == 1 &&
		    idx < 16)
			per[idx]++;
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(per[i], 1);
	json_object_put(all);
}

static void test_429_storm_no_duplicates(void **state)
{
	(void)state;
	char *svc = ctl_id("/services", "{\"name\":\"Storm\"}");

	ctl_do("POST", "/reset", "{}");
	/* 24 rate-limited answers with a 1 s reset across 8 concurrent creates. */
	ctl_do("POST", "/inject",
	       "{\"kind\":\"status\",\"status\":429,\"count\":24,\"reset\":1,\"method\":\"POST\"}");
	run_storm(svc, 8);
	assert_no_duplicates(8);
	/* Every 429 was answered and retried. */
	json_object *reqs = ctl("GET", "/requests", NULL);
	int n429 = 0;
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *st;
		json_object_object_get_ex(json_object_array_get_idx(reqs, i), "status", &st);
		n429 += json_object_get_int(st) == 429;
	}
	assert_int_equal(n429, 24);
	json_object_put(reqs);
	free(svc);
}

static void test_dropped_creates_no_duplicates(void **state)
{
	(void)state;
	char *svc = ctl_id("/services", "{\"name\":\"Drops\"}");

	ctl_do("POST", "/reset", "{}");
	/* PagerDuty creates the incident, then the connection dies before the answer: ambiguous. */
	ctl_do("POST", "/inject", "{\"kind\":\"drop\",\"count\":4,\"method\":\"POST\",\"process\":true}");
	ctl_do("POST", "/inject",
	       "{\"kind\":\"malformed\",\"count\":2,\"method\":\"POST\",\"process\":true}");
	run_storm(svc, 8);
	assert_no_duplicates(8);
	free(svc);
}

static void test_dropped_note_on_reused_connection_posted_once(void **state)
{
	(void)state;
	char err[TPD_ERRLEN], *inc, path[128], body[256];
	char *svc = ctl_id("/services", "{\"name\":\"Notes once\"}");
	tpd_pd *pd = client(NULL, 0, 0, NULL, NULL);

	ctl_do("POST", "/reset", "{}");
	snprintf(body, sizeof(body), "{\"service_id\":\"%s\",\"title\":\"t\"}", svc);
	inc = ctl_id("/incidents", body);
	/* A first call leaves a kept-alive connection for the note to reuse. PagerDuty then stores
	 * the note and the connection dies before any answer byte: libcurl would resend such a
	 * request on a fresh connection by itself; the client must check first instead. */
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	ctl_do("POST", "/inject", "{\"kind\":\"drop\",\"count\":1,\"method\":\"POST\",\"process\":true}");
	assert_int_equal(tpd_pd_add_note(pd, inc, "exactly once", err), TPD_ERR_OK);
	snprintf(path, sizeof(path), "/incidents/%s/notes", inc);
	json_object *notes = ctl("GET", path, NULL);
	assert_int_equal(json_object_array_length(notes), 1);
	json_object_put(notes);
	free(inc);
	free(svc);
	tpd_pd_free(pd);
}

static void test_5xx_retried(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	tpd_pd *pd = client(NULL, 0, 0, NULL, NULL);

	ctl_do("POST", "/reset", "{}");
	ctl_do("POST", "/inject", "{\"kind\":\"status\",\"status\":503,\"count\":2,\"path\":\"/abilities\"}");
	ctl_do("POST", "/inject", "{\"kind\":\"drop\",\"count\":1,\"path\":\"/abilities\"}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(ctl_count("/requests"), 4);
	/* A 5xx storm longer than the budget ends in UNAVAILABLE. */
	tpd_pd_free(pd);
	pd = client(NULL, 0, 1500, NULL, NULL);
	ctl_do("POST", "/inject",
	       "{\"kind\":\"status\",\"status\":500,\"count\":100,\"path\":\"/abilities\"}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_UNAVAILABLE);
	assert_non_null(strstr(err, "HTTP 500"));
	ctl_do("DELETE", "/inject", NULL);
	tpd_pd_free(pd);
}

static void test_timeouts(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	/* One slow answer: the attempt times out and the retry succeeds. The timeout leaves room
	 * for a TLS handshake on a busy machine under ASan (400 ms was tight). */
	tpd_pd *pd = client(NULL, 1000, 8000, NULL, NULL);

	ctl_do("POST", "/inject", "{\"kind\":\"slow\",\"delay\":3.0,\"count\":1,\"path\":\"/abilities\"}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	tpd_pd_free(pd);
	pd = client(NULL, 300, 1000, NULL, NULL);
	ctl_do("POST", "/inject", "{\"kind\":\"slow\",\"delay\":1.0,\"count\":20,\"path\":\"/abilities\"}");
	int64_t t0 = tpd_now_ms();
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_TIMEOUT);
	assert_true(tpd_now_ms() - t0 < 4000);
	ctl_do("DELETE", "/inject", NULL);
	tpd_pd_free(pd);
}

static void test_tls_trust(void **state)
{
	(void)state;
	char err[TPD_ERRLEN], cmd[2048], other[512];

	/* SSL_CERT_FILE is honoured when no CA override is given. */
	setenv("SSL_CERT_FILE", F.ca, 1);
	tpd_pd *pd = client(NULL, 0, 0, "", NULL);
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	tpd_pd_free(pd);
	unsetenv("SSL_CERT_FILE");

	/* The system store does not trust the test CA: rejected at once, not retried for 30 s. */
	pd = client(NULL, 0, 0, "", NULL);
	int64_t t0 = tpd_now_ms();
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_UNAVAILABLE);
	assert_true(tpd_now_ms() - t0 < 3000);
	assert_non_null(strstr(err, "certificate") ? err : NULL);
	tpd_pd_free(pd);

	/* Another test CA is wrong too. */
	snprintf(other, sizeof(other), "%s/other", F.dir);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 -c 'import sys; sys.path.insert(0, \"%s/tests/lib/tpdtest\"); "
	         "from fake_pagerduty import make_test_pki; make_test_pki(\"%s\", cn=\"other CA\")'",
	         getenv("TPD_SOURCE_DIR"), other);
	assert_int_equal(system(cmd), 0);
	snprintf(other, sizeof(other), "%s/other/ca.pem", F.dir);
	pd = client(NULL, 0, 0, other, NULL);
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_UNAVAILABLE);
	tpd_pd_free(pd);
}

static void test_auth_errors(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	tpd_pd *pd = client(NULL, 0, 0, NULL, "wrong-key-abcdef");

	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_ACCESS_DENIED);
	assert_non_null(strstr(err, "API key rejected"));
	assert_null(strstr(err, "wrong-key"));
	tpd_pd_free(pd);
	pd = client(NULL, 0, 0, NULL, RO_KEY);
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK); /* reads work */
	assert_int_equal(tpd_pd_add_note(pd, "PIN00001", "x", err), TPD_ERR_ACCESS_DENIED);
	assert_non_null(strstr(err, "read-only"));
	tpd_pd_free(pd);
}

static void test_key_never_in_trace_logs(void **state)
{
	(void)state;
	char path[] = "/tmp/tpd-pd-log-XXXXXX", err[TPD_ERRLEN], *text = NULL, *id = NULL;
	int fd = mkstemp(path);
	size_t len;
	tpd_logger *lg = tpd_logger_new();

	assert_true(fd >= 0);
	tpd_logger_set_fd(lg, fd);
	tpd_logger_set_level(lg, TPD_LOG_TRACE);
	tpd_pd *pd = client(lg, 0, 0, NULL, NULL);
	char *svc = ctl_id("/services", "{\"name\":\"Logged\"}");
	tpd_pd_incident_spec s = {
	    .title = "t", .service_id = svc, .incident_key = "teleport-access-request/log", .details = "d"};
	ctl_do("POST", "/inject", "{\"kind\":\"status\",\"status\":500,\"count\":1,\"path\":\"/abilities\"}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(tpd_pd_create_incident(pd, &s, &id, NULL, err), TPD_ERR_OK);
	tpd_pd_free(pd);
	tpd_pd *bad = client(lg, 0, 0, NULL, "another-SECRET-xyz-1");
	assert_int_equal(tpd_pd_health(bad, err), TPD_ERR_ACCESS_DENIED);
	tpd_pd_free(bad);
	tpd_logger_free(lg);
	close(fd);
	assert_int_equal(tpd_read_file(path, 1 << 24, &text, &len, err), 0);
	assert_true(len > 0);
	assert_non_null(strstr(text, "curl request headers")); /* libcurl's trace really ran */
	assert_non_null(strstr(text, "PagerDuty response"));
	assert_null(strstr(text, KEY));
	assert_null(strstr(text, "SECRET"));
	assert_null(strstr(text, "Token token=it"));
	unlink(path);
	free(text);
	free(id);
	free(svc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_call),
	    cmocka_unit_test(test_list_open_incidents_paged),
	    cmocka_unit_test(test_429_storm_no_duplicates),
	    cmocka_unit_test(test_dropped_creates_no_duplicates),
	    cmocka_unit_test(test_dropped_note_on_reused_connection_posted_once),
	    cmocka_unit_test(test_5xx_retried),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_tls_trust),
	    cmocka_unit_test(test_auth_errors),
	    cmocka_unit_test(test_key_never_in_trace_logs),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
