/* Unit tests for toml.c: the TOML grammar (values, tables, positions), every error with its
 * line:col, the YAML front end, and robustness (truncated, mutated and random input never
 * crashes or reads past the given length: inputs are copied into exact-size heap buffers so that
 * ASan catches any over-read). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "tpd/toml.h"
#include "tpd/yaml.h"
#include "tpd/util.h"

/* Parses text[0..len) from an exact-size heap copy (no terminating NUL). */
static tpd_err parse_n(bool yaml, const char *text, size_t len, tpd_node **out, char *err)
{
	char *copy = malloc(len ? len : 1);
	tpd_err rc;

	assert_non_null(copy);
	memcpy(copy, text, len);
	rc = yaml ? tpd_yaml_parse("t", copy, len, out, err) : tpd_toml_parse("t", copy, len, out, err);
	free(copy);
	return rc;
}

static tpd_node *parse_ok(const char *text)
{
	char err[TPD_ERRLEN] = "";
	tpd_node *t = NULL;
	tpd_err rc = parse_n(false, text, strlen(text), &t, err);

	if (rc)
		fail_msg("unexpected error: %s\ninput:\n%s", err, text);
	assert_non_null(t);
	return t;
}

static tpd_node *yaml_ok(const char *text)
{
	char err[TPD_ERRLEN] = "";
	tpd_node *t = NULL;
	tpd_err rc = parse_n(true, text, strlen(text), &t, err);

	if (rc)
		fail_msg("unexpected error: %s\ninput:\n%s", err, text);
	assert_non_null(t);
	return t;
}

/* Follows a dotted path of plain keys ("a.b.c"). */
static tpd_node *at(const tpd_node *t, const char *path)
{
	char buf[256], *save = NULL;
	const tpd_node *v = t;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
		v = tpd_node_get(v, p);
		if (!v)
			fail_msg("no key %s in path %s", p, path);
	}
	return (tpd_node *)v;
}

static void expect_str(const tpd_node *t, const char *path, const char *want)
{
	tpd_node *v = at(t, path);

	assert_int_equal(tpd_node_type_of(v), TPD_NODE_STRING);
	assert_string_equal(tpd_node_str(v), want);
}

static void expect_int(const tpd_node *t, const char *path, int64_t want)
{
	tpd_node *v = at(t, path);

	assert_int_equal(tpd_node_type_of(v), TPD_NODE_INT);
	assert_true(tpd_node_int(v) == want);
}

static void expect_pos(const tpd_node *t, const char *path, int line, int col)
{
	tpd_node *v = at(t, path);

	if (tpd_node_line(v) != line || tpd_node_col(v) != col)
		fail_msg("%s at %d:%d, expected %d:%d", path, tpd_node_line(v), tpd_node_col(v), line, col);
}

static void test_basic_document(void **state)
{
	const char *doc = "# top comment\n"
	                  "title = \"hello\" # trailing comment\n"
	                  "\n"
	                  "[teleport]\n"
	                  "addr = \"teleport.example.com:443\"\n"
	                  "  refresh_identity = true\n"
	                  "off = false\n"
	                  "[pagerduty]\n"
	                  "api_key = 'literal \\n stays'\n"
	                  "[pagerduty.RequestAnnotations]\n"
	                  "services = \"svc\"\n";
	tpd_node *t;

	(void)state;
	t = parse_ok(doc);
	assert_int_equal(tpd_node_type_of(t), TPD_NODE_TABLE);
	assert_int_equal(tpd_node_len(t), 3);
	assert_string_equal(tpd_node_key_at(t, 0), "title");
	assert_string_equal(tpd_node_key_at(t, 1), "teleport");
	assert_string_equal(tpd_node_key_at(t, 2), "pagerduty");
	expect_str(t, "title", "hello");
	expect_pos(t, "title", 2, 9);
	expect_str(t, "teleport.addr", "teleport.example.com:443");
	expect_pos(t, "teleport.addr", 5, 8);
	assert_true(tpd_node_bool(at(t, "teleport.refresh_identity")));
	assert_int_equal(tpd_node_type_of(at(t, "teleport.off")), TPD_NODE_BOOL);
	assert_false(tpd_node_bool(at(t, "teleport.off")));
	expect_pos(t, "teleport.refresh_identity", 6, 22);
	assert_int_equal(tpd_node_key_line(at(t, "teleport"), 1), 6);
	assert_int_equal(tpd_node_key_col(at(t, "teleport"), 1), 3);
	expect_pos(t, "teleport", 4, 1);
	expect_str(t, "pagerduty.api_key", "literal \\n stays");
	expect_str(t, "pagerduty.RequestAnnotations.services", "svc");
	expect_pos(t, "pagerduty.RequestAnnotations", 10, 1);
	/* accessors on wrong types are safe */
	assert_string_equal(tpd_node_str(at(t, "teleport")), "");
	assert_null(tpd_node_get(at(t, "title"), "x"));
	assert_null(tpd_node_at(t, 99));
	assert_null(tpd_node_key_at(t, 99));
	assert_int_equal(tpd_node_index(t, "nope"), -1);
	tpd_node_free(t);
	tpd_node_free(NULL);
}

