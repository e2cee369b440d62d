/* reconcile.c - pure decision logic and upstream's texts. No I/O, no clock, no globals.
 *
 * The state machine, per request (see reconcile.h for the contract):
 *   deleted          → resolve the incident as "expired" if one is open; seen PENDING but
 *                      nothing stored: find or open the incident, resolve it as "expired"
 *   PENDING          → create the incident (once), note new reviews, try auto-approval
 *   APPROVED/DENIED/PROMOTED → (seen PENDING, nothing stored: create the incident first) note
 *                      remaining reviews, resolve with the matching tag
 * with recovery steps for every point where a crash can leave the stored intent ahead of
 * PagerDuty. A request resolved or deleted before it was ever seen PENDING is left alone. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/reconcile.h"
#include "tpd/extras.h"
#include "tpd/util.h"

const char *tpd_action_name(tpd_action_kind k)
{
	switch (k) {
	case TPD_ACT_NONE:
		return "none";
	case TPD_ACT_CREATE_INCIDENT:
		return "create_incident";
	case TPD_ACT_POST_REVIEW_NOTES:
		return "post_review_notes";
	case TPD_ACT_RESOLVE:
		return "resolve_incident";
	case TPD_ACT_ADOPT_BY_KEY:
		return "adopt_incident_by_key";
	case TPD_ACT_CREATE_EXTRAS:
		return "create_extra_incidents";
	case TPD_ACT_AUTO_APPROVE:
		return "auto_approve";
	}
	return "unknown";
}

const char *tpd_resolution_tag(tpd_request_state s)
{
	switch (s) {
	case TPD_STATE_APPROVED:
		return "approved";
	case TPD_STATE_DENIED:
		return "denied";
	case TPD_STATE_PROMOTED:
		return "promoted";
	default:
		return NULL;
	}
}

void tpd_action_clear(tpd_action *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_services; i++)
		free(a->services[i]);
	free(a->services);
	memset(a, 0, sizeof(*a));
}

static const struct {
	const char *text;
	tpd_idle_level level;
} idle_table[] = {
#define TPD_IDLE_ROW(name, lvl, txt) [TPD_IDLE_##name] = {txt, TPD_IDLE_LEVEL_##lvl},
    TPD_IDLE_MAP(TPD_IDLE_ROW)
#undef TPD_IDLE_ROW
};

const char *tpd_idle_text(tpd_idle why)
{
	return (size_t)why < sizeof(idle_table) / sizeof(idle_table[0]) ? idle_table[why].text : "?";
}

tpd_idle_level tpd_idle_level_of(tpd_idle why)
{
	return (size_t)why < sizeof(idle_table) / sizeof(idle_table[0]) ? idle_table[why].level
	                                                                : TPD_IDLE_LEVEL_WARN;
}

static void set_none(tpd_action *out, tpd_idle why)
{
	out->kind = TPD_ACT_NONE;
	out->why = why;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int tpd_annotation_names(const tpd_access_request *r, const char *key, char ***out, size_t *n)
{
	const tpd_annotation *a = tpd_access_request_annotation(r, key);
	char **v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!a)
		return -1;
	v = xcalloc(a->n_values ? a->n_values : 1, sizeof(char *));
	for (size_t i = 0; i < a->n_values; i++) {
		if (!tpd_str_empty(a->values[i]))
			v[k++] = xstrdup(a->values[i]);
	}
	if (!k) {
		free(v);
		return -2;
	}
	qsort(v, k, sizeof(char *), cmp_str);
	{
		size_t w = 1;

		for (size_t i = 1; i < k; i++) {
			if (strcmp(v[i], v[w - 1]))
				v[w++] = v[i];
			else
				free(v[i]);
		}
		k = w;
	}
	*out = v;
	*n = k;
	return 0;
}

/* The notify service: first value of the annotation, as upstream (the list is not sorted). */
static const char *notify_service(const tpd_reconcile_opts *o, const tpd_access_request *r, tpd_idle *why)
{
	const tpd_annotation *a = tpd_access_request_annotation(r, o->notify_annotation);

	if (!a) {
		*why = TPD_IDLE_NOTIFY_MISSING;
		return NULL;
	}
	if (!a->n_values || tpd_str_empty(a->values[0])) {
		*why = TPD_IDLE_NOTIFY_EMPTY;
		return NULL;
	}
	return a->values[0];
}

