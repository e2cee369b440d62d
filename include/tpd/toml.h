/* toml.h - a small, strict TOML reader producing a configuration tree (tpd/cfgtree.h).
 *
 * Coverage: tables [a.b], arrays of tables [[a]], bare/quoted/dotted keys, basic strings with
 * every escape, literal strings, multi-line strings (with line-ending backslash), integers
 * (decimal with underscores, 0x/0o/0b), floats (incl. inf/nan), booleans, arrays (multi-line,
 * trailing comma, comments), inline tables, comments, LF and CRLF line ends, a leading UTF-8 BOM.
 * Dates and times are rejected with a hint to quote them. Duplicate keys and tables are errors.
 *
 * The reader is a pure function of (text, len): it never reads past len, rejects embedded NUL
 * bytes and invalid UTF-8, bounds nesting depth and table/array sizes (tpd/cfgtree.h), and never
 * echoes values from the input in an error (a config may hold a secret). Errors are one line:
 *   <name>:<line>:<col>: <what is wrong> (<how to fix it>)
 */
#ifndef TPD_TOML_H
#define TPD_TOML_H

#include <stddef.h>

#include "tpd/cfgtree.h"
#include "tpd/err.h"

/* Parses TOML text of len bytes (not necessarily NUL-terminated); name is used in errors. On
 * success *out is the root table (free with tpd_node_free); on failure returns TPD_ERR_PARSE and
 * fills err (TPD_ERRLEN bytes). */
tpd_err tpd_toml_parse(const char *name, const char *text, size_t len, tpd_node **out, char *err);

#endif
