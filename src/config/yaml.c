/* yaml.c - the YAML front end (see tpd/yaml.h): walks libyaml's events and builds the same
 * configuration tree as the TOML reader, with the same limits and error format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cfgtree_impl.h"
#include "tpd/util.h"
#include "tpd/yaml.h"

static bool yaml_digit(int c)
{
	return c >= '0' && c <= '9';
}

typedef struct {
	tpd_node *node; /* table or array being filled */
	char *key;      /* table: the pending key, or NULL when the next scalar is a key */
	int key_line, key_col;
} yframe;

static bool yaml_plain_int(const char *s, size_t n, int64_t *out)
{
	size_t k = 0;
	bool neg = false;
	uint64_t acc = 0, lim;

	if (k < n && (s[k] == '+' || s[k] == '-'))
		neg = s[k++] == '-';
	if (k == n)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; k < n; k++) {
		if (!yaml_digit((unsigned char)s[k]))
			return false;
		if (acc > (lim - (uint64_t)(s[k] - '0')) / 10)
			return false; /* too large: kept as a string */
		acc = acc * 10 + (uint64_t)(s[k] - '0');
	}
	*out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return true;
}

static bool yaml_is(const char *s, size_t n, const char *a, const char *b, const char *c)
{
	return (strlen(a) == n && !memcmp(s, a, n)) || (strlen(b) == n && !memcmp(s, b, n)) ||
	       (strlen(c) == n && !memcmp(s, c, n));
}

/* Builds a scalar node from a libyaml scalar event. */
static tpd_node *yaml_scalar(const yaml_event_t *ev, int line, int col, int depth, bool force_str)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	tpd_node *v;
	int64_t iv;

	if (!force_str && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (n == 0 || yaml_is(s, n, "~", "null", "Null") || yaml_is(s, n, "NULL", "NULL", "NULL"))
			return cfg_node_new(TPD_NODE_NULL, line, col, depth);
		if (yaml_is(s, n, "true", "True", "TRUE") || yaml_is(s, n, "false", "False", "FALSE")) {
			v = cfg_node_new(TPD_NODE_BOOL, line, col, depth);
			v->b = s[0] == 't' || s[0] == 'T';
			return v;
		}
		if (yaml_plain_int(s, n, &iv)) {
			v = cfg_node_new(TPD_NODE_INT, line, col, depth);
			v->i = iv;
			return v;
		}
	}
	v = cfg_node_new(TPD_NODE_STRING, line, col, depth);
	v->s = xstrndup(s, n);
	return v;
}

