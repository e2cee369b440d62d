/* test_pagerduty_client.c - the PagerDuty client's calls through a scripted transport and a fake
 * clock: exact headers and paths, paging, caches and TTLs, retries and their budget, error
 * mapping, hostile answers, idempotent incident creation, and the API key never leaking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/pagerduty/pagerduty_hooks.h"
#include "tpd/pagerduty.h"

#define KEY "u+SECRETKEY123456"

typedef struct {
	long status;
	const char *body;
	int64_t reset, remaining, retry_after;
	tpd_err terr; /* transport failure instead of an answer */
} canned;

typedef struct {
	char *method, *url, *headers, *body;
} seen;

typedef struct {
	canned script[64];
	size_t n, next;
	seen req[64];
	size_t nreq;
	int64_t now;
	int64_t sleeps[64];
	size_t nsleeps;
	tpd_pd *drain_on_sleep; /* a sleep drains this client (SIGTERM while a call waits) */
} fixture;

static tpd_err transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp)
{
	fixture *f = ud;
	tpd_buf h;

	assert_true(f->nreq < 64);
	tpd_buf_init(&h, 0);
	for (size_t i = 0; i < req->n_headers; i++) {
		tpd_buf_puts(&h, req->headers[i]);
		tpd_buf_puts(&h, "\n");
	}
	f->req[f->nreq].method = strdup(req->method);
	f->req[f->nreq].url = strdup(req->url);
	f->req[f->nreq].headers = tpd_buf_steal(&h);
	f->req[f->nreq].body = req->body ? strdup(req->body) : NULL;
	f->nreq++;
	assert_true(f->next < f->n); /* the client made more requests than scripted */
	canned *c = &f->script[f->next++];
	f->now += 5;
	if (c->terr) {
		snprintf(resp->transport_err, sizeof(resp->transport_err), "scripted failure");
		return c->terr;
	}
	resp->status = c->status;
	if (c->body)
		tpd_buf_puts(&resp->body, c->body);
	resp->rl_reset_s = c->reset ? c->reset : -1;
	resp->rl_remaining = c->remaining ? c->remaining : -1;
	resp->retry_after_s = c->retry_after ? c->retry_after : -1;
	return TPD_ERR_OK;
}

static int64_t clk(void *ud)
{
	return ((fixture *)ud)->now;
}

static void slp(void *ud, int64_t ms)
{
	fixture *f = ud;
	if (f->nsleeps < 64)
		f->sleeps[f->nsleeps++] = ms;
	if (f->drain_on_sleep) {
		tpd_pd_drain(f->drain_on_sleep);
		return; /* woken by the drain before the deadline */
	}
	f->now += ms;
}

static void push(fixture *f, long status, const char *body)
{
	f->script[f->n++] = (canned){.status = status, .body = body};
}

static tpd_pd *mk(fixture *f, tpd_metrics *m)
{
	tpd_pd_hooks hooks = {
	    .transport = transport, .transport_ud = f, .now_ms = clk, .sleep_ms = slp, .clock_ud = f};
	tpd_pd_opts o = {.api_endpoint = "https://pd.example.test/",
	                 .api_key = KEY,
	                 .user_email = "bot@example.com",
	                 .user_agent_version = "9.9.9",
	                 .metrics = m,
	                 .hooks = &hooks,
	                 .rate_limit_per_minute = 60000,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	tpd_pd *pd = NULL;
	char err[TPD_ERRLEN];

	f->now = 1000000;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_OK);
	return pd;
}

static int setup(void **state)
{
	*state = calloc(1, sizeof(fixture));
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	for (size_t i = 0; i < f->nreq; i++) {
		free(f->req[i].method);
		free(f->req[i].url);
		free(f->req[i].headers);
		free(f->req[i].body);
	}
	free(f);
	return 0;
}

static void test_new_validates(void **state)
{
	(void)state;
	tpd_pd *pd = NULL;
	char err[TPD_ERRLEN];
	tpd_pd_opts o = {.api_key = "",
	                 .rate_limit_per_minute = 900,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};

	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_CONFIG);
	o.api_key = "abc\n";
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_CONFIG);
	assert_null(strstr(err, "abc"));
	o.api_key = "abcdef";
	o.api_endpoint = "ftp://x";
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_CONFIG);
	o.api_endpoint = NULL;
	o.incident_urgency = "medium";
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_CONFIG);
	o.incident_urgency = "";
	/* No budget of its own: the configuration owns the default. */
	o.rate_limit_per_minute = 0;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "rate_limit_per_minute"));
	o.rate_limit_per_minute = 900;
	/* Nor timeouts or a cache TTL of its own. */
	o.request_timeout_ms = 0;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_INVAL);
	assert_non_null(strstr(err, "request_timeout_ms"));
	o.request_timeout_ms = 10000;
	o.cache_ttl_ms = 0;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_INVAL);
	o.cache_ttl_ms = 300000;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_OK);
	tpd_pd_free(pd);
	tpd_pd_free(NULL);
}

