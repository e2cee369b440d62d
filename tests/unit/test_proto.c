/* test_proto.c - golden wire tests for the hand-written Teleport proto subset (proto/) and the
 * conversion code (src/teleport/teleport_conv.c).
 *
 * Every expected byte string is built here BY HAND from the field numbers of proto/ and
 * docs/teleport-wire.md §2, either as literal hex with a comment per field, or with the tiny
 * independent writer below (tag = field << 3 | wire type, varints, length-delimited fields).
 * Nothing is produced by protobuf-c first and then pasted. Messages we send are encoded by our code and
 * compared byte for byte; messages we receive are decoded, checked field by field, re-encoded and decoded
 * again. Also covered: zero Go times, unknown fields, unknown Event oneof members, empty submessages, Go's
 * map entries with empty values, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "teleport_authservice.pb-c.h"
#include "teleport_types.pb-c.h"

#include "tpd/teleport.h"
#include "tpd/util.h"

#define GO_ZERO (-62135596800LL)

/* --- an independent protobuf writer --------------------------------------------------------- */

enum { WT_VARINT = 0, WT_LEN = 2 };

static void w_varint(tpd_buf *b, uint64_t v)
{
	uint8_t c;
	do {
		c = v & 0x7f;
		v >>= 7;
		if (v)
			c |= 0x80;
		tpd_buf_append(b, &c, 1);
	} while (v);
}

static void w_tag(tpd_buf *b, unsigned field, unsigned wt)
{
	w_varint(b, ((uint64_t)field << 3) | wt);
}

static void w_uint(tpd_buf *b, unsigned field, uint64_t v)
{
	w_tag(b, field, WT_VARINT);
	w_varint(b, v);
}

static void w_bytes(tpd_buf *b, unsigned field, const void *p, size_t n)
{
	w_tag(b, field, WT_LEN);
	w_varint(b, n);
	tpd_buf_append(b, p, n);
}

static void w_str(tpd_buf *b, unsigned field, const char *s)
{
	w_bytes(b, field, s, strlen(s));
}

/* Appends sub as a length-delimited submessage and frees it. */
static void w_msg(tpd_buf *b, unsigned field, tpd_buf *sub)
{
	w_bytes(b, field, sub->data ? sub->data : "", sub->len);
	tpd_buf_free(sub);
}

/* google.protobuf.Timestamp{seconds} (negative seconds: 10-byte two's complement varint). */
static void w_ts_nanos(tpd_buf *b, unsigned field, int64_t seconds, int32_t nanos)
{
	tpd_buf t;
	tpd_buf_init(&t, 0);
	if (seconds)
		w_uint(&t, 1, (uint64_t)seconds);
	if (nanos)
		w_uint(&t, 2, (uint64_t)nanos);
	w_msg(b, field, &t);
}

static void w_ts(tpd_buf *b, unsigned field, int64_t seconds)
{
	w_ts_nanos(b, field, seconds, 0);
}

/* A map<string,string> entry as Go writes it: key and value always present. */
static void w_map_ss(tpd_buf *b, unsigned field, const char *k, const char *v, bool go_style)
{
	tpd_buf e;
	tpd_buf_init(&e, 0);
	w_str(&e, 1, k);
	if (go_style || *v)
		w_str(&e, 2, v);
	w_msg(b, field, &e);
}

static void assert_bytes(const uint8_t *got, size_t got_len, const void *want, size_t want_len)
{
	if (got_len != want_len || memcmp(got, want, want_len) != 0) {
		fprintf(stderr, "got  (%zu):", got_len);
		for (size_t i = 0; i < got_len; i++)
			fprintf(stderr, " %02x", got[i]);
		fprintf(stderr, "\nwant (%zu):", want_len);
		for (size_t i = 0; i < want_len; i++)
			fprintf(stderr, " %02x", ((const uint8_t *)want)[i]);
		fprintf(stderr, "\n");
	}
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *n)
{
	*n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(*n ? *n : 1);
	protobuf_c_message_pack(m, p);
	return p;
}

/* --- messages we send ------------------------------------------------------------------------ */

