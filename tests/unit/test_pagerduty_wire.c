/* test_pagerduty_wire.c - PagerDuty wire format: exact request bodies, URL encoding, error bodies
 * (good, partial, hostile), duplicate-key detection, the retry schedule, and the TTL cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/pagerduty.h"
#include "tpd/ttlcache.h"

static void test_incident_body_exact(void **state)
{
	(void)state;
	tpd_pd_incident_spec s = {.title = "Access request from alice",
	                          .service_id = "PSVC001",
	                          .incident_key = "teleport-access-request/0b9c",
	                          .details = "alice requested <roles> & more/\n"};
	char *b = tpd_pd_build_incident_body(&s, NULL, "");

	assert_string_equal(
	    b, "{\"incident\":{\"type\":\"incident\",\"title\":\"Access request from alice\","
	       "\"service\":{\"id\":\"PSVC001\",\"type\":\"service_reference\"},"
	       "\"incident_key\":\"teleport-access-request/0b9c\","
	       "\"body\":{\"type\":\"incident_body\",\"details\":\"alice requested <roles> & more/\\n\"}}}");
	free(b);
	b = tpd_pd_build_incident_body(&s, "low", "PPRIO1");
	assert_non_null(strstr(
	    b, ",\"urgency\":\"low\",\"priority\":{\"id\":\"PPRIO1\",\"type\":\"priority_reference\"}}}"));
	free(b);
}

static void test_note_and_resolve_bodies(void **state)
{
	(void)state;
	char *b = tpd_pd_build_note_body(
	    "bob reviewed the request at 01 Jan 26 00:00 UTC.\nResolution: APPROVED.\n");

	assert_string_equal(b, "{\"note\":{\"content\":\"bob reviewed the request at 01 Jan 26 00:00 UTC.\\n"
	                       "Resolution: APPROVED.\\n\"}}");
	free(b);
	b = tpd_pd_build_resolve_body();
	assert_string_equal(b, "{\"incident\":{\"type\":\"incident_reference\",\"status\":\"resolved\"}}");
	free(b);
	/* Quotes and control characters are escaped, the result is valid JSON. */
	b = tpd_pd_build_note_body("a\"b\\c\x01");
	json_object *o = tpd_pd_parse_json(b, strlen(b));
	assert_non_null(o);
	json_object *n, *c;
	assert_true(json_object_object_get_ex(o, "note", &n));
	assert_true(json_object_object_get_ex(n, "content", &c));
	assert_string_equal(json_object_get_string(c), "a\"b\\c\x01");
	json_object_put(o);
	free(b);
}

static void test_urlencode(void **state)
{
	(void)state;
	char *e = tpd_pd_urlencode("My DB/ü&x=1 ~._-");
	assert_string_equal(e, "My%20DB%2F%C3%BC%26x%3D1%20~._-");
	free(e);
	e = tpd_pd_urlencode("alice+test@example.com");
	assert_string_equal(e, "alice%2Btest%40example.com");
	free(e);
	e = tpd_pd_urlencode("");
	assert_string_equal(e, "");
	free(e);
}

static void test_parse_json_strict(void **state)
{
	(void)state;
	const char *ok = "{\"a\":1}  \n";
	json_object *o = tpd_pd_parse_json(ok, strlen(ok));
	assert_non_null(o);
	json_object_put(o);
	assert_null(tpd_pd_parse_json("{\"a\":1} x", 9));
	assert_null(tpd_pd_parse_json("{\"a\":", 5)); /* truncated */
	assert_null(tpd_pd_parse_json("<html>", 6));
	assert_null(tpd_pd_parse_json("", 0));
	assert_null(tpd_pd_parse_json(NULL, 3));
	/* Nesting deeper than 64 is refused rather than recursing. */
	char deep[300];
	memset(deep, '[', 200);
	assert_null(tpd_pd_parse_json(deep, 200));
}

