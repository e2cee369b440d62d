/* Unit tests for types.c: access-request building and plugin data helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpd/types.h"

static void test_request_dup(void **state)
{
	tpd_access_request r = {0};
	const char *svc[] = {"svc-a", "svc-b"};
	tpd_access_request *d;

	(void)state;
	r.id = strdup("req-1");
	r.user = strdup("alice@example.com");
	r.state = TPD_STATE_PENDING;
	tpd_access_request_add_role(&r, "editor");
	tpd_access_request_add_annotation(&r, "pagerduty_services", svc, 2);
	tpd_access_request_add_review(&r, "bob", TPD_STATE_APPROVED, 100, "ok");
	r.reviews[0].created_nanos = 123456789;
	d = tpd_access_request_dup(&r);
	tpd_access_request_clear(&r);
	assert_string_equal(d->id, "req-1");
	assert_int_equal(d->n_roles, 1);
	assert_string_equal(tpd_access_request_annotation(d, "pagerduty_services")->values[1], "svc-b");
	assert_null(tpd_access_request_annotation(d, "pagerduty_notify_service"));
	assert_string_equal(d->reviews[0].author, "bob");
	assert_int_equal(d->reviews[0].created, 100);
	assert_int_equal(d->reviews[0].created_nanos, 123456789); /* full precision kept */
	assert_string_equal(tpd_request_state_name(d->state), "PENDING");
	assert_true(tpd_request_state_resolved(TPD_STATE_PROMOTED));
	assert_false(tpd_request_state_resolved(TPD_STATE_PENDING));
	tpd_access_request_free(d);
}

static void test_plugin_data(void **state)
{
	tpd_plugin_data a, b;

	(void)state;
	tpd_plugin_data_init(&a);
	tpd_plugin_data_init(&b);
	assert_true(tpd_plugin_data_is_empty(&a));
	assert_true(tpd_plugin_data_set(&a, "incident_id", "INCIDENT1"));
	assert_true(tpd_plugin_data_set(&a, "reviews_count", "3"));
	assert_false(tpd_plugin_data_set(&a, "bogus", "x"));
	assert_int_equal(tpd_plugin_data_reviews_count(&a), 3);
	assert_false(tpd_plugin_data_equal(&a, &b));
	tpd_plugin_data_copy(&b, &a);
	assert_true(tpd_plugin_data_equal(&a, &b));
	assert_string_equal(tpd_plugin_data_get(&b, "incident_id"), "INCIDENT1");
	assert_null(tpd_plugin_data_get(&b, "nope"));
	tpd_plugin_data_set(&a, "reviews_count", "x1");
	assert_int_equal(tpd_plugin_data_reviews_count(&a), 0);
	tpd_plugin_data_clear(&a);
	tpd_plugin_data_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_dup),
	    cmocka_unit_test(test_plugin_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