static void test_strings(void **state)
{
	const char *doc = "esc = \"b\\b t\\t n\\n f\\f r\\r q\\\" bs\\\\ u\\u00e9 U\\U0001F600\"\n"
	                  "lit = 'C:\\Users\\x \"q\"'\n"
	                  "empty = \"\"\n"
	                  "eliteral = ''\n"
	                  "ml = \"\"\"\nline1\nline2 \\\n      joined\\\n\n   again\"\"\"\n"
	                  "ml2 = \"\"\"quotes \"\" inside\"\"\"\"\n"
	                  "mll = '''\nraw \\n text\n'''\n"
	                  "mll2 = '''ends with quote'''''\n"
	                  "\"quoted key\" = 1\n"
	                  "'lit key' = 2\n"
	                  "\"\" = 3\n"
	                  "\"k\\u00e9y\" = 4\n"
	                  "tab = \"a\tb\"\n";
	tpd_node *t;

	(void)state;
	t = parse_ok(doc);
	expect_str(t, "esc", "b\b t\t n\n f\f r\r q\" bs\\ u\xc3\xa9 U\xf0\x9f\x98\x80");
	expect_str(t, "lit", "C:\\Users\\x \"q\"");
	expect_str(t, "empty", "");
	expect_str(t, "eliteral", "");
	expect_str(t, "ml", "line1\nline2 joinedagain");
	expect_str(t, "ml2", "quotes \"\" inside\"");
	expect_str(t, "mll", "raw \\n text\n");
	expect_str(t, "mll2", "ends with quote''");
	assert_int_equal(tpd_node_int(tpd_node_get(t, "quoted key")), 1);
	assert_int_equal(tpd_node_int(tpd_node_get(t, "lit key")), 2);
	assert_int_equal(tpd_node_int(tpd_node_get(t, "")), 3);
	assert_int_equal(tpd_node_int(tpd_node_get(t, "k\xc3\xa9y")), 4);
	expect_str(t, "tab", "a\tb");
	tpd_node_free(t);
}

static void test_numbers(void **state)
{
	const char *doc =
	    "a = 42\nb = +17\nc = -5\nd = 1_000_000\ne = 0\nf = -0\n"
	    "g = 9223372036854775807\nh = -9223372036854775808\n"
	    "hx = 0xDEAD_beef\noc = 0o755\nbi = 0b1101\n"
	    "f1 = 1.5\nf2 = -0.25e2\nf3 = 6E-3\nf4 = 1_0.5_0\nf5 = inf\nf6 = -inf\nf7 = nan\nf8 = 0e0\n";
	tpd_node *t;

	(void)state;
	t = parse_ok(doc);
	expect_int(t, "a", 42);
	expect_int(t, "b", 17);
	expect_int(t, "c", -5);
	expect_int(t, "d", 1000000);
	expect_int(t, "e", 0);
	expect_int(t, "f", 0);
	expect_int(t, "g", INT64_MAX);
	expect_int(t, "h", INT64_MIN);
	expect_int(t, "hx", 0xdeadbeef);
	expect_int(t, "oc", 0755);
	expect_int(t, "bi", 13);
	assert_int_equal(tpd_node_type_of(at(t, "f1")), TPD_NODE_FLOAT);
	assert_true(tpd_node_float(at(t, "f1")) == 1.5);
	assert_true(tpd_node_float(at(t, "f2")) == -25.0);
	assert_true(fabs(tpd_node_float(at(t, "f3")) - 0.006) < 1e-12);
	assert_true(tpd_node_float(at(t, "f4")) == 10.5);
	assert_true(isinf(tpd_node_float(at(t, "f5"))) && tpd_node_float(at(t, "f5")) > 0);
	assert_true(isinf(tpd_node_float(at(t, "f6"))) && tpd_node_float(at(t, "f6")) < 0);
	assert_true(isnan(tpd_node_float(at(t, "f7"))));
	assert_true(tpd_node_float(at(t, "f8")) == 0.0);
	tpd_node_free(t);
}

