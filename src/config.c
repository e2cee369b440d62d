/* config.c - loads teleport-pagerduty's configuration (TOML or YAML) into one validated struct.
 *
 * Flow: read the file (at most TPD_CONFIG_MAX_BYTES) → parse into a tpd_node tree (toml.c) →
 * walk the tree against one table of known keys (type-checked, range-checked, positions kept) →
 * read the API key file → cross-field validation in upstream's order → defaults.
 *
 * Messages are one line, "<file>:<line>:<col>: <what> (<how to fix>)". Validation errors point at
 * the offending value, or at its table header when the value is missing, or at 1:1 when the
 * whole table is missing. The PagerDuty API key is never copied into an error or warning: no
 * message quotes a value from the file except durations, URLs and names that cannot be secret.
 *
 * Compatibility with upstream (go-toml v1): unknown keys and tables are accepted (we warn); the
 * annotation overrides are read from [pagerduty.RequestAnnotations] in upstream's case variants
 * and also, as the documentation describes, directly from [pagerduty]; a duration may be an
 * integer, which go-toml v1 reads as nanoseconds (so 60 means 60ns, not a minute: we warn). */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tpd/config.h"
#include "tpd/toml.h"
#include "tpd/yaml.h"
#include "tpd/util.h"

#define MAX_WARNINGS     64                                /* more are summarised in one line */
#define API_KEY_FILE_MAX 2000                              /* upstream's lib.ReadPassword buffer */
#define DURATION_MAX_MS  ((int64_t)366 * 24 * 3600 * 1000) /* a year: anything longer is a typo */

typedef enum {
	K_STR,  /* string */
	K_BOOL, /* boolean */
	K_INT,  /* integer in [min, max] */
	K_DUR,  /* Go duration string (or integer nanoseconds), milliseconds in [min, max] */
} kind;

enum {
	F_LOADER = 1 << 0, /* off is into struct loader, not tpd_config */
	F_SECRET = 1 << 1, /* value must never be quoted */
};

/* What the walk collects besides the config itself. */
typedef struct {
	const char *name; /* file name for messages */
	tpd_config_warn_cb warn;
	void *ud;
	char *err;
	const tpd_node *root;
	char *auth_server;            /* teleport.auth_server (deprecated) */
	char *severity;               /* log.severity as written */
	char *format;                 /* log.format as written */
	char *ann_notify;             /* [pagerduty.RequestAnnotations] notify_service */
	char *ann_services;           /* [pagerduty.RequestAnnotations] services */
	const tpd_node *ann_table;    /* that table, if given */
	const char *ann_table_name;   /* the spelling used */
	char *warnings[MAX_WARNINGS]; /* held back until the API key is known, then redacted */
	int nwarn;                    /* warnings produced (may exceed MAX_WARNINGS) */
} loader;

typedef struct {
	const char *table;
	const char *key;
	kind kind;
	unsigned flags;
	size_t off;
	int64_t min, max;
	const char *example; /* a correct line, for type errors */
} field;

#define CFG(m) 0, offsetof(tpd_config, m)
#define LDR(m) F_LOADER, offsetof(loader, m)

static const field fields[] = {
    {"teleport", "addr", K_STR, CFG(teleport.addr), 0, 0, "addr = \"teleport.example.com:443\""},
    {"teleport", "auth_server", K_STR, LDR(auth_server), 0, 0, "addr = \"teleport.example.com:3025\""},
    {"teleport", "identity", K_STR, CFG(teleport.identity), 0, 0,
     "identity = \"/var/lib/teleport/plugins/pagerduty/identity\""},
    {"teleport", "client_key", K_STR, CFG(teleport.client_key), 0, 0,
     "client_key = \"/var/lib/teleport/plugins/pagerduty/auth.key\""},
    {"teleport", "client_crt", K_STR, CFG(teleport.client_crt), 0, 0,
     "client_crt = \"/var/lib/teleport/plugins/pagerduty/auth.crt\""},
    {"teleport", "root_cas", K_STR, CFG(teleport.root_cas), 0, 0,
     "root_cas = \"/var/lib/teleport/plugins/pagerduty/auth.cas\""},
    {"teleport", "refresh_identity", K_BOOL, CFG(teleport.refresh_identity), 0, 0, "refresh_identity = true"},
    {"teleport", "refresh_identity_interval", K_DUR, CFG(teleport.refresh_identity_interval_ms), 0,
     DURATION_MAX_MS, "refresh_identity_interval = \"1m\""},

    {"pagerduty", "api_key", K_STR, F_SECRET, offsetof(tpd_config, pagerduty.api_key), 0, 0,
     "api_key = \"/var/lib/teleport/plugins/pagerduty/pagerduty_api_key\""},
    {"pagerduty", "user_email", K_STR, CFG(pagerduty.user_email), 0, 0, "user_email = \"bot@example.com\""},
    {"pagerduty", "api_endpoint", K_STR, CFG(pagerduty.api_endpoint), 0, 0,
     "api_endpoint = \"https://api.pagerduty.com\""},
    {"pagerduty", "notify_service", K_STR, CFG(pagerduty.notify_service_annotation), 0, 0,
     "notify_service = \"pagerduty_notify_service\""},
    {"pagerduty", "services", K_STR, CFG(pagerduty.services_annotation), 0, 0,
     "services = \"pagerduty_services\""},
    {"pagerduty", "rate_limit_per_minute", K_INT, 0, offsetof(tpd_config, pagerduty.rate_limit_per_minute), 1,
     100000, "rate_limit_per_minute = 900"},
    {"pagerduty", "cache_ttl", K_DUR, CFG(pagerduty.cache_ttl_ms), 1, DURATION_MAX_MS, "cache_ttl = \"5m\""},
    {"pagerduty", "connect_timeout", K_DUR, CFG(pagerduty.connect_timeout_ms), 1, DURATION_MAX_MS,
     "connect_timeout = \"5s\""},
    {"pagerduty", "request_timeout", K_DUR, CFG(pagerduty.request_timeout_ms), 1, DURATION_MAX_MS,
     "request_timeout = \"10s\""},
    {"pagerduty", "incident_urgency", K_STR, CFG(pagerduty.incident_urgency), 0, 0,
     "incident_urgency = \"high\""},
    {"pagerduty", "incident_priority_id", K_STR, CFG(pagerduty.incident_priority_id), 0, 0,
     "incident_priority_id = \"PX1Y2Z3\""},

    {"log", "output", K_STR, CFG(log.output), 0, 0, "output = \"stderr\""},
    {"log", "severity", K_STR, LDR(severity), 0, 0, "severity = \"INFO\""},
    {"log", "format", K_STR, LDR(format), 0, 0, "format = \"json\""},

    {"status", "listen_addr", K_STR, CFG(status.listen_addr), 0, 0, "listen_addr = \":8081\""},
    {"status", "pagerduty_check_interval", K_DUR, CFG(status.pagerduty_check_interval_ms), 1000,
     DURATION_MAX_MS, "pagerduty_check_interval = \"1m\""},

    {"reconcile", "workers", K_INT, 0, offsetof(tpd_config, reconcile.workers), 1, 64, "workers = 4"},
    {"reconcile", "resolve_orphans", K_BOOL, CFG(reconcile.resolve_orphans), 0, 0, "resolve_orphans = true"},
    {"reconcile", "resync_interval", K_DUR, CFG(reconcile.resync_interval_ms), 1, DURATION_MAX_MS,
     "resync_interval = \"10m\""},
    {"reconcile", "shutdown_timeout", K_DUR, CFG(reconcile.shutdown_timeout_ms), 1, DURATION_MAX_MS,
     "shutdown_timeout = \"15s\""},

    {"leader_election", "enabled", K_BOOL, CFG(leader.enabled), 0, 0, "enabled = true"},
    {"leader_election", "lease_name", K_STR, CFG(leader.lease_name), 0, 0,
     "lease_name = \"teleport-plugin-pagerduty\""},
    {"leader_election", "lease_namespace", K_STR, CFG(leader.lease_namespace), 0, 0,
     "lease_namespace = \"teleport\""},
    {"leader_election", "lease_duration", K_DUR, CFG(leader.lease_duration_ms), 1, DURATION_MAX_MS,
     "lease_duration = \"15s\""},
    {"leader_election", "renew_deadline", K_DUR, CFG(leader.renew_deadline_ms), 1, DURATION_MAX_MS,
     "renew_deadline = \"10s\""},
    {"leader_election", "retry_period", K_DUR, CFG(leader.retry_period_ms), 1, DURATION_MAX_MS,
     "retry_period = \"2s\""},
    {"leader_election", "api_server", K_STR, CFG(leader.api_server), 0, 0,
     "api_server = \"https://10.0.0.1:443\""},
    {"leader_election", "token_file", K_STR, CFG(leader.token_file), 0, 0,
     "token_file = \"/var/run/secrets/kubernetes.io/serviceaccount/token\""},
    {"leader_election", "ca_file", K_STR, CFG(leader.ca_file), 0, 0,
     "ca_file = \"/var/run/secrets/kubernetes.io/serviceaccount/ca.crt\""},
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const char *const tables[] = {"teleport", "pagerduty", "log",
                                     "status",   "reconcile", "leader_election"};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* Upstream's accepted spellings of the annotation table (go-toml v1 tries these for an untagged
 * field): the Go name, lower case, upper case, lower camel case. */
