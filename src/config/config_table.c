/* config_table.c - every configuration key once: its type, range, default, and its line in the
 * sample `teleport-pagerduty configure` prints. tpd_config_defaults() and tpd_config_example() are
 * both made from this table, so a default cannot differ between the two, and the clients take the
 * values they are given (no fallback of their own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"
#include "tpd/util.h"

#define CFG(m) 0, offsetof(tpd_config, m)
#define LDR(m) TPD_CFG_F_LOADER, offsetof(tpd_cfg_loader, m)
#define Q(s)   "\"" s "\""
#define DMAX   TPD_CFG_DURATION_MAX
#define STR    TPD_CFG_STR
#define BOOL   TPD_CFG_BOOL
#define INT    TPD_CFG_INT
#define DUR    TPD_CFG_DUR
#define STRS   TPD_CFG_STRLIST
#define INTS   TPD_CFG_INTLIST
#define SET    TPD_CFG_F_SET
#define PLUGIN "/var/lib/teleport/plugins/pagerduty/"

/* Columns: table, key, kind, flags + offset, min, max, example (for type errors),
 *          default, value shown in the sample instead of the default, comment, lines before. */
const tpd_cfg_field tpd_cfg_fields[] = {
    {"teleport", "addr", STR, SET | CFG(teleport.addr), 0, 0, "addr = \"teleport.example.com:443\"", Q(""),
     Q("example.com:3025"), NULL,
     "# Address of the Teleport Auth Service or Proxy Service.\n"
     "#\n"
     "# The Auth Service listens on port 3025; the Proxy Service on 3080, or on 443 behind a load "
     "balancer.\n"
     "# Teleport Cloud tenants use the form \"your-account.teleport.sh:443\".\n"},
    {"teleport", "auth_server", STR, TPD_CFG_F_HIDE | LDR(auth_server), 0, 0,
     "addr = \"teleport.example.com:3025\"", NULL, NULL, NULL, NULL},
    {"teleport", "identity", STR, CFG(teleport.identity), 0, 0, "identity = \"" PLUGIN "identity\"", Q(""),
     Q(PLUGIN "auth_id"), "Identity file",
     "\n"
     "# Credentials: use one of the two forms below.\n"
     "#\n"
     "# An identity file, made with `tctl auth sign --format=file` or written by tbot:\n"},
    {"teleport", "refresh_identity", BOOL, CFG(teleport.refresh_identity), 0, 0, "refresh_identity = true",
     "false", "true", "Re-read the identity file periodically", NULL},
    {"teleport", "refresh_identity_interval", DUR, CFG(teleport.refresh_identity_interval_ms), 0, DMAX,
     "refresh_identity_interval = \"1m\"", Q("1m"), NULL, "How often to re-read it", NULL},
    {"teleport", "client_key", STR, CFG(teleport.client_key), 0, 0, "client_key = \"" PLUGIN "auth.key\"",
     Q(""), Q(PLUGIN "auth.key"), "Teleport TLS private key",
     "#\n# Or a TLS key pair, made with `tctl auth sign --format=tls`:\n"},
    {"teleport", "client_crt", STR, CFG(teleport.client_crt), 0, 0, "client_crt = \"" PLUGIN "auth.crt\"",
     Q(""), Q(PLUGIN "auth.crt"), "Teleport TLS certificate", NULL},
    {"teleport", "root_cas", STR, CFG(teleport.root_cas), 0, 0, "root_cas = \"" PLUGIN "auth.cas\"", Q(""),
     Q(PLUGIN "auth.cas"), "Teleport CA certificates", NULL},

    {"pagerduty", "api_key", STR, SET | TPD_CFG_F_SECRET, offsetof(tpd_config, pagerduty.api_key), 0, 0,
     "api_key = \"" PLUGIN "pagerduty_api_key\"", NULL, Q("key"),
     "PagerDuty API key, or the path of a file holding it (value starting with /)", NULL},
    {"pagerduty", "user_email", STR, SET | CFG(pagerduty.user_email), 0, 0,
     "user_email = \"bot@example.com\"", Q(""), Q("me@example.com"),
     "E-mail of the PagerDuty user the plugin acts as (an admin's works too)", NULL},
    {"pagerduty", "api_endpoint", STR, CFG(pagerduty.api_endpoint), 0, 0,
     "api_endpoint = \"https://api.pagerduty.com\"", Q(TPD_DEFAULT_PD_ENDPOINT), NULL,
     "EU service region: https://api.eu.pagerduty.com",
     "\n"
     "# Optional settings, shown with their defaults. Durations are Go-style strings such as \"90s\" or\n"
     "# \"1m30s\"; a bare integer counts nanoseconds, as in the upstream plugin.\n"},
    {"pagerduty", "notify_service", STR, TPD_CFG_F_RESOLVED | CFG(pagerduty.notify_service_annotation), 0, 0,
     "notify_service = \"" TPD_DEFAULT_NOTIFY_ANNOTATION "\"", Q(TPD_DEFAULT_NOTIFY_ANNOTATION), NULL,
     "Role annotation naming the service to page", NULL},
    {"pagerduty", "services", STR, TPD_CFG_F_RESOLVED | CFG(pagerduty.services_annotation), 0, 0,
     "services = \"" TPD_DEFAULT_SERVICES_ANNOTATION "\"", Q(TPD_DEFAULT_SERVICES_ANNOTATION), NULL,
     "Role annotation naming services for auto-approval", NULL},
    {"pagerduty", "rate_limit_per_minute", INT, 0, offsetof(tpd_config, pagerduty.rate_limit_per_minute), 1,
     100000, "rate_limit_per_minute = 900", "900", NULL, "Cap on PagerDuty API calls per minute", NULL},
    {"pagerduty", "cache_ttl", DUR, CFG(pagerduty.cache_ttl_ms), 1, DMAX, "cache_ttl = \"5m\"", Q("5m"), NULL,
     "How long service and on-call lookups are cached", NULL},
    {"pagerduty", "connect_timeout", DUR, CFG(pagerduty.connect_timeout_ms), 1, DMAX,
     "connect_timeout = \"5s\"", Q("5s"), NULL, "TCP+TLS connection set-up", NULL},
    {"pagerduty", "request_timeout", DUR, CFG(pagerduty.request_timeout_ms), 1, DMAX,
     "request_timeout = \"10s\"", Q("10s"), NULL, "One whole API request", NULL},
    {"pagerduty", "incident_urgency", STR, CFG(pagerduty.incident_urgency), 0, 0,
     "incident_urgency = \"high\"", Q(""), NULL, "\"high\" or \"low\"; empty uses the service's setting",
     NULL},
    {"pagerduty", "incident_priority_id", STR, CFG(pagerduty.incident_priority_id), 0, 0,
     "incident_priority_id = \"PX1Y2Z3\"", Q(""), NULL, "Id of a PagerDuty priority for new incidents", NULL},
    {"pagerduty", "notify_all_services", BOOL, CFG(pagerduty.notify_all_services), 0, 0,
     "notify_all_services = true", "false", NULL,
     "One incident per service in the notify annotation (upstream: the first only)", NULL},
    {"pagerduty", "auto_approve_escalation_levels", INTS, CFG(pagerduty.auto_approve_escalation_levels), 1,
     100, "auto_approve_escalation_levels = [1]", "[]", "[1]",
     "Auto-approve only on-call users at these escalation levels ([] = any)", NULL},
    {"pagerduty", "auto_approve_schedules", STRS, CFG(pagerduty.auto_approve_schedules), 0, 0,
     "auto_approve_schedules = [\"Primary\"]", "[]", "[\"Primary\"]",
     "...and only through these schedules, by name ([] = any)", NULL},

    {"log", "output", STR, SET | CFG(log.output), 0, 0, "output = \"stderr\"", Q("stderr"), NULL,
     "Where logs go: \"stdout\", \"stderr\" or a file such as \"/var/lib/teleport/pagerduty.log\"", NULL},
    {"log", "severity", STR, SET | LDR(severity), 0, 0, "severity = \"INFO\"", Q("INFO"), NULL,
     "Least severity logged: \"INFO\", \"ERROR\", \"DEBUG\" or \"WARN\"", NULL},
    {"log", "format", STR, LDR(format), 0, 0, "format = \"json\"", Q("text"), NULL,
     "\"text\" (logfmt) or \"json\"", NULL},

    {"status", "listen_addr", STR, CFG(status.listen_addr), 0, 0, "listen_addr = \":8081\"", Q(":8081"), NULL,
     "\"\" turns the endpoints off", NULL},
    {"status", "pagerduty_check_interval", DUR, CFG(status.pagerduty_check_interval_ms), 1000, DMAX,
     "pagerduty_check_interval = \"1m\"", Q("1m"), NULL, "How often /readyz re-checks the PagerDuty API key",
     NULL},

    {"reconcile", "workers", INT, 0, offsetof(tpd_config, reconcile.workers), 1, 64, "workers = 4", "4", NULL,
     "Access requests handled in parallel (1-64)", NULL},
    {"reconcile", "resync_interval", DUR, CFG(reconcile.resync_interval_ms), 1, DMAX,
     "resync_interval = \"10m\"", Q("10m"), NULL, "Full re-check of all pending requests", NULL},
    {"reconcile", "shutdown_timeout", DUR, CFG(reconcile.shutdown_timeout_ms), 1, DMAX,
     "shutdown_timeout = \"15s\"", Q("15s"), NULL, "Grace period for in-flight work on SIGTERM", NULL},
    {"reconcile", "resolve_orphans", BOOL, CFG(reconcile.resolve_orphans), 0, 0, "resolve_orphans = true",
     "true", NULL, "Resolve open incidents whose request vanished while we were away", NULL},
    {"reconcile", "dry_run", BOOL, CFG(reconcile.dry_run), 0, 0, "dry_run = true", "false", NULL,
     "Read everything, write nothing: log and count each write instead (also start --dry-run)", NULL},

    {"leader_election", "enabled", BOOL, CFG(leader.enabled), 0, 0, "enabled = true", "false", NULL, NULL,
     NULL},
    {"leader_election", "lease_name", STR, CFG(leader.lease_name), 0, 0,
     "lease_name = \"teleport-plugin-pagerduty\"", Q("teleport-plugin-pagerduty"), NULL, NULL, NULL},
    {"leader_election", "lease_namespace", STR, CFG(leader.lease_namespace), 0, 0,
     "lease_namespace = \"teleport\"", Q(""), NULL, "Empty: the pod's own namespace", NULL},
    {"leader_election", "lease_duration", DUR, CFG(leader.lease_duration_ms), 1, DMAX,
     "lease_duration = \"15s\"", Q("15s"), NULL, NULL, NULL},
    {"leader_election", "renew_deadline", DUR, CFG(leader.renew_deadline_ms), 1, DMAX,
     "renew_deadline = \"10s\"", Q("10s"), NULL, NULL, NULL},
    {"leader_election", "retry_period", DUR, CFG(leader.retry_period_ms), 1, DMAX, "retry_period = \"2s\"",
     Q("2s"), NULL, NULL, NULL},
    {"leader_election", "api_server", STR, CFG(leader.api_server), 0, 0,
     "api_server = \"https://10.0.0.1:443\"", Q(""), NULL, "Empty: in-cluster (KUBERNETES_SERVICE_HOST/PORT)",
     NULL},
    {"leader_election", "token_file", STR, CFG(leader.token_file), 0, 0,
     "token_file = \"/var/run/secrets/kubernetes.io/serviceaccount/token\"", Q(""), NULL,
     "Empty: the pod's service-account token", NULL},
    {"leader_election", "ca_file", STR, CFG(leader.ca_file), 0, 0,
     "ca_file = \"/var/run/secrets/kubernetes.io/serviceaccount/ca.crt\"", Q(""), NULL,
     "Empty: the pod's service-account CA", NULL},
};
const size_t tpd_cfg_nfields = sizeof(tpd_cfg_fields) / sizeof(tpd_cfg_fields[0]);