static void test_review_submission(void **state)
{
	(void)state;
	/* {RequestID:"abc", Review{Author:"bot", ProposedState:APPROVED, Annotations:{}}}:
	 * docs/teleport-wire.md §2.6 gives 0a03616263 1207 0a03626f74 1802 without Annotations;
	 * Go always adds the empty non-nullable Annotations (field 6: 0x32 0x00). */
	static const uint8_t want[] = {
	    0x0a, 0x03, 'a', 'b', 'c', /* 1 RequestID */
	    0x12, 0x09,                /* 2 Review, 9 bytes */
	    0x0a, 0x03, 'b', 'o', 't', /*   1 Author */
	    0x18, 0x02,                /*   3 ProposedState = APPROVED */
	    0x32, 0x00,                /*   6 Annotations = {} */
	};
	uint8_t *out = NULL;
	size_t n = 0;
	char err[TPD_ERRLEN];
	assert_int_equal(tpd_teleport_encode_review("abc", "bot", "", 0, 0, &out, &n, err), TPD_ERR_OK);
	assert_bytes(out, n, want, sizeof(want));
	free(out);

	/* With reason and Created = 2021-06-01 13:27:17 UTC (1622554037 = varint b5 eb d8 85 06). */
	static const uint8_t want2[] = {
	    0x0a, 0x02, 'r',  '1',                          /* 1 RequestID */
	    0x12, 0x10,                                     /* 2 Review, 16 bytes */
	    0x18, 0x02,                                     /*   3 ProposedState */
	    0x22, 0x02, 'o',  'k',                          /*   4 Reason */
	    0x2a, 0x06, 0x08, 0xb5, 0xeb, 0xd8, 0x85, 0x06, /* 5 Created{seconds} */
	    0x32, 0x00,                                     /*   6 Annotations */
	};
	assert_int_equal(tpd_teleport_encode_review("r1", NULL, "ok", 1622554037, 0, &out, &n, err),
	                 TPD_ERR_OK);
	assert_bytes(out, n, want2, sizeof(want2));
	/* And it decodes as what the server reads. */
	Types__AccessReviewSubmission *s = types__access_review_submission__unpack(NULL, n, out);
	assert_non_null(s);
	assert_string_equal(s->requestid, "r1");
	assert_int_equal(s->review->proposedstate, TYPES__REQUEST_STATE__APPROVED);
	assert_int_equal(s->review->created->seconds, 1622554037);
	assert_non_null(s->review->annotations);
	assert_int_equal(s->review->annotations->n_values, 0);
	types__access_review_submission__free_unpacked(s, NULL);
	free(out);

	/* Created keeps its nanoseconds (Timestamp field 2), as Go's time.Now() sends them. */
	assert_int_equal(tpd_teleport_encode_review("r1", NULL, "ok", 1622554037, 987654321, &out, &n, err),
	                 TPD_ERR_OK);
	s = types__access_review_submission__unpack(NULL, n, out);
	assert_non_null(s);
	assert_int_equal(s->review->created->seconds, 1622554037);
	assert_int_equal(s->review->created->nanos, 987654321);
	types__access_review_submission__free_unpacked(s, NULL);
	free(out);

	assert_int_equal(tpd_teleport_encode_review("", "bot", "x", 0, 0, &out, &n, err), TPD_ERR_INVAL);
}

