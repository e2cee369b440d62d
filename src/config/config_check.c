/* config_check.c - cross-field validation of a loaded configuration (the rules upstream applies in
 * its CheckAndSetDefaults, in its order, plus our own tables). Messages point at the offending value
 * through tpd_cfg_where(); no message quotes the API key. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"
#include "tpd/toml.h"
#include "tpd/util.h"

/* --- validation ------------------------------------------------------------------------------------ */

static bool has_ctrl_or_space(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

static tpd_err check_teleport(tpd_cfg_loader *ld, tpd_config *cfg)
{
	static const char *const triple[] = {"client_key", "client_crt", "root_cas"};
	const char *vals[3] = {cfg->teleport.client_key, cfg->teleport.client_crt, cfg->teleport.root_cas};
	char given[128] = "", missing[128] = "";
	int ngiven = 0, line, col;
	const char *first = NULL;

	/* 1. the TLS triple is all or nothing; names listed in a fixed order */
	for (int i = 0; i < 3; i++) {
		char *dst = tpd_str_empty(vals[i]) ? missing : given;
		size_t used = strlen(dst);

		if (!tpd_str_empty(vals[i])) {
			ngiven++;
			if (!first)
				first = triple[i];
		}
		snprintf(dst + used, 128 - used, "%s`%s`", used ? ", " : "", triple[i]);
	}
	if (ngiven > 0 && ngiven < 3) {
		tpd_cfg_where(ld, "teleport", first, &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "set all three of client_key, client_crt and root_cas, or use identity instead",
		    "configuration setting(s) %s are provided but setting(s) %s are missing", given, missing);
	}
	/* 2. identity excludes the key pair */
	if (!tpd_str_empty(cfg->teleport.identity) && !tpd_str_empty(cfg->teleport.client_crt)) {
		tpd_cfg_where(ld, "teleport", "identity", &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "keep either identity or the client_key/client_crt/root_cas triple",
		    "configuration setting `identity` is mutually exclusive with all the `client_crt`, "
		    "`client_key` and `root_cas` settings");
	}
	/* 3. an explicit zero interval means the default, as upstream */
	if (cfg->teleport.refresh_identity_interval_ms == 0)
		cfg->teleport.refresh_identity_interval_ms =
		    tpd_cfg_default_ms("teleport", "refresh_identity_interval");
	/* 4. refreshing needs an identity file */
	if (cfg->teleport.refresh_identity && tpd_str_empty(cfg->teleport.identity)) {
		tpd_cfg_where(ld, "teleport", "refresh_identity", &line, &col);
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
		                   "set identity to the identity file's path, or remove refresh_identity",
		                   "`refresh_identity` requires that `identity` be set");
	}
	if (!tpd_str_empty(ld->auth_server)) {
		tpd_cfg_where(ld, "teleport", "auth_server", &line, &col);
		tpd_cfg_warn(
		    ld, line, col, "rename auth_server to addr",
		    "Configuration setting `auth_server` is deprecated, consider to change it to `addr`");
		if (tpd_str_empty(cfg->teleport.addr)) {
			free(cfg->teleport.addr);
			cfg->teleport.addr = xstrdup(ld->auth_server);
		}
	}
	return TPD_ERR_OK;
}

static bool is_loopback(const char *host, size_t n)
{
	unsigned a, b, c, d;
	char tail;
	char h[64];

	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = 0;
	if (!strcasecmp(h, "localhost") || !strcmp(h, "[::1]"))
		return true;
	return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
	       d < 256;
}