const tpd_cfg_table tpd_cfg_tables[] = {
    {"teleport", "# Sample configuration for teleport-pagerduty (TOML).\n[teleport]\n", NULL},
    {"pagerduty", "\n[pagerduty]\n",
     "#\n"
     "# The annotation names may also be given the upstream way, in their own table:\n"
     "# [pagerduty.RequestAnnotations]\n"
     "# notify_service = \"" TPD_DEFAULT_NOTIFY_ANNOTATION "\"\n"
     "# services = \"" TPD_DEFAULT_SERVICES_ANNOTATION "\"\n"},
    {"log", "\n[log]\n", NULL},
    {"status", "\n# Health and metrics endpoints (/healthz, /readyz, /metrics).\n# [status]\n", NULL},
    {"reconcile", "\n# Request processing.\n# [reconcile]\n", NULL},
    {"leader_election",
     "\n# Leader election through a Kubernetes Lease, for running several replicas.\n# [leader_election]\n",
     NULL},
};
const size_t tpd_cfg_ntables = sizeof(tpd_cfg_tables) / sizeof(tpd_cfg_tables[0]);

/* Upstream's accepted spellings of the annotation table (go-toml v1 tries these for an untagged
 * field): the Go name, lower case, upper case, lower camel case. */
const char *const tpd_cfg_ann_names[] = {"RequestAnnotations", "requestannotations", "REQUESTANNOTATIONS",
                                         "requestAnnotations"};