static void test_plugin_update(void **state)
{
	(void)state;
	tpd_plugin_data set, expect;
	tpd_plugin_data_init(&set);
	tpd_plugin_data_init(&expect);
	tpd_plugin_data_set(&set, "incident_id", "INCIDENT1");
	tpd_plugin_data_set(&set, "service_id", "SERVICE1");
	tpd_plugin_data_set(&set, "user", "user-foo");
	tpd_plugin_data_set(&set, "roles", "role-foo,role-bar");
	tpd_plugin_data_set(&set, "created", "1622554037");
	tpd_plugin_data_set(&set, "reviews_count", "3");
	tpd_plugin_data_set(&set, "resolution", "approved");
	tpd_plugin_data_set(&set, "resolve_reason", "foo ok");

	/* PluginDataUpdateParams: Kind=1, Resource=2, Plugin=3, Set=4 map, Expect=5 map. Entries in
	 * our fixed key order. protobuf-c leaves out an entry's empty value (proto3 default), which
	 * decodes exactly like Go's explicit "" (a missing map value is the empty string). */
	tpd_buf want;
	tpd_buf_init(&want, 0);
	w_str(&want, 1, "access_request");
	w_str(&want, 2, "req-1");
	w_str(&want, 3, "pagerduty");
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++)
		w_map_ss(&want, 4, tpd_plugin_data_keys[i],
		         tpd_plugin_data_get(&set, tpd_plugin_data_keys[i]), false);
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++)
		w_map_ss(&want, 5, tpd_plugin_data_keys[i], "", false);

	uint8_t *out = NULL;
	size_t n = 0;
	char err[TPD_ERRLEN];
	assert_int_equal(tpd_teleport_encode_plugin_update("req-1", &set, NULL, &out, &n, err), TPD_ERR_OK);
	assert_bytes(out, n, want.data, want.len);
	free(out);
	tpd_buf_free(&want);

	/* Go's form (every value written, even ""): decodes to the same maps. */
	tpd_buf go;
	tpd_buf_init(&go, 0);
	w_str(&go, 1, "access_request");
	w_str(&go, 2, "req-1");
	w_str(&go, 3, "pagerduty");
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++)
		w_map_ss(&go, 4, tpd_plugin_data_keys[i], tpd_plugin_data_get(&set, tpd_plugin_data_keys[i]),
		         true);
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++)
		w_map_ss(&go, 5, tpd_plugin_data_keys[i], "", true);
	Types__PluginDataUpdateParams *p =
	    types__plugin_data_update_params__unpack(NULL, go.len, (const uint8_t *)go.data);
	assert_non_null(p);
	assert_string_equal(p->kind, "access_request");
	assert_int_equal(p->n_set, TPD_PLUGIN_DATA_NKEYS);
	assert_int_equal(p->n_expect, TPD_PLUGIN_DATA_NKEYS);
	assert_string_equal(p->set[0]->key, "incident_id");
	assert_string_equal(p->set[0]->value, "INCIDENT1");
	assert_string_equal(p->set[4]->key, "created");
	assert_string_equal(p->set[4]->value, "1622554037");
	for (size_t i = 0; i < p->n_expect; i++)
		assert_string_equal(p->expect[i]->value, "");
	types__plugin_data_update_params__free_unpacked(p, NULL);
	tpd_buf_free(&go);

	/* With an expectation the Expect map carries it. */
	tpd_plugin_data_set(&expect, "incident_id", "INCIDENT1");
	assert_int_equal(tpd_teleport_encode_plugin_update("req-1", &set, &expect, &out, &n, err),
	                 TPD_ERR_OK);
	p = types__plugin_data_update_params__unpack(NULL, n, out);
	assert_non_null(p);
	assert_string_equal(p->expect[0]->key, "incident_id");
	assert_string_equal(p->expect[0]->value, "INCIDENT1");
	types__plugin_data_update_params__free_unpacked(p, NULL);
	free(out);
	tpd_plugin_data_clear(&set);
	tpd_plugin_data_clear(&expect);
}

static void test_requests_we_send(void **state)
{
	(void)state;
	size_t n;
	uint8_t *out;

	/* Watch{Kinds:[{Kind:"access_request"}]} */
	static const uint8_t want_watch[] = {
	    0x0a, 0x10, /* 1 Kinds[0], 16 bytes */
	    0x0a, 0x0e, 'a', 'c', 'c', 'e', 's', 's', '_', 'r', 'e', 'q', 'u', 'e', 's', 't', /* 1 Kind */
	};
	Types__WatchKind k = TYPES__WATCH_KIND__INIT;
	Types__WatchKind *kinds[] = {&k};
	Proto__Watch w = PROTO__WATCH__INIT;
	k.kind = "access_request";
	w.n_kinds = 1;
	w.kinds = kinds;
	out = pack(&w.base, &n);
	assert_bytes(out, n, want_watch, sizeof(want_watch));
	free(out);

	/* PluginDataFilter{Kind:"access_request", Resource:"r1", Plugin:"pagerduty"} */
	static const uint8_t want_filter[] = {
	    0x0a, 0x0e, 'a', 'c', 'c',  'e',  's', 's', '_', 'r', 'e', 'q', 'u', 'e', 's', 't',
	    0x12, 0x02, 'r', '1', 0x1a, 0x09, 'p', 'a', 'g', 'e', 'r', 'd', 'u', 't', 'y',
	};
	Types__PluginDataFilter f = TYPES__PLUGIN_DATA_FILTER__INIT;
	f.kind = "access_request";
	f.resource = "r1";
	f.plugin = "pagerduty";
	out = pack(&f.base, &n);
	assert_bytes(out, n, want_filter, sizeof(want_filter));
	free(out);

	/* ListAccessRequestsRequest{Filter:{}, Limit:256, StartKey:"k"} */
	static const uint8_t want_list[] = {
	    0x0a, 0x00,       /* 1 Filter = {} (Go sends the filter it was given) */
	    0x20, 0x80, 0x02, /* 4 Limit = 256 */
	    0x2a, 0x01, 'k',  /* 5 StartKey */
	};
	Types__AccessRequestFilter af = TYPES__ACCESS_REQUEST_FILTER__INIT;
	Proto__ListAccessRequestsRequest lr = PROTO__LIST_ACCESS_REQUESTS_REQUEST__INIT;
	lr.filter = &af;
	lr.limit = 256;
	lr.startkey = "k";
	out = pack(&lr.base, &n);
	assert_bytes(out, n, want_list, sizeof(want_list));
	free(out);

	/* PingRequest{} is empty on the wire. */
	Proto__PingRequest pr = PROTO__PING_REQUEST__INIT;
	assert_int_equal(protobuf_c_message_get_packed_size(&pr.base), 0);
}

