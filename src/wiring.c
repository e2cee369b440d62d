/* wiring.c - config → clients, shared by `check` (check.c) and `start` (controller.c); see
 * include/tpd/wiring.h. */
#include "tpd/wiring.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tpd/tlsdial.h"
#include "tpd/util.h"

tpd_err tpd_wiring_load_identity(const tpd_config *cfg, tpd_identity **out, char *err)
{
	if (!tpd_str_empty(cfg->teleport.identity))
		return tpd_identity_load_file(cfg->teleport.identity, out, err);
	if (!tpd_str_empty(cfg->teleport.client_crt))
		return tpd_identity_load_tls(cfg->teleport.client_key, cfg->teleport.client_crt,
		                             cfg->teleport.root_cas, out, err);
	return tpd_seterr(err, TPD_ERR_CONFIG,
	                  "no credentials configured: set [teleport] identity (a file from `tctl auth sign "
	                  "--format=file` or tbot) or client_key, client_crt and root_cas");
}

void tpd_wiring_teleport_opts(const tpd_config *cfg, const tpd_identity *id, tpd_logger *lg, tpd_metrics *m,
                              tpd_teleport_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->addr = cfg->teleport.addr;
	o->key_pem = tpd_identity_key_pem(id);
	o->cert_pem = tpd_identity_cert_pem(id);
	o->ca_pem = tpd_identity_ca_pem(id);
	o->log = lg;
	o->metrics = m;
}

void tpd_wiring_pd_opts(const tpd_config *cfg, tpd_logger *lg, tpd_metrics *m, tpd_pd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->api_endpoint = cfg->pagerduty.api_endpoint;
	o->api_key = cfg->pagerduty.api_key;
	o->user_email = cfg->pagerduty.user_email;
	o->rate_limit_per_minute = cfg->pagerduty.rate_limit_per_minute;
	o->cache_ttl_ms = cfg->pagerduty.cache_ttl_ms;
	o->connect_timeout_ms = cfg->pagerduty.connect_timeout_ms;
	o->request_timeout_ms = cfg->pagerduty.request_timeout_ms;
	o->incident_urgency = cfg->pagerduty.incident_urgency;
	o->incident_priority_id = cfg->pagerduty.incident_priority_id;
	o->user_agent_version = TPD_VERSION;
	o->log = lg;
	o->metrics = m;
}

static bool plain_wait(void *ud, int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	(void)ud;
	nanosleep(&ts, NULL);
	return false;
}

/* The server answered: the path works even if the answer is a refusal. */
static bool answered(tpd_err rc)
{
	return !rc || rc == TPD_ERR_CONFIG || rc == TPD_ERR_ACCESS_DENIED;
}

tpd_err tpd_wiring_connect_teleport(tpd_teleport_opts *o, int64_t timeout_ms, tpd_wiring_wait_fn wait,
                                    void *wait_ud, tpd_logger *lg, tpd_teleport **out, tpd_ping_info *ping,
                                    char *err)
{
	tpd_teleport_path order[2] = {TPD_TELEPORT_PATH_DIRECT, TPD_TELEPORT_PATH_ROUTING};
	int n_paths = 2;
	tpd_teleport *t = NULL;
	tpd_err rc = TPD_ERR_UNAVAILABLE;
	char addr[256] = "";

	*out = NULL;
	memset(ping, 0, sizeof(*ping));
	if (!wait)
		wait = plain_wait;
	switch (tpd_tlsdial_choose_path(tpd_str_empty(o->addr) ? "localhost:3025" : o->addr)) {
	case TPD_TLSPATH_ROUTING_FIRST:
		order[0] = TPD_TELEPORT_PATH_ROUTING;
		order[1] = TPD_TELEPORT_PATH_DIRECT;
		break;
	case TPD_TLSPATH_DIRECT_FIRST:
		break;
	default:
		n_paths = 1;
		break;
	}
	tpd_log(lg, TPD_LOG_DEBUG, "Checking Teleport server version", NULL);
	for (int i = 0; i < n_paths; i++) {
		int64_t deadline = tpd_now_ms() + timeout_ms / n_paths, backoff = 0;

		tpd_teleport_free(t);
		t = NULL;
		o->path = order[i];
		if ((rc = tpd_teleport_new(o, &t, err)))
			return rc;
		snprintf(addr, sizeof(addr), "%s", tpd_teleport_addr(t));
		for (;;) {
			rc = tpd_teleport_ping(t, ping, err);
			if (answered(rc) || tpd_now_ms() >= deadline)
				break;
			tpd_ping_info_clear(ping);
			backoff = tpd_backoff_decorr(100, 2000, backoff);
			if (wait(wait_ud, backoff)) {
				tpd_teleport_free(t);
				return tpd_seterr(err, TPD_ERR_CANCELLED,
				                  "stopped while connecting to Teleport");
			}
		}
		if (answered(rc))
			break;
		if (i + 1 < n_paths)
			tpd_log(lg, TPD_LOG_WARN, "Teleport path failed, trying the other one", "addr", addr,
			        "path", tpd_teleport_path_name(t), "error", err, NULL);
	}
	if (rc) {
		char inner[TPD_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", err);
		tpd_seterr(err, rc, "Unable to get Teleport server version from %s: %s", addr, inner);
		tpd_ping_info_clear(ping);
		tpd_teleport_free(t);
		return rc;
	}
	tpd_log(lg, TPD_LOG_INFO, "Connected to Teleport", "addr", addr, "path", tpd_teleport_path_name(t),
	        "cluster", ping->cluster_name, "server_version", ping->server_version, NULL);
	*out = t;
	return TPD_ERR_OK;
}