const size_t tpd_cfg_nann = sizeof(tpd_cfg_ann_names) / sizeof(tpd_cfg_ann_names[0]);

/* --- defaults ------------------------------------------------------------------------------------ */

/* The text between the quotes of a default string (defaults hold no escapes). */
static char *unquote(const char *v)
{
	size_t n = strlen(v);

	return n >= 2 && v[0] == '"' ? xstrndup(v + 1, n - 2) : xstrdup(v);
}

static const tpd_cfg_field *field(const char *table, const char *key)
{
	for (size_t i = 0; i < tpd_cfg_nfields; i++)
		if (!strcmp(tpd_cfg_fields[i].table, table) && !strcmp(tpd_cfg_fields[i].key, key))
			return &tpd_cfg_fields[i];
	return NULL;
}

int64_t tpd_cfg_default_ms(const char *table, const char *key)
{
	const tpd_cfg_field *f = field(table, key);
	int64_t ms = 0;
	char *s;

	if (!f || f->kind != TPD_CFG_DUR || !f->def)
		return 0;
	s = unquote(f->def);
	if (!tpd_parse_duration_ms(s, &ms))
		ms = 0;
	free(s);
	return ms;
}

/* The log settings are read as text and parsed in validation; their defaults are parsed here. */
static void log_defaults(tpd_config *c)
{
	char *sev = unquote(field("log", "severity")->def), *fmt = unquote(field("log", "format")->def);

	if (!tpd_log_level_parse(sev, &c->log.severity))
		c->log.severity = TPD_LOG_INFO;
	c->log.format = strcasecmp(fmt, "json") ? TPD_LOG_FORMAT_TEXT : TPD_LOG_FORMAT_JSON;
	free(sev);
	free(fmt);
}