/* --- messages we receive --------------------------------------------------------------------- */

/* A full AccessRequestV3 as a Go server sends it (non-nullable fields always present). */
static void build_request(tpd_buf *b, const char *id, int64_t created, bool with_unknown)
{
	tpd_buf md, spec, lv, e, sv, th, rv, ann;
	tpd_buf_init(&md, 0);
	w_str(&md, 1, id);
	w_str(&md, 2, "default");
	w_ts(&md, 6, 1700003600);
	w_str(&md, 8, "rev-7");

	tpd_buf_init(&spec, 0);
	w_str(&spec, 1, "alice@example.com");
	w_str(&spec, 2, "editor");
	w_str(&spec, 2, "viewer");
	w_uint(&spec, 3, 1); /* PENDING */
	w_ts(&spec, 4, created);
	w_ts(&spec, 5, 1700003600);
	w_str(&spec, 6, "because of");
	tpd_buf_init(&lv, 0);
	w_msg(&spec, 8, &lv); /* ResolveAnnotations = {} */
	/* SystemAnnotations: LabelValues{Values: {"pagerduty_services": ["Service 1","Service 2"],
	 * "pagerduty_notify_service": ["Teleport Notifications"]}} */
	tpd_buf_init(&lv, 0);
	tpd_buf_init(&e, 0);
	w_str(&e, 1, "pagerduty_services");
	tpd_buf_init(&sv, 0);
	w_str(&sv, 1, "Service 1");
	w_str(&sv, 1, "Service 2");
	w_msg(&e, 2, &sv);
	w_msg(&lv, 1, &e);
	tpd_buf_init(&e, 0);
	w_str(&e, 1, "pagerduty_notify_service");
	tpd_buf_init(&sv, 0);
	w_str(&sv, 1, "Teleport Notifications");
	w_msg(&e, 2, &sv);
	w_msg(&lv, 1, &e);
	w_msg(&spec, 9, &lv);
	tpd_buf_init(&th, 0);
	w_str(&th, 1, "default");
	w_uint(&th, 3, 1);
	w_uint(&th, 4, 1);
	w_msg(&spec, 10, &th);
	tpd_buf_init(&rv, 0);
	w_str(&rv, 1, "reviewer1@example.com");
	w_uint(&rv, 3, 3); /* DENIED */
	w_str(&rv, 4, "not okay");
	w_ts_nanos(&rv, 5, 1700000100, 123456789); /* Teleport's reviews carry nanoseconds */
	tpd_buf_init(&ann, 0);
	w_msg(&rv, 6, &ann);
	w_msg(&spec, 12, &rv);
	w_ts(&spec, 17, GO_ZERO); /* MaxDuration: zero Go time */
	w_ts(&spec, 18, GO_ZERO); /* SessionTTL */
	if (with_unknown) {
		w_uint(&spec, 25, 2);       /* a newer field (RequestKind-like enum) */
		w_str(&spec, 27, "timing"); /* and a newer message/string */
	}

	w_str(b, 1, "access_request");
	w_str(b, 3, "v3");
	w_msg(b, 4, &md);
	w_msg(b, 5, &spec);
}