static void test_parse_error_good(void **state)
{
	(void)state;
	const char *b = "{\"error\":{\"message\":\"Invalid Input Provided\",\"code\":2001,"
	                "\"errors\":[\"Service not found\",\"Title too long\"]}}";
	char msg[TPD_ERRLEN];
	int code;

	assert_int_equal(tpd_pd_parse_error(400, b, strlen(b), &code, msg, sizeof(msg)), TPD_ERR_REMOTE);
	assert_int_equal(code, 2001);
	assert_string_equal(
	    msg, "HTTP 400: Invalid Input Provided (code 2001): Service not found; Title too long");
	b = "{\"error\":{\"message\":\"Not Found\",\"code\":2100}}";
	assert_int_equal(tpd_pd_parse_error(404, b, strlen(b), &code, msg, sizeof(msg)), TPD_ERR_NOT_FOUND);
	assert_string_equal(msg, "HTTP 404: Not Found (code 2100)");
	assert_int_equal(tpd_pd_parse_error(401, "", 0, &code, msg, sizeof(msg)), TPD_ERR_ACCESS_DENIED);
	assert_int_equal(code, -1);
	assert_non_null(strstr(msg, "API key rejected"));
	assert_int_equal(tpd_pd_parse_error(403, NULL, 0, NULL, msg, sizeof(msg)), TPD_ERR_ACCESS_DENIED);
	assert_non_null(strstr(msg, "read-only API key?"));
	assert_int_equal(tpd_pd_parse_error(429, NULL, 0, NULL, msg, sizeof(msg)), TPD_ERR_RATE_LIMITED);
	assert_int_equal(tpd_pd_parse_error(503, NULL, 0, NULL, msg, sizeof(msg)), TPD_ERR_UNAVAILABLE);
}

static void test_parse_error_hostile(void **state)
{
	(void)state;
	char msg[TPD_ERRLEN];
	int code;
	/* Wrong types everywhere: no crash, nothing taken from them. */
	const char *b = "{\"error\":{\"message\":42,\"code\":\"2001\",\"errors\":\"nope\"}}";
	assert_int_equal(tpd_pd_parse_error(400, b, strlen(b), &code, msg, sizeof(msg)), TPD_ERR_REMOTE);
	assert_int_equal(code, -1);
	assert_string_equal(msg, "HTTP 400");
	b = "{\"error\":\"flat string\"}";
	tpd_pd_parse_error(400, b, strlen(b), &code, msg, sizeof(msg));
	assert_string_equal(msg, "HTTP 400: {\"error\":\"flat string\"}");
	/* An HTML error page with control characters and escapes: sanitised, bounded. */
	char html[4096];
	memset(html, 'x', sizeof(html));
	memcpy(html, "<html>\x1b[31m\r\n", 13);
	tpd_pd_parse_error(502, html, sizeof(html), &code, msg, sizeof(msg));
	assert_null(strchr(msg, '\x1b'));
	assert_null(strchr(msg, '\n'));
	assert_true(strlen(msg) < 200);
	assert_non_null(strstr(msg, "..."));
	/* errors[] with non-strings mixed in. */
	b = "{\"error\":{\"message\":\"m\",\"errors\":[1,null,\"real\",{}]}}";
	tpd_pd_parse_error(400, b, strlen(b), &code, msg, sizeof(msg));
	assert_string_equal(msg, "HTTP 400: m: real");
	/* A tiny output buffer is respected. */
	char tiny[8];
	tpd_pd_parse_error(400, b, strlen(b), &code, tiny, sizeof(tiny));
	assert_string_equal(tiny, "HTTP 40");
}

static void test_duplicate_key_detection(void **state)
{
	(void)state;
	const char *dup = "{\"error\":{\"message\":\"Arguments Caused Error\",\"code\":2002,\"errors\":"
	                  "[\"Open incident with matching dedup key already exists on this service\"]}}";
	const char *other =
	    "{\"error\":{\"message\":\"Invalid Input Provided\",\"code\":2001,\"errors\":[\"x\"]}}";
	assert_true(tpd_pd_is_duplicate_key_error(dup, strlen(dup)));
	assert_false(tpd_pd_is_duplicate_key_error(other, strlen(other)));
	assert_false(tpd_pd_is_duplicate_key_error("garbage", 7));
	assert_false(tpd_pd_is_duplicate_key_error(NULL, 0));
}

static void test_retryable_statuses(void **state)
{
	(void)state;
	assert_true(tpd_pd_status_retryable(0));
	assert_true(tpd_pd_status_retryable(408));
	assert_true(tpd_pd_status_retryable(429));
	assert_true(tpd_pd_status_retryable(500));
	assert_true(tpd_pd_status_retryable(503));
	assert_false(tpd_pd_status_retryable(400));
	assert_false(tpd_pd_status_retryable(401));
	assert_false(tpd_pd_status_retryable(403));
	assert_false(tpd_pd_status_retryable(404));
	assert_false(tpd_pd_status_retryable(402));
}