tpd_config *tpd_config_defaults(const char *name)
{
	tpd_config *c = tpd_new(tpd_config);

	c->path = xstrdup(name ? name : "<defaults>");
	for (size_t i = 0; i < tpd_cfg_nfields; i++) {
		const tpd_cfg_field *f = &tpd_cfg_fields[i];
		void *dst = (char *)c + f->off;

		if (!f->def || (f->flags & TPD_CFG_F_LOADER))
			continue;
		switch (f->kind) {
		case TPD_CFG_STR:
			*(char **)dst = f->flags & TPD_CFG_F_RESOLVED ? xstrdup("") : unquote(f->def);
			break;
		case TPD_CFG_BOOL:
			*(bool *)dst = !strcmp(f->def, "true");
			break;
		case TPD_CFG_INT:
			*(int *)dst = atoi(f->def);
			break;
		case TPD_CFG_DUR:
			*(int64_t *)dst = tpd_cfg_default_ms(f->table, f->key);
			break;
		case TPD_CFG_STRLIST:
		case TPD_CFG_INTLIST:
			break; /* [] */
		}
	}
	log_defaults(c);
	return c;
}

void tpd_cfg_strlist_clear(tpd_cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void tpd_config_free(tpd_config *c)
{
	if (!c)
		return;
	free(c->path);
	free_secret(c->pagerduty.api_key);
	free(c->pagerduty.api_key_file);
	for (size_t i = 0; i < tpd_cfg_nfields; i++) {
		const tpd_cfg_field *f = &tpd_cfg_fields[i];

		if (f->flags & TPD_CFG_F_LOADER)
			continue;
		if (f->kind == TPD_CFG_STR && !(f->flags & TPD_CFG_F_SECRET))
			free(*(char **)((char *)c + f->off));
		else if (f->kind == TPD_CFG_STRLIST)
			tpd_cfg_strlist_clear((tpd_cfg_strlist *)((char *)c + f->off));
		else if (f->kind == TPD_CFG_INTLIST)
			free(((tpd_cfg_intlist *)((char *)c + f->off))->v);
	}
	free(c);
}

/* --- the sample printed by `teleport-pagerduty configure` ------------------------------------------ */

/* "key = value" as the sample shows it, commented out unless the row says otherwise. */
static void sample_line(const tpd_cfg_field *f, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s = %s", f->flags & TPD_CFG_F_SET ? "" : "# ", f->key,
	         f->show ? f->show : f->def);
}

