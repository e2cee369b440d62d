/* cli.c - the teleport-pagerduty command line.
 *
 * Subcommands and flags are the upstream plugin's (configure, start -c/--config -d/--debug,
 * version, help), plus `check` and `start --pid-file` (upstream's own systemd unit passes
 * --pid-file although its binary rejects it; we accept it). Exit codes: 0 ok, 1 runtime or
 * configuration error, 2 usage error.
 *
 * Signals while running: SIGTERM/SIGINT → graceful stop (a second SIGINT exits at once);
 * SIGHUP → re-read the identity and the [log] settings instead of exiting. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "tpd/check.h"
#include "tpd/cli.h"
#include "tpd/config.h"
#include "tpd/controller.h"
#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/util.h"

#define APP_NAME "teleport-pagerduty"

static const char usage_text[] =
    "usage: " APP_NAME " <command> [<flags>]\n"
    "\n"
    "Teleport plugin for access requests approval via PagerDuty.\n"
    "\n"
    "Commands:\n"
    "  help [<command>]   Show help.\n"
    "  configure          Prints an example .TOML configuration file.\n"
    "  version            Prints " APP_NAME " version and exits.\n"
    "  start [<flags>]    Starts a Teleport PagerDuty plugin.\n"
    "      -c, --config=PATH   TOML (or .yaml/.yml) config file path\n"
    "                          (default " TPD_DEFAULT_CONFIG_PATH ")\n"
    "      -d, --debug         Enable verbose logging to stderr\n"
    "          --pid-file=PATH Write the process id to PATH\n"
    "          --dry-run       Write nothing to Teleport or PagerDuty: log each write instead\n"
    "  check [<flags>]    Validates the config and the credentials it names, then exits.\n"
    "      -c, --config=PATH   as for start\n";

static void print_version(FILE *out)
{
#if defined(__clang__)
	const char *cc = "clang" __clang_version__;
#elif defined(__GNUC__)
	const char *cc = "gcc" __VERSION__;
#else
	const char *cc = "cc";
#endif
	fprintf(out, "%s v%s git:%s %s\n", APP_NAME, TPD_VERSION, TPD_GIT_COMMIT, cc);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: error: ", APP_NAME);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, ", try --help\n\n%s", usage_text);
	return 2;
}

struct start_flags {
	const char *config;
	const char *pid_file;
	bool debug;
	bool dry_run;
};

/* Parses the flags of start/check; returns 0 or a usage exit code. */
static int parse_flags(int argc, char **argv, struct start_flags *f, bool allow_runtime_flags)
{
	f->config = TPD_DEFAULT_CONFIG_PATH;
	f->pid_file = NULL;
	f->debug = false;
	f->dry_run = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			if (i + 1 >= argc)
				return usage_error("expected argument for flag '%s'", a);
			f->config = argv[++i];
		} else if (!strncmp(a, "--config=", 9)) {
			f->config = a + 9;
		} else if (!strncmp(a, "-c", 2) && a[2]) {
			f->config = a + 2;
		} else if (allow_runtime_flags && (!strcmp(a, "-d") || !strcmp(a, "--debug"))) {
			f->debug = true;
		} else if (allow_runtime_flags && !strcmp(a, "--dry-run")) {
			f->dry_run = true;
		} else if (allow_runtime_flags && !strcmp(a, "--no-debug")) {
			f->debug = false;
		} else if (allow_runtime_flags && !strcmp(a, "--pid-file")) {
			if (i + 1 >= argc)
				return usage_error("expected argument for flag '%s'", a);
			f->pid_file = argv[++i];
		} else if (allow_runtime_flags && !strncmp(a, "--pid-file=", 11)) {
			f->pid_file = a + 11;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return -1;
		} else if (a[0] == '-') {
			return usage_error("unknown flag '%s'", a);
		} else {
			return usage_error("unexpected argument '%s'", a);
		}
	}
	return 0;
}

static void config_warning(void *ud, const char *msg)
{
	tpd_log((tpd_logger *)ud, TPD_LOG_WARN, msg, NULL);
}

/* Applies [log] settings; returns 0 or -1 with err filled. */
static int apply_log_settings(tpd_logger *lg, const tpd_config *cfg, bool debug, char *err)
{
	if (tpd_logger_set_output(lg, cfg->log.output, err) < 0)
		return -1;
	tpd_logger_set_format(lg, cfg->log.format);
	tpd_logger_set_level(lg, debug ? TPD_LOG_DEBUG : cfg->log.severity);
	if (cfg->pagerduty.api_key)
		tpd_logger_add_secret(lg, cfg->pagerduty.api_key);
	return 0;
}

