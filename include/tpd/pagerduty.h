/* pagerduty.h - PagerDuty REST API v2 client: the calls the plugin makes, with a shared rate
 * limiter, retries with decorrelated jitter, TTL caches and idempotent incident creation.
 *
 * One tpd_pd is shared by every worker thread. Requests go over libcurl with TLS verification
 * always on (system CA store, SSL_CERT_FILE/SSL_CERT_DIR, or opts.ca_file) and reuse connections.
 * Every request carries the headers PagerDuty's OpenAPI spec requires (Authorization, Accept,
 * Content-Type also on GETs, From on writes, a User-Agent naming us). Transport errors, 5xx, 408
 * and 429 are retried within a total budget (opts.max_retry_ms), honouring `ratelimit-reset` and
 * `Retry-After`; other 4xx are never retried. Every attempt first reserves a slot in the shared
 * limiter (tpd/ratelimit.h: the budget per rolling minute and PagerDuty's own windows); a wait
 * there is not a failure and does not use up the retry budget, but a wait longer than both the
 * budget left and one minute fails the call with TPD_ERR_RATE_LIMITED. The API key never appears
 * in an error text, a log line (the Authorization header is redacted, also in libcurl's trace
 * output) or a metric.
 *
 * Error mapping: 401 → TPD_ERR_ACCESS_DENIED ("API key rejected"), 403 → TPD_ERR_ACCESS_DENIED
 * ("read-only API key?"), 404 → TPD_ERR_NOT_FOUND, 429 past the budget → TPD_ERR_RATE_LIMITED,
 * 5xx/transport past the budget → TPD_ERR_UNAVAILABLE (TPD_ERR_TIMEOUT when the last failure was
 * a timeout), other 4xx → TPD_ERR_REMOTE carrying PagerDuty's error.message/code/errors[], an
 * unparseable 2xx body → TPD_ERR_PROTOCOL, a body over 8 MiB → TPD_ERR_TOO_LARGE, after
 * tpd_pd_shutdown() → TPD_ERR_CANCELLED. */
#ifndef TPD_PAGERDUTY_H
#define TPD_PAGERDUTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/metrics.h"
#include "tpd/util.h"

/* Largest response body accepted. */
#define TPD_PD_MAX_BODY (8u * 1024u * 1024u)
/* Total retry budget of one call unless the caller sets its own (`check` gives up sooner). */
#define TPD_PD_MAX_RETRY_MS 30000
/* incident_key prefix used by the plugin (upstream's constant). */
#define TPD_PD_INCIDENT_KEY_PREFIX "teleport-access-request/"

typedef struct tpd_pd tpd_pd;

/* Test seam (network, clock, sleeping): defined in src/pagerduty/pagerduty_hooks.h, which only
 * the client and tests include. Production passes NULL. */
typedef struct tpd_pd_hooks tpd_pd_hooks;

/* ---- client ---------------------------------------------------------------------------------- */

typedef struct {
	const char *api_endpoint, *api_key, *user_email; /* copied; endpoint "" → api.pagerduty.com */
	int rate_limit_per_minute; /* calls per rolling minute, all threads together; >= 1 (required) */
	/* Required (the config's defaults are in src/config/config_table.c): the service/user cache TTL
	 * (on-call answers ≤ 10 s; negative = no caching), connection set-up and whole-request
	 * timeouts. */
	int64_t cache_ttl_ms;
	int64_t connect_timeout_ms, request_timeout_ms;
	int64_t max_retry_ms; /* total retry budget per call; <= 0 → TPD_PD_MAX_RETRY_MS (not a config key) */
	const char *incident_urgency, *incident_priority_id; /* optional, "" = omit */
	const char *ca_file; /* optional CA bundle override; else system store + SSL_CERT_FILE/DIR */
	const char *user_agent_version; /* e.g. TPD_VERSION */
	tpd_logger *log;                /* may be NULL */
	tpd_metrics *metrics;           /* may be NULL */
	const tpd_pd_hooks *hooks;      /* NULL in production; copied */
} tpd_pd_opts;

/* Creates a client (no network traffic). Validates the options (endpoint scheme, key present and
 * free of control characters, urgency high/low). */