static void test_arrays_and_inline_tables(void **state)
{
	const char *doc = "a = [ 1, 2, 3 ]\n"
	                  "b = [\n  \"x\", # comment inside\n\n  # a comment line\n  \"y\",\n]\n"
	                  "c = [ [1, 2], ['a'], [], {k = 1} ]\n"
	                  "d = []\n"
	                  "it = { name = \"n\", sub.key = true, deep = { x = 1 } }\n"
	                  "e = {}\n"
	                  "after = 1\n";
	tpd_node *t, *b, *c;

	(void)state;
	t = parse_ok(doc);
	assert_int_equal(tpd_node_type_of(at(t, "a")), TPD_NODE_ARRAY);
	assert_int_equal(tpd_node_len(at(t, "a")), 3);
	assert_int_equal(tpd_node_int(tpd_node_at(at(t, "a"), 2)), 3);
	b = at(t, "b");
	assert_int_equal(tpd_node_len(b), 2);
	assert_string_equal(tpd_node_str(tpd_node_at(b, 1)), "y");
	assert_int_equal(tpd_node_line(tpd_node_at(b, 1)), 6);
	assert_int_equal(tpd_node_col(tpd_node_at(b, 1)), 3);
	c = at(t, "c");
	assert_int_equal(tpd_node_len(c), 4);
	assert_int_equal(tpd_node_len(tpd_node_at(c, 0)), 2);
	assert_int_equal(tpd_node_len(tpd_node_at(c, 2)), 0);
	assert_int_equal(tpd_node_type_of(tpd_node_at(c, 3)), TPD_NODE_TABLE);
	assert_int_equal(tpd_node_len(at(t, "d")), 0);
	expect_str(t, "it.name", "n");
	assert_true(tpd_node_bool(at(t, "it.sub.key")));
	expect_int(t, "it.deep.x", 1);
	assert_int_equal(tpd_node_type_of(at(t, "e")), TPD_NODE_TABLE);
	expect_int(t, "after", 1);
	expect_pos(t, "after", 12, 9);
	tpd_node_free(t);
}

static void test_tables_dotted_and_aot(void **state)
{
	const char *doc = "top.level = 1\n"
	                  "top.other = 2\n"
	                  "[a.b.c]\n"
	                  "x = 1\n"
	                  "[a]\n"
	                  "y = 2\n"
	                  "[ a . \"quoted.part\" ]\n"
	                  "z = 3\n"
	                  "[fruit]\n"
	                  "apple.color = \"red\"\n"
	                  "apple.taste.sweet = true\n"
	                  "[fruit.apple.texture]\n"
	                  "smooth = true\n"
	                  "[[srv]]\n"
	                  "name = \"one\"\n"
	                  "[[srv]]\n"
	                  "name = \"two\"\n"
	                  "[srv.sub]\n"
	                  "k = 1\n";
	tpd_node *t, *srv;

	(void)state;
	t = parse_ok(doc);
	expect_int(t, "top.level", 1);
	expect_int(t, "top.other", 2);
	expect_int(t, "a.b.c.x", 1);
	expect_int(t, "a.y", 2);
	expect_int(tpd_node_get(at(t, "a"), "quoted.part"), "z", 3);
	expect_str(t, "fruit.apple.color", "red");
	assert_true(tpd_node_bool(at(t, "fruit.apple.taste.sweet")));
	assert_true(tpd_node_bool(at(t, "fruit.apple.texture.smooth")));
	srv = at(t, "srv");
	assert_int_equal(tpd_node_type_of(srv), TPD_NODE_ARRAY);
	assert_int_equal(tpd_node_len(srv), 2);
	expect_str(tpd_node_at(srv, 0), "name", "one");
	expect_str(tpd_node_at(srv, 1), "name", "two");
	expect_int(tpd_node_at(srv, 1), "sub.k", 1);
	/* [a] re-opened an implicit table: its position is now the [a] header */
	expect_pos(t, "a", 5, 1);
	tpd_node_free(t);
}

