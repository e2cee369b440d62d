/* test_leader.c - unit tests of the Lease leader election (src/runtime/leader.c) against a fake of the
 * Lease endpoints (tests/leader/fake_lease.py, HTTPS with its own CA, a bearer token and fault
 * injection): acquire, renew, 409 conflicts, 5xx and timeouts, take-over of an expired lease,
 * no take-over of a lease someone keeps renewing, a leader that cannot renew stepping down
 * before the lease could expire elsewhere, release on free, token rotation, two candidates, and
 * the token never reaching a log line.
 *
 * Timings are shortened (lease 3 s, renew deadline 2 s, retry 250 ms); waits poll for the
 * expected state with a deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tpd/leader.h"
#include "tpd/util.h"

#define TOKEN    "leader-test-token-Zq8v1Xk3"
#define TOKEN2   "leader-test-token-rotated-P0o9"
#define LEASE_MS 3000
#define RENEW_MS 2000
#define RETRY_MS 250

typedef struct {
	pid_t pid;
	int stdin_fd;
	int port;
	char dir[256];
	char ca[300];
	char token_file[300];
	char api[64];
} fake;

typedef struct {
	pthread_mutex_t mu;
	int gained, lost;
	int64_t t_gained, t_lost; /* monotonic ms */
	bool leading;
} events;

static void on_cb(void *ud, bool leading)
{
	events *e = ud;

	pthread_mutex_lock(&e->mu);
	e->leading = leading;
	if (leading) {
		e->gained++;
		e->t_gained = tpd_now_ms();
	} else {
		e->lost++;
		e->t_lost = tpd_now_ms();
	}
	pthread_mutex_unlock(&e->mu);
}

static int ev_get(events *e, int which)
{
	int v;

	pthread_mutex_lock(&e->mu);
	v = which ? e->lost : e->gained;
	pthread_mutex_unlock(&e->mu);
	return v;
}

static void write_file(const char *path, const char *s)
{
	char tmp[400];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(s, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
}

static void fake_start(fake *f)
{
	int in[2], out[2];
	char line[64] = {0};
	size_t n = 0;
	const char *src = getenv("TPD_SOURCE_DIR");
	char script[512];

	snprintf(script, sizeof(script), "%s/tests/leader/fake_lease.py", src ? src : ".");
	snprintf(f->dir, sizeof(f->dir), "/tmp/tpd-leader-unit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", f->dir);
	snprintf(f->token_file, sizeof(f->token_file), "%s/token", f->dir);
	write_file(f->token_file, TOKEN "\n");
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/python3", "python3", script, "--dir", f->dir, "--token", TOKEN, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	f->stdin_fd = in[1];
	while (n < sizeof(line) - 1) {
		ssize_t r = read(out[0], line + n, 1);
		if (r <= 0 || line[n] == '\n')
			break;
		n++;
	}
	close(out[0]);
	assert_int_equal(sscanf(line, "READY %d", &f->port), 1);
	snprintf(f->api, sizeof(f->api), "https://127.0.0.1:%d", f->port);
}

static void fake_stop(fake *f)
{
	char cmd[400];

	close(f->stdin_fd);
	kill(f->pid, SIGTERM);
	waitpid(f->pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	tpd_buf *b = ud;

	tpd_buf_append(b, p, size * n);
	return size * n;
}

/* Calls the fake's control API; returns the HTTP status, body in *out (caller frees) if non-NULL. */
static long ctl(fake *f, const char *method, const char *path, const char *body, char **out)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	char url[512];
	tpd_buf b;
	long code = 0;

	tpd_buf_init(&b, 0);
	snprintf(url, sizeof(url), "%s/_fake/%s", f->api, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, f->ca);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	if (out)
		*out = tpd_buf_steal(&b);
	tpd_buf_free(&b);
	return code;
}

/* The stored Lease (NULL if none); caller puts it. */
static json_object *get_lease(fake *f, const char *name)
{
	char path[200], *body = NULL;
	json_object *o = NULL;

	snprintf(path, sizeof(path), "lease/default/%s", name);
	if (ctl(f, "GET", path, NULL, &body) == 200)
		o = json_tokener_parse(body);
	free(body);
	return o;
}

static const char *spec_str(json_object *lease, const char *k)
{
	json_object *spec, *v;

	if (!json_object_object_get_ex(lease, "spec", &spec) || !json_object_object_get_ex(spec, k, &v))
		return NULL;
	return json_object_get_string(v);
}

static int64_t spec_int(json_object *lease, const char *k)
{
	json_object *spec, *v;

	if (!json_object_object_get_ex(lease, "spec", &spec) || !json_object_object_get_ex(spec, k, &v))
		return -1;
	return json_object_get_int64(v);
}

static void put_foreign(fake *f, const char *name, const char *holder, int dur_s)
{
	char path[200], body[600];

	snprintf(path, sizeof(path), "lease/default/%s", name);
	snprintf(body, sizeof(body),
	         "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{},\"spec\":{"
	         "\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":%d,\"acquireTime\":\"2026-01-01T00:00:"
	         "00.000000Z\","
	         "\"renewTime\":\"2026-01-01T00:00:00.000000Z\",\"leaseTransitions\":4}}",
	         holder, dur_s);
	assert_int_equal(ctl(f, "PUT", path, body, NULL), 200);
}

static tpd_leader *mk(fake *f, const char *id, const char *name, events *ev, tpd_logger *lg, tpd_metrics *m)
{
	tpd_leader_opts o = {
	    .api_url = f->api,
	    .token_file = f->token_file,
	    .ca_file = f->ca,
	    .lease_name = name,
	    .lease_namespace = "default",
	    .identity = id,
	    .lease_duration_ms = LEASE_MS,
	    .renew_deadline_ms = RENEW_MS,
	    .retry_period_ms = RETRY_MS,
	    .cb = on_cb,
	    .cb_ud = ev,
	    .log = lg,
	    .metrics = m,
	};
	tpd_leader *l = NULL;
	char err[TPD_ERRLEN] = "";

	pthread_mutex_init(&ev->mu, NULL);
	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_OK);
	assert_non_null(l);
	return l;
}

