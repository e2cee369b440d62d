/* toml.h - a small, strict TOML reader (and a YAML front end) producing one value tree.
 *
 * The config loader reads two formats: TOML (upstream's format) and YAML (what the Helm chart
 * renders). Both parse into the same tree of tpd_toml nodes: tables, arrays and scalars, each
 * remembering the line and column (1-based, columns counted in characters) where it was written,
 * so that config errors can point at the exact spot.
 *
 * TOML coverage: tables [a.b], arrays of tables [[a]], bare/quoted/dotted keys, basic strings with
 * every escape, literal strings, multi-line strings (with line-ending backslash), integers
 * (decimal with underscores, 0x/0o/0b), floats (incl. inf/nan), booleans, arrays (multi-line,
 * trailing comma, comments), inline tables, comments, LF and CRLF line ends, a leading UTF-8 BOM.
 * Dates and times are rejected with a hint to quote them. Duplicate keys and tables are errors.
 *
 * Both parsers are pure functions of (text, len): they never read past len, reject embedded NUL
 * bytes, bound nesting depth (TPD_TOML_MAX_DEPTH) and table/array sizes, and never echo values
 * from the input in an error (a config may hold a secret). Errors are one line:
 *   <name>:<line>:<col>: <what is wrong> (<how to fix it>)
 */
#ifndef TPD_TOML_H
#define TPD_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/err.h"

#define TPD_TOML_MAX_DEPTH   32    /* nesting of tables and arrays */
#define TPD_TOML_MAX_ENTRIES 4096  /* keys in one table */
#define TPD_TOML_MAX_ITEMS   65536 /* elements in one array */

typedef enum {
	TPD_TOML_TABLE = 0,
	TPD_TOML_ARRAY,
	TPD_TOML_STRING,
	TPD_TOML_INT,
	TPD_TOML_FLOAT,
	TPD_TOML_BOOL,
	TPD_TOML_NULL, /* YAML only: `~`, `null` or an empty plain value */
} tpd_toml_type;

typedef struct tpd_toml tpd_toml;

/* Parses TOML text of len bytes (not necessarily NUL-terminated); name is used in errors. On
 * success *out is the root table (free with tpd_toml_free); on failure returns TPD_ERR_PARSE and
 * fills err (TPD_ERRLEN bytes). */
tpd_err tpd_toml_parse(const char *name, const char *text, size_t len, tpd_toml **out, char *err);
/* Parses a single YAML document with libyaml into the same tree: mappings → tables, sequences →
 * arrays; quoted/block scalars → strings; plain true/false → bool, plain integers → int,
 * ~/null/empty → null, anything else → string. Anchors, aliases, tags other than !!str and
 * several documents are rejected. The root must be a mapping (an empty document is an empty
 * table). Same ownership and errors as tpd_toml_parse. */
tpd_err tpd_yaml_parse(const char *name, const char *text, size_t len, tpd_toml **out, char *err);
/* Frees a tree returned by a parser (NULL is a no-op). Only roots may be freed. */
void tpd_toml_free(tpd_toml *root);

/* Node type; "table", "array", "string", ... for messages. */
tpd_toml_type tpd_toml_type_of(const tpd_toml *v);
const char *tpd_toml_type_name(tpd_toml_type t);
/* Where the value was written (a table: its header, or the first key that created it). */
int tpd_toml_line(const tpd_toml *v);
int tpd_toml_col(const tpd_toml *v);

/* Scalar accessors; valid only for a node of the matching type (else "", 0, 0.0, false). The
 * string is owned by the tree and lives as long as it. Strings never contain NUL. */
const char *tpd_toml_str(const tpd_toml *v);
int64_t tpd_toml_int(const tpd_toml *v);
double tpd_toml_float(const tpd_toml *v);
bool tpd_toml_bool(const tpd_toml *v);

/* Number of entries of a table or elements of an array (0 for scalars). */
size_t tpd_toml_len(const tpd_toml *v);
/* Element i of an array or the value of entry i of a table (in file order); NULL if out of range. */
tpd_toml *tpd_toml_at(const tpd_toml *v, size_t i);
/* Key of entry i of a table, and where that key was written; NULL / 0 if out of range. */
const char *tpd_toml_key_at(const tpd_toml *v, size_t i);
int tpd_toml_key_line(const tpd_toml *v, size_t i);
int tpd_toml_key_col(const tpd_toml *v, size_t i);
/* Value of key in table v (exact match), or NULL if v is not a table or has no such key. */
tpd_toml *tpd_toml_get(const tpd_toml *v, const char *key);
/* Index of key in table v, or -1. */
long tpd_toml_index(const tpd_toml *v, const char *key);

#endif