static void test_retry_schedule(void **state)
{
	(void)state;
	int64_t prev = 0, total = 0;

	/* Decorrelated jitter: every step within [base, cap], and it grows on average. */
	for (int i = 0; i < 200; i++) {
		int64_t d = tpd_pd_retry_delay_ms(503, -1, -1, 250, 10000, prev);
		assert_in_range(d, 250, 10000);
		if (prev)
			assert_true(d <= prev * 3 || d == 10000 || d <= 250 * 3);
		prev = d;
		total += d;
	}
	assert_true(total / 200 > 1000); /* it reached well past the base */
	/* First retry starts at base. */
	assert_int_equal(tpd_pd_retry_delay_ms(500, -1, -1, 250, 10000, 0), 250);
	/* 429: the reset hint dominates, plus < base jitter. */
	for (int i = 0; i < 50; i++) {
		int64_t d = tpd_pd_retry_delay_ms(429, 20, -1, 250, 10000, 0);
		assert_in_range(d, 20000, 20249);
		d = tpd_pd_retry_delay_ms(429, 1, 3, 250, 10000, 0);
		assert_in_range(d, 3000, 3249);
		/* After earlier waits the told reset still decides: a storm of 429s must not
		 * escalate to the cap and outlast the retry budget while the window is 1 s. */
		d = tpd_pd_retry_delay_ms(429, 1, -1, 250, 10000, 9000);
		assert_in_range(d, 1000, 1249);
	}
	/* 429 without headers: plain backoff. */
	assert_int_equal(tpd_pd_retry_delay_ms(429, -1, -1, 250, 10000, 0), 250);
	/* A hostile reset of a year is capped at an hour. */
	assert_true(tpd_pd_retry_delay_ms(429, 31536000, -1, 250, 10000, 0) <= 3600 * 1000 + 250);
}

/* ---- TTL cache ---- */

static void *sdup(const void *v)
{
	return strdup(v);
}

static void test_ttlcache_hit_expiry_negative(void **state)
{
	(void)state;
	tpd_ttlcache *c = tpd_ttlcache_new(4, sdup, free);
	void *v;

	assert_int_equal(tpd_ttlcache_get(c, "a", 0, &v), TPD_CACHE_MISS);
	tpd_ttlcache_put(c, "a", "A", 0, 1000);
	assert_int_equal(tpd_ttlcache_get(c, "a", 999, &v), TPD_CACHE_HIT);
	assert_string_equal(v, "A");
	free(v);
	assert_int_equal(tpd_ttlcache_get(c, "a", 1000, &v), TPD_CACHE_MISS);
	assert_int_equal(tpd_ttlcache_size(c), 0);
	tpd_ttlcache_put(c, "n", NULL, 0, 10);
	assert_int_equal(tpd_ttlcache_get(c, "n", 5, &v), TPD_CACHE_NEGATIVE);
	assert_null(v);
	assert_int_equal(tpd_ttlcache_get(c, "n", 10, &v), TPD_CACHE_MISS);
	/* Overwrite, and ttl 0 removes. */
	tpd_ttlcache_put(c, "k", "1", 0, 100);
	tpd_ttlcache_put(c, "k", "2", 0, 100);
	assert_int_equal(tpd_ttlcache_get(c, "k", 1, &v), TPD_CACHE_HIT);
	assert_string_equal(v, "2");
	free(v);
	tpd_ttlcache_put(c, "k", "3", 0, 0);
	assert_int_equal(tpd_ttlcache_get(c, "k", 1, &v), TPD_CACHE_MISS);
	tpd_ttlcache_free(c);
}

static void test_ttlcache_bounded(void **state)
{
	(void)state;
	tpd_ttlcache *c = tpd_ttlcache_new(3, sdup, free);
	void *v;

	tpd_ttlcache_put(c, "a", "A", 0, 100);
	tpd_ttlcache_put(c, "b", "B", 0, 50); /* closest to expiry */
	tpd_ttlcache_put(c, "c", "C", 0, 300);
	tpd_ttlcache_put(c, "d", "D", 0, 300);
	assert_int_equal(tpd_ttlcache_size(c), 3);
	assert_int_equal(tpd_ttlcache_get(c, "b", 1, &v), TPD_CACHE_MISS);
	assert_int_equal(tpd_ttlcache_get(c, "d", 1, &v), TPD_CACHE_HIT);
	free(v);
	tpd_ttlcache_remove(c, "d");
	tpd_ttlcache_remove(c, "zzz");
	assert_int_equal(tpd_ttlcache_size(c), 2);
	tpd_ttlcache_free(c);
	tpd_ttlcache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_incident_body_exact),
	    cmocka_unit_test(test_note_and_resolve_bodies),
	    cmocka_unit_test(test_urlencode),
	    cmocka_unit_test(test_parse_json_strict),
	    cmocka_unit_test(test_parse_error_good),
	    cmocka_unit_test(test_parse_error_hostile),
	    cmocka_unit_test(test_duplicate_key_detection),
	    cmocka_unit_test(test_retryable_statuses),
	    cmocka_unit_test(test_retry_schedule),
	    cmocka_unit_test(test_ttlcache_hit_expiry_negative),
	    cmocka_unit_test(test_ttlcache_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