/* Checks "https://host[:port][/path]" (http:// only for loopback); strips trailing slashes. */
static tpd_err check_endpoint(tpd_cfg_loader *ld, tpd_config *cfg)
{
	char *u = cfg->pagerduty.api_endpoint;
	const char *fix = "use a URL such as https://api.pagerduty.com or https://api.eu.pagerduty.com";
	const char *host, *p;
	size_t hlen;
	bool https;
	int line, col;

	tpd_cfg_where(ld, "pagerduty", "api_endpoint", &line, &col);
	if (!strncasecmp(u, "https://", 8))
		https = true;
	else if (!strncasecmp(u, "http://", 7))
		https = false;
	else
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
		                   "pagerduty.api_endpoint must start with https://");
	host = u + (https ? 8 : 7);
	for (p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' ||
		    *p == '\\')
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                   "pagerduty.api_endpoint contains a space or an invalid character");
	if (strpbrk(host, "?#"))
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
		                   "pagerduty.api_endpoint must not have a query or fragment");
	hlen = strcspn(host, "/");
	if (memchr(host, '@', hlen))
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
		                   "put the API key in pagerduty.api_key instead",
		                   "pagerduty.api_endpoint must not contain credentials");
	/* host part: [v6] or a name, then optional :port */
	{
		size_t name_len;
		const char *port;

		if (host[0] == '[') {
			const char *close = memchr(host, ']', hlen);

			if (!close)
				return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				                   "pagerduty.api_endpoint has an unterminated [IPv6] host");
			for (const char *q = host + 1; q < close; q++)
				if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
					return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
					                   "pagerduty.api_endpoint has an invalid IPv6 host");
			name_len = (size_t)(close - host) + 1;
		} else {
			name_len = strcspn(host, ":/");
			if (name_len > hlen)
				name_len = hlen;
			for (size_t k = 0; k < name_len; k++)
				if (!isalnum((unsigned char)host[k]) && host[k] != '-' && host[k] != '.' &&
				    host[k] != '_')
					return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
					                   "pagerduty.api_endpoint has an invalid host name");
		}
		if (name_len == 0 || (name_len == 2 && host[0] == '['))
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
			                   "pagerduty.api_endpoint has no host");
		port = host + name_len;
		if (port < host + hlen) {
			long pn = 0;
			size_t plen;

			if (*port != ':')
				return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				                   "pagerduty.api_endpoint has an invalid host");
			port++;
			plen = (size_t)(host + hlen - port);
			if (plen == 0 || plen > 5)
				return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
				                   "pagerduty.api_endpoint has an invalid port");
			for (size_t k = 0; k < plen; k++) {
				if (!isdigit((unsigned char)port[k]))
					return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, fix,
					                   "pagerduty.api_endpoint has an invalid port");
				pn = pn * 10 + (port[k] - '0');
			}
			if (pn < 1 || pn > 65535)
				return tpd_cfg_err(
				    ld, TPD_ERR_CONFIG, line, col, fix,
				    "pagerduty.api_endpoint has a port out of range (1-65535)");
		}
		if (!https && !is_loopback(host, name_len))
			return tpd_cfg_err(
			    ld, TPD_ERR_CONFIG, line, col,
			    "use https://; plain http:// is accepted only for a loopback test server "
			    "such as http://127.0.0.1:8080",
			    "pagerduty.api_endpoint must use https://");
	}
	{
		size_t n = strlen(u);

		while (n > 0 && u[n - 1] == '/' && n > (size_t)(host - u) + hlen)
			u[--n] = 0;
	}
	return TPD_ERR_OK;
}

static tpd_err read_api_key_file(tpd_cfg_loader *ld, tpd_config *cfg)
{
	char *data = NULL, ioerr[TPD_ERRLEN];
	size_t len = 0;
	int line, col;
	tpd_err rc;

	if (!cfg->pagerduty.api_key || cfg->pagerduty.api_key[0] != '/')
		return TPD_ERR_OK;
	tpd_cfg_where(ld, "pagerduty", "api_key", &line, &col);
	/* the value is a path, not a secret: keep it for messages and for the caller */
	cfg->pagerduty.api_key_file = cfg->pagerduty.api_key;
	cfg->pagerduty.api_key = NULL;
	rc = tpd_read_file(cfg->pagerduty.api_key_file, TPD_CFG_KEY_FILE_MAX, &data, &len, ioerr);
	if (rc == TPD_ERR_TOO_LARGE)
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, "the file must hold only the API key",
		                   "error reading the API key from %s: larger than %d bytes",
		                   cfg->pagerduty.api_key_file, TPD_CFG_KEY_FILE_MAX);
	if (rc)
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "make the file readable by the plugin, or set pagerduty.api_key to the key itself",
		    "error reading the API key: %s", ioerr);
	if (memchr(data, 0, len)) {
		explicit_bzero(data, len);
		free(data);
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
		                   "the file must hold only the API key as text",
		                   "the API key file %s contains a NUL byte", cfg->pagerduty.api_key_file);
	}
	tpd_str_trim(data);
	cfg->pagerduty.api_key = xstrdup(data);
	explicit_bzero(data, len);
	free(data);
	if (!cfg->pagerduty.api_key[0])
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, "write the PagerDuty API key into the file",
		                   "the API key file %s is empty", cfg->pagerduty.api_key_file);
	return TPD_ERR_OK;
}

