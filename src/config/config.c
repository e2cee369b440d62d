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

#include "config_impl.h"
#include "tpd/toml.h"
#include "tpd/yaml.h"
#include "tpd/util.h"

/* --- messages ------------------------------------------------------------------------------------ */

tpd_err tpd_cfg_err(tpd_cfg_loader *ld, tpd_err code, int line, int col, const char *fix, const char *fmt,
                    ...)
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

void tpd_cfg_warn(tpd_cfg_loader *ld, int line, int col, const char *hint, const char *fmt, ...)
{
	char what[TPD_ERRLEN], msg[TPD_ERRLEN + 64];
	va_list ap;

	if (!ld->warn)
		return;
	if (ld->nwarn++ >= TPD_CFG_MAX_WARNINGS)
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
static void flush_warnings(tpd_cfg_loader *ld, const char *secret)
{
	int n = ld->nwarn < TPD_CFG_MAX_WARNINGS ? ld->nwarn : TPD_CFG_MAX_WARNINGS;

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
	if (ld->nwarn > TPD_CFG_MAX_WARNINGS && ld->warn) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s: %d more warnings not shown (fix the ones above first)",
		         ld->name, ld->nwarn - TPD_CFG_MAX_WARNINGS);
		ld->warn(ld->ud, msg);
	}
}

const char *tpd_cfg_type_name(tpd_node_type t)
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

static const tpd_node *table_of(const tpd_cfg_loader *ld, const char *table)
{
	const tpd_node *t = tpd_node_get(ld->root, table);

	return tpd_node_type_of(t) == TPD_NODE_TABLE ? t : NULL;
}

const tpd_node *tpd_cfg_node_of(const tpd_cfg_loader *ld, const char *table, const char *key)
{
	const tpd_node *v = tpd_node_get(table_of(ld, table), key);

	return tpd_node_type_of(v) == TPD_NODE_NULL ? NULL : v;
}

/* Where to point for table.key: the value, else the table header, else the top of the file. */
void tpd_cfg_where(const tpd_cfg_loader *ld, const char *table, const char *key, int *line, int *col)
{
	const tpd_node *v = key ? tpd_cfg_node_of(ld, table, key) : NULL;

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
		for (size_t i = 0; i < tpd_cfg_ntables; i++) {
			size_t d = edit_distance(key, tpd_cfg_tables[i].name);

			if (d < bestd) {
				bestd = d;
				best = tpd_cfg_tables[i].name;
			}
		}
	} else {
		for (size_t i = 0; i < tpd_cfg_nfields; i++) {
			size_t d;

			if (strcmp(tpd_cfg_fields[i].table, table))
				continue;
			d = edit_distance(key, tpd_cfg_fields[i].key);
			if (d < bestd) {
				bestd = d;
				best = tpd_cfg_fields[i].key;
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

static void warn_unknown(tpd_cfg_loader *ld, const char *table, const tpd_node *t, size_t i)
{
	char hint[256];
	const char *key = tpd_node_key_at(t, i);
	bool is_table = tpd_node_type_of(tpd_node_at(t, i)) == TPD_NODE_TABLE;

	unknown_hint(table, key, hint, sizeof(hint));
	if (table)
		tpd_cfg_warn(ld, tpd_node_key_line(t, i), tpd_node_key_col(t, i), hint,
		             is_table ? "unknown table [%s.%s]" : "unknown key %s.%s", table, key);
	else
		tpd_cfg_warn(ld, tpd_node_key_line(t, i), tpd_node_key_col(t, i), hint,
		             is_table ? "unknown table [%s]" : "unknown key %s", key);
}

/* --- typed reads ----------------------------------------------------------------------------------- */

static void *field_ptr(const tpd_cfg_field *f, tpd_config *cfg, tpd_cfg_loader *ld)
{
	return (char *)((f->flags & TPD_CFG_F_LOADER) ? (void *)ld : (void *)cfg) + f->off;
}

#define LIST_MAX 64

/* An array of strings (non-empty) or of integers in [min, max]; replaces what dst held. */
static tpd_err read_list(tpd_cfg_loader *ld, const tpd_cfg_field *f, const tpd_node *v, void *dst,
                         const char *fix)
{
	bool ints = f->kind == TPD_CFG_INTLIST;
	size_t n = tpd_node_len(v);
	char **sv = NULL;
	int *iv = NULL;

	if (tpd_node_type_of(v) != TPD_NODE_ARRAY)
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, tpd_node_line(v), tpd_node_col(v), fix,
		                   "%s.%s must be an array, not %s", f->table, f->key,
		                   tpd_cfg_type_name(tpd_node_type_of(v)));
	if (n > LIST_MAX)
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, tpd_node_line(v), tpd_node_col(v), fix,
		                   "%s.%s has %zu items, at most %d are allowed", f->table, f->key, n,
		                   LIST_MAX);
	if (ints)
		iv = xcalloc(n ? n : 1, sizeof(int));
	else
		sv = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const tpd_node *it = tpd_node_at(v, i);
		tpd_node_type t = tpd_node_type_of(it);
		int line = tpd_node_line(it), col = tpd_node_col(it);
		tpd_err rc = TPD_ERR_OK;

		if (ints && t != TPD_NODE_INT)
			rc = tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                 "%s.%s[%zu] must be an integer, not %s", f->table, f->key, i,
			                 tpd_cfg_type_name(t));
		else if (ints && (tpd_node_int(it) < f->min || tpd_node_int(it) > f->max))
			rc = tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                 "%s.%s[%zu] is %lld, out of range: it must be between %lld and %lld",
			                 f->table, f->key, i, (long long)tpd_node_int(it), (long long)f->min,
			                 (long long)f->max);
		else if (!ints && (t != TPD_NODE_STRING || tpd_str_empty(tpd_node_str(it))))
			rc = tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                 "%s.%s[%zu] must be a non-empty string, not %s", f->table, f->key, i,
			                 t == TPD_NODE_STRING ? "an empty one" : tpd_cfg_type_name(t));
		if (rc) {
			for (size_t k = 0; sv && k < i; k++)
				free(sv[k]);
			free(sv);
			free(iv);
			return rc;
		}
		if (ints)
			iv[i] = (int)tpd_node_int(it);
		else
			sv[i] = xstrdup(tpd_node_str(it));
	}
	if (ints) {
		tpd_cfg_intlist *l = dst;

		free(l->v);
		l->v = iv;
		l->n = n;
	} else {
		tpd_cfg_strlist *l = dst;

		tpd_cfg_strlist_clear(l);
		l->v = sv;
		l->n = n;
	}
	return TPD_ERR_OK;
}

