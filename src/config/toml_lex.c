/* toml_lex.c - the TOML reader's lexical layer (see toml_lex.h): whitespace, comments and line
 * ends, basic/literal/multi-line strings and their escapes, dotted keys, and numbers. The whole
 * text has been checked for NUL bytes and invalid UTF-8 before (cfg_check_bytes), so this code only
 * deals with well-formed characters. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml_lex.h"
#include "tpd/util.h"

/* --- TOML lexing helpers ----------------------------------------------------------------------- */

/* A control character that TOML does not allow raw in strings and comments. */
static bool is_ctrl(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

void toml_skip_ws(parser *p)
{
	while (is_ws(peek(p, 0)))
		p->i++;
}

/* At a newline (LF or CRLF)? Returns its length, 0 if not. A lone CR is an error (-1). */
int toml_newline_len(parser *p)
{
	if (peek(p, 0) == '\n')
		return 1;
	if (peek(p, 0) == '\r') {
		if (peek(p, 1) == '\n')
			return 2;
		cfg_fail_at(p, p->i, "use LF or CRLF line endings",
		            "carriage return not followed by a newline");
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
			return cfg_fail_at(p, p->i, "remove it", "control character in a comment");
	}
	return true;
}

/* Skips whitespace, newlines and comments (inside arrays). */
bool toml_skip_ws_nl(parser *p)
{
	for (;;) {
		int nl;

		toml_skip_ws(p);
		if (peek(p, 0) == '#' && !skip_comment(p))
			return false;
		nl = toml_newline_len(p);
		if (nl < 0)
			return false;
		if (nl == 0)
			return true;
		p->i += (size_t)nl;
	}
}

/* Requires the end of a line: whitespace, an optional comment, then a newline or the end. */
bool toml_expect_eol(parser *p, const char *after)
{
	int nl;

	toml_skip_ws(p);
	if (!skip_comment(p))
		return false;
	if (p->i >= p->n)
		return true;
	nl = toml_newline_len(p);
	if (nl < 0)
		return false;
	if (nl == 0)
		return cfg_fail_at(p, p->i,
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
		return cfg_fail_at(p, start,
		                   "valid escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX; "
		                   "write a backslash as \\\\ or use a 'literal string'",
		                   "invalid escape sequence in a string");
	}
	for (int k = 0; k < digits; k++) {
		int h = tpd_hexval(peek(p, 0));

		if (h < 0)
			return cfg_fail_at(
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
		return cfg_fail_at(p, start, "remove it; configuration strings cannot hold NUL",
		                   "\\u0000 (NUL) is not allowed in strings");
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return cfg_fail_at(p, start, "use a Unicode scalar value: not a surrogate, at most 10FFFF",
		                   "invalid unicode code point in escape");
	put_utf8(b, cp);
	return true;
}

/* Appends the raw character at p->i (a complete UTF-8 sequence; input was validated). */
static void take_char(parser *p, tpd_buf *b)
{
	size_t l = cfg_utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);

	if (!l)
		l = 1;
	tpd_buf_append(b, p->s + p->i, l);
	p->i += l;
}

/* Parses a string of any of the four kinds at p->i; *out is malloc'ed. allow_ml=false for keys. */
bool toml_parse_string(parser *p, bool allow_ml, char **out)
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
		cfg_fail_at(p, start, "keys use single-line \"basic\" or 'literal' strings",
		            "multi-line string used as a key");
		goto fail;
	}
	if (!ml) {
		p->i++;
		for (;;) {
			int c = peek(p, 0);

			if (c < 0 || c == '\n' || c == '\r') {
				cfg_fail_at(
				    p, start,
				    basic ? "close the string with \" on the same line, or use \"\"\" for "
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
				cfg_fail_at(p, p->i,
				            "write control characters as escapes such as \\t or \\u0001",
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
			cfg_fail_at(p, start, basic ? "close it with \"\"\"" : "close it with '''",
			            "unterminated multi-line string");
			goto fail;
		}
		if (c == q) {
			size_t run = 0;

			while (peek(p, run) == q)
				run++;
			if (run >= 3) {
				if (run > 5) {
					cfg_fail_at(p, p->i + 5,
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
				cfg_fail_at(p, p->i, "use LF or CRLF line endings",
				            "carriage return not followed by a newline");
				goto fail;
			}
			tpd_buf_append(&b, "\n", 1);
			p->i += 2;
			continue;
		}
		if (is_ctrl(c)) {
			cfg_fail_at(p, p->i, "write control characters as escapes such as \\u0001",
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

void toml_keypath_free(keypath *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->part[i]);
	k->n = 0;
}

/* Dotted key for messages ("pagerduty.RequestAnnotations"), parts 0..upto inclusive. */
void toml_keypath_str(const keypath *k, size_t upto, char *buf, size_t len)
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

bool toml_parse_key(parser *p, keypath *k)
{
	k->n = 0;
	for (;;) {
		int c = peek(p, 0);
		char *part = NULL;
		size_t start = p->i;

		if (k->n > TPD_NODE_MAX_DEPTH)
			return cfg_fail_at(p, start, "use fewer levels",
			                   "key has too many dotted parts (at most %d)", TPD_NODE_MAX_DEPTH);
		if (c == '"' || c == '\'') {
			if (!toml_parse_string(p, false, &part))
				return false;
		} else if (is_bare(c)) {
			while (is_bare(peek(p, 0)))
				p->i++;
			part = xstrndup(p->s + start, p->i - start);
		} else if (c < 0 || c == '\n' || c == '\r') {
			return cfg_fail_at(p, start, "write key = value",
			                   "expected a key, found the end of the line");
		} else if (c == '=') {
			return cfg_fail_at(p, start, "write key = value", "missing key before '='");
		} else {
			return cfg_fail_at(
			    p, start,
			    "bare keys may contain only A-Z a-z 0-9 _ -; quote other keys: \"my key\"",
			    "invalid character in a key");
		}
		k->part[k->n] = part;
		k->off[k->n] = start;
		k->n++;
		toml_skip_ws(p);
		if (peek(p, 0) != '.')
			return true;
		p->i++;
		toml_skip_ws(p);
	}
}

/* --- values -------------------------------------------------------------------------------------- */

/* Checks digits of a base with single underscores between digits; returns false on bad form. */
static bool digits_ok(const char *s, size_t n, int base)
{
	bool prev_digit = false;

	if (n == 0)
		return false;
	for (size_t k = 0; k < n; k++) {
		int c = (unsigned char)s[k];
		int v = tpd_hexval(c);

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
bool toml_parse_number(parser *p, int depth, tpd_node **out)
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
	cfg_position(p, start, &line, &col);
	if (n == 0)
		return cfg_fail_at(p, start, "write a \"string\", a number, true/false, [array] or {table}",
		                   "expected a value");
	/* dates and times: 1979-05-27, 07:32:00 */
	if (memchr(t, ':', n) ||
	    (n >= 7 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) && is_digit(t[3]) && t[4] == '-'))
		return cfg_fail_at(p, start, "quote the value to make it a string",
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
			tpd_node *v = cfg_node_new(TPD_NODE_FLOAT, line, col, depth);

			v->f = u[0] == 'i' ? (neg ? -INFINITY : INFINITY) : NAN;
			*out = v;
			return true;
		}
		if (un >= 2 && u[0] == '0' && (u[1] == 'x' || u[1] == 'o' || u[1] == 'b')) {
			int base = u[1] == 'x' ? 16 : u[1] == 'o' ? 8 : 2;
			uint64_t acc = 0;
			tpd_node *v;

			if (has_sign)
				return cfg_fail_at(p, start, "remove the sign",
				                   "hex, octal and binary integers cannot "
				                   "have a sign");
			if (!digits_ok(u + 2, un - 2, base))
				return cfg_fail_at(p, start, bad_fix, "invalid %s integer",
				                   base == 16  ? "hexadecimal"
				                   : base == 8 ? "octal"
				                               : "binary");
			for (size_t k = 2; k < un; k++) {
				if (u[k] == '_')
					continue;
				if (acc > ((uint64_t)INT64_MAX - (uint64_t)tpd_hexval(u[k])) / (uint64_t)base)
					return cfg_fail_at(p, start, "use a value between -2^63 and 2^63-1",
					                   "integer out of range");
				acc = acc * (uint64_t)base + (uint64_t)tpd_hexval(u[k]);
			}
			v = cfg_node_new(TPD_NODE_INT, line, col, depth);
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
				return cfg_fail_at(p, start, bad_fix, "invalid value");
			if (ip_end > 1 && u[0] == '0')
				return cfg_fail_at(p, start, "remove the leading zeros, or quote the value",
				                   "leading zeros are not allowed in numbers");
			if (k < un && u[k] == '.') {
				has_frac = true;
				fr_s = ++k;
				while (k < un && (is_digit(u[k]) || u[k] == '_'))
					k++;
				fr_e = k;
				if (!digits_ok(u + fr_s, fr_e - fr_s, 10))
					return cfg_fail_at(p, start,
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
					return cfg_fail_at(p, start, "write an exponent like 1e6 or 2.5E-3",
					                   "invalid float exponent");
			}
			if (k != un)
				return cfg_fail_at(p, start, bad_fix, "invalid value");
			if (!has_frac && !has_exp) {
				uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
				tpd_node *v;

				for (size_t d = 0; d < ip_end; d++) {
					if (u[d] == '_')
						continue;
					if (acc > (lim - (uint64_t)(u[d] - '0')) / 10)
						return cfg_fail_at(p, start,
						                   "use a value between -2^63 and 2^63-1",
						                   "integer out of range");
					acc = acc * 10 + (uint64_t)(u[d] - '0');
				}
				v = cfg_node_new(TPD_NODE_INT, line, col, depth);
				v->i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
				*out = v;
				return true;
			} else {
				char *clean = xmalloc(n + 1), *end;
				size_t m = 0;
				double d;
				tpd_node *v;

				for (size_t j = 0; j < n; j++)
					if (t[j] != '_')
						clean[m++] = t[j];
				clean[m] = 0;
				errno = 0;
				d = strtod(clean, &end);
				if (*end || (errno == ERANGE && isinf(d))) {
					free(clean);
					return cfg_fail_at(p, start, "use a smaller number",
					                   "float out of range");
				}
				free(clean);
				v = cfg_node_new(TPD_NODE_FLOAT, line, col, depth);
				v->f = d;
				*out = v;
				return true;
			}
		}
	}
}
