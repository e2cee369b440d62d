/* err.h - the one error type of teleport-pagerduty.
 *
 * Every action-named function returns a tpd_err (0 = OK) and, where it can say more, fills a
 * caller-supplied text buffer of TPD_ERRLEN bytes. Low-level modules never log: the caller with
 * context logs once. Codes and their names come from one table (TPD_ERR_MAP). */
#ifndef TPD_ERR_H
#define TPD_ERR_H

#include <stddef.h>

#define TPD_ERRLEN 512

/* X(name, text) */
#define TPD_ERR_MAP(X)                                                                                       \
	X(OK, "ok")                                                                                          \
	X(NOMEM, "out of memory")                                                                            \
	X(INVAL, "invalid argument")                                                                         \
	X(CONFIG, "configuration error")                                                                     \
	X(IO, "input/output error")                                                                          \
	X(PARSE, "malformed input")                                                                          \
	X(NOT_FOUND, "not found")                                                                            \
	X(EXISTS, "already exists")                                                                          \
	X(COMPARE_FAILED, "compare-and-swap failed")                                                         \
	X(ACCESS_DENIED, "access denied")                                                                    \
	X(ALREADY_REVIEWED, "already reviewed")                                                              \
	X(UNAVAILABLE, "service unavailable")                                                                \
	X(TIMEOUT, "timed out")                                                                              \
	X(RATE_LIMITED, "rate limited")                                                                      \
	X(PROTOCOL, "protocol error")                                                                        \
	X(UNIMPLEMENTED, "not implemented by the server")                                                    \
	X(EXPIRED, "credentials expired")                                                                    \
	X(CANCELLED, "cancelled")                                                                            \
	X(TOO_LARGE, "too large")                                                                            \
	X(REMOTE, "remote error")                                                                            \
	X(INTERNAL, "internal error")

typedef enum {
#define TPD_ERR_ENUM(name, text) TPD_ERR_##name,
	TPD_ERR_MAP(TPD_ERR_ENUM)
#undef TPD_ERR_ENUM
	    TPD_ERR__COUNT
} tpd_err;

/* Short human text for a code ("not found"). Never NULL. */
const char *tpd_strerror(tpd_err e);
/* Symbolic name of a code ("NOT_FOUND"), for logs and metric labels. Never NULL. */
const char *tpd_errname(tpd_err e);

/* printf into an error buffer of TPD_ERRLEN bytes; a NULL buffer is allowed (no-op).
 * Returns `e` so that `return tpd_seterr(err, TPD_ERR_IO, "...")` reads naturally. */
tpd_err tpd_seterr(char *err, tpd_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
