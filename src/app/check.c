/* check.c - `teleport-pagerduty check`: a readable report of what the config names and whether
 * each piece is usable. Every line is "[ok] ..." or "[fail] ... (how to fix)". Secrets are never
 * printed: the API key shows only its length and source file. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/check.h"
#include "tpd/config.h"
#include "tpd/err.h"
#include "tpd/identity.h"
#include "tpd/log.h"
#include "tpd/pagerduty.h"
#include "tpd/teleport.h"
#include "tpd/util.h"
#include "tpd/wiring.h"

struct report {
	FILE *out;
	int failures;
	tpd_logger *redactor;
};

static void line(struct report *r, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void line(struct report *r, bool ok, const char *fmt, ...)
{
	char buf[2048];
	char *safe;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	safe = tpd_logger_redact(r->redactor, buf);
	fprintf(r->out, "[%s] %s\n", ok ? "ok" : "fail", safe);
	free(safe);
	if (!ok)
		r->failures++;
}

static void warn_cb(void *ud, const char *msg)
{
	struct report *r = ud;

	fprintf(r->out, "[warn] %s\n", msg);
}

/* Loads and checks the identity as `start` does; returns it (caller frees) or NULL after reporting
 * why. */
static tpd_identity *check_credentials(struct report *r, const tpd_config *cfg)
{
	char err[TPD_ERRLEN], until[40];
	tpd_identity *id = NULL;
	tpd_err rc = tpd_wiring_load_identity(cfg, &id, err);

	if (rc) {
		line(r, false, "teleport: %s", err);
		return NULL;
	}
	tpd_format_rfc3339(tpd_identity_not_after(id) * 1000, until, sizeof(until));
	if (tpd_identity_check_time(id, tpd_wall_ms() / 1000, err)) {
		line(r, false, "teleport: %s", err);
		tpd_identity_free(id);
		return NULL;
	}
	line(r, true, "teleport: identity of user %s in cluster %s, valid until %s", tpd_identity_user(id),
	     tpd_identity_cluster_name(id), until);
	return id;
}

static void check_teleport(struct report *r, const tpd_config *cfg, const tpd_identity *id)
{
	tpd_teleport_opts o;
	tpd_teleport *t = NULL;
	tpd_ping_info ping = {0};
	char err[TPD_ERRLEN];

	/* the same paths, order, timeouts and retries as `start` */
	tpd_wiring_teleport_opts(cfg, id, NULL, NULL, &o);
	if (tpd_teleport_connect(&o, TPD_TELEPORT_CONNECT_TIMEOUT_MS, NULL, NULL, &t, &ping, err)) {
		line(r, false, "teleport: %s (check addr, the network path and the identity)", err);
		return;
	}
	line(r, true, "teleport: connected to %s through %s, cluster %s, server version %s%s",
	     tpd_teleport_addr(t), tpd_teleport_path_name(t), ping.cluster_name, ping.server_version,
	     ping.advanced_workflows ? ", advanced workflows (incidents link to requests)" : "");
	tpd_ping_info_clear(&ping);
	tpd_teleport_free(t);
}

static void check_pagerduty(struct report *r, const tpd_config *cfg)
{
	tpd_pd_opts o;
	tpd_pd *pd = NULL;
	tpd_pd_user user = {0};
	char err[TPD_ERRLEN];
	tpd_err rc;

	tpd_wiring_pd_opts(cfg, NULL, NULL, &o);
	o.max_retry_ms = 5000; /* interactive: give up on a failing API sooner than `start` does */
	if (tpd_pd_new(&o, &pd, err)) {
		line(r, false, "pagerduty: %s", err);
		return;
	}
	if (tpd_pd_health(pd, err)) {
		line(r, false, "pagerduty: GET %s/abilities failed: %s (check api_key and api_endpoint)",
		     cfg->pagerduty.api_endpoint, err);
		goto out;
	}
	line(r, true, "pagerduty: API key accepted by %s", cfg->pagerduty.api_endpoint);
	rc = tpd_pd_find_user(pd, cfg->pagerduty.user_email, &user, err);
	if (rc == TPD_ERR_NOT_FOUND)
		line(r, false, "pagerduty: user_email %s is not a PagerDuty user (writes would be refused)",
		     cfg->pagerduty.user_email);
	else if (rc)
		line(r, false, "pagerduty: looking up user_email %s failed: %s", cfg->pagerduty.user_email,
		     err);
	else
		line(r, true, "pagerduty: acting as %s (%s)", user.name, cfg->pagerduty.user_email);
	/* An unknown auto-approval schedule is a warning (nobody is approved through it), not a
	 * failure: `start` runs with it too. */
	for (size_t i = 0; i < cfg->pagerduty.auto_approve_schedules.n; i++) {
		const char *name = cfg->pagerduty.auto_approve_schedules.v[i];
		tpd_pd_schedule s = {0};
		char msg[TPD_ERRLEN + 200];

		rc = tpd_pd_find_schedule(pd, name, &s, err);
		if (rc == TPD_ERR_NOT_FOUND) {
			snprintf(msg, sizeof(msg),
			         "pagerduty: auto-approval schedule \"%s\" not found: nobody is approved "
			         "through it "
			         "(check auto_approve_schedules)",
			         name);
			warn_cb(r, msg);
		} else if (rc) {
			line(r, false, "pagerduty: looking up auto-approval schedule %s failed: %s", name,
			     err);
		} else {
			line(r, true, "pagerduty: auto-approval schedule %s is %s", name, s.id);
		}
		tpd_pd_schedule_clear(&s);
	}
out:
	tpd_pd_user_clear(&user);
	tpd_pd_free(pd);
}

int tpd_check_run(const char *config_path, FILE *out)
{
	struct report r = {out, 0, tpd_logger_new()};
	char err[TPD_ERRLEN];
	tpd_config *cfg = NULL;
	tpd_identity *id = NULL;

	if (tpd_config_load(config_path, &cfg, warn_cb, &r, err)) {
		line(&r, false, "config: %s", err);
		goto out;
	}
	if (cfg->pagerduty.api_key)
		tpd_logger_add_secret(r.redactor, cfg->pagerduty.api_key);
	line(&r, true, "config: %s loaded", cfg->path);
	line(&r, true, "teleport: address %s",
	     tpd_str_empty(cfg->teleport.addr) ? "localhost:3025 (default)" : cfg->teleport.addr);
	id = check_credentials(&r, cfg);
	line(&r, true, "pagerduty: API key read%s%s (%zu characters)",
	     cfg->pagerduty.api_key_file ? " from " : "",
	     cfg->pagerduty.api_key_file ? cfg->pagerduty.api_key_file : " from the config",
	     strlen(cfg->pagerduty.api_key));
	line(&r, true, "annotations: notify %s, services %s", cfg->pagerduty.notify_service_annotation,
	     cfg->pagerduty.services_annotation);
	if (id)
		check_teleport(&r, cfg, id);
	check_pagerduty(&r, cfg);
out:
	fprintf(out, "%s\n", r.failures ? "check failed" : "check passed");
	tpd_identity_free(id);
	tpd_config_free(cfg);
	tpd_logger_free(r.redactor);
	return r.failures ? 1 : 0;
}
