/* log.c - structured, redacting, thread-safe logger (logfmt or JSON lines).
 *
 * A line is built completely in memory, redacted, then written with one write(2) under the
 * logger's mutex, so concurrent lines never interleave and a crash never leaves half a secret. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/util.h"

#define LOG_MAX_SECRETS    32
#define LOG_PINNED_SECRETS 4
#define LOG_LINE_MAX       (64 * 1024)

struct tpd_logger {
	pthread_mutex_t mu;
	int fd;
	bool own_fd;
	tpd_log_level level;
	tpd_log_format format;
	char *secrets[LOG_MAX_SECRETS];
	size_t n_secrets;
};

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error"};

tpd_logger *tpd_logger_new(void)
{
	tpd_logger *lg = tpd_new(tpd_logger);

	pthread_mutex_init(&lg->mu, NULL);
	lg->fd = STDERR_FILENO;
	lg->level = TPD_LOG_INFO;
	lg->format = TPD_LOG_FORMAT_TEXT;
	return lg;
}

void tpd_logger_free(tpd_logger *lg)
{
	if (!lg)
		return;
	if (lg->own_fd)
		close(lg->fd);
	for (size_t i = 0; i < lg->n_secrets; i++) {
		explicit_bzero(lg->secrets[i], strlen(lg->secrets[i]));
		free(lg->secrets[i]);
	}
	pthread_mutex_destroy(&lg->mu);
	free(lg);
}

int tpd_logger_set_output(tpd_logger *lg, const char *output, char *err)
{
	int fd;
	bool own = false;

	if (!output || !*output || !strcasecmp(output, "stdout") || !strcasecmp(output, "out") ||
	    !strcmp(output, "1")) {
		fd = STDOUT_FILENO;
	} else if (!strcasecmp(output, "stderr") || !strcasecmp(output, "error") || !strcmp(output, "2")) {
		fd = STDERR_FILENO;
	} else {
		fd = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0) {
			tpd_seterr(err, TPD_ERR_IO, "failed to create the log file %s: %s", output,
			           strerror(errno));
			return -1;
		}
		own = true;
	}
	pthread_mutex_lock(&lg->mu);
	if (lg->own_fd)
		close(lg->fd);
	lg->fd = fd;
	lg->own_fd = own;
	pthread_mutex_unlock(&lg->mu);
	return 0;
}

void tpd_logger_set_fd(tpd_logger *lg, int fd)
{
	pthread_mutex_lock(&lg->mu);
	if (lg->own_fd)
		close(lg->fd);
	lg->fd = fd;
	lg->own_fd = false;
	pthread_mutex_unlock(&lg->mu);
}

void tpd_logger_set_level(tpd_logger *lg, tpd_log_level level)
{
	__atomic_store_n(&lg->level, level, __ATOMIC_RELAXED);
}

tpd_log_level tpd_logger_level(const tpd_logger *lg)
{
	return __atomic_load_n(&lg->level, __ATOMIC_RELAXED);
}

void tpd_logger_set_format(tpd_logger *lg, tpd_log_format format)
{
	__atomic_store_n(&lg->format, format, __ATOMIC_RELAXED);
}

void tpd_logger_add_secret(tpd_logger *lg, const char *secret)
{
	if (!lg || !secret || strlen(secret) < 4)
		return;
	pthread_mutex_lock(&lg->mu);
	for (size_t i = 0; i < lg->n_secrets; i++) {
		if (!strcmp(lg->secrets[i], secret))
			goto out;
	}
	if (lg->n_secrets == LOG_MAX_SECRETS) {
		/* Full: rotating secrets (tokens) replace each other; the first LOG_PINNED_SECRETS
		 * (the API key, registered at start) are never evicted. */
		free(lg->secrets[LOG_PINNED_SECRETS]);
		memmove(lg->secrets + LOG_PINNED_SECRETS, lg->secrets + LOG_PINNED_SECRETS + 1,
		        sizeof(lg->secrets[0]) * (LOG_MAX_SECRETS - LOG_PINNED_SECRETS - 1));
		lg->n_secrets--;
	}
	lg->secrets[lg->n_secrets++] = xstrdup(secret);
out:
	pthread_mutex_unlock(&lg->mu);
}

bool tpd_logger_enabled(const tpd_logger *lg, tpd_log_level level)
{
	return lg && level >= tpd_logger_level(lg);
}

bool tpd_log_level_parse(const char *s, tpd_log_level *out)
{
	static const struct {
		const char *name;
		tpd_log_level level;
	} names[] = {
	    {"trace", TPD_LOG_TRACE}, {"debug", TPD_LOG_DEBUG},  {"info", TPD_LOG_INFO},
	    {"warn", TPD_LOG_WARN},   {"warning", TPD_LOG_WARN}, {"err", TPD_LOG_ERROR},
	    {"error", TPD_LOG_ERROR},
	};

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name)) {
			*out = names[i].level;
			return true;
		}
	}
	return false;
}

const char *tpd_log_level_name(tpd_log_level level)
{
	if ((unsigned)level > TPD_LOG_ERROR)
		return "info";
	return level_names[level];
}

/* --- redaction -------------------------------------------------------------------------------- */

static bool key_is_secret(const char *k)
{
	static const char *const words[] = {"api_key",  "apikey",      "token", "authorization",
	                                    "password", "private_key", "secret"};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasestr(k, words[i]))
			return true;
	}
	return false;
}

/* Replaces every occurrence of each secret and any PEM private-key block. Caller holds no lock;
 * secrets are read under lg->mu by the caller of this helper. */