static void test_health_headers_exact(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];

	push(f, 200, "{\"abilities\":[\"teams\"]}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(f->nreq, 1);
	assert_string_equal(f->req[0].method, "GET");
	assert_string_equal(f->req[0].url, "https://pd.example.test/abilities");
	const char *want = "Authorization: Token token=" KEY "\n"
	                   "Accept: application/vnd.pagerduty+json;version=2\n"
	                   "Content-Type: application/json\n"
	                   "User-Agent: teleport-pagerduty/9.9.9 (";
	assert_int_equal(strncmp(f->req[0].headers, want, strlen(want)), 0);
	assert_null(strstr(f->req[0].headers, "From:"));
	assert_null(f->req[0].body);
	tpd_pd_free(pd);
}

#define SVC(id, name, ep)                                                                                    \
	"{\"id\":\"" id "\",\"type\":\"service\",\"name\":\"" name "\",\"escalation_policy\":{\"id\":\"" ep  \
	"\",\"type\":\"escalation_policy_reference\"}}"

static void test_find_service_paged_cached(void **state)
{
	fixture *f = *state;
	tpd_metrics *m = tpd_metrics_new();
	tpd_pd *pd = mk(f, m);
	tpd_pd_service s;
	char err[TPD_ERRLEN];

	push(f, 200,
	     "{\"services\":[" SVC("P1", "My DB replica", "E1") "," SVC(
	         "P2", "my db-2", "E2") "],\"limit\":2,\"offset\":0,\"more\":true,\"total\":null}");
	push(f, 200, "{\"services\":[" SVC("P3", "MY DB", "E3") "],\"limit\":2,\"offset\":2,\"more\":false}");
	assert_int_equal(tpd_pd_find_service(pd, "My DB", &s, err), TPD_ERR_OK);
	assert_string_equal(s.id, "P3");
	assert_string_equal(s.name, "MY DB");
	assert_string_equal(s.escalation_policy_id, "E3");
	tpd_pd_service_clear(&s);
	assert_int_equal(f->nreq, 2);
	assert_string_equal(f->req[0].url,
	                    "https://pd.example.test/services?limit=100&offset=0&query=my%20db");
	/* The second page starts after the items received. */
	assert_string_equal(f->req[1].url,
	                    "https://pd.example.test/services?limit=100&offset=2&query=my%20db");
	/* Cached: no request, a hit counted. */
	assert_int_equal(tpd_pd_find_service(pd, "my db", &s, err), TPD_ERR_OK);
	assert_string_equal(s.id, "P3");
	tpd_pd_service_clear(&s);
	assert_int_equal(f->nreq, 2);
	tpd_metric *hits =
	    tpd_metrics_counter(m, "teleport_pagerduty_pagerduty_cache_hits_total", "", "cache");
	tpd_metric *miss =
	    tpd_metrics_counter(m, "teleport_pagerduty_pagerduty_cache_misses_total", "", "cache");
	assert_true(tpd_metric_value(hits, "service") == 1.0);
	assert_true(tpd_metric_value(miss, "service") == 1.0);
	/* After the TTL (default 5 min) it asks again. */
	f->now += 300001;
	push(f, 200, "{\"services\":[" SVC("P3", "MY DB", "E9") "],\"more\":false}");
	assert_int_equal(tpd_pd_find_service(pd, "My DB", &s, err), TPD_ERR_OK);
	assert_string_equal(s.escalation_policy_id, "E9");
	tpd_pd_service_clear(&s);
	assert_int_equal(f->nreq, 3);
	tpd_metric *reqs =
	    tpd_metrics_counter(m, "teleport_pagerduty_pagerduty_requests_total", "", "call,code");
	assert_true(tpd_metric_value(reqs, "find_service", "200") == 3.0);
	tpd_pd_free(pd);
	tpd_metrics_free(m);
}

static void test_find_service_not_found_negative_cache(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_service s;
	char err[TPD_ERRLEN];

	push(f, 200, "{\"services\":[" SVC("P1", "Other", "E1") "],\"more\":false}");
	assert_int_equal(tpd_pd_find_service(pd, "Missing", &s, err), TPD_ERR_NOT_FOUND);
	assert_null(s.id);
	assert_int_equal(tpd_pd_find_service(pd, "missing", &s, err), TPD_ERR_NOT_FOUND);
	assert_int_equal(f->nreq, 1); /* negative entry */
	f->now += 30001;              /* negative TTL is short */
	push(f, 200, "{\"services\":[],\"more\":false}");
	assert_int_equal(tpd_pd_find_service(pd, "missing", &s, err), TPD_ERR_NOT_FOUND);
	assert_int_equal(f->nreq, 2);
	tpd_pd_free(pd);
}

