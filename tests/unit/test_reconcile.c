/* Unit tests for the pure reconcile core: a decision table over (request, plugin data) states,
 * and upstream's texts byte for byte. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpd/reconcile.h"
#include "tpd/types.h"

static const tpd_reconcile_opts opts = {"pagerduty_notify_service", "pagerduty_services"};

/* A request in `state` with the given notify/services annotations and n reviews. */
static tpd_access_request *mkreq(tpd_request_state state, const char *notify, const char *services,
                                 size_t n_reviews)
{
	tpd_access_request *r = calloc(1, sizeof(*r));

	r->id = strdup("req-1");
	r->user = strdup("alice@example.com");
	r->state = state;
	r->created = 1622554037;
	r->resolve_reason = strdup("okay");
	tpd_access_request_add_role(r, "editor");
	if (notify) {
		const char *v[] = {notify};
		tpd_access_request_add_annotation(r, "pagerduty_notify_service", v, *notify ? 1 : 0);
	}
	if (services) {
		const char *v[] = {"Service 2", "Service 1", "Service 2"};
		tpd_access_request_add_annotation(r, "pagerduty_services", v, *services ? 3 : 0);
	}
	for (size_t i = 0; i < n_reviews; i++)
		tpd_access_request_add_review(r, "reviewer@example.com", TPD_STATE_APPROVED, 1622554100,
		                              "ok");
	return r;
}

/* Plugin data: incident id, reviews_count and resolution as given ("" = unset). */
static tpd_plugin_data *mkpd(const char *incident, const char *count, const char *resolution, bool done)
{
	tpd_plugin_data *pd = calloc(1, sizeof(*pd));

	tpd_plugin_data_init(pd);
	tpd_plugin_data_set(pd, "user", "alice@example.com");
	tpd_plugin_data_set(pd, "incident_id", incident);
	tpd_plugin_data_set(pd, "reviews_count", count);
	tpd_plugin_data_set(pd, "resolution", resolution);
	tpd_plugin_data_set(pd, "pd_resolved", done ? "true" : "");
	return pd;
}

struct row {
	const char *name;
	int state;            /* -1 = deleted */
	const char *notify;   /* NULL = no annotation, "" = empty list */
	const char *services; /* NULL = none, "" = empty, "x" = present */
	size_t reviews;
	bool has_pd;
	const char *incident, *count, *resolution;
	bool pd_resolved, try_approval;
	tpd_action_kind want;
	const char *want_tag;
	size_t want_from, want_to;
	bool want_intent, want_recover;
};

static const struct row rows[] = {
    {"pending, no annotations", TPD_STATE_PENDING, NULL, NULL, 0, false, "", "", "", false, true,
     TPD_ACT_NONE},
    {"pending, notify, new", TPD_STATE_PENDING, "Teleport Notifications", NULL, 0, false, "", "", "", false,
     true, TPD_ACT_CREATE_INCIDENT, NULL, 0, 0, true},
    {"pending, notify, intent stored (crash)", TPD_STATE_PENDING, "Svc", NULL, 0, true, "", "", "", false,
     false, TPD_ACT_ADOPT_BY_KEY, NULL, 0, 0, false},
    {"pending, notify empty, services", TPD_STATE_PENDING, "", "x", 0, false, "", "", "", false, true,
     TPD_ACT_AUTO_APPROVE},
    {"pending, notify empty, no approval wanted", TPD_STATE_PENDING, "", "x", 0, false, "", "", "", false,
     false, TPD_ACT_NONE},
    {"pending, services only", TPD_STATE_PENDING, NULL, "x", 0, false, "", "", "", false, true,
     TPD_ACT_AUTO_APPROVE},
    {"pending, services empty list", TPD_STATE_PENDING, NULL, "", 0, false, "", "", "", false, true,
     TPD_ACT_NONE},
    {"pending, incident, no new reviews, approval", TPD_STATE_PENDING, "Svc", "x", 0, true, "P1", "", "",
     false, true, TPD_ACT_AUTO_APPROVE},
    {"pending, incident, no new reviews", TPD_STATE_PENDING, "Svc", NULL, 0, true, "P1", "", "", false, true,
     TPD_ACT_NONE},
    {"pending, incident, 2 reviews, 1 noted", TPD_STATE_PENDING, "Svc", NULL, 2, true, "P1", "1", "", false,
     false, TPD_ACT_POST_REVIEW_NOTES, NULL, 1, 2},
    {"pending, incident, reviews all noted", TPD_STATE_PENDING, "Svc", NULL, 2, true, "P1", "2", "", false,
     false, TPD_ACT_NONE},
    {"approved, no plugin data", TPD_STATE_APPROVED, "Svc", NULL, 0, false, "", "", "", false, false,
     TPD_ACT_NONE},
    {"approved, incident, reviews pending", TPD_STATE_APPROVED, "Svc", NULL, 1, true, "P1", "", "", false,
     false, TPD_ACT_POST_REVIEW_NOTES, NULL, 0, 1},
    {"approved, incident", TPD_STATE_APPROVED, "Svc", NULL, 1, true, "P1", "1", "", false, false,
     TPD_ACT_RESOLVE, "approved"},
    {"denied, incident", TPD_STATE_DENIED, "Svc", NULL, 0, true, "P1", "", "", false, false, TPD_ACT_RESOLVE,
     "denied"},
    {"promoted, incident", TPD_STATE_PROMOTED, "Svc", NULL, 0, true, "P1", "", "", false, false,
     TPD_ACT_RESOLVE, "promoted"},
    {"approved, intent without incident id", TPD_STATE_APPROVED, "Svc", NULL, 0, true, "", "", "", false,
     false, TPD_ACT_ADOPT_BY_KEY, "approved"},
    {"approved, resolution stored, not confirmed", TPD_STATE_APPROVED, "Svc", NULL, 0, true, "P1", "",
     "approved", false, false, TPD_ACT_RESOLVE, "approved", 0, 0, false, true},
    {"approved, resolution confirmed", TPD_STATE_APPROVED, "Svc", NULL, 0, true, "P1", "", "approved", true,
     false, TPD_ACT_NONE},
    {"approved, resolved without incident", TPD_STATE_APPROVED, "Svc", NULL, 0, true, "", "", "approved",
     true, false, TPD_ACT_NONE},
    {"deleted, no plugin data", -1, NULL, NULL, 0, false, "", "", "", false, false, TPD_ACT_NONE},
    {"deleted, incident", -1, NULL, NULL, 0, true, "P1", "", "", false, false, TPD_ACT_RESOLVE, "expired"},
    {"deleted, intent only", -1, NULL, NULL, 0, true, "", "", "", false, false, TPD_ACT_ADOPT_BY_KEY,
     "expired"},
    {"deleted, already resolved", -1, NULL, NULL, 0, true, "P1", "", "denied", true, false, TPD_ACT_NONE},
    {"deleted, resolution unconfirmed", -1, NULL, NULL, 0, true, "P1", "", "denied", false, false,
     TPD_ACT_RESOLVE, "denied", 0, 0, false, true},
    {"unknown state", TPD_STATE_NONE, "Svc", "x", 0, false, "", "", "", false, true, TPD_ACT_NONE},
};

