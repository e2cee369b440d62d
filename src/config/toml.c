/* toml.c - strict TOML reader (see tpd/toml.h): values, arrays, inline tables, [headers] and
 * [[arrays of tables]], and TOML's "defined once" rules (the T_* flags in cfgtree_impl.h).
 *
 * A hand-written recursive-descent parser over a (pointer, length) pair; the lexical layer
 * (strings, keys, numbers, whitespace) is toml_lex.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml_lex.h"
#include "tpd/toml.h"
#include "tpd/util.h"

static bool parse_value(parser *p, int depth, tpd_node **out);
static bool insert_kv(parser *p, tpd_node *t, keypath *k, tpd_node *val);

static void freeze(tpd_node *v)
{
	if (v->type != TPD_NODE_TABLE && v->type != TPD_NODE_ARRAY)
		return;
	v->flags |= T_FROZEN;
	for (size_t k = 0; k < v->n; k++)
		freeze(v->items[k]);
}

static bool check_depth(parser *p, size_t off, int depth)
{
	if (depth > TPD_NODE_MAX_DEPTH)
		return cfg_fail_at(p, off, "flatten the structure", "nesting too deep (at most %d levels)",
		                   TPD_NODE_MAX_DEPTH);
	return true;
}

static bool parse_array(parser *p, int depth, tpd_node **out)
{
	size_t start = p->i;
	int line, col;
	tpd_node *a;

	if (!check_depth(p, start, depth))
		return false;
	cfg_position(p, start, &line, &col);
	a = cfg_node_new(TPD_NODE_ARRAY, line, col, depth);
	p->i++;
	for (;;) {
		tpd_node *item = NULL;

		if (!toml_skip_ws_nl(p))
			goto fail;
		if (peek(p, 0) == ']') {
			p->i++;
			break;
		}
		if (peek(p, 0) < 0) {
			cfg_fail_at(p, start, "close the array with ]", "unterminated array");
			goto fail;
		}
		if (peek(p, 0) == ',') {
			cfg_fail_at(p, p->i, "remove the extra comma",
			            "missing value before ',' in an array");
			goto fail;
		}
		if (a->n >= TPD_NODE_MAX_ITEMS) {
			cfg_fail_at(p, p->i, "split the data", "array has too many elements (at most %d)",
			            TPD_NODE_MAX_ITEMS);
			goto fail;
		}
		if (!parse_value(p, depth + 1, &item))
			goto fail;
		cfg_array_push(a, item);
		if (!toml_skip_ws_nl(p))
			goto fail;
		if (peek(p, 0) == ',') {
			p->i++;
			continue;
		}
		if (peek(p, 0) == ']') {
			p->i++;
			break;
		}
		if (peek(p, 0) < 0)
			cfg_fail_at(p, start, "close the array with ]", "unterminated array");
		else
			cfg_fail_at(p, p->i, "separate array elements with commas and close the array with ]",
			            "expected ',' or ']' in an array");
		goto fail;
	}
	freeze(a);
	*out = a;
	return true;
fail:
	tpd_node_free(a);
	return false;
}

static bool parse_inline_table(parser *p, int depth, tpd_node **out)
{
	size_t start = p->i;
	int line, col;
	tpd_node *t;
	bool first = true;

	if (!check_depth(p, start, depth))
		return false;
	cfg_position(p, start, &line, &col);
	t = cfg_node_new(TPD_NODE_TABLE, line, col, depth);
	t->flags = T_EXPLICIT;
	p->i++;
	toml_skip_ws(p);
	if (peek(p, 0) == '}') {
		p->i++;
		goto done;
	}
	for (;;) {
		keypath k;
		tpd_node *val = NULL;
		int c;

		toml_skip_ws(p);
		c = peek(p, 0);
		if (c == '\n' || c == '\r' || c < 0) {
			cfg_fail_at(p, p->i, "write an inline table on one line, or use a [table] section",
			            "%s inside an inline table", c < 0 ? "end of file" : "newline");
			goto fail;
		}
		if (c == '}' && !first) {
			cfg_fail_at(p, p->i, "remove the comma before }",
			            "trailing comma in an inline table");
			goto fail;
		}
		if (!toml_parse_key(p, &k)) {
			toml_keypath_free(&k);
			goto fail;
		}
		if (peek(p, 0) != '=') {
			cfg_fail_at(p, p->i, "write key = value", "expected '=' after a key");
			toml_keypath_free(&k);
			goto fail;
		}
		p->i++;
		toml_skip_ws(p);
		if (!parse_value(p, depth + (int)k.n, &val)) {
			toml_keypath_free(&k);
			goto fail;
		}
		if (!insert_kv(p, t, &k, val)) {
			toml_keypath_free(&k);
			goto fail;
		}
		first = false;
		toml_skip_ws(p);
		c = peek(p, 0);
		if (c == ',') {
			p->i++;
			continue;
		}
		if (c == '}') {
			p->i++;
			break;
		}
		if (c == '\n' || c == '\r' || c < 0)
			cfg_fail_at(p, p->i, "write an inline table on one line, or use a [table] section",
			            "%s inside an inline table", c < 0 ? "end of file" : "newline");
		else
			cfg_fail_at(p, p->i, "separate entries with commas and close the table with }",
			            "expected ',' or '}' in an inline table");
		goto fail;
	}
done:
	freeze(t);
	*out = t;
	return true;
fail:
	tpd_node_free(t);
	return false;
}

static bool parse_word(parser *p, const char *w, size_t wl)
{
	if (p->n - p->i < wl || memcmp(p->s + p->i, w, wl))
		return false;
	if (p->i + wl < p->n && is_bare((unsigned char)p->s[p->i + wl]))
		return false;
	return true;
}

static bool parse_value(parser *p, int depth, tpd_node **out)
{
	int c = peek(p, 0);
	int line, col;

	*out = NULL;
	if (!check_depth(p, p->i, depth))
		return false;
	cfg_position(p, p->i, &line, &col);
	if (c == '"' || c == '\'') {
		char *s;
		tpd_node *v;

		if (!toml_parse_string(p, true, &s))
			return false;
		v = cfg_node_new(TPD_NODE_STRING, line, col, depth);
		v->s = s;
		*out = v;
		return true;
	}
	if (c == '[')
		return parse_array(p, depth, out);
	if (c == '{')
		return parse_inline_table(p, depth, out);
	if (parse_word(p, "true", 4) || parse_word(p, "false", 5)) {
		tpd_node *v = cfg_node_new(TPD_NODE_BOOL, line, col, depth);

		v->b = c == 't';
		p->i += v->b ? 4 : 5;
		*out = v;
		return true;
	}
	if (c == '+' || c == '-' || is_digit(c) || parse_word(p, "inf", 3) || parse_word(p, "nan", 3))
		return toml_parse_number(p, depth, out);
	if (c < 0 || c == '\n' || c == '\r' || c == '#')
		return cfg_fail_at(p, p->i, "write a value after '=', e.g. key = \"text\"", "missing value");
	if (is_bare(c))
		return cfg_fail_at(p, p->i,
		                   "strings must be quoted: key = \"text\"; booleans are lower-case "
		                   "true/false",
		                   "invalid value");
	return cfg_fail_at(p, p->i, "write a \"string\", a number, true/false, [array] or {table}",
	                   "expected a value");
}

/* --- tables -------------------------------------------------------------------------------------- */

