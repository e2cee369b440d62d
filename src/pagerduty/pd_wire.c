/* pd_wire.c - PagerDuty wire format: request bodies, URL encoding, error bodies and the retry
 * schedule. Pure functions without I/O (URL escaping is libcurl's), so the unit tests can pin every byte.
 *
 * Bodies follow docs/pagerduty-api.md ("Bodies"): the incident is sent with "type":"incident" and the
 * details as a string (what the API accepts; the spec's object typing is a known gap). */
#include <ctype.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/pagerduty.h"

static char *to_string_free(json_object *o)
{
	char *s = xstrdup(
	    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(o);
	return s;
}

static json_object *ref(const char *id, const char *type)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id ? id : ""));
	json_object_object_add(o, "type", json_object_new_string(type));
	return o;
}

char *tpd_pd_build_incident_body(const tpd_pd_incident_spec *s, const char *urgency, const char *priority_id)
{
	json_object *root = json_object_new_object(), *inc = json_object_new_object(), *body;

	json_object_object_add(inc, "type", json_object_new_string("incident"));
	json_object_object_add(inc, "title", json_object_new_string(s->title ? s->title : ""));
	json_object_object_add(inc, "service", ref(s->service_id, "service_reference"));
	if (!tpd_str_empty(s->incident_key))
		json_object_object_add(inc, "incident_key", json_object_new_string(s->incident_key));
	body = json_object_new_object();
	json_object_object_add(body, "type", json_object_new_string("incident_body"));
	json_object_object_add(body, "details", json_object_new_string(s->details ? s->details : ""));
	json_object_object_add(inc, "body", body);
	if (!tpd_str_empty(urgency))
		json_object_object_add(inc, "urgency", json_object_new_string(urgency));
	if (!tpd_str_empty(priority_id))
		json_object_object_add(inc, "priority", ref(priority_id, "priority_reference"));
	json_object_object_add(root, "incident", inc);
	return to_string_free(root);
}

char *tpd_pd_build_note_body(const char *content)
{
	json_object *root = json_object_new_object(), *note = json_object_new_object();

	json_object_object_add(note, "content", json_object_new_string(content ? content : ""));
	json_object_object_add(root, "note", note);
	return to_string_free(root);
}

char *tpd_pd_build_resolve_body(void)
{
	json_object *root = json_object_new_object(), *inc = json_object_new_object();

	json_object_object_add(inc, "type", json_object_new_string("incident_reference"));
	json_object_object_add(inc, "status", json_object_new_string("resolved"));
	json_object_object_add(root, "incident", inc);
	return to_string_free(root);
}

struct json_object *tpd_pd_parse_json(const char *body, size_t len)
{
	json_tokener *tok;
	json_object *o = NULL;
	size_t end;

	if (!body || len == 0 || len > TPD_PD_MAX_BODY)
		return NULL;
	tok = json_tokener_new_ex(64);
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, body, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!isspace((unsigned char)body[end])) {
			json_object_put(o);
			o = NULL;
			goto out;
		}
	}
out:
	json_tokener_free(tok);
	return o;
}

char *tpd_pd_urlencode(const char *s)
{
	/* libcurl escapes every byte but the RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~), as %XX
	 * with upper-case hex. Since libcurl 7.82 the handle argument is unused. */
	char *e = curl_easy_escape(NULL, s ? s : "", 0), *copy;

	if (!e) {
		fprintf(stderr, "teleport-pagerduty: out of memory escaping a URL component\n");
		abort();
	}
	copy = xstrdup(e);
	curl_free(e);
	return copy;
}

/* Copies printable ASCII of s (at most max chars) into b; anything else becomes '?'. Keeps
 * hostile bodies (HTML pages, control characters, terminal escapes) out of logs. */
static void sanitized(tpd_buf *b, const char *s, size_t len, size_t max)
{
	size_t i;

	for (i = 0; i < len && i < max; i++) {
		char c = s[i];
		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		else if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			c = '?';
		tpd_buf_append(b, &c, 1);
	}
	if (len > max)
		tpd_buf_puts(b, "...");
}

static tpd_err status_code(long status)
{
	switch (status) {
	case 401:
	case 403:
		return TPD_ERR_ACCESS_DENIED;
	case 404:
		return TPD_ERR_NOT_FOUND;
	case 429:
		return TPD_ERR_RATE_LIMITED;
	case 408:
		return TPD_ERR_TIMEOUT;
	default:
		return status >= 500 ? TPD_ERR_UNAVAILABLE : TPD_ERR_REMOTE;
	}
}