static void test_find_user_exact_email(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_user u;
	char err[TPD_ERRLEN];

	push(f, 200,
	     "{\"users\":[{\"id\":\"U0\",\"type\":\"user\",\"name\":\"Al\",\"email\":\"alice@example.com."
	     "au\"},"
	     "{\"id\":\"U1\",\"type\":\"user\",\"email\":\"Alice@Example.com\"}],\"more\":false}");
	assert_int_equal(tpd_pd_find_user(pd, "alice@EXAMPLE.com", &u, err), TPD_ERR_OK);
	assert_string_equal(u.id, "U1");
	assert_string_equal(u.name, ""); /* missing name tolerated */
	tpd_pd_user_clear(&u);
	assert_string_equal(f->req[0].url,
	                    "https://pd.example.test/users?limit=100&offset=0&query=alice%40example.com");
	tpd_pd_free(pd);
}

static void test_oncall_paged_and_short_cache(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	const char *ids[] = {"E1", "E2", "E3", "E1"};
	bool on[4];
	char err[TPD_ERRLEN];

	push(f, 200,
	     "{\"oncalls\":[{\"user\":{\"id\":\"U1\",\"type\":\"user_reference\"},\"escalation_policy\":"
	     "{\"id\":\"E2\",\"type\":\"escalation_policy_reference\"},\"escalation_level\":1},"
	     "{\"user\":{\"id\":\"U9\",\"type\":\"user_reference\"},\"escalation_policy\":{\"id\":\"E1\"}}],"
	     "\"limit\":2,\"offset\":0,\"more\":true}");
	push(f, 200,
	     "{\"oncalls\":[{\"user\":{\"id\":\"U1\",\"type\":\"user_reference\"},\"escalation_policy\":"
	     "{\"id\":\"E1\",\"type\":\"escalation_policy_reference\"}},\"junk\",42],\"more\":false}");
	assert_int_equal(tpd_pd_oncall(pd, "U1", ids, 4, on, err), TPD_ERR_OK);
	assert_true(on[0]);
	assert_true(on[1]);
	assert_false(on[2]);
	assert_true(on[3]);
	assert_int_equal(f->nreq, 2);
	assert_string_equal(f->req[0].url, "https://pd.example.test/oncalls?limit=100&offset=0"
	                                   "&escalation_policy_ids%5B%5D=E1&escalation_policy_ids%5B%5D=E2"
	                                   "&escalation_policy_ids%5B%5D=E3&user_ids%5B%5D=U1");
	assert_non_null(strstr(f->req[1].url, "offset=2&"));
	/* Within 10 s: cached. */
	f->now += 9000;
	assert_int_equal(tpd_pd_oncall(pd, "U1", ids, 3, on, err), TPD_ERR_OK);
	assert_int_equal(f->nreq, 2);
	/* After 10 s (even though cache_ttl is 5 min): asked again, and the answer changed. */
	f->now += 1001;
	push(f, 200, "{\"oncalls\":[],\"more\":false}");
	assert_int_equal(tpd_pd_oncall(pd, "U1", ids, 3, on, err), TPD_ERR_OK);
	assert_false(on[0] || on[1] || on[2]);
	assert_int_equal(f->nreq, 3);
	tpd_pd_free(pd);
}

/* auto_approve_escalation_levels / auto_approve_schedules: which entries count, what qualified
 * them, and the answer cached per filter. */
static void test_oncall_filtered(void **state)
{
	static const char answer[] =
	    "{\"oncalls\":["
	    "{\"user\":{\"id\":\"U1\",\"type\":\"user_reference\"},\"escalation_policy\":{\"id\":\"E1\"},"
	    "\"escalation_level\":2,\"schedule\":{\"id\":\"S2\",\"summary\":\"Secondary\"}},"
	    "{\"user\":{\"id\":\"U1\",\"type\":\"user_reference\"},\"escalation_policy\":{\"id\":\"E2\"},"
	    "\"escalation_level\":1,\"schedule\":{\"id\":\"S1\",\"summary\":\"Primary\"}},"
	    "{\"user\":{\"id\":\"U1\",\"type\":\"user_reference\"},\"escalation_policy\":{\"id\":\"E3\"},"
	    "\"escalation_level\":1}"
	    "],\"more\":false}";
	static const int l1[] = {1}, l2[] = {2};
	static const char *const s1[] = {"S1"};
	static const struct {
		tpd_pd_oncall_filter f;
		bool on[3];
		const char *why[3];
	} rows[] = {
	    {{.levels = l1, .n_levels = 1}, {false, true, true}, {NULL, "level 1", "level 1"}},
	    {{.levels = l2, .n_levels = 1}, {true, false, false}, {"level 2", NULL, NULL}},
	    {{.schedules = true, .schedule_ids = s1, .n_schedule_ids = 1},
	     {false, true, false},
	     {NULL, "schedule Primary", NULL}},
	    {{.levels = l1, .n_levels = 1, .schedules = true, .schedule_ids = s1, .n_schedule_ids = 1},
	     {false, true, false},
	     {NULL, "level 1, schedule Primary", NULL}},
	    /* schedules configured, none known: nobody */
	    {{.levels = l1, .n_levels = 1, .schedules = true}, {false, false, false}, {NULL, NULL, NULL}},
	};
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	const char *ids[] = {"E1", "E2", "E3"};
	char err[TPD_ERRLEN];

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		bool on[3];
		char *why[3];

		push(f, 200, answer);
		assert_int_equal(tpd_pd_oncall_filtered(pd, "U1", ids, 3, &rows[r].f, on, why, err),
		                 TPD_ERR_OK);
		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(on[i], rows[r].on[i]);
			if (rows[r].why[i])
				assert_string_equal(why[i], rows[r].why[i]);
			else
				assert_null(why[i]);
			free(why[i]);
		}
		/* The same filter again within 10 s: from the cache, with the same qualifiers. */
		assert_int_equal(tpd_pd_oncall_filtered(pd, "U1", ids, 3, &rows[r].f, on, why, err),
		                 TPD_ERR_OK);
		assert_int_equal(f->nreq, r + 1);
		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(on[i], rows[r].on[i]);
			if (rows[r].why[i])
				assert_string_equal(why[i], rows[r].why[i]);
			free(why[i]);
		}
	}
	tpd_pd_free(pd);
}