static const char *const ann_names[] = {"RequestAnnotations", "requestannotations", "REQUESTANNOTATIONS",
                                        "requestAnnotations"};
#define NANN (sizeof(ann_names) / sizeof(ann_names[0]))

/* --- messages ------------------------------------------------------------------------------------ */

static tpd_err __attribute__((format(printf, 6, 7)))
cfg_err(loader *ld, tpd_err code, int line, int col, const char *fix, const char *fmt, ...)
{
	char what[TPD_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line < 1)
		line = 1;
	if (col < 1)
		col = 1;
	return tpd_seterr(ld->err, code, "%s:%d:%d: %s (%s)", ld->name, line, col, what, fix);
}

static void __attribute__((format(printf, 5, 6)))
cfg_warn(loader *ld, int line, int col, const char *hint, const char *fmt, ...)
{
	char what[TPD_ERRLEN], msg[TPD_ERRLEN + 64];
	va_list ap;

	if (!ld->warn)
		return;
	if (ld->nwarn++ >= MAX_WARNINGS)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s:%d:%d: %s (%s)", ld->name, line < 1 ? 1 : line, col < 1 ? 1 : col,
	         what, hint);
	ld->warnings[ld->nwarn - 1] = xstrdup(msg);
}

/* Replaces every occurrence of secret in buf (NUL-terminated, capacity cap) with [REDACTED],
 * truncating if the result does not fit. Secrets shorter than 4 bytes are left alone. */
static void redact(char *buf, size_t cap, const char *secret)
{
	static const char mask[] = "[REDACTED]";
	size_t sl = secret ? strlen(secret) : 0, o = 0;
	char *out;
	const char *p;

	if (!buf || cap == 0 || sl < 4 || !strstr(buf, secret))
		return;
	out = xmalloc(cap);
	for (p = buf; *p && o + 1 < cap;) {
		if (!strncmp(p, secret, sl)) {
			for (size_t k = 0; k < sizeof(mask) - 1 && o + 1 < cap; k++)
				out[o++] = mask[k];
			p += sl;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = 0;
	memcpy(buf, out, o + 1);
	free(out);
}

/* Keeps a message on one line: control characters that came from the file (quoted key names,
 * values) are shown as "\xNN", so a config can neither break the one-line error promise nor forge
 * log lines. Truncates to cap. */
static void one_line(char *buf, size_t cap)
{
	char *out = xmalloc(cap);
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)buf; *p && o + 1 < cap; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			if (o + 5 >= cap)
				break;
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = 0;
	memcpy(buf, out, o + 1);
	free(out);
}

/* Hands the held-back warnings to the callback, with the API key (if known) masked: a key that was
 * also typed somewhere as a key name or a value must not come out through a warning. */
static void flush_warnings(loader *ld, const char *secret)
{
	int n = ld->nwarn < MAX_WARNINGS ? ld->nwarn : MAX_WARNINGS;

	for (int i = 0; i < n; i++) {
		char msg[TPD_ERRLEN + 128];

		snprintf(msg, sizeof(msg), "%s", ld->warnings[i]);
		redact(msg, sizeof(msg), secret);
		one_line(msg, sizeof(msg));
		if (ld->warn)
			ld->warn(ld->ud, msg);
		free(ld->warnings[i]);
		ld->warnings[i] = NULL;
	}
	if (ld->nwarn > MAX_WARNINGS && ld->warn) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s: %d more warnings not shown (fix the ones above first)",
		         ld->name, ld->nwarn - MAX_WARNINGS);
		ld->warn(ld->ud, msg);
	}
}

static const char *a_type(tpd_node_type t)
{
	switch (t) {
	case TPD_NODE_TABLE:
		return "a table";
	case TPD_NODE_ARRAY:
		return "an array";
	case TPD_NODE_STRING:
		return "a string";
	case TPD_NODE_INT:
		return "an integer";
	case TPD_NODE_FLOAT:
		return "a float";
	case TPD_NODE_BOOL:
		return "a boolean";
	case TPD_NODE_NULL:
		return "null";
	}
	return "a value";
}

/* --- positions ----------------------------------------------------------------------------------- */

static const tpd_node *table_of(const loader *ld, const char *table)
{
	const tpd_node *t = tpd_node_get(ld->root, table);

	return tpd_node_type_of(t) == TPD_NODE_TABLE ? t : NULL;
}