static void test_crlf_and_bom(void **state)
{
	const char *doc =
	    "\xef\xbb\xbf# bom\r\n[t]\r\nk = \"v\" # c\r\nml = \"\"\"\r\na\r\nb\"\"\"\r\nn = 1\r\n";
	tpd_node *t;

	(void)state;
	t = parse_ok(doc);
	expect_str(t, "t.k", "v");
	expect_pos(t, "t.k", 3, 5);
	expect_str(t, "t.ml", "a\nb");
	expect_int(t, "t.n", 1);
	expect_pos(t, "t.n", 7, 5);
	tpd_node_free(t);
	/* empty and comment-only documents */
	t = parse_ok("");
	assert_int_equal(tpd_node_len(t), 0);
	tpd_node_free(t);
	t = parse_ok("# nothing\n\n   \t\n");
	assert_int_equal(tpd_node_len(t), 0);
	tpd_node_free(t);
	/* no newline at the end */
	t = parse_ok("k = 1");
	expect_int(t, "k", 1);
	tpd_node_free(t);
}

static void test_columns_count_characters(void **state)
{
	tpd_node *t;

	(void)state;
	/* "é" is two bytes but one column */
	t = parse_ok("\"\xc3\xa9\" = \"\xc3\xa9\" \nx = [\"\xc3\xa9\xc3\xa9\", 5]\n");
	expect_pos(t, "\xc3\xa9", 1, 7);
	assert_int_equal(tpd_node_col(tpd_node_at(at(t, "x"), 1)), 12);
	tpd_node_free(t);
}

struct bad {
	const char *text;
	int line, col;
	const char *what;
};

