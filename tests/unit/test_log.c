/* Unit tests for log.c: logfmt and JSON lines, levels, field escaping, secret redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tpd/log.h"
#include "tpd/util.h"

/* Captures what the logger writes through a pipe. */
static char *capture(tpd_logger *lg, void (*fn)(tpd_logger *))
{
	int p[2];
	char buf[65536];
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	tpd_logger_set_fd(lg, p[1]);
	fn(lg);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	assert_true(n >= 0);
	buf[n] = '\0';
	return xstrdup(buf);
}

static void emit_basic(tpd_logger *lg)
{
	tpd_log(lg, TPD_LOG_INFO, "Successfully created PagerDuty incident", "pd_incident_id", "PABC123",
	        "request_id", "0b3c-11", "note", "has \"quotes\" and spaces", NULL);
	tpd_log(lg, TPD_LOG_DEBUG, "hidden at info", NULL);
}

static void test_logfmt(void **state)
{
	tpd_logger *lg = tpd_logger_new();
	char *out;

	(void)state;
	out = capture(lg, emit_basic);
	assert_non_null(strstr(
	    out, " level=info msg=\"Successfully created PagerDuty incident\" "
	         "pd_incident_id=PABC123 request_id=0b3c-11 note=\"has \\\"quotes\\\" and spaces\"\n"));
	assert_true(tpd_str_startswith(out, "ts=20"));
	assert_null(strstr(out, "hidden"));
	free(out);
	tpd_logger_free(lg);
}

static void test_json(void **state)
{
	tpd_logger *lg = tpd_logger_new();
	char *out;

	(void)state;
	tpd_logger_set_format(lg, TPD_LOG_FORMAT_JSON);
	tpd_logger_set_level(lg, TPD_LOG_DEBUG);
	out = capture(lg, emit_basic);
	assert_non_null(strstr(out, "\"level\":\"info\",\"msg\":\"Successfully created PagerDuty incident\","
	                            "\"pd_incident_id\":\"PABC123\",\"request_id\":\"0b3c-11\","
	                            "\"note\":\"has \\\"quotes\\\" and spaces\"}\n"));
	assert_non_null(strstr(out, "\"msg\":\"hidden at info\"}\n"));
	free(out);
	tpd_logger_free(lg);
}

static void emit_secrets(tpd_logger *lg)
{
	tpd_log(lg, TPD_LOG_ERROR, "request failed: Authorization: Token token=u+SECRETKEY123", "error",
	        "bad key u+SECRETKEY123 used", "api_key", "anything", NULL);
	tpd_log(lg, TPD_LOG_ERROR, "key dump", "detail",
	        "x -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY----- y", NULL);
}

static void test_redaction(void **state)
{
	tpd_logger *lg = tpd_logger_new();
	char *out;

	(void)state;
	tpd_logger_add_secret(lg, "u+SECRETKEY123");
	out = capture(lg, emit_secrets);
	assert_null(strstr(out, "SECRETKEY"));
	assert_null(strstr(out, "anything"));
	assert_null(strstr(out, "MIIEvQIBADANBg"));
	assert_non_null(strstr(out, "[REDACTED]"));
	assert_non_null(strstr(out, "[REDACTED PRIVATE KEY]"));
	free(out);
	tpd_logger_free(lg);
}

static void emit_api_key(tpd_logger *lg)
{
	tpd_log(lg, TPD_LOG_ERROR, "echo", "error", "server said u+APIKEY-pinned-000", NULL);
}

/* Many rotating tokens never push the API key (registered first) out of the redaction list. */
static void test_secret_pinning(void **state)
{
	tpd_logger *lg = tpd_logger_new();
	char tok[64];
	char *out;

	(void)state;
	tpd_logger_add_secret(lg, "u+APIKEY-pinned-000");
	for (int i = 0; i < 500; i++) {
		snprintf(tok, sizeof(tok), "rotating-token-%04d", i);
		tpd_logger_add_secret(lg, tok);
	}
	out = capture(lg, emit_api_key);
	assert_null(strstr(out, "APIKEY"));
	free(out);
	tpd_logger_free(lg);
}

static void test_levels(void **state)
{
	tpd_log_level l;

	(void)state;
	assert_true(tpd_log_level_parse("INFO", &l));
	assert_int_equal(l, TPD_LOG_INFO);
	assert_true(tpd_log_level_parse("Warning", &l));
	assert_int_equal(l, TPD_LOG_WARN);
	assert_true(tpd_log_level_parse("err", &l));
	assert_int_equal(l, TPD_LOG_ERROR);
	assert_true(tpd_log_level_parse("trace", &l));
	assert_int_equal(l, TPD_LOG_TRACE);
	assert_false(tpd_log_level_parse("verbose", &l));
	assert_false(tpd_log_level_parse(NULL, &l));
	tpd_log(NULL, TPD_LOG_ERROR, "no-op", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_logfmt),    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_redaction), cmocka_unit_test(test_secret_pinning),
	    cmocka_unit_test(test_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