static void test_create_incident_exact(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_incident_spec s = {.title = "Access request from alice",
	                          .service_id = "P1",
	                          .incident_key = "teleport-access-request/r1",
	                          .details = "d"};
	char *id = NULL, err[TPD_ERRLEN];
	bool adopted = true;

	push(f, 201, "{\"incident\":{\"id\":\"I1\",\"type\":\"incident\",\"status\":\"triggered\"}}");
	assert_int_equal(tpd_pd_create_incident(pd, &s, &id, &adopted, err), TPD_ERR_OK);
	assert_string_equal(id, "I1");
	assert_false(adopted);
	free(id);
	assert_string_equal(f->req[0].method, "POST");
	assert_string_equal(f->req[0].url, "https://pd.example.test/incidents");
	assert_non_null(strstr(f->req[0].headers, "\nFrom: bot@example.com\n"));
	assert_non_null(strstr(f->req[0].headers, "Content-Type: application/json\n"));
	assert_string_equal(f->req[0].body,
	                    "{\"incident\":{\"type\":\"incident\",\"title\":\"Access request from alice\","
	                    "\"service\":{\"id\":\"P1\",\"type\":\"service_reference\"},"
	                    "\"incident_key\":\"teleport-access-request/r1\","
	                    "\"body\":{\"type\":\"incident_body\",\"details\":\"d\"}}}");
	tpd_pd_free(pd);
}

static void test_create_duplicate_key_adopts(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_incident_spec s = {
	    .title = "t", .service_id = "P1", .incident_key = "teleport-access-request/r1", .details = "d"};
	char *id = NULL, err[TPD_ERRLEN];
	bool adopted = false;

	push(f, 400,
	     "{\"error\":{\"message\":\"Arguments Caused Error\",\"code\":2002,\"errors\":"
	     "[\"Open incident with matching dedup key already exists on this service\"]}}");
	push(f, 200,
	     "{\"incidents\":[{\"id\":\"OLD\",\"status\":\"resolved\",\"incident_key\":\"teleport-access-"
	     "request/r1\"},"
	     "{\"id\":\"I7\",\"status\":\"acknowledged\",\"incident_key\":\"teleport-access-request/r1\"}],"
	     "\"more\":false}");
	assert_int_equal(tpd_pd_create_incident(pd, &s, &id, &adopted, err), TPD_ERR_OK);
	assert_string_equal(id, "I7");
	assert_true(adopted);
	free(id);
	assert_int_equal(f->nreq, 2);
	assert_string_equal(f->req[1].url,
	                    "https://pd.example.test/incidents?limit=100&offset=0&date_range=all"
	                    "&incident_key=teleport-access-request%2Fr1");
	tpd_pd_free(pd);
}

static void test_create_ambiguous_failure_adopts_before_retry(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_incident_spec s = {
	    .title = "t", .service_id = "P1", .incident_key = "teleport-access-request/r2", .details = "d"};
	char *id = NULL, err[TPD_ERRLEN];
	bool adopted = false;
	size_t posts = 0;

	/* The create timed out after PagerDuty made it: the retry looks first and adopts. */
	f->script[f->n++] = (canned){.terr = TPD_ERR_TIMEOUT};
	push(f, 200,
	     "{\"incidents\":[{\"id\":\"I8\",\"status\":\"triggered\",\"incident_key\":\"teleport-access-"
	     "request/r2\"}],"
	     "\"more\":false}");
	assert_int_equal(tpd_pd_create_incident(pd, &s, &id, &adopted, err), TPD_ERR_OK);
	assert_string_equal(id, "I8");
	assert_true(adopted);
	free(id);
	for (size_t i = 0; i < f->nreq; i++)
		posts += strcmp(f->req[i].method, "POST") == 0;
	assert_int_equal(posts, 1);

	/* A 502 where nothing was made: the lookup finds nothing, the create is retried. */
	push(f, 502, "<html>bad gateway</html>");
	push(f, 200, "{\"incidents\":[],\"more\":false}");
	push(f, 201, "{\"incident\":{\"id\":\"I9\"}}");
	s.incident_key = "teleport-access-request/r3";
	assert_int_equal(tpd_pd_create_incident(pd, &s, &id, &adopted, err), TPD_ERR_OK);
	assert_string_equal(id, "I9");
	assert_false(adopted);
	free(id);

	/* A 201 whose body is garbage: the incident exists, so it is looked up. */
	push(f, 201, "{\"incident\":");
	push(f, 200, "{\"incidents\":[{\"id\":\"I10\",\"status\":\"triggered\"}],\"more\":false}");
	s.incident_key = "teleport-access-request/r4";
	assert_int_equal(tpd_pd_create_incident(pd, &s, &id, &adopted, err), TPD_ERR_OK);
	assert_string_equal(id, "I10");
	assert_true(adopted);
	free(id);
	tpd_pd_free(pd);
}