static const char *what_defined(const tpd_node *v)
{
	if (v->type == TPD_NODE_TABLE && (v->flags & T_FROZEN))
		return "an inline table";
	if (v->type == TPD_NODE_TABLE && (v->flags & T_DOTTED))
		return "a table defined by dotted keys";
	if (v->type == TPD_NODE_TABLE)
		return "a table";
	if (v->type == TPD_NODE_ARRAY)
		return "an array";
	return "a value";
}

/* Inserts key path k (dotted key) = val into table t; frees val on error. k's parts are taken. */
static bool insert_kv(parser *p, tpd_node *t, keypath *k, tpd_node *val)
{
	char name[256];

	for (size_t i = 0; i + 1 < k->n; i++) {
		long idx = tpd_node_index(t, k->part[i]);

		if (idx < 0) {
			int line, col;
			tpd_node *sub;

			if (t->n >= TPD_NODE_MAX_ENTRIES)
				goto too_many;
			cfg_position(p, k->off[i], &line, &col);
			sub = cfg_node_new(TPD_NODE_TABLE, line, col, t->depth + 1);
			sub->flags = T_DOTTED | (t->flags & T_FROZEN);
			cfg_table_put(t, k->part[i], line, col, sub);
			k->part[i] = NULL;
			t = sub;
			continue;
		}
		{
			tpd_node *e = t->items[idx];

			if (e->type == TPD_NODE_TABLE && (e->flags & T_DOTTED) && !(e->flags & T_FROZEN)) {
				t = e;
				continue;
			}
			toml_keypath_str(k, i, name, sizeof(name));
			cfg_fail_at(p, k->off[i],
			            "define each key once; add keys to a table in its own section",
			            "cannot add keys to %s: it is already %s (line %d, column %d)", name,
			            what_defined(e), e->line, e->col);
			goto fail;
		}
	}
	if (tpd_node_index(t, k->part[k->n - 1]) >= 0) {
		long idx = tpd_node_index(t, k->part[k->n - 1]);

		toml_keypath_str(k, k->n - 1, name, sizeof(name));
		cfg_fail_at(p, k->off[k->n - 1], "remove one of the two",
		            "duplicate key %s (first set at line %d, "
		            "column %d)",
		            name, t->keys[idx].line, t->keys[idx].col);
		goto fail;
	}
	if (t->n >= TPD_NODE_MAX_ENTRIES)
		goto too_many;
	{
		int line, col;

		cfg_position(p, k->off[k->n - 1], &line, &col);
		cfg_table_put(t, k->part[k->n - 1], line, col, val);
		k->part[k->n - 1] = NULL;
	}
	toml_keypath_free(k);
	return true;
too_many:
	cfg_fail_at(p, k->off[0], "split the data", "table has too many keys (at most %d)",
	            TPD_NODE_MAX_ENTRIES);
fail:
	tpd_node_free(val);
	toml_keypath_free(k);
	return false;
}

