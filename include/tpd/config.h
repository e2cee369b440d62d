/* config.h - the plugin's configuration: one validated struct loaded from TOML or YAML.
 *
 * The TOML file is upstream's format (`teleport-pagerduty configure` prints a sample); a path
 * ending in .yaml/.yml is read as YAML with the same tables and keys (the Helm chart uses it).
 * Errors name the file, line and column, the cause and the fix:
 *   config error: /etc/teleport-pagerduty.toml:12:3: pagerduty.user_email must be a string (quote it)
 * Unknown keys and tables produce warnings (through the callback), never an error.
 *
 * Value rules worth knowing (details in src/config*.c and `teleport-pagerduty configure`):
 * - durations are Go-style strings ("90s", "1m30s"); a bare integer is nanoseconds, as with
 *   upstream's go-toml v1 (a warning is given when it is under one second);
 * - [pagerduty] api_key starting with '/' names a file (at most 2000 bytes, whitespace-trimmed):
 *   then api_key holds its content and api_key_file the path;
 * - the annotation overrides are read from [pagerduty] notify_service/services (documented form)
 *   or [pagerduty.RequestAnnotations] (upstream's, any of its case variants); both → must agree;
 * - api_endpoint must be https:// (http:// only for loopback test servers); trailing '/' removed;
 * - YAML `key:` / `key: null` counts as absent (the default applies). */
#ifndef TPD_CONFIG_H
#define TPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/err.h"
#include "tpd/log.h"

#define TPD_DEFAULT_CONFIG_PATH         "/etc/teleport-pagerduty.toml"
#define TPD_DEFAULT_PD_ENDPOINT         "https://api.pagerduty.com"
#define TPD_DEFAULT_NOTIFY_ANNOTATION   "pagerduty_notify_service"
#define TPD_DEFAULT_SERVICES_ANNOTATION "pagerduty_services"
#define TPD_CONFIG_MAX_BYTES            (1024 * 1024) /* larger config files are refused */

/* A list value of the config ([] when unset). */
typedef struct {
	size_t n;
	char **v;
} tpd_cfg_strlist;
typedef struct {
	size_t n;
	int *v;
} tpd_cfg_intlist;

typedef struct tpd_config {
	char *path; /* the file that was loaded */

	struct {
		char *addr;       /* "" → localhost:3025 at connect time */
		char *identity;   /* identity file path or "" */
		char *client_key; /* TLS triple, all or none */
		char *client_crt;
		char *root_cas;
		bool refresh_identity;
		int64_t refresh_identity_interval_ms; /* default 60000 */
	} teleport;

	struct {
		char *api_key;      /* the key itself (read from file when the value starts with '/') */
		char *api_key_file; /* the file it came from, or NULL (never secret) */
		char *user_email;
		char *api_endpoint;              /* default https://api.pagerduty.com */
		char *notify_service_annotation; /* default pagerduty_notify_service */
		char *services_annotation;       /* default pagerduty_services */
		int rate_limit_per_minute;       /* default 900 */
		int64_t cache_ttl_ms;            /* default 300000 */
		int64_t connect_timeout_ms;      /* default 5000 */
		int64_t request_timeout_ms;      /* default 10000 */
		char *incident_urgency;          /* "" (service default), "high" or "low" */
		char *incident_priority_id;      /* "" or a priority id */
		/* Auto-approval only through on-call entries at one of these escalation levels, and
		 * (when set) from one of these schedules, by name, case-insensitive. Empty: any. */
		bool notify_all_services; /* one incident per notify service (default: the first only) */
		tpd_cfg_intlist auto_approve_escalation_levels;
		tpd_cfg_strlist auto_approve_schedules;
	} pagerduty;

	struct {
		char *output;           /* default "stderr" */
		tpd_log_level severity; /* default info */
		tpd_log_format format;  /* default text */
	} log;

	struct {
		char *listen_addr;                   /* default ":8081"; "" disables the status server */
		int64_t pagerduty_check_interval_ms; /* default 60000: PagerDuty health check for /readyz */
	} status;

	struct {
		int workers;                 /* default 4 */
		int64_t resync_interval_ms;  /* default 600000 */
		int64_t shutdown_timeout_ms; /* default 15000 */
		bool resolve_orphans;        /* default true: resolve incidents of vanished requests */
		bool dry_run;                /* default false: log every write instead (start --dry-run) */
	} reconcile;

	struct {
		bool enabled;              /* default false */
		char *lease_name;          /* default "teleport-plugin-pagerduty" */
		char *lease_namespace;     /* default: from the service account, else "default" */
		int64_t lease_duration_ms; /* default 15000 */
		int64_t renew_deadline_ms; /* default 10000 */
		int64_t retry_period_ms;   /* default 2000 */
		char *api_server;          /* "" → in-cluster (KUBERNETES_SERVICE_HOST/PORT) */
		char *token_file;          /* "" → the pod's service-account token */
		char *ca_file;             /* "" → the pod's service-account CA */
	} leader;
} tpd_config;

/* Called once per warning (unknown key, deprecated key); msg already names file:line:col. The
 * warnings of one load are delivered together, just before tpd_config_load* returns (also when it
 * fails), with the API key masked as [REDACTED]. */
typedef void (*tpd_config_warn_cb)(void *ud, const char *msg);

/* Loads, applies defaults and validates. On failure returns TPD_ERR_CONFIG (or IO/PARSE) and
 * err (TPD_ERRLEN bytes) holds "<file>:<line>:<col>: <what> (<how to fix>)". The API key value
 * is never copied into err. */
tpd_err tpd_config_load(const char *path, tpd_config **out, tpd_config_warn_cb warn, void *ud, char *err);
/* Same from a string (tests); name is used in messages; yaml selects the YAML reader. A .yaml or
 * .yml path (any case) selects it in tpd_config_load. */
tpd_err tpd_config_load_string(const char *name, const char *text, bool yaml, tpd_config **out,
                               tpd_config_warn_cb warn, void *ud, char *err);
/* Same from a buffer of len bytes (need not be NUL-terminated; embedded NULs are an error). */
tpd_err tpd_config_load_mem(const char *name, const char *text, size_t len, bool yaml, tpd_config **out,
                            tpd_config_warn_cb warn, void *ud, char *err);
/* Frees a loaded config (wiping the API key); NULL is a no-op. */
void tpd_config_free(tpd_config *cfg);

/* A config holding every default and nothing else (name becomes its path; NULL → "<defaults>").
 * The defaults live in one table in src/config/config_table.c, which also makes the sample below. It is
 * not validated: addr, credentials, api_key and user_email are empty. Free with tpd_config_free. */
tpd_config *tpd_config_defaults(const char *name);

/* The commented sample printed by `teleport-pagerduty configure`, made from the same table as the
 * defaults. The caller frees it. */
char *tpd_config_example(void);

#endif