static void test_retries_5xx_then_success(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];

	push(f, 500, NULL);
	push(f, 503, "{\"error\":{\"message\":\"oops\",\"code\":2000}}");
	f->script[f->n++] = (canned){.terr = TPD_ERR_UNAVAILABLE};
	push(f, 200, "{\"abilities\":[]}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(f->nreq, 4);
	assert_int_equal(f->nsleeps, 3);
	assert_int_equal(f->sleeps[0], 250);
	for (size_t i = 1; i < f->nsleeps; i++)
		assert_in_range(f->sleeps[i], 250, f->sleeps[i - 1] * 3);
	tpd_pd_free(pd);
}

static void test_retry_budget_exhausted(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];
	int64_t start = f->now;

	for (int i = 0; i < 60; i++)
		push(f, 503, NULL);
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_UNAVAILABLE);
	assert_true(f->now - start <= 30000);
	assert_true(f->nreq >= 4);
	assert_non_null(strstr(err, "giving up"));
	assert_non_null(strstr(err, "HTTP 503"));
	tpd_pd_free(pd);
}

static void test_429_honours_reset_then_rate_limited(void **state)
{
	fixture *f = *state;
	tpd_metrics *m = tpd_metrics_new();
	tpd_pd *pd = mk(f, m);
	char err[TPD_ERRLEN];

	f->script[f->n++] =
	    (canned){.status = 429,
	             .body = "{\"error\":{\"message\":\"Rate Limit Exceeded\",\"code\":2020}}",
	             .reset = 2,
	             .remaining = 0};
	push(f, 200, "{}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(f->nsleeps, 1);
	assert_in_range(f->sleeps[0], 2000, 2249);
	/* A storm longer than the budget ends in RATE_LIMITED. */
	for (int i = 0; i < 5; i++)
		f->script[f->n++] = (canned){.status = 429, .reset = 20};
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_RATE_LIMITED);
	assert_non_null(strstr(err, "Rate Limit Exceeded") ? strstr(err, "Rate Limit Exceeded")
	                                                   : strstr(err, "429"));
	tpd_metric *rl = tpd_metrics_counter(m, "teleport_pagerduty_pagerduty_rate_limited_total", "", NULL);
	assert_true(tpd_metric_value(rl) >= 2.0);
	tpd_pd_free(pd);
	tpd_metrics_free(m);
}

/* The budget is per rolling minute: calls under it go at once; the call past it waits (one
 * sleep), is counted with its wait, and the wait does not use up the retry budget (5 s here). */
static void test_limiter_wait_counted_and_not_a_failure(void **state)
{
	fixture *f = *state;
	tpd_metrics *m = tpd_metrics_new();
	tpd_pd_hooks hooks = {
	    .transport = transport, .transport_ud = f, .now_ms = clk, .sleep_ms = slp, .clock_ud = f};
	tpd_pd_opts o = {.api_key = KEY,
	                 .metrics = m,
	                 .hooks = &hooks,
	                 .max_retry_ms = 5000,
	                 .rate_limit_per_minute = 2,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	tpd_pd *pd = NULL;
	char err[TPD_ERRLEN];

	f->now = 1000000;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_OK);
	for (int i = 0; i < 3; i++)
		push(f, 200, "{}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(f->nsleeps, 0);
	/* The first call went at 1,000,000; the third goes a minute later (the transport takes 5 ms). */
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	assert_int_equal(f->nsleeps, 1);
	assert_int_equal(f->sleeps[0], 60000 - 10);
	tpd_metric *waits =
	    tpd_metrics_counter(m, "teleport_pagerduty_pagerduty_limiter_waits_total", "", "op");
	tpd_metric *secs =
	    tpd_metrics_counter(m, "teleport_pagerduty_pagerduty_limiter_wait_seconds_total", "", "op");
	assert_true(tpd_metric_value(waits, "other") == 1.0);
	assert_true(tpd_metric_value(secs, "other") > 59.98 && tpd_metric_value(secs, "other") < 60.0);
	assert_true(tpd_metric_value(waits, "create_incident") == 0.0);
	/* Exposed as 0 before any wait. */
	char *text = tpd_metrics_render(m);
	assert_non_null(strstr(text, "teleport_pagerduty_pagerduty_limiter_waits_total{op=\"oncalls\"} 0"));
	free(text);
	tpd_pd_free(pd);
	tpd_metrics_free(m);
}

/* A graceful stop does not wait out the limiter: the waiting call gives up at once, unsent. */
static void test_drain_cancels_a_call_waiting_in_the_limiter(void **state)
{
	fixture *f = *state;
	tpd_pd_hooks hooks = {
	    .transport = transport, .transport_ud = f, .now_ms = clk, .sleep_ms = slp, .clock_ud = f};
	tpd_pd_opts o = {.api_key = KEY,
	                 .hooks = &hooks,
	                 .max_retry_ms = 5000,
	                 .rate_limit_per_minute = 1,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	tpd_pd *pd = NULL;
	char err[TPD_ERRLEN];

	f->now = 1000000;
	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_OK);
	push(f, 200, "{}");
	push(f, 200, "{}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_OK);
	f->drain_on_sleep = pd;
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_CANCELLED);
	assert_int_equal(f->nsleeps, 1); /* it did start to wait for the minute ... */
	assert_int_equal(f->nreq, 1);    /* ... and never sent the second call */
	assert_true(f->now - 1000000 < 1000);
	f->drain_on_sleep = NULL;
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_CANCELLED); /* nothing new goes out */
	assert_int_equal(f->nreq, 1);
	tpd_pd_free(pd);
}

