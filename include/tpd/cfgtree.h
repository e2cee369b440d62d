/* cfgtree.h - the configuration tree both config readers produce (tpd/toml.h, tpd/yaml.h).
 *
 * Tables, arrays and scalars, each remembering the line and column (1-based, columns counted in
 * characters) where it was written, so that config errors can point at the exact spot. The tree
 * does not know which format it came from. Limits below bound what either reader accepts. */
#ifndef TPD_CFGTREE_H
#define TPD_CFGTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPD_NODE_MAX_DEPTH   32    /* nesting of tables and arrays */
#define TPD_NODE_MAX_ENTRIES 4096  /* keys in one table */
#define TPD_NODE_MAX_ITEMS   65536 /* elements in one array */

typedef enum {
	TPD_NODE_TABLE = 0,
	TPD_NODE_ARRAY,
	TPD_NODE_STRING,
	TPD_NODE_INT,
	TPD_NODE_FLOAT,
	TPD_NODE_BOOL,
	TPD_NODE_NULL, /* YAML only: `~`, `null` or an empty plain value */
} tpd_node_type;

typedef struct tpd_node tpd_node;

/* Frees a tree returned by a parser (NULL is a no-op). Only roots may be freed. */
void tpd_node_free(tpd_node *root);

/* Node type; "table", "array", "string", ... for messages. */
tpd_node_type tpd_node_type_of(const tpd_node *v);
const char *tpd_node_type_name(tpd_node_type t);
/* Where the value was written (a table: its header, or the first key that created it). */
int tpd_node_line(const tpd_node *v);
int tpd_node_col(const tpd_node *v);

/* Scalar accessors; valid only for a node of the matching type (else "", 0, 0.0, false). The
 * string is owned by the tree and lives as long as it. Strings never contain NUL. */
const char *tpd_node_str(const tpd_node *v);
int64_t tpd_node_int(const tpd_node *v);
double tpd_node_float(const tpd_node *v);
bool tpd_node_bool(const tpd_node *v);

/* Number of entries of a table or elements of an array (0 for scalars). */
size_t tpd_node_len(const tpd_node *v);
/* Element i of an array or the value of entry i of a table (in file order); NULL if out of range. */
tpd_node *tpd_node_at(const tpd_node *v, size_t i);
/* Key of entry i of a table, and where that key was written; NULL / 0 if out of range. */
const char *tpd_node_key_at(const tpd_node *v, size_t i);
int tpd_node_key_line(const tpd_node *v, size_t i);
int tpd_node_key_col(const tpd_node *v, size_t i);
/* Value of key in table v (exact match), or NULL if v is not a table or has no such key. */
tpd_node *tpd_node_get(const tpd_node *v, const char *key);
/* Index of key in table v, or -1. */
long tpd_node_index(const tpd_node *v, const char *key);

#endif
