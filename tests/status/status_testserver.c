/* status_testserver.c - runs the status server with fake checks for the tests in tests/status.
 *
 * Usage: tpd_status_testserver [LISTEN_ADDR [MAX_CONNECTIONS]]   (default 127.0.0.1:0, default limits)
 * Prints "port=N" on stdout once serving, then reads commands on stdin, one per line, and answers
 * each with "ack" (or "err ...") so that the driver never has to sleep:
 *   set NAME ok | set NAME fail REASON...   flip a check (liveness: ping, loops; readiness:
 *                                           teleport, identity, pagerduty, initial-sync)
 *   inc N                                   add N to teleport_pagerduty_test_events_total
 *   observe SECONDS                         observe a fake request duration
 *   shutdown                                tpd_status_set_shutting_down
 *   quit (or end of input)                  stop the server, free everything, exit 0
 * Readiness checks start failing with "starting up"; liveness checks start healthy.
 * On a start-up error it prints "error: <text>" on stderr and exits 2. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/metrics.h"
#include "tpd/status.h"
#include "tpd/util.h"

typedef struct {
	const char *name;
	bool readiness;
	atomic_bool ok;
	pthread_mutex_t mu;
	char reason[200];
} fake_check;

static bool run_fake(void *ud, char *reason, size_t len)
{
	fake_check *c = ud;

	if (atomic_load(&c->ok))
		return true;
	pthread_mutex_lock(&c->mu);
	snprintf(reason, len, "%s", c->reason);
	pthread_mutex_unlock(&c->mu);
	return false;
}

int main(int argc, char **argv)
{
	fake_check checks[] = {
	    {.name = "ping", .readiness = false},     {.name = "loops", .readiness = false},
	    {.name = "teleport", .readiness = true},  {.name = "identity", .readiness = true},
	    {.name = "pagerduty", .readiness = true}, {.name = "initial-sync", .readiness = true},
	};
	const size_t n_checks = sizeof(checks) / sizeof(checks[0]);
	const char *addr = argc > 1 ? argv[1] : "127.0.0.1:0";
	const double buckets[] = {0.01, 0.1, 1};
	char err[TPD_ERRLEN] = "";
	char line[512];
	tpd_logger *lg = tpd_logger_new();
	tpd_metrics *m = tpd_metrics_new();
	tpd_status *s = NULL;
	tpd_metric *events, *dur, *odd;
	int rc = 0;

	tpd_metrics_add_standard(m, TPD_VERSION, TPD_GIT_COMMIT);
	events = tpd_metrics_counter(m, TPD_METRICS_PREFIX "test_events_total",
	                             "Events injected by the test driver.", NULL);
	dur = tpd_metrics_histogram(m, TPD_METRICS_PREFIX "test_request_duration_seconds",
	                            "Fake request durations.", "call", buckets, 3);
	odd = tpd_metrics_gauge(m, TPD_METRICS_PREFIX "test_label_escaping",
	                        "Label values that need escaping: \\ and \" and a\nnewline.", "value");
	tpd_metric_set(odd, 1, "back\\slash \"quoted\"\nnext line");
	for (size_t i = 0; i < n_checks; i++) {
		atomic_init(&checks[i].ok, !checks[i].readiness);
		pthread_mutex_init(&checks[i].mu, NULL);
		snprintf(checks[i].reason, sizeof(checks[i].reason), "starting up");
	}
	tpd_status_limits limits = TPD_STATUS_LIMITS_DEFAULT;

	if (argc > 2)
		limits.max_connections = (unsigned)strtoul(argv[2], NULL, 10);
	if (tpd_status_new_with_limits(addr, &limits, m, lg, &s, err) != TPD_ERR_OK) {
		fprintf(stderr, "error: %s\n", err);
		rc = 2;
		goto out;
	}
	for (size_t i = 0; i < n_checks; i++)
		tpd_status_add_check(s, checks[i].name, checks[i].readiness, run_fake, &checks[i]);
	if (tpd_status_start(s, err) != TPD_ERR_OK) {
		fprintf(stderr, "error: %s\n", err);
		rc = 2;
		goto out;
	}
	printf("port=%d\n", tpd_status_port(s));
	fflush(stdout);

	while (fgets(line, sizeof(line), stdin)) {
		char *cmd = tpd_str_trim(line), *arg = strchr(cmd, ' ');
		bool ok = true;

		if (arg)
			*arg++ = '\0';
		if (strcmp(cmd, "quit") == 0) {
			break;
		} else if (strcmp(cmd, "set") == 0 && arg) {
			char *state = strchr(arg, ' ');
			fake_check *c = NULL;

			if (state)
				*state++ = '\0';
			for (size_t i = 0; i < n_checks; i++)
				if (strcmp(checks[i].name, arg) == 0)
					c = &checks[i];
			if (!c || !state) {
				ok = false;
			} else if (strcmp(state, "ok") == 0) {
				atomic_store(&c->ok, true);
			} else if (strncmp(state, "fail", 4) == 0) {
				pthread_mutex_lock(&c->mu);
				snprintf(c->reason, sizeof(c->reason), "%s", state[4] ? state + 5 : "");
				pthread_mutex_unlock(&c->mu);
				atomic_store(&c->ok, false);
			} else {
				ok = false;
			}
		} else if (strcmp(cmd, "inc") == 0 && arg) {
			tpd_metric_add(events, strtod(arg, NULL));
		} else if (strcmp(cmd, "observe") == 0 && arg) {
			tpd_metric_observe(dur, strtod(arg, NULL), "get_oncalls");
		} else if (strcmp(cmd, "shutdown") == 0) {
			tpd_status_set_shutting_down(s);
		} else {
			ok = false;
		}
		printf(ok ? "ack\n" : "err unknown command\n");
		fflush(stdout);
	}
out:
	tpd_status_free(s);
	for (size_t i = 0; i < n_checks; i++)
		pthread_mutex_destroy(&checks[i].mu);
	tpd_metrics_free(m);
	tpd_logger_free(lg);
	return rc;
}
