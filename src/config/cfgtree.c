/* cfgtree.c - the configuration tree (see tpd/cfgtree.h) and the position and error helpers its
 * two readers share (cfgtree_impl.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgtree_impl.h"
#include "tpd/util.h"

/* --- tree --------------------------------------------------------------------------------------- */

tpd_node *cfg_node_new(tpd_node_type type, int line, int col, int depth)
{
	tpd_node *v = tpd_new(tpd_node);

	v->type = type;
	v->line = line;
	v->col = col;
	v->depth = depth;
	return v;
}

void tpd_node_free(tpd_node *v)
{
	if (!v)
		return;
	for (size_t k = 0; k < v->n; k++) {
		tpd_node_free(v->items[k]);
		if (v->keys)
			free(v->keys[k].key);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
	free(v);
}

static void grow(tpd_node *v)
{
	if (v->n < v->cap)
		return;
	v->cap = v->cap ? v->cap * 2 : 4;
	v->items = xreallocarray(v->items, v->cap, sizeof(*v->items));
	if (v->type == TPD_NODE_TABLE)
		v->keys = xreallocarray(v->keys, v->cap, sizeof(*v->keys));
}

void cfg_table_put(tpd_node *t, char *key, int line, int col, tpd_node *child)
{
	grow(t);
	t->items[t->n] = child;
	t->keys[t->n].key = key;
	t->keys[t->n].line = line;
	t->keys[t->n].col = col;
	t->n++;
}

void cfg_array_push(tpd_node *a, tpd_node *child)
{
	grow(a);
	a->items[a->n++] = child;
}

tpd_node_type tpd_node_type_of(const tpd_node *v)
{
	return v ? v->type : TPD_NODE_NULL;
}

const char *tpd_node_type_name(tpd_node_type t)
{
	switch (t) {
	case TPD_NODE_TABLE:
		return "table";
	case TPD_NODE_ARRAY:
		return "array";
	case TPD_NODE_STRING:
		return "string";
	case TPD_NODE_INT:
		return "integer";
	case TPD_NODE_FLOAT:
		return "float";
	case TPD_NODE_BOOL:
		return "boolean";
	case TPD_NODE_NULL:
		return "null";
	}
	return "unknown";
}

int tpd_node_line(const tpd_node *v)
{
	return v ? v->line : 0;
}

int tpd_node_col(const tpd_node *v)
{
	return v ? v->col : 0;
}

const char *tpd_node_str(const tpd_node *v)
{
	return v && v->type == TPD_NODE_STRING ? v->s : "";
}

int64_t tpd_node_int(const tpd_node *v)
{
	return v && v->type == TPD_NODE_INT ? v->i : 0;
}

double tpd_node_float(const tpd_node *v)
{
	return v && v->type == TPD_NODE_FLOAT ? v->f : 0.0;
}

bool tpd_node_bool(const tpd_node *v)
{
	return v && v->type == TPD_NODE_BOOL ? v->b : false;
}

size_t tpd_node_len(const tpd_node *v)
{
	return v && (v->type == TPD_NODE_TABLE || v->type == TPD_NODE_ARRAY) ? v->n : 0;
}

tpd_node *tpd_node_at(const tpd_node *v, size_t i)
{
	return i < tpd_node_len(v) ? v->items[i] : NULL;
}

const char *tpd_node_key_at(const tpd_node *v, size_t i)
{
	return v && v->type == TPD_NODE_TABLE && i < v->n ? v->keys[i].key : NULL;
}

int tpd_node_key_line(const tpd_node *v, size_t i)
{
	return v && v->type == TPD_NODE_TABLE && i < v->n ? v->keys[i].line : 0;
}

int tpd_node_key_col(const tpd_node *v, size_t i)
{
	return v && v->type == TPD_NODE_TABLE && i < v->n ? v->keys[i].col : 0;
}

long tpd_node_index(const tpd_node *v, const char *key)
{
	if (!v || v->type != TPD_NODE_TABLE || !key)
		return -1;
	for (size_t k = 0; k < v->n; k++)
		if (!strcmp(v->keys[k].key, key))
			return (long)k;
	return -1;
}

tpd_node *tpd_node_get(const tpd_node *v, const char *key)
{
	long k = tpd_node_index(v, key);

	return k < 0 ? NULL : v->items[k];
}

/* --- positions and errors (shared by both front ends) -------------------------------------------- */

void cfg_parser_init(parser *p, const char *name, const char *text, size_t len, char *err)
{
	memset(p, 0, sizeof(*p));
	p->name = name ? name : "<config>";
	p->s = text;
	p->n = text ? len : 0;
	p->err = err;
	p->c_line = 1;
	p->c_col = 1;
}

void cfg_position(parser *p, size_t off, int *line, int *col)
{
	if (off > p->n)
		off = p->n;
	if (off < p->c_off) {
		p->c_off = 0;
		p->c_line = 1;
		p->c_col = 1;
	}
	for (; p->c_off < off; p->c_off++) {
		unsigned char c = (unsigned char)p->s[p->c_off];

		if (c == '\n') {
			if (p->c_line < 0x7fffffff)
				p->c_line++;
			p->c_col = 1;
		} else if ((c & 0xc0) != 0x80 && p->c_col < 0x7fffffff) {
			p->c_col++;
		}
	}
	*line = p->c_line;
	*col = p->c_col;
}

/* Records the first error: "<name>:<line>:<col>: <what> (<fix>)". Always returns false. */
static bool failv(parser *p, int line, int col, const char *fix, const char *fmt, va_list ap)
{
	char what[TPD_ERRLEN];

	if (p->failed)
		return false;
	p->failed = true;
	vsnprintf(what, sizeof(what), fmt, ap);
	tpd_seterr(p->err, TPD_ERR_PARSE, "%s:%d:%d: %s (%s)", p->name, line, col, what, fix);
	return false;
}

bool cfg_fail_at(parser *p, size_t off, const char *fix, const char *fmt, ...)
{
	va_list ap;
	int line, col;
	bool r;

	cfg_position(p, off, &line, &col);
	va_start(ap, fmt);
	r = failv(p, line, col, fix, fmt, ap);
	va_end(ap);
	return r;
}

bool cfg_fail_lc(parser *p, int line, int col, const char *fix, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = failv(p, line, col, fix, fmt, ap);
	va_end(ap);
	return r;
}

size_t cfg_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool cfg_check_bytes(parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;

	for (size_t k = 0; k < p->n;) {
		size_t l;

		if (s[k] == 0)
			return cfg_fail_at(p, k,
			                   "the file looks binary; save the configuration as UTF-8 text",
			                   "NUL byte in the input");
		l = cfg_utf8_len(s + k, p->n - k);
		if (!l)
			return cfg_fail_at(p, k, "save the file as UTF-8", "invalid UTF-8 byte sequence");
		k += l;
	}
	return true;
}