static const tpd_node *node_of(const loader *ld, const char *table, const char *key)
{
	const tpd_node *v = tpd_node_get(table_of(ld, table), key);

	return tpd_node_type_of(v) == TPD_NODE_NULL ? NULL : v;
}

/* Where to point for table.key: the value, else the table header, else the top of the file. */
static void where(const loader *ld, const char *table, const char *key, int *line, int *col)
{
	const tpd_node *v = key ? node_of(ld, table, key) : NULL;

	if (!v)
		v = table_of(ld, table);
	*line = v ? tpd_node_line(v) : 1;
	*col = v ? tpd_node_col(v) : 1;
}

/* --- unknown keys --------------------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] +
			             (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

/* A hint for an unknown key: a close known name, or a note on webhook-era keys. */
static void unknown_hint(const char *table, const char *key, char *buf, size_t len)
{
	const char *best = NULL;
	size_t bestd = 3;

	if (!strcmp(key, "service_id") || !strcmp(key, "auto_approve") || !strcmp(key, "http") ||
	    !strcmp(key, "service_name")) {
		snprintf(buf, len,
		         "a setting of the old webhook-based plugin, which no longer has any effect; "
		         "remove it");
		return;
	}
	if (!table) {
		for (size_t i = 0; i < NTABLES; i++) {
			size_t d = edit_distance(key, tables[i]);

			if (d < bestd) {
				bestd = d;
				best = tables[i];
			}
		}
	} else {
		for (size_t i = 0; i < NFIELDS; i++) {
			size_t d;

			if (strcmp(fields[i].table, table))
				continue;
			d = edit_distance(key, fields[i].key);
			if (d < bestd) {
				bestd = d;
				best = fields[i].key;
			}
		}
		if (!strcmp(table, "pagerduty") && bestd > 0 &&
		    edit_distance(key, "RequestAnnotations") < bestd)
			best = "RequestAnnotations";
	}
	if (best)
		snprintf(buf, len, "ignored; did you mean %s?", best);
	else
		snprintf(buf, len, "ignored; `teleport-pagerduty configure` prints every accepted key");
}

static void warn_unknown(loader *ld, const char *table, const tpd_node *t, size_t i)
{
	char hint[256];
	const char *key = tpd_node_key_at(t, i);
	bool is_table = tpd_node_type_of(tpd_node_at(t, i)) == TPD_NODE_TABLE;

	unknown_hint(table, key, hint, sizeof(hint));
	if (table)
		cfg_warn(ld, tpd_node_key_line(t, i), tpd_node_key_col(t, i), hint,
		         is_table ? "unknown table [%s.%s]" : "unknown key %s.%s", table, key);
	else
		cfg_warn(ld, tpd_node_key_line(t, i), tpd_node_key_col(t, i), hint,
		         is_table ? "unknown table [%s]" : "unknown key %s", key);
}

/* --- typed reads ----------------------------------------------------------------------------------- */

static void *field_ptr(const field *f, tpd_config *cfg, loader *ld)
{
	return (char *)((f->flags & F_LOADER) ? (void *)ld : (void *)cfg) + f->off;
}

static tpd_err read_field(loader *ld, const field *f, const tpd_node *v, tpd_config *cfg)
{
	void *dst = field_ptr(f, cfg, ld);
	tpd_node_type t = tpd_node_type_of(v);
	int line = tpd_node_line(v), col = tpd_node_col(v);
	char fix[256];

	snprintf(fix, sizeof(fix), "example: %s", f->example);
	switch (f->kind) {
	case K_STR:
		if (t != TPD_NODE_STRING)
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix, "%s.%s must be a string, not %s",
			               f->table, f->key, a_type(t));
		free(*(char **)dst);
		*(char **)dst = xstrdup(tpd_node_str(v));
		return TPD_ERR_OK;
	case K_BOOL:
		if (t != TPD_NODE_BOOL)
			return cfg_err(ld, TPD_ERR_CONFIG, line, col,
			               t == TPD_NODE_STRING ? "write true or false "
			                                      "without quotes"
			                                    : fix,
			               "%s.%s must be a boolean, not %s", f->table, f->key, a_type(t));
		*(bool *)dst = tpd_node_bool(v);
		return TPD_ERR_OK;
	case K_INT: {
		int64_t i;

		if (t != TPD_NODE_INT)
			return cfg_err(ld, TPD_ERR_CONFIG, line, col,
			               t == TPD_NODE_STRING ? "write the number without quotes" : fix,
			               "%s.%s must be an integer, not %s", f->table, f->key, a_type(t));
		i = tpd_node_int(v);
		if (i < f->min || i > f->max)
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			               "%s.%s is %lld, out of range: it must be between %lld and %lld",
			               f->table, f->key, (long long)i, (long long)f->min, (long long)f->max);
		*(int *)dst = (int)i;
		return TPD_ERR_OK;
	}
	case K_DUR: {
		int64_t ms;

		if (t == TPD_NODE_STRING) {
			if (!tpd_parse_duration_ms(tpd_node_str(v), &ms))
				return cfg_err(
				    ld, TPD_ERR_CONFIG, line, col,
				    "use a Go duration such as \"90s\", \"1m30s\", \"500ms\" or \"2h\"",
				    "%s.%s: invalid duration \"%.64s\"", f->table, f->key, tpd_node_str(v));
		} else if (t == TPD_NODE_INT) {
			/* go-toml v1 decodes an integer into a time.Duration as nanoseconds; do the same
			 * (rounding up to whole milliseconds) and warn about surprisingly short values. */
			int64_t ns = tpd_node_int(v);

			if (ns < 0)
				return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				               "%s.%s must not be negative", f->table, f->key);
			ms = ns / 1000000 + (ns % 1000000 ? 1 : 0);
			if (ns > 0 && ns < 1000000000)
				cfg_warn(ld, line, col, "write a string with a unit, e.g. \"60s\"",
				         "%s.%s = %lld is read as %lld nanoseconds, as upstream does",
				         f->table, f->key, (long long)ns, (long long)ns);
		} else {
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			               "%s.%s must be a duration string, not %s", f->table, f->key,
			               a_type(t));
		}
		if (ms < f->min || ms > f->max) {
			if (f->min > 0 && ms < f->min)
				return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				               "%s.%s must be greater than zero", f->table, f->key);
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			               "%s.%s is too long (at most 366 days)", f->table, f->key);
		}
		*(int64_t *)dst = ms;
		return TPD_ERR_OK;
	}
	}
	return TPD_ERR_INTERNAL;
}

static const field *find_field(const char *table, const char *key)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (!strcmp(fields[i].table, table) && !strcmp(fields[i].key, key))
			return &fields[i];
	return NULL;
}