/* Polls until ev's counter `which` (0 gained, 1 lost) reaches n or the timeout; returns success. */
static bool wait_ev(events *e, int which, int n, int64_t timeout_ms)
{
	int64_t end = tpd_now_ms() + timeout_ms;

	while (tpd_now_ms() < end) {
		if (ev_get(e, which) >= n)
			return true;
		usleep(10000);
	}
	return ev_get(e, which) >= n;
}

static int setup(void **state)
{
	fake *f = calloc(1, sizeof(*f));

	curl_global_init(CURL_GLOBAL_DEFAULT);
	fake_start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fake *f = *state;

	fake_stop(f);
	free(f);
	curl_global_cleanup();
	return 0;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_options(void **state)
{
	fake *f = *state;
	tpd_leader *l = NULL;
	char err[TPD_ERRLEN] = "";
	tpd_leader_opts o = {.api_url = f->api,
	                     .token_file = f->token_file,
	                     .ca_file = f->ca,
	                     .lease_duration_ms = 5000,
	                     .renew_deadline_ms = 5000,
	                     .retry_period_ms = 1000};

	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_INVAL);
	assert_null(l);
	assert_non_null(strstr(err, "renew_deadline"));
	/* No durations of its own: the config table owns the defaults. */
	o.renew_deadline_ms = 4000;
	o.retry_period_ms = 0;
	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_INVAL);
	o.retry_period_ms = 1000;
	o.lease_name = "Bad_Name";
	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_INVAL);
	o.lease_name = NULL;
	o.api_url = "";
	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
	/* defaults: name, namespace from POD_NAMESPACE, identity from POD_NAME */
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "1", 1);
	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_OK);
	assert_false(tpd_leader_is_leader(l));
	tpd_leader_free(l);
	tpd_leader_free(NULL);
}

