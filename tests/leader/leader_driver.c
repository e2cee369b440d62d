/* leader_driver.c - one leader-election participant for the real-API-server tests
 * (tests/leader/test_k8s.py): runs a single tpd_leader and prints one JSON object per line on
 * stdout for every change:
 *   {"event":"started","id":...,"pid":...,"wall_ms":...}
 *   {"event":"cb","leading":true|false,"id":...,"wall_ms":...}   the callback fired
 *   {"event":"lead_start"|"lead_end","id":...,"wall_ms":...}     tpd_leader_is_leader() changed
 *                                                              (polled every 5 ms)
 *   {"event":"released","id":...,"wall_ms":...}                  after SIGTERM: lease released
 * wall_ms is CLOCK_REALTIME in milliseconds, comparable between processes on one machine.
 * The library's log goes to stderr (DEBUG) so the test can check no token ever appears there.
 *
 * Usage: tpd_leader_driver --api URL --token-file F --ca-file F --namespace NS --name LEASE
 *        --id ID [--lease-ms N --renew-ms N --retry-ms N] */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tpd/leader.h"
#include "tpd/util.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

typedef struct {
	pthread_mutex_t mu;
	const char *id;
} out_ctx;

static void emit(out_ctx *o, const char *event, const char *extra)
{
	pthread_mutex_lock(&o->mu);
	printf("{\"event\":\"%s\",\"id\":\"%s\",\"wall_ms\":%lld%s}\n", event, o->id,
	       (long long)tpd_wall_ms(), extra ? extra : "");
	fflush(stdout);
	pthread_mutex_unlock(&o->mu);
}

static void on_cb(void *ud, bool leading)
{
	emit(ud, "cb", leading ? ",\"leading\":true" : ",\"leading\":false");
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return dflt;
}

int main(int argc, char **argv)
{
	out_ctx o = {.id = arg(argc, argv, "--id", "driver")};
	tpd_logger *lg = tpd_logger_new();
	tpd_leader *l = NULL;
	char err[TPD_ERRLEN] = "", extra[64];
	struct sigaction sa = {0};
	bool was = false;
	tpd_leader_opts opts = {
	    .api_url = arg(argc, argv, "--api", ""),
	    .token_file = arg(argc, argv, "--token-file", ""),
	    .ca_file = arg(argc, argv, "--ca-file", ""),
	    .lease_namespace = arg(argc, argv, "--namespace", ""),
	    .lease_name = arg(argc, argv, "--name", ""),
	    .identity = o.id,
	    .lease_duration_ms = atoll(arg(argc, argv, "--lease-ms", "15000")),
	    .renew_deadline_ms = atoll(arg(argc, argv, "--renew-ms", "10000")),
	    .retry_period_ms = atoll(arg(argc, argv, "--retry-ms", "2000")),
	    .cb = on_cb,
	    .cb_ud = &o,
	    .log = lg,
	};

	pthread_mutex_init(&o.mu, NULL);
	tpd_logger_set_output(lg, "stderr", NULL);
	tpd_logger_set_level(lg, TPD_LOG_DEBUG);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (tpd_leader_new(&opts, &l, err) != TPD_ERR_OK || tpd_leader_start(l, err) != TPD_ERR_OK) {
		fprintf(stderr, "leader_driver: %s\n", err);
		tpd_leader_free(l);
		tpd_logger_free(lg);
		return 1;
	}
	snprintf(extra, sizeof(extra), ",\"pid\":%ld", (long)getpid());
	emit(&o, "started", extra);
	while (!g_stop) {
		bool now = tpd_leader_is_leader(l);
		if (now != was) {
			emit(&o, now ? "lead_start" : "lead_end", NULL);
			was = now;
		}
		usleep(5000);
	}
	if (was)
		emit(&o, "lead_end", NULL);
	tpd_leader_free(l); /* releases the lease when leading */
	emit(&o, "released", NULL);
	tpd_logger_free(lg);
	pthread_mutex_destroy(&o.mu);
	return 0;
}