char *tpd_config_example(void)
{
	tpd_buf b;

	tpd_buf_init(&b, 0);
	for (size_t t = 0; t < tpd_cfg_ntables; t++) {
		const tpd_cfg_table *tb = &tpd_cfg_tables[t];
		size_t col = 0;
		char line[256];

		/* the comments of one table start in one column */
		for (size_t i = 0; i < tpd_cfg_nfields; i++) {
			const tpd_cfg_field *f = &tpd_cfg_fields[i];

			if (!strcmp(f->table, tb->name) && !(f->flags & TPD_CFG_F_HIDE) && f->doc) {
				sample_line(f, line, sizeof(line));
				col = strlen(line) > col ? strlen(line) : col;
			}
		}
		tpd_buf_puts(&b, tb->intro);
		for (size_t i = 0; i < tpd_cfg_nfields; i++) {
			const tpd_cfg_field *f = &tpd_cfg_fields[i];

			if (strcmp(f->table, tb->name) || (f->flags & TPD_CFG_F_HIDE))
				continue;
			if (f->pre)
				tpd_buf_puts(&b, f->pre);
			sample_line(f, line, sizeof(line));
			tpd_buf_puts(&b, line);
			if (f->doc) {
				for (size_t k = strlen(line); k <= col; k++)
					tpd_buf_puts(&b, " ");
				tpd_buf_puts(&b, "# ");
				tpd_buf_puts(&b, f->doc);
			}
			tpd_buf_puts(&b, "\n");
		}
		if (tb->outro)
			tpd_buf_puts(&b, tb->outro);
	}
	return tpd_buf_steal(&b);
}