static void test_4xx_not_retried_and_mapped(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_service s;
	char err[TPD_ERRLEN];

	push(f, 401, "{\"error\":{\"message\":\"Authentication failed for " KEY "\",\"code\":2006}}");
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_ACCESS_DENIED);
	assert_non_null(strstr(err, "API key rejected"));
	assert_null(strstr(err, "SECRETKEY")); /* even when the server echoes it */
	push(f, 403, "{\"error\":{\"message\":\"Access Denied\",\"code\":2010}}");
	assert_int_equal(tpd_pd_add_note(pd, "I1", "x", err), TPD_ERR_ACCESS_DENIED);
	assert_non_null(strstr(err, "read-only API key?"));
	push(f, 404, "{\"error\":{\"message\":\"Not Found\",\"code\":2100}}");
	assert_int_equal(tpd_pd_add_note(pd, "NOPE", "x", err), TPD_ERR_NOT_FOUND);
	push(f, 400,
	     "{\"error\":{\"message\":\"Invalid Input Provided\",\"code\":2001,\"errors\":[\"query is "
	     "bad\"]}}");
	assert_int_equal(tpd_pd_find_service(pd, "x", &s, err), TPD_ERR_REMOTE);
	assert_string_equal(
	    err, "PagerDuty find_service: HTTP 400: Invalid Input Provided (code 2001): query is bad");
	assert_int_equal(f->nreq, 4);
	assert_int_equal(f->nsleeps, 0);
	tpd_pd_free(pd);
}

static void test_hostile_answers(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	tpd_pd_service s;
	tpd_pd_user u;
	bool on[1];
	const char *ids[] = {"E1"};
	char *id, err[TPD_ERRLEN];

	push(f, 200, "<html>hello</html>");
	assert_int_equal(tpd_pd_find_service(pd, "a", &s, err), TPD_ERR_PROTOCOL);
	push(f, 200, "{\"services\":{\"id\":1}}");
	assert_int_equal(tpd_pd_find_service(pd, "b", &s, err), TPD_ERR_PROTOCOL);
	push(f, 200, "[1,2,3]");
	assert_int_equal(tpd_pd_find_user(pd, "a@b.c", &u, err), TPD_ERR_PROTOCOL);
	/* Elements with wrong types are skipped; "more" of the wrong type ends paging. */
	push(f, 200,
	     "{\"users\":[null,7,{\"id\":5,\"email\":\"a@b.c\"},{\"id\":\"U\",\"email\":[\"a@b.c\"]}],"
	     "\"more\":\"yes\"}");
	assert_int_equal(tpd_pd_find_user(pd, "a@b.c", &u, err), TPD_ERR_NOT_FOUND);
	push(f, 200, "{\"oncalls\":[{\"user\":\"U1\",\"escalation_policy\":null}],\"more\":false}");
	assert_int_equal(tpd_pd_oncall(pd, "U1", ids, 1, on, err), TPD_ERR_OK);
	assert_false(on[0]);
	push(f, 200,
	     "{\"incidents\":[{\"id\":\"I1\",\"incident_key\":\"other\",\"status\":\"triggered\"}],\"more\":"
	     "false}");
	assert_int_equal(tpd_pd_find_incident_by_key(pd, "k", &id, NULL, err), TPD_ERR_NOT_FOUND);
	assert_null(id);
	tpd_pd_free(pd);
}