static tpd_err check_pagerduty(tpd_cfg_loader *ld, tpd_config *cfg)
{
	int line, col;
	tpd_err rc;

	if (tpd_str_empty(cfg->pagerduty.api_endpoint)) {
		free(cfg->pagerduty.api_endpoint);
		cfg->pagerduty.api_endpoint = xstrdup(TPD_DEFAULT_PD_ENDPOINT);
	}
	if ((rc = check_endpoint(ld, cfg)))
		return rc;
	if (tpd_str_empty(cfg->pagerduty.api_key)) {
		tpd_cfg_where(ld, "pagerduty", "api_key", &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "set api_key in [pagerduty] to the API key, or to the path of a file holding it",
		    "missing required value pagerduty.api_key");
	}
	if (has_ctrl_or_space(cfg->pagerduty.api_key)) {
		tpd_cfg_where(ld, "pagerduty", "api_key", &line, &col);
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, "copy the key again from PagerDuty",
		                   "pagerduty.api_key contains spaces or control characters");
	}
	if (tpd_str_empty(cfg->pagerduty.user_email)) {
		tpd_cfg_where(ld, "pagerduty", "user_email", &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "set user_email in [pagerduty] to the e-mail of the PagerDuty user the plugin acts as",
		    "missing required value pagerduty.user_email");
	}
	{
		const char *e = cfg->pagerduty.user_email, *at = strchr(e, '@');

		if (!at || at == e || !at[1] || strchr(at + 1, '@') || has_ctrl_or_space(e) ||
		    strlen(e) > 254) {
			tpd_cfg_where(ld, "pagerduty", "user_email", &line, &col);
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
			                   "example: user_email = \"bot@example.com\"",
			                   "pagerduty.user_email is not a valid e-mail address");
		}
	}
	/* annotation names: [pagerduty.RequestAnnotations] (upstream) or the keys in [pagerduty] (docs) */
	{
		struct {
			char **direct;
			char *table;
			const char *key, *def;
		} ann[2] = {
		    {&cfg->pagerduty.notify_service_annotation, ld->ann_notify, "notify_service",
		     TPD_DEFAULT_NOTIFY_ANNOTATION},
		    {&cfg->pagerduty.services_annotation, ld->ann_services, "services",
		     TPD_DEFAULT_SERVICES_ANNOTATION},
		};

		for (int i = 0; i < 2; i++) {
			char **d = ann[i].direct;

			if (!tpd_str_empty(ann[i].table)) {
				if (!tpd_str_empty(*d) && strcmp(*d, ann[i].table)) {
					tpd_cfg_where(ld, "pagerduty", ann[i].key, &line, &col);
					return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
					                   "keep only one of the two",
					                   "pagerduty.%s and pagerduty.%s.%s disagree",
					                   ann[i].key, ld->ann_table_name, ann[i].key);
				}
				free(*d);
				*d = xstrdup(ann[i].table);
			}
			if (tpd_str_empty(*d)) {
				free(*d);
				*d = xstrdup(ann[i].def);
			}
			if (has_ctrl_or_space(*d) || strlen(*d) > 253) {
				const tpd_node *v = tpd_cfg_node_of(ld, "pagerduty", ann[i].key);

				if (!v || tpd_str_empty(tpd_node_str(v)))
					v = tpd_node_get(ld->ann_table, ann[i].key);
				line = v ? tpd_node_line(v) : 1;
				col = v ? tpd_node_col(v) : 1;
				return tpd_cfg_err(
				    ld, TPD_ERR_CONFIG, line, col,
				    "use a name such as \"pagerduty_services\"",
				    "the annotation name for %s contains spaces or control characters",
				    ann[i].key);
			}
		}
	}
	{
		char *u = cfg->pagerduty.incident_urgency;

		if (!tpd_str_empty(u) && strcasecmp(u, "high") && strcasecmp(u, "low")) {
			tpd_cfg_where(ld, "pagerduty", "incident_urgency", &line, &col);
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
			                   "use \"high\" or \"low\", or \"\" for the service's default",
			                   "pagerduty.incident_urgency must be high or low");
		}
		for (; u && *u; u++)
			*u = (char)tolower((unsigned char)*u);
	}
	{
		const char *pr = cfg->pagerduty.incident_priority_id;
		bool ok = strlen(pr) <= 64;

		for (const char *q = pr; *q && ok; q++)
			ok = isalnum((unsigned char)*q);
		if (!ok) {
			tpd_cfg_where(ld, "pagerduty", "incident_priority_id", &line, &col);
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
			                   "use the id of a PagerDuty priority (letters and digits, e.g. "
			                   "\"P53ZZH5\") or \"\"",
			                   "pagerduty.incident_priority_id is not a valid PagerDuty id");
		}
	}
	return TPD_ERR_OK;
}

static tpd_err check_log(tpd_cfg_loader *ld, tpd_config *cfg)
{
	int line, col;

	if (tpd_str_empty(cfg->log.output)) {
		free(cfg->log.output);
		cfg->log.output = xstrdup("stderr");
	}
	for (const char *q = cfg->log.output; *q; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			tpd_cfg_where(ld, "log", "output", &line, &col);
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
			                   "use \"stdout\", \"stderr\" or a file path",
			                   "log.output contains a control character");
		}
	}
	if (!tpd_str_empty(ld->severity) && !tpd_log_level_parse(ld->severity, &cfg->log.severity)) {
		tpd_cfg_where(ld, "log", "severity", &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "use one of trace, debug, info, warn (warning), error (err); case does not matter",
		    "unsupported logger severity: '%.32s'", ld->severity);
	}
	if (!tpd_str_empty(ld->format)) {
		if (!strcasecmp(ld->format, "text")) {
			cfg->log.format = TPD_LOG_FORMAT_TEXT;
		} else if (!strcasecmp(ld->format, "json")) {
			cfg->log.format = TPD_LOG_FORMAT_JSON;
		} else {
			tpd_cfg_where(ld, "log", "format", &line, &col);
			return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col, "use \"text\" (logfmt) or \"json\"",
			                   "unsupported log format: '%.32s'", ld->format);
		}
	}
	return TPD_ERR_OK;
}