static void check_request(const tpd_access_request *r, const char *id, int64_t created)
{
	assert_string_equal(r->id, id);
	assert_string_equal(r->user, "alice@example.com");
	assert_int_equal(r->n_roles, 2);
	assert_string_equal(r->roles[1], "viewer");
	assert_int_equal(r->state, TPD_STATE_PENDING);
	assert_int_equal(r->created, created);
	assert_int_equal(r->expires, 1700003600);
	assert_string_equal(r->request_reason, "because of");
	assert_string_equal(r->resolve_reason, "");
	assert_string_equal(r->revision, "rev-7");
	const tpd_annotation *a = tpd_access_request_annotation(r, "pagerduty_services");
	assert_non_null(a);
	assert_int_equal(a->n_values, 2);
	assert_string_equal(a->values[1], "Service 2");
	a = tpd_access_request_annotation(r, "pagerduty_notify_service");
	assert_non_null(a);
	assert_string_equal(a->values[0], "Teleport Notifications");
	assert_int_equal(r->n_reviews, 1);
	assert_string_equal(r->reviews[0].author, "reviewer1@example.com");
	assert_int_equal(r->reviews[0].proposed_state, TPD_STATE_DENIED);
	assert_int_equal(r->reviews[0].created, 1700000100);
	assert_int_equal(r->reviews[0].created_nanos, 123456789);
	assert_string_equal(r->reviews[0].reason, "not okay");
}

static void test_access_request_decode(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	for (int unknown = 0; unknown < 2; unknown++) {
		tpd_buf b;
		tpd_buf_init(&b, 0);
		build_request(&b, "3f1a5c9e-0000-4000-8000-000000000001", 1700000000, unknown);
		tpd_access_request r = {0};
		assert_int_equal(tpd_teleport_decode_request((const uint8_t *)b.data, b.len, &r, err),
		                 TPD_ERR_OK);
		check_request(&r, "3f1a5c9e-0000-4000-8000-000000000001", 1700000000);
		tpd_access_request_clear(&r);

		/* Re-encode with protobuf-c (unknown fields are kept) and decode again. */
		Types__AccessRequestV3 *m =
		    types__access_request_v3__unpack(NULL, b.len, (const uint8_t *)b.data);
		assert_non_null(m);
		assert_int_equal(m->spec->maxduration->seconds, GO_ZERO);
		size_t n;
		uint8_t *re = pack(&m->base, &n);
		if (!unknown)
			assert_bytes(re, n, b.data, b.len); /* canonical order: byte-identical */
		else
			assert_int_equal(n, b.len); /* unknown fields preserved */
		types__access_request_v3__free_unpacked(m, NULL);
		memset(&r, 0, sizeof(r));
		assert_int_equal(tpd_teleport_decode_request(re, n, &r, err), TPD_ERR_OK);
		check_request(&r, "3f1a5c9e-0000-4000-8000-000000000001", 1700000000);
		tpd_access_request_clear(&r);
		free(re);
		tpd_buf_free(&b);
	}

	/* Zero Go time for Created means "unset". */
	tpd_buf b;
	tpd_buf_init(&b, 0);
	build_request(&b, "r-zero", GO_ZERO, false);
	tpd_access_request r = {0};
	assert_int_equal(tpd_teleport_decode_request((const uint8_t *)b.data, b.len, &r, err), TPD_ERR_OK);
	assert_int_equal(r.created, 0);
	tpd_access_request_clear(&r);
	tpd_buf_free(&b);

	/* A bare request (no Spec at all) decodes to empty strings, not NULLs. */
	static const uint8_t bare[] = {0x0a, 0x0e, 'a', 'c', 'c', 'e', 's', 's',
	                               '_',  'r',  'e', 'q', 'u', 'e', 's', 't'};
	memset(&r, 0, sizeof(r));
	assert_int_equal(tpd_teleport_decode_request(bare, sizeof(bare), &r, err), TPD_ERR_OK);
	assert_string_equal(r.id, "");
	assert_string_equal(r.user, "");
	assert_int_equal(r.state, TPD_STATE_NONE);
	tpd_access_request_clear(&r);

	/* An out-of-range state becomes NONE. */
	tpd_buf_init(&b, 0);
	tpd_buf spec;
	tpd_buf_init(&spec, 0);
	w_uint(&spec, 3, 9);
	w_msg(&b, 5, &spec);
	memset(&r, 0, sizeof(r));
	assert_int_equal(tpd_teleport_decode_request((const uint8_t *)b.data, b.len, &r, err), TPD_ERR_OK);
	assert_int_equal(r.state, TPD_STATE_NONE);
	tpd_access_request_clear(&r);
	tpd_buf_free(&b);
}