/* Reads [pagerduty.RequestAnnotations] (any accepted spelling). */
static tpd_err read_annotations(loader *ld, const tpd_node *pd, size_t i)
{
	const tpd_node *t = tpd_node_at(pd, i);
	const char *name = tpd_node_key_at(pd, i);
	char fix[160];

	if (tpd_node_type_of(t) == TPD_NODE_NULL)
		return TPD_ERR_OK;
	if (tpd_node_type_of(t) != TPD_NODE_TABLE)
		return cfg_err(
		    ld, TPD_ERR_CONFIG, tpd_node_line(t), tpd_node_col(t),
		    "write [pagerduty.RequestAnnotations] with notify_service = \"...\" and services = "
		    "\"...\"",
		    "pagerduty.%s must be a table, not %s", name, a_type(tpd_node_type_of(t)));
	if (ld->ann_table)
		return cfg_err(ld, TPD_ERR_CONFIG, tpd_node_key_line(pd, i), tpd_node_key_col(pd, i),
		               "keep only one of them", "both pagerduty.%s and pagerduty.%s are given",
		               ld->ann_table_name, name);
	ld->ann_table = t;
	ld->ann_table_name = name;
	for (size_t k = 0; k < tpd_node_len(t); k++) {
		const char *key = tpd_node_key_at(t, k);
		const tpd_node *v = tpd_node_at(t, k);
		char **dst = !strcmp(key, "notify_service") ? &ld->ann_notify
		             : !strcmp(key, "services")     ? &ld->ann_services
		                                            : NULL;

		if (!dst) {
			cfg_warn(ld, tpd_node_key_line(t, k), tpd_node_key_col(t, k),
			         "ignored; the accepted keys are notify_service and services",
			         "unknown key pagerduty.%s.%s", name, key);
			continue;
		}
		if (tpd_node_type_of(v) == TPD_NODE_NULL)
			continue;
		if (tpd_node_type_of(v) != TPD_NODE_STRING) {
			snprintf(fix, sizeof(fix), "example: %s = \"%s\"", key,
			         dst == &ld->ann_notify ? TPD_DEFAULT_NOTIFY_ANNOTATION
			                                : TPD_DEFAULT_SERVICES_ANNOTATION);
			return cfg_err(ld, TPD_ERR_CONFIG, tpd_node_line(v), tpd_node_col(v), fix,
			               "pagerduty.%s.%s must be a string, not %s", name, key,
			               a_type(tpd_node_type_of(v)));
		}
		*dst = xstrdup(tpd_node_str(v));
	}
	return TPD_ERR_OK;
}

static bool is_ann_name(const char *key)
{
	for (size_t i = 0; i < NANN; i++)
		if (!strcmp(key, ann_names[i]))
			return true;
	return false;
}

static tpd_err walk(loader *ld, tpd_config *cfg)
{
	const tpd_node *root = ld->root;
	tpd_err rc;

	for (size_t i = 0; i < tpd_node_len(root); i++) {
		const char *tname = tpd_node_key_at(root, i);
		const tpd_node *t = tpd_node_at(root, i);
		bool known = false;

		for (size_t k = 0; k < NTABLES; k++)
			known = known || !strcmp(tname, tables[k]);
		if (!known) {
			warn_unknown(ld, NULL, root, i);
			continue;
		}
		if (tpd_node_type_of(t) == TPD_NODE_NULL)
			continue;
		if (tpd_node_type_of(t) != TPD_NODE_TABLE)
			return cfg_err(ld, TPD_ERR_CONFIG, tpd_node_line(t), tpd_node_col(t),
			               "write it as a section: a line [name] followed by key = value lines",
			               "%s must be a table, not %s", tname, a_type(tpd_node_type_of(t)));
		for (size_t k = 0; k < tpd_node_len(t); k++) {
			const char *key = tpd_node_key_at(t, k);
			const tpd_node *v = tpd_node_at(t, k);
			const field *f = find_field(tname, key);

			if (!strcmp(tname, "pagerduty") && is_ann_name(key)) {
				if ((rc = read_annotations(ld, t, k)))
					return rc;
				continue;
			}
			if (!f) {
				warn_unknown(ld, tname, t, k);
				continue;
			}
			if (tpd_node_type_of(v) == TPD_NODE_NULL)
				continue; /* YAML `key:` or `key: null`: keep the default */
			if ((rc = read_field(ld, f, v, cfg)))
				return rc;
		}
	}
	return TPD_ERR_OK;
}

/* --- validation ------------------------------------------------------------------------------------ */