static void test_resolve_and_already_resolved(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];

	push(f, 200, "{\"incident\":{\"id\":\"I1\",\"status\":\"resolved\"}}");
	assert_int_equal(tpd_pd_resolve_incident(pd, "I1", err), TPD_ERR_OK);
	assert_string_equal(f->req[0].method, "PUT");
	assert_string_equal(f->req[0].url, "https://pd.example.test/incidents/I1");
	assert_string_equal(f->req[0].body,
	                    "{\"incident\":{\"type\":\"incident_reference\",\"status\":\"resolved\"}}");
	assert_non_null(strstr(f->req[0].headers, "From: bot@example.com"));
	push(f, 400, "{\"error\":{\"message\":\"Incident Already Resolved\",\"code\":1001}}");
	assert_int_equal(tpd_pd_resolve_incident(pd, "I1", err), TPD_ERR_OK);
	/* Notes: any 2xx is fine, content is escaped, the id is path-encoded. */
	push(f, 201, "{\"note\":{\"id\":\"N1\"}}");
	assert_int_equal(tpd_pd_add_note(pd, "I/1", "hi", err), TPD_ERR_OK);
	assert_string_equal(f->req[2].url, "https://pd.example.test/incidents/I%2F1/notes");
	assert_string_equal(f->req[2].body, "{\"note\":{\"content\":\"hi\"}}");
	tpd_pd_free(pd);
}

static size_t count_method(const fixture *f, size_t from, const char *method)
{
	size_t n = 0;

	for (size_t i = from; i < f->nreq; i++)
		n += strcmp(f->req[i].method, method) == 0;
	return n;
}

static void test_note_ambiguous_failures_never_duplicate(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];
	bool have = true;
	int64_t longest = 0;
	size_t before;

	/* Dropped after sending: the retry checks the notes first and finds it. */
	f->script[f->n++] = (canned){.terr = TPD_ERR_UNAVAILABLE};
	push(f, 200, "{\"notes\":[{\"id\":\"N1\",\"content\":\"hello\"}]}");
	assert_int_equal(tpd_pd_add_note(pd, "I1", "hello", err), TPD_ERR_OK);
	assert_int_equal(count_method(f, 0, "POST"), 1);
	assert_int_equal(f->nreq, 2);

	/* Dropped, and the check's own answer is garbled: check again (never post blindly). */
	before = f->nreq;
	f->script[f->n++] = (canned){.terr = TPD_ERR_UNAVAILABLE};
	push(f, 200, "{\"notes\":[{\"id");
	push(f, 200, "{\"notes\":[{\"id\":\"N9\",\"content\":\"checked twice\"}]}");
	assert_int_equal(tpd_pd_add_note(pd, "I9", "checked twice", err), TPD_ERR_OK);
	assert_int_equal(count_method(f, before, "POST"), 1);
	assert_int_equal(f->nreq, before + 3);

	/* Timed out: PagerDuty may still store it later, so the check waits one request_timeout
	 * (10 s by default) for that straggler before it looks, then posts since it is missing. */
	f->nsleeps = 0;
	before = f->nreq;
	f->script[f->n++] = (canned){.terr = TPD_ERR_TIMEOUT};
	push(f, 200, "{\"notes\":[]}");
	push(f, 201, "{\"note\":{\"id\":\"N2\"}}");
	assert_int_equal(tpd_pd_add_note(pd, "I2", "again", err), TPD_ERR_OK);
	assert_int_equal(count_method(f, before, "POST"), 2);
	for (size_t i = 0; i < f->nsleeps; i++)
		longest = f->sleeps[i] > longest ? f->sleeps[i] : longest;
	assert_in_range(longest, 9000, 10000);

	/* A later check of the same incident, once settled, does not wait again. */
	f->nsleeps = 0;
	push(f, 200, "{\"notes\":[]}");
	assert_int_equal(tpd_pd_incident_has_note(pd, "I2", "x", &have, err), TPD_ERR_OK);
	assert_false(have);
	assert_int_equal(f->nsleeps, 0);

	/* A 504 (a gateway gave up; the API may still finish): same wait. */
	f->nsleeps = 0;
	push(f, 504, "<html>gateway timeout</html>");
	push(f, 200, "{\"notes\":[{\"id\":\"N3\",\"content\":\"late\"}]}");
	before = f->nreq;
	assert_int_equal(tpd_pd_add_note(pd, "I3", "late", err), TPD_ERR_OK);
	assert_int_equal(count_method(f, before, "POST"), 1);
	assert_true(f->nsleeps >= 1);

	/* 201 with a garbled body: whether it was stored cannot be told (a proxy may have made it
	 * up), so the notes are checked: there, done; missing, posted again. */
	before = f->nreq;
	push(f, 201, "{\"note\":{\"id");
	push(f, 200, "{\"notes\":[{\"id\":\"N4\",\"content\":\"once\"}]}");
	assert_int_equal(tpd_pd_add_note(pd, "I4", "once", err), TPD_ERR_OK);
	assert_int_equal(count_method(f, before, "POST"), 1);
	assert_int_equal(f->nreq, before + 2);
	before = f->nreq;
	push(f, 200, "<html>maintenance</html>");
	push(f, 200, "{\"notes\":[]}");
	push(f, 201, "{\"note\":{\"id\":\"N5\"}}");
	assert_int_equal(tpd_pd_add_note(pd, "I5", "twice sent, once stored", err), TPD_ERR_OK);
	assert_int_equal(count_method(f, before, "POST"), 2);
	tpd_pd_free(pd);
}

