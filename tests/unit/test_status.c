/* Unit tests for status.c: listen-address parsing, start-up errors (port in use, foreign address),
 * the lifecycle under ASan (free before start, start twice, NULL safety) and one round trip per
 * probe with a check whose state another thread flips. HTTP behaviour in depth is covered by
 * tests/status (pytest, promtool, Prometheus, hostile clients). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tpd/err.h"
#include "tpd/metrics.h"
#include "tpd/status.h"

static void test_parse_addr(void **state)
{
	struct {
		const char *in, *host;
		int port;
	} good[] = {
	    {":8081", "", 8081},           {"127.0.0.1:0", "127.0.0.1", 0},
	    {"[::1]:9000", "::1", 9000},   {"localhost:65535", "localhost", 65535},
	    {"0.0.0.0:80", "0.0.0.0", 80}, {"[::]:1", "::", 1},
	};
	const char *bad[] = {"",
	                     "8081",
	                     "127.0.0.1",
	                     "127.0.0.1:",
	                     "127.0.0.1:65536",
	                     "127.0.0.1:-1",
	                     "127.0.0.1:8o",
	                     "::1:80",
	                     "[::1]",
	                     "[::1]80",
	                     "[]:80",
	                     "a b:80",
	                     "h/x:80",
	                     "127.0.0.1:000080000"};
	char host[256], err[TPD_ERRLEN];
	int port;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		port = -1;
		assert_int_equal(tpd_status_parse_addr(good[i].in, host, sizeof(host), &port, err),
		                 TPD_ERR_OK);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(tpd_status_parse_addr(bad[i], host, sizeof(host), &port, err),
		                 TPD_ERR_CONFIG);
		assert_non_null(strstr(err, bad[i][0] ? bad[i] : "empty"));
	}
	assert_int_equal(tpd_status_parse_addr(NULL, host, sizeof(host), &port, err), TPD_ERR_CONFIG);
	/* The host must fit the caller's buffer. */
	assert_int_equal(tpd_status_parse_addr("abcdefgh:1", host, 4, &port, err), TPD_ERR_CONFIG);
}

static void test_startup_errors(void **state)
{
	char err[TPD_ERRLEN], want[64];
	struct sockaddr_in sa = {0};
	socklen_t sl = sizeof(sa);
	tpd_status *s = (tpd_status *)&sa;
	int fd;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(sa.sin_port));
	s = (tpd_status *)&sa;
	assert_int_equal(tpd_status_new(want, NULL, NULL, &s, err), TPD_ERR_EXISTS);
	assert_null(s);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, "already in use"));
	assert_non_null(strstr(err, "listen_addr"));
	close(fd);

	assert_int_equal(tpd_status_new("192.0.2.1:0", NULL, NULL, &s, err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "not an address of this machine"));
	assert_int_equal(tpd_status_new("bogus", NULL, NULL, &s, err), TPD_ERR_CONFIG);
	assert_null(s);
	assert_int_equal(tpd_status_new("127.0.0.1:0", NULL, NULL, NULL, err), TPD_ERR_INVAL);
}

static void test_lifecycle(void **state)
{
	char err[TPD_ERRLEN];
	tpd_status *s = NULL;

	(void)state;
	/* NULL safety. */
	tpd_status_free(NULL);
	assert_int_equal(tpd_status_port(NULL), -1);
	tpd_status_add_check(NULL, "x", true, NULL, NULL);
	tpd_status_set_shutting_down(NULL);
	assert_int_equal(tpd_status_start(NULL, err), TPD_ERR_INVAL);

	/* Bound but never started. */
	assert_int_equal(tpd_status_new("127.0.0.1:0", NULL, NULL, &s, err), TPD_ERR_OK);
	assert_true(tpd_status_port(s) > 0);
	tpd_status_free(s);

	/* Started twice, then freed at once. */
	s = NULL;
	assert_int_equal(tpd_status_new(":0", NULL, NULL, &s, err), TPD_ERR_OK);
	assert_int_equal(tpd_status_start(s, err), TPD_ERR_OK);
	assert_int_equal(tpd_status_start(s, err), TPD_ERR_OK);
	tpd_status_add_check(s, NULL, true, NULL, NULL); /* ignored */
	tpd_status_free(s);
}