static bool has_ctrl_or_space(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

static tpd_err check_teleport(loader *ld, tpd_config *cfg)
{
	static const char *const triple[] = {"client_key", "client_crt", "root_cas"};
	const char *vals[3] = {cfg->teleport.client_key, cfg->teleport.client_crt, cfg->teleport.root_cas};
	char given[128] = "", missing[128] = "";
	int ngiven = 0, line, col;
	const char *first = NULL;

	/* 1. the TLS triple is all or nothing; names listed in a fixed order */
	for (int i = 0; i < 3; i++) {
		char *dst = tpd_str_empty(vals[i]) ? missing : given;
		size_t used = strlen(dst);

		if (!tpd_str_empty(vals[i])) {
			ngiven++;
			if (!first)
				first = triple[i];
		}
		snprintf(dst + used, 128 - used, "%s`%s`", used ? ", " : "", triple[i]);
	}
	if (ngiven > 0 && ngiven < 3) {
		where(ld, "teleport", first, &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "set all three of client_key, client_crt and root_cas, or use identity instead",
		    "configuration setting(s) %s are provided but setting(s) %s are missing", given, missing);
	}
	/* 2. identity excludes the key pair */
	if (!tpd_str_empty(cfg->teleport.identity) && !tpd_str_empty(cfg->teleport.client_crt)) {
		where(ld, "teleport", "identity", &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "keep either identity or the client_key/client_crt/root_cas triple",
		    "configuration setting `identity` is mutually exclusive with all the `client_crt`, "
		    "`client_key` and `root_cas` settings");
	}
	/* 3. interval 0 → one minute */
	if (cfg->teleport.refresh_identity_interval_ms == 0)
		cfg->teleport.refresh_identity_interval_ms = 60000;
	/* 4. refreshing needs an identity file */
	if (cfg->teleport.refresh_identity && tpd_str_empty(cfg->teleport.identity)) {
		where(ld, "teleport", "refresh_identity", &line, &col);
		return cfg_err(ld, TPD_ERR_CONFIG, line, col,
		               "set identity to the identity file's path, or remove refresh_identity",
		               "`refresh_identity` requires that `identity` be set");
	}
	if (!tpd_str_empty(ld->auth_server)) {
		where(ld, "teleport", "auth_server", &line, &col);
		cfg_warn(
		    ld, line, col, "rename auth_server to addr",
		    "Configuration setting `auth_server` is deprecated, consider to change it to `addr`");
		if (tpd_str_empty(cfg->teleport.addr)) {
			free(cfg->teleport.addr);
			cfg->teleport.addr = xstrdup(ld->auth_server);
		}
	}
	return TPD_ERR_OK;
}

static bool is_loopback(const char *host, size_t n)
{
	unsigned a, b, c, d;
	char tail;
	char h[64];

	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = 0;
	if (!strcasecmp(h, "localhost") || !strcmp(h, "[::1]"))
		return true;
	return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
	       d < 256;
}

/* Checks "https://host[:port][/path]" (http:// only for loopback); strips trailing slashes. */
static tpd_err check_endpoint(loader *ld, tpd_config *cfg)
{
	char *u = cfg->pagerduty.api_endpoint;
	const char *fix = "use a URL such as https://api.pagerduty.com or https://api.eu.pagerduty.com";
	const char *host, *p;
	size_t hlen;
	bool https;
	int line, col;

	where(ld, "pagerduty", "api_endpoint", &line, &col);
	if (!strncasecmp(u, "https://", 8))
		https = true;
	else if (!strncasecmp(u, "http://", 7))
		https = false;
	else
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
		               "pagerduty.api_endpoint must start with https://");
	host = u + (https ? 8 : 7);
	for (p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' ||
		    *p == '\\')
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			               "pagerduty.api_endpoint contains a space or an invalid character");
	if (strpbrk(host, "?#"))
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
		               "pagerduty.api_endpoint must not have a query or fragment");
	hlen = strcspn(host, "/");
	if (memchr(host, '@', hlen))
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, "put the API key in pagerduty.api_key instead",
		               "pagerduty.api_endpoint must not contain credentials");
	/* host part: [v6] or a name, then optional :port */
	{
		size_t name_len;
		const char *port;

		if (host[0] == '[') {
			const char *close = memchr(host, ']', hlen);

			if (!close)
				return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				               "pagerduty.api_endpoint has an unterminated [IPv6] host");
			for (const char *q = host + 1; q < close; q++)
				if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
					return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
					               "pagerduty.api_endpoint has an invalid IPv6 host");
			name_len = (size_t)(close - host) + 1;
		} else {
			name_len = strcspn(host, ":/");
			if (name_len > hlen)
				name_len = hlen;
			for (size_t k = 0; k < name_len; k++)
				if (!isalnum((unsigned char)host[k]) && host[k] != '-' && host[k] != '.' &&
				    host[k] != '_')
					return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
					               "pagerduty.api_endpoint has an invalid host name");
		}
		if (name_len == 0 || (name_len == 2 && host[0] == '['))
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			               "pagerduty.api_endpoint has no host");
		port = host + name_len;
		if (port < host + hlen) {
			long pn = 0;
			size_t plen;

			if (*port != ':')
				return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				               "pagerduty.api_endpoint has an invalid host");
			port++;
			plen = (size_t)(host + hlen - port);
			if (plen == 0 || plen > 5)
				return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				               "pagerduty.api_endpoint has an invalid port");
			for (size_t k = 0; k < plen; k++) {
				if (!isdigit((unsigned char)port[k]))
					return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
					               "pagerduty.api_endpoint has an invalid port");
				pn = pn * 10 + (port[k] - '0');
			}
			if (pn < 1 || pn > 65535)
				return cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				               "pagerduty.api_endpoint has a port out of range (1-65535)");
		}
		if (!https && !is_loopback(host, name_len))
			return cfg_err(
			    ld, TPD_ERR_CONFIG, line, col,
			    "use https://; plain http:// is accepted only for a loopback test server "
			    "such as http://127.0.0.1:8080",
			    "pagerduty.api_endpoint must use https://");
	}
	{
		size_t n = strlen(u);

		while (n > 0 && u[n - 1] == '/' && n > (size_t)(host - u) + hlen)
			u[--n] = 0;
	}
	return TPD_ERR_OK;
}

static tpd_err read_api_key_file(loader *ld, tpd_config *cfg)
{
	char *data = NULL, ioerr[TPD_ERRLEN];
	size_t len = 0;
	int line, col;
	tpd_err rc;

	if (!cfg->pagerduty.api_key || cfg->pagerduty.api_key[0] != '/')
		return TPD_ERR_OK;
	where(ld, "pagerduty", "api_key", &line, &col);
	/* the value is a path, not a secret: keep it for messages and for the caller */
	cfg->pagerduty.api_key_file = cfg->pagerduty.api_key;
	cfg->pagerduty.api_key = NULL;
	rc = tpd_read_file(cfg->pagerduty.api_key_file, API_KEY_FILE_MAX, &data, &len, ioerr);
	if (rc == TPD_ERR_TOO_LARGE)
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, "the file must hold only the API key",
		               "error reading the API key from %s: larger than %d bytes",
		               cfg->pagerduty.api_key_file, API_KEY_FILE_MAX);
	if (rc)
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "make the file readable by the plugin, or set pagerduty.api_key to the key itself",
		    "error reading the API key: %s", ioerr);
	if (memchr(data, 0, len)) {
		explicit_bzero(data, len);
		free(data);
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, "the file must hold only the API key as text",
		               "the API key file %s contains a NUL byte", cfg->pagerduty.api_key_file);
	}
	tpd_str_trim(data);
	cfg->pagerduty.api_key = xstrdup(data);
	explicit_bzero(data, len);
	free(data);
	if (!cfg->pagerduty.api_key[0])
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, "write the PagerDuty API key into the file",
		               "the API key file %s is empty", cfg->pagerduty.api_key_file);
	return TPD_ERR_OK;
}