tpd_err tpd_pd_new(const tpd_pd_opts *o, tpd_pd **out, char *err);
/* Frees the client; NULL is a no-op. No call may be in flight. */
void tpd_pd_free(tpd_pd *pd);
/* Makes every in-flight and future call return TPD_ERR_CANCELLED promptly (graceful shutdown). */
void tpd_pd_shutdown(tpd_pd *pd);
/* Graceful stop, first step: a call that has not been sent yet (waiting in the limiter or in a
 * retry back-off) returns TPD_ERR_CANCELLED at once, and no new call is sent; a request already
 * on the wire still gets its answer. Nothing is lost: the request is reconciled again on start. */
void tpd_pd_drain(tpd_pd *pd);

/* GET /abilities: OK when PagerDuty accepts the key. */
tpd_err tpd_pd_health(tpd_pd *pd, char *err);

typedef struct {
	char *id, *name, *escalation_policy_id;
} tpd_pd_service;
typedef struct {
	char *id, *name, *email;
} tpd_pd_user;
typedef struct {
	char *id, *name;
} tpd_pd_schedule;
/* Frees the strings and zeroes the struct; NULL is a no-op. */
void tpd_pd_schedule_clear(tpd_pd_schedule *s);
/* Frees the strings and zeroes the struct; NULL is a no-op. */
void tpd_pd_service_clear(tpd_pd_service *s);
/* Frees the strings and zeroes the struct; NULL is a no-op. */
void tpd_pd_user_clear(tpd_pd_user *u);

/* Service whose name equals `name` case-insensitively (GET /services?query=, paged; cached).
 * TPD_ERR_NOT_FOUND when there is none. */
tpd_err tpd_pd_find_service(tpd_pd *pd, const char *name, tpd_pd_service *out, char *err);
/* User whose e-mail equals `email` case-insensitively (GET /users?query=, paged; cached).
 * TPD_ERR_NOT_FOUND when there is none. */
tpd_err tpd_pd_find_user(tpd_pd *pd, const char *email, tpd_pd_user *out, char *err);
/* For each policy id, on_call[i] = whether user_id is on call in it now (GET /oncalls, paged;
 * answers cached at most 10 s). */
tpd_err tpd_pd_oncall(tpd_pd *pd, const char *user_id, const char *const *policy_ids, size_t n, bool *on_call,
                      char *err);
/* Schedule whose name equals `name` case-insensitively (GET /schedules?query=, paged; cached).
 * TPD_ERR_NOT_FOUND when there is none. */
tpd_err tpd_pd_find_schedule(tpd_pd *pd, const char *name, tpd_pd_schedule *out, char *err);

/* Which on-call entries count ([pagerduty] auto_approve_escalation_levels / _schedules). */
typedef struct {
	const int *levels; /* the entry's escalation_level must be one of these; none: any */
	size_t n_levels;
	bool schedules;                  /* the entry must come from one of schedule_ids */
	const char *const *schedule_ids; /* (none: no entry qualifies) */
	size_t n_schedule_ids;
} tpd_pd_oncall_filter;
/* tpd_pd_oncall with a filter (NULL: none); why[i] (may be NULL) gets, for a policy the user is
 * on call in, what qualified the entry ("level 1, schedule Primary": the parts the filter asks
 * about), or NULL without a filter; the caller frees them. */
tpd_err tpd_pd_oncall_filtered(tpd_pd *pd, const char *user_id, const char *const *policy_ids, size_t n,
                               const tpd_pd_oncall_filter *f, bool *on_call, char **why, char *err);

typedef struct {
	const char *title, *service_id, *incident_key, *details;
} tpd_pd_incident_spec;
/* POST /incidents. Idempotent by incident_key: when PagerDuty reports an open incident with that
 * key, or after an ambiguous failure, the existing incident is looked up and adopted
 * (*adopted = true). *incident_id is allocated (caller frees). adopted may be NULL. */
tpd_err tpd_pd_create_incident(tpd_pd *pd, const tpd_pd_incident_spec *s, char **incident_id, bool *adopted,
                               char *err);