static const struct bad bad_toml[] = {
    {"a = 1\na = 2\n", 2, 1, "duplicate key a"},
    {"[t]\nk = 1\n[t]\n", 3, 1, "table [t] is defined twice"},
    {"a.b = 1\na.b = 2\n", 2, 3, "duplicate key a.b"},
    {"a = 1\na.b = 2\n", 2, 1, "cannot add keys to a"},
    {"a.b = 1\n[a.b]\n", 2, 1, "already a value"},
    {"[a]\nb.c = 1\n[a.b]\n", 3, 1, "defined by dotted keys"},
    {"[x.y]\n[x]\ny.z = 1\n", 3, 1, "cannot add keys to y"},
    {"x = {a = 1}\n[x.b]\n", 2, 2, "inline table"},
    {"x = {a = 1}\n[x]\n", 2, 1, "already an inline table"},
    {"x = {a.b = 1}\nx.a.c = 2\n", 2, 1, "cannot add keys to x"},
    {"x = [1]\n[[x]]\n", 2, 1, "cannot append [[x]]"},
    {"[a]\n[[a]]\n", 2, 1, "cannot append [[a]]"},
    {"[[a]]\n[a]\n", 2, 1, "already an array"},
    {"a = \"unterminated\n", 1, 5, "unterminated string"},
    {"a = 'unterminated\n", 1, 5, "unterminated string"},
    {"a = \"\"\"never closed\n\n", 1, 5, "unterminated multi-line string"},
    {"a = '''never closed", 1, 5, "unterminated multi-line string"},
    {"\n\na = \"bad \\q escape\"\n", 3, 10, "invalid escape"},
    {"a = \"\\u12\"\n", 1, 6, "incomplete unicode escape"},
    {"a = \"\\UFFFFFFFF\"\n", 1, 6, "invalid unicode code point"},
    {"a = \"\\uD800\"\n", 1, 6, "invalid unicode code point"},
    {"a = \"\\u0000\"\n", 1, 6, "NUL"},
    {"a = \"ctl \x01\"\n", 1, 10, "control character in a string"},
    {"a = 1 # ctl \x7f\n", 1, 13, "control character in a comment"},
    {"a = abc\n", 1, 5, "invalid value"},
    {"a = True\n", 1, 5, "invalid value"},
    {"a =\n", 1, 4, "missing value"},
    {"a = # comment\n", 1, 5, "missing value"},
    {"= 1\n", 1, 1, "missing key"},
    {"a b = 1\n", 1, 3, "expected '='"},
    {"a\n", 1, 2, "expected '='"},
    {"a = 1 b = 2\n", 1, 7, "unexpected text after the value"},
    {"a = \"x\" y\n", 1, 9, "unexpected text after the value"},
    {"[t] x = 1\n", 1, 5, "unexpected text after the table header"},
    {"[t\n", 1, 3, "expected ']'"},
    {"[[t]\n", 1, 4, "expected ']]'"},
    {"[]\n", 1, 2, "invalid character in a key"},
    {"[t.]\n", 1, 4, "invalid character in a key"},
    {"k@y = 1\n", 1, 2, "expected '='"},
    {"@ = 1\n", 1, 1, "invalid character in a key"},
    {"a = 012\n", 1, 5, "leading zeros"},
    {"a = 1__0\n", 1, 5, "invalid value"},
    {"a = _1\n", 1, 5, "invalid value"},
    {"a = 1_\n", 1, 5, "invalid value"},
    {"a = 9223372036854775808\n", 1, 5, "integer out of range"},
    {"a = -9223372036854775809\n", 1, 5, "integer out of range"},
    {"a = 0x8000000000000000\n", 1, 5, "integer out of range"},
    {"a = -0x10\n", 1, 5, "cannot have a sign"},
    {"a = 0xZZ\n", 1, 5, "invalid hexadecimal"},
    {"a = 0b102\n", 1, 5, "invalid binary"},
    {"a = 1.\n", 1, 5, "invalid float"},
    {"a = .5\n", 1, 5, "expected a value"},
    {"a = 1e\n", 1, 5, "invalid float exponent"},
    {"a = 1e999\n", 1, 5, "float out of range"},
    {"a = 1979-05-27\n", 1, 5, "dates and times"},
    {"a = 07:32:00\n", 1, 5, "dates and times"},
    {"a = [1,,2]\n", 1, 8, "missing value before ','"},
    {"a = [1 2]\n", 1, 8, "expected ',' or ']'"},
    {"a = [1,\n2\n", 1, 5, "unterminated array"},
    {"a = {x = 1,}\n", 1, 12, "trailing comma"},
    {"a = {x = 1\n}\n", 1, 11, "newline inside an inline table"},
    {"a = {x = 1 y = 2}\n", 1, 12, "expected ',' or '}'"},
    {"a = {x = 1, x = 2}\n", 1, 13, "duplicate key x"},
    {"a = 1\r\n\rb = 2\n", 2, 1, "carriage return"},
    {"a = \"x\"\"\"\"\"\"\n", 1, 8, "unexpected text"},
    {"a = \"\"\"x\"\"\"\"\"\"\n", 1, 14, "too many quotes"},
    {"\"\"\"k\"\"\" = 1\n", 1, 1, "multi-line string used as a key"},
    {"a = \"\xff\"\n", 1, 6, "invalid UTF-8"},
    {"a = \"\xc0\xaf\"\n", 1, 6, "invalid UTF-8"},
    {"a = \"\xed\xa0\x80\"\n", 1, 6, "invalid UTF-8"},
    {"a = 1\nb = 2\n\xe2\x82", 3, 1, "invalid UTF-8"},
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_toml) / sizeof(bad_toml[0]); i++) {
		const struct bad *b = &bad_toml[i];
		char err[TPD_ERRLEN] = "", prefix[64];
		tpd_node *t = NULL;
		tpd_err rc = parse_n(false, b->text, strlen(b->text), &t, err);

		if (rc != TPD_ERR_PARSE)
			fail_msg("case %zu: expected an error for:\n%s", i, b->text);
		assert_null(t);
		snprintf(prefix, sizeof(prefix), "t:%d:%d: ", b->line, b->col);
		if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, b->what))
			fail_msg("case %zu: got \"%s\", want prefix \"%s\" and \"%s\"", i, err, prefix,
			         b->what);
		/* every message ends with a parenthesised fix and is one line */
		assert_true(err[strlen(err) - 1] == ')');
		assert_null(strchr(err, '\n'));
	}
}