static bool parse_header(parser *p)
{
	size_t start = p->i;
	bool aot = peek(p, 1) == '[';
	keypath k;
	tpd_node *t = p->root;
	int line, col;
	char name[256];

	cfg_position(p, start, &line, &col);
	p->i += aot ? 2 : 1;
	toml_skip_ws(p);
	if (!toml_parse_key(p, &k))
		goto fail;
	toml_keypath_str(&k, k.n - 1, name, sizeof(name));
	if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']')) {
		cfg_fail_at(p, p->i, aot ? "close the header with ]]" : "close the header with ]",
		            "expected '%s' after the table name", aot ? "]]" : "]");
		goto fail;
	}
	p->i += aot ? 2 : 1;
	for (size_t i = 0; i + 1 < k.n; i++) {
		long idx = tpd_node_index(t, k.part[i]);
		tpd_node *e;

		if (idx < 0) {
			int kl, kc;
			tpd_node *sub;

			if (!check_depth(p, k.off[i], t->depth + 1))
				goto fail;
			if (t->n >= TPD_NODE_MAX_ENTRIES) {
				cfg_fail_at(p, start, "split the data",
				            "table has too many keys (at most %d)", TPD_NODE_MAX_ENTRIES);
				goto fail;
			}
			cfg_position(p, k.off[i], &kl, &kc);
			sub = cfg_node_new(TPD_NODE_TABLE, line, col, t->depth + 1);
			sub->flags = T_IMPLICIT;
			cfg_table_put(t, k.part[i], kl, kc, sub);
			k.part[i] = NULL;
			t = sub;
			continue;
		}
		e = t->items[idx];
		if (e->type == TPD_NODE_TABLE && !(e->flags & T_FROZEN)) {
			t = e;
		} else if (e->type == TPD_NODE_ARRAY && (e->flags & T_AOT) && e->n > 0) {
			t = e->items[e->n - 1];
		} else {
			char pre[256];

			toml_keypath_str(&k, i, pre, sizeof(pre));
			cfg_fail_at(p, k.off[i], "rename the table or the key",
			            "cannot define table [%s]: %s is already %s (line %d, column %d)", name,
			            pre, what_defined(e), e->line, e->col);
			goto fail;
		}
	}
	{
		const char *last = k.part[k.n - 1];
		long idx = tpd_node_index(t, last);
		tpd_node *e = idx >= 0 ? t->items[idx] : NULL;
		int kl, kc;

		cfg_position(p, k.off[k.n - 1], &kl, &kc);
		if (!check_depth(p, k.off[k.n - 1], t->depth + (aot ? 2 : 1)))
			goto fail;
		if (!e && t->n >= TPD_NODE_MAX_ENTRIES) {
			cfg_fail_at(p, start, "split the data", "table has too many keys (at most %d)",
			            TPD_NODE_MAX_ENTRIES);
			goto fail;
		}
		if (!aot) {
			if (!e) {
				e = cfg_node_new(TPD_NODE_TABLE, line, col, t->depth + 1);
				e->flags = T_EXPLICIT;
				cfg_table_put(t, k.part[k.n - 1], kl, kc, e);
				k.part[k.n - 1] = NULL;
			} else if (e->type == TPD_NODE_TABLE && e->flags == T_IMPLICIT) {
				e->flags = T_EXPLICIT;
				e->line = line;
				e->col = col;
			} else if (e->type == TPD_NODE_TABLE && (e->flags & T_EXPLICIT) &&
			           !(e->flags & T_FROZEN)) {
				cfg_fail_at(p, start, "merge the two sections into one",
				            "table [%s] is defined twice (first at line %d)", name, e->line);
				goto fail;
			} else {
				cfg_fail_at(p, start, "rename the table or remove the other definition",
				            "cannot define table [%s]: it is already %s (line %d, column %d)",
				            name, what_defined(e), e->line, e->col);
				goto fail;
			}
			p->cur = e;
		} else {
			tpd_node *nt;

			if (!e) {
				e = cfg_node_new(TPD_NODE_ARRAY, line, col, t->depth + 1);
				e->flags = T_AOT;
				cfg_table_put(t, k.part[k.n - 1], kl, kc, e);
				k.part[k.n - 1] = NULL;
			} else if (!(e->type == TPD_NODE_ARRAY && (e->flags & T_AOT))) {
				cfg_fail_at(p, start, "rename the table or remove the other definition",
				            "cannot append [[%s]]: it is already %s (line %d, column %d)",
				            name, what_defined(e), e->line, e->col);
				goto fail;
			}
			if (e->n >= TPD_NODE_MAX_ITEMS) {
				cfg_fail_at(p, start, "split the data",
				            "array has too many elements (at most %d)", TPD_NODE_MAX_ITEMS);
				goto fail;
			}
			nt = cfg_node_new(TPD_NODE_TABLE, line, col, e->depth + 1);
			nt->flags = T_EXPLICIT;
			cfg_array_push(e, nt);
			p->cur = nt;
		}
	}
	toml_keypath_free(&k);
	return toml_expect_eol(p, "the table header");
