/* util.c - memory wrappers, growable buffers, string helpers, clocks, durations, randomness. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tpd/err.h"
#include "tpd/util.h"

static void oom(size_t n)
{
	fprintf(stderr, "teleport-pagerduty: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		oom(SIZE_MAX);
	return xrealloc(p, n * size);
}

char *xstrdup(const char *s)
{
	return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
	size_t len;
	char *p;

	if (!s)
		return NULL;
	len = strnlen(s, n);
	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	char small[256];
	int n;
	char *p;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	p = xmalloc((size_t)n + 1);
	if ((size_t)n < sizeof(small))
		memcpy(p, small, (size_t)n + 1);
	else
		vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

/* --- tpd_buf ---------------------------------------------------------------------------------- */

void tpd_buf_init(tpd_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

bool tpd_buf_append(tpd_buf *b, const void *p, size_t n)
{
	size_t need;

	if (n > SIZE_MAX - b->len - 1)
		return false;
	need = b->len + n + 1;
	if (b->max && b->len + n > b->max)
		return false;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool tpd_buf_puts(tpd_buf *b, const char *s)
{
	return tpd_buf_append(b, s, strlen(s));
}

bool tpd_buf_printf(tpd_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	char small[256];
	int n;
	bool ok;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		return false;
	}
	if ((size_t)n < sizeof(small)) {
		va_end(ap2);
		return tpd_buf_append(b, small, (size_t)n);
	}
	{
		char *big = xmalloc((size_t)n + 1);

		vsnprintf(big, (size_t)n + 1, fmt, ap2);
		ok = tpd_buf_append(b, big, (size_t)n);
		free(big);
	}
	va_end(ap2);
	return ok;
}

void tpd_buf_reset(tpd_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void tpd_buf_free(tpd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *tpd_buf_steal(tpd_buf *b)
{
	char *p = b->data ? b->data : xstrdup("");

	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

/* --- strings ---------------------------------------------------------------------------------- */

bool tpd_streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

bool tpd_strcaseeq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcasecmp(a, b) == 0;
}

bool tpd_str_empty(const char *s)
{
	return !s || !*s;
}

bool tpd_str_startswith(const char *s, const char *prefix)
{
	return s && prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool tpd_str_endswith(const char *s, const char *suffix)
{
	size_t ls, lx;

	if (!s || !suffix)
		return false;
	ls = strlen(s);
	lx = strlen(suffix);
	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

char *tpd_str_trim(char *s)
{
	char *start = s, *end;

	if (!s)
		return s;
	while (*start && isspace((unsigned char)*start))
		start++;
	end = start + strlen(start);
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	memmove(s, start, (size_t)(end - start));
	s[end - start] = '\0';
	return s;
}

int tpd_read_file(const char *path, size_t max, char **out, size_t *len, char *err)
{
	tpd_buf b;
	char chunk[8192];
	int fd, rc = TPD_ERR_OK;
	ssize_t n;

	*out = NULL;
	if (len)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tpd_seterr(err, TPD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	tpd_buf_init(&b, max);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = tpd_seterr(err, TPD_ERR_IO, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (!tpd_buf_append(&b, chunk, (size_t)n)) {
			rc = tpd_seterr(err, TPD_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
			goto out;
		}
	}
	if (len)
		*len = b.len;
	*out = tpd_buf_steal(&b);
out:
	close(fd);
	if (rc)
		tpd_buf_free(&b);
	return rc;
}

/* --- clocks ----------------------------------------------------------------------------------- */

int64_t tpd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tpd_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

bool tpd_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
	struct timespec ts;

	if (deadline_ms < 0) {
		pthread_cond_wait(cv, mu);
		return true;
	}
	if (deadline_ms <= tpd_now_ms())
		return false;
	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
	pthread_cond_timedwait(cv, mu, &ts);
	return true;
}

bool tpd_cond_wait_for(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms, bool (*done)(void *ud),
                       void *ud)
{
	while (!done(ud)) {
		if (!tpd_cond_wait_until(cv, mu, deadline_ms))
			return done(ud);
	}
	return true;
}

int64_t tpd_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tpd_format_rfc3339(int64_t wall_ms, char *buf, size_t len)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	int ms = (int)(wall_ms % 1000);

	/* Out-of-range times (hostile wire values) format as the epoch rather than garbage. */
	if (!gmtime_r(&t, &tm) || tm.tm_year > 8099 || tm.tm_year < -1900) {
		t = 0;
		ms = 0;
		gmtime_r(&t, &tm);
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
	         (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
	         (ms < 0 ? -ms : ms) % 1000);
}

void tpd_format_rfc822(int64_t unix_seconds, char *buf, size_t len)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)unix_seconds;
	struct tm tm;

	/* Out-of-range times (hostile wire values) format as Go's zero time instead of garbage. */
	if (!gmtime_r(&t, &tm) || tm.tm_mon < 0 || tm.tm_mon > 11) {
		snprintf(buf, len, "01 Jan 01 00:00 UTC");
		return;
	}

	/* Go's "02 Jan 06 15:04 MST" with the zone abbreviation of UTC (two-digit year on purpose). */
	snprintf(buf, len, "%02d %s %02d %02d:%02d UTC", tm.tm_mday % 100, mon[tm.tm_mon],
	         (tm.tm_year % 100 + 100) % 100, tm.tm_hour % 100, tm.tm_min % 100);
}

bool tpd_parse_duration_ms(const char *s, int64_t *out_ms)
{
	double total = 0;
	const char *p = s;
	bool any = false;

	if (!s || !*s)
		return false;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return true;
	}
	while (*p) {
		char *end;
		double v, mult;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return false;
		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno)
			return false;
		p = end;
		if (strncmp(p, "ms", 2) == 0) {
			mult = 1;
			p += 2;
		} else if (strncmp(p, "us", 2) == 0 || strncmp(p, "\xc2\xb5s", 3) == 0) {
			mult = 0.001;
			p += (*p == 'u') ? 2 : 3;
		} else if (strncmp(p, "ns", 2) == 0) {
			mult = 0.000001;
			p += 2;
		} else if (*p == 'h') {
			mult = 3600000;
			p++;
		} else if (*p == 'm') {
			mult = 60000;
			p++;
		} else if (*p == 's') {
			mult = 1000;
			p++;
		} else {
			return false;
		}
		total += v * mult;
		if (total > 9.2e15)
			return false;
		any = true;
	}
	if (!any)
		return false;
	*out_ms = (int64_t)(total + 0.5);
	return true;
}

/* --- randomness ------------------------------------------------------------------------------- */

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x;

	if (!rng_state) {
		if (getrandom(&rng_state, sizeof(rng_state), 0) != (ssize_t)sizeof(rng_state) || !rng_state)
			rng_state = (uint64_t)tpd_now_ms() * 0x9E3779B97F4A7C15ull + (uint64_t)getpid();
		if (!rng_state)
			rng_state = 0x2545F4914F6CDD1Dull;
	}
	x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

uint64_t tpd_rand_below(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

int64_t tpd_backoff_decorr(int64_t base, int64_t cap, int64_t prev)
{
	int64_t hi, next;

	if (base < 1)
		base = 1;
	if (prev <= 0)
		return base < cap ? base : cap;
	hi = prev * 3 - base;
	if (hi < 1)
		hi = 1;
	next = base + (int64_t)tpd_rand_below((uint64_t)hi);
	return next < cap ? next : cap;
}

int tpd_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void tpd_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}