static void test_nul_and_exact_length(void **state)
{
	char err[TPD_ERRLEN];
	tpd_node *t = NULL;
	static const char with_nul[] = "a = 1\nb = \"x\0y\"\n";

	(void)state;
	assert_int_equal(parse_n(false, with_nul, sizeof(with_nul) - 1, &t, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "t:2:7: NUL byte"));
	assert_int_equal(parse_n(true, with_nul, sizeof(with_nul) - 1, &t, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "t:2:7: NUL byte"));
	/* len stops the parser even if the text goes on: "k = 12" parsed as "k = 1" */
	assert_int_equal(tpd_toml_parse("t", "k = 12", 5, &t, err), TPD_ERR_OK);
	expect_int(t, "k", 1);
	tpd_node_free(t);
	assert_int_equal(tpd_toml_parse("t", NULL, 0, &t, err), TPD_ERR_OK);
	assert_int_equal(tpd_node_len(t), 0);
	tpd_node_free(t);
}

static void test_depth_limits(void **state)
{
	char buf[4096], err[TPD_ERRLEN];
	tpd_node *t = NULL;
	size_t n;

	(void)state;
	/* 31 nested arrays inside a key of the root: depth 32 is allowed */
	n = (size_t)snprintf(buf, sizeof(buf), "a = ");
	for (int i = 0; i < 31; i++)
		buf[n++] = '[';
	for (int i = 0; i < 31; i++)
		buf[n++] = ']';
	buf[n] = 0;
	assert_int_equal(parse_n(false, buf, n, &t, err), TPD_ERR_OK);
	tpd_node_free(t);
	/* far too deep */
	n = (size_t)snprintf(buf, sizeof(buf), "a = ");
	for (int i = 0; i < 1000; i++)
		buf[n++] = '[';
	buf[n] = 0;
	assert_int_equal(parse_n(false, buf, n, &t, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "nesting too deep"));
	n = (size_t)snprintf(buf, sizeof(buf), "a = ");
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{b=");
	assert_int_equal(parse_n(false, buf, n, &t, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "nesting too deep"));
	/* long dotted keys and headers */
	n = (size_t)snprintf(buf, sizeof(buf), "[a");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".a");
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "]\n");
	assert_int_equal(parse_n(false, buf, n, &t, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "too many dotted parts"));
	n = 0;
	for (int i = 0; i < 32; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sk", i ? "." : "");
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, " = 1\n");
	assert_int_equal(parse_n(false, buf, n, &t, err), TPD_ERR_OK);
	tpd_node_free(t);
	n = 0;
	for (int i = 0; i < 33; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sk", i ? "." : "");
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, " = 1\n");
	assert_int_equal(parse_n(false, buf, n, &t, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "nesting too deep"));
}

static const char sample[] =
    "# sample\n"
    "[teleport]\n"
    "addr = \"teleport.example.com:443\" # c\n"
    "identity = '/var/lib/id'\n"
    "refresh_identity = true\n"
    "nums = [1, 0x1f, -2_000, 1.5e3, inf, { a = \"\\u00e9\" }, [ 'x', \"\"\"y\"\"\" ],]\n"
    "[pagerduty]\n"
    "api_key = \"\"\"\nmulti \\\n  line\"\"\"\n"
    "lit = '''\nraw'''\n"
    "dotted.key.\"q\" = false\n"
    "[[aot]]\n"
    "x = 1\n"
    "[aot.sub]\r\n"
    "y = 2\n";

