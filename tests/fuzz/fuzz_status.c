/* fuzz_status.c - libFuzzer target: raw HTTP requests to the status server (src/runtime/status.c on
 * libwebsockets), over real loopback connections.
 *
 * LLVMFuzzerInitialize starts one server on 127.0.0.1:0 with a metrics registry, a passing
 * liveness check and a failing readiness check. Each input, followed by "\r\n\r\n", is written to
 * a fresh connection, the write side is shut down, and the answer is read until the server closes or a short
 * deadline passes. status.c offers no pure request-parsing entry point, so this is the way in;
 * libwebsockets itself (a Debian library) is not instrumented, status.c's handlers are.
 *
 * Checks: the server keeps accepting connections (a crash or wedge on its thread is a failure);
 * any answer starts with an HTTP/1.x status line with a code the server documents; a 200 from
 * /metrics is Prometheus text. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <strings.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "tpd/metrics.h"
#include "tpd/status.h"
#include "tpd/util.h"

/* The server neither answers nor hangs up on many malformed inputs (it waits for the rest until
 * its header timeout), and keeps answered connections alive: wait at most this long for a first
 * byte, and once bytes flow, until the connection has been quiet for READ_IDLE_MS. */
#define READ_DEADLINE_MS 60
#define READ_IDLE_MS     25
#define MAX_ANSWER       (1024 * 1024)

static tpd_status *srv;
static tpd_metrics *metrics;
static int port;

static bool check_ok(void *ud, char *reason, size_t len)
{
	(void)ud;
	(void)reason;
	(void)len;
	return true;
}

static bool check_fail(void *ud, char *reason, size_t len)
{
	(void)ud;
	snprintf(reason, len, "PagerDuty unreachable: HTTP 503 \"maintenance\" <b>");
	return false;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[TPD_ERRLEN];
	tpd_status_limits lim = TPD_STATUS_LIMITS_DEFAULT;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	metrics = tpd_metrics_new();
	tpd_metrics_add_standard(metrics, "fuzz", "fuzz");
	/* Short timeouts: a request the fuzzer leaves incomplete must not pin a connection long. */
	lim.header_timeout_s = 1;
	lim.idle_timeout_s = 1;
	if (tpd_status_new_with_limits("127.0.0.1:0", &lim, metrics, NULL, &srv, err) != TPD_ERR_OK ||
	    tpd_status_start(srv, err) != TPD_ERR_OK) {
		fprintf(stderr, "fuzz_status: cannot start the status server: %s\n", err);
		abort();
	}
	tpd_status_add_check(srv, "watcher", false, check_ok, NULL);
	tpd_status_add_check(srv, "pagerduty", true, check_fail, NULL);
	port = tpd_status_port(srv);
	if (port <= 0)
		abort();
	/* Deliberately never freed: the server lives for the whole run (LeakSanitizer sees it as
	 * reachable through these statics). */
	return 0;
}

static int dial(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;

	for (int attempt = 0; attempt < 50; attempt++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			abort();
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(20000); /* the backlog may be full right after a burst; the server must recover */
	}
	fuzz_fail("the status server stopped accepting connections on port %d", port);
}

/* True once answer holds a complete response: headers and content-length bytes of body. */
static bool answer_complete(const char *r, size_t n)
{
	const char *end = memmem(r, n, "\r\n\r\n", 4), *p;
	if (!end)
		return false;
	for (p = r; p < end; p++) {
		if ((p == r || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
			size_t body = (size_t)strtoul(p + 15, NULL, 10);
			return n >= (size_t)(end + 4 - r) + body;
		}
	}
	return false;
}

static void check_answer(const char *r, size_t n, const uint8_t *req, size_t req_len)
{
	static const int codes[] = {200, 400, 403, 404, 405, 408, 411, 413,
	                            414, 415, 431, 500, 501, 503, 505};
	int code = 0;
	bool known = false;

	if (n == 0)
		return; /* closed without an answer: allowed for garbage */
	if (n < 12 || strncmp(r, "HTTP/1.", 7) != 0)
		fuzz_fail("answer does not start with an HTTP/1.x status line: %.40s", r);
	code = atoi(r + 9);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		known |= codes[i] == code;
	if (!known)
		fuzz_fail("unexpected HTTP status %d", code);
	if (code == 200 && req_len >= 12 && memcmp(req, "GET /metrics", 12) == 0 && req_len > 12 &&
	    (req[12] == ' ' || req[12] == '?') && !memmem(r, n, "# TYPE ", 7))
		fuzz_fail("/metrics answered 200 without Prometheus text");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char answer[MAX_ANSWER + 1];
	size_t off = 0, got = 0;
	int64_t deadline;
	int fd;

	if (size > 64 * 1024)
		return 0;
	fd = dial();
	deadline = mono_ms() + READ_DEADLINE_MS;
	/* Write everything (the server may hang up early: EPIPE/ECONNRESET end the write). */
	while (off < size) {
		ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)w;
	}
	/* End the header block: most mutations break the request's end, and a server waiting for
	 * the rest (until its header timeout) teaches the fuzzer nothing but costs the whole deadline. */
	(void)send(fd, "\r\n\r\n", 4, MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	for (;;) {
		int64_t now = mono_ms(), left = deadline - now;
		if (got && left > READ_IDLE_MS)
			left = READ_IDLE_MS;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0)
			break;
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		ssize_t r = recv(fd, answer + got, MAX_ANSWER - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == MAX_ANSWER)
			break;
		answer[got] = '\0';
		if (answer_complete(answer, got))
			break;
	}
	answer[got] = '\0';
	close(fd);
	if (getenv("FUZZ_STATUS_DEBUG"))
		fprintf(stderr, "--- %zu bytes in, %zu bytes out:\n%.300s\n", size, got, answer);
	check_answer(answer, got, data, size);
	return 0;
}