static void test_decision_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		tpd_access_request *r =
		    w->state < 0 ? NULL
		                 : mkreq((tpd_request_state)w->state, w->notify, w->services, w->reviews);
		tpd_plugin_data *pd =
		    w->has_pd ? mkpd(w->incident, w->count, w->resolution, w->pd_resolved) : NULL;
		tpd_reconcile_input in = {r, pd, w->try_approval};
		tpd_action a;

		tpd_reconcile_next(&opts, &in, &a);
		if (a.kind != w->want)
			fail_msg("row '%s': got %s, want %s", w->name, tpd_action_name(a.kind),
			         tpd_action_name(w->want));
		if (a.kind == TPD_ACT_NONE)
			assert_string_not_equal(tpd_idle_text(a.why), "?");
		if (w->want_tag)
			assert_string_equal(a.tag, w->want_tag);
		if (w->want == TPD_ACT_ADOPT_BY_KEY && w->state == TPD_STATE_PENDING) {
			assert_null(a.tag);
			assert_string_equal(a.service_name, "Svc");
		}
		if (w->want == TPD_ACT_POST_REVIEW_NOTES) {
			assert_int_equal(a.from, w->want_from);
			assert_int_equal(a.to, w->want_to);
		}
		if (w->want == TPD_ACT_CREATE_INCIDENT)
			assert_int_equal(a.write_intent, w->want_intent);
		if (w->want == TPD_ACT_RESOLVE)
			assert_int_equal(a.recover, w->want_recover);
		if (w->want == TPD_ACT_AUTO_APPROVE) {
			/* sorted and de-duplicated */
			assert_int_equal(a.n_services, 2);
			assert_string_equal(a.services[0], "Service 1");
			assert_string_equal(a.services[1], "Service 2");
		}
		tpd_action_clear(&a);
		tpd_access_request_free(r);
		if (pd) {
			tpd_plugin_data_clear(pd);
			free(pd);
		}
	}
}

/* Why NONE, per row of the decision table: the reason decides the log level (the executor no
 * longer compares texts), so each must be the intended one. */
static const struct {
	const char *row;
	tpd_idle why;
	tpd_idle_level level;
} idle_rows[] = {
    {"pending, no annotations", TPD_IDLE_NO_ANNOTATIONS, TPD_IDLE_LEVEL_DEBUG},
    {"pending, notify empty, no approval wanted", TPD_IDLE_NOTHING, TPD_IDLE_LEVEL_QUIET},
    {"pending, services empty list", TPD_IDLE_NOTIFY_MISSING, TPD_IDLE_LEVEL_DEBUG},
    {"pending, incident, no new reviews", TPD_IDLE_SERVICES_MISSING, TPD_IDLE_LEVEL_DEBUG},
    {"pending, incident, reviews all noted", TPD_IDLE_NOTHING, TPD_IDLE_LEVEL_QUIET},
    {"approved, no plugin data", TPD_IDLE_NO_PLUGIN_DATA, TPD_IDLE_LEVEL_DEBUG},
    {"approved, resolution confirmed", TPD_IDLE_RESOLVED, TPD_IDLE_LEVEL_QUIET},
    {"deleted, no plugin data", TPD_IDLE_NO_PLUGIN_DATA, TPD_IDLE_LEVEL_DEBUG},
    {"unknown state", TPD_IDLE_UNKNOWN_STATE, TPD_IDLE_LEVEL_WARN},
};