static char *redact_locked(const tpd_logger *lg, const char *s)
{
	tpd_buf b;
	const char *p = s;

	tpd_buf_init(&b, 0);
	while (*p) {
		size_t matched = 0;

		for (size_t i = 0; lg && i < lg->n_secrets; i++) {
			size_t n = strlen(lg->secrets[i]);

			if (!strncmp(p, lg->secrets[i], n)) {
				matched = n;
				break;
			}
		}
		if (matched) {
			tpd_buf_puts(&b, "[REDACTED]");
			p += matched;
			continue;
		}
		if (!strncmp(p, "-----BEGIN", 10)) {
			const char *eol = strstr(p, "-----\n");
			const char *hdr_end = strstr(p + 10, "-----");

			if (hdr_end && (size_t)(hdr_end - p) < 80 &&
			    memmem(p, (size_t)(hdr_end - p), "PRIVATE KEY", 11)) {
				const char *end = strstr(hdr_end + 5, "-----END");
				const char *stop;

				(void)eol;
				if (end) {
					stop = strstr(end + 8, "-----");
					p = stop ? stop + 5 : end + 8;
				} else {
					p += strlen(p);
				}
				tpd_buf_puts(&b, "[REDACTED PRIVATE KEY]");
				continue;
			}
		}
		tpd_buf_append(&b, p, 1);
		p++;
	}
	return tpd_buf_steal(&b);
}

char *tpd_logger_redact(const tpd_logger *lg, const char *s)
{
	char *r;

	if (!s)
		return xstrdup("");
	if (!lg)
		return redact_locked(NULL, s);
	pthread_mutex_lock((pthread_mutex_t *)&lg->mu);
	r = redact_locked(lg, s);
	pthread_mutex_unlock((pthread_mutex_t *)&lg->mu);
	return r;
}

/* --- formatting ------------------------------------------------------------------------------- */

static void put_json_string(tpd_buf *b, const char *s)
{
	tpd_buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			tpd_buf_puts(b, "\\\"");
			break;
		case '\\':
			tpd_buf_puts(b, "\\\\");
			break;
		case '\n':
			tpd_buf_puts(b, "\\n");
			break;
		case '\r':
			tpd_buf_puts(b, "\\r");
			break;
		case '\t':
			tpd_buf_puts(b, "\\t");
			break;
		default:
			if (*p < 0x20)
				tpd_buf_printf(b, "\\u%04x", *p);
			else
				tpd_buf_append(b, p, 1);
		}
	}
	tpd_buf_puts(b, "\"");
}

static bool logfmt_needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
			return true;
	}
	return false;
}

static void put_logfmt_value(tpd_buf *b, const char *s)
{
	if (!logfmt_needs_quotes(s)) {
		tpd_buf_puts(b, s);
		return;
	}
	/* JSON-style escaping inside double quotes is what logfmt readers expect. */
	put_json_string(b, s);
}

static void put_key(tpd_buf *b, const char *k, bool json)
{
	if (json) {
		tpd_buf_puts(b, ",");
		put_json_string(b, k);
		tpd_buf_puts(b, ":");
	} else {
		tpd_buf_puts(b, " ");
		/* Keys are code constants; still keep the line parseable. */
		for (const char *p = k; *p; p++) {
			char c = (*p <= ' ' || *p == '=' || *p == '"') ? '_' : *p;
			tpd_buf_append(b, &c, 1);
		}
		tpd_buf_puts(b, "=");
	}
}

void tpd_log(tpd_logger *lg, tpd_log_level level, const char *msg, ...)
{
	tpd_buf b;
	va_list ap;
	char ts[40];
	bool json;
	char *line;
	size_t off;

	if (!lg || level < tpd_logger_level(lg))
		return;
	json = __atomic_load_n(&lg->format, __ATOMIC_RELAXED) == TPD_LOG_FORMAT_JSON;
	tpd_format_rfc3339(tpd_wall_ms(), ts, sizeof(ts));
	tpd_buf_init(&b, 0);
	if (json) {
		tpd_buf_puts(&b, "{\"ts\":");
		put_json_string(&b, ts);
		tpd_buf_puts(&b, ",\"level\":");
		put_json_string(&b, tpd_log_level_name(level));
		tpd_buf_puts(&b, ",\"msg\":");
		put_json_string(&b, msg ? msg : "");
	} else {
		tpd_buf_printf(&b, "ts=%s level=%s msg=", ts, tpd_log_level_name(level));
		put_logfmt_value(&b, msg ? msg : "");
	}
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		const char *v;

		if (!k)
			break;
		v = va_arg(ap, const char *);
		if (!v)
			v = "";
		put_key(&b, k, json);
		if (key_is_secret(k))
			v = "[REDACTED]";
		if (json)
			put_json_string(&b, v);
		else
			put_logfmt_value(&b, v);
	}
	va_end(ap);
	if (json)
		tpd_buf_puts(&b, "}");
	if (b.len > LOG_LINE_MAX) {
		/* The line hit the cap: say so rather than drop it. */
		tpd_buf_reset(&b);
		tpd_buf_printf(&b,
		               json
		                   ? "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line too long, dropped\"}"
		                   : "ts=%s level=%s msg=\"log line too long, dropped\"",
		               ts, tpd_log_level_name(level));
	}

	pthread_mutex_lock(&lg->mu);
	line = redact_locked(lg, b.data ? b.data : "");
	{
		size_t n = strlen(line);

		line = xrealloc(line, n + 2);
		line[n] = '\n';
		line[n + 1] = '\0';
		for (off = 0; off < n + 1;) {
			ssize_t w = write(lg->fd, line + off, n + 1 - off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			off += (size_t)w;
		}
	}
	pthread_mutex_unlock(&lg->mu);
	free(line);
	tpd_buf_free(&b);
}
