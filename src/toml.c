/* toml.c - strict TOML reader and libyaml front end producing one position-aware value tree.
 *
 * The TOML reader is a hand-written recursive-descent parser over a (pointer, length) pair: every
 * byte access goes through peek(), which returns -1 past the end, so the parser can never read
 * past len whatever the input. Before parsing, the whole text is checked for NUL bytes and
 * invalid UTF-8 so that the grammar code only has to deal with well-formed characters.
 *
 * TOML's "defined once" rules are tracked with flags on table nodes:
 *   T_IMPLICIT  created as an intermediate of a [a.b] header: may still be defined by [a] later;
 *   T_EXPLICIT  defined by its own [header]: a second header is an error;
 *   T_DOTTED    created by a dotted key (a.b = 1): may be extended by more dotted keys in the same
 *               section and get sub-tables, but never gets a [header] of its own;
 *   T_FROZEN    an inline table or a static array: nothing may be added afterwards;
 *   T_AOT       an array created by [[header]]: later [[header]]s append to it.
 *
 * Positions: line/column are computed from byte offsets with a forward-moving cache, so asking
 * for positions in file order is O(1) amortised. Columns count characters, not bytes.
 *
 * The YAML front end (tpd_yaml_parse) walks libyaml events and builds the same tree. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "tpd/toml.h"
#include "tpd/util.h"

enum {
	T_IMPLICIT = 1 << 0,
	T_EXPLICIT = 1 << 1,
	T_DOTTED = 1 << 2,
	T_FROZEN = 1 << 3,
	T_AOT = 1 << 4,
};

typedef struct {
	char *key;
	int line, col;
} entry;

struct tpd_toml {
	tpd_toml_type type;
	int line, col;    /* where the value (or table header) starts */
	int depth;        /* root = 0 */
	unsigned flags;   /* T_* */
	char *s;          /* STRING */
	int64_t i;        /* INT */
	double f;         /* FLOAT */
	bool b;           /* BOOL */
	size_t n, cap;    /* TABLE, ARRAY: number of children */
	tpd_toml **items; /* TABLE, ARRAY: children */
	entry *keys;      /* TABLE: keys, parallel to items */
};

/* --- tree --------------------------------------------------------------------------------------- */

static tpd_toml *node_new(tpd_toml_type type, int line, int col, int depth)
{
	tpd_toml *v = tpd_new(tpd_toml);

	v->type = type;
	v->line = line;
	v->col = col;
	v->depth = depth;
	return v;
}