tpd_err tpd_pd_parse_error(long status, const char *body, size_t len, int *pd_code, char *msg, size_t msglen)
{
	json_object *root = tpd_pd_parse_json(body, len), *e = NULL, *v;
	tpd_buf b;
	bool any = false;

	if (pd_code)
		*pd_code = -1;
	tpd_buf_init(&b, 0);
	tpd_buf_printf(&b, "HTTP %ld", status);
	if (status == 401)
		tpd_buf_puts(&b, " (API key rejected)");
	else if (status == 403)
		tpd_buf_puts(&b, " (read-only API key?)");
	if (root && json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, "error", &e) && json_object_is_type(e, json_type_object)) {
		if (json_object_object_get_ex(e, "message", &v) && json_object_is_type(v, json_type_string)) {
			tpd_buf_puts(&b, ": ");
			sanitized(&b, json_object_get_string(v), (size_t)json_object_get_string_len(v), 200);
			any = true;
		}
		if (json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_int)) {
			int code = json_object_get_int(v);
			tpd_buf_printf(&b, "%s(code %d)", any ? " " : ": ", code);
			if (pd_code)
				*pd_code = code;
			any = true;
		}
		if (json_object_object_get_ex(e, "errors", &v) && json_object_is_type(v, json_type_array)) {
			size_t n = json_object_array_length(v), shown = 0;
			for (size_t i = 0; i < n && shown < 5; i++) {
				json_object *it = json_object_array_get_idx(v, i);
				if (!json_object_is_type(it, json_type_string))
					continue;
				tpd_buf_puts(&b, shown ? "; " : ": ");
				sanitized(&b, json_object_get_string(it),
				          (size_t)json_object_get_string_len(it), 200);
				shown++;
			}
		}
	} else if (body && len) {
		tpd_buf_puts(&b, ": ");
		sanitized(&b, body, len, 120);
	}
	if (msg && msglen) {
		snprintf(msg, msglen, "%s", b.data ? b.data : "");
	}
	tpd_buf_free(&b);
	json_object_put(root);
	return status_code(status);
}

bool tpd_pd_is_duplicate_key_error(const char *body, size_t len)
{
	json_object *root = tpd_pd_parse_json(body, len), *e, *errs;
	bool dup = false;

	if (!root || !json_object_object_get_ex(root, "error", &e) ||
	    !json_object_is_type(e, json_type_object))
		goto out;
	if (!json_object_object_get_ex(e, "errors", &errs) || !json_object_is_type(errs, json_type_array))
		goto out;
	for (size_t i = 0; i < json_object_array_length(errs) && !dup; i++) {
		json_object *it = json_object_array_get_idx(errs, i);
		if (!json_object_is_type(it, json_type_string))
			continue;
		/* PagerDuty's text: "Open incident with matching dedup key already exists on this service" */
		const char *s = json_object_get_string(it);
		dup = strstr(s, "matching dedup key already exists") != NULL ||
		      strstr(s, "matching incident key already exists") != NULL;
	}
out:
	json_object_put(root);
	return dup;
}

bool tpd_pd_status_retryable(long status)
{
	return status == 0 || status == 408 || status == 429 || status >= 500;
}

int64_t tpd_pd_retry_delay_ms(long status, int64_t rl_reset_s, int64_t retry_after_s, int64_t base_ms,
                              int64_t cap_ms, int64_t prev_ms)
{
	int64_t d = tpd_backoff_decorr(base_ms, cap_ms, prev_ms), hint = -1;

	if (status == 429) {
		if (rl_reset_s >= 0)
			hint = rl_reset_s * 1000;
		if (retry_after_s >= 0 && retry_after_s * 1000 > hint)
			hint = retry_after_s * 1000;
		if (hint > 3600 * 1000)
			hint = 3600 * 1000;
		/* PagerDuty said when its window resets: wait that long, plus a little jitter so that
		 * every worker told the same reset does not hit PagerDuty in the same millisecond.
		 * The told reset wins over the growing backoff, in both directions: a storm of 429s
		 * on a 1 s window must not escalate to the cap and outlast the retry budget. */
		if (hint >= 0)
			d = (hint > base_ms ? hint : base_ms) +
			    (int64_t)tpd_rand_below((uint64_t)(base_ms > 1 ? base_ms : 2));
	}
	return d;
}