static tpd_err read_field(tpd_cfg_loader *ld, const tpd_cfg_field *f, const tpd_node *v, tpd_config *cfg)
{
	void *dst = field_ptr(f, cfg, ld);
	tpd_node_type t = tpd_node_type_of(v);
	int line = tpd_node_line(v), col = tpd_node_col(v);
	char fix[256];

	snprintf(fix, sizeof(fix), "example: %s", f->example);
	switch (f->kind) {
	case TPD_CFG_STR:
		if (t != TPD_NODE_STRING)
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                   "%s.%s must be a string, not %s", f->table, f->key,
			                   tpd_cfg_type_name(t));
		free(*(char **)dst);
		*(char **)dst = xstrdup(tpd_node_str(v));
		return TPD_ERR_OK;
	case TPD_CFG_BOOL:
		if (t != TPD_NODE_BOOL)
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
			                   t == TPD_NODE_STRING ? "write true or false "
			                                          "without quotes"
			                                        : fix,
			                   "%s.%s must be a boolean, not %s", f->table, f->key,
			                   tpd_cfg_type_name(t));
		*(bool *)dst = tpd_node_bool(v);
		return TPD_ERR_OK;
	case TPD_CFG_INT: {
		int64_t i;

		if (t != TPD_NODE_INT)
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
			                   t == TPD_NODE_STRING ? "write the number without quotes" : fix,
			                   "%s.%s must be an integer, not %s", f->table, f->key,
			                   tpd_cfg_type_name(t));
		i = tpd_node_int(v);
		if (i < f->min || i > f->max)
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                   "%s.%s is %lld, out of range: it must be between %lld and %lld",
			                   f->table, f->key, (long long)i, (long long)f->min,
			                   (long long)f->max);
		*(int *)dst = (int)i;
		return TPD_ERR_OK;
	}
	case TPD_CFG_DUR: {
		int64_t ms;

		if (t == TPD_NODE_STRING) {
			if (!tpd_parse_duration_ms(tpd_node_str(v), &ms))
				return tpd_cfg_err(
				    ld, TPD_ERR_CONFIG, line, col,
				    "use a Go duration such as \"90s\", \"1m30s\", \"500ms\" or \"2h\"",
				    "%s.%s: invalid duration \"%.64s\"", f->table, f->key, tpd_node_str(v));
		} else if (t == TPD_NODE_INT) {
			/* go-toml v1 decodes an integer into a time.Duration as nanoseconds; do the same
			 * (rounding up to whole milliseconds) and warn about surprisingly short values. */
			int64_t ns = tpd_node_int(v);

			if (ns < 0)
				return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				                   "%s.%s must not be negative", f->table, f->key);
			ms = ns / 1000000 + (ns % 1000000 ? 1 : 0);
			if (ns > 0 && ns < 1000000000)
				tpd_cfg_warn(ld, line, col, "write a string with a unit, e.g. \"60s\"",
				             "%s.%s = %lld is read as %lld nanoseconds, as upstream does",
				             f->table, f->key, (long long)ns, (long long)ns);
		} else {
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                   "%s.%s must be a duration string, not %s", f->table, f->key,
			                   tpd_cfg_type_name(t));
		}
		if (ms < f->min || ms > f->max) {
			if (f->min > 0 && ms < f->min)
				return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				                   "%s.%s must be greater than zero", f->table, f->key);
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                   "%s.%s is too long (at most 366 days)", f->table, f->key);
		}
		*(int64_t *)dst = ms;
		return TPD_ERR_OK;
	}
	case TPD_CFG_STRLIST:
	case TPD_CFG_INTLIST:
		return read_list(ld, f, v, dst, fix);
	}
	return TPD_ERR_INTERNAL;
}

