/* test_executor.c - the executor (one reconcile pass of a key) through the clients' test seams: the
 * Teleport hook table (plugin data kept here, with compare-and-swap) and the PagerDuty transport
 * hook (a small routing fake). Each case checks what was written where, and in which order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/pagerduty/pagerduty_hooks.h"
#include "../../src/runtime/controller_impl.h"
#include "../../src/teleport/teleport_hooks.h"
#include "tpd/config.h"

#define MAX_CALLS 64

typedef struct {
	/* Teleport */
	tpd_plugin_data stored;
	bool have;
	int cas_conflicts; /* the next updates fail like a concurrent writer's */
	int n_get, n_update, n_review;
	char review_reason[512];
	/* PagerDuty */
	long create_status; /* answer to POST /incidents; 0 = 201 */
	bool on_call;
	char calls[MAX_CALLS][128];
	size_t n_calls;
} fixture;

/* ---- Teleport hooks ---- */

static tpd_err tp_get(void *ud, const char *id, tpd_plugin_data *out, char *err)
{
	fixture *f = ud;

	(void)id;
	f->n_get++;
	tpd_plugin_data_init(out);
	if (!f->have)
		return tpd_seterr(err, TPD_ERR_NOT_FOUND, "no plugin data");
	tpd_plugin_data_clear(out);
	tpd_plugin_data_copy(out, &f->stored);
	return TPD_ERR_OK;
}

static tpd_err tp_update(void *ud, const char *id, const tpd_plugin_data *set, const tpd_plugin_data *expect,
                         char *err)
{
	fixture *f = ud;
	bool match;

	(void)id;
	f->n_update++;
	if (f->cas_conflicts > 0) {
		f->cas_conflicts--;
		return tpd_seterr(err, TPD_ERR_COMPARE_FAILED, "scripted conflict");
	}
	/* Teleport's compare-and-swap: expect NULL means nothing stored (every key empty). */
	match = expect ? f->have && tpd_plugin_data_equal(expect, &f->stored)
	               : !f->have || tpd_plugin_data_is_empty(&f->stored);
	if (!match)
		return tpd_seterr(err, TPD_ERR_COMPARE_FAILED, "plugin data changed");
	if (f->have)
		tpd_plugin_data_clear(&f->stored);
	tpd_plugin_data_copy(&f->stored, set);
	f->have = true;
	return TPD_ERR_OK;
}

static tpd_err tp_review(void *ud, const char *id, const char *reason, char *err)
{
	fixture *f = ud;

	(void)id;
	(void)err;
	f->n_review++;
	snprintf(f->review_reason, sizeof(f->review_reason), "%s", reason);
	return TPD_ERR_OK;
}

/* ---- PagerDuty transport ---- */

static tpd_err pd_transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp)
{
	fixture *f = ud;
	const char *path = strstr(req->url, ".test") + strlen(".test");
	char route[128];
	const char *body = "{}";
	long status = 200;

	snprintf(route, sizeof(route), "%s %.*s", req->method, (int)strcspn(path, "?"), path);
	if (f->n_calls < MAX_CALLS)
		snprintf(f->calls[f->n_calls++], sizeof(f->calls[0]), "%s", route);
	if (!strcmp(route, "GET /services"))
		body = "{\"services\":[{\"id\":\"PSVC1\",\"name\":\"Svc\",\"escalation_policy\":{\"id\":"
		       "\"PEP1\"}}],"
		       "\"more\":false}";
	else if (!strcmp(route, "GET /users"))
		body = "{\"users\":[{\"id\":\"PUSER1\",\"name\":\"Alice\",\"email\":\"alice@example.com\"}],"
		       "\"more\":false}";
	else if (!strcmp(route, "GET /oncalls"))
		body = f->on_call ? "{\"oncalls\":[{\"user\":{\"id\":\"PUSER1\",\"type\":\"user_reference\"},"
		                    "\"escalation_policy\":{\"id\":\"PEP1\"}}],\"more\":false}"
		                  : "{\"oncalls\":[],\"more\":false}";
	else if (!strcmp(route, "GET /incidents"))
		body = "{\"incidents\":[],\"more\":false}";
	else if (!strcmp(route, "POST /incidents")) {
		status = f->create_status ? f->create_status : 201;
		body = status == 201 ? "{\"incident\":{\"id\":\"PINC1\"}}"
		                     : "{\"error\":{\"message\":\"Invalid Input Provided\",\"code\":2001}}";
	} else if (!strcmp(route, "POST /incidents/PINC1/notes")) {
		status = 201;
		body = "{\"note\":{\"id\":\"N1\"}}";
	} else if (!strcmp(route, "GET /incidents/PINC1/notes"))
		body = "{\"notes\":[]}";
	else if (!strcmp(route, "PUT /incidents/PINC1"))
		body = "{\"incident\":{\"id\":\"PINC1\",\"status\":\"resolved\"}}";
	else if (!strcmp(route, "GET /incidents/PINC1"))
		body = "{\"incident\":{\"id\":\"PINC1\",\"status\":\"triggered\"}}";
	else
		status = 404;
	resp->status = status;
	tpd_buf_puts(&resp->body, body);
	return TPD_ERR_OK;
}