static void test_idle_reasons(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(idle_rows) / sizeof(idle_rows[0]); k++) {
		const struct row *w = NULL;

		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]) && !w; i++)
			if (!strcmp(rows[i].name, idle_rows[k].row))
				w = &rows[i];
		assert_non_null(w);
		tpd_access_request *r =
		    w->state < 0 ? NULL
		                 : mkreq((tpd_request_state)w->state, w->notify, w->services, w->reviews);
		tpd_plugin_data *pd =
		    w->has_pd ? mkpd(w->incident, w->count, w->resolution, w->pd_resolved) : NULL;
		tpd_reconcile_input in = {r, pd, w->try_approval};
		tpd_action a;

		tpd_reconcile_next(&opts, &in, &a);
		assert_int_equal(a.kind, TPD_ACT_NONE);
		if (a.why != idle_rows[k].why || tpd_idle_level_of(a.why) != idle_rows[k].level)
			fail_msg("row '%s': got \"%s\" (level %d), want \"%s\" (level %d)", w->name,
			         tpd_idle_text(a.why), (int)tpd_idle_level_of(a.why),
			         tpd_idle_text(idle_rows[k].why), (int)idle_rows[k].level);
		tpd_action_clear(&a);
		tpd_access_request_free(r);
		if (pd) {
			tpd_plugin_data_clear(pd);
			free(pd);
		}
	}
	/* Upstream's texts, byte for byte. */
	assert_string_equal(tpd_idle_text(TPD_IDLE_UNKNOWN_STATE), "Unknown request state");
	assert_string_equal(tpd_idle_text(TPD_IDLE_NOTIFY_EMPTY),
	                    "Skipping the notification: notify service annotation is present but empty");
	assert_string_equal(tpd_idle_text((tpd_idle)999), "?");
}

/* A failed notification of a pending request still tries the approval; nothing else does. */
static void test_approve_after_failure(void **state)
{
	tpd_access_request *pending = mkreq(TPD_STATE_PENDING, "Svc", "x", 0);
	tpd_access_request *approved = mkreq(TPD_STATE_APPROVED, "Svc", "x", 0);
	tpd_reconcile_input in = {pending, NULL, true, NULL};

	(void)state;
	assert_true(tpd_reconcile_approve_after_failure(&in, TPD_ACT_CREATE_INCIDENT, false));
	assert_true(tpd_reconcile_approve_after_failure(&in, TPD_ACT_ADOPT_BY_KEY, false));
	/* A plugin-data conflict is re-planned at once, not a failure. */
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_CREATE_INCIDENT, true));
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_POST_REVIEW_NOTES, false));
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_RESOLVE, false));
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_AUTO_APPROVE, false));
	in.try_approval = false; /* tried already */
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_CREATE_INCIDENT, false));
	in = (tpd_reconcile_input){approved, NULL, true, pending};
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_CREATE_INCIDENT, false));
	in = (tpd_reconcile_input){NULL, NULL, true, pending}; /* deleted */
	assert_false(tpd_reconcile_approve_after_failure(&in, TPD_ACT_ADOPT_BY_KEY, false));
	tpd_access_request_free(pending);
	tpd_access_request_free(approved);
}