static const tpd_cfg_field *find_field(const char *table, const char *key)
{
	for (size_t i = 0; i < tpd_cfg_nfields; i++)
		if (!strcmp(tpd_cfg_fields[i].table, table) && !strcmp(tpd_cfg_fields[i].key, key))
			return &tpd_cfg_fields[i];
	return NULL;
}

/* Reads [pagerduty.RequestAnnotations] (any accepted spelling). */
static tpd_err read_annotations(tpd_cfg_loader *ld, const tpd_node *pd, size_t i)
{
	const tpd_node *t = tpd_node_at(pd, i);
	const char *name = tpd_node_key_at(pd, i);
	char fix[160];

	if (tpd_node_type_of(t) == TPD_NODE_NULL)
		return TPD_ERR_OK;
	if (tpd_node_type_of(t) != TPD_NODE_TABLE)
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, tpd_node_line(t), tpd_node_col(t),
		    "write [pagerduty.RequestAnnotations] with notify_service = \"...\" and services = "
		    "\"...\"",
		    "pagerduty.%s must be a table, not %s", name, tpd_cfg_type_name(tpd_node_type_of(t)));
	if (ld->ann_table)
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, tpd_node_key_line(pd, i), tpd_node_key_col(pd, i),
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
			tpd_cfg_warn(ld, tpd_node_key_line(t, k), tpd_node_key_col(t, k),
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
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, tpd_node_line(v), tpd_node_col(v), fix,
			                   "pagerduty.%s.%s must be a string, not %s", name, key,
			                   tpd_cfg_type_name(tpd_node_type_of(v)));
		}
		*dst = xstrdup(tpd_node_str(v));
	}
	return TPD_ERR_OK;
}

static bool is_ann_name(const char *key)
{
	for (size_t i = 0; i < tpd_cfg_nann; i++)
		if (!strcmp(key, tpd_cfg_ann_names[i]))
			return true;
	return false;
}

static tpd_err walk(tpd_cfg_loader *ld, tpd_config *cfg)
{
	const tpd_node *root = ld->root;
	tpd_err rc;

	for (size_t i = 0; i < tpd_node_len(root); i++) {
		const char *tname = tpd_node_key_at(root, i);
		const tpd_node *t = tpd_node_at(root, i);
		bool known = false;

		for (size_t k = 0; k < tpd_cfg_ntables; k++)
			known = known || !strcmp(tname, tpd_cfg_tables[k].name);
		if (!known) {
			warn_unknown(ld, NULL, root, i);
			continue;
		}
		if (tpd_node_type_of(t) == TPD_NODE_NULL)
			continue;
		if (tpd_node_type_of(t) != TPD_NODE_TABLE)
			return tpd_cfg_err(
			    ld, TPD_ERR_CONFIG, tpd_node_line(t), tpd_node_col(t),
			    "write it as a section: a line [name] followed by key = value lines",
			    "%s must be a table, not %s", tname, tpd_cfg_type_name(tpd_node_type_of(t)));
		for (size_t k = 0; k < tpd_node_len(t); k++) {
			const char *key = tpd_node_key_at(t, k);
			const tpd_node *v = tpd_node_at(t, k);
			const tpd_cfg_field *f = find_field(tname, key);

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

/* --- entry points ---------------------------------------------------------------------------------- */

static bool is_yaml_path(const char *path)
{
	size_t n = strlen(path);

	return (n >= 5 && !strcasecmp(path + n - 5, ".yaml")) ||
	       (n >= 4 && !strcasecmp(path + n - 4, ".yml"));
}

tpd_err tpd_config_load_mem(const char *name, const char *text, size_t len, bool yaml, tpd_config **out,
                            tpd_config_warn_cb warn, void *ud, char *err)
{
	tpd_cfg_loader ld;
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
	cfg = tpd_config_defaults(ld.name);
	if ((rc = walk(&ld, cfg)))
		goto out;
	if ((rc = tpd_cfg_validate(&ld, cfg)))
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