static void test_add_note_once(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];
	bool posted = true;

	/* Already there: listed, not posted. */
	push(f, 200, "{\"notes\":[{\"id\":\"N1\",\"content\":\"resolved\"}]}");
	assert_int_equal(tpd_pd_add_note_once(pd, "I1", "resolved", &posted, err), TPD_ERR_OK);
	assert_false(posted);
	assert_int_equal(count_method(f, 0, "POST"), 0);
	/* Missing (another note does not count): posted. */
	push(f, 200, "{\"notes\":[{\"id\":\"N1\",\"content\":\"resolved!\"}]}");
	push(f, 201, "{\"note\":{\"id\":\"N2\"}}");
	assert_int_equal(tpd_pd_add_note_once(pd, "I1", "resolved", &posted, err), TPD_ERR_OK);
	assert_true(posted);
	assert_int_equal(count_method(f, 0, "POST"), 1);
	/* The listing fails: nothing is posted. */
	push(f, 404, "{\"error\":{\"message\":\"Not Found\",\"code\":2100}}");
	assert_int_equal(tpd_pd_add_note_once(pd, "I2", "resolved", &posted, err), TPD_ERR_NOT_FOUND);
	assert_false(posted);
	assert_int_equal(count_method(f, 0, "POST"), 1);
	tpd_pd_free(pd);
}

typedef struct {
	char ids[8][16];
	int n;
} collected;

static void collect(void *ud, const char *id, const char *key)
{
	collected *c = ud;
	(void)key;
	snprintf(c->ids[c->n++], 16, "%s", id);
}

static void test_list_open_incidents_prefix_paged(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	collected c = {0};
	char err[TPD_ERRLEN];

	push(f, 200,
	     "{\"incidents\":[{\"id\":\"A\",\"status\":\"triggered\",\"incident_key\":\"teleport-access-"
	     "request/1\"},"
	     "{\"id\":\"B\",\"status\":\"triggered\",\"incident_key\":\"someone-else/1\"}],\"more\":true}");
	push(f, 200,
	     "{\"incidents\":[{\"id\":\"C\",\"status\":\"acknowledged\",\"incident_key\":\"teleport-access-"
	     "request/2\"},"
	     "{\"id\":\"D\",\"status\":\"triggered\",\"incident_key\":null}],\"more\":false}");
	assert_int_equal(tpd_pd_list_open_incidents(pd, TPD_PD_INCIDENT_KEY_PREFIX, collect, &c, err),
	                 TPD_ERR_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "A");
	assert_string_equal(c.ids[1], "C");
	assert_string_equal(f->req[0].url,
	                    "https://pd.example.test/incidents?limit=100&offset=0&date_range=all"
	                    "&statuses%5B%5D=triggered&statuses%5B%5D=acknowledged");
	assert_non_null(strstr(f->req[1].url, "offset=2&"));
	tpd_pd_free(pd);
}

static void test_shutdown_cancels(void **state)
{
	fixture *f = *state;
	tpd_pd *pd = mk(f, NULL);
	char err[TPD_ERRLEN];

	tpd_pd_shutdown(pd);
	assert_int_equal(tpd_pd_health(pd, err), TPD_ERR_CANCELLED);
	assert_int_equal(f->nreq, 0);
	tpd_pd_free(pd);
}

static void test_writes_need_user_email(void **state)
{
	fixture *f = *state;
	tpd_pd_hooks hooks = {
	    .transport = transport, .transport_ud = f, .now_ms = clk, .sleep_ms = slp, .clock_ud = f};
	tpd_pd_opts o = {.api_key = KEY,
	                 .hooks = &hooks,
	                 .rate_limit_per_minute = 900,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	tpd_pd *pd = NULL;
	char err[TPD_ERRLEN];

	assert_int_equal(tpd_pd_new(&o, &pd, err), TPD_ERR_OK);
	assert_int_equal(tpd_pd_add_note(pd, "I1", "x", err), TPD_ERR_CONFIG);
	assert_int_equal(f->nreq, 0);
	tpd_pd_free(pd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_validates),
	    cmocka_unit_test_setup_teardown(test_health_headers_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find_service_paged_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find_service_not_found_negative_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find_user_exact_email, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oncall_filtered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oncall_paged_and_short_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_incident_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_duplicate_key_adopts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_ambiguous_failure_adopts_before_retry, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_retries_5xx_then_success, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_budget_exhausted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_429_honours_reset_then_rate_limited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limiter_wait_counted_and_not_a_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain_cancels_a_call_waiting_in_the_limiter, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_4xx_not_retried_and_mapped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resolve_and_already_resolved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_note_ambiguous_failures_never_duplicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_note_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_open_incidents_prefix_paged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_cancels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writes_need_user_email, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