static void test_acquire_renew_release(void **state)
{
	fake *f = *state;
	events ev = {0};
	tpd_metrics *m = tpd_metrics_new();
	tpd_leader *l = mk(f, "pod-a", "acq", &ev, NULL, m);
	json_object *o1, *o2;
	char *acq1, *rv1;
	char err[TPD_ERRLEN];

	assert_false(tpd_leader_is_leader(l));
	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	assert_true(wait_ev(&ev, 0, 1, 5000));
	assert_true(tpd_leader_is_leader(l));
	o1 = get_lease(f, "acq");
	assert_non_null(o1);
	assert_string_equal(spec_str(o1, "holderIdentity"), "pod-a");
	assert_int_equal(spec_int(o1, "leaseDurationSeconds"), 3);
	assert_int_equal(spec_int(o1, "leaseTransitions"), 0);
	acq1 = xstrdup(spec_str(o1, "acquireTime"));
	json_object *meta;
	assert_true(json_object_object_get_ex(o1, "metadata", &meta));
	rv1 = xstrdup(json_object_get_string(json_object_object_get(meta, "resourceVersion")));
	/* metrics */
	assert_true(tpd_metric_value(tpd_metrics_gauge(m, "teleport_pagerduty_leader_is_leader", "", NULL)) ==
	            1.0);
	assert_true(tpd_metric_value(tpd_metrics_counter(m, "teleport_pagerduty_leader_transitions_total", "",
	                                                 NULL)) == 1.0);
	/* renewals: resourceVersion and renewTime move, acquireTime and transitions stay */
	int64_t end = tpd_now_ms() + 3000;
	o2 = NULL;
	while (tpd_now_ms() < end) {
		json_object_put(o2);
		o2 = get_lease(f, "acq");
		if (!tpd_streq(json_object_get_string(json_object_object_get(
		                   json_object_object_get(o2, "metadata"), "resourceVersion")),
		               rv1))
			break;
		usleep(20000);
	}
	assert_string_not_equal(json_object_get_string(json_object_object_get(
	                            json_object_object_get(o2, "metadata"), "resourceVersion")),
	                        rv1);
	assert_string_equal(spec_str(o2, "holderIdentity"), "pod-a");
	assert_string_equal(spec_str(o2, "acquireTime"), acq1);
	assert_string_not_equal(spec_str(o2, "renewTime"), spec_str(o1, "renewTime"));
	assert_int_equal(spec_int(o2, "leaseTransitions"), 0);
	/* still leader after several periods, no loss */
	usleep(4 * RETRY_MS * 1000);
	assert_true(tpd_leader_is_leader(l));
	assert_int_equal(ev_get(&ev, 1), 0);
	/* release on free: holder cleared, duration 1, transitions unchanged; no callback */
	tpd_leader_free(l);
	json_object_put(o2);
	o2 = get_lease(f, "acq");
	assert_string_equal(spec_str(o2, "holderIdentity"), "");
	assert_int_equal(spec_int(o2, "leaseDurationSeconds"), 1);
	assert_int_equal(spec_int(o2, "leaseTransitions"), 0);
	assert_int_equal(ev_get(&ev, 1), 0);
	assert_true(tpd_metric_value(tpd_metrics_gauge(m, "teleport_pagerduty_leader_is_leader", "", NULL)) ==
	            0.0);
	json_object_put(o1);
	json_object_put(o2);
	free(acq1);
	free(rv1);
	tpd_metrics_free(m);
}

/* A released lease is taken at the next poll, not after lease_duration. */
static void test_release_handover(void **state)
{
	fake *f = *state;
	events ea = {0}, eb = {0};
	tpd_leader *a = mk(f, "pod-a", "hand", &ea, NULL, NULL), *b;
	char err[TPD_ERRLEN];
	int64_t t0;
	json_object *o;

	assert_int_equal(tpd_leader_start(a, err), TPD_ERR_OK);
	assert_true(wait_ev(&ea, 0, 1, 5000));
	b = mk(f, "pod-b", "hand", &eb, NULL, NULL);
	assert_int_equal(tpd_leader_start(b, err), TPD_ERR_OK);
	usleep(3 * RETRY_MS * 1000);
	assert_int_equal(ev_get(&eb, 0), 0); /* a keeps renewing: b follows */
	assert_false(tpd_leader_is_leader(b));
	t0 = tpd_now_ms();
	tpd_leader_free(a);
	assert_true(wait_ev(&eb, 0, 1, 5000));
	printf("# release handover took %lld ms\n", (long long)(eb.t_gained - t0));
	assert_true(eb.t_gained - t0 < RETRY_MS + 500);
	o = get_lease(f, "hand");
	assert_string_equal(spec_str(o, "holderIdentity"), "pod-b");
	assert_int_equal(spec_int(o, "leaseTransitions"), 1);
	assert_int_equal(spec_int(o, "leaseDurationSeconds"), 3);
	json_object_put(o);
	tpd_leader_free(b);
}