static void test_truncated_and_mutated_never_crash(void **state)
{
	size_t len = sizeof(sample) - 1;
	char err[TPD_ERRLEN], *m = malloc(len);
	tpd_node *t = NULL;
	static const unsigned char subst[] = {0,   '"', '\'', '[', ']',  '{',  '}', '\\', '\n', '\r',
	                                      '=', '.', ',',  '#', 0xff, 0xc3, 'x', '1',  ' '};

	(void)state;
	assert_non_null(m);
	assert_int_equal(parse_n(false, sample, len, &t, err), TPD_ERR_OK);
	tpd_node_free(t);
	for (size_t n = 0; n <= len; n++) {
		t = NULL;
		if (parse_n(false, sample, n, &t, err) == TPD_ERR_OK)
			tpd_node_free(t);
		else
			assert_null(t);
	}
	for (size_t pos = 0; pos < len; pos++) {
		for (size_t s = 0; s < sizeof(subst); s++) {
			memcpy(m, sample, len);
			m[pos] = (char)subst[s];
			t = NULL;
			if (parse_n(false, m, len, &t, err) == TPD_ERR_OK)
				tpd_node_free(t);
			else
				assert_true(strncmp(err, "t:", 2) == 0);
		}
	}
	free(m);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_random_input_never_crashes(void **state)
{
	static const char alphabet[] = "ab1_-.=\"'[]{},#\n\r\t \\u0e+:x";
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char buf[256], err[TPD_ERRLEN];

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t n = xorshift(&seed) % sizeof(buf);
		bool bytes = round % 4 == 0;
		tpd_node *t = NULL;

		for (size_t i = 0; i < n; i++) {
			uint64_t r = xorshift(&seed);

			buf[i] = bytes ? (char)(r & 0xff) : alphabet[r % (sizeof(alphabet) - 1)];
		}
		if (parse_n(false, buf, n, &t, err) == TPD_ERR_OK)
			tpd_node_free(t);
		t = NULL;
		if (round % 2 == 0 && parse_n(true, buf, n, &t, err) == TPD_ERR_OK)
			tpd_node_free(t);
	}
}

/* --- YAML --------------------------------------------------------------------------------------- */

static void test_yaml_mapping(void **state)
{
	const char *doc = "teleport:\n"
	                  "  addr: teleport.example.com:443\n"
	                  "  refresh_identity: true\n"
	                  "  off: False\n"
	                  "pagerduty:\n"
	                  "  api_key: \"12345\"\n"
	                  "  plain_num: 12345\n"
	                  "  neg: -7\n"
	                  "  big: 99999999999999999999\n"
	                  "  yes_is_string: yes\n"
	                  "  float_is_string: 1.5\n"
	                  "  single: 'true'\n"
	                  "  tagged: !!str 42\n"
	                  "  empty:\n"
	                  "  tilde: ~\n"
	                  "  block: |\n"
	                  "    line one\n"
	                  "    line two\n"
	                  "log: {output: stdout, severity: INFO}\n"
	                  "list: [a, 1, {k: v}]\n"
	                  "blocklist:\n"
	                  "  - x\n"
	                  "  - y\n";
	tpd_node *t;

	(void)state;
	t = yaml_ok(doc);
	expect_str(t, "teleport.addr", "teleport.example.com:443");
	expect_pos(t, "teleport.addr", 2, 9);
	assert_int_equal(tpd_node_key_line(at(t, "teleport"), 0), 2);
	assert_int_equal(tpd_node_key_col(at(t, "teleport"), 0), 3);
	assert_int_equal(tpd_node_type_of(at(t, "teleport.refresh_identity")), TPD_NODE_BOOL);
	assert_true(tpd_node_bool(at(t, "teleport.refresh_identity")));
	assert_int_equal(tpd_node_type_of(at(t, "teleport.off")), TPD_NODE_BOOL);
	assert_false(tpd_node_bool(at(t, "teleport.off")));
	expect_str(t, "pagerduty.api_key", "12345");
	expect_int(t, "pagerduty.plain_num", 12345);
	expect_int(t, "pagerduty.neg", -7);
	expect_str(t, "pagerduty.big", "99999999999999999999");
	expect_str(t, "pagerduty.yes_is_string", "yes");
	expect_str(t, "pagerduty.float_is_string", "1.5");
	expect_str(t, "pagerduty.single", "true");
	expect_str(t, "pagerduty.tagged", "42");
	assert_int_equal(tpd_node_type_of(at(t, "pagerduty.empty")), TPD_NODE_NULL);
	assert_int_equal(tpd_node_type_of(at(t, "pagerduty.tilde")), TPD_NODE_NULL);
	expect_str(t, "pagerduty.block", "line one\nline two\n");
	expect_str(t, "log.output", "stdout");
	assert_int_equal(tpd_node_type_of(at(t, "list")), TPD_NODE_ARRAY);
	assert_int_equal(tpd_node_len(at(t, "list")), 3);
	expect_str(tpd_node_at(at(t, "list"), 2), "k", "v");
	assert_int_equal(tpd_node_len(at(t, "blocklist")), 2);
	assert_int_equal(tpd_node_line(tpd_node_at(at(t, "blocklist"), 1)), 23);
	tpd_node_free(t);

	t = yaml_ok("");
	assert_int_equal(tpd_node_type_of(t), TPD_NODE_TABLE);
	assert_int_equal(tpd_node_len(t), 0);
	tpd_node_free(t);
	t = yaml_ok("---\n# only a comment\n");
	assert_int_equal(tpd_node_len(t), 0);
	tpd_node_free(t);
	t = yaml_ok("---\na: 1\n...\n");
	expect_int(t, "a", 1);
	tpd_node_free(t);
}