void tpd_toml_free(tpd_toml *v)
{
	if (!v)
		return;
	for (size_t k = 0; k < v->n; k++) {
		tpd_toml_free(v->items[k]);
		if (v->keys)
			free(v->keys[k].key);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
	free(v);
}

static void grow(tpd_toml *v)
{
	if (v->n < v->cap)
		return;
	v->cap = v->cap ? v->cap * 2 : 4;
	v->items = xreallocarray(v->items, v->cap, sizeof(*v->items));
	if (v->type == TPD_TOML_TABLE)
		v->keys = xreallocarray(v->keys, v->cap, sizeof(*v->keys));
}

/* Takes ownership of key and child. The caller has checked for duplicates and limits. */
static void table_put(tpd_toml *t, char *key, int line, int col, tpd_toml *child)
{
	grow(t);
	t->items[t->n] = child;
	t->keys[t->n].key = key;
	t->keys[t->n].line = line;
	t->keys[t->n].col = col;
	t->n++;
}

static void array_push(tpd_toml *a, tpd_toml *child)
{
	grow(a);
	a->items[a->n++] = child;
}

tpd_toml_type tpd_toml_type_of(const tpd_toml *v)
{
	return v ? v->type : TPD_TOML_NULL;
}

const char *tpd_toml_type_name(tpd_toml_type t)
{
	switch (t) {
	case TPD_TOML_TABLE:
		return "table";
	case TPD_TOML_ARRAY:
		return "array";
	case TPD_TOML_STRING:
		return "string";
	case TPD_TOML_INT:
		return "integer";
	case TPD_TOML_FLOAT:
		return "float";
	case TPD_TOML_BOOL:
		return "boolean";
	case TPD_TOML_NULL:
		return "null";
	}
	return "unknown";
}

int tpd_toml_line(const tpd_toml *v)
{
	return v ? v->line : 0;
}

int tpd_toml_col(const tpd_toml *v)
{
	return v ? v->col : 0;
}

const char *tpd_toml_str(const tpd_toml *v)
{
	return v && v->type == TPD_TOML_STRING ? v->s : "";
}

int64_t tpd_toml_int(const tpd_toml *v)
{
	return v && v->type == TPD_TOML_INT ? v->i : 0;
}

double tpd_toml_float(const tpd_toml *v)
{
	return v && v->type == TPD_TOML_FLOAT ? v->f : 0.0;
}

bool tpd_toml_bool(const tpd_toml *v)
{
	return v && v->type == TPD_TOML_BOOL ? v->b : false;
}

size_t tpd_toml_len(const tpd_toml *v)
{
	return v && (v->type == TPD_TOML_TABLE || v->type == TPD_TOML_ARRAY) ? v->n : 0;
}

tpd_toml *tpd_toml_at(const tpd_toml *v, size_t i)
{
	return i < tpd_toml_len(v) ? v->items[i] : NULL;
}

const char *tpd_toml_key_at(const tpd_toml *v, size_t i)
{
	return v && v->type == TPD_TOML_TABLE && i < v->n ? v->keys[i].key : NULL;
}

int tpd_toml_key_line(const tpd_toml *v, size_t i)
{
	return v && v->type == TPD_TOML_TABLE && i < v->n ? v->keys[i].line : 0;
}

int tpd_toml_key_col(const tpd_toml *v, size_t i)
{
	return v && v->type == TPD_TOML_TABLE && i < v->n ? v->keys[i].col : 0;
}

long tpd_toml_index(const tpd_toml *v, const char *key)
{
	if (!v || v->type != TPD_TOML_TABLE || !key)
		return -1;
	for (size_t k = 0; k < v->n; k++)
		if (!strcmp(v->keys[k].key, key))
			return (long)k;
	return -1;
}

tpd_toml *tpd_toml_get(const tpd_toml *v, const char *key)
{
	long k = tpd_toml_index(v, key);

	return k < 0 ? NULL : v->items[k];
}

/* --- positions and errors (shared by both front ends) -------------------------------------------- */

typedef struct {
	const char *name; /* file name for messages */
	const char *s;
	size_t n;  /* length of s */
	size_t i;  /* TOML: read position */
	char *err; /* caller's buffer, TPD_ERRLEN bytes */
	bool failed;
	/* position cache: offset c_off is at line c_line, column c_col */
	size_t c_off;
	int c_line, c_col;
	tpd_toml *root, *cur;
} parser;

static void parser_init(parser *p, const char *name, const char *text, size_t len, char *err)
{
	memset(p, 0, sizeof(*p));
	p->name = name ? name : "<config>";
	p->s = text;
	p->n = text ? len : 0;
	p->err = err;
	p->c_line = 1;
	p->c_col = 1;
}

static void position(parser *p, size_t off, int *line, int *col)
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

static bool __attribute__((format(printf, 4, 5)))
fail_at(parser *p, size_t off, const char *fix, const char *fmt, ...)
{
	va_list ap;
	int line, col;
	bool r;

	position(p, off, &line, &col);
	va_start(ap, fmt);
	r = failv(p, line, col, fix, fmt, ap);
	va_end(ap);
	return r;
}

static bool __attribute__((format(printf, 5, 6)))
fail_lc(parser *p, int line, int col, const char *fix, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = failv(p, line, col, fix, fmt, ap);
	va_end(ap);
	return r;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
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

/* Rejects NUL bytes and invalid UTF-8 anywhere in the input. */
static bool check_bytes(parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;

	for (size_t k = 0; k < p->n;) {
		size_t l;

		if (s[k] == 0)
			return fail_at(p, k, "the file looks binary; save the configuration as UTF-8 text",
			               "NUL byte in the input");
		l = utf8_len(s + k, p->n - k);
		if (!l)
			return fail_at(p, k, "save the file as UTF-8", "invalid UTF-8 byte sequence");
		k += l;
	}
	return true;
}

/* --- TOML lexing helpers ----------------------------------------------------------------------- */

static int peek(const parser *p, size_t k)
{
	return p->i + k < p->n ? (unsigned char)p->s[p->i + k] : -1;
}

static bool is_ws(int c)
{
	return c == ' ' || c == '\t';
}

static bool is_bare(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

/* A control character that TOML does not allow raw in strings and comments. */
static bool is_ctrl(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static void skip_ws(parser *p)
{
	while (is_ws(peek(p, 0)))
		p->i++;
}

/* At a newline (LF or CRLF)? Returns its length, 0 if not. A lone CR is an error (-1). */
static int newline_len(parser *p)
{
	if (peek(p, 0) == '\n')
		return 1;
	if (peek(p, 0) == '\r') {
		if (peek(p, 1) == '\n')
			return 2;
		fail_at(p, p->i, "use LF or CRLF line endings", "carriage return not followed by a newline");
		return -1;
	}
	return 0;
}

/* Skips a comment starting at '#', up to (not including) the newline. */
static bool skip_comment(parser *p)
{
	if (peek(p, 0) != '#')
		return true;
	for (p->i++; p->i < p->n; p->i++) {
		int c = peek(p, 0);

		if (c == '\n' || (c == '\r' && peek(p, 1) == '\n'))
			break;
		if (is_ctrl(c))
			return fail_at(p, p->i, "remove it", "control character in a comment");
	}
	return true;
}

/* Skips whitespace, newlines and comments (inside arrays). */
static bool skip_ws_nl(parser *p)
{
	for (;;) {
		int nl;

		skip_ws(p);
		if (peek(p, 0) == '#' && !skip_comment(p))
			return false;
		nl = newline_len(p);
		if (nl < 0)
			return false;
		if (nl == 0)
			return true;
		p->i += (size_t)nl;
	}
}

/* Requires the end of a line: whitespace, an optional comment, then a newline or the end. */
static bool expect_eol(parser *p, const char *after)
{
	int nl;

	skip_ws(p);
	if (!skip_comment(p))
		return false;
	if (p->i >= p->n)
		return true;
	nl = newline_len(p);
	if (nl < 0)
		return false;
	if (nl == 0)
		return fail_at(p, p->i,
		               "put each key = value and each [table] on its own line; quote strings, "
		               "start comments with #",
		               "unexpected text after %s", after);
	p->i += (size_t)nl;
	return true;
}

static void put_utf8(tpd_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	tpd_buf_append(b, u, n);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses one escape sequence at '\\' and appends its value. */
static bool parse_escape(parser *p, tpd_buf *b)
{
	size_t start = p->i;
	int c = peek(p, 1);
	int digits = 0;
	uint32_t cp = 0;

	p->i += 2;
	switch (c) {
	case 'b':
		tpd_buf_append(b, "\b", 1);
		return true;
	case 't':
		tpd_buf_append(b, "\t", 1);
		return true;
	case 'n':
		tpd_buf_append(b, "\n", 1);
		return true;
	case 'f':
		tpd_buf_append(b, "\f", 1);
		return true;
	case 'r':
		tpd_buf_append(b, "\r", 1);
		return true;
	case '"':
		tpd_buf_append(b, "\"", 1);
		return true;
	case '\\':
		tpd_buf_append(b, "\\", 1);
		return true;
	case 'u':
		digits = 4;
		break;
	case 'U':
		digits = 8;
		break;
	default:
		return fail_at(p, start,
		               "valid escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX; "
		               "write a backslash as \\\\ or use a 'literal string'",
		               "invalid escape sequence in a string");
	}
	for (int k = 0; k < digits; k++) {
		int h = hexval(peek(p, 0));

		if (h < 0)
			return fail_at(
			    p, start,
			    c == 'u' ? "write exactly 4 hex digits after \\u; for a backslash write \\\\ "
			               "or use a 'literal string'"
			             : "write exactly 8 hex digits after \\U; for a backslash write \\\\ "
			               "or use a 'literal string'",
			    "incomplete unicode escape");
		cp = (cp << 4) | (uint32_t)h;
		p->i++;
	}
	if (cp == 0)
		return fail_at(p, start, "remove it; configuration strings cannot hold NUL",
		               "\\u0000 (NUL) is not allowed in strings");
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail_at(p, start, "use a Unicode scalar value: not a surrogate, at most 10FFFF",
		               "invalid unicode code point in escape");
	put_utf8(b, cp);
	return true;
}

/* Appends the raw character at p->i (a complete UTF-8 sequence; input was validated). */
static void take_char(parser *p, tpd_buf *b)
{
	size_t l = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);

	if (!l)
		l = 1;
	tpd_buf_append(b, p->s + p->i, l);
	p->i += l;
}

/* Parses a string of any of the four kinds at p->i; *out is malloc'ed. allow_ml=false for keys. */
static bool parse_string(parser *p, bool allow_ml, char **out)
{
	size_t start = p->i;
	int q = peek(p, 0);
	bool ml = peek(p, 1) == q && peek(p, 2) == q;
	bool basic = q == '"';
	tpd_buf b;

	*out = NULL;
	tpd_buf_init(&b, 0);
	tpd_buf_append(&b, "", 0);
	if (ml && !allow_ml) {
		fail_at(p, start, "keys use single-line \"basic\" or 'literal' strings",
		        "multi-line string used as a key");
		goto fail;
	}
	if (!ml) {
		p->i++;
		for (;;) {
			int c = peek(p, 0);

			if (c < 0 || c == '\n' || c == '\r') {
				fail_at(p, start,
				        basic
				            ? "close the string with \" on the same line, or use \"\"\" for "
				              "multi-line text"
				            : "close the string with ' on the same line, or use ''' for "
				              "multi-line text",
				        "unterminated string");
				goto fail;
			}
			if (c == q) {
				p->i++;
				break;
			}
			if (is_ctrl(c)) {
				fail_at(p, p->i, "write control characters as escapes such as \\t or \\u0001",
				        "control character in a string");
				goto fail;
			}
			if (basic && c == '\\') {
				if (!parse_escape(p, &b))
					goto fail;
				continue;
			}
			take_char(p, &b);
		}
		*out = tpd_buf_steal(&b);
		return true;
	}
	/* multi-line */
	p->i += 3;
	if (peek(p, 0) == '\n')
		p->i++;
	else if (peek(p, 0) == '\r' && peek(p, 1) == '\n')
		p->i += 2;
	for (;;) {
		int c = peek(p, 0);

		if (c < 0) {
			fail_at(p, start, basic ? "close it with \"\"\"" : "close it with '''",
			        "unterminated multi-line string");
			goto fail;
		}
		if (c == q) {
			size_t run = 0;

			while (peek(p, run) == q)
				run++;
			if (run >= 3) {
				if (run > 5) {
					fail_at(p, p->i + 5,
					        "escape quotes inside the string or split the run",
					        "too many quotes at the end of a multi-line string");
					goto fail;
				}
				tpd_buf_append(&b, p->s + p->i, run - 3);
				p->i += run;
				break;
			}
			tpd_buf_append(&b, p->s + p->i, run);
			p->i += run;
			continue;
		}
		if (c == '\n') {
			tpd_buf_append(&b, "\n", 1);
			p->i++;
			continue;
		}
		if (c == '\r') {
			if (peek(p, 1) != '\n') {
				fail_at(p, p->i, "use LF or CRLF line endings",
				        "carriage return not followed by a newline");
				goto fail;
			}
			tpd_buf_append(&b, "\n", 1);
			p->i += 2;
			continue;
		}
		if (is_ctrl(c)) {
			fail_at(p, p->i, "write control characters as escapes such as \\u0001",
			        "control character in a string");
			goto fail;
		}
		if (basic && c == '\\') {
			/* line-ending backslash: "\" + optional blanks + newline trims up to the next
			 * non-blank character */
			size_t k = 1;

			while (is_ws(peek(p, k)))
				k++;
			if (peek(p, k) == '\n' || (peek(p, k) == '\r' && peek(p, k + 1) == '\n')) {
				p->i += k;
				for (;;) {
					int d = peek(p, 0);

					if (is_ws(d) || d == '\n')
						p->i++;
					else if (d == '\r' && peek(p, 1) == '\n')
						p->i += 2;
					else
						break;
				}
				continue;
			}
			if (!parse_escape(p, &b))
				goto fail;
			continue;
		}
		take_char(p, &b);
	}
	*out = tpd_buf_steal(&b);
	return true;
fail:
	tpd_buf_free(&b);
	return false;
}

/* --- keys ---------------------------------------------------------------------------------------- */

typedef struct {
	size_t n;
	char *part[TPD_TOML_MAX_DEPTH + 1];
	size_t off[TPD_TOML_MAX_DEPTH + 1];
} keypath;

static void keypath_free(keypath *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->part[i]);
	k->n = 0;
}

/* Dotted key for messages ("pagerduty.RequestAnnotations"), parts 0..upto inclusive. */
static void keypath_str(const keypath *k, size_t upto, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = 0;
	for (size_t i = 0; i <= upto && i < k->n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? "." : "", k->part[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static bool parse_key(parser *p, keypath *k)
{
	k->n = 0;
	for (;;) {
		int c = peek(p, 0);
		char *part = NULL;
		size_t start = p->i;

		if (k->n > TPD_TOML_MAX_DEPTH)
			return fail_at(p, start, "use fewer levels",
			               "key has too many dotted parts (at most %d)", TPD_TOML_MAX_DEPTH);
		if (c == '"' || c == '\'') {
			if (!parse_string(p, false, &part))
				return false;
		} else if (is_bare(c)) {
			while (is_bare(peek(p, 0)))
				p->i++;
			part = xstrndup(p->s + start, p->i - start);
		} else if (c < 0 || c == '\n' || c == '\r') {
			return fail_at(p, start, "write key = value",
			               "expected a key, found the end of the line");
		} else if (c == '=') {
			return fail_at(p, start, "write key = value", "missing key before '='");
		} else {
			return fail_at(
			    p, start,
			    "bare keys may contain only A-Z a-z 0-9 _ -; quote other keys: \"my key\"",
			    "invalid character in a key");
		}
		k->part[k->n] = part;
		k->off[k->n] = start;
		k->n++;
		skip_ws(p);
		if (peek(p, 0) != '.')
			return true;
		p->i++;
		skip_ws(p);
	}
}

/* --- values -------------------------------------------------------------------------------------- */

static bool parse_value(parser *p, int depth, tpd_toml **out);

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Checks digits of a base with single underscores between digits; returns false on bad form. */
static bool digits_ok(const char *s, size_t n, int base)
{
	bool prev_digit = false;

	if (n == 0)
		return false;
	for (size_t k = 0; k < n; k++) {
		int c = (unsigned char)s[k];
		int v = hexval(c);

		if (c == '_') {
			if (!prev_digit || k + 1 == n)
				return false;
			prev_digit = false;
			continue;
		}
		if (v < 0 || v >= base)
			return false;
		prev_digit = true;
	}
	return true;
}

/* Parses a number, boolean-like word or rejects dates; the token is [A-Za-z0-9_+-.:]+. */
static bool parse_number(parser *p, int depth, tpd_toml **out)
{
	size_t start = p->i, n;
	const char *t = p->s + start;
	int line, col;
	const char *bad_fix = "write integers like 42 or 1_000, floats like 1.5, strings in quotes";

	while (p->i < p->n) {
		int c = peek(p, 0);

		if (!(is_bare(c) || c == '+' || c == '.' || c == ':'))
			break;
		p->i++;
	}
	n = p->i - start;
	position(p, start, &line, &col);
	if (n == 0)
		return fail_at(p, start, "write a \"string\", a number, true/false, [array] or {table}",
		               "expected a value");
	/* dates and times: 1979-05-27, 07:32:00 */
	if (memchr(t, ':', n) ||
	    (n >= 7 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) && is_digit(t[3]) && t[4] == '-'))
		return fail_at(p, start, "quote the value to make it a string",
		               "dates and times are not supported in this configuration");
	{
		const char *u = t;
		size_t un = n;
		bool neg = false, has_sign = false;

		if (*u == '+' || *u == '-') {
			neg = *u == '-';
			has_sign = true;
			u++;
			un--;
		}
		if ((un == 3 && !memcmp(u, "inf", 3)) || (un == 3 && !memcmp(u, "nan", 3))) {
			tpd_toml *v = node_new(TPD_TOML_FLOAT, line, col, depth);

			v->f = u[0] == 'i' ? (neg ? -INFINITY : INFINITY) : NAN;
			*out = v;
			return true;
		}
		if (un >= 2 && u[0] == '0' && (u[1] == 'x' || u[1] == 'o' || u[1] == 'b')) {
			int base = u[1] == 'x' ? 16 : u[1] == 'o' ? 8 : 2;
			uint64_t acc = 0;
			tpd_toml *v;

			if (has_sign)
				return fail_at(p, start, "remove the sign",
				               "hex, octal and binary integers cannot "
				               "have a sign");
			if (!digits_ok(u + 2, un - 2, base))
				return fail_at(p, start, bad_fix, "invalid %s integer",
				               base == 16  ? "hexadecimal"
				               : base == 8 ? "octal"
				                           : "binary");
			for (size_t k = 2; k < un; k++) {
				if (u[k] == '_')
					continue;
				if (acc > ((uint64_t)INT64_MAX - (uint64_t)hexval(u[k])) / (uint64_t)base)
					return fail_at(p, start, "use a value between -2^63 and 2^63-1",
					               "integer out of range");
				acc = acc * (uint64_t)base + (uint64_t)hexval(u[k]);
			}
			v = node_new(TPD_TOML_INT, line, col, depth);
			v->i = (int64_t)acc;
			*out = v;
			return true;
		}
		/* decimal integer or float: int-part [. frac] [e exp] */
		{
			size_t k = 0, ip_end, fr_s = 0, fr_e = 0, ex_s = 0;
			bool has_frac = false, has_exp = false;

			while (k < un && (is_digit(u[k]) || u[k] == '_'))
				k++;
			ip_end = k;
			if (!digits_ok(u, ip_end, 10))
				return fail_at(p, start, bad_fix, "invalid value");
			if (ip_end > 1 && u[0] == '0')
				return fail_at(p, start, "remove the leading zeros, or quote the value",
				               "leading zeros are not allowed in numbers");
			if (k < un && u[k] == '.') {
				has_frac = true;
				fr_s = ++k;
				while (k < un && (is_digit(u[k]) || u[k] == '_'))
					k++;
				fr_e = k;
				if (!digits_ok(u + fr_s, fr_e - fr_s, 10))
					return fail_at(p, start,
					               "write digits on both sides of the point: 0.5",
					               "invalid float");
			}
			if (k < un && (u[k] == 'e' || u[k] == 'E')) {
				has_exp = true;
				k++;
				if (k < un && (u[k] == '+' || u[k] == '-'))
					k++;
				ex_s = k;
				while (k < un && (is_digit(u[k]) || u[k] == '_'))
					k++;
				if (!digits_ok(u + ex_s, k - ex_s, 10))
					return fail_at(p, start, "write an exponent like 1e6 or 2.5E-3",
					               "invalid float exponent");
			}
			if (k != un)
				return fail_at(p, start, bad_fix, "invalid value");
			if (!has_frac && !has_exp) {
				uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
				tpd_toml *v;

				for (size_t d = 0; d < ip_end; d++) {
					if (u[d] == '_')
						continue;
					if (acc > (lim - (uint64_t)(u[d] - '0')) / 10)
						return fail_at(p, start,
						               "use a value between -2^63 and 2^63-1",
						               "integer out of range");
					acc = acc * 10 + (uint64_t)(u[d] - '0');
				}
				v = node_new(TPD_TOML_INT, line, col, depth);
				v->i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
				*out = v;
				return true;
			} else {
				char *clean = xmalloc(n + 1), *end;
				size_t m = 0;
				double d;
				tpd_toml *v;

				for (size_t j = 0; j < n; j++)
					if (t[j] != '_')
						clean[m++] = t[j];
				clean[m] = 0;
				errno = 0;
				d = strtod(clean, &end);
				if (*end || (errno == ERANGE && isinf(d))) {
					free(clean);
					return fail_at(p, start, "use a smaller number",
					               "float out of range");
				}
				free(clean);
				v = node_new(TPD_TOML_FLOAT, line, col, depth);
				v->f = d;
				*out = v;
				return true;
			}
		}
	}
}

static bool insert_kv(parser *p, tpd_toml *t, keypath *k, tpd_toml *val);

static void freeze(tpd_toml *v)
{
	if (v->type != TPD_TOML_TABLE && v->type != TPD_TOML_ARRAY)
		return;
	v->flags |= T_FROZEN;
	for (size_t k = 0; k < v->n; k++)
		freeze(v->items[k]);
}

static bool check_depth(parser *p, size_t off, int depth)
{
	if (depth > TPD_TOML_MAX_DEPTH)
		return fail_at(p, off, "flatten the structure", "nesting too deep (at most %d levels)",
		               TPD_TOML_MAX_DEPTH);
	return true;
}

static bool parse_array(parser *p, int depth, tpd_toml **out)
{
	size_t start = p->i;
	int line, col;
	tpd_toml *a;

	if (!check_depth(p, start, depth))
		return false;
	position(p, start, &line, &col);
	a = node_new(TPD_TOML_ARRAY, line, col, depth);
	p->i++;
	for (;;) {
		tpd_toml *item = NULL;

		if (!skip_ws_nl(p))
			goto fail;
		if (peek(p, 0) == ']') {
			p->i++;
			break;
		}
		if (peek(p, 0) < 0) {
			fail_at(p, start, "close the array with ]", "unterminated array");
			goto fail;
		}
		if (peek(p, 0) == ',') {
			fail_at(p, p->i, "remove the extra comma", "missing value before ',' in an array");
			goto fail;
		}
		if (a->n >= TPD_TOML_MAX_ITEMS) {
			fail_at(p, p->i, "split the data", "array has too many elements (at most %d)",
			        TPD_TOML_MAX_ITEMS);
			goto fail;
		}
		if (!parse_value(p, depth + 1, &item))
			goto fail;
		array_push(a, item);
		if (!skip_ws_nl(p))
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
			fail_at(p, start, "close the array with ]", "unterminated array");
		else
			fail_at(p, p->i, "separate array elements with commas and close the array with ]",
			        "expected ',' or ']' in an array");
		goto fail;
	}
	freeze(a);
	*out = a;
	return true;
fail:
	tpd_toml_free(a);
	return false;
}

static bool parse_inline_table(parser *p, int depth, tpd_toml **out)
{
	size_t start = p->i;
	int line, col;
	tpd_toml *t;
	bool first = true;

	if (!check_depth(p, start, depth))
		return false;
	position(p, start, &line, &col);
	t = node_new(TPD_TOML_TABLE, line, col, depth);
	t->flags = T_EXPLICIT;
	p->i++;
	skip_ws(p);
	if (peek(p, 0) == '}') {
		p->i++;
		goto done;
	}
	for (;;) {
		keypath k;
		tpd_toml *val = NULL;
		int c;

		skip_ws(p);
		c = peek(p, 0);
		if (c == '\n' || c == '\r' || c < 0) {
			fail_at(p, p->i, "write an inline table on one line, or use a [table] section",
			        "%s inside an inline table", c < 0 ? "end of file" : "newline");
			goto fail;
		}
		if (c == '}' && !first) {
			fail_at(p, p->i, "remove the comma before }", "trailing comma in an inline table");
			goto fail;
		}
		if (!parse_key(p, &k)) {
			keypath_free(&k);
			goto fail;
		}
		if (peek(p, 0) != '=') {
			fail_at(p, p->i, "write key = value", "expected '=' after a key");
			keypath_free(&k);
			goto fail;
		}
		p->i++;
		skip_ws(p);
		if (!parse_value(p, depth + (int)k.n, &val)) {
			keypath_free(&k);
			goto fail;
		}
		if (!insert_kv(p, t, &k, val)) {
			keypath_free(&k);
			goto fail;
		}
		first = false;
		skip_ws(p);
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
			fail_at(p, p->i, "write an inline table on one line, or use a [table] section",
			        "%s inside an inline table", c < 0 ? "end of file" : "newline");
		else
			fail_at(p, p->i, "separate entries with commas and close the table with }",
			        "expected ',' or '}' in an inline table");
		goto fail;
	}
done:
	freeze(t);
	*out = t;
	return true;
fail:
	tpd_toml_free(t);
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

static bool parse_value(parser *p, int depth, tpd_toml **out)
{
	int c = peek(p, 0);
	int line, col;

	*out = NULL;
	if (!check_depth(p, p->i, depth))
		return false;
	position(p, p->i, &line, &col);
	if (c == '"' || c == '\'') {
		char *s;
		tpd_toml *v;

		if (!parse_string(p, true, &s))
			return false;
		v = node_new(TPD_TOML_STRING, line, col, depth);
		v->s = s;
		*out = v;
		return true;
	}
	if (c == '[')
		return parse_array(p, depth, out);
	if (c == '{')
		return parse_inline_table(p, depth, out);
	if (parse_word(p, "true", 4) || parse_word(p, "false", 5)) {
		tpd_toml *v = node_new(TPD_TOML_BOOL, line, col, depth);

		v->b = c == 't';
		p->i += v->b ? 4 : 5;
		*out = v;
		return true;
	}
	if (c == '+' || c == '-' || is_digit(c) || parse_word(p, "inf", 3) || parse_word(p, "nan", 3))
		return parse_number(p, depth, out);
	if (c < 0 || c == '\n' || c == '\r' || c == '#')
		return fail_at(p, p->i, "write a value after '=', e.g. key = \"text\"", "missing value");
	if (is_bare(c))
		return fail_at(p, p->i,
		               "strings must be quoted: key = \"text\"; booleans are lower-case "
		               "true/false",
		               "invalid value");
	return fail_at(p, p->i, "write a \"string\", a number, true/false, [array] or {table}",
	               "expected a value");
}

/* --- tables -------------------------------------------------------------------------------------- */

static const char *what_defined(const tpd_toml *v)
{
	if (v->type == TPD_TOML_TABLE && (v->flags & T_FROZEN))
		return "an inline table";
	if (v->type == TPD_TOML_TABLE && (v->flags & T_DOTTED))
		return "a table defined by dotted keys";
	if (v->type == TPD_TOML_TABLE)
		return "a table";
	if (v->type == TPD_TOML_ARRAY)
		return "an array";
	return "a value";
}

/* Inserts key path k (dotted key) = val into table t; frees val on error. k's parts are taken. */
static bool insert_kv(parser *p, tpd_toml *t, keypath *k, tpd_toml *val)
{
	char name[256];

	for (size_t i = 0; i + 1 < k->n; i++) {
		long idx = tpd_toml_index(t, k->part[i]);

		if (idx < 0) {
			int line, col;
			tpd_toml *sub;

			if (t->n >= TPD_TOML_MAX_ENTRIES)
				goto too_many;
			position(p, k->off[i], &line, &col);
			sub = node_new(TPD_TOML_TABLE, line, col, t->depth + 1);
			sub->flags = T_DOTTED | (t->flags & T_FROZEN);
			table_put(t, k->part[i], line, col, sub);
			k->part[i] = NULL;
			t = sub;
			continue;
		}
		{
			tpd_toml *e = t->items[idx];

			if (e->type == TPD_TOML_TABLE && (e->flags & T_DOTTED) && !(e->flags & T_FROZEN)) {
				t = e;
				continue;
			}
			keypath_str(k, i, name, sizeof(name));
			fail_at(p, k->off[i], "define each key once; add keys to a table in its own section",
			        "cannot add keys to %s: it is already %s (line %d, column %d)", name,
			        what_defined(e), e->line, e->col);
			goto fail;
		}
	}
	if (tpd_toml_index(t, k->part[k->n - 1]) >= 0) {
		long idx = tpd_toml_index(t, k->part[k->n - 1]);

		keypath_str(k, k->n - 1, name, sizeof(name));
		fail_at(p, k->off[k->n - 1], "remove one of the two",
		        "duplicate key %s (first set at line %d, "
		        "column %d)",
		        name, t->keys[idx].line, t->keys[idx].col);
		goto fail;
	}
	if (t->n >= TPD_TOML_MAX_ENTRIES)
		goto too_many;
	{
		int line, col;

		position(p, k->off[k->n - 1], &line, &col);
		table_put(t, k->part[k->n - 1], line, col, val);
		k->part[k->n - 1] = NULL;
	}
	keypath_free(k);
	return true;
too_many:
	fail_at(p, k->off[0], "split the data", "table has too many keys (at most %d)", TPD_TOML_MAX_ENTRIES);
fail:
	tpd_toml_free(val);
	keypath_free(k);
	return false;
}

static bool parse_header(parser *p)
{
	size_t start = p->i;
	bool aot = peek(p, 1) == '[';
	keypath k;
	tpd_toml *t = p->root;
	int line, col;
	char name[256];

	position(p, start, &line, &col);
	p->i += aot ? 2 : 1;
	skip_ws(p);
	if (!parse_key(p, &k))
		goto fail;
	keypath_str(&k, k.n - 1, name, sizeof(name));
	if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']')) {
		fail_at(p, p->i, aot ? "close the header with ]]" : "close the header with ]",
		        "expected '%s' after the table name", aot ? "]]" : "]");
		goto fail;
	}
	p->i += aot ? 2 : 1;
	for (size_t i = 0; i + 1 < k.n; i++) {
		long idx = tpd_toml_index(t, k.part[i]);
		tpd_toml *e;

		if (idx < 0) {
			int kl, kc;
			tpd_toml *sub;

			if (!check_depth(p, k.off[i], t->depth + 1))
				goto fail;
			if (t->n >= TPD_TOML_MAX_ENTRIES) {
				fail_at(p, start, "split the data", "table has too many keys (at most %d)",
				        TPD_TOML_MAX_ENTRIES);
				goto fail;
			}
			position(p, k.off[i], &kl, &kc);
			sub = node_new(TPD_TOML_TABLE, line, col, t->depth + 1);
			sub->flags = T_IMPLICIT;
			table_put(t, k.part[i], kl, kc, sub);
			k.part[i] = NULL;
			t = sub;
			continue;
		}
		e = t->items[idx];
		if (e->type == TPD_TOML_TABLE && !(e->flags & T_FROZEN)) {
			t = e;
		} else if (e->type == TPD_TOML_ARRAY && (e->flags & T_AOT) && e->n > 0) {
			t = e->items[e->n - 1];
		} else {
			char pre[256];

			keypath_str(&k, i, pre, sizeof(pre));
			fail_at(p, k.off[i], "rename the table or the key",
			        "cannot define table [%s]: %s is already %s (line %d, column %d)", name, pre,
			        what_defined(e), e->line, e->col);
			goto fail;
		}
	}
	{
		const char *last = k.part[k.n - 1];
		long idx = tpd_toml_index(t, last);
		tpd_toml *e = idx >= 0 ? t->items[idx] : NULL;
		int kl, kc;

		position(p, k.off[k.n - 1], &kl, &kc);
		if (!check_depth(p, k.off[k.n - 1], t->depth + (aot ? 2 : 1)))
			goto fail;
		if (!e && t->n >= TPD_TOML_MAX_ENTRIES) {
			fail_at(p, start, "split the data", "table has too many keys (at most %d)",
			        TPD_TOML_MAX_ENTRIES);
			goto fail;
		}
		if (!aot) {
			if (!e) {
				e = node_new(TPD_TOML_TABLE, line, col, t->depth + 1);
				e->flags = T_EXPLICIT;
				table_put(t, k.part[k.n - 1], kl, kc, e);
				k.part[k.n - 1] = NULL;
			} else if (e->type == TPD_TOML_TABLE && e->flags == T_IMPLICIT) {
				e->flags = T_EXPLICIT;
				e->line = line;
				e->col = col;
			} else if (e->type == TPD_TOML_TABLE && (e->flags & T_EXPLICIT) &&
			           !(e->flags & T_FROZEN)) {
				fail_at(p, start, "merge the two sections into one",
				        "table [%s] is defined twice (first at line %d)", name, e->line);
				goto fail;
			} else {
				fail_at(p, start, "rename the table or remove the other definition",
				        "cannot define table [%s]: it is already %s (line %d, column %d)",
				        name, what_defined(e), e->line, e->col);
				goto fail;
			}
			p->cur = e;
		} else {
			tpd_toml *nt;

			if (!e) {
				e = node_new(TPD_TOML_ARRAY, line, col, t->depth + 1);
				e->flags = T_AOT;
				table_put(t, k.part[k.n - 1], kl, kc, e);
				k.part[k.n - 1] = NULL;
			} else if (!(e->type == TPD_TOML_ARRAY && (e->flags & T_AOT))) {
				fail_at(p, start, "rename the table or remove the other definition",
				        "cannot append [[%s]]: it is already %s (line %d, column %d)", name,
				        what_defined(e), e->line, e->col);
				goto fail;
			}
			if (e->n >= TPD_TOML_MAX_ITEMS) {
				fail_at(p, start, "split the data",
				        "array has too many elements (at most %d)", TPD_TOML_MAX_ITEMS);
				goto fail;
			}
			nt = node_new(TPD_TOML_TABLE, line, col, e->depth + 1);
			nt->flags = T_EXPLICIT;
			array_push(e, nt);
			p->cur = nt;
		}
	}
	keypath_free(&k);
	return expect_eol(p, "the table header");
fail:
	keypath_free(&k);
	return false;
}

static bool parse_keyval(parser *p)
{
	keypath k;
	tpd_toml *val = NULL;

	if (!parse_key(p, &k))
		goto fail;
	if (peek(p, 0) != '=') {
		if (peek(p, 0) < 0 || peek(p, 0) == '\n' || peek(p, 0) == '\r' || peek(p, 0) == '#')
			fail_at(p, p->i, "write key = value; table names go in [brackets]",
			        "expected '=' after the key");
		else
			fail_at(p, p->i, "write key = value; quote keys with spaces or special characters",
			        "expected '=' after the key");
		goto fail;
	}
	p->i++;
	skip_ws(p);
	if (!parse_value(p, p->cur->depth + (int)k.n, &val))
		goto fail;
	if (!insert_kv(p, p->cur, &k, val))
		return false;
	return expect_eol(p, "the value");
fail:
	keypath_free(&k);
	return false;
}

tpd_err tpd_toml_parse(const char *name, const char *text, size_t len, tpd_toml **out, char *err)
{
	parser p;

	*out = NULL;
	parser_init(&p, name, text, len, err);
	if (!check_bytes(&p))
		return TPD_ERR_PARSE;
	p.root = node_new(TPD_TOML_TABLE, 1, 1, 0);
	p.root->flags = T_EXPLICIT;
	p.cur = p.root;
	if (p.n >= 3 && !memcmp(p.s, "\xef\xbb\xbf", 3))
		p.i = 3;
	while (p.i < p.n) {
		int c, nl;

		skip_ws(&p);
		c = peek(&p, 0);
		if (c < 0)
			break;
		if (c == '#') {
			if (!expect_eol(&p, "the comment"))
				goto fail;
			continue;
		}
		nl = newline_len(&p);
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
	tpd_toml_free(p.root);
	return TPD_ERR_PARSE;
}

/* --- YAML ---------------------------------------------------------------------------------------- */

typedef struct {
	tpd_toml *node; /* table or array being filled */
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
		if (!is_digit((unsigned char)s[k]))
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
static tpd_toml *yaml_scalar(const yaml_event_t *ev, int line, int col, int depth, bool force_str)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	tpd_toml *v;
	int64_t iv;

	if (!force_str && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (n == 0 || yaml_is(s, n, "~", "null", "Null") || yaml_is(s, n, "NULL", "NULL", "NULL"))
			return node_new(TPD_TOML_NULL, line, col, depth);
		if (yaml_is(s, n, "true", "True", "TRUE") || yaml_is(s, n, "false", "False", "FALSE")) {
			v = node_new(TPD_TOML_BOOL, line, col, depth);
			v->b = s[0] == 't' || s[0] == 'T';
			return v;
		}
		if (yaml_plain_int(s, n, &iv)) {
			v = node_new(TPD_TOML_INT, line, col, depth);
			v->i = iv;
			return v;
		}
	}
	v = node_new(TPD_TOML_STRING, line, col, depth);
	v->s = xstrndup(s, n);
	return v;
}

tpd_err tpd_yaml_parse(const char *name, const char *text, size_t len, tpd_toml **out, char *err)
{
	parser p;
	yaml_parser_t yp;
	yaml_event_t ev;
	yframe stack[TPD_TOML_MAX_DEPTH + 1];
	int sp = 0; /* frames in use */
	int docs = 0;
	bool done = false, have_ev = false;
	tpd_toml *root = NULL;

	*out = NULL;
	parser_init(&p, name, text, len, err);
	if (!check_bytes(&p))
		return TPD_ERR_PARSE;
	if (!yaml_parser_initialize(&yp))
		return tpd_seterr(err, TPD_ERR_NOMEM, "%s: cannot initialise the YAML parser", p.name);
	yaml_parser_set_input_string(&yp, (const unsigned char *)(p.n ? p.s : ""), p.n);
	while (!done) {
		int line, col;
		tpd_toml *node = NULL;
		const char *anchor = NULL, *tag = NULL;
		bool force_str = false;

		if (!yaml_parser_parse(&yp, &ev)) {
			const char *problem = yp.problem ? yp.problem : "invalid YAML";

			if (yp.error == YAML_READER_ERROR) {
				position(&p, yp.problem_offset, &line, &col);
			} else {
				line = (int)yp.problem_mark.line + 1;
				col = (int)yp.problem_mark.column + 1;
			}
			if (yp.context)
				fail_lc(&p, line, col,
				        "check the indentation, and quote values that contain ': ' "
				        "or start with a special character",
				        "YAML syntax error: %s %s", problem, yp.context);
			else
				fail_lc(&p, line, col,
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
				fail_lc(&p, line, col,
				        "keep a single document: remove the second '---' and what "
				        "follows, or merge them",
				        "several YAML documents in one file");
				goto fail;
			}
			break;
		case YAML_ALIAS_EVENT:
			fail_lc(&p, line, col, "write the value out in full",
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
				fail_lc(&p, line, col, "remove the &anchor and write values out in full",
				        "YAML anchors are not supported");
				goto fail;
			}
			if (tag) {
				fail_lc(&p, line, col, "remove the tag; quote a value to make it a string",
				        "YAML tags are not supported");
				goto fail;
			}
			if (ev.type == YAML_SCALAR_EVENT &&
			    memchr(ev.data.scalar.value, 0, ev.data.scalar.length)) {
				fail_lc(&p, line, col, "remove it", "NUL character in a YAML value");
				goto fail;
			}
			{
				yframe *top = sp ? &stack[sp - 1] : NULL;
				int depth = top ? top->node->depth + 1 : 0;

				/* a scalar in key position of a mapping is the key itself */
				if (top && top->node->type == TPD_TOML_TABLE && !top->key) {
					long dup;

					if (ev.type != YAML_SCALAR_EVENT) {
						fail_lc(&p, line, col, "use plain text keys",
						        "YAML mapping keys must be scalars");
						goto fail;
					}
					top->key = xstrndup((const char *)ev.data.scalar.value,
					                    ev.data.scalar.length);
					top->key_line = line;
					top->key_col = col;
					dup = tpd_toml_index(top->node, top->key);
					if (dup >= 0) {
						fail_lc(&p, line, col, "remove one of the two",
						        "duplicate key %s (first set at line %d, column %d)",
						        top->key, top->node->keys[dup].line,
						        top->node->keys[dup].col);
						goto fail;
					}
					if (top->node->n >= TPD_TOML_MAX_ENTRIES) {
						fail_lc(&p, line, col, "split the data",
						        "mapping has too many keys (at most %d)",
						        TPD_TOML_MAX_ENTRIES);
						goto fail;
					}
					break;
				}
				if (depth > TPD_TOML_MAX_DEPTH) {
					fail_lc(&p, line, col, "flatten the structure",
					        "nesting too deep (at most %d levels)", TPD_TOML_MAX_DEPTH);
					goto fail;
				}
				if (ev.type == YAML_SCALAR_EVENT)
					node = yaml_scalar(&ev, line, col, depth, force_str);
				else
					node = node_new(ev.type == YAML_MAPPING_START_EVENT ? TPD_TOML_TABLE
					                                                    : TPD_TOML_ARRAY,
					                line, col, depth);
				if (!top) {
					if (node->type == TPD_TOML_NULL) {
						/* an empty document */
						tpd_toml_free(node);
						node = node_new(TPD_TOML_TABLE, 1, 1, 0);
						root = node;
						break;
					}
					if (node->type != TPD_TOML_TABLE || root) {
						tpd_toml_free(node);
						fail_lc(&p, line, col,
						        "write the settings as key: value pairs, e.g. "
						        "'teleport:' then indented 'addr: ...'",
						        "the top level of the file must be a mapping");
						goto fail;
					}
					root = node;
				} else if (top->node->type == TPD_TOML_TABLE) {
					table_put(top->node, top->key, top->key_line, top->key_col, node);
					top->key = NULL;
				} else {
					if (top->node->n >= TPD_TOML_MAX_ITEMS) {
						tpd_toml_free(node);
						fail_lc(&p, line, col, "split the data",
						        "sequence has too many elements (at most %d)",
						        TPD_TOML_MAX_ITEMS);
						goto fail;
					}
					array_push(top->node, node);
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
		root = node_new(TPD_TOML_TABLE, 1, 1, 0);
	*out = root;
	return TPD_ERR_OK;
fail:
	if (have_ev)
		yaml_event_delete(&ev);
	for (int k = 0; k < sp; k++)
		free(stack[k].key);
	yaml_parser_delete(&yp);
	tpd_toml_free(root);
	return TPD_ERR_PARSE;
}