/* A foreign holder that keeps renewing is followed; once it stops, the lease is taken after
 * lease_duration of our own observation (not by the record's old renewTime, which is in 2026). */
static void test_expiry_takeover(void **state)
{
	fake *f = *state;
	events ev = {0};
	int fd[2];
	tpd_logger *lg = tpd_logger_new();
	tpd_leader *l;
	char err[TPD_ERRLEN], buf[8192];
	int64_t t_last, end;
	json_object *o;
	ssize_t n;

	assert_int_equal(pipe(fd), 0);
	fcntl(fd[0], F_SETFL, O_NONBLOCK);
	tpd_logger_set_fd(lg, fd[1]);
	put_foreign(f, "exp", "other-pod", 3);
	l = mk(f, "pod-a", "exp", &ev, lg, NULL);
	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	/* the other holder renews every 500 ms for 4 s (longer than the lease) */
	end = tpd_now_ms() + 4000;
	while (tpd_now_ms() < end) {
		put_foreign(f, "exp", "other-pod", 3);
		usleep(500000);
	}
	assert_int_equal(ev_get(&ev, 0), 0);
	t_last = tpd_now_ms();
	put_foreign(f, "exp", "other-pod", 3);
	assert_true(wait_ev(&ev, 0, 1, 6000));
	printf("# take-over %lld ms after the last foreign renewal (lease %d ms)\n",
	       (long long)(ev.t_gained - t_last), LEASE_MS);
	assert_true(ev.t_gained - t_last >= LEASE_MS);
	assert_true(ev.t_gained - t_last < LEASE_MS + RETRY_MS + 400);
	o = get_lease(f, "exp");
	assert_string_equal(spec_str(o, "holderIdentity"), "pod-a");
	assert_int_equal(spec_int(o, "leaseTransitions"), 5);
	assert_string_not_equal(spec_str(o, "acquireTime"), "2026-01-01T00:00:00.000000Z");
	json_object_put(o);
	tpd_leader_free(l);
	n = read(fd[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Following leader other-pod"));
	assert_non_null(strstr(buf, "Became leader"));
	tpd_logger_free(lg);
	close(fd[0]);
	close(fd[1]);
}

/* 409 Conflicts and 5xx on renewals within the deadline do not cost leadership. */
static void test_conflict_and_5xx_tolerated(void **state)
{
	fake *f = *state;
	events ev = {0};
	tpd_leader *l = mk(f, "pod-a", "conf", &ev, NULL, NULL);
	char err[TPD_ERRLEN], *reqs = NULL;

	/* the first PUT-less create races: POST conflict (AlreadyExists is impossible here), so inject
	 * faults on the first GETs instead: the candidate keeps retrying and then acquires */
	assert_int_equal(ctl(f, "POST", "faults", "{\"method\":\"GET\",\"status\":503,\"count\":3}", NULL),
	                 200);
	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	assert_true(wait_ev(&ev, 0, 1, 5000));
	/* three conflicting renewals in a row, then two 500s: under the 2 s deadline */
	assert_int_equal(ctl(f, "POST", "faults", "{\"method\":\"PUT\",\"status\":409,\"count\":3}", NULL),
	                 200);
	assert_int_equal(ctl(f, "POST", "faults", "{\"method\":\"GET\",\"status\":500,\"count\":2}", NULL),
	                 200);
	usleep(8 * RETRY_MS * 1000);
	assert_int_equal(ev_get(&ev, 1), 0);
	assert_true(tpd_leader_is_leader(l));
	ctl(f, "GET", "requests", NULL, &reqs);
	assert_non_null(strstr(reqs, "\"status\": 409"));
	assert_non_null(strstr(reqs, "\"status\": 500"));
	free(reqs);
	tpd_leader_free(l);
}

/* A leader whose renewals fail stops leading within renew_deadline, before the lease could
 * expire for anyone else (lease_duration after they last saw it change). */
static void renew_failure(fake *f, const char *name, const char *fault)
{
	events ev = {0};
	tpd_leader *l = mk(f, "pod-a", name, &ev, NULL, NULL);
	char err[TPD_ERRLEN];
	int64_t t_fault, t_false = 0;

	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	assert_true(wait_ev(&ev, 0, 1, 5000));
	usleep(2 * RETRY_MS * 1000);
	assert_int_equal(ctl(f, "POST", "faults", fault, NULL), 200);
	t_fault = tpd_now_ms();
	/* is_leader turns false by itself at the deadline, even while a request hangs */
	while (tpd_now_ms() - t_fault < LEASE_MS) {
		if (!tpd_leader_is_leader(l)) {
			t_false = tpd_now_ms();
			break;
		}
		usleep(5000);
	}
	assert_true(t_false > 0);
	assert_true(wait_ev(&ev, 1, 1, LEASE_MS));
	printf("# %s: is_leader false after %lld ms, cb(false) after %lld ms (renew deadline %d, lease %d)\n",
	       name, (long long)(t_false - t_fault), (long long)(ev.t_lost - t_fault), RENEW_MS, LEASE_MS);
	/* the last successful renewal began at most one retry period (+ its latency) before the fault */
	assert_true(t_false - t_fault <= RENEW_MS + 50);
	assert_true(ev.t_lost - t_fault <= RENEW_MS + 300);
	assert_true(ev.t_lost - t_fault < LEASE_MS);
	assert_false(ev.leading);
	assert_int_equal(ctl(f, "POST", "clear", "{}", NULL), 200);
	/* it competes again afterwards: the lease still names it, so it takes it back */
	assert_true(wait_ev(&ev, 0, 2, 5000));
	tpd_leader_free(l);
}

static void test_renew_failure_5xx(void **state)
{
	renew_failure(*state, "fail5xx", "{\"method\":\"*\",\"status\":503,\"count\":1000}");
}

static void test_renew_failure_timeout(void **state)
{
	renew_failure(*state, "failhang", "{\"method\":\"*\",\"hang_ms\":1500,\"count\":1000}");
}

/* Someone else (e.g. an operator) writes the lease to another holder: the leader steps down. */
static void test_foreign_write_steps_down(void **state)
{
	fake *f = *state;
	events ev = {0};
	tpd_leader *l = mk(f, "pod-a", "steal", &ev, NULL, NULL);
	char err[TPD_ERRLEN];

	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	assert_true(wait_ev(&ev, 0, 1, 5000));
	put_foreign(f, "steal", "intruder", 3);
	assert_true(wait_ev(&ev, 1, 1, 2000));
	assert_false(tpd_leader_is_leader(l));
	tpd_leader_free(l);
	json_object *o = get_lease(f, "steal");
	assert_string_equal(spec_str(o, "holderIdentity"), "intruder"); /* not released: not ours */
	json_object_put(o);
}

/* Two candidates started together: exactly one leads, the other follows. */
static void test_two_candidates(void **state)
{
	fake *f = *state;
	events ea = {0}, eb = {0};
	tpd_leader *a = mk(f, "pod-a", "two", &ea, NULL, NULL), *b = mk(f, "pod-b", "two", &eb, NULL, NULL);
	char err[TPD_ERRLEN];
	int64_t end;

	assert_int_equal(tpd_leader_start(a, err), TPD_ERR_OK);
	assert_int_equal(tpd_leader_start(b, err), TPD_ERR_OK);
	end = tpd_now_ms() + 3000;
	while (tpd_now_ms() < end) {
		assert_false(tpd_leader_is_leader(a) && tpd_leader_is_leader(b));
		usleep(5000);
	}
	assert_int_equal(ev_get(&ea, 0) + ev_get(&eb, 0), 1);
	assert_true(tpd_leader_is_leader(a) != tpd_leader_is_leader(b));
	tpd_leader_free(a);
	tpd_leader_free(b);
}

/* The token file is re-read when it changes; the token never appears in a log line, even when
 * the server echoes it back in an error message. */
static void test_token_rotation_and_secrecy(void **state)
{
	fake *f = *state;
	events ev = {0};
	int fd[2];
	tpd_logger *lg = tpd_logger_new();
	tpd_leader *l;
	char err[TPD_ERRLEN], buf[65536];
	ssize_t n, tot = 0;

	assert_int_equal(pipe(fd), 0);
	fcntl(fd[0], F_SETFL, O_NONBLOCK);
	tpd_logger_set_fd(lg, fd[1]);
	tpd_logger_set_level(lg, TPD_LOG_TRACE);
	l = mk(f, "pod-a", "tok", &ev, lg, NULL);
	/* a server echoing the Authorization header into its error message */
	assert_int_equal(ctl(f, "POST", "faults",
	                     "{\"method\":\"GET\",\"status\":500,\"count\":2,\"message\":\"bad {auth}\"}",
	                     NULL),
	                 200);
	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	assert_true(wait_ev(&ev, 0, 1, 5000));
	/* rotate: the server accepts only the new token from now on */
	assert_int_equal(ctl(f, "POST", "token", "{\"token\":\"" TOKEN2 "\"}", NULL), 200);
	usleep(1100 * 1000); /* a distinct mtime second is not needed (ns mtime), but let a renewal fail */
	write_file(f->token_file, TOKEN2 "\n");
	assert_int_equal(ctl(f, "POST", "faults",
	                     "{\"method\":\"PUT\",\"status\":503,\"count\":1,\"message\":\"echo {auth}\"}",
	                     NULL),
	                 200);
	usleep(6 * RETRY_MS * 1000);
	/* leadership survived the rotation: renewals work with the new token */
	assert_true(tpd_leader_is_leader(l));
	tpd_leader_free(l);
	while (tot < (ssize_t)sizeof(buf) - 1 && (n = read(fd[0], buf + tot, sizeof(buf) - 1 - tot)) > 0)
		tot += n;
	buf[tot] = '\0';
	assert_non_null(strstr(buf, "Became leader"));
	assert_non_null(strstr(buf, "[REDACTED]")); /* the echoed token was there, and hidden */
	assert_null(strstr(buf, TOKEN));
	assert_null(strstr(buf, TOKEN2));
	assert_null(strstr(buf, "Zq8v1Xk3"));
	tpd_logger_free(lg);
	close(fd[0]);
	close(fd[1]);
	assert_int_equal(ctl(f, "POST", "token", "{\"token\":\"" TOKEN "\"}", NULL), 200);
	write_file(f->token_file, TOKEN "\n");
}

/* A wrong CA fails verification: never leader, error is reported, not a crash. */
static void test_ca_verification(void **state)
{
	fake *f = *state;
	events ev = {0};
	char ca[400], err[TPD_ERRLEN];
	tpd_leader_opts o = {.api_url = f->api,
	                     .token_file = f->token_file,
	                     .lease_name = "ca",
	                     .lease_namespace = "default",
	                     .identity = "pod-a",
	                     .lease_duration_ms = LEASE_MS,
	                     .renew_deadline_ms = RENEW_MS,
	                     .retry_period_ms = RETRY_MS,
	                     .cb = on_cb,
	                     .cb_ud = &ev};
	tpd_leader *l = NULL;

	/* trust only some other self-signed certificate */
	snprintf(ca, sizeof(ca), "%s/other.crt", f->dir);
	char cmd[1200];
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/other.key -out %s -days 1 -subj /CN=x "
	         ">/dev/null 2>&1",
	         f->dir, ca);
	assert_int_equal(system(cmd), 0);
	o.ca_file = ca;
	pthread_mutex_init(&ev.mu, NULL);
	assert_int_equal(tpd_leader_new(&o, &l, err), TPD_ERR_OK);
	assert_int_equal(tpd_leader_start(l, err), TPD_ERR_OK);
	usleep(4 * RETRY_MS * 1000);
	assert_int_equal(ev_get(&ev, 0), 0);
	assert_false(tpd_leader_is_leader(l));
	tpd_leader_free(l);
	assert_null(get_lease(f, "ca"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_acquire_renew_release),
	    cmocka_unit_test(test_release_handover),
	    cmocka_unit_test(test_expiry_takeover),
	    cmocka_unit_test(test_conflict_and_5xx_tolerated),
	    cmocka_unit_test(test_renew_failure_5xx),
	    cmocka_unit_test(test_renew_failure_timeout),
	    cmocka_unit_test(test_foreign_write_steps_down),
	    cmocka_unit_test(test_two_candidates),
	    cmocka_unit_test(test_token_rotation_and_secrecy),
	    cmocka_unit_test(test_ca_verification),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