/* GET /incidents?incident_key=: the incident with that key, preferring an open one. Both outputs
 * are allocated (caller frees); status may be NULL. TPD_ERR_NOT_FOUND when there is none. */
tpd_err tpd_pd_find_incident_by_key(tpd_pd *pd, const char *incident_key, char **incident_id, char **status,
                                    char *err);
/* POST /incidents/{id}/notes. */
tpd_err tpd_pd_add_note(tpd_pd *pd, const char *incident_id, const char *content, char *err);
/* GET /incidents/{id}/notes: *found = whether a note with exactly this content exists (crash
 * recovery uses it so that a note is not posted twice). */
tpd_err tpd_pd_incident_has_note(tpd_pd *pd, const char *incident_id, const char *content, bool *found,
                                 char *err);
/* For a note that may have been posted before without a record of it (crash recovery): posts it
 * only if the incident does not have it yet. *posted (may be NULL) says whether it posted. */
tpd_err tpd_pd_add_note_once(tpd_pd *pd, const char *incident_id, const char *content, bool *posted,
                             char *err);
/* PUT /incidents/{id} status=resolved. Already resolved = OK. */
tpd_err tpd_pd_resolve_incident(tpd_pd *pd, const char *incident_id, char *err);

/* Calls cb for every open (triggered/acknowledged) incident whose incident_key starts with prefix. */
typedef void (*tpd_pd_incident_cb)(void *ud, const char *incident_id, const char *incident_key);
tpd_err tpd_pd_list_open_incidents(tpd_pd *pd, const char *key_prefix, tpd_pd_incident_cb cb, void *ud,
                                   char *err);
/* The same, restricted to incidents on the given services (service_ids[] filter); n = 0 lists
 * nothing and returns OK. */
tpd_err tpd_pd_list_open_incidents_on(tpd_pd *pd, const char *key_prefix, const char *const *service_ids,
                                      size_t n, tpd_pd_incident_cb cb, void *ud, char *err);

/* ---- building blocks, exported for the unit tests (pd_wire.c) -------------------------------- */

/* {"incident":{"type":"incident","title":…,"service":{…},"incident_key":…,"body":{…},
 * "urgency":…,"priority":{…}}}; urgency/priority_id NULL or "" are omitted. Caller frees. */
char *tpd_pd_build_incident_body(const tpd_pd_incident_spec *s, const char *urgency, const char *priority_id);
/* {"note":{"content":…}}. Caller frees. */
char *tpd_pd_build_note_body(const char *content);
/* {"incident":{"type":"incident_reference","status":"resolved"}}. Caller frees. */
char *tpd_pd_build_resolve_body(void);
struct json_object;
/* Parses a complete JSON document (depth ≤ 64, nothing but whitespace after it); NULL when the
 * text is not exactly one JSON value. Caller json_object_put()s the result. */
struct json_object *tpd_pd_parse_json(const char *body, size_t len);
/* Percent-encodes everything but RFC 3986 unreserved characters (curl_easy_escape); the
 * result is the caller's to free() (not curl_free). */
char *tpd_pd_urlencode(const char *s);

/* Maps an HTTP status ≥ 400 to a code and writes "HTTP <status>: <message> (code N): <errors>"
 * (or a sanitised excerpt of a non-JSON body) into msg (msglen bytes). pd_code gets PagerDuty's
 * numeric error code or -1. */
tpd_err tpd_pd_parse_error(long status, const char *body, size_t len, int *pd_code, char *msg, size_t msglen);
/* True when a 400 body says an open incident with the same incident_key already exists. */
bool tpd_pd_is_duplicate_key_error(const char *body, size_t len);
/* Whether a status (0 = transport failure) is worth retrying. */
bool tpd_pd_status_retryable(long status);
/* Delay before the next attempt: decorrelated jitter from prev (0 = first retry) between base and
 * cap; on a 429 that tells `ratelimit-reset`/`Retry-After` (seconds, -1 = absent), the told wait
 * (the longer of the two, at most an hour) plus jitter below base, whatever prev was. */
int64_t tpd_pd_retry_delay_ms(long status, int64_t rl_reset_s, int64_t retry_after_s, int64_t base_ms,
                              int64_t cap_ms, int64_t prev_ms);

#endif
