/* toml_lex.h - the TOML reader's lexical layer (toml_lex.c), shared with its grammar (toml.c):
 * whitespace, newlines and comments, strings with their escapes, keys and numbers. Private. */
#ifndef TPD_TOML_LEX_H
#define TPD_TOML_LEX_H

#include "cfgtree_impl.h"

/* Every byte access goes through peek(), which returns -1 past the end, so the reader can never
 * read past len whatever the input. */
static inline int peek(const parser *p, size_t k)
{
	return p->i + k < p->n ? (unsigned char)p->s[p->i + k] : -1;
}

static inline bool is_ws(int c)
{
	return c == ' ' || c == '\t';
}

static inline bool is_bare(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

static inline bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

typedef struct {
	size_t n;
	char *part[TPD_NODE_MAX_DEPTH + 1];
	size_t off[TPD_NODE_MAX_DEPTH + 1];
} keypath;

void toml_skip_ws(parser *p);
int toml_newline_len(parser *p);
bool toml_skip_ws_nl(parser *p);
bool toml_expect_eol(parser *p, const char *after);
bool toml_parse_string(parser *p, bool allow_ml, char **out);
void toml_keypath_free(keypath *k);
void toml_keypath_str(const keypath *k, size_t upto, char *buf, size_t len);
bool toml_parse_key(parser *p, keypath *k);
bool toml_parse_number(parser *p, int depth, tpd_node **out);

#endif
