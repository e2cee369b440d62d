/* Unit tests for the seen-pending memory: what a snapshot keeps, generations, forgetting when
 * handled, expiry after the TTL and eviction of the oldest entry at the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpd/seenpending.h"

#define NOTIFY   "pagerduty_notify_service"
#define SERVICES "pagerduty_services"

static tpd_access_request *mkreq(const char *id)
{
	tpd_access_request *r = calloc(1, sizeof(*r));
	const char *svc[] = {"Teleport Notifications"};
	const char *svcs[] = {"Service 1", "Service 2"};
	const char *other[] = {"x"};

	r->id = strdup(id);
	r->user = strdup("alice@example.com");
	r->state = TPD_STATE_PENDING;
	r->created = 1622554037;
	r->request_reason = strdup("because of");
	r->resolve_reason = strdup("");
	tpd_access_request_add_role(r, "editor");
	tpd_access_request_add_annotation(r, "unrelated", other, 1);
	tpd_access_request_add_annotation(r, NOTIFY, svc, 1);
	tpd_access_request_add_annotation(r, SERVICES, svcs, 2);
	tpd_access_request_add_review(r, "bob", TPD_STATE_APPROVED, 1622554100, "one of two");
	return r;
}

static void test_snapshot_keeps_what_planning_needs(void **state)
{
	tpd_access_request *r = mkreq("req-1");
	tpd_access_request *s = tpd_seen_pending_snapshot(r, NOTIFY, SERVICES);

	(void)state;
	assert_string_equal(s->id, "req-1");
	assert_string_equal(s->user, "alice@example.com");
	assert_int_equal(s->n_roles, 1);
	assert_string_equal(s->roles[0], "editor");
	assert_int_equal(s->created, 1622554037);
	assert_int_equal(s->state, TPD_STATE_PENDING);
	assert_string_equal(s->request_reason, "because of");
	assert_int_equal(s->n_annotations, 2);
	assert_string_equal(tpd_access_request_annotation(s, NOTIFY)->values[0], "Teleport Notifications");
	assert_int_equal(tpd_access_request_annotation(s, SERVICES)->n_values, 2);
	assert_null(tpd_access_request_annotation(s, "unrelated"));
	assert_int_equal(s->n_reviews, 0);
	tpd_access_request_free(s);
	tpd_access_request_free(r);
}

static void test_put_get_forget(void **state)
{
	tpd_seen_pending *sp = tpd_seen_pending_new(10, 1000, NOTIFY, SERVICES);
	tpd_access_request *r = mkreq("req-1");
	uint64_t g1, g2;

	(void)state;
	assert_null(tpd_seen_pending_get(sp, "req-1", &g1));
	assert_int_equal(g1, 0);
	assert_int_equal(tpd_seen_pending_put(sp, r, 100), 0);
	assert_non_null(tpd_seen_pending_get(sp, "req-1", &g1));
	assert_true(g1 > 0);
	/* Seen PENDING again (a newer snapshot): a new generation; forgetting the old one is a no-op. */
	free(r->request_reason);
	r->request_reason = strdup("changed");
	tpd_seen_pending_put(sp, r, 200);
	assert_string_equal(tpd_seen_pending_get(sp, "req-1", &g2)->request_reason, "changed");
	assert_true(g2 != g1);
	assert_int_equal(tpd_seen_pending_len(sp), 1);
	assert_false(tpd_seen_pending_forget(sp, "req-1", g1));
	assert_non_null(tpd_seen_pending_get(sp, "req-1", NULL));
	assert_true(tpd_seen_pending_forget(sp, "req-1", g2));
	assert_null(tpd_seen_pending_get(sp, "req-1", NULL));
	assert_false(tpd_seen_pending_forget(sp, "req-1", 0));
	assert_int_equal(tpd_seen_pending_len(sp), 0);
	tpd_access_request_free(r);
	tpd_seen_pending_free(sp);
}

static void collect(void *ud, const char *id, const tpd_access_request *snap)
{
	char *out = ud;

	assert_string_equal(id, snap->id);
	strcat(out, id);
	strcat(out, " ");
}

static void test_expiry_and_cap(void **state)
{
	tpd_seen_pending *sp = tpd_seen_pending_new(3, 1000, NOTIFY, SERVICES);
	const char *ids[] = {"a", "b", "c", "d"};
	char order[64] = "";

	(void)state;
	for (int i = 0; i < 3; i++) {
		tpd_access_request *r = mkreq(ids[i]);

		assert_int_equal(tpd_seen_pending_put(sp, r, 100 * (i + 1)), 0); /* at 100, 200, 300 */
		tpd_access_request_free(r);
	}
	/* "a" seen again later: it becomes the newest. */
	{
		tpd_access_request *r = mkreq("a");

		tpd_seen_pending_put(sp, r, 400);
		tpd_access_request_free(r);
	}
	tpd_seen_pending_each(sp, collect, order);
	assert_string_equal(order, "b c a ");
	/* Full: the oldest ("b") makes room. */
	{
		tpd_access_request *r = mkreq("d");

		assert_int_equal(tpd_seen_pending_put(sp, r, 500), 1);
		tpd_access_request_free(r);
	}
	assert_null(tpd_seen_pending_get(sp, "b", NULL));
	assert_int_equal(tpd_seen_pending_len(sp), 3);
	/* TTL 1000 ms: nothing is due before 1300; at 1300 "c" (put at 300) goes, at 1500 all. */
	assert_int_equal(tpd_seen_pending_expire(sp, 1299), 0);
	assert_int_equal(tpd_seen_pending_expire(sp, 1300), 1);
	assert_null(tpd_seen_pending_get(sp, "c", NULL));
	assert_non_null(tpd_seen_pending_get(sp, "a", NULL));
	assert_int_equal(tpd_seen_pending_expire(sp, 1500), 2);
	assert_int_equal(tpd_seen_pending_len(sp), 0);
	tpd_seen_pending_free(sp);
}

static void test_bounded_under_load(void **state)
{
	tpd_seen_pending *sp = tpd_seen_pending_new(1000, 60000, NOTIFY, SERVICES);
	size_t evicted = 0;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		char id[32];
		tpd_access_request *r;

		snprintf(id, sizeof(id), "req-%d", i);
		r = mkreq(id);
		evicted += tpd_seen_pending_put(sp, r, i);
		tpd_access_request_free(r);
		if (i % 3 == 0)
			tpd_seen_pending_forget(sp, id, 0); /* handled */
	}
	assert_true(tpd_seen_pending_len(sp) <= 1000);
	assert_true(evicted > 0);
	assert_non_null(tpd_seen_pending_get(sp, "req-4999", NULL));
	tpd_seen_pending_free(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_snapshot_keeps_what_planning_needs),
	    cmocka_unit_test(test_put_get_forget),
	    cmocka_unit_test(test_expiry_and_cap),
	    cmocka_unit_test(test_bounded_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