static void test_events(void **state)
{
	(void)state;
	char err[TPD_ERRLEN];
	tpd_event_op op;
	tpd_access_request r = {0};
	bool has;
	char *del;

	/* INIT with a WatchStatus (field 43 → tag varint 0xda 0x02). */
	static const uint8_t init[] = {
	    0xda, 0x02, 0x12, /* 43 WatchStatus, 18 bytes */
	    0x0a, 0x0c, 'w',  'a', 't', 'c', 'h', '_', 's', 't', 'a', 't', 'u', 's', /* 1 Kind */
	    0x1a, 0x02, 'v',  '1',                                                   /* 3 Version */
	};
	assert_int_equal(tpd_teleport_decode_event(init, sizeof(init), &op, &r, &has, &del, err), TPD_ERR_OK);
	assert_int_equal(op, TPD_EV_INIT);
	assert_false(has);
	assert_null(del);
	/* An old server's INIT: an empty message (Type 0 is not written). */
	assert_int_equal(tpd_teleport_decode_event((const uint8_t *)"", 0, &op, &r, &has, &del, err),
	                 TPD_ERR_OK);
	assert_int_equal(op, TPD_EV_INIT);

	/* PUT with AccessRequest (field 14: tag 0x72). */
	tpd_buf ev, req;
	tpd_buf_init(&ev, 0);
	tpd_buf_init(&req, 0);
	build_request(&req, "put-1", 1700000000, true);
	w_uint(&ev, 1, 1);
	w_msg(&ev, 14, &req);
	assert_int_equal(
	    tpd_teleport_decode_event((const uint8_t *)ev.data, ev.len, &op, &r, &has, &del, err),
	    TPD_ERR_OK);
	assert_int_equal(op, TPD_EV_PUT);
	assert_true(has);
	check_request(&r, "put-1", 1700000000);
	tpd_access_request_clear(&r);
	memset(&r, 0, sizeof(r));
	/* Re-encode: byte-identical (fields in order; unknowns are inside the nested message). */
	Proto__Event *pe = proto__event__unpack(NULL, ev.len, (const uint8_t *)ev.data);
	assert_non_null(pe);
	assert_int_equal(pe->resource_case, PROTO__EVENT__RESOURCE_ACCESS_REQUEST);
	size_t n;
	uint8_t *re = pack(&pe->base, &n);
	assert_int_equal(n, ev.len);
	free(re);
	proto__event__free_unpacked(pe, NULL);
	tpd_buf_free(&ev);

	/* PUT of another kind (an unknown oneof member, e.g. User = field 8): ignored. */
	static const uint8_t put_user[] = {
	    0x08, 0x01,                                 /* 1 Type = PUT */
	    0x42, 0x06, 0x0a, 0x04, 'u', 's', 'e', 'r', /* 8 User{Kind:"user"} — not in our subset */
	};
	assert_int_equal(tpd_teleport_decode_event(put_user, sizeof(put_user), &op, &r, &has, &del, err),
	                 TPD_ERR_OK);
	assert_int_equal(op, TPD_EV_PUT);
	assert_false(has);
	/* A far-away member (field 81, tag 0x8a 0x05) is just as harmless. */
	static const uint8_t put_far[] = {0x08, 0x01, 0x8a, 0x05, 0x02, 0x0a, 0x00};
	assert_int_equal(tpd_teleport_decode_event(put_far, sizeof(put_far), &op, &r, &has, &del, err),
	                 TPD_ERR_OK);
	assert_false(has);

	/* DELETE with ResourceHeader (field 2). */
	static const uint8_t delete_ev[] = {
	    0x08, 0x02, /* 1 Type = DELETE */
	    0x12, 0x1f, /* 2 ResourceHeader, 31 bytes */
	    0x0a, 0x0e, 'a', 'c', 'c', 'e', 's', 's', '_', 'r', 'e', 'q', 'u', 'e', 's', 't', /* 1 Kind */
	    0x1a, 0x02, 'v', '3',                          /*   3 Version */
	    0x22, 0x09,                                    /*   4 Metadata, 9 bytes */
	    0x0a, 0x07, 'r', 'e', 'q', '-', 'd', 'e', 'l', /* 1 Name */
	};
	assert_int_equal(tpd_teleport_decode_event(delete_ev, sizeof(delete_ev), &op, &r, &has, &del, err),
	                 TPD_ERR_OK);
	assert_int_equal(op, TPD_EV_DELETE);
	assert_non_null(del);
	assert_string_equal(del, "req-del");
	free(del);
	pe = proto__event__unpack(NULL, sizeof(delete_ev), delete_ev);
	assert_non_null(pe);
	re = pack(&pe->base, &n);
	assert_bytes(re, n, delete_ev, sizeof(delete_ev));
	free(re);
	proto__event__free_unpacked(pe, NULL);

	/* DELETE of another kind: no id. */
	static const uint8_t delete_role[] = {0x08, 0x02, 0x12, 0x0c, 0x0a, 0x04, 'r', 'o',
	                                      'l',  'e',  0x22, 0x04, 0x0a, 0x02, 'r', '1'};
	assert_int_equal(
	    tpd_teleport_decode_event(delete_role, sizeof(delete_role), &op, &r, &has, &del, err),
	    TPD_ERR_OK);
	assert_null(del);

	/* Unknown operation and garbage are protocol errors, never crashes. */
	static const uint8_t bad_op[] = {0x08, 0x07};
	assert_int_equal(tpd_teleport_decode_event(bad_op, sizeof(bad_op), &op, &r, &has, &del, err),
	                 TPD_ERR_PROTOCOL);
	static const uint8_t truncated[] = {0x08, 0x01, 0x72, 0x40, 0x0a};
	assert_int_equal(tpd_teleport_decode_event(truncated, sizeof(truncated), &op, &r, &has, &del, err),
	                 TPD_ERR_PROTOCOL);
	tpd_access_request_clear(&r);
}

