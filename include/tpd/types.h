/* types.h - the domain model shared by the Teleport client, the reconciler and the fakes' tests:
 * access requests, reviews and the plugin data stored on them.
 *
 * These are plain data structs (owned strings, freed by the matching _clear/_free). The Teleport
 * client converts wire messages into them; the reconciler reads them without any I/O. */
#ifndef TPD_TYPES_H
#define TPD_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	TPD_STATE_NONE = 0,
	TPD_STATE_PENDING = 1,
	TPD_STATE_APPROVED = 2,
	TPD_STATE_DENIED = 3,
	TPD_STATE_PROMOTED = 4,
} tpd_request_state;

/* "PENDING", "APPROVED", ... as Teleport's enum names; "NONE" for unknown values. */
const char *tpd_request_state_name(tpd_request_state s);
bool tpd_request_state_resolved(tpd_request_state s);

/* One entry of a LabelValues map (system annotations): key → list of strings. */
typedef struct {
	char *key;
	char **values;
	size_t n_values;
} tpd_annotation;

typedef struct {
	char *author;
	tpd_request_state proposed_state;
	int64_t created; /* unix seconds; 0 when unset */
	char *reason;
	/* Teleport's full precision: the nanoseconds within `created` (0..999999999). The note
	 * texts use whole seconds (upstream's RFC822); anything that writes or compares a review
	 * time uses both. */
	int32_t created_nanos;
} tpd_review;

typedef struct {
	char *id; /* metadata.name (a UUID) */
	char *user;
	char **roles;
	size_t n_roles;
	tpd_request_state state;
	int64_t created; /* unix seconds; 0 when unset (Go zero time) */
	int64_t expires; /* unix seconds; 0 when unset */
	char *request_reason;
	char *resolve_reason;
	tpd_annotation *annotations; /* system annotations */
	size_t n_annotations;
	tpd_review *reviews;
	size_t n_reviews;
	char *revision; /* metadata.revision, may be NULL */
} tpd_access_request;

void tpd_access_request_clear(tpd_access_request *r);
void tpd_access_request_free(tpd_access_request *r);
/* Deep copy. */
tpd_access_request *tpd_access_request_dup(const tpd_access_request *r);
/* A copy without annotations and reviews (id, user, roles, state, times, reasons, revision). */
tpd_access_request *tpd_access_request_dup_head(const tpd_access_request *r);
/* Looks an annotation up by exact key; NULL when absent. */
const tpd_annotation *tpd_access_request_annotation(const tpd_access_request *r, const char *key);

/* Building helpers (copy their arguments), used by the Teleport client and by tests. */
void tpd_access_request_add_role(tpd_access_request *r, const char *role);
void tpd_access_request_add_annotation(tpd_access_request *r, const char *key, const char *const *values,
                                       size_t n);
void tpd_access_request_add_review(tpd_access_request *r, const char *author, tpd_request_state proposed,
                                   int64_t created, const char *reason);

/* Plugin data stored on an access request under plugin name "pagerduty": upstream's 9 string
 * keys, so a cluster can switch between the upstream plugin and this one, plus one key of ours,
 * `pd_resolved` ("true" once PagerDuty confirmed the incident's resolution; "" otherwise).
 * Upstream decodes only its 9 keys and never writes ours, and its compare-and-swap only checks
 * the keys it sends, so the extra key is safe both ways. All fields are owned strings, never NULL
 * after tpd_plugin_data_init. */
typedef struct {
	char *incident_id;
	char *service_id;
	char *user;
	char *roles;   /* joined by "," */
	char *created; /* decimal unix seconds, "" if zero */
	char *request_reason;
	char *reviews_count; /* decimal, "" when 0 */
	char *resolution;    /* "", approved, denied, expired, promoted */
	char *resolve_reason;
	char *pd_resolved; /* ours: "true" once the incident is resolved in PagerDuty */
	/* ours, with [pagerduty] notify_all_services: the incidents on the further notify services,
	 * "<service>=<incident id>,..." (names percent-encoded; an empty id: service not found) */
	char *extra_incidents;
} tpd_plugin_data;

#define TPD_PLUGIN_DATA_NKEYS 11
/* The keys, in a fixed order: upstream's 9, then pd_resolved and extra_incidents. */
extern const char *const tpd_plugin_data_keys[TPD_PLUGIN_DATA_NKEYS];

void tpd_plugin_data_init(tpd_plugin_data *pd);  /* all "" */
void tpd_plugin_data_clear(tpd_plugin_data *pd); /* frees, leaves it zeroed (NULLs) */
void tpd_plugin_data_copy(tpd_plugin_data *dst, const tpd_plugin_data *src); /* dst initialised */
bool tpd_plugin_data_equal(const tpd_plugin_data *a, const tpd_plugin_data *b);
bool tpd_plugin_data_is_empty(const tpd_plugin_data *pd); /* every key "" */
/* Field by key name (one of tpd_plugin_data_keys); NULL for an unknown key. */
char **tpd_plugin_data_field(tpd_plugin_data *pd, const char *key);
const char *tpd_plugin_data_get(const tpd_plugin_data *pd, const char *key);
/* Sets a field (copies value; NULL → ""). Returns false for an unknown key. */
bool tpd_plugin_data_set(tpd_plugin_data *pd, const char *key, const char *value);
/* reviews_count as a number (0 for "" or garbage). */
size_t tpd_plugin_data_reviews_count(const tpd_plugin_data *pd);

#endif
