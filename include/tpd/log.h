/* log.h - structured, redacting, thread-safe logger.
 *
 * One line per event, written with a single write(2) under a mutex so lines never interleave.
 * Text format is logfmt (`ts=... level=info msg="..." request_id=...`); JSON format writes one
 * object per line with `ts`, `level`, `msg` and the fields. Field names follow the upstream plugin
 * (request_id, request_op, request_state, pd_incident_id, pd_service_name, pd_user_email, ...).
 *
 * Redaction: every registered secret (API key, tokens) is replaced by "[REDACTED]" wherever it
 * appears in a line, PEM private-key blocks are cut, and fields whose name looks secret
 * (api_key, token, authorization, password, private_key) never show their value. */
#ifndef TPD_LOG_H
#define TPD_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
	TPD_LOG_TRACE = 0,
	TPD_LOG_DEBUG,
	TPD_LOG_INFO,
	TPD_LOG_WARN,
	TPD_LOG_ERROR,
} tpd_log_level;

typedef enum {
	TPD_LOG_FORMAT_TEXT = 0, /* logfmt */
	TPD_LOG_FORMAT_JSON,
} tpd_log_format;

typedef struct tpd_logger tpd_logger;

/* A logger writing to stderr, level INFO, text format. */
tpd_logger *tpd_logger_new(void);
void tpd_logger_free(tpd_logger *lg);

/* Output: "stderr"/"error"/"2" → stderr; "stdout"/"out"/"1"/"" → stdout; else a file path opened
 * for append (created 0600). Returns 0 or -1 with err filled (TPD_ERRLEN bytes). */
int tpd_logger_set_output(tpd_logger *lg, const char *output, char *err);
void tpd_logger_set_level(tpd_logger *lg, tpd_log_level level);
tpd_log_level tpd_logger_level(const tpd_logger *lg);
void tpd_logger_set_format(tpd_logger *lg, tpd_log_format format);
/* Redirects output to an already-open fd (tests). The logger does not close it. */
void tpd_logger_set_fd(tpd_logger *lg, int fd);
/* Registers a secret that must never appear in output (copied; strings < 4 bytes ignored). */
void tpd_logger_add_secret(tpd_logger *lg, const char *secret);
bool tpd_logger_enabled(const tpd_logger *lg, tpd_log_level level);

/* Logs msg with key/value string pairs terminated by NULL:
 *   tpd_log(lg, TPD_LOG_INFO, "Successfully created PagerDuty incident",
 *           "pd_incident_id", id, "request_id", rid, NULL);
 * A NULL value prints as an empty string. A NULL logger is a no-op. */
void tpd_log(tpd_logger *lg, tpd_log_level level, const char *msg, ...) __attribute__((sentinel));

/* Redacts all registered secrets and PEM private-key blocks in s, returning a new string. */
char *tpd_logger_redact(const tpd_logger *lg, const char *s);

/* "info" → TPD_LOG_INFO etc. Accepts upstream's names case-insensitively: trace, debug, info,
 * warn, warning, err, error. Returns false for anything else. */
bool tpd_log_level_parse(const char *s, tpd_log_level *out);
const char *tpd_log_level_name(tpd_log_level level);

#endif
