/* cfgtree_impl.h - internals shared by the configuration tree (cfgtree.c) and its readers
 * (toml.c, toml_lex.c, yaml.c): the node layout and builders, and the source-text position and
 * error helpers. Not part of the public API: only those files include it. */
#ifndef TPD_CFGTREE_IMPL_H
#define TPD_CFGTREE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/cfgtree.h"
#include "tpd/err.h"

/* TOML's "defined once" rules are tracked with flags on table nodes:
 *   T_IMPLICIT  created as an intermediate of a [a.b] header: may still be defined by [a] later;
 *   T_EXPLICIT  defined by its own [header]: a second header is an error;
 *   T_DOTTED    created by a dotted key (a.b = 1): may be extended by more dotted keys in the same
 *               section and get sub-tables, but never gets a [header] of its own;
 *   T_FROZEN    an inline table or a static array: nothing may be added afterwards;
 *   T_AOT       an array created by [[header]]: later [[header]]s append to it. */
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

struct tpd_node {
	tpd_node_type type;
	int line, col;    /* where the value (or table header) starts */
	int depth;        /* root = 0 */
	unsigned flags;   /* T_* */
	char *s;          /* STRING */
	int64_t i;        /* INT */
	double f;         /* FLOAT */
	bool b;           /* BOOL */
	size_t n, cap;    /* TABLE, ARRAY: number of children */
	tpd_node **items; /* TABLE, ARRAY: children */
	entry *keys;      /* TABLE: keys, parallel to items */
};

/* --- builders (cfgtree.c) --- */

tpd_node *cfg_node_new(tpd_node_type type, int line, int col, int depth);
/* Takes ownership of key and child. The caller has checked for duplicates and limits. */
void cfg_table_put(tpd_node *t, char *key, int line, int col, tpd_node *child);
void cfg_array_push(tpd_node *a, tpd_node *child);

/* --- source text, positions and errors (cfgtree.c) ---
 * Positions: line/column are computed from byte offsets with a forward-moving cache, so asking
 * for positions in file order is O(1) amortised. Columns count characters, not bytes. */

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
	tpd_node *root, *cur;
} parser;

void cfg_parser_init(parser *p, const char *name, const char *text, size_t len, char *err);
void cfg_position(parser *p, size_t off, int *line, int *col);
/* Record the first error: "<name>:<line>:<col>: <what> (<fix>)". Always return false. */
bool cfg_fail_at(parser *p, size_t off, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool cfg_fail_lc(parser *p, int line, int col, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid. */
size_t cfg_utf8_len(const unsigned char *s, size_t n);
/* Rejects NUL bytes and invalid UTF-8 anywhere in the input. */
bool cfg_check_bytes(parser *p);

#endif