static tpd_err check_pagerduty(loader *ld, tpd_config *cfg)
{
	int line, col;
	tpd_err rc;

	if (tpd_str_empty(cfg->pagerduty.api_endpoint)) {
		free(cfg->pagerduty.api_endpoint);
		cfg->pagerduty.api_endpoint = xstrdup(TPD_DEFAULT_PD_ENDPOINT);
	}
	if ((rc = check_endpoint(ld, cfg)))
		return rc;
	if (tpd_str_empty(cfg->pagerduty.api_key)) {
		where(ld, "pagerduty", "api_key", &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "set api_key in [pagerduty] to the API key, or to the path of a file holding it",
		    "missing required value pagerduty.api_key");
	}
	if (has_ctrl_or_space(cfg->pagerduty.api_key)) {
		where(ld, "pagerduty", "api_key", &line, &col);
		return cfg_err(ld, TPD_ERR_CONFIG, line, col, "copy the key again from PagerDuty",
		               "pagerduty.api_key contains spaces or control characters");
	}
	if (tpd_str_empty(cfg->pagerduty.user_email)) {
		where(ld, "pagerduty", "user_email", &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "set user_email in [pagerduty] to the e-mail of the PagerDuty user the plugin acts as",
		    "missing required value pagerduty.user_email");
	}
	{
		const char *e = cfg->pagerduty.user_email, *at = strchr(e, '@');

		if (!at || at == e || !at[1] || strchr(at + 1, '@') || has_ctrl_or_space(e) ||
		    strlen(e) > 254) {
			where(ld, "pagerduty", "user_email", &line, &col);
			return cfg_err(ld, TPD_ERR_CONFIG, line, col,
			               "example: user_email = \"bot@example.com\"",
			               "pagerduty.user_email is not a valid e-mail address");
		}
	}
	/* annotation names: [pagerduty.RequestAnnotations] (upstream) or the keys in [pagerduty] (docs) */
	{
		struct {
			char **direct;
			char *table;
			const char *key, *def;
		} ann[2] = {
		    {&cfg->pagerduty.notify_service_annotation, ld->ann_notify, "notify_service",
		     TPD_DEFAULT_NOTIFY_ANNOTATION},
		    {&cfg->pagerduty.services_annotation, ld->ann_services, "services",
		     TPD_DEFAULT_SERVICES_ANNOTATION},
		};

		for (int i = 0; i < 2; i++) {
			char **d = ann[i].direct;

			if (!tpd_str_empty(ann[i].table)) {
				if (!tpd_str_empty(*d) && strcmp(*d, ann[i].table)) {
					where(ld, "pagerduty", ann[i].key, &line, &col);
					return cfg_err(ld, TPD_ERR_CONFIG, line, col,
					               "keep only one of the two",
					               "pagerduty.%s and pagerduty.%s.%s disagree",
					               ann[i].key, ld->ann_table_name, ann[i].key);
				}
				free(*d);
				*d = xstrdup(ann[i].table);
			}
			if (tpd_str_empty(*d)) {
				free(*d);
				*d = xstrdup(ann[i].def);
			}
			if (has_ctrl_or_space(*d) || strlen(*d) > 253) {
				const tpd_node *v = node_of(ld, "pagerduty", ann[i].key);

				if (!v || tpd_str_empty(tpd_node_str(v)))
					v = tpd_node_get(ld->ann_table, ann[i].key);
				line = v ? tpd_node_line(v) : 1;
				col = v ? tpd_node_col(v) : 1;
				return cfg_err(
				    ld, TPD_ERR_CONFIG, line, col,
				    "use a name such as \"pagerduty_services\"",
				    "the annotation name for %s contains spaces or control characters",
				    ann[i].key);
			}
		}
	}
	{
		char *u = cfg->pagerduty.incident_urgency;

		if (!tpd_str_empty(u) && strcasecmp(u, "high") && strcasecmp(u, "low")) {
			where(ld, "pagerduty", "incident_urgency", &line, &col);
			return cfg_err(ld, TPD_ERR_CONFIG, line, col,
			               "use \"high\" or \"low\", or \"\" for the service's default",
			               "pagerduty.incident_urgency must be high or low");
		}
		for (; u && *u; u++)
			*u = (char)tolower((unsigned char)*u);
	}
	{
		const char *pr = cfg->pagerduty.incident_priority_id;
		bool ok = strlen(pr) <= 64;

		for (const char *q = pr; *q && ok; q++)
			ok = isalnum((unsigned char)*q);
		if (!ok) {
			where(ld, "pagerduty", "incident_priority_id", &line, &col);
			return cfg_err(ld, TPD_ERR_CONFIG, line, col,
			               "use the id of a PagerDuty priority (letters and digits, e.g. "
			               "\"P53ZZH5\") or \"\"",
			               "pagerduty.incident_priority_id is not a valid PagerDuty id");
		}
	}
	return TPD_ERR_OK;
}

static tpd_err check_log(loader *ld, tpd_config *cfg)
{
	int line, col;

	if (tpd_str_empty(cfg->log.output)) {
		free(cfg->log.output);
		cfg->log.output = xstrdup("stderr");
	}
	for (const char *q = cfg->log.output; *q; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			where(ld, "log", "output", &line, &col);
			return cfg_err(ld, TPD_ERR_CONFIG, line, col,
			               "use \"stdout\", \"stderr\" or a file path",
			               "log.output contains a control character");
		}
	}
	if (!tpd_str_empty(ld->severity) && !tpd_log_level_parse(ld->severity, &cfg->log.severity)) {
		where(ld, "log", "severity", &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "use one of trace, debug, info, warn (warning), error (err); case does not matter",
		    "unsupported logger severity: '%.32s'", ld->severity);
	}
	if (!tpd_str_empty(ld->format)) {
		if (!strcasecmp(ld->format, "text")) {
			cfg->log.format = TPD_LOG_FORMAT_TEXT;
		} else if (!strcasecmp(ld->format, "json")) {
			cfg->log.format = TPD_LOG_FORMAT_JSON;
		} else {
			where(ld, "log", "format", &line, &col);
			return cfg_err(ld, TPD_ERR_CONFIG, line, col, "use \"text\" (logfmt) or \"json\"",
			               "unsupported log format: '%.32s'", ld->format);
		}
	}
	return TPD_ERR_OK;
}

/* host:port with an optional host ("", a name, an IPv4 address or [IPv6]) and port 0-65535. */
static bool valid_listen_addr(const char *a)
{
	const char *colon = strrchr(a, ':');
	size_t plen;
	long port = 0;

	if (!colon)
		return false;
	plen = strlen(colon + 1);
	if (plen == 0 || plen > 5)
		return false;
	for (const char *q = colon + 1; *q; q++) {
		if (!isdigit((unsigned char)*q))
			return false;
		port = port * 10 + (*q - '0');
	}
	if (port > 65535)
		return false;
	if (a[0] == '[')
		return colon > a + 1 && colon[-1] == ']';
	for (const char *q = a; q < colon; q++)
		if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
			return false;
	return true;
}

/* Kubernetes names: DNS-1123 subdomain (label = true: a single label of at most 63). */
static bool valid_k8s_name(const char *s, bool label)
{
	size_t n = strlen(s);

	if (n == 0 || n > (label ? 63u : 253u))
		return false;
	if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' ||
		      (!label && c == '.')))
			return false;
	}
	return true;
}

