/* teleport_conv.c - conversion between Teleport's wire messages (protobuf-c, the files in proto/) and
 * the domain model of tpd/types.h.
 *
 * Decoding is tolerant in the ways docs/teleport-wire.md §2.5 describes: unknown fields and unknown Event
 * oneof members are ignored (protobuf-c keeps them aside), absent non-nullable submessages decode
 * as empty, a zero Go time (Timestamp{-62135596800, 0}) and an absent Timestamp both mean "unset",
 * and out-of-range enum values become NONE. Encoding emits what Go emits where the server relies
 * on it (AccessReview.Annotations as an empty submessage, every plugin-data key in Set/Expect).
 * No I/O and no logging here; the input is whatever the network gave (bounded by gRPC's 4 MiB
 * receive limit), so nothing in it may reach an assert. */
#include <stdlib.h>
#include <string.h>

#include "teleport_authservice.pb-c.h"
#include "teleport_types.pb-c.h"
#include "teleport_wrappers.pb-c.h"

#include "tpd/teleport.h"
#include "tpd/util.h"

/* Go's zero time.Time on the wire (0001-01-01T00:00:00Z). */
#define GO_ZERO_TIME_SECONDS (-62135596800LL)

int64_t tpd_teleport_ts_seconds(bool present, int64_t seconds)
{
	if (!present || seconds == GO_ZERO_TIME_SECONDS || seconds <= GO_ZERO_TIME_SECONDS)
		return 0;
	return seconds;
}

static int64_t ts(const Google__Protobuf__Timestamp *t)
{
	return t ? tpd_teleport_ts_seconds(true, t->seconds) : 0;
}

/* The nanoseconds of a set timestamp (0 when unset or out of range). */
static int32_t ts_nanos(const Google__Protobuf__Timestamp *t)
{
	if (!ts(t) || t->nanos < 0 || t->nanos > 999999999)
		return 0;
	return t->nanos;
}

static tpd_request_state state_from_wire(int v)
{
	switch (v) {
	case TYPES__REQUEST_STATE__PENDING:
		return TPD_STATE_PENDING;
	case TYPES__REQUEST_STATE__APPROVED:
		return TPD_STATE_APPROVED;
	case TYPES__REQUEST_STATE__DENIED:
		return TPD_STATE_DENIED;
	case TYPES__REQUEST_STATE__PROMOTED:
		return TPD_STATE_PROMOTED;
	default:
		return TPD_STATE_NONE;
	}
}

static const char *s_or_empty(const char *s)
{
	return s ? s : "";
}

/* Fills out from a decoded AccessRequestV3 (out must be zeroed). */
static void request_from_wire(const Types__AccessRequestV3 *m, tpd_access_request *out)
{
	const Types__Metadata *md = m->metadata;
	const Types__AccessRequestSpecV3 *sp = m->spec;

	out->id = xstrdup(md ? s_or_empty(md->name) : "");
	if (md && !tpd_str_empty(md->revision))
		out->revision = xstrdup(md->revision);
	if (!sp) {
		out->user = xstrdup("");
		out->request_reason = xstrdup("");
		out->resolve_reason = xstrdup("");
		return;
	}
	out->user = xstrdup(s_or_empty(sp->user));
	for (size_t i = 0; i < sp->n_roles; i++)
		tpd_access_request_add_role(out, sp->roles[i]);
	out->state = state_from_wire(sp->state);
	out->created = ts(sp->created);
	out->expires = ts(sp->expires);
	out->request_reason = xstrdup(s_or_empty(sp->requestreason));
	out->resolve_reason = xstrdup(s_or_empty(sp->resolvereason));
	if (sp->systemannotations) {
		const Wrappers__LabelValues *lv = sp->systemannotations;
		for (size_t i = 0; i < lv->n_values; i++) {
			const Wrappers__LabelValues__ValuesEntry *e = lv->values[i];
			if (!e)
				continue;
			const Wrappers__StringValues *sv = e->value;
			tpd_access_request_add_annotation(out, s_or_empty(e->key),
			                                  sv ? (const char *const *)sv->values : NULL,
			                                  sv ? sv->n_values : 0);
		}
	}
	for (size_t i = 0; i < sp->n_reviews; i++) {
		const Types__AccessReview *rv = sp->reviews[i];
		if (!rv)
			continue;
		tpd_access_request_add_review(out, s_or_empty(rv->author), state_from_wire(rv->proposedstate),
		                              ts(rv->created), s_or_empty(rv->reason));
		out->reviews[out->n_reviews - 1].created_nanos = ts_nanos(rv->created);
	}
}