fail:
	toml_keypath_free(&k);
	return false;
}

static bool parse_keyval(parser *p)
{
	keypath k;
	tpd_node *val = NULL;

	if (!toml_parse_key(p, &k))
		goto fail;
	if (peek(p, 0) != '=') {
		if (peek(p, 0) < 0 || peek(p, 0) == '\n' || peek(p, 0) == '\r' || peek(p, 0) == '#')
			cfg_fail_at(p, p->i, "write key = value; table names go in [brackets]",
			            "expected '=' after the key");
		else
			cfg_fail_at(p, p->i,
			            "write key = value; quote keys with spaces or special characters",
			            "expected '=' after the key");
		goto fail;
	}
	p->i++;
	toml_skip_ws(p);
	if (!parse_value(p, p->cur->depth + (int)k.n, &val))
		goto fail;
	if (!insert_kv(p, p->cur, &k, val))
		return false;
	return toml_expect_eol(p, "the value");
fail:
	toml_keypath_free(&k);
	return false;
}

tpd_err tpd_toml_parse(const char *name, const char *text, size_t len, tpd_node **out, char *err)
{
	parser p;

	*out = NULL;
	cfg_parser_init(&p, name, text, len, err);
	if (!cfg_check_bytes(&p))
		return TPD_ERR_PARSE;
	p.root = cfg_node_new(TPD_NODE_TABLE, 1, 1, 0);
	p.root->flags = T_EXPLICIT;
	p.cur = p.root;
	if (p.n >= 3 && !memcmp(p.s, "\xef\xbb\xbf", 3))
		p.i = 3;
	while (p.i < p.n) {
		int c, nl;

		toml_skip_ws(&p);
		c = peek(&p, 0);
		if (c < 0)
			break;
		if (c == '#') {
			if (!toml_expect_eol(&p, "the comment"))
				goto fail;
			continue;
		}
		nl = toml_newline_len(&p);
		if (nl < 0)
			goto fail;
		if (nl > 0) {
			p.i += (size_t)nl;
			continue;
		}
		if (c == '[') {
			if (!parse_header(&p))
				goto fail;
		} else if (!parse_keyval(&p)) {
			goto fail;
		}
	}
	*out = p.root;
	return TPD_ERR_OK;
fail:
	tpd_node_free(p.root);
	return TPD_ERR_PARSE;
}