static const struct bad bad_yaml[] = {
    {"a: &x 1\nb: *x\n", 1, 4, "anchors are not supported"},
    {"a: 1\nb: *x\n", 2, 4, "aliases"},
    {"a: 1\n---\nb: 2\n", 2, 1, "several YAML documents"},
    {"- a\n- b\n", 1, 1, "top level of the file must be a mapping"},
    {"just text\n", 1, 1, "top level of the file must be a mapping"},
    {"a: 1\na: 2\n", 2, 1, "duplicate key a"},
    {"t:\n  k: 1\n  k: 2\n", 3, 3, "duplicate key k"},
    {"a: [1, 2\n", 2, 1, "YAML syntax error"},
    {"a:\n\tb: 1\n", 2, 1, "YAML syntax error"},
    {"a: !custom x\n", 1, 4, "tags are not supported"},
    {"? [a, b]\n: 1\n", 1, 3, "keys must be scalars"},
    {"a: \"unterminated\n", 2, 1, "YAML syntax error"},
    {"a: b: c\n", 1, 5, "YAML syntax error"},
};

static void test_yaml_errors(void **state)
{
	char buf[2048];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_yaml) / sizeof(bad_yaml[0]); i++) {
		const struct bad *b = &bad_yaml[i];
		char err[TPD_ERRLEN] = "", prefix[64];
		tpd_node *t = NULL;
		tpd_err rc = parse_n(true, b->text, strlen(b->text), &t, err);

		if (rc != TPD_ERR_PARSE)
			fail_msg("case %zu: expected an error for:\n%s", i, b->text);
		assert_null(t);
		snprintf(prefix, sizeof(prefix), "t:%d:%d: ", b->line, b->col);
		if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, b->what))
			fail_msg("case %zu: got \"%s\", want prefix \"%s\" and \"%s\"", i, err, prefix,
			         b->what);
		assert_null(strchr(err, '\n'));
	}
	/* depth: 100 nested flow sequences */
	for (int i = 0; i < 100; i++)
		buf[n++] = '[';
	for (int i = 0; i < 100; i++)
		buf[n++] = ']';
	{
		char err[TPD_ERRLEN];
		tpd_node *t = NULL;
		char doc[2100];
		size_t dn = (size_t)snprintf(doc, sizeof(doc), "a: %.*s\n", (int)n, buf);

		assert_int_equal(parse_n(true, doc, dn, &t, err), TPD_ERR_PARSE);
		assert_non_null(strstr(err, "nesting too deep"));
	}
}

static void test_yaml_truncated_never_crash(void **state)
{
	const char *doc = "teleport:\n  addr: \"x:443\"\n  identity: /id\npagerduty:\n  api_key: 'k'\n"
	                  "  list: [1, {a: b}, \"c\"]\n  block: |\n    text\nlog: {output: stdout}\n";
	size_t len = strlen(doc);
	char err[TPD_ERRLEN];

	(void)state;
	for (size_t n = 0; n <= len; n++) {
		tpd_node *t = NULL;

		if (parse_n(true, doc, n, &t, err) == TPD_ERR_OK)
			tpd_node_free(t);
		else
			assert_true(strncmp(err, "t:", 2) == 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_document),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_arrays_and_inline_tables),
	    cmocka_unit_test(test_tables_dotted_and_aot),
	    cmocka_unit_test(test_crlf_and_bom),
	    cmocka_unit_test(test_columns_count_characters),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_nul_and_exact_length),
	    cmocka_unit_test(test_depth_limits),
	    cmocka_unit_test(test_truncated_and_mutated_never_crash),
	    cmocka_unit_test(test_random_input_never_crashes),
	    cmocka_unit_test(test_yaml_mapping),
	    cmocka_unit_test(test_yaml_errors),
	    cmocka_unit_test(test_yaml_truncated_never_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
