/* config_impl.h - what the configuration loader's files share (private to src/config*.c).
 *
 *   config_table.c  the table of known keys: type, range, default, sample line and comment; the
 *                   defaults and the `configure` sample are both made from it (one source)
 *   config.c        parse → walk the tree against the table → validate → messages and warnings
 *   config_check.c  cross-field validation in upstream's order */
#ifndef TPD_CONFIG_IMPL_H
#define TPD_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/config.h"
#include "tpd/toml.h"

#define TPD_CFG_MAX_WARNINGS 64                                /* more are summarised in one line */
#define TPD_CFG_KEY_FILE_MAX 2000                              /* upstream's lib.ReadPassword buffer */
#define TPD_CFG_DURATION_MAX ((int64_t)366 * 24 * 3600 * 1000) /* a year: anything longer is a typo */

typedef enum {
	TPD_CFG_STR,     /* string */
	TPD_CFG_BOOL,    /* boolean */
	TPD_CFG_INT,     /* integer in [min, max] */
	TPD_CFG_DUR,     /* Go duration string (or integer nanoseconds), milliseconds in [min, max] */
	TPD_CFG_STRLIST, /* array of non-empty strings (tpd_cfg_strlist), at most max items */
	TPD_CFG_INTLIST, /* array of integers in [min, max] (tpd_cfg_intlist), at most 64 items */
} tpd_cfg_kind;

/* Frees a list's strings and empties it (config_table.c). */
void tpd_cfg_strlist_clear(tpd_cfg_strlist *l);

enum {
	TPD_CFG_F_LOADER = 1 << 0,   /* off is into tpd_cfg_loader, not tpd_config */
	TPD_CFG_F_SECRET = 1 << 1,   /* value must never be quoted */
	TPD_CFG_F_SET = 1 << 2,      /* the sample shows the line uncommented */
	TPD_CFG_F_HIDE = 1 << 3,     /* not in the sample (deprecated spelling) */
	TPD_CFG_F_RESOLVED = 1 << 4, /* the struct starts empty; validation substitutes def when unset */
};

/* What the walk collects besides the config itself. */
typedef struct {
	const char *name; /* file name for messages */
	tpd_config_warn_cb warn;
	void *ud;
	char *err;
	const tpd_node *root;
	char *auth_server;                    /* teleport.auth_server (deprecated) */
	char *severity;                       /* log.severity as written */
	char *format;                         /* log.format as written */
	char *ann_notify;                     /* [pagerduty.RequestAnnotations] notify_service */
	char *ann_services;                   /* [pagerduty.RequestAnnotations] services */
	const tpd_node *ann_table;            /* that table, if given */
	const char *ann_table_name;           /* the spelling used */
	char *warnings[TPD_CFG_MAX_WARNINGS]; /* held back until the API key is known, then redacted */
	int nwarn;                            /* warnings produced (may exceed the array) */
} tpd_cfg_loader;

typedef struct {
	const char *table;
	const char *key;
	tpd_cfg_kind kind;
	unsigned flags;
	size_t off;
	int64_t min, max;
	const char *example; /* a correct line, for type errors */
	const char *def;     /* the default as a TOML value ("900", "\"5m\"", "true"); NULL: none */
	const char *show;    /* the value the sample shows when it is not def (an example) */
	const char *doc;     /* the sample's comment after the line, or NULL */
	const char *pre;     /* comment lines the sample prints before the line, or NULL */
} tpd_cfg_field;

typedef struct {
	const char *name;
	const char *intro; /* the sample's lines before the table's keys, header included */
	const char *outro; /* the sample's lines after them, or NULL */
} tpd_cfg_table;

extern const tpd_cfg_field tpd_cfg_fields[];
extern const size_t tpd_cfg_nfields;
extern const tpd_cfg_table tpd_cfg_tables[];
extern const size_t tpd_cfg_ntables;
/* Upstream's accepted spellings of [pagerduty.RequestAnnotations]. */
extern const char *const tpd_cfg_ann_names[];
extern const size_t tpd_cfg_nann;

/* The default of a duration key in milliseconds (the table's def); 0 when it has none. */
int64_t tpd_cfg_default_ms(const char *table, const char *key);

/* Messages (config.c): "<file>:<line>:<col>: <what> (<fix>)" into ld->err; warnings are held back. */
tpd_err tpd_cfg_err(tpd_cfg_loader *ld, tpd_err code, int line, int col, const char *fix, const char *fmt,
                    ...) __attribute__((format(printf, 6, 7)));
void tpd_cfg_warn(tpd_cfg_loader *ld, int line, int col, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const char *tpd_cfg_type_name(tpd_node_type t);
/* The value at table.key (NULL when absent or null) and where to point for it: the value, else the
 * table header, else the top of the file. */
const tpd_node *tpd_cfg_node_of(const tpd_cfg_loader *ld, const char *table, const char *key);
void tpd_cfg_where(const tpd_cfg_loader *ld, const char *table, const char *key, int *line, int *col);

/* Reads the API key file and runs the cross-field checks in upstream's order (config_check.c). */
tpd_err tpd_cfg_validate(tpd_cfg_loader *ld, tpd_config *cfg);

#endif