/* host:port with an optional host ("", a name, an IPv4 address or [IPv6]) and port 0-65535. */
static bool valid_listen_addr(const char *a)
{
	const char *colon = strrchr(a, ':');
	size_t plen;
	long port = 0;

	if (!colon)
		return false;
	plen = strlen(colon + 1);
	if (plen == 0 || plen > 5)
		return false;
	for (const char *q = colon + 1; *q; q++) {
		if (!isdigit((unsigned char)*q))
			return false;
		port = port * 10 + (*q - '0');
	}
	if (port > 65535)
		return false;
	if (a[0] == '[')
		return colon > a + 1 && colon[-1] == ']';
	for (const char *q = a; q < colon; q++)
		if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
			return false;
	return true;
}

/* Kubernetes names: DNS-1123 subdomain (label = true: a single label of at most 63). */
static bool valid_k8s_name(const char *s, bool label)
{
	size_t n = strlen(s);

	if (n == 0 || n > (label ? 63u : 253u))
		return false;
	if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' ||
		      (!label && c == '.')))
			return false;
	}
	return true;
}

static tpd_err check_ours(tpd_cfg_loader *ld, tpd_config *cfg)
{
	int line, col;

	if (!tpd_str_empty(cfg->status.listen_addr) && !valid_listen_addr(cfg->status.listen_addr)) {
		tpd_cfg_where(ld, "status", "listen_addr", &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "use host:port such as \":8081\" or \"127.0.0.1:8081\"; \"\" turns the server off",
		    "status.listen_addr is not a valid listen address");
	}
	if (!valid_k8s_name(cfg->leader.lease_name, false)) {
		tpd_cfg_where(ld, "leader_election", "lease_name", &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "use lower-case letters, digits, '-' and '.', e.g. \"teleport-plugin-pagerduty\"",
		    "leader_election.lease_name is not a valid Kubernetes name");
	}
	if (!tpd_str_empty(cfg->leader.lease_namespace) &&
	    !valid_k8s_name(cfg->leader.lease_namespace, true)) {
		tpd_cfg_where(ld, "leader_election", "lease_namespace", &line, &col);
		return tpd_cfg_err(ld, TPD_ERR_CONFIG, line, col,
		                   "use lower-case letters, digits and '-', or \"\" for the pod's namespace",
		                   "leader_election.lease_namespace is not a valid Kubernetes namespace");
	}
	if (cfg->leader.renew_deadline_ms >= cfg->leader.lease_duration_ms) {
		tpd_cfg_where(ld, "leader_election",
		              tpd_cfg_node_of(ld, "leader_election", "renew_deadline") ? "renew_deadline"
		                                                                       : "lease_duration",
		              &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "make renew_deadline shorter than lease_duration, e.g. 10s and 15s",
		    "leader_election.renew_deadline (%lldms) must be less than lease_duration (%lldms)",
		    (long long)cfg->leader.renew_deadline_ms, (long long)cfg->leader.lease_duration_ms);
	}
	if (cfg->leader.retry_period_ms >= cfg->leader.renew_deadline_ms) {
		tpd_cfg_where(ld, "leader_election",
		              tpd_cfg_node_of(ld, "leader_election", "retry_period") ? "retry_period"
		                                                                     : "renew_deadline",
		              &line, &col);
		return tpd_cfg_err(
		    ld, TPD_ERR_CONFIG, line, col,
		    "make retry_period shorter than renew_deadline, e.g. 2s and 10s",
		    "leader_election.retry_period (%lldms) must be less than renew_deadline (%lldms)",
		    (long long)cfg->leader.retry_period_ms, (long long)cfg->leader.renew_deadline_ms);
	}
	return TPD_ERR_OK;
}

/* Cross-field validation in upstream's order: the key file is read right after parsing, then
 * [teleport], [pagerduty], [log]; our own tables last. */
tpd_err tpd_cfg_validate(tpd_cfg_loader *ld, tpd_config *cfg)
{
	tpd_err rc;

	if ((rc = read_api_key_file(ld, cfg)) || (rc = check_teleport(ld, cfg)) ||
	    (rc = check_pagerduty(ld, cfg)) || (rc = check_log(ld, cfg)))
		return rc;
	return check_ours(ld, cfg);
}