static tpd_err check_ours(loader *ld, tpd_config *cfg)
{
	int line, col;

	if (!tpd_str_empty(cfg->status.listen_addr) && !valid_listen_addr(cfg->status.listen_addr)) {
		where(ld, "status", "listen_addr", &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "use host:port such as \":8081\" or \"127.0.0.1:8081\"; \"\" turns the server off",
		    "status.listen_addr is not a valid listen address");
	}
	if (!valid_k8s_name(cfg->leader.lease_name, false)) {
		where(ld, "leader_election", "lease_name", &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "use lower-case letters, digits, '-' and '.', e.g. \"teleport-plugin-pagerduty\"",
		    "leader_election.lease_name is not a valid Kubernetes name");
	}
	if (!tpd_str_empty(cfg->leader.lease_namespace) &&
	    !valid_k8s_name(cfg->leader.lease_namespace, true)) {
		where(ld, "leader_election", "lease_namespace", &line, &col);
		return cfg_err(ld, TPD_ERR_CONFIG, line, col,
		               "use lower-case letters, digits and '-', or \"\" for the pod's namespace",
		               "leader_election.lease_namespace is not a valid Kubernetes namespace");
	}
	if (cfg->leader.renew_deadline_ms >= cfg->leader.lease_duration_ms) {
		where(ld, "leader_election",
		      node_of(ld, "leader_election", "renew_deadline") ? "renew_deadline" : "lease_duration",
		      &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "make renew_deadline shorter than lease_duration, e.g. 10s and 15s",
		    "leader_election.renew_deadline (%lldms) must be less than lease_duration (%lldms)",
		    (long long)cfg->leader.renew_deadline_ms, (long long)cfg->leader.lease_duration_ms);
	}
	if (cfg->leader.retry_period_ms >= cfg->leader.renew_deadline_ms) {
		where(ld, "leader_election",
		      node_of(ld, "leader_election", "retry_period") ? "retry_period" : "renew_deadline",
		      &line, &col);
		return cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "make retry_period shorter than renew_deadline, e.g. 2s and 10s",
		    "leader_election.retry_period (%lldms) must be less than renew_deadline (%lldms)",
		    (long long)cfg->leader.retry_period_ms, (long long)cfg->leader.renew_deadline_ms);
	}
	return TPD_ERR_OK;
}

/* --- entry points ---------------------------------------------------------------------------------- */

static tpd_config *config_defaults(const char *name)
{
	tpd_config *c = tpd_new(tpd_config);

	c->path = xstrdup(name);
	c->teleport.addr = xstrdup("");
	c->teleport.identity = xstrdup("");
	c->teleport.client_key = xstrdup("");
	c->teleport.client_crt = xstrdup("");
	c->teleport.root_cas = xstrdup("");
	c->teleport.refresh_identity_interval_ms = 0; /* 0 → 1m in check_teleport, as upstream */
	c->pagerduty.user_email = xstrdup("");
	c->pagerduty.api_endpoint = xstrdup(TPD_DEFAULT_PD_ENDPOINT);
	c->pagerduty.notify_service_annotation = xstrdup("");
	c->pagerduty.services_annotation = xstrdup("");
	c->pagerduty.rate_limit_per_minute = 900;
	c->pagerduty.cache_ttl_ms = 300000;
	c->pagerduty.connect_timeout_ms = 5000;
	c->pagerduty.request_timeout_ms = 10000;
	c->pagerduty.incident_urgency = xstrdup("");
	c->pagerduty.incident_priority_id = xstrdup("");
	c->log.output = xstrdup("stderr");
	c->log.severity = TPD_LOG_INFO;
	c->log.format = TPD_LOG_FORMAT_TEXT;
	c->status.listen_addr = xstrdup(":8081");
	c->status.pagerduty_check_interval_ms = 60000;
	c->reconcile.workers = 4;
	c->reconcile.resync_interval_ms = 600000;
	c->reconcile.shutdown_timeout_ms = 15000;
	c->reconcile.resolve_orphans = true;
	c->leader.enabled = false;
	c->leader.lease_name = xstrdup("teleport-plugin-pagerduty");
	c->leader.lease_namespace = xstrdup("");
	c->leader.lease_duration_ms = 15000;
	c->leader.renew_deadline_ms = 10000;
	c->leader.retry_period_ms = 2000;
	c->leader.api_server = xstrdup("");
	c->leader.token_file = xstrdup("");
	c->leader.ca_file = xstrdup("");
	return c;
}

static bool is_yaml_path(const char *path)
{
	size_t n = strlen(path);

	return (n >= 5 && !strcasecmp(path + n - 5, ".yaml")) ||
	       (n >= 4 && !strcasecmp(path + n - 4, ".yml"));
}

tpd_err tpd_config_load_mem(const char *name, const char *text, size_t len, bool yaml, tpd_config **out,
                            tpd_config_warn_cb warn, void *ud, char *err)
{
	loader ld;
	tpd_node *root = NULL;
	tpd_config *cfg = NULL;
	tpd_err rc;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	ld.name = name ? name : "<config>";
	ld.warn = warn;
	ld.ud = ud;
	ld.err = err;
	if (len > TPD_CONFIG_MAX_BYTES) {
		rc = tpd_seterr(err, TPD_ERR_TOO_LARGE,
		                "%s:1:1: the configuration is larger than %d bytes (a "
		                "configuration file is a few kilobytes; check the path)",
		                ld.name, TPD_CONFIG_MAX_BYTES);
		goto out;
	}
	rc = yaml ? tpd_yaml_parse(ld.name, text, len, &root, err)
	          : tpd_toml_parse(ld.name, text, len, &root, err);
	if (rc)
		goto out;
	ld.root = root;
	cfg = config_defaults(ld.name);
	if ((rc = walk(&ld, cfg)))
		goto out;
	/* upstream order: the key file is read right after parsing, then teleport, then pagerduty, log */
	if ((rc = read_api_key_file(&ld, cfg)))
		goto out;
	if ((rc = check_teleport(&ld, cfg)))
		goto out;
	if ((rc = check_pagerduty(&ld, cfg)))
		goto out;
	if ((rc = check_log(&ld, cfg)))
		goto out;
	if ((rc = check_ours(&ld, cfg)))
		goto out;
	*out = cfg;
out:
	/* belt and braces: no message may carry the key, whichever path produced it */
	{
		/* before the key file is read, api_key holds its path, which is no secret */
		const char *secret = cfg && (cfg->pagerduty.api_key_file ||
		                             (cfg->pagerduty.api_key && cfg->pagerduty.api_key[0] != '/'))
		                         ? cfg->pagerduty.api_key
		                         : NULL;

		if (rc && err) {
			redact(err, TPD_ERRLEN, secret);
			one_line(err, TPD_ERRLEN);
		}
		flush_warnings(&ld, secret);
	}
	if (rc)
		tpd_config_free(cfg);
	tpd_node_free(root);
	free(ld.auth_server);
	free(ld.severity);
	free(ld.format);
	free(ld.ann_notify);
	free(ld.ann_services);
	return rc;
}

tpd_err tpd_config_load_string(const char *name, const char *text, bool yaml, tpd_config **out,
                               tpd_config_warn_cb warn, void *ud, char *err)
{
	return tpd_config_load_mem(name, text ? text : "", text ? strlen(text) : 0, yaml, out, warn, ud, err);
}