static int64_t clk(void *ud)
{
	(void)ud;
	return 1000000;
}

static void slp(void *ud, int64_t ms)
{
	(void)ud;
	(void)ms;
}

/* ---- setup ---- */

typedef struct {
	fixture f;
	tpd_config *cfg;
	tpd_logger *lg;
	tpd_controller *c;
	/* What the last run() reported. */
	bool pending; /* auto-approval still to be tried */
	const char *reason;
	char err[TPD_ERRLEN];
} env;

static int setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	char err[TPD_ERRLEN];
	tpd_teleport_hooks th = {tp_get, tp_update, tp_review, &e->f};
	tpd_pd_hooks ph = {.transport = pd_transport, .transport_ud = &e->f, .now_ms = clk, .sleep_ms = slp};
	tpd_teleport_opts to = {.hooks = &th};
	tpd_pd_opts po = {.api_endpoint = "https://pd.example.test",
	                  .api_key = "u+EXECUTORTESTKEY",
	                  .user_email = "bot@example.com",
	                  .rate_limit_per_minute = 60000,
	                  .hooks = &ph,
	                  .cache_ttl_ms = 300000,
	                  .connect_timeout_ms = 5000,
	                  .request_timeout_ms = 10000};

	e->cfg = tpd_config_defaults("test");
	e->lg = tpd_logger_new();
	tpd_logger_set_level(e->lg, getenv("TPD_TEST_TRACE") ? TPD_LOG_TRACE : TPD_LOG_ERROR);
	assert_int_equal(tpd_controller_new(e->cfg, e->lg, &e->c, err), TPD_ERR_OK);
	/* Loading a config resolves the annotation names; the bare defaults leave them empty. */
	e->c->ropts = (tpd_reconcile_opts){"pagerduty_notify_service", "pagerduty_services"};
	assert_int_equal(tpd_teleport_new(&to, &e->c->tp, err), TPD_ERR_OK);
	assert_int_equal(tpd_pd_new(&po, &e->c->pd, err), TPD_ERR_OK);
	tpd_plugin_data_init(&e->f.stored);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;

	tpd_controller_free(e->c);
	tpd_logger_free(e->lg);
	tpd_config_free(e->cfg);
	tpd_plugin_data_clear(&e->f.stored);
	free(e);
	return 0;
}

/* Puts a request into the controller's cache, as the informer does. */
static void cache_request(env *e, tpd_request_state state, bool services, size_t n_reviews)
{
	tpd_access_request *r = calloc(1, sizeof(*r));
	const char *svc[] = {"Svc"};

	r->id = strdup("req-1");
	r->user = strdup("alice@example.com");
	r->state = state;
	r->created = 1622554037;
	tpd_access_request_add_role(r, "editor");
	tpd_access_request_add_annotation(r, "pagerduty_notify_service", svc, 1);
	if (services)
		tpd_access_request_add_annotation(r, "pagerduty_services", svc, 1);
	for (size_t i = 0; i < n_reviews; i++)
		tpd_access_request_add_review(r, "bob@example.com", TPD_STATE_APPROVED, 1622554100, "ok");
	pthread_mutex_lock(&e->c->cache_mu);
	tpd_access_request_free(ctl_cache_put(e->c->cache, r, true));
	pthread_mutex_unlock(&e->c->cache_mu);
}

/* One reconcile pass of req-1, as a watch event triggers it; its report lands in e. */
static tpd_err run(env *e)
{
	e->err[0] = '\0';
	e->pending = true;
	e->reason = NULL;
	return ctl_reconcile_key(e->c, "req-1", TPD_WQ_EVENT, &e->pending, e->err, &e->reason);
}

static bool called(const fixture *f, const char *route)
{
	for (size_t i = 0; i < f->n_calls; i++)
		if (!strcmp(f->calls[i], route))
			return true;
	return false;
}

/* ---- cases ---- */

/* A new pending request: intent first, then the incident, then its id. */
static void test_pending_opens_incident(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_PENDING, false, 0);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_true(e->f.have);
	assert_string_equal(e->f.stored.incident_id, "PINC1");
	assert_string_equal(e->f.stored.service_id, "PSVC1");
	assert_string_equal(e->f.stored.user, "alice@example.com");
	assert_string_equal(e->f.stored.roles, "editor");
	assert_int_equal(e->f.n_update, 2); /* the intent, then the incident id */
	assert_int_equal(e->f.n_review, 0);
	assert_true(called(&e->f, "POST /incidents"));
}

