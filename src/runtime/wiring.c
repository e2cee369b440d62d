/* wiring.c - config → clients, shared by `check` (check.c) and `start` (controller.c); see
 * include/tpd/wiring.h. */
#include "tpd/wiring.h"

#include <stdio.h>
#include <string.h>

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