static bool has_incident(const tpd_plugin_data *pd)
{
	return pd && !tpd_str_empty(pd->incident_id);
}

static bool has_resolution(const tpd_plugin_data *pd)
{
	return pd && !tpd_str_empty(pd->resolution);
}

/* notify_all_services: the further notify services without a recorded incident, as a
 * CREATE_EXTRAS step (only while the first incident is open in our records). */
static bool plan_extras(const tpd_reconcile_opts *o, const tpd_access_request *r, const tpd_plugin_data *pd,
                        tpd_action *out)
{
	char **v = NULL;
	size_t n, k = 0;

	if (!o->notify_all || !r || !pd || tpd_str_empty(pd->incident_id) ||
	    tpd_streq(pd->pd_resolved, "true"))
		return false;
	n = tpd_notify_services(r, o->notify_annotation, &v);
	if (n)
		free(v[0]); /* the first service's incident is upstream's */
	for (size_t i = 1; i < n; i++) {
		if (tpd_extras_get(pd->extra_incidents, v[i], NULL)) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	if (!k) {
		free(v);
		return false;
	}
	out->kind = TPD_ACT_CREATE_EXTRAS;
	out->services = v;
	out->n_services = k;
	return true;
}

/* Steps once the incident exists and the stored resolution is known: recover or done. */
static bool resolution_recovery(const tpd_reconcile_input *in, tpd_action *out)
{
	if (!has_resolution(in->pd))
		return false;
	if (has_incident(in->pd) && !tpd_streq(in->pd->pd_resolved, "true")) {
		out->kind = TPD_ACT_RESOLVE;
		out->tag = in->pd->resolution;
		out->reason = in->pd->resolve_reason ? in->pd->resolve_reason : "";
		out->recover = true;
		return true;
	}
	set_none(out, TPD_IDLE_RESOLVED);
	return true;
}

/* The notify service of the request as seen PENDING, or NULL (with *why) when it was never seen
 * so (upstream's message for a request without plugin data) or named none. */
static const char *seen_service(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_idle *why)
{
	if (!in->seen_pending) {
		*why = TPD_IDLE_NO_PLUGIN_DATA;
		return NULL;
	}
	return notify_service(o, in->seen_pending, why);
}

/* seen_service, or NONE with its reason in out. */
static const char *seen_service_or_none(const tpd_reconcile_opts *o, const tpd_reconcile_input *in,
                                        tpd_action *out)
{
	tpd_idle why = TPD_IDLE_NOTHING;
	const char *svc = seen_service(o, in, &why);

	if (!svc)
		set_none(out, why);
	return svc;
}

static void plan_deleted(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_action *out)
{
	const tpd_plugin_data *pd = in->pd;
	tpd_idle why = TPD_IDLE_NOTHING;

	if (!pd || tpd_plugin_data_is_empty(pd)) {
		/* Deleted before anything was stored. Seen PENDING: its incident may exist (stored data
		 * gone with the request) or not (deleted within moments): find it by key or open it from
		 * the snapshot, then resolve it as expired, so none stays open and the audit trail shows
		 * the request. Never seen PENDING: nothing to do, as upstream. */
		const char *svc = seen_service_or_none(o, in, out);

		if (!svc)
			return;
		out->kind = TPD_ACT_ADOPT_BY_KEY;
		out->tag = "expired";
		out->reason = "";
		out->service_name = svc;
		return;
	}
	if (resolution_recovery(in, out))
		return;
	if (!has_incident(pd)) {
		/* Intent was stored but the incident id never was: a crash between the two. With the
		 * snapshot the incident can still be opened (and resolved at once). */
		out->kind = TPD_ACT_ADOPT_BY_KEY;
		out->tag = "expired";
		out->reason = "";
		out->service_name = seen_service(o, in, &why);
		return;
	}
	out->kind = TPD_ACT_RESOLVE;
	out->tag = "expired";
	out->reason = "";
}

static void plan_approval(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_action *out)
{
	int rc;

	if (!in->try_approval) {
		set_none(out, TPD_IDLE_NOTHING);
		return;
	}
	rc = tpd_annotation_names(in->request, o->services_annotation, &out->services, &out->n_services);
	if (rc == -1) {
		set_none(out, TPD_IDLE_SERVICES_MISSING);
		return;
	}
	if (rc == -2) {
		set_none(out, TPD_IDLE_SERVICES_EMPTY);
		return;
	}
	out->kind = TPD_ACT_AUTO_APPROVE;
}

static void plan_pending(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_action *out)
{
	const tpd_access_request *r = in->request;
	const tpd_plugin_data *pd = in->pd;
	tpd_idle why = TPD_IDLE_NOTHING;

	if (!r->n_annotations) {
		set_none(out, TPD_IDLE_NO_ANNOTATIONS);
		return;
	}
	if (has_incident(pd)) {
		if (!has_resolution(pd) && plan_extras(o, r, pd, out))
			return;
		if (resolution_recovery(in, out))
			return;
		if (tpd_plugin_data_reviews_count(pd) < r->n_reviews) {
			out->kind = TPD_ACT_POST_REVIEW_NOTES;
			out->from = tpd_plugin_data_reviews_count(pd);
			out->to = r->n_reviews;
			return;
		}
	} else if (!has_resolution(pd)) {
		const char *svc = notify_service(o, r, &why);

		if (svc) {
			/* Intent stored but no incident id: a run stopped between the two. PagerDuty only
			 * de-duplicates open incidents, so look the key up (any status) before creating. */
			bool intent = pd && !tpd_plugin_data_is_empty(pd);

			out->kind = intent ? TPD_ACT_ADOPT_BY_KEY : TPD_ACT_CREATE_INCIDENT;
			out->service_name = svc;
			out->write_intent = !intent;
			return;
		}
	}
	plan_approval(o, in, out);
	if (out->kind == TPD_ACT_NONE && why != TPD_IDLE_NOTHING && in->try_approval)
		out->why = why;
}

static void plan_resolved(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_action *out)
{
	const tpd_access_request *r = in->request;
	const tpd_plugin_data *pd = in->pd;
	tpd_idle why = TPD_IDLE_NOTHING;

	if (!pd || tpd_plugin_data_is_empty(pd)) {
		/* Resolved before its incident was opened (reviewed a moment after creation, or
		 * approved by us after a failed notification). Seen PENDING: open it now, writing the
		 * intent first (a resolved request's plugin data can still be written); the next steps
		 * note the reviews and resolve it. Never seen PENDING: untouched, as upstream. */
		const char *svc = seen_service_or_none(o, in, out);

		if (!svc)
			return;
		out->kind = TPD_ACT_CREATE_INCIDENT;
		out->service_name = svc;
		out->write_intent = true;
		return;
	}
	if (resolution_recovery(in, out))
		return;
	if (!has_incident(pd)) {
		/* The intent proves the request was seen PENDING: adopt its incident, or open it on the
		 * service the request names (it still exists, so its annotations are at hand). */
		out->kind = TPD_ACT_ADOPT_BY_KEY;
		out->tag = tpd_resolution_tag(r->state);
		out->reason = r->resolve_reason ? r->resolve_reason : "";
		out->service_name = notify_service(o, r, &why);
		if (!out->service_name)
			out->service_name = seen_service(o, in, &why);
		return;
	}
	if (plan_extras(o, r, pd, out))
		return;
	if (tpd_plugin_data_reviews_count(pd) < r->n_reviews) {
		out->kind = TPD_ACT_POST_REVIEW_NOTES;
		out->from = tpd_plugin_data_reviews_count(pd);
		out->to = r->n_reviews;
		return;
	}
	out->kind = TPD_ACT_RESOLVE;
	out->tag = tpd_resolution_tag(r->state);
	out->reason = r->resolve_reason ? r->resolve_reason : "";
}

void tpd_reconcile_next(const tpd_reconcile_opts *o, const tpd_reconcile_input *in, tpd_action *out)
{
	memset(out, 0, sizeof(*out));
	if (!in->request) {
		plan_deleted(o, in, out);
		return;
	}
	switch (in->request->state) {
	case TPD_STATE_PENDING:
		plan_pending(o, in, out);
		return;
	case TPD_STATE_APPROVED:
	case TPD_STATE_DENIED:
	case TPD_STATE_PROMOTED:
		plan_resolved(o, in, out);
		return;
	default:
		set_none(out, TPD_IDLE_UNKNOWN_STATE);
		return;
	}
}

bool tpd_reconcile_approve_after_failure(const tpd_reconcile_input *in, tpd_action_kind failed, bool conflict)
{
	return !conflict && in->try_approval && in->request && in->request->state == TPD_STATE_PENDING &&
	       (failed == TPD_ACT_CREATE_INCIDENT || failed == TPD_ACT_ADOPT_BY_KEY);
}

/* --- auto-approval ---------------------------------------------------------------------------- */

size_t tpd_oncall_policies(const char *const *policy, size_t n, const char **out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		if (tpd_str_empty(policy[i]))
			continue;
		for (size_t j = 0; j < k && !dup; j++)
			dup = !strcmp(out[j], policy[i]);
		if (!dup)
			out[k++] = policy[i];
	}
	return k;
}