/* An approved request with an incident: its review is noted, then the incident resolved. */
static void test_approved_notes_and_resolves(void **state)
{
	env *e = *state;
	tpd_plugin_data_set(&e->f.stored, "incident_id", "PINC1");
	tpd_plugin_data_set(&e->f.stored, "service_id", "PSVC1");
	tpd_plugin_data_set(&e->f.stored, "user", "alice@example.com");
	e->f.have = true;
	cache_request(e, TPD_STATE_APPROVED, false, 1);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_string_equal(e->f.stored.reviews_count, "1");
	assert_string_equal(e->f.stored.resolution, "approved");
	assert_string_equal(e->f.stored.pd_resolved, "true");
	assert_true(called(&e->f, "POST /incidents/PINC1/notes"));
	assert_true(called(&e->f, "PUT /incidents/PINC1"));
	assert_false(called(&e->f, "POST /incidents"));
}

/* The notification fails for good: the requester on call is still approved, the pass fails on
 * the PagerDuty side (and is retried), and the approval is not tried again. */
static void test_notify_failure_still_approves(void **state)
{
	env *e = *state;
	e->f.create_status = 400;
	e->f.on_call = true;
	cache_request(e, TPD_STATE_PENDING, true, 0);
	assert_int_not_equal(run(e), TPD_ERR_OK);
	assert_string_equal(e->reason, "pagerduty");
	assert_non_null(strstr(e->err, "Invalid Input Provided")); /* the failure kept, not the approval's */
	assert_int_equal(e->f.n_review, 1);
	assert_non_null(strstr(e->f.review_reason, "on call in service(s) Svc"));
	assert_false(e->pending);
	assert_string_equal(e->f.stored.incident_id, "");
}

/* Not on call: no review, and the pass is done. */
static void test_not_on_call_no_review(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_PENDING, true, 0);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_int_equal(e->f.n_review, 0);
	assert_true(called(&e->f, "GET /oncalls"));
	assert_false(e->pending);
	assert_string_equal(e->f.stored.incident_id, "PINC1");
}

/* Someone else wrote the plugin data meanwhile: re-read, plan again, converge. */
static void test_conflict_replans(void **state)
{
	env *e = *state;
	e->f.cas_conflicts = 1;
	cache_request(e, TPD_STATE_PENDING, false, 0);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_string_equal(e->f.stored.incident_id, "PINC1");
	assert_int_equal(e->f.n_update, 3);
	assert_true(e->f.n_get >= 2); /* read again after the conflict */
}

/* A whole lifecycle (created, reviewed while pending, approved) costs at most 6 Teleport calls:
 * one read, then every later pass starts from what this process wrote (issue 16). */
static void test_lifecycle_teleport_calls(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_PENDING, false, 0);
	assert_int_equal(run(e), TPD_ERR_OK); /* intent, incident id */
	cache_request(e, TPD_STATE_PENDING, false, 1);
	assert_int_equal(run(e), TPD_ERR_OK); /* note, count */
	cache_request(e, TPD_STATE_APPROVED, false, 1);
	assert_int_equal(run(e), TPD_ERR_OK); /* resolution, pd_resolved */
	assert_string_equal(e->f.stored.pd_resolved, "true");
	assert_string_equal(e->f.stored.reviews_count, "1");
	assert_int_equal(e->f.n_get, 1);
	assert_int_equal(e->f.n_update, 5);
	/* A relist or a new leadership reads afresh. */
	ctl_on_leadership(e->c, true);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_int_equal(e->f.n_get, 2);
}

/* What this process remembers is checked by the next write: another writer's change makes the
 * compare-and-swap fail, and the pass re-reads and converges on the stored data. */
static void test_stale_memory_caught_by_cas(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_PENDING, false, 0);
	assert_int_equal(run(e), TPD_ERR_OK);
	/* Someone else resolved and recorded it meanwhile. */
	tpd_plugin_data_set(&e->f.stored, "resolution", "denied");
	tpd_plugin_data_set(&e->f.stored, "pd_resolved", "true");
	cache_request(e, TPD_STATE_DENIED, false, 0);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_int_equal(e->f.n_get, 2); /* the failed write made it read again */
	assert_string_equal(e->f.stored.resolution, "denied");
	assert_false(called(&e->f, "PUT /incidents/PINC1")); /* nothing repeated */
}

/* A request with nothing stored, never seen PENDING: nothing to do, twice; the second pass starts
 * from the remembered "nothing stored" without reading (and, under LeakSanitizer, leaks nothing). */
