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
#include "tpd/log.h"
#include "tpd/util.h"

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

static void check_credentials(struct report *r, const tpd_config *cfg)
{
	if (!tpd_str_empty(cfg->teleport.identity)) {
		line(r, true, "teleport: identity file %s configured", cfg->teleport.identity);
		return;
	}
	if (!tpd_str_empty(cfg->teleport.client_crt)) {
		line(r, true, "teleport: TLS key pair %s / %s with CAs %s configured", cfg->teleport.client_key,
		     cfg->teleport.client_crt, cfg->teleport.root_cas);
		return;
	}
	line(r, false,
	     "teleport: no credentials configured (set [teleport] identity to a file from "
	     "`tctl auth sign --format=file` or tbot, or client_key/client_crt/root_cas)");
}

int tpd_check_run(const char *config_path, FILE *out)
{
	struct report r = {out, 0, tpd_logger_new()};
	char err[TPD_ERRLEN];
	tpd_config *cfg = NULL;

	if (tpd_config_load(config_path, &cfg, warn_cb, &r, err)) {
		line(&r, false, "config: %s", err);
		goto out;
	}
	if (cfg->pagerduty.api_key)
		tpd_logger_add_secret(r.redactor, cfg->pagerduty.api_key);
	line(&r, true, "config: %s loaded", cfg->path);
	line(&r, true, "teleport: address %s", tpd_str_empty(cfg->teleport.addr) ? "localhost:3025 (default)"
										  : cfg->teleport.addr);
	check_credentials(&r, cfg);
	line(&r, true, "pagerduty: API key read%s%s (%zu characters)", cfg->pagerduty.api_key_file ? " from " : "",
	     cfg->pagerduty.api_key_file ? cfg->pagerduty.api_key_file : " from the config",
	     strlen(cfg->pagerduty.api_key));
	line(&r, true, "pagerduty: endpoint %s, acting as %s", cfg->pagerduty.api_endpoint, cfg->pagerduty.user_email);
	line(&r, true, "annotations: notify %s, services %s", cfg->pagerduty.notify_service_annotation,
	     cfg->pagerduty.services_annotation);
out:
	fprintf(out, "%s\n", r.failures ? "check failed" : "check passed");
	tpd_config_free(cfg);
	tpd_logger_free(r.redactor);
	return r.failures ? 1 : 0;
}