static atomic_bool ready_flag;

static bool check_ready(void *ud, char *reason, size_t len)
{
	(void)ud;
	if (atomic_load(&ready_flag))
		return true;
	snprintf(reason, len, "still \"syncing\"\nsecond line");
	return false;
}

/* One HTTP/1.0 exchange; returns the whole response (caller frees). */
static char *http_get(int port, const char *path)
{
	struct sockaddr_in sa = {0};
	char req[256], *out = calloc(1, 65536);
	size_t n = 0;
	ssize_t k;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0 && out);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	assert_true(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	while (n < 65535 && (k = read(fd, out + n, 65535 - n)) > 0)
		n += (size_t)k;
	close(fd);
	return out;
}

static void test_round_trip(void **state)
{
	char err[TPD_ERRLEN];
	tpd_metrics *m = tpd_metrics_new();
	tpd_status *s = NULL;
	char *r;

	(void)state;
	atomic_store(&ready_flag, false);
	assert_int_equal(tpd_status_new("127.0.0.1:0", m, NULL, &s, err), TPD_ERR_OK);
	tpd_status_add_check(s, "sync", true, check_ready, NULL);
	assert_int_equal(tpd_status_start(s, err), TPD_ERR_OK);

	r = http_get(tpd_status_port(s), "/readyz");
	assert_non_null(strstr(r, " 503 "));
	/* The reason is kept to one line. */
	assert_non_null(
	    strstr(r, "\r\n\r\n[-]sync failed: still \"syncing\" second line\nreadyz check failed\n"));
	free(r);
	r = http_get(tpd_status_port(s), "/healthz");
	assert_non_null(strstr(r, " 200 "));
	assert_non_null(strstr(r, "\r\n\r\nok"));
	free(r);

	atomic_store(&ready_flag, true);
	r = http_get(tpd_status_port(s), "/readyz");
	assert_non_null(strstr(r, " 200 "));
	free(r);
	tpd_status_set_shutting_down(s);
	r = http_get(tpd_status_port(s), "/readyz");
	assert_non_null(strstr(r, "[-]shutdown failed: shutting down\n"));
	free(r);

	r = http_get(tpd_status_port(s), "/metrics");
	assert_non_null(strstr(r, "content-type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	assert_non_null(
	    strstr(r, "teleport_pagerduty_status_requests_total{handler=\"readyz\",code=\"503\"} 2\n"));
	free(r);
	tpd_status_free(s);
	tpd_metrics_free(m);
}

static void test_heartbeat(void **state)
{
	tpd_status_heartbeat hb;
	char reason[128] = "";

	(void)state;
	tpd_status_heartbeat_init(&hb, 30000);
	assert_true(tpd_status_heartbeat_check(&hb, reason, sizeof(reason)));
	/* Pretend the last beat was 31 s ago. */
	atomic_store(&hb.last_ms, atomic_load(&hb.last_ms) - 31000);
	assert_false(tpd_status_heartbeat_check(&hb, reason, sizeof(reason)));
	assert_string_equal(reason, "no heartbeat for 31s (limit 30s)");
	tpd_status_heartbeat_beat(&hb);
	assert_true(tpd_status_heartbeat_check(&hb, reason, sizeof(reason)));
	tpd_status_heartbeat_beat(NULL);
	tpd_status_heartbeat_init(NULL, 1);
	assert_true(tpd_status_heartbeat_check(NULL, reason, sizeof(reason)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_addr), cmocka_unit_test(test_startup_errors),
	    cmocka_unit_test(test_lifecycle),  cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_heartbeat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