/* Which services have the requester on call: one row per shape of services and answers. */
static void test_oncall_matching(void **state)
{
	static const struct {
		const char *name;
		size_t n;
		const char *svc[4], *pol[4];
		const char *want_policies; /* joined by ',' */
		bool on[4];                /* per distinct policy, in order */
		const char *want;          /* joined by ',' */
	} t[] = {
	    {"one service on call", 1, {"A"}, {"P1"}, "P1", {true}, "A"},
	    {"one service not on call", 1, {"A"}, {"P1"}, "P1", {false}, ""},
	    {"shared policy asked once, both match",
	     3,
	     {"A", "B", "C"},
	     {"P1", "P2", "P1"},
	     "P1,P2",
	     {true, false},
	     "A,C"},
	    {"second policy only", 3, {"A", "B", "C"}, {"P1", "P2", "P1"}, "P1,P2", {false, true}, "B"},
	    {"service without policy never matches", 2, {"A", "B"}, {"", "P2"}, "P2", {true}, "B"},
	    {"no policy at all", 2, {"A", "B"}, {"", NULL}, "", {false}, ""},
	    {"nothing found", 0, {NULL}, {NULL}, "", {false}, ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *pols[4], *names[4];
		char got[64] = "";
		size_t np = tpd_oncall_policies(t[i].pol, t[i].n, pols), nn;

		for (size_t k = 0; k < np; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? "," : "", pols[k]);
		if (strcmp(got, t[i].want_policies))
			fail_msg("%s: policies \"%s\", want \"%s\"", t[i].name, got, t[i].want_policies);
		nn = tpd_oncall_services(t[i].svc, t[i].pol, t[i].n, pols, t[i].on, np, names);
		got[0] = '\0';
		for (size_t k = 0; k < nn; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? "," : "",
			         names[k]);
		if (strcmp(got, t[i].want))
			fail_msg("%s: on call in \"%s\", want \"%s\"", t[i].name, got, t[i].want);
	}
}

/* --- the seen-pending table: one row per (state, seen pending, plugin data) ------------------ */

enum seen { NEVER, SEEN, SEEN_BARE }; /* never seen PENDING; seen with notify; seen without it */
enum pdk { PD_NONE, PD_INTENT, PD_INCIDENT, PD_RESOLVING, PD_DONE };
#define DELETED (-1)

struct srow {
	int state; /* DELETED or a tpd_request_state */
	enum seen seen;
	enum pdk pd;
	tpd_action_kind want;
	const char *tag;     /* RESOLVE / ADOPT_BY_KEY */
	const char *service; /* CREATE / ADOPT_BY_KEY: "Svc" or NULL */
	bool intent, recover;
};

#define P        TPD_STATE_PENDING
#define A        TPD_STATE_APPROVED
#define D        TPD_STATE_DENIED
#define PR       TPD_STATE_PROMOTED
#define X        DELETED
#define K_NONE   TPD_ACT_NONE
#define K_CREATE TPD_ACT_CREATE_INCIDENT
#define K_ADOPT  TPD_ACT_ADOPT_BY_KEY
#define K_NOTES  TPD_ACT_POST_REVIEW_NOTES
#define K_RES    TPD_ACT_RESOLVE

static const struct srow srows[] = {
    /* PENDING: the request is its own proof of being seen; the snapshot changes nothing. */
    {P, NEVER, PD_NONE, K_CREATE, NULL, "Svc", true},
    {P, NEVER, PD_INTENT, K_ADOPT, NULL, "Svc"},
    {P, NEVER, PD_INCIDENT, K_NONE},
    {P, NEVER, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {P, NEVER, PD_DONE, K_NONE},
    {P, SEEN, PD_NONE, K_CREATE, NULL, "Svc", true},
    {P, SEEN, PD_INTENT, K_ADOPT, NULL, "Svc"},
    {P, SEEN, PD_INCIDENT, K_NONE},
    {P, SEEN, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {P, SEEN, PD_DONE, K_NONE},
    {P, SEEN_BARE, PD_NONE, K_NONE},
    {P, SEEN_BARE, PD_INTENT, K_NONE},
    {P, SEEN_BARE, PD_INCIDENT, K_NONE},
    {P, SEEN_BARE, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {P, SEEN_BARE, PD_DONE, K_NONE},
    /* APPROVED (one review): never seen PENDING and nothing stored → untouched, as upstream;
     * seen PENDING → create (intent first), then notes, then resolve. Stored intent proves it
     * was seen: adopt, or open it on the request's service. */
    {A, NEVER, PD_NONE, K_NONE},
    {A, NEVER, PD_INTENT, K_ADOPT, "approved", "Svc"},
    {A, NEVER, PD_INCIDENT, K_NOTES},
    {A, NEVER, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {A, NEVER, PD_DONE, K_NONE},
    {A, SEEN, PD_NONE, K_CREATE, NULL, "Svc", true},
    {A, SEEN, PD_INTENT, K_ADOPT, "approved", "Svc"},
    {A, SEEN, PD_INCIDENT, K_NOTES},
    {A, SEEN, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {A, SEEN, PD_DONE, K_NONE},
    {A, SEEN_BARE, PD_NONE, K_NONE},
    {A, SEEN_BARE, PD_INTENT, K_ADOPT, "approved", NULL},
    {A, SEEN_BARE, PD_INCIDENT, K_NOTES},
    {A, SEEN_BARE, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {A, SEEN_BARE, PD_DONE, K_NONE},
    /* DENIED */
    {D, NEVER, PD_NONE, K_NONE},
    {D, NEVER, PD_INTENT, K_ADOPT, "denied", "Svc"},
    {D, NEVER, PD_INCIDENT, K_NOTES},
    {D, NEVER, PD_RESOLVING, K_RES, "denied", NULL, false, true},
    {D, NEVER, PD_DONE, K_NONE},
    {D, SEEN, PD_NONE, K_CREATE, NULL, "Svc", true},
    {D, SEEN, PD_INTENT, K_ADOPT, "denied", "Svc"},
    {D, SEEN, PD_INCIDENT, K_NOTES},
    {D, SEEN, PD_RESOLVING, K_RES, "denied", NULL, false, true},
    {D, SEEN, PD_DONE, K_NONE},
    {D, SEEN_BARE, PD_NONE, K_NONE},
    {D, SEEN_BARE, PD_INTENT, K_ADOPT, "denied", NULL},
    {D, SEEN_BARE, PD_INCIDENT, K_NOTES},
    {D, SEEN_BARE, PD_RESOLVING, K_RES, "denied", NULL, false, true},
    {D, SEEN_BARE, PD_DONE, K_NONE},
    /* PROMOTED */
    {PR, NEVER, PD_NONE, K_NONE},
    {PR, NEVER, PD_INTENT, K_ADOPT, "promoted", "Svc"},
    {PR, NEVER, PD_INCIDENT, K_NOTES},
    {PR, NEVER, PD_RESOLVING, K_RES, "promoted", NULL, false, true},
    {PR, NEVER, PD_DONE, K_NONE},
    {PR, SEEN, PD_NONE, K_CREATE, NULL, "Svc", true},
    {PR, SEEN, PD_INTENT, K_ADOPT, "promoted", "Svc"},
    {PR, SEEN, PD_INCIDENT, K_NOTES},
    {PR, SEEN, PD_RESOLVING, K_RES, "promoted", NULL, false, true},
    {PR, SEEN, PD_DONE, K_NONE},
    {PR, SEEN_BARE, PD_NONE, K_NONE},
    {PR, SEEN_BARE, PD_INTENT, K_ADOPT, "promoted", NULL},
    {PR, SEEN_BARE, PD_INCIDENT, K_NOTES},
    {PR, SEEN_BARE, PD_RESOLVING, K_RES, "promoted", NULL, false, true},
    {PR, SEEN_BARE, PD_DONE, K_NONE},
    /* DELETED: seen PENDING and nothing stored → find the incident by key or open it from the
     * snapshot, then resolve it as expired (nothing can be stored any more). */
    {X, NEVER, PD_NONE, K_NONE},
    {X, NEVER, PD_INTENT, K_ADOPT, "expired", NULL},
    {X, NEVER, PD_INCIDENT, K_RES, "expired"},
    {X, NEVER, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {X, NEVER, PD_DONE, K_NONE},
    {X, SEEN, PD_NONE, K_ADOPT, "expired", "Svc"},
    {X, SEEN, PD_INTENT, K_ADOPT, "expired", "Svc"},
    {X, SEEN, PD_INCIDENT, K_RES, "expired"},
    {X, SEEN, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {X, SEEN, PD_DONE, K_NONE},
    {X, SEEN_BARE, PD_NONE, K_NONE},
    {X, SEEN_BARE, PD_INTENT, K_ADOPT, "expired", NULL},
    {X, SEEN_BARE, PD_INCIDENT, K_RES, "expired"},
    {X, SEEN_BARE, PD_RESOLVING, K_RES, "approved", NULL, false, true},
    {X, SEEN_BARE, PD_DONE, K_NONE},
};

static const char *const seen_names[] = {"never seen", "seen", "seen without notify"};
static const char *const pd_names[] = {"no data", "intent only", "incident", "resolution unconfirmed",
                                       "resolved"};

/* The request in the row's state: with the notify annotation unless SEEN_BARE (then only the
 * services annotation), one review once resolved. */
static tpd_access_request *srow_request(const struct srow *w, tpd_request_state state)
{
	return mkreq(state, w->seen == SEEN_BARE ? NULL : "Svc", w->seen == SEEN_BARE ? "x" : NULL,
	             state == TPD_STATE_PENDING ? 0 : 1);
}

static tpd_plugin_data *srow_pd(const struct srow *w)
{
	const char *res = w->state == A || w->state == X ? "approved" : tpd_resolution_tag(w->state);

	switch (w->pd) {
	case PD_INTENT:
		return mkpd("", "", "", false);
	case PD_INCIDENT:
		return mkpd("P1", "", "", false);
	case PD_RESOLVING:
		return mkpd("P1", "1", w->state == P ? "approved" : res, false);
	case PD_DONE:
		return mkpd("P1", "1", w->state == P ? "approved" : res, true);
	default:
		return NULL;
	}
}

static void test_seen_pending_table(void **state)
{
	size_t combos[5][3][5] = {{{0}}};

	(void)state;
	for (size_t i = 0; i < sizeof(srows) / sizeof(srows[0]); i++) {
		const struct srow *w = &srows[i];
		tpd_access_request *r = w->state == X ? NULL : srow_request(w, (tpd_request_state)w->state);
		tpd_access_request *snap = w->seen == NEVER ? NULL : srow_request(w, TPD_STATE_PENDING);
		tpd_plugin_data *pd = srow_pd(w);
		tpd_reconcile_input in = {r, pd, false, snap};
		char name[128];
		tpd_action a;

		snprintf(name, sizeof(name), "%s, %s, %s", r ? tpd_request_state_name(r->state) : "DELETED",
		         seen_names[w->seen], pd_names[w->pd]);
		combos[w->state == X ? 0 : w->state][w->seen][w->pd]++;
		tpd_reconcile_next(&opts, &in, &a);
		if (a.kind != w->want)
			fail_msg("row '%s': got %s (%s), want %s", name, tpd_action_name(a.kind),
			         tpd_idle_text(a.why), tpd_action_name(w->want));
		if (a.kind == TPD_ACT_NONE)
			assert_string_not_equal(tpd_idle_text(a.why), "?");
		if (a.kind == TPD_ACT_RESOLVE || a.kind == TPD_ACT_ADOPT_BY_KEY) {
			if (!w->tag ? a.tag != NULL : !a.tag || strcmp(a.tag, w->tag))
				fail_msg("row '%s': tag %s, want %s", name, a.tag ? a.tag : "(null)",
				         w->tag ? w->tag : "(null)");
		}
		if (a.kind == TPD_ACT_RESOLVE && a.recover != w->recover)
			fail_msg("row '%s': recover %d", name, a.recover);
		if (a.kind == TPD_ACT_CREATE_INCIDENT && a.write_intent != w->intent)
			fail_msg("row '%s': write_intent %d", name, a.write_intent);
		if (a.kind == TPD_ACT_CREATE_INCIDENT || a.kind == TPD_ACT_ADOPT_BY_KEY) {
			if (!w->service ? a.service_name != NULL
			                : !a.service_name || strcmp(a.service_name, w->service))
				fail_msg("row '%s': service %s, want %s", name,
				         a.service_name ? a.service_name : "(null)",
				         w->service ? w->service : "(null)");
		}
		if (a.kind == TPD_ACT_POST_REVIEW_NOTES) {
			assert_int_equal(a.from, 0);
			assert_int_equal(a.to, 1);
		}
		tpd_action_clear(&a);
		tpd_access_request_free(r);
		tpd_access_request_free(snap);
		if (pd) {
			tpd_plugin_data_clear(pd);
			free(pd);
		}
	}
	/* Every combination exactly once. */
	for (int s = 0; s < 5; s++)
		for (int k = 0; k < 3; k++)
			for (int p = 0; p < 5; p++)
				if (combos[s][k][p] != 1)
					fail_msg("combination state %d, %s, %s appears %zu times", s,
					         seen_names[k], pd_names[p], combos[s][k][p]);
}

/* Applies an action's effect on the plugin data as the controller does when everything works
 * (for a deleted request nothing is stored, only its local copy changes). */
static void apply(const tpd_action *a, const tpd_access_request *subject, tpd_plugin_data *pd, bool *have)
{
	if (!*have) {
		tpd_plugin_data_init(pd);
		*have = true;
	}
	switch (a->kind) {
	case TPD_ACT_CREATE_INCIDENT:
		if (a->write_intent)
			tpd_plugin_data_from_request(pd, subject);
		tpd_plugin_data_set(pd, "incident_id", "P1");
		break;
	case TPD_ACT_ADOPT_BY_KEY:
		tpd_plugin_data_set(pd, "incident_id", "P1"); /* found, or opened on service_name */
		break;
	case TPD_ACT_POST_REVIEW_NOTES: {
		char c[8];
		snprintf(c, sizeof(c), "%zu", a->to);
		tpd_plugin_data_set(pd, "reviews_count", c);
		break;
	}
	case TPD_ACT_RESOLVE:
		tpd_plugin_data_set(pd, "resolution", a->tag);
		tpd_plugin_data_set(pd, "pd_resolved", "true");
		break;
	default:
		fail_msg("unexpected %s", tpd_action_name(a->kind));
	}
}

/* A request denied (or deleted) before the first pass: create → note → resolve in that order
 * (deleted: find-or-open → resolve as expired), and then nothing. */
static void test_fast_lifecycles(void **state)
{
	static const struct {
		int final; /* DENIED, PROMOTED or DELETED */
		tpd_action_kind seq[4];
		const char *tag;
	} cases[] = {
	    {TPD_STATE_DENIED, {K_CREATE, K_NOTES, K_RES, K_NONE}, "denied"},
	    {TPD_STATE_PROMOTED, {K_CREATE, K_NOTES, K_RES, K_NONE}, "promoted"},
	    {DELETED, {K_ADOPT, K_RES, K_NONE, K_NONE}, "expired"},
	};

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		tpd_access_request *snap = mkreq(TPD_STATE_PENDING, "Svc", NULL, 0);
		tpd_access_request *r = cases[k].final == DELETED
		                            ? NULL
		                            : mkreq((tpd_request_state)cases[k].final, "Svc", NULL, 1);
		tpd_plugin_data pd;
		bool have = false;
		size_t n = 0;

		for (;;) {
			tpd_reconcile_input in = {r, have ? &pd : NULL, false, snap};
			tpd_action a;

			tpd_reconcile_next(&opts, &in, &a);
			assert_true(n < 4);
			if (a.kind != cases[k].seq[n])
				fail_msg("case %zu step %zu: got %s, want %s", k, n, tpd_action_name(a.kind),
				         tpd_action_name(cases[k].seq[n]));
			n++;
			if (a.kind == TPD_ACT_NONE) {
				tpd_action_clear(&a);
				break;
			}
			if (a.kind == TPD_ACT_RESOLVE)
				assert_string_equal(a.tag, cases[k].tag);
			apply(&a, r ? r : snap, &pd, &have);
			tpd_action_clear(&a);
		}
		assert_string_equal(pd.resolution, cases[k].tag);
		if (r)
			assert_string_equal(pd.user, "alice@example.com"); /* the intent was written */
		tpd_plugin_data_clear(&pd);
		tpd_access_request_free(r);
		tpd_access_request_free(snap);
	}
}

/* Drives a whole lifecycle through the planner, applying each action's effect on plugin data
 * the way the controller does, and checks the sequence of actions. */
static void test_lifecycle_converges(void **state)
{
	tpd_access_request *r = mkreq(TPD_STATE_PENDING, "Svc", "x", 0);
	tpd_plugin_data pd;
	bool have_pd = false, try_approval = true;
	tpd_action_kind seen[16];
	size_t n = 0;

	(void)state;
	tpd_plugin_data_init(&pd);
	for (int phase = 0; phase < 3; phase++) {
		if (phase == 1) {
			tpd_access_request_add_review(r, "bob", TPD_STATE_APPROVED, 1622554100, "fine");
		} else if (phase == 2) {
			r->state = TPD_STATE_APPROVED;
		}
		for (int step = 0; step < 8; step++) {
			tpd_reconcile_input in = {r, have_pd ? &pd : NULL, try_approval};
			tpd_action a;

			tpd_reconcile_next(&opts, &in, &a);
			if (a.kind == TPD_ACT_NONE) {
				tpd_action_clear(&a);
				break;
			}
			assert_true(n < 16);
			seen[n++] = a.kind;
			switch (a.kind) {
			case TPD_ACT_CREATE_INCIDENT:
				tpd_plugin_data_from_request(&pd, r);
				tpd_plugin_data_set(&pd, "incident_id", "P1");
				have_pd = true;
				break;
			case TPD_ACT_POST_REVIEW_NOTES: {
				char c[8];
				snprintf(c, sizeof(c), "%zu", a.to);
				tpd_plugin_data_set(&pd, "reviews_count", c);
				break;
			}
			case TPD_ACT_AUTO_APPROVE:
				try_approval = false;
				break;
			case TPD_ACT_RESOLVE:
				tpd_plugin_data_set(&pd, "resolution", a.tag);
				tpd_plugin_data_set(&pd, "pd_resolved", "true");
				break;
			default:
				fail_msg("unexpected %s", tpd_action_name(a.kind));
			}
			tpd_action_clear(&a);
		}
	}
	assert_int_equal(n, 4);
	assert_int_equal(seen[0], TPD_ACT_CREATE_INCIDENT);
	assert_int_equal(seen[1], TPD_ACT_AUTO_APPROVE);
	assert_int_equal(seen[2], TPD_ACT_POST_REVIEW_NOTES);
	assert_int_equal(seen[3], TPD_ACT_RESOLVE);
	assert_string_equal(pd.resolution, "approved");
	tpd_plugin_data_clear(&pd);
	tpd_access_request_free(r);
}

static void test_texts(void **state)
{
	tpd_access_request *r = mkreq(TPD_STATE_PENDING, "Svc", NULL, 0);
	tpd_review v = {"reviewer1@example.com", TPD_STATE_APPROVED, 1622554037, "okay"};
	tpd_review v2 = {"reviewer2@example.com", TPD_STATE_DENIED, 1622554037, ""};
	const char *svcs[] = {"Service 1", "Service 2"};
	char *s;

	(void)state;
	s = tpd_incident_title(r);
	assert_string_equal(s, "Access request from alice@example.com");
	free(s);
	tpd_access_request_add_role(r, "auditor");
	s = tpd_incident_details(r, NULL);
	assert_string_equal(
	    s, "alice@example.com requested permissions for roles editor, auditor on Teleport at "
	       "01 Jun 21 13:27 UTC.\n\n\n");
	free(s);
	r->request_reason = strdup("because of");
	s = tpd_incident_details(r, "https://teleport.example.com/web/requests/req-1");
	assert_string_equal(
	    s, "alice@example.com requested permissions for roles editor, auditor on Teleport at "
	       "01 Jun 21 13:27 UTC.\nReason: because of\nTo approve or deny the request, proceed to "
	       "https://teleport.example.com/web/requests/req-1\n");
	free(s);
	s = tpd_review_note(&v);
	assert_string_equal(s, "reviewer1@example.com reviewed the request at 01 Jun 21 13:27 UTC.\n"
	                       "Resolution: APPROVED.\nReason: okay.");
	free(s);
	s = tpd_review_note(&v2);
	assert_string_equal(s, "reviewer2@example.com reviewed the request at 01 Jun 21 13:27 UTC.\n"
	                       "Resolution: DENIED.\n");
	free(s);
	s = tpd_resolution_note("expired", "");
	assert_string_equal(s, "Access request has been expired\n");
	free(s);
	s = tpd_resolution_note("approved", "okay");
	assert_string_equal(s, "Access request has been approved\nReason: okay");
	free(s);
	s = tpd_approval_reason("Test User", "alice@example.com", svcs, 2);
	assert_string_equal(
	    s, "Access requested by user Test User (alice@example.com) who is on call in service(s) "
	       "Service 1,Service 2");
	free(s);
	tpd_access_request_free(r);
}

/* The approval reason with the escalation-level / schedule qualifiers (issue 20, part 1). */
static void test_approval_reason_qualified(void **state)
{
	static const struct {
		size_t n;
		const char *svc[2], *q[2];
		const char *want;
	} qrows[] = {
	    {1, {"Service 1"}, {"level 1, schedule Primary"}, "Service 1 (level 1, schedule Primary)"},
	    {1, {"Service 1"}, {"level 2"}, "Service 1 (level 2)"},
	    {1, {"Service 1"}, {"schedule Primary"}, "Service 1 (schedule Primary)"},
	    {2, {"A", "B"}, {"level 1", "level 1"}, "A (level 1),B (level 1)"},
	    {2, {"A", "B"}, {NULL, ""}, "A,B"}, /* no qualifier: upstream's text */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(qrows) / sizeof(qrows[0]); i++) {
		char *s = tpd_approval_reason_q("U", "u@x", qrows[i].svc, qrows[i].q, qrows[i].n);
		char want[256];

		snprintf(want, sizeof(want),
		         "Access requested by user U (u@x) who is on call in service(s) %s", qrows[i].want);
		assert_string_equal(s, want);
		free(s);
	}
	{
		const char *svc[] = {"Service 1"};
		char *a = tpd_approval_reason("U", "u@x", svc, 1),
		     *b = tpd_approval_reason_q("U", "u@x", svc, NULL, 1);

		assert_string_equal(a, b);
		free(a);
		free(b);
	}
}

static void test_links_and_keys(void **state)
{
	char *s;

	(void)state;
	s = tpd_request_link("teleport.example.com:443", "abc-1");
	assert_string_equal(s, "https://teleport.example.com/web/requests/abc-1");
	free(s);
	s = tpd_request_link("proxy.example.com:3080", "a b/c");
	assert_string_equal(s, "https://proxy.example.com:3080/web/requests/a%20b%2Fc");
	free(s);
	s = tpd_request_link("https://t.example.com/", "x");
	assert_string_equal(s, "https://t.example.com/web/requests/x");
	free(s);
	assert_null(tpd_request_link("", "x"));
	s = tpd_incident_key("abc");
	assert_string_equal(s, "teleport-access-request/abc");
	free(s);
	s = tpd_incident_key_request_id("teleport-access-request/abc");
	assert_string_equal(s, "abc");
	free(s);
	assert_null(tpd_incident_key_request_id("other/abc"));
	assert_null(tpd_incident_key_request_id("teleport-access-request/"));
	/* A further notify service's incident names its request before the '/'. */
	s = tpd_incident_key_request_id("teleport-access-request/abc/PSVC2");
	assert_string_equal(s, "abc");
	free(s);
	assert_null(tpd_incident_key_request_id("teleport-access-request//PSVC2"));
}

static void test_plugin_data_encoding(void **state)
{
	tpd_access_request r = {0};
	tpd_plugin_data pd;

	(void)state;
	r.user = "user-foo";
	r.created = 1622554037;
	r.request_reason = "because";
	tpd_access_request_add_role(&r, "role-foo");
	tpd_access_request_add_role(&r, "role-bar");
	tpd_plugin_data_init(&pd);
	tpd_plugin_data_from_request(&pd, &r);
	assert_string_equal(pd.user, "user-foo");
	assert_string_equal(pd.roles, "role-foo,role-bar");
	assert_string_equal(pd.created, "1622554037");
	assert_string_equal(pd.request_reason, "because");
	assert_string_equal(pd.incident_id, "");
	tpd_plugin_data_clear(&pd);
	for (size_t i = 0; i < r.n_roles; i++)
		free(r.roles[i]);
	free(r.roles);
}

static void test_emails(void **state)
{
	(void)state;
	assert_true(tpd_is_bare_email("requester-oss@example.com"));
	assert_true(tpd_is_bare_email("a.b+c@sub.example.org"));
	assert_false(tpd_is_bare_email("admin"));
	assert_false(tpd_is_bare_email("Alice <alice@example.com>"));
	assert_false(tpd_is_bare_email("a@@b"));
	assert_false(tpd_is_bare_email("a@b@c"));
	assert_false(tpd_is_bare_email(".a@b"));
	assert_false(tpd_is_bare_email("a@b."));
	assert_false(tpd_is_bare_email("a b@c"));
	assert_false(tpd_is_bare_email(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decision_table),
	    cmocka_unit_test(test_idle_reasons),
	    cmocka_unit_test(test_approve_after_failure),
	    cmocka_unit_test(test_oncall_matching),
	    cmocka_unit_test(test_seen_pending_table),
	    cmocka_unit_test(test_fast_lifecycles),
	    cmocka_unit_test(test_lifecycle_converges),
	    cmocka_unit_test(test_texts),
	    cmocka_unit_test(test_approval_reason_qualified),
	    cmocka_unit_test(test_links_and_keys),
	    cmocka_unit_test(test_plugin_data_encoding),
	    cmocka_unit_test(test_emails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