tpd_err tpd_teleport_decode_request(const uint8_t *buf, size_t len, tpd_access_request *out, char *err)
{
	tpd_access_request_clear(out);
	memset(out, 0, sizeof(*out));
	Types__AccessRequestV3 *m = types__access_request_v3__unpack(NULL, len, buf);
	if (!m)
		return tpd_seterr(err, TPD_ERR_PROTOCOL, "malformed AccessRequestV3 message (%zu bytes)",
		                  len);
	request_from_wire(m, out);
	types__access_request_v3__free_unpacked(m, NULL);
	return TPD_ERR_OK;
}

tpd_err tpd_teleport_decode_request_list(const uint8_t *buf, size_t len, tpd_request_cb cb, void *ud,
                                         bool *stopped, char **next_key, char *err)
{
	*next_key = NULL;
	Proto__ListAccessRequestsResponse *m = proto__list_access_requests_response__unpack(NULL, len, buf);
	if (!m)
		return tpd_seterr(err, TPD_ERR_PROTOCOL, "malformed ListAccessRequestsResponse (%zu bytes)",
		                  len);
	for (size_t i = 0; i < m->n_accessrequests && !*stopped; i++) {
		if (!m->accessrequests[i])
			continue;
		tpd_access_request r = {0};
		request_from_wire(m->accessrequests[i], &r);
		if (cb(ud, &r))
			*stopped = true;
		tpd_access_request_clear(&r);
	}
	*next_key = xstrdup(m->nextkey ? m->nextkey : "");
	proto__list_access_requests_response__free_unpacked(m, NULL);
	return TPD_ERR_OK;
}

tpd_err tpd_teleport_decode_event(const uint8_t *buf, size_t len, tpd_event_op *op, tpd_access_request *req,
                                  bool *has_request, char **deleted_id, char *err)
{
	*has_request = false;
	*deleted_id = NULL;
	Proto__Event *ev = proto__event__unpack(NULL, len, buf);
	if (!ev)
		return tpd_seterr(err, TPD_ERR_PROTOCOL, "malformed Event message (%zu bytes)", len);
	tpd_err rc = TPD_ERR_OK;
	switch (ev->type) {
	case PROTO__OPERATION__INIT:
		*op = TPD_EV_INIT;
		break;
	case PROTO__OPERATION__PUT:
		*op = TPD_EV_PUT;
		if (ev->resource_case == PROTO__EVENT__RESOURCE_ACCESS_REQUEST && ev->accessrequest) {
			tpd_access_request_clear(req);
			memset(req, 0, sizeof(*req));
			request_from_wire(ev->accessrequest, req);
			*has_request = true;
		}
		break;
	case PROTO__OPERATION__DELETE:
		*op = TPD_EV_DELETE;
		if (ev->resource_case == PROTO__EVENT__RESOURCE_RESOURCE_HEADER && ev->resourceheader) {
			const Types__ResourceHeader *h = ev->resourceheader;
			/* Older servers may leave Kind empty; a header we asked for is ours. */
			if ((tpd_str_empty(h->kind) || tpd_streq(h->kind, "access_request")) && h->metadata &&
			    !tpd_str_empty(h->metadata->name))
				*deleted_id = xstrdup(h->metadata->name);
		}
		break;
	default:
		rc = tpd_seterr(err, TPD_ERR_PROTOCOL, "unexpected event operation %d", (int)ev->type);
		break;
	}
	proto__event__free_unpacked(ev, NULL);
	return rc;
}