size_t tpd_oncall_services(const char *const *name, const char *const *policy, size_t n,
                           const char *const *policies, const bool *on_call, size_t n_pol, const char **out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n_pol; j++) {
			if (on_call[j] && !tpd_str_empty(policy[i]) && !strcmp(policies[j], policy[i])) {
				out[k++] = name[i];
				break;
			}
		}
	}
	return k;
}

/* --- texts ------------------------------------------------------------------------------------ */

char *tpd_incident_key(const char *request_id)
{
	return xasprintf("%s%s", TPD_INCIDENT_KEY_PREFIX, request_id ? request_id : "");
}

char *tpd_incident_key_request_id(const char *incident_key)
{
	size_t n;

	if (!tpd_str_startswith(incident_key, TPD_INCIDENT_KEY_PREFIX))
		return NULL;
	incident_key += strlen(TPD_INCIDENT_KEY_PREFIX);
	/* A further notify service's incident: <request id>/<service id> (tpd/extras.h). */
	n = strcspn(incident_key, "/");
	return n ? xstrndup(incident_key, n) : NULL;
}

char *tpd_incident_title(const tpd_access_request *r)
{
	return xasprintf("Access request from %s", r->user ? r->user : "");
}

/* Go's zero time formats as "01 Jan 01 00:00 UTC"; keep that for unset times. */
static void format_created(int64_t t, char *buf, size_t len)
{
	if (!t) {
		snprintf(buf, len, "01 Jan 01 00:00 UTC");
		return;
	}
	tpd_format_rfc822(t, buf, len);
}