static void test_ping_response(void **state)
{
	(void)state;
	tpd_buf b, feat;
	tpd_buf_init(&b, 0);
	tpd_buf_init(&feat, 0);
	w_uint(&feat, 1, 1);      /* Kubernetes: unknown to our subset */
	w_uint(&feat, 7, 1);      /* AdvancedAccessWorkflows */
	w_str(&feat, 22, "dark"); /* CustomTheme */
	w_str(&b, 1, "example.com");
	w_str(&b, 2, "16.4.0");
	w_msg(&b, 3, &feat);
	w_str(&b, 4, "teleport.example.com:443");
	w_str(&b, 7, "10.0.0.1:1234");
	Proto__PingResponse *p = proto__ping_response__unpack(NULL, b.len, (const uint8_t *)b.data);
	assert_non_null(p);
	assert_string_equal(p->clustername, "example.com");
	assert_string_equal(p->serverversion, "16.4.0");
	assert_true(p->serverfeatures->advancedaccessworkflows);
	assert_string_equal(p->proxypublicaddr, "teleport.example.com:443");
	assert_null(p->licenseexpiry);
	size_t n;
	uint8_t *re = pack(&p->base, &n);
	assert_int_equal(n, b.len);
	proto__ping_response__free_unpacked(p, NULL);
	free(re);
	tpd_buf_free(&b);
}