tpd_err tpd_teleport_decode_plugin_data(const uint8_t *buf, size_t len, tpd_plugin_data *out, char *err)
{
	Proto__PluginDataSeq *seq = proto__plugin_data_seq__unpack(NULL, len, buf);
	if (!seq)
		return tpd_seterr(err, TPD_ERR_PROTOCOL, "malformed PluginDataSeq message (%zu bytes)", len);
	tpd_err rc = tpd_seterr(err, TPD_ERR_NOT_FOUND, "plugin data not found");
	for (size_t i = 0; i < seq->n_plugindata && rc == TPD_ERR_NOT_FOUND; i++) {
		const Types__PluginDataV3 *pd = seq->plugindata[i];
		if (!pd || !pd->spec)
			continue;
		for (size_t j = 0; j < pd->spec->n_entries; j++) {
			const Types__PluginDataSpecV3__EntriesEntry *e = pd->spec->entries[j];
			if (!e || !tpd_streq(e->key, TPD_TELEPORT_PLUGIN_NAME))
				continue;
			tpd_plugin_data_init(out);
			if (e->value) {
				for (size_t k = 0; k < e->value->n_data; k++) {
					const Types__PluginDataEntry__DataEntry *d = e->value->data[k];
					/* Keys we do not know (a newer plugin's) are ignored. */
					if (d && d->key)
						tpd_plugin_data_set(out, d->key, s_or_empty(d->value));
				}
			}
			rc = TPD_ERR_OK;
			if (err)
				err[0] = '\0';
			break;
		}
	}
	proto__plugin_data_seq__free_unpacked(seq, NULL);
	return rc;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *b = xmalloc(*len ? *len : 1);
	protobuf_c_message_pack(m, b);
	return b;
}

tpd_err tpd_teleport_encode_plugin_update(const char *request_id, const tpd_plugin_data *set,
                                          const tpd_plugin_data *expect, uint8_t **out, size_t *out_len,
                                          char *err)
{
	if (tpd_str_empty(request_id) || !set)
		return tpd_seterr(err, TPD_ERR_INVAL, "plugin data update needs a request id and data");
	Types__PluginDataUpdateParams p = TYPES__PLUGIN_DATA_UPDATE_PARAMS__INIT;
	Types__PluginDataUpdateParams__SetEntry se[TPD_PLUGIN_DATA_NKEYS];
	Types__PluginDataUpdateParams__SetEntry *sp[TPD_PLUGIN_DATA_NKEYS];
	Types__PluginDataUpdateParams__ExpectEntry ee[TPD_PLUGIN_DATA_NKEYS];
	Types__PluginDataUpdateParams__ExpectEntry *ep[TPD_PLUGIN_DATA_NKEYS];

	p.kind = (char *)"access_request";
	p.resource = (char *)request_id;
	p.plugin = (char *)TPD_TELEPORT_PLUGIN_NAME;
	for (size_t i = 0; i < TPD_PLUGIN_DATA_NKEYS; i++) {
		const char *k = tpd_plugin_data_keys[i];
		types__plugin_data_update_params__set_entry__init(&se[i]);
		se[i].key = (char *)k;
		se[i].value = (char *)s_or_empty(tpd_plugin_data_get(set, k));
		sp[i] = &se[i];
		types__plugin_data_update_params__expect_entry__init(&ee[i]);
		ee[i].key = (char *)k;
		/* Nothing stored yet: upstream expects the 9 keys all empty. */
		ee[i].value = (char *)(expect ? s_or_empty(tpd_plugin_data_get(expect, k)) : "");
		ep[i] = &ee[i];
	}
	p.n_set = TPD_PLUGIN_DATA_NKEYS;
	p.set = sp;
	p.n_expect = TPD_PLUGIN_DATA_NKEYS;
	p.expect = ep;
	*out = pack(&p.base, out_len);
	return TPD_ERR_OK;
}

tpd_err tpd_teleport_encode_review(const char *request_id, const char *author, const char *reason,
                                   int64_t created_unix, int32_t created_nanos, uint8_t **out,
                                   size_t *out_len, char *err)
{
	if (tpd_str_empty(request_id))
		return tpd_seterr(err, TPD_ERR_INVAL, "review needs a request id");
	Types__AccessReviewSubmission sub = TYPES__ACCESS_REVIEW_SUBMISSION__INIT;
	Types__AccessReview rv = TYPES__ACCESS_REVIEW__INIT;
	Wrappers__LabelValues ann = WRAPPERS__LABEL_VALUES__INIT;
	Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	rv.author = (char *)s_or_empty(author);
	rv.proposedstate = TYPES__REQUEST_STATE__APPROVED;
	rv.reason = (char *)s_or_empty(reason);
	if (created_unix > 0) {
		created.seconds = created_unix;
		/* Full precision, as Go's time.Now() sends it. */
		created.nanos = created_nanos > 0 && created_nanos <= 999999999 ? created_nanos : 0;
		rv.created = &created;
	}
	/* Go always emits the non-nullable Annotations as an empty submessage (tag 0x32, len 0);
	 * the server requires it to be empty. */
	rv.annotations = &ann;
	sub.requestid = (char *)request_id;
	sub.review = &rv;
	*out = pack(&sub.base, out_len);
	return TPD_ERR_OK;
}