char *tpd_incident_details(const tpd_access_request *r, const char *link)
{
	tpd_buf b;
	char when[48];

	tpd_buf_init(&b, 0);
	format_created(r->created, when, sizeof(when));
	tpd_buf_printf(&b, "%s requested permissions for roles ", r->user ? r->user : "");
	for (size_t i = 0; i < r->n_roles; i++)
		tpd_buf_printf(&b, "%s%s", i ? ", " : "", r->roles[i]);
	tpd_buf_printf(&b, " on Teleport at %s.\n", when);
	if (!tpd_str_empty(r->request_reason))
		tpd_buf_printf(&b, "Reason: %s", r->request_reason);
	tpd_buf_puts(&b, "\n");
	if (!tpd_str_empty(link))
		tpd_buf_printf(&b, "To approve or deny the request, proceed to %s", link);
	tpd_buf_puts(&b, "\n");
	return tpd_buf_steal(&b);
}

/* Go's url.PathEscape: keep unreserved characters and a few sub-delims, escape the rest. */
static void path_escape(tpd_buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || strchr("-._~$&+,:;=@", *p))
			tpd_buf_append(b, p, 1);
		else
			tpd_buf_printf(b, "%%%02X", *p);
	}
}

char *tpd_request_link(const char *proxy_public_addr, const char *request_id)
{
	tpd_buf b;
	const char *addr = proxy_public_addr;
	bool https = true;
	size_t len;

	if (tpd_str_empty(addr) || tpd_str_empty(request_id))
		return NULL;
	/* Several comma-separated public addresses may be configured; upstream uses the first. */
	len = strcspn(addr, ",");
	tpd_buf_init(&b, 0);
	if (tpd_str_startswith(addr, "https://")) {
		addr += 8;
		len -= 8;
	} else if (tpd_str_startswith(addr, "http://")) {
		addr += 7;
		len -= 7;
		https = false;
	}
	tpd_buf_puts(&b, https ? "https://" : "http://");
	while (len && addr[len - 1] == '/')
		len--;
	if (https && len > 4 && !strncmp(addr + len - 4, ":443", 4))
		len -= 4;
	tpd_buf_append(&b, addr, len);
	tpd_buf_puts(&b, "/web/requests/");
	path_escape(&b, request_id);
	return tpd_buf_steal(&b);
}