static void test_remembered_nothing(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_APPROVED, false, 0);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_int_equal(e->f.n_get, 1);
	assert_int_equal(e->f.n_update, 0);
	assert_false(e->f.have);
}

/* A request the informer saw created (a live PUT event, not in the list) starts from "nothing
 * stored": its whole lifecycle costs the 5 writes and no read. */
static void test_created_live_reads_nothing(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_PENDING, false, 0);
	pthread_mutex_lock(&e->c->cache_mu);
	ctl_known_assume_new(e->c, "req-1");
	pthread_mutex_unlock(&e->c->cache_mu);
	assert_int_equal(run(e), TPD_ERR_OK);
	cache_request(e, TPD_STATE_PENDING, false, 1);
	assert_int_equal(run(e), TPD_ERR_OK);
	cache_request(e, TPD_STATE_APPROVED, false, 1);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_string_equal(e->f.stored.pd_resolved, "true");
	assert_int_equal(e->f.n_get, 0);
	assert_int_equal(e->f.n_update, 5);
}

/* The assumption is wrong (another process already opened the incident): the first write's
 * compare-and-swap fails, the pass reads and converges without a second incident. */
static void test_created_live_assumption_checked(void **state)
{
	env *e = *state;
	cache_request(e, TPD_STATE_PENDING, false, 0);
	e->f.have = true;
	tpd_plugin_data_set(&e->f.stored, "incident_id", "PINC9");
	tpd_plugin_data_set(&e->f.stored, "service_id", "PSVC1");
	pthread_mutex_lock(&e->c->cache_mu);
	ctl_known_assume_new(e->c, "req-1");
	pthread_mutex_unlock(&e->c->cache_mu);
	assert_int_equal(run(e), TPD_ERR_OK);
	assert_int_equal(e->f.n_get, 1);
	assert_false(called(&e->f, "POST /incidents"));
	assert_string_equal(e->f.stored.incident_id, "PINC9");
}

/* The memory of plugin data gives back exactly what it was given, every key (it keeps the values
 * the cached request cannot give back, packed in one allocation), and "nothing stored" as such. */
static void test_known_roundtrip(void **state)
{
	env *e = *state;
	tpd_plugin_data in, out;
	bool have = false;
	char reason[600];

	cache_request(e, TPD_STATE_PENDING, false, 0);
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	tpd_plugin_data_init(&in);
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		char v[64];

		snprintf(v, sizeof(v), "value %zu, \xc3\xa9=", i);
		tpd_plugin_data_set(&in, tpd_plugin_data_keys[i], v);
	}
	tpd_plugin_data_set(&in, "resolve_reason", "");
	tpd_plugin_data_set(&in, "request_reason", reason);
	ctl_known_store(e->c, "req-1", &in, true);
	assert_true(ctl_known_load(e->c, "req-1", &out, &have));
	assert_true(have);
	assert_true(tpd_plugin_data_equal(&in, &out));
	assert_string_equal(out.request_reason, reason);
	assert_string_equal(out.resolve_reason, "");
	tpd_plugin_data_clear(&out);

	/* What a pass writes first: the request's own fields (kept as "as the request says"), then
	 * the incident. The fields come back from the cached request. */
	tpd_plugin_data_clear(&in);
	tpd_plugin_data_init(&in);
	pthread_mutex_lock(&e->c->cache_mu);
	tpd_plugin_data_from_request(&in, ctl_cache_req(e->c->cache, "req-1"));
	pthread_mutex_unlock(&e->c->cache_mu);
	assert_false(tpd_str_empty(in.user));
	assert_false(tpd_str_empty(in.roles));
	tpd_plugin_data_set(&in, "incident_id", "PINC1");
	ctl_known_store(e->c, "req-1", &in, true);
	assert_true(ctl_known_load(e->c, "req-1", &out, &have));
	assert_true(tpd_plugin_data_equal(&in, &out));
	tpd_plugin_data_clear(&out);

	ctl_known_store(e->c, "req-1", NULL, false);
	assert_true(ctl_known_load(e->c, "req-1", &out, &have));
	assert_false(have);
	assert_false(ctl_known_load(e->c, "req-2", &out, &have)); /* not cached: not remembered */
	ctl_known_store(e->c, "req-2", &in, true);
	assert_false(ctl_known_load(e->c, "req-2", &out, &have));
	tpd_plugin_data_clear(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_pending_opens_incident, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approved_notes_and_resolves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_failure_still_approves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_on_call_no_review, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_replans, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lifecycle_teleport_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_memory_caught_by_cas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remembered_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_created_live_reads_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_created_live_assumption_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_known_roundtrip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