tpd_err tpd_config_load(const char *path, tpd_config **out, tpd_config_warn_cb warn, void *ud, char *err)
{
	char *text = NULL, ioerr[TPD_ERRLEN];
	size_t len = 0;
	tpd_err rc;

	*out = NULL;
	if (!path || !*path)
		return tpd_seterr(err, TPD_ERR_INVAL, "no configuration file given (pass -c/--config PATH)");
	rc = tpd_read_file(path, TPD_CONFIG_MAX_BYTES, &text, &len, ioerr);
	if (rc == TPD_ERR_TOO_LARGE)
		return tpd_seterr(err, TPD_ERR_TOO_LARGE,
		                  "%s: the file is larger than %d bytes (check the "
		                  "path: a configuration file is a few kilobytes)",
		                  path, TPD_CONFIG_MAX_BYTES);
	if (rc)
		return tpd_seterr(err, TPD_ERR_IO,
		                  "%s (check the path given with -c/--config; "
		                  "`teleport-pagerduty configure > FILE` writes a sample)",
		                  ioerr);
	rc = tpd_config_load_mem(path, text, len, is_yaml_path(path), out, warn, ud, err);
	free(text);
	return rc;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void tpd_config_free(tpd_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->teleport.addr);
	free(c->teleport.identity);
	free(c->teleport.client_key);
	free(c->teleport.client_crt);
	free(c->teleport.root_cas);
	free_secret(c->pagerduty.api_key);
	free(c->pagerduty.api_key_file);
	free(c->pagerduty.user_email);
	free(c->pagerduty.api_endpoint);
	free(c->pagerduty.notify_service_annotation);
	free(c->pagerduty.services_annotation);
	free(c->pagerduty.incident_urgency);
	free(c->pagerduty.incident_priority_id);
	free(c->log.output);
	free(c->status.listen_addr);
	free(c->leader.lease_name);
	free(c->leader.api_server);
	free(c->leader.token_file);
	free(c->leader.ca_file);
	free(c->leader.lease_namespace);
	free(c);
}

/* --- the sample printed by `teleport-pagerduty configure` ------------------------------------------ */

static const char example[] =
    "# Sample configuration for teleport-pagerduty (TOML).\n"
    "[teleport]\n"
    "# Address of the Teleport Auth Service or Proxy Service.\n"
    "#\n"
    "# The Auth Service listens on port 3025; the Proxy Service on 3080, or on 443 behind a load balancer.\n"
    "# Teleport Cloud tenants use the form \"your-account.teleport.sh:443\".\n"
    "addr = \"example.com:3025\"\n"
    "\n"
    "# Credentials: use one of the two forms below.\n"
    "#\n"
    "# An identity file, made with `tctl auth sign --format=file` or written by tbot:\n"
    "# identity = \"/var/lib/teleport/plugins/pagerduty/auth_id\"    # Identity file\n"
    "# refresh_identity = true                                     # Re-read the identity file periodically\n"
    "# refresh_identity_interval = \"1m\"                            # How often to re-read it\n"
    "#\n"
    "# Or a TLS key pair, made with `tctl auth sign --format=tls`:\n"
    "# client_key = \"/var/lib/teleport/plugins/pagerduty/auth.key\" # Teleport TLS private key\n"
    "# client_crt = \"/var/lib/teleport/plugins/pagerduty/auth.crt\" # Teleport TLS certificate\n"
    "# root_cas = \"/var/lib/teleport/plugins/pagerduty/auth.cas\"   # Teleport CA certificates\n"
    "\n"
    "[pagerduty]\n"
    "api_key = \"key\"               # PagerDuty API key, or the path of a file holding it (value starting "
    "with /)\n"
    "user_email = \"me@example.com\" # E-mail of the PagerDuty user the plugin acts as (an admin's works "
    "too)\n"
    "\n"
    "# Optional settings, shown with their defaults. Durations are Go-style strings such as \"90s\" or\n"
    "# \"1m30s\"; a bare integer counts nanoseconds, as in the upstream plugin.\n"
    "# api_endpoint = \"https://api.pagerduty.com\" # EU service region: https://api.eu.pagerduty.com\n"
    "# notify_service = \"pagerduty_notify_service\" # Role annotation naming the service to page\n"
    "# services = \"pagerduty_services\"             # Role annotation naming services for auto-approval\n"
    "# rate_limit_per_minute = 900                 # Cap on PagerDuty API calls per minute\n"
    "# cache_ttl = \"5m\"                            # How long service and on-call lookups are cached\n"
    "# connect_timeout = \"5s\"                      # TCP+TLS connection set-up\n"
    "# request_timeout = \"10s\"                     # One whole API request\n"
    "# incident_urgency = \"\"                       # \"high\" or \"low\"; empty uses the service's "
    "setting\n"
    "# incident_priority_id = \"\"                   # Id of a PagerDuty priority for new incidents\n"
    "#\n"
    "# The annotation names may also be given the upstream way, in their own table:\n"
    "# [pagerduty.RequestAnnotations]\n"
    "# notify_service = \"pagerduty_notify_service\"\n"
    "# services = \"pagerduty_services\"\n"
    "\n"
    "[log]\n"
    "output = \"stderr\" # Where logs go: \"stdout\", \"stderr\" or a file such as "
    "\"/var/lib/teleport/pagerduty.log\"\n"
    "severity = \"INFO\" # Least severity logged: \"INFO\", \"ERROR\", \"DEBUG\" or \"WARN\"\n"
    "# format = \"text\" # \"text\" (logfmt) or \"json\"\n"
    "\n"
    "# Health and metrics endpoints (/healthz, /readyz, /metrics).\n"
    "# [status]\n"
    "# listen_addr = \":8081\"         # \"\" turns the endpoints off\n"
    "# pagerduty_check_interval = \"1m\" # How often /readyz re-checks the PagerDuty API key\n"
    "\n"
    "# Request processing.\n"
    "# [reconcile]\n"
    "# workers = 4                   # Access requests handled in parallel (1-64)\n"
    "# resync_interval = \"10m\"       # Full re-check of all pending requests\n"
    "# shutdown_timeout = \"15s\"      # Grace period for in-flight work on SIGTERM\n"
    "# resolve_orphans = true          # Resolve open incidents whose request vanished while we were away\n"
    "\n"
    "# Leader election through a Kubernetes Lease, for running several replicas.\n"
    "# [leader_election]\n"
    "# enabled = false\n"
    "# lease_name = \"teleport-plugin-pagerduty\"\n"
    "# lease_namespace = \"\"          # Empty: the pod's own namespace\n"
    "# lease_duration = \"15s\"\n"
    "# renew_deadline = \"10s\"\n"
    "# retry_period = \"2s\"\n"
    "# api_server = \"\"               # Empty: in-cluster (KUBERNETES_SERVICE_HOST/PORT)\n"
    "# token_file = \"\"               # Empty: the pod's service-account token\n"
    "# ca_file = \"\"                  # Empty: the pod's service-account CA\n";

const char *tpd_config_example(void)
{
	return example;
}
