/* fuzz_config.h - the body shared by fuzz_toml and fuzz_yaml: parse the raw tree, walk it, then
 * run the whole config loader (defaults, validation, warnings) over the same bytes.
 *
 * Invariants checked: a tree's strings are NUL-free and their accessors agree with the node type;
 * positions are positive; failures leave a one-line error; on success the API key is never in a
 * warning (warnings are delivered with the key masked) and every warning is one line. */
#ifndef TPD_FUZZ_CONFIG_H
#define TPD_FUZZ_CONFIG_H

#include <stdbool.h>

#include "fuzz_common.h"
#include "tpd/config.h"
#include "tpd/toml.h"
#include "tpd/yaml.h"

typedef struct {
	char *all; /* every warning, '\x1e'-separated */
	size_t len;
	int count;
} fuzz_warnings;

static void fuzz_warn_cb(void *ud, const char *msg)
{
	fuzz_warnings *w = ud;
	size_t n = strlen(msg);
	char *p;

	/* Known bug "key echo" (README): key names are echoed raw, so a quoted key with "\n" breaks the line.
	 */
	if (strchr(msg, '\n') && !fuzz_avoid_known())
		fuzz_fail("config warning spans several lines: %s", msg);
	p = realloc(w->all, w->len + n + 2);
	if (!p)
		abort();
	w->all = p;
	memcpy(w->all + w->len, msg, n);
	w->len += n;
	w->all[w->len++] = '\x1e';
	w->all[w->len] = '\0';
	w->count++;
}

static void fuzz_walk_toml(const tpd_node *v, int depth)
{
	size_t n, i;

	if (!v)
		fuzz_fail("NULL node in a parsed tree");
	if (depth > TPD_NODE_MAX_DEPTH + 2)
		fuzz_fail("tree deeper than TPD_NODE_MAX_DEPTH (%d)", depth);
	if (tpd_node_line(v) < 1 || tpd_node_col(v) < 1)
		fuzz_fail("node without a position (%d:%d)", tpd_node_line(v), tpd_node_col(v));
	(void)tpd_node_type_name(tpd_node_type_of(v));
	switch (tpd_node_type_of(v)) {
	case TPD_NODE_TABLE:
		n = tpd_node_len(v);
		if (n > TPD_NODE_MAX_ENTRIES)
			fuzz_fail("table with %zu entries", n);
		for (i = 0; i < n; i++) {
			const char *k = tpd_node_key_at(v, i);
			if (!k)
				fuzz_fail("table entry %zu has no key", i);
			if (tpd_node_get(v, k) == NULL || tpd_node_index(v, k) < 0)
				fuzz_fail("key %zu not found by tpd_node_get/index", i);
			(void)tpd_node_key_line(v, i);
			(void)tpd_node_key_col(v, i);
			fuzz_walk_toml(tpd_node_at(v, i), depth + 1);
		}
		if (tpd_node_at(v, n) != NULL || tpd_node_key_at(v, n) != NULL)
			fuzz_fail("entry past the end of a table");
		break;
	case TPD_NODE_ARRAY:
		n = tpd_node_len(v);
		if (n > TPD_NODE_MAX_ITEMS)
			fuzz_fail("array with %zu items", n);
		for (i = 0; i < n; i++)
			fuzz_walk_toml(tpd_node_at(v, i), depth + 1);
		if (tpd_node_at(v, n) != NULL)
			fuzz_fail("element past the end of an array");
		break;
	case TPD_NODE_STRING:
		if (!tpd_node_str(v))
			fuzz_fail("string node with a NULL string");
		(void)strlen(tpd_node_str(v));
		break;
	case TPD_NODE_INT:
		(void)tpd_node_int(v);
		break;
	case TPD_NODE_FLOAT:
		(void)tpd_node_float(v);
		break;
	case TPD_NODE_BOOL:
		(void)tpd_node_bool(v);
		break;
	case TPD_NODE_NULL:
		break;
	default:
		fuzz_fail("node of unknown type %d", (int)tpd_node_type_of(v));
	}
	/* Accessors of the wrong type must answer neutrally. */
	if (tpd_node_type_of(v) != TPD_NODE_STRING && tpd_node_str(v) == NULL)
		fuzz_fail("tpd_node_str on a non-string returned NULL (documented: \"\")");
}

/* Known bug "key echo" (README): the loader copies key names and values (e.g. a bad duration)
 * into messages verbatim, line breaks included. */
static void fuzz_check_config_err(const char *what, char *err)
{
	if (fuzz_avoid_known() && memchr(err, '\0', TPD_ERRLEN))
		for (char *p = err; *p; p++)
			if (*p == '\n')
				*p = ' ';
	fuzz_check_err(what, err);
}

static void fuzz_config_run(const uint8_t *data, size_t size, bool yaml)
{
	char err[TPD_ERRLEN];
	char *text = fuzz_cstr(data, size);
	tpd_node *root = NULL;
	tpd_config *cfg = NULL;
	fuzz_warnings w = {0};
	tpd_err rc;

	/* 1. The raw parser. */
	fuzz_err_init(err);
	rc = yaml ? tpd_yaml_parse("fuzz", text, size, &root, err)
	          : tpd_toml_parse("fuzz", text, size, &root, err);
	if (rc == TPD_ERR_OK) {
		if (!root || tpd_node_type_of(root) != TPD_NODE_TABLE)
			fuzz_fail("parse succeeded without a root table");
		fuzz_walk_toml(root, 0);
	} else {
		if (root)
			fuzz_fail("parse failed but returned a tree");
		fuzz_check_err(yaml ? "tpd_yaml_parse" : "tpd_toml_parse", err);
	}
	tpd_node_free(root);

	/* 2. The whole loader over the same bytes (embedded NULs are refused by load_mem). */
	fuzz_err_init(err);
	rc = tpd_config_load_mem(yaml ? "fuzz.yaml" : "fuzz.toml", text, size, yaml, &cfg, fuzz_warn_cb, &w,
	                         err);
	if (rc == TPD_ERR_OK) {
		if (!cfg)
			fuzz_fail("config load succeeded without a config");
		const char *key = cfg->pagerduty.api_key;
		/* Keys with brackets can be re-created by the mask itself ("[REDACTED]"): skip those. */
		if (key && strlen(key) >= 4 && !strpbrk(key, "[]\x1e") && !strstr("[REDACTED]", key) &&
		    w.all && strstr(w.all, key))
			fuzz_fail("the API key appears in a config warning: %s", w.all);
	} else {
		if (cfg)
			fuzz_fail("config load failed but returned a config");
		fuzz_check_config_err("tpd_config_load_mem", err);
	}
	tpd_config_free(cfg);
	cfg = NULL;
	free(w.all);
	memset(&w, 0, sizeof(w));

	/* 3. The C-string entry point (stops at the first NUL). */
	fuzz_err_init(err);
	rc =
	    tpd_config_load_string(yaml ? "fuzz.yaml" : "fuzz.toml", text, yaml, &cfg, fuzz_warn_cb, &w, err);
	if (rc != TPD_ERR_OK)
		fuzz_check_config_err("tpd_config_load_string", err);
	tpd_config_free(cfg);
	free(w.all);
	free(text);
}

#endif
