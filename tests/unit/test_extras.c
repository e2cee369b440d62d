/* test_extras.c - one incident per notify service ([pagerduty] notify_all_services): the
 * annotation's services in order, the extra_incidents value, and what the planner does with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tpd/extras.h"
#include "tpd/reconcile.h"
#include "tpd/types.h"
#include "tpd/util.h"

static tpd_access_request *req(int state, const char *const *notify, size_t n, size_t reviews)
{
	tpd_access_request *r = calloc(1, sizeof(*r));

	r->id = strdup("req-1");
	r->user = strdup("alice@example.com");
	r->state = state;
	tpd_access_request_add_role(r, "editor");
	tpd_access_request_add_annotation(r, "pagerduty_notify_service", notify, n);
	for (size_t i = 0; i < reviews; i++)
		tpd_access_request_add_review(r, "bob@example.com", TPD_STATE_APPROVED, 1622554100, "ok");
	return r;
}

static void test_notify_services_order_and_dedup(void **state)
{
	const char *v[] = {"Ops", "", "DB", "ops", "Web", "DB"};
	tpd_access_request *r = req(TPD_STATE_PENDING, v, 6, 0);
	char **out;
	size_t n = tpd_notify_services(r, "pagerduty_notify_service", &out);

	(void)state;
	assert_int_equal(n, 3); /* annotation order, case-insensitive duplicates and empties gone */
	assert_string_equal(out[0], "Ops");
	assert_string_equal(out[1], "DB");
	assert_string_equal(out[2], "Web");
	tpd_strv_free(out, n);
	assert_int_equal(tpd_notify_services(r, "other", &out), 0);
	assert_null(out);
	tpd_access_request_free(r);
}

static void test_extras_value(void **state)
{
	char *a = tpd_extras_add("", "DB", "PINC2"), *b = tpd_extras_add(a, "A,b=c%", ""),
	     *c = tpd_extras_add(b, "Web", "PINC3");
	char *id = NULL, **ids;
	size_t n;

	(void)state;
	assert_string_equal(c, "DB=PINC2,A%2Cb%3Dc%25=,Web=PINC3");
	assert_true(tpd_extras_get(c, "A,b=c%", &id));
	assert_string_equal(id, ""); /* recorded as not found */
	free(id);
	assert_true(tpd_extras_get(c, "Web", &id));
	assert_string_equal(id, "PINC3");
	free(id);
	assert_false(tpd_extras_get(c, "web", NULL)); /* as written in the annotation */
	assert_false(tpd_extras_get("", "DB", NULL));
	assert_false(tpd_extras_get(NULL, "DB", NULL));
	n = tpd_extras_ids(c, &ids);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "PINC2");
	assert_string_equal(ids[1], "PINC3");
	tpd_strv_free(ids, n);
	n = tpd_extras_ids("garbage,,=x,y", &ids); /* hostile value: no crash, what parses */
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "x");
	tpd_strv_free(ids, n);
	id = tpd_extra_incident_key("req-1", "PSVC2");
	assert_string_equal(id, "teleport-access-request/req-1/PSVC2");
	free(id);
	free(a);
	free(b);
	free(c);
}

/* The planner: which step comes next with notify_all_services on or off. */
static void test_planner(void **state)
{
	static const struct {
		const char *name;
		bool all;
		int st;
		size_t reviews;
		const char *incident, *count, *extras, *resolution;
		bool done;
		tpd_action_kind want;
		const char *want_services; /* joined by "|" */
	} rows[] = {
	    {"off: upstream's single incident", false, TPD_STATE_PENDING, 0, "P1", "", "", "", false,
	     TPD_ACT_NONE},
	    {"on, intent only: the first one first", true, TPD_STATE_PENDING, 0, "", "", "", "", false,
	     TPD_ACT_ADOPT_BY_KEY},
	    {"on, first made: the others", true, TPD_STATE_PENDING, 0, "P1", "", "", "", false,
	     TPD_ACT_CREATE_EXTRAS, "DB|Web"},
	    {"on, one recorded: the rest", true, TPD_STATE_PENDING, 0, "P1", "", "DB=P2", "", false,
	     TPD_ACT_CREATE_EXTRAS, "Web"},
	    {"on, not found counts as done", true, TPD_STATE_PENDING, 0, "P1", "", "DB=,Web=P3", "", false,
	     TPD_ACT_NONE},
	    {"on, all made, reviews: notes", true, TPD_STATE_PENDING, 1, "P1", "", "DB=P2,Web=P3", "", false,
	     TPD_ACT_POST_REVIEW_NOTES},
	    {"on, approved before the others: the others, then notes", true, TPD_STATE_APPROVED, 1, "P1", "",
	     "", "", false, TPD_ACT_CREATE_EXTRAS, "DB|Web"},
	    {"on, approved, all made: resolve", true, TPD_STATE_APPROVED, 0, "P1", "", "DB=P2,Web=P3", "",
	     false, TPD_ACT_RESOLVE},
	    {"on, resolved in our records: nothing more", true, TPD_STATE_APPROVED, 0, "P1", "", "",
	     "approved", true, TPD_ACT_NONE},
	};
	const char *notify[] = {"Ops", "DB", "ops", "Web"};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		tpd_access_request *r = req(rows[i].st, notify, 4, rows[i].reviews);
		tpd_plugin_data pd;
		tpd_reconcile_opts o = {"pagerduty_notify_service", "pagerduty_services", rows[i].all};
		tpd_reconcile_input in = {r, &pd, false, r};
		tpd_action a;
		char got[128] = "";

		tpd_plugin_data_init(&pd);
		tpd_plugin_data_set(&pd, "user", "alice@example.com");
		tpd_plugin_data_set(&pd, "incident_id", rows[i].incident);
		tpd_plugin_data_set(&pd, "reviews_count", rows[i].count);
		tpd_plugin_data_set(&pd, "extra_incidents", rows[i].extras);
		tpd_plugin_data_set(&pd, "resolution", rows[i].resolution);
		tpd_plugin_data_set(&pd, "pd_resolved", rows[i].done ? "true" : "");
		tpd_reconcile_next(&o, &in, &a);
		if (a.kind != rows[i].want)
			fail_msg("%s: got %s, want %s", rows[i].name, tpd_action_name(a.kind),
			         tpd_action_name(rows[i].want));
		for (size_t k = 0; a.kind == TPD_ACT_CREATE_EXTRAS && k < a.n_services; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? "|" : "",
			         a.services[k]);
		if (rows[i].want_services)
			assert_string_equal(got, rows[i].want_services);
		tpd_action_clear(&a);
		tpd_plugin_data_clear(&pd);
		tpd_access_request_free(r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_notify_services_order_and_dedup),
	    cmocka_unit_test(test_extras_value),
	    cmocka_unit_test(test_planner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