tpd_err tpd_yaml_parse(const char *name, const char *text, size_t len, tpd_node **out, char *err)
{
	parser p;
	yaml_parser_t yp;
	yaml_event_t ev;
	yframe stack[TPD_NODE_MAX_DEPTH + 1];
	int sp = 0; /* frames in use */
	int docs = 0;
	bool done = false, have_ev = false;
	tpd_node *root = NULL;

	*out = NULL;
	cfg_parser_init(&p, name, text, len, err);
	if (!cfg_check_bytes(&p))
		return TPD_ERR_PARSE;
	if (!yaml_parser_initialize(&yp))
		return tpd_seterr(err, TPD_ERR_NOMEM, "%s: cannot initialise the YAML parser", p.name);
	yaml_parser_set_input_string(&yp, (const unsigned char *)(p.n ? p.s : ""), p.n);
	while (!done) {
		int line, col;
		tpd_node *node = NULL;
		const char *anchor = NULL, *tag = NULL;
		bool force_str = false;

		if (!yaml_parser_parse(&yp, &ev)) {
			const char *problem = yp.problem ? yp.problem : "invalid YAML";

			if (yp.error == YAML_READER_ERROR) {
				cfg_position(&p, yp.problem_offset, &line, &col);
			} else {
				line = (int)yp.problem_mark.line + 1;
				col = (int)yp.problem_mark.column + 1;
			}
			if (yp.context)
				cfg_fail_lc(&p, line, col,
				            "check the indentation, and quote values that contain ': ' "
				            "or start with a special character",
				            "YAML syntax error: %s %s", problem, yp.context);
			else
				cfg_fail_lc(&p, line, col,
				            "check the indentation, and quote values that contain ': ' "
				            "or start with a special character",
				            "YAML syntax error: %s", problem);
			goto fail;
		}
		have_ev = true;
		line = (int)ev.start_mark.line + 1;
		col = (int)ev.start_mark.column + 1;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
		case YAML_NO_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				cfg_fail_lc(&p, line, col,
				            "keep a single document: remove the second '---' and what "
				            "follows, or merge them",
				            "several YAML documents in one file");
				goto fail;
			}
			break;
		case YAML_ALIAS_EVENT:
			cfg_fail_lc(&p, line, col, "write the value out in full",
			            "YAML aliases (*name) are not "
			            "supported");
			goto fail;
		case YAML_SCALAR_EVENT:
			anchor = (const char *)ev.data.scalar.anchor;
			tag = (const char *)ev.data.scalar.tag;
			if (tag && !strcmp(tag, YAML_STR_TAG)) {
				force_str = true;
				tag = NULL;
			}
			goto node;
		case YAML_SEQUENCE_START_EVENT:
			anchor = (const char *)ev.data.sequence_start.anchor;
			tag = (const char *)ev.data.sequence_start.tag;
			if (tag && !strcmp(tag, YAML_SEQ_TAG))
				tag = NULL;
			goto node;
		case YAML_MAPPING_START_EVENT:
			anchor = (const char *)ev.data.mapping_start.anchor;
			tag = (const char *)ev.data.mapping_start.tag;
			if (tag && !strcmp(tag, YAML_MAP_TAG))
				tag = NULL;
		node:
			if (anchor) {
				cfg_fail_lc(&p, line, col, "remove the &anchor and write values out in full",
				            "YAML anchors are not supported");
				goto fail;
			}
			if (tag) {
				cfg_fail_lc(&p, line, col,
				            "remove the tag; quote a value to make it a string",
				            "YAML tags are not supported");
				goto fail;
			}
			if (ev.type == YAML_SCALAR_EVENT &&
			    memchr(ev.data.scalar.value, 0, ev.data.scalar.length)) {
				cfg_fail_lc(&p, line, col, "remove it", "NUL character in a YAML value");
				goto fail;
			}
			{
				yframe *top = sp ? &stack[sp - 1] : NULL;
				int depth = top ? top->node->depth + 1 : 0;

				/* a scalar in key position of a mapping is the key itself */
				if (top && top->node->type == TPD_NODE_TABLE && !top->key) {
					long dup;

					if (ev.type != YAML_SCALAR_EVENT) {
						cfg_fail_lc(&p, line, col, "use plain text keys",
						            "YAML mapping keys must be scalars");
						goto fail;
					}
					top->key = xstrndup((const char *)ev.data.scalar.value,
					                    ev.data.scalar.length);
					top->key_line = line;
					top->key_col = col;
					dup = tpd_node_index(top->node, top->key);
					if (dup >= 0) {
						cfg_fail_lc(
						    &p, line, col, "remove one of the two",
						    "duplicate key %s (first set at line %d, column %d)",
						    top->key, top->node->keys[dup].line,
						    top->node->keys[dup].col);
						goto fail;
					}
					if (top->node->n >= TPD_NODE_MAX_ENTRIES) {
						cfg_fail_lc(&p, line, col, "split the data",
						            "mapping has too many keys (at most %d)",
						            TPD_NODE_MAX_ENTRIES);
						goto fail;
					}
					break;
				}
				if (depth > TPD_NODE_MAX_DEPTH) {
					cfg_fail_lc(&p, line, col, "flatten the structure",
					            "nesting too deep (at most %d levels)",
					            TPD_NODE_MAX_DEPTH);
					goto fail;
				}
				if (ev.type == YAML_SCALAR_EVENT)
					node = yaml_scalar(&ev, line, col, depth, force_str);
				else
					node =
					    cfg_node_new(ev.type == YAML_MAPPING_START_EVENT ? TPD_NODE_TABLE
					                                                     : TPD_NODE_ARRAY,
					                 line, col, depth);
				if (!top) {
					if (node->type == TPD_NODE_NULL) {
						/* an empty document */
						tpd_node_free(node);
						node = cfg_node_new(TPD_NODE_TABLE, 1, 1, 0);
						root = node;
						break;
					}
					if (node->type != TPD_NODE_TABLE || root) {
						tpd_node_free(node);
						cfg_fail_lc(&p, line, col,
						            "write the settings as key: value pairs, e.g. "
						            "'teleport:' then indented 'addr: ...'",
						            "the top level of the file must be a mapping");
						goto fail;
					}
					root = node;
				} else if (top->node->type == TPD_NODE_TABLE) {
					cfg_table_put(top->node, top->key, top->key_line, top->key_col, node);
					top->key = NULL;
				} else {
					if (top->node->n >= TPD_NODE_MAX_ITEMS) {
						tpd_node_free(node);
						cfg_fail_lc(&p, line, col, "split the data",
						            "sequence has too many elements (at most %d)",
						            TPD_NODE_MAX_ITEMS);
						goto fail;
					}
					cfg_array_push(top->node, node);
				}
				if (ev.type != YAML_SCALAR_EVENT) {
					stack[sp].node = node;
					stack[sp].key = NULL;
					sp++;
				}
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (sp > 0)
				sp--;
			break;
		}
		yaml_event_delete(&ev);
		have_ev = false;
	}
	yaml_parser_delete(&yp);
	if (!root)
		root = cfg_node_new(TPD_NODE_TABLE, 1, 1, 0);
	*out = root;
	return TPD_ERR_OK;
fail:
	if (have_ev)
		yaml_event_delete(&ev);
	for (int k = 0; k < sp; k++)
		free(stack[k].key);
	yaml_parser_delete(&yp);
	tpd_node_free(root);
	return TPD_ERR_PARSE;
}