static void test_plugin_data_seq(void **state)
{
	(void)state;
	/* PluginDataSeq{[PluginDataV3{Kind:"plugin_data", SubKind:"access_request", Version:"v3",
	 * Metadata{Name:"req-1"}, Spec{Entries:{"slack":{...}, "pagerduty":{Data:{...}}}}}]} */
	tpd_buf seq, pd, md, spec, ent, data;
	tpd_buf_init(&seq, 0);
	tpd_buf_init(&pd, 0);
	w_str(&pd, 1, "plugin_data");
	w_str(&pd, 2, "access_request");
	w_str(&pd, 3, "v3");
	tpd_buf_init(&md, 0);
	w_str(&md, 1, "req-1");
	w_msg(&pd, 4, &md);
	tpd_buf_init(&spec, 0);
	/* entry "slack" */
	tpd_buf_init(&ent, 0);
	w_str(&ent, 1, "slack");
	tpd_buf_init(&data, 0);
	w_map_ss(&data, 1, "incident_id", "WRONG", true);
	w_msg(&ent, 2, &data);
	w_msg(&spec, 1, &ent);
	/* entry "pagerduty" */
	tpd_buf_init(&ent, 0);
	w_str(&ent, 1, "pagerduty");
	tpd_buf_init(&data, 0);
	w_map_ss(&data, 1, "incident_id", "INCIDENT1", true);
	w_map_ss(&data, 1, "roles", "role-foo,role-bar", true);
	w_map_ss(&data, 1, "reviews_count", "", true);
	w_map_ss(&data, 1, "future_key", "ignored", true);
	w_map_ss(&data, 1, "resolution", "approved", true);
	w_msg(&ent, 2, &data);
	w_msg(&spec, 1, &ent);
	w_msg(&pd, 5, &spec);
	w_msg(&seq, 1, &pd);

	tpd_plugin_data out;
	char err[TPD_ERRLEN];
	memset(&out, 0, sizeof(out));
	assert_int_equal(tpd_teleport_decode_plugin_data((const uint8_t *)seq.data, seq.len, &out, err),
	                 TPD_ERR_OK);
	assert_string_equal(out.incident_id, "INCIDENT1");
	assert_string_equal(out.roles, "role-foo,role-bar");
	assert_string_equal(out.reviews_count, "");
	assert_string_equal(out.resolution, "approved");
	assert_string_equal(out.user, "");
	tpd_plugin_data_clear(&out);

	/* Re-encode (protobuf-c drops the empty value of "reviews_count") and decode again. */
	Proto__PluginDataSeq *m = proto__plugin_data_seq__unpack(NULL, seq.len, (const uint8_t *)seq.data);
	assert_non_null(m);
	size_t n;
	uint8_t *re = pack(&m->base, &n);
	proto__plugin_data_seq__free_unpacked(m, NULL);
	assert_int_equal(n, seq.len - 2); /* only the 2-byte empty value field is gone */
	memset(&out, 0, sizeof(out));
	assert_int_equal(tpd_teleport_decode_plugin_data(re, n, &out, err), TPD_ERR_OK);
	assert_string_equal(out.incident_id, "INCIDENT1");
	tpd_plugin_data_clear(&out);
	free(re);
	tpd_buf_free(&seq);

	/* Empty sequence and "only another plugin": NOT_FOUND. */
	memset(&out, 0, sizeof(out));
	assert_int_equal(tpd_teleport_decode_plugin_data((const uint8_t *)"", 0, &out, err),
	                 TPD_ERR_NOT_FOUND);
	static const uint8_t garbage[] = {0x0a, 0xff};
	assert_int_equal(tpd_teleport_decode_plugin_data(garbage, sizeof(garbage), &out, err),
	                 TPD_ERR_PROTOCOL);
}

typedef struct {
	int n;
	char first[64];
} cnt;

static int count_cb(void *ud, const tpd_access_request *r)
{
	cnt *c = ud;
	if (c->n++ == 0)
		snprintf(c->first, sizeof(c->first), "%s", r->id);
	return 0;
}

static int stop_cb(void *ud, const tpd_access_request *r)
{
	(void)r;
	((cnt *)ud)->n++;
	return 1;
}

static void test_list_response(void **state)
{
	(void)state;
	tpd_buf b, r1, r2;
	tpd_buf_init(&b, 0);
	tpd_buf_init(&r1, 0);
	tpd_buf_init(&r2, 0);
	build_request(&r1, "list-1", 1700000000, false);
	build_request(&r2, "list-2", 1700000000, true);
	w_msg(&b, 1, &r1);
	w_msg(&b, 1, &r2);
	w_str(&b, 2, "2/list-3");
	cnt c = {0};
	bool stopped = false;
	char *next = NULL;
	char err[TPD_ERRLEN];
	assert_int_equal(tpd_teleport_decode_request_list((const uint8_t *)b.data, b.len, count_cb, &c,
	                                                  &stopped, &next, err),
	                 TPD_ERR_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.first, "list-1");
	assert_false(stopped);
	assert_string_equal(next, "2/list-3");
	free(next);
	cnt s = {0};
	assert_int_equal(tpd_teleport_decode_request_list((const uint8_t *)b.data, b.len, stop_cb, &s,
	                                                  &stopped, &next, err),
	                 TPD_ERR_OK);
	assert_int_equal(s.n, 1);
	assert_true(stopped);
	free(next);
	tpd_buf_free(&b);
}

static void test_timestamps(void **state)
{
	(void)state;
	assert_int_equal(tpd_teleport_ts_seconds(false, 123), 0);
	assert_int_equal(tpd_teleport_ts_seconds(true, GO_ZERO), 0);
	assert_int_equal(tpd_teleport_ts_seconds(true, GO_ZERO - 5), 0);
	assert_int_equal(tpd_teleport_ts_seconds(true, 1622554037), 1622554037);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_review_submission),
	    cmocka_unit_test(test_plugin_update),
	    cmocka_unit_test(test_requests_we_send),
	    cmocka_unit_test(test_access_request_decode),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_ping_response),
	    cmocka_unit_test(test_plugin_data_seq),
	    cmocka_unit_test(test_list_response),
	    cmocka_unit_test(test_timestamps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