char *tpd_review_note(const tpd_review *v)
{
	tpd_buf b;
	char when[48];

	tpd_buf_init(&b, 0);
	format_created(v->created, when, sizeof(when));
	tpd_buf_printf(&b, "%s reviewed the request at %s.\nResolution: %s.\n", v->author ? v->author : "",
	               when, tpd_request_state_name(v->proposed_state));
	if (!tpd_str_empty(v->reason))
		tpd_buf_printf(&b, "Reason: %s.", v->reason);
	return tpd_buf_steal(&b);
}

char *tpd_resolution_note(const char *tag, const char *reason)
{
	tpd_buf b;

	tpd_buf_init(&b, 0);
	tpd_buf_printf(&b, "Access request has been %s\n", tag ? tag : "");
	if (!tpd_str_empty(reason))
		tpd_buf_printf(&b, "Reason: %s", reason);
	return tpd_buf_steal(&b);
}

char *tpd_approval_reason(const char *user_name, const char *user_email, const char *const *services,
                          size_t n)
{
	return tpd_approval_reason_q(user_name, user_email, services, NULL, n);
}

char *tpd_approval_reason_q(const char *user_name, const char *user_email, const char *const *services,
                            const char *const *quals, size_t n)
{
	tpd_buf b;

	tpd_buf_init(&b, 0);
	tpd_buf_printf(&b, "Access requested by user %s (%s) who is on call in service(s) ",
	               user_name ? user_name : "", user_email ? user_email : "");
	for (size_t i = 0; i < n; i++) {
		tpd_buf_printf(&b, "%s%s", i ? "," : "", services[i]);
		if (quals && !tpd_str_empty(quals[i]))
			tpd_buf_printf(&b, " (%s)", quals[i]);
	}
	return tpd_buf_steal(&b);
}

void tpd_plugin_data_from_request(tpd_plugin_data *pd, const tpd_access_request *r)
{
	tpd_buf roles;
	char created[32] = "";

	tpd_buf_init(&roles, 0);
	for (size_t i = 0; i < r->n_roles; i++)
		tpd_buf_printf(&roles, "%s%s", i ? "," : "", r->roles[i]);
	if (r->created)
		snprintf(created, sizeof(created), "%lld", (long long)r->created);
	tpd_plugin_data_set(pd, "user", r->user);
	tpd_plugin_data_set(pd, "roles", roles.data ? roles.data : "");
	tpd_plugin_data_set(pd, "created", created);
	tpd_plugin_data_set(pd, "request_reason", r->request_reason);
	tpd_buf_free(&roles);
}

static bool atext(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

bool tpd_is_bare_email(const char *s)
{
	const char *at;

	if (tpd_str_empty(s))
		return false;
	at = strchr(s, '@');
	if (!at || at == s || strchr(at + 1, '@') || !at[1])
		return false;
	/* local part: dot-atom */
	for (const char *p = s; p < at; p++) {
		if (*p == '.') {
			if (p == s || p + 1 == at || p[1] == '.')
				return false;
		} else if (!atext((unsigned char)*p)) {
			return false;
		}
	}
	/* domain: dot-atom */
	for (const char *p = at + 1; *p; p++) {
		if (*p == '.') {
			if (p == at + 1 || !p[1] || p[1] == '.')
				return false;
		} else if (!atext((unsigned char)*p)) {
			return false;
		}
	}
	return true;
}
