/* Unit tests for util.c and err.c: buffers, strings, durations, time formats, backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpd/err.h"
#include "tpd/util.h"

static void test_buf_limits(void **state)
{
	tpd_buf b;

	(void)state;
	tpd_buf_init(&b, 8);
	assert_true(tpd_buf_puts(&b, "abcd"));
	assert_true(tpd_buf_printf(&b, "%d", 1234));
	assert_string_equal(b.data, "abcd1234");
	assert_false(tpd_buf_puts(&b, "x"));
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcd1234");
	tpd_buf_free(&b);

	tpd_buf_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(tpd_buf_printf(&b, "%0300d", i));
	assert_int_equal(b.len, 300000);
	free(tpd_buf_steal(&b));
	assert_null(b.data);
}

static void test_strings(void **state)
{
	char s[] = "  \t hello world \n";

	(void)state;
	assert_string_equal(tpd_str_trim(s), "hello world");
	assert_true(tpd_streq(NULL, NULL));
	assert_false(tpd_streq("a", NULL));
	assert_true(tpd_strcaseeq("Ab", "aB"));
	assert_true(tpd_str_startswith("teleport-access-request/x", "teleport-access-request/"));
	assert_true(tpd_str_endswith("x.yaml", ".yaml"));
	assert_false(tpd_str_endswith("a", ".yaml"));
	assert_true(tpd_str_empty(""));
	assert_true(tpd_str_empty(NULL));
}

static void test_durations(void **state)
{
	int64_t ms;

	(void)state;
	assert_true(tpd_parse_duration_ms("1m", &ms));
	assert_int_equal(ms, 60000);
	assert_true(tpd_parse_duration_ms("1m30s", &ms));
	assert_int_equal(ms, 90000);
	assert_true(tpd_parse_duration_ms("250ms", &ms));
	assert_int_equal(ms, 250);
	assert_true(tpd_parse_duration_ms("1.5h", &ms));
	assert_int_equal(ms, 5400000);
	assert_true(tpd_parse_duration_ms("0", &ms));
	assert_int_equal(ms, 0);
	assert_false(tpd_parse_duration_ms("", &ms));
	assert_false(tpd_parse_duration_ms("10", &ms));
	assert_false(tpd_parse_duration_ms("-1s", &ms));
	assert_false(tpd_parse_duration_ms("1x", &ms));
	assert_false(tpd_parse_duration_ms("s", &ms));
}

static void test_time_formats(void **state)
{
	char buf[64];

	(void)state;
	tpd_format_rfc822(1622554037, buf, sizeof(buf));
	assert_string_equal(buf, "01 Jun 21 13:27 UTC");
	tpd_format_rfc3339(1622554037123, buf, sizeof(buf));
	assert_string_equal(buf, "2021-06-01T13:27:17.123Z");
	/* Hostile wire values: never garbage, never an out-of-bounds read. */
	tpd_format_rfc822(INT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "01 Jan 01 00:00 UTC");
	tpd_format_rfc822(INT64_MIN, buf, sizeof(buf));
	assert_string_equal(buf, "01 Jan 01 00:00 UTC");
	tpd_format_rfc3339(INT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
}

static void test_backoff(void **state)
{
	int64_t prev = 0;

	(void)state;
	assert_int_equal(tpd_backoff_decorr(20, 5000, 0), 20);
	for (int i = 0; i < 1000; i++) {
		int64_t next = tpd_backoff_decorr(20, 5000, prev);

		assert_true(next >= 20);
		assert_true(next <= 5000);
		if (prev)
			assert_true(next <= prev * 3 || next == 5000 || next < 20 + prev * 3);
		prev = next;
	}
	for (int i = 0; i < 1000; i++)
		assert_true(tpd_rand_below(7) < 7);
}

static void test_errors(void **state)
{
	char err[TPD_ERRLEN];

	(void)state;
	assert_string_equal(tpd_errname(TPD_ERR_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(tpd_strerror(TPD_ERR_OK), "ok");
	assert_string_equal(tpd_errname((tpd_err)999), "UNKNOWN");
	assert_int_equal(tpd_seterr(err, TPD_ERR_IO, "x=%d", 5), TPD_ERR_IO);
	assert_string_equal(err, "x=5");
	assert_int_equal(tpd_seterr(NULL, TPD_ERR_IO, "x"), TPD_ERR_IO);
}

static void test_read_file(void **state)
{
	char err[TPD_ERRLEN];
	char *data;
	size_t len;

	(void)state;
	assert_int_equal(tpd_read_file("/nonexistent/file", 100, &data, &len, err), TPD_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent/file"));
	assert_int_equal(tpd_read_file("CMakeLists.txt", 10, &data, &len, err), TPD_ERR_TOO_LARGE);
	assert_null(data);
	assert_int_equal(tpd_read_file("CMakeLists.txt", 1 << 20, &data, &len, err), TPD_ERR_OK);
	assert_true(len > 100);
	assert_int_equal(strlen(data), len);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf_limits), cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_durations),  cmocka_unit_test(test_time_formats),
	    cmocka_unit_test(test_backoff),    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_read_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