static int write_pid_file(const char *path, char *err)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		tpd_seterr(err, TPD_ERR_IO, "cannot write pid file %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

static void reload_log_settings(tpd_logger *lg, const struct start_flags *f)
{
	char err[TPD_ERRLEN];
	tpd_config *cfg = NULL;

	if (tpd_config_load(f->config, &cfg, config_warning, lg, err)) {
		tpd_log(lg, TPD_LOG_ERROR,
		        "Failed to reload the configuration, keeping the current log settings", "error", err,
		        NULL);
		return;
	}
	if (apply_log_settings(lg, cfg, f->debug, err) < 0)
		tpd_log(lg, TPD_LOG_ERROR, "Failed to apply the reloaded log settings", "error", err, NULL);
	else
		tpd_log(lg, TPD_LOG_INFO, "Reloaded log settings", "severity",
		        tpd_log_level_name(tpd_logger_level(lg)), NULL);
	tpd_config_free(cfg);
}

static int cmd_start(int argc, char **argv)
{
	struct start_flags f;
	char err[TPD_ERRLEN];
	tpd_logger *lg = NULL;
	tpd_config *cfg = NULL;
	tpd_controller *ctl = NULL;
	sigset_t set;
	int rc, exit_code = 1, stops = 0, sfd = -1;
	int64_t stop_deadline = 0;

	rc = parse_flags(argc, argv, &f, true);
	if (rc)
		return rc < 0 ? 0 : rc;

	/* Block the signals we handle before any thread exists, so they all inherit the mask and
	 * only this thread receives them (through a signalfd below). */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	lg = tpd_logger_new();
	if (tpd_config_load(f.config, &cfg, config_warning, lg, err)) {
		fprintf(stderr, "config error: %s\n", err);
		goto out;
	}
	if (apply_log_settings(lg, cfg, f.debug, err) < 0) {
		fprintf(stderr, "config error: %s: [log] output: %s\n", cfg->path, err);
		goto out;
	}
	if (f.debug)
		tpd_log(lg, TPD_LOG_DEBUG, "DEBUG logging enabled", NULL);
	if (f.dry_run)
		cfg->reconcile.dry_run = true;
	tpd_log(lg, TPD_LOG_INFO, "Starting Teleport Access PagerDuty Plugin", "version", TPD_VERSION,
	        "commit", TPD_GIT_COMMIT, "config", cfg->path, NULL);
	if (f.pid_file && write_pid_file(f.pid_file, err) < 0) {
		tpd_log(lg, TPD_LOG_ERROR, "Terminating with fatal error", "error", err, NULL);
		goto out;
	}

	if (tpd_controller_new(cfg, lg, &ctl, err) || tpd_controller_start(ctl, err)) {
		tpd_log(lg, TPD_LOG_ERROR, "Terminating with fatal error", "error", err, NULL);
		goto out;
	}

	/* Sleep until a signal arrives or every controller thread has ended: no periodic wake-up
	 * while idle. The signals stay blocked; the signalfd reads them. */
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		snprintf(err, sizeof(err), "cannot create a signalfd: %s", strerror(errno));
		tpd_log(lg, TPD_LOG_ERROR, "Terminating with fatal error", "error", err, NULL);
		goto out;
	}
	for (;;) {
		struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
		                        {.fd = tpd_controller_done_fd(ctl), .events = POLLIN}};
		int64_t left = stop_deadline ? stop_deadline - tpd_now_ms() : -1;
		int sig = 0;

		if (poll(pfd, 2,
		         left < 0           ? -1
		         : left > INT32_MAX ? INT32_MAX
		                            : (int)left + 1) > 0 &&
		    (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				sig = (int)si.ssi_signo;
		}

		if (sig == SIGHUP) {
			tpd_log(lg, TPD_LOG_INFO, "Received SIGHUP, reloading identity and log settings",
			        NULL);
			reload_log_settings(lg, &f);
			tpd_controller_reload(ctl);
		} else if (sig == SIGTERM || sig == SIGINT) {
			stops++;
			if (stops == 1) {
				tpd_log(lg, TPD_LOG_INFO, "Attempting graceful shutdown", "signal",
				        sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
				tpd_controller_request_stop(ctl);
				stop_deadline = tpd_now_ms() + cfg->reconcile.shutdown_timeout_ms;
			} else if (sig == SIGINT) {
				tpd_log(lg, TPD_LOG_WARN, "Second interrupt, exiting immediately", NULL);
				exit_code = 1;
				/* Threads may hold locks: leave without running destructors. */
				_exit(exit_code);
			}
		}
		if (tpd_controller_wait(ctl, 0))
			break;
		if (stop_deadline && tpd_now_ms() > stop_deadline) {
			/* In-flight calls are cancelled by tpd_controller_free below. */
			tpd_log(lg, TPD_LOG_WARN, "Graceful shutdown failed, attempting fast shutdown", NULL);
			break;
		}
	}
	if (tpd_controller_failed(ctl, err)) {
		tpd_log(lg, TPD_LOG_ERROR, "Terminating with fatal error", "error", err, NULL);
		exit_code = 1;
	} else {
		tpd_log(lg, TPD_LOG_INFO, "Successfully shut down", NULL);
		exit_code = 0;
	}
out:
	if (sfd >= 0)
		close(sfd);
	tpd_controller_free(ctl);
	if (f.pid_file && exit_code == 0)
		unlink(f.pid_file);
	tpd_config_free(cfg);
	tpd_logger_free(lg);
	return exit_code;
}

static int cmd_check(int argc, char **argv)
{
	struct start_flags f;
	int rc = parse_flags(argc, argv, &f, false);

	if (rc)
		return rc < 0 ? 0 : rc;
	return tpd_check_run(f.config, stdout);
}

int tpd_cli_main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(cmd, "version")) {
		if (argc > 2)
			return usage_error("unexpected argument '%s'", argv[2]);
		print_version(stdout);
		return 0;
	}
	if (!strcmp(cmd, "configure")) {
		if (argc > 2)
			return usage_error("unexpected argument '%s'", argv[2]);
		char *sample = tpd_config_example();

		fputs(sample, stdout);
		free(sample);
		return 0;
	}
	if (!strcmp(cmd, "start"))
		return cmd_start(argc - 2, argv + 2);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 2, argv + 2);
	return usage_error("expected command but got '%s'", cmd);
}
