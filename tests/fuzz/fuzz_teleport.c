/* fuzz_teleport.c - libFuzzer target: Teleport protobuf decoding (src/teleport/teleport_conv.c) and the
 * pure code that decoded wire data flows into (src/core/reconcile.c, src/base/types.c).
 *
 * Byte 0 (modulo 4) picks the decoder, the rest is the serialised message:
 *   0 proto.Event                      tpd_teleport_decode_event
 *   1 types.AccessRequestV3            tpd_teleport_decode_request
 *   2 proto.ListAccessRequestsResponse tpd_teleport_decode_request_list
 *   3 proto.PluginDataSeq              tpd_teleport_decode_plugin_data
 * Every decoded request is then run through the reconciler and upstream's text builders (title,
 * details, review notes, plugin data, annotations, approval reason), with and without plugin data,
 * since a hostile or buggy server controls all of those fields. Seeds: tests/fuzz/corpus/
 * fuzz_teleport, made with the Python fake's generated modules (tests/fuzz/make_seeds.py). */
#include "fuzz_common.h"
#include "tpd/config.h"
#include "tpd/reconcile.h"
#include "tpd/seenpending.h"
#include "tpd/teleport.h"
#include "tpd/types.h"

/* Known bug "gmtime" (README): times gmtime_r cannot represent reach an unchecked struct tm. */
static bool time_ok(int64_t t)
{
	return !fuzz_avoid_known() || (t >= -62135596800LL && t <= 253402300799LL);
}

static bool times_ok(const tpd_access_request *r)
{
	bool ok = time_ok(r->created) && time_ok(r->expires);
	for (size_t i = 0; i < r->n_reviews; i++)
		ok = ok && time_ok(r->reviews[i].created);
	return ok;
}

