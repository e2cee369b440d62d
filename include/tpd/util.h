/* util.h - memory, strings, growable buffers and clocks shared by every module.
 *
 * Allocation policy: internal objects use the x* wrappers, which abort on out-of-memory (there
 * is no sensible recovery for a daemon of this size). Anything sized by the network goes into a
 * tpd_buf with a hard maximum, which fails cleanly instead. */
#ifndef TPD_UTIL_H
#define TPD_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Overflow-checked n*size reallocation. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s); /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define tpd_new(T) ((T *)xcalloc(1, sizeof(T)))

/* Growable byte buffer, always NUL-terminated. max = 0 means no limit. */
typedef struct {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
} tpd_buf;

void tpd_buf_init(tpd_buf *b, size_t max);
/* Appends; returns false (and leaves the buffer unchanged) when max would be exceeded. */
bool tpd_buf_append(tpd_buf *b, const void *p, size_t n);
bool tpd_buf_puts(tpd_buf *b, const char *s);
bool tpd_buf_printf(tpd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tpd_buf_reset(tpd_buf *b);
void tpd_buf_free(tpd_buf *b);
/* Gives the data to the caller (who frees it) and resets the buffer. */
char *tpd_buf_steal(tpd_buf *b);

/* Strings. */
bool tpd_streq(const char *a, const char *b);     /* NULL-safe */
bool tpd_strcaseeq(const char *a, const char *b); /* NULL-safe, ASCII case-insensitive */
bool tpd_str_empty(const char *s);                /* NULL or "" */
bool tpd_str_startswith(const char *s, const char *prefix);
bool tpd_str_endswith(const char *s, const char *suffix);
/* Trims ASCII whitespace in place; returns s. */
char *tpd_str_trim(char *s);
/* Value of one hexadecimal digit (either case), or -1. */
int tpd_hexval(int c);
/* Frees n strings and the array holding them; NULL is a no-op. */
void tpd_strv_free(char **v, size_t n);

/* Reads a whole file (at most max bytes; larger → TPD_ERR_TOO_LARGE). *out is NUL-terminated. */
int tpd_read_file(const char *path, size_t max, char **out, size_t *len, char *err);

/* Clocks. */
int64_t tpd_now_ms(void);  /* CLOCK_MONOTONIC in milliseconds */
int64_t tpd_wall_ms(void); /* CLOCK_REALTIME in milliseconds */

/* Waiting on a condition until a deadline. Every timed wait in the program goes through these,
 * on CLOCK_MONOTONIC, so a step of the wall clock (NTP, an operator, a VM resume) can neither
 * stretch nor cut short a retry sleep, a lease renewal or a queue delay. Deadlines are absolute
 * tpd_now_ms() values; a negative deadline means "no deadline". */
/* Initialises cv so that its timed waits are measured on CLOCK_MONOTONIC. */
void tpd_cond_init(pthread_cond_t *cv);
/* With mu held: one wait on cv, until a wake-up or the deadline. Returns false once the deadline
 * has passed (without waiting), true otherwise; wake-ups may be spurious, so callers re-check
 * their state. */
bool tpd_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);
/* With mu held: waits until done(ud) is true or the deadline passes; returns done(ud). */
bool tpd_cond_wait_for(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms, bool (*done)(void *ud),
                       void *ud);

/* RFC 3339 UTC with milliseconds, e.g. 2026-11-29T08:41:54.123Z. buf >= 32 bytes. */
void tpd_format_rfc3339(int64_t wall_ms, char *buf, size_t len);
/* Go's time.RFC822 in UTC: "02 Jan 06 15:04 UTC". buf >= 32 bytes. */
void tpd_format_rfc822(int64_t unix_seconds, char *buf, size_t len);

/* Parses a Go-style duration ("90s", "1m30s", "500ms", "2h"); returns false on bad input. */
bool tpd_parse_duration_ms(const char *s, int64_t *out_ms);

/* Thread-safe random number in [0, n) (n > 0) from a per-thread xorshift seeded from getrandom. */
uint64_t tpd_rand_below(uint64_t n);
/* Decorrelated-jitter backoff step: next = min(cap, base + rand[0, prev*3 - base)). prev = 0
 * starts the sequence (returns base). All in milliseconds. */
int64_t tpd_backoff_decorr(int64_t base, int64_t cap, int64_t prev);

#endif