static void use_request(const tpd_access_request *r, const tpd_plugin_data *given)
{
	tpd_reconcile_opts o = {.notify_annotation = TPD_DEFAULT_NOTIFY_ANNOTATION,
	                        .services_annotation = TPD_DEFAULT_SERVICES_ANNOTATION};
	tpd_plugin_data pd;
	tpd_action a;
	char *s;

	if (!r->id || !r->user || !r->request_reason || !r->resolve_reason)
		fuzz_fail("decoded request with a NULL string field");
	/* Deep copy and free. */
	tpd_access_request_free(tpd_access_request_dup(r));

	free(tpd_incident_title(r));
	s = tpd_request_link("teleport.example.com:443", r->id);
	if (times_ok(r)) {
		free(tpd_incident_details(r, NULL));
		free(tpd_incident_details(r, s));
		for (size_t i = 0; i < r->n_reviews; i++)
			free(tpd_review_note(&r->reviews[i]));
	}
	free(s);
	s = tpd_incident_key(r->id);
	char *back = tpd_incident_key_request_id(s);
	/* Access request ids are UUIDs made by the auth server, never holding '/'; in a key the
	 * '/' starts a further notify service's suffix (tpd/extras.h). */
	if (r->id[0] && r->id[0] != '/' && !strchr(r->id, '/') && (!back || strcmp(back, r->id) != 0))
		fuzz_fail("incident key does not round-trip the request id");
	if (back && strchr(back, '/'))
		fuzz_fail("a request id read from an incident key holds '/'");
	free(back);
	free(s);
	if (tpd_resolution_tag(r->state))
		free(tpd_resolution_note(tpd_resolution_tag(r->state), r->resolve_reason));

	char **names = NULL;
	size_t n = 0;
	if (tpd_annotation_names(r, o.services_annotation, &names, &n) == 0) {
		for (size_t i = 1; i < n; i++)
			if (strcmp(names[i - 1], names[i]) >= 0)
				fuzz_fail("annotation names not sorted and unique");
		free(tpd_approval_reason(r->user, r->user, (const char *const *)names, n));
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	(void)tpd_is_bare_email(r->user);

	/* The reconciler: without plugin data, with the data this request would store, and with
	 * whatever the wire gave. */
	tpd_reconcile_input in = {.request = r, .pd = NULL, .try_approval = true};
	tpd_reconcile_next(&o, &in, &a);
	(void)tpd_action_name(a.kind);
	tpd_action_clear(&a);

	tpd_plugin_data_init(&pd);
	tpd_plugin_data_from_request(&pd, r);
	tpd_plugin_data_set(&pd, "incident_id", "PINC001");
	in.pd = &pd;
	in.try_approval = false;
	tpd_reconcile_next(&o, &in, &a);
	if (a.kind == TPD_ACT_POST_REVIEW_NOTES && (a.from > a.to || a.to > r->n_reviews))
		fuzz_fail("review range %zu..%zu outside %zu reviews", a.from, a.to, r->n_reviews);
	tpd_action_clear(&a);
	tpd_plugin_data_clear(&pd);

	if (given) {
		in.pd = given;
		tpd_reconcile_next(&o, &in, &a);
		if (a.kind == TPD_ACT_POST_REVIEW_NOTES && (a.from > a.to || a.to > r->n_reviews))
			fuzz_fail("review range %zu..%zu outside %zu reviews", a.from, a.to, r->n_reviews);
		tpd_action_clear(&a);
	}

	/* Seen PENDING as this very request (its slim snapshot), now in whatever state the wire
	 * gave, and deleted: nothing stored yet. */
	{
		tpd_access_request *snap =
		    tpd_seen_pending_snapshot(r, o.notify_annotation, o.services_annotation);

		in.pd = NULL;
		in.seen_pending = snap;
		tpd_reconcile_next(&o, &in, &a);
		if ((a.kind == TPD_ACT_CREATE_INCIDENT || a.kind == TPD_ACT_ADOPT_BY_KEY) && a.service_name &&
		    !a.service_name[0])
			fuzz_fail("an empty notify service planned");
		tpd_action_clear(&a);
		in.request = NULL;
		tpd_reconcile_next(&o, &in, &a);
		if (a.kind != TPD_ACT_NONE && a.kind != TPD_ACT_ADOPT_BY_KEY)
			fuzz_fail("a deleted request planned %s", tpd_action_name(a.kind));
		tpd_action_clear(&a);
		tpd_access_request_free(snap);
	}
}

static int list_cb(void *ud, const tpd_access_request *r)
{
	int *count = ud;
	use_request(r, NULL);
	return ++*count >= 1000; /* also exercises the early stop */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TPD_ERRLEN];
	tpd_access_request req = {0};
	tpd_err rc;

	if (size < 1 || size > TPD_TELEPORT_MAX_MSG)
		return 0;
	const uint8_t *buf = data + 1;
	size_t len = size - 1;

	fuzz_err_init(err);
	switch (data[0] % 4) {
	case 0: {
		tpd_event_op op = TPD_EV_INIT;
		bool has = false;
		char *deleted = NULL;
		rc = tpd_teleport_decode_event(buf, len, &op, &req, &has, &deleted, err);
		if (rc != TPD_ERR_OK) {
			fuzz_check_err("tpd_teleport_decode_event", err);
			if (has || deleted)
				fuzz_fail("decode_event failed but set an output");
		} else {
			if (has && op != TPD_EV_PUT)
				fuzz_fail("a request outside a PUT event");
			if (deleted && (op != TPD_EV_DELETE || !deleted[0]))
				fuzz_fail("a deleted id outside a DELETE event, or empty");
			if (has)
				use_request(&req, NULL);
			if (deleted) {
				/* The controller resolves the incident of a deleted request. */
				tpd_plugin_data pd;
				tpd_action a;
				tpd_reconcile_opts o = {.notify_annotation = TPD_DEFAULT_NOTIFY_ANNOTATION,
				                        .services_annotation =
				                            TPD_DEFAULT_SERVICES_ANNOTATION};
				tpd_plugin_data_init(&pd);
				tpd_plugin_data_set(&pd, "incident_id", "PINC001");
				tpd_reconcile_input in = {.request = NULL, .pd = &pd};
				tpd_reconcile_next(&o, &in, &a);
				tpd_action_clear(&a);
				tpd_plugin_data_clear(&pd);
				free(tpd_incident_key(deleted));
			}
		}
		free(deleted);
		break;
	}
	case 1:
		rc = tpd_teleport_decode_request(buf, len, &req, err);
		if (rc != TPD_ERR_OK)
			fuzz_check_err("tpd_teleport_decode_request", err);
		else
			use_request(&req, NULL);
		break;
	case 2: {
		bool stopped = false;
		char *next = NULL;
		int count = 0;
		rc = tpd_teleport_decode_request_list(buf, len, list_cb, &count, &stopped, &next, err);
		if (rc != TPD_ERR_OK) {
			fuzz_check_err("tpd_teleport_decode_request_list", err);
			if (next)
				fuzz_fail("decode_request_list failed but set next_key");
		} else if (!next) {
			fuzz_fail("decode_request_list OK without next_key");
		}
		free(next);
		break;
	}
	default: {
		tpd_plugin_data pd = {0};
		rc = tpd_teleport_decode_plugin_data(buf, len, &pd, err);
		if (rc == TPD_ERR_OK) {
			for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++)
				if (!tpd_plugin_data_get(&pd, tpd_plugin_data_keys[i]))
					fuzz_fail("decoded plugin data with a NULL field %s",
					          tpd_plugin_data_keys[i]);
			/* Feed it to the reconciler with a pending and a resolved request. */
			tpd_access_request r = {0};
			r.id = strdup("8f6a3c1e-0000-4000-8000-000000000001");
			r.user = strdup("alice@example.com");
			r.request_reason = strdup("fuzz");
			r.resolve_reason = strdup("");
			r.state = TPD_STATE_PENDING;
			tpd_access_request_add_role(&r, "editor");
			tpd_access_request_add_review(&r, "bob", TPD_STATE_APPROVED, 1700000000, "ok");
			use_request(&r, &pd);
			r.state = TPD_STATE_APPROVED;
			use_request(&r, &pd);
			tpd_access_request_clear(&r);
		} else if (rc != TPD_ERR_NOT_FOUND) {
			fuzz_check_err("tpd_teleport_decode_plugin_data", err);
		}
		tpd_plugin_data_clear(&pd);
		break;
	}
	}
	tpd_access_request_clear(&req);
	return 0;
}
