/* Unit tests for config.c: the `configure` sample, defaults, every validation rule (upstream's
 * [teleport] order and wording, [pagerduty] requirements, API key files, endpoint rules, both
 * annotation-override forms, [log], our tables and ranges), type errors with positions, warnings
 * for unknown and deprecated keys, the broken/good corpus in tests/config/, and the guarantee
 * that the API key never shows up in an error or a warning. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/config/config_impl.h"
#include "tpd/config.h"
#include "tpd/util.h"

#define SECRET "u+SeKrEt-pd-KEY-0123456789"

typedef struct {
	int n;
	char msg[32][TPD_ERRLEN + 64];
} warnings;

static void collect(void *ud, const char *msg)
{
	warnings *w = ud;

	if (w->n < 32)
		snprintf(w->msg[w->n], sizeof(w->msg[0]), "%s", msg);
	w->n++;
}

static bool warned(const warnings *w, const char *needle)
{
	for (int i = 0; i < w->n && i < 32; i++)
		if (strstr(w->msg[i], needle))
			return true;
	return false;
}

/* Loads text (exact-size heap copy) as file "t"; returns the code. */
static tpd_err load(const char *text, bool yaml, tpd_config **cfg, warnings *w, char *err)
{
	size_t len = strlen(text);
	char *copy = malloc(len ? len : 1);
	tpd_err rc;

	assert_non_null(copy);
	memcpy(copy, text, len);
	if (w)
		memset(w, 0, sizeof(*w));
	err[0] = 0;
	rc = tpd_config_load_mem("t", copy, len, yaml, cfg, collect, w, err);
	free(copy);
	return rc;
}

static tpd_config *load_ok(const char *text, bool yaml, warnings *w)
{
	char err[TPD_ERRLEN];
	tpd_config *cfg = NULL;
	warnings local;

	if (load(text, yaml, &cfg, w ? w : &local, err))
		fail_msg("unexpected error: %s\ninput:\n%s", err, text);
	assert_non_null(cfg);
	return cfg;
}

/* Expects an error whose message starts with "t:<line>:<col>: " and contains what. */
static void load_fail(const char *text, bool yaml, int line, int col, const char *what)
{
	char err[TPD_ERRLEN], prefix[64];
	tpd_config *cfg = NULL;
	warnings w;
	tpd_err rc = load(text, yaml, &cfg, &w, err);

	if (rc == TPD_ERR_OK) {
		tpd_config_free(cfg);
		fail_msg("expected an error (%s) for:\n%s", what, text);
	}
	assert_null(cfg);
	assert_true(rc == TPD_ERR_CONFIG || rc == TPD_ERR_PARSE);
	snprintf(prefix, sizeof(prefix), "t:%d:%d: ", line, col);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, what))
		fail_msg("got \"%s\"\nwant prefix \"%s\" and \"%s\"\ninput:\n%s", err, prefix, what, text);
	assert_null(strchr(err, '\n'));
	assert_true(err[strlen(err) - 1] == ')');
}

#define PD "[pagerduty]\napi_key = \"k\"\nuser_email = \"a@b.c\"\n"

/* --- the sample ---------------------------------------------------------------------------------- */

static void test_example_loads(void **state)
{
	char *ex = tpd_config_example();
	static const char *const must[] = {
	    "[teleport]",
	    "addr = \"example.com:3025\"",
	    "3025",
	    "3080",
	    "443",
	    "teleport.sh:443",
	    "# identity = \"/var/lib/teleport/plugins/pagerduty/auth_id\"",
	    "# refresh_identity = true",
	    "# client_key = \"/var/lib/teleport/plugins/pagerduty/auth.key\"",
	    "# client_crt = \"/var/lib/teleport/plugins/pagerduty/auth.crt\"",
	    "# root_cas = \"/var/lib/teleport/plugins/pagerduty/auth.cas\"",
	    "[pagerduty]",
	    "api_key = \"key\"",
	    "user_email = \"me@example.com\"",
	    "[log]",
	    "output = \"stderr\"",
	    "severity = \"INFO\"",
	    "# api_endpoint = \"https://api.pagerduty.com\"",
	    "# notify_service = \"pagerduty_notify_service\"",
	    "# services = \"pagerduty_services\"",
	    "# [pagerduty.RequestAnnotations]",
	    "# rate_limit_per_minute = 900",
	    "# cache_ttl = \"5m\"",
	    "# connect_timeout = \"5s\"",
	    "# request_timeout = \"10s\"",
	    "# incident_urgency = \"\"",
	    "# incident_priority_id = \"\"",
	    "# format = \"text\"",
	    "# [status]",
	    "# listen_addr = \":8081\"",
	    "# [reconcile]",
	    "# workers = 4",
	    "# resync_interval = \"10m\"",
	    "# shutdown_timeout = \"15s\"",
	    "# [leader_election]",
	    "# enabled = false",
	    "# lease_name = \"teleport-plugin-pagerduty\"",
	    "# lease_namespace = \"\"",
	    "# lease_duration = \"15s\"",
	    "# renew_deadline = \"10s\"",
	    "# retry_period = \"2s\"",
	};
	char err[TPD_ERRLEN];
	tpd_config *cfg = NULL;
	warnings w;

	(void)state;
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		if (!strstr(ex, must[i]))
			fail_msg("the sample lacks %s", must[i]);
	assert_true(ex[strlen(ex) - 1] == '\n');
	memset(&w, 0, sizeof(w));
	assert_int_equal(tpd_config_load_string("example.toml", ex, false, &cfg, collect, &w, err),
	                 TPD_ERR_OK);
	assert_int_equal(w.n, 0);
	assert_string_equal(cfg->path, "example.toml");
	assert_string_equal(cfg->teleport.addr, "example.com:3025");
	assert_string_equal(cfg->pagerduty.api_key, "key");
	assert_null(cfg->pagerduty.api_key_file);
	assert_string_equal(cfg->pagerduty.user_email, "me@example.com");
	assert_string_equal(cfg->log.output, "stderr");
	assert_int_equal(cfg->log.severity, TPD_LOG_INFO);
	tpd_config_free(cfg);
	free(ex);
}

/* Uncommenting every optional setting after [pagerduty] must give a valid config with the same
 * (default) values and no warning: the sample documents real keys and real defaults. */
static void test_example_uncommented(void **state)
{
	char *ex = tpd_config_example();
	tpd_buf b;
	bool after_pd = false;
	tpd_config *cfg;
	warnings w;

	(void)state;
	tpd_buf_init(&b, 0);
	for (const char *line = ex; *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);

		if (!strncmp(line, "[pagerduty]", 11))
			after_pd = true;
		if (after_pd && n > 2 && line[0] == '#' && line[1] == ' ' &&
		    ((line[2] >= 'a' && line[2] <= 'z') || line[2] == '['))
			tpd_buf_append(&b, line + 2, n - 2);
		else
			tpd_buf_append(&b, line, n);
		line += n;
	}
	assert_non_null(strstr(b.data, "\n[leader_election]"));
	assert_non_null(strstr(b.data, "\nrate_limit_per_minute = 900"));
	cfg = load_ok(b.data, false, &w);
	if (w.n)
		fail_msg("warning: %s", w.msg[0]);
	assert_string_equal(cfg->pagerduty.api_endpoint, "https://api.pagerduty.com");
	assert_string_equal(cfg->pagerduty.notify_service_annotation, "pagerduty_notify_service");
	assert_string_equal(cfg->pagerduty.services_annotation, "pagerduty_services");
	assert_int_equal(cfg->pagerduty.rate_limit_per_minute, 900);
	assert_int_equal(cfg->pagerduty.cache_ttl_ms, 300000);
	assert_int_equal(cfg->log.format, TPD_LOG_FORMAT_TEXT);
	assert_string_equal(cfg->status.listen_addr, ":8081");
	assert_int_equal(cfg->reconcile.workers, 4);
	assert_int_equal(cfg->leader.lease_duration_ms, 15000);
	assert_false(cfg->leader.enabled);
	/* every key the sample shows with its default holds, once loaded, what tpd_config_defaults()
	 * holds: the two come from one table and cannot drift */
	{
		tpd_config *d = tpd_config_defaults(NULL);
		size_t compared = 0;

		for (size_t i = 0; i < tpd_cfg_nfields; i++) {
			const tpd_cfg_field *f = &tpd_cfg_fields[i];
			const char *a = (const char *)cfg + f->off, *e = (const char *)d + f->off;

			if (f->show ||
			    (f->flags & (TPD_CFG_F_LOADER | TPD_CFG_F_HIDE | TPD_CFG_F_RESOLVED)) || !f->def)
				continue;
			compared++;
			switch (f->kind) {
			case TPD_CFG_STR:
				if (strcmp(*(char *const *)a, *(char *const *)e))
					fail_msg("%s.%s: sample \"%s\", default \"%s\"", f->table, f->key,
					         *(char *const *)a, *(char *const *)e);
				break;
			case TPD_CFG_BOOL:
				assert_int_equal(*(const bool *)a, *(const bool *)e);
				break;
			case TPD_CFG_INT:
				assert_int_equal(*(const int *)a, *(const int *)e);
				break;
			case TPD_CFG_DUR:
				if (*(const int64_t *)a != *(const int64_t *)e)
					fail_msg("%s.%s: sample %lld ms, default %lld ms", f->table, f->key,
					         (long long)*(const int64_t *)a,
					         (long long)*(const int64_t *)e);
				break;
			case TPD_CFG_STRLIST:
				assert_int_equal(((const tpd_cfg_strlist *)a)->n,
				                 ((const tpd_cfg_strlist *)e)->n);
				break;
			case TPD_CFG_INTLIST:
				assert_int_equal(((const tpd_cfg_intlist *)a)->n,
				                 ((const tpd_cfg_intlist *)e)->n);
				break;
			}
		}
		assert_true(compared >= 20);
		assert_int_equal(cfg->log.severity, d->log.severity);
		assert_int_equal(cfg->log.format, d->log.format);
		tpd_config_free(d);
	}
	tpd_config_free(cfg);
	tpd_buf_free(&b);
	free(ex);
}

/* --- defaults and values ------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
	tpd_config *cfg;

	(void)state;
	cfg = load_ok(PD, false, NULL);
	assert_string_equal(cfg->teleport.addr, "");
	assert_string_equal(cfg->teleport.identity, "");
	assert_false(cfg->teleport.refresh_identity);
	assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 60000);
	assert_string_equal(cfg->pagerduty.api_endpoint, TPD_DEFAULT_PD_ENDPOINT);
	assert_string_equal(cfg->pagerduty.notify_service_annotation, TPD_DEFAULT_NOTIFY_ANNOTATION);
	assert_string_equal(cfg->pagerduty.services_annotation, TPD_DEFAULT_SERVICES_ANNOTATION);
	assert_int_equal(cfg->pagerduty.rate_limit_per_minute, 900);
	assert_int_equal(cfg->pagerduty.cache_ttl_ms, 300000);
	assert_int_equal(cfg->pagerduty.connect_timeout_ms, 5000);
	assert_int_equal(cfg->pagerduty.request_timeout_ms, 10000);
	assert_string_equal(cfg->pagerduty.incident_urgency, "");
	assert_string_equal(cfg->pagerduty.incident_priority_id, "");
	assert_string_equal(cfg->log.output, "stderr");
	assert_int_equal(cfg->log.severity, TPD_LOG_INFO);
	assert_int_equal(cfg->log.format, TPD_LOG_FORMAT_TEXT);
	assert_string_equal(cfg->status.listen_addr, ":8081");
	assert_int_equal(cfg->reconcile.workers, 4);
	assert_int_equal(cfg->reconcile.resync_interval_ms, 600000);
	assert_int_equal(cfg->reconcile.shutdown_timeout_ms, 15000);
	assert_false(cfg->leader.enabled);
	assert_string_equal(cfg->leader.lease_name, "teleport-plugin-pagerduty");
	assert_string_equal(cfg->leader.lease_namespace, "");
	assert_int_equal(cfg->leader.lease_duration_ms, 15000);
	assert_int_equal(cfg->leader.renew_deadline_ms, 10000);
	assert_int_equal(cfg->leader.retry_period_ms, 2000);
	tpd_config_free(cfg);
	/* empty values mean "default" where upstream says so; listen_addr "" disables */
	cfg = load_ok(PD "api_endpoint = \"\"\nnotify_service = \"\"\n[log]\noutput = \"\"\nseverity = \"\"\n"
	                 "[status]\nlisten_addr = \"\"\n",
	              false, NULL);
	assert_string_equal(cfg->pagerduty.api_endpoint, TPD_DEFAULT_PD_ENDPOINT);
	assert_string_equal(cfg->pagerduty.notify_service_annotation, TPD_DEFAULT_NOTIFY_ANNOTATION);
	assert_string_equal(cfg->log.output, "stderr");
	assert_int_equal(cfg->log.severity, TPD_LOG_INFO);
	assert_string_equal(cfg->status.listen_addr, "");
	tpd_config_free(cfg);
}

/* --- [teleport] ---------------------------------------------------------------------------------- */

static void test_tls_triple(void **state)
{
	static const struct {
		const char *set, *given, *missing;
	} cases[] = {
	    {"client_key = \"/k\"\n", "`client_key`", "`client_crt`, `root_cas`"},
	    {"client_crt = \"/c\"\n", "`client_crt`", "`client_key`, `root_cas`"},
	    {"root_cas = \"/r\"\n", "`root_cas`", "`client_key`, `client_crt`"},
	    {"root_cas = \"/r\"\nclient_key = \"/k\"\n", "`client_key`, `root_cas`", "`client_crt`"},
	    {"client_crt = \"/c\"\nroot_cas = \"/r\"\n", "`client_crt`, `root_cas`", "`client_key`"},
	    {"client_crt = \"/c\"\nclient_key = \"/k\"\n", "`client_key`, `client_crt`", "`root_cas`"},
	    /* identity does not hide a partial triple: the triple rule comes first */
	    {"identity = \"/id\"\nclient_crt = \"/c\"\n", "`client_crt`", "`client_key`, `root_cas`"},
	};
	char text[512], what[256];
	tpd_config *cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[teleport]\n%s" PD, cases[i].set);
		snprintf(
		    what, sizeof(what),
		    "configuration setting(s) %s are provided but setting(s) %s are missing (set all three",
		    cases[i].given, cases[i].missing);
		/* points at the first given setting (line 2 or 3, after its "key = ") */
		{
			char err[TPD_ERRLEN];
			tpd_config *c = NULL;

			assert_int_equal(load(text, false, &c, NULL, err), TPD_ERR_CONFIG);
			if (!strstr(err, what))
				fail_msg("case %zu: %s", i, err);
			assert_true(!strncmp(err, "t:2:", 4) || !strncmp(err, "t:3:", 4));
		}
	}
	load_fail(
	    "[teleport]\nidentity = \"/id\"\nclient_key = \"/k\"\nclient_crt = \"/c\"\nroot_cas = "
	    "\"/r\"\n" PD,
	    false, 2, 12,
	    "configuration setting `identity` is mutually exclusive with all the `client_crt`, `client_key` "
	    "and `root_cas` settings");
	cfg = load_ok("[teleport]\nclient_key = \"/k\"\nclient_crt = \"/c\"\nroot_cas = \"/r\"\n" PD, false,
	              NULL);
	assert_string_equal(cfg->teleport.client_crt, "/c");
	tpd_config_free(cfg);
	cfg = load_ok("[teleport]\nidentity = \"/id\"\n" PD, false, NULL);
	assert_string_equal(cfg->teleport.identity, "/id");
	tpd_config_free(cfg);
}

static void test_refresh_identity(void **state)
{
	tpd_config *cfg;
	warnings w;

	(void)state;
	load_fail("[teleport]\naddr = \"x:443\"\nrefresh_identity = true\n" PD, false, 3, 20,
	          "`refresh_identity` requires that `identity` be set");
	cfg = load_ok("[teleport]\nidentity = \"/id\"\nrefresh_identity = true\n" PD, false, NULL);
	assert_true(cfg->teleport.refresh_identity);
	assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 60000);
	tpd_config_free(cfg);
	cfg = load_ok("[teleport]\nrefresh_identity_interval = \"0s\"\n" PD, false, NULL);
	assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 60000);
	tpd_config_free(cfg);
	cfg = load_ok("[teleport]\nrefresh_identity_interval = \"1m30s\"\n" PD, false, NULL);
	assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 90000);
	tpd_config_free(cfg);
	/* integers are nanoseconds, as go-toml v1 decodes a time.Duration */
	cfg = load_ok("[teleport]\nrefresh_identity_interval = 5_000_000_000\n" PD, false, &w);
	assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 5000);
	assert_int_equal(w.n, 0);
	tpd_config_free(cfg);
	cfg = load_ok("[teleport]\nrefresh_identity_interval = 60\n" PD, false, &w);
	assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 1);
	assert_int_equal(w.n, 1);
	assert_non_null(
	    strstr(w.msg[0], "t:2:29: teleport.refresh_identity_interval = 60 is read as 60 nanoseconds"));
	tpd_config_free(cfg);
	load_fail("[teleport]\nrefresh_identity_interval = -1\n" PD, false, 2, 29, "must not be negative");
	load_fail("[teleport]\nrefresh_identity_interval = \"-1s\"\n" PD, false, 2, 29,
	          "invalid duration \"-1s\"");
	load_fail("[teleport]\nrefresh_identity_interval = 1.5\n" PD, false, 2, 29,
	          "teleport.refresh_identity_interval must be a duration string, not a float (example: "
	          "refresh_identity_interval = \"1m\")");
}

static void test_auth_server(void **state)
{
	tpd_config *cfg;
	warnings w;

	(void)state;
	cfg = load_ok("[teleport]\nauth_server = \"auth.example.com:3025\"\n" PD, false, &w);
	assert_string_equal(cfg->teleport.addr, "auth.example.com:3025");
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.msg[0],
	                       "t:2:15: Configuration setting `auth_server` is deprecated, consider to "
	                       "change it to `addr`"));
	tpd_config_free(cfg);
	cfg = load_ok("[teleport]\naddr = \"proxy:443\"\nauth_server = \"auth:3025\"\n" PD, false, &w);
	assert_string_equal(cfg->teleport.addr, "proxy:443");
	assert_int_equal(w.n, 1);
	tpd_config_free(cfg);
	cfg = load_ok("[teleport]\nauth_server = \"\"\n" PD, false, &w);
	assert_int_equal(w.n, 0);
	tpd_config_free(cfg);
}

/* --- [pagerduty] --------------------------------------------------------------------------------- */

static void test_required_values(void **state)
{
	(void)state;
	load_fail("[teleport]\naddr = \"x:3025\"\n\n[pagerduty]\nuser_email = \"a@b.c\"\n", false, 4, 1,
	          "missing required value pagerduty.api_key (set api_key");
	load_fail("[teleport]\naddr = \"x:3025\"\n", false, 1, 1, "missing required value pagerduty.api_key");
	load_fail("", false, 1, 1, "missing required value pagerduty.api_key");
	load_fail("[pagerduty]\napi_key = \"\"\nuser_email = \"a@b.c\"\n", false, 2, 11,
	          "missing required value pagerduty.api_key");
	load_fail("[pagerduty]\napi_key = \"k\"\n", false, 1, 1,
	          "missing required value pagerduty.user_email (set");
	load_fail("pagerduty:\n  api_key: k\n  user_email:\n", true, 2, 3,
	          "missing required value pagerduty.user_email");
	load_fail("[pagerduty]\napi_key = \"k\"\nuser_email = \"no-at-sign\"\n", false, 3, 14,
	          "not a valid e-mail address");
	load_fail("[pagerduty]\napi_key = \"k\"\nuser_email = \"a@b.c\\r\\nX-Evil: 1\"\n", false, 3, 14,
	          "not a valid e-mail address");
	load_fail("[pagerduty]\napi_key = \"two words\"\nuser_email = \"a@b.c\"\n", false, 2, 11,
	          "pagerduty.api_key contains spaces or control characters");
}

static char *temp_file(const char *content, size_t len)
{
	char *path = xstrdup("/tmp/tpd-config-test-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_api_key_file(void **state)
{
	char text[1024], big[2100], err[TPD_ERRLEN];
	char *path = temp_file("  \t" SECRET " \n\n", strlen(SECRET) + 6), *p2;
	tpd_config *cfg = NULL;
	warnings w;

	(void)state;
	snprintf(text, sizeof(text), "[pagerduty]\napi_key = \"%s\"\nuser_email = \"a@b.c\"\n", path);
	cfg = load_ok(text, false, NULL);
	assert_string_equal(cfg->pagerduty.api_key, SECRET);
	assert_string_equal(cfg->pagerduty.api_key_file, path);
	tpd_config_free(cfg);
	/* a later error must not mention the key read from the file */
	snprintf(text, sizeof(text), "[pagerduty]\napi_key = \"%s\"\nuser_email = \"bad\"\n", path);
	assert_int_equal(load(text, false, &cfg, &w, err), TPD_ERR_CONFIG);
	assert_null(strstr(err, SECRET));
	unlink(path);
	/* unreadable: the message names the file */
	assert_int_equal(load(text, false, &cfg, &w, err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "t:2:11: error reading the API key: "));
	assert_non_null(strstr(err, path));
	free(path);
	snprintf(text, sizeof(text), "[pagerduty]\napi_key = \"/tmp\"\nuser_email = \"a@b.c\"\n");
	assert_int_equal(load(text, false, &cfg, &w, err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "t:2:11: error reading the API key"));
	/* empty (whitespace only) */
	path = temp_file(" \n", 2);
	snprintf(text, sizeof(text), "[pagerduty]\napi_key = \"%s\"\nuser_email = \"a@b.c\"\n", path);
	load_fail(text, false, 2, 11, "is empty");
	unlink(path);
	free(path);
	/* more than 2000 bytes */
	memset(big, 'k', sizeof(big));
	path = temp_file(big, 2001);
	snprintf(text, sizeof(text), "[pagerduty]\napi_key = \"%s\"\nuser_email = \"a@b.c\"\n", path);
	load_fail(text, false, 2, 11, "larger than 2000 bytes");
	unlink(path);
	free(path);
	path = temp_file(big, 2000);
	snprintf(text, sizeof(text), "[pagerduty]\napi_key = \"%s\"\nuser_email = \"a@b.c\"\n", path);
	cfg = load_ok(text, false, NULL);
	assert_int_equal(strlen(cfg->pagerduty.api_key), 2000);
	tpd_config_free(cfg);
	unlink(path);
	free(path);
	/* a key file holding a key with an inner newline is refused */
	p2 = temp_file("abc\ndef\n", 8);
	snprintf(text, sizeof(text), "pagerduty:\n  api_key: %s\n  user_email: a@b.c\n", p2);
	load_fail(text, true, 2, 12, "contains spaces or control characters");
	unlink(p2);
	free(p2);
}

static void test_api_endpoint(void **state)
{
	static const char *const good[][2] = {
	    {"https://api.pagerduty.com", "https://api.pagerduty.com"},
	    {"https://api.eu.pagerduty.com/", "https://api.eu.pagerduty.com"},
	    {"HTTPS://api.pagerduty.com//", "HTTPS://api.pagerduty.com"},
	    {"https://pd.internal:8443/v2/", "https://pd.internal:8443/v2"},
	    {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
	    {"http://127.9.8.7:1/", "http://127.9.8.7:1"},
	    {"http://localhost:9999/api", "http://localhost:9999/api"},
	    {"http://LOCALHOST", "http://LOCALHOST"},
	    {"http://[::1]:8080", "http://[::1]:8080"},
	    {"https://[2001:db8::1]:443", "https://[2001:db8::1]:443"},
	};
	static const char *const bad[][2] = {
	    {"http://api.pagerduty.com", "must use https://"},
	    {"http://127.0.0.1.evil.example:80", "must use https://"},
	    {"http://128.0.0.1", "must use https://"},
	    {"http://[::2]:80", "must use https://"},
	    {"ftp://api.pagerduty.com", "must start with https://"},
	    {"api.pagerduty.com", "must start with https://"},
	    {"https://", "has no host"},
	    {"https:///path", "has no host"},
	    {"https://user:pw@api.pagerduty.com", "must not contain credentials"},
	    {"https://api.pagerduty.com:0", "port out of range"},
	    {"https://api.pagerduty.com:65536", "port out of range"},
	    {"https://api.pagerduty.com:", "invalid port"},
	    {"https://api.pagerduty.com:x1", "invalid port"},
	    {"https://api.pagerduty.com/?q=1", "query or fragment"},
	    {"https://api.pagerduty.com#f", "query or fragment"},
	    {"https://api pagerduty.com", "invalid character"},
	    {"https://api_pd!.com", "invalid host name"},
	    {"https://[::1", "unterminated [IPv6] host"},
	    {"https://[zz]:1", "invalid IPv6 host"},
	};
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		tpd_config *cfg;

		snprintf(text, sizeof(text), PD "api_endpoint = \"%s\"\n", good[i][0]);
		cfg = load_ok(text, false, NULL);
		assert_string_equal(cfg->pagerduty.api_endpoint, good[i][1]);
		tpd_config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), PD "api_endpoint = \"%s\"\n", bad[i][0]);
		load_fail(text, false, 4, 16, bad[i][1]);
	}
}

static void test_annotations(void **state)
{
	static const char *const variants[] = {"RequestAnnotations", "requestannotations",
	                                       "REQUESTANNOTATIONS", "requestAnnotations"};
	char text[512];
	tpd_config *cfg;
	warnings w;

	(void)state;
	/* documented form: keys directly in [pagerduty] */
	cfg = load_ok(PD "notify_service = \"n1\"\nservices = \"s1\"\n", false, &w);
	assert_string_equal(cfg->pagerduty.notify_service_annotation, "n1");
	assert_string_equal(cfg->pagerduty.services_annotation, "s1");
	assert_int_equal(w.n, 0);
	tpd_config_free(cfg);
	/* upstream's table in every spelling go-toml v1 accepts */
	for (size_t i = 0; i < 4; i++) {
		snprintf(text, sizeof(text),
		         PD "[pagerduty.%s]\nnotify_service = \"n%zu\"\nservices = \"s%zu\"\n", variants[i],
		         i, i);
		cfg = load_ok(text, false, &w);
		assert_int_equal(w.n, 0);
		snprintf(text, sizeof(text), "n%zu", i);
		assert_string_equal(cfg->pagerduty.notify_service_annotation, text);
		snprintf(text, sizeof(text), "s%zu", i);
		assert_string_equal(cfg->pagerduty.services_annotation, text);
		tpd_config_free(cfg);
	}
	/* YAML form, one key only: the other keeps its default */
	cfg =
	    load_ok("pagerduty:\n  api_key: k\n  user_email: a@b.c\n  RequestAnnotations:\n    services: s\n",
	            true, &w);
	assert_string_equal(cfg->pagerduty.services_annotation, "s");
	assert_string_equal(cfg->pagerduty.notify_service_annotation, TPD_DEFAULT_NOTIFY_ANNOTATION);
	tpd_config_free(cfg);
	/* empty values → defaults */
	cfg =
	    load_ok(PD "[pagerduty.RequestAnnotations]\nnotify_service = \"\"\nservices = \"\"\n", false, &w);
	assert_string_equal(cfg->pagerduty.notify_service_annotation, TPD_DEFAULT_NOTIFY_ANNOTATION);
	assert_string_equal(cfg->pagerduty.services_annotation, TPD_DEFAULT_SERVICES_ANNOTATION);
	tpd_config_free(cfg);
	/* same value in both places is fine; different values are an error */
	cfg = load_ok(PD "services = \"x\"\n[pagerduty.RequestAnnotations]\nservices = \"x\"\n", false, &w);
	assert_string_equal(cfg->pagerduty.services_annotation, "x");
	tpd_config_free(cfg);
	load_fail(PD "services = \"x\"\n[pagerduty.RequestAnnotations]\nservices = \"y\"\n", false, 4, 12,
	          "pagerduty.services and pagerduty.RequestAnnotations.services disagree");
	load_fail(PD "[pagerduty.RequestAnnotations]\n[pagerduty.requestAnnotations]\n", false, 5, 12,
	          "both pagerduty.RequestAnnotations and pagerduty.requestAnnotations");
	load_fail(PD "RequestAnnotations = \"x\"\n", false, 4, 22,
	          "pagerduty.RequestAnnotations must be a table");
	load_fail(PD "[pagerduty.RequestAnnotations]\nservices = 5\n", false, 5, 12,
	          "pagerduty.RequestAnnotations.services must be a string, not an integer");
	load_fail(PD "notify_service = \"has space\"\n", false, 4, 18, "contains spaces");
	/* other spellings are unknown keys (warned, with a suggestion), and unknown keys inside */
	cfg = load_ok(PD "[pagerduty.Requestannotations]\nservices = \"x\"\n", false, &w);
	assert_string_equal(cfg->pagerduty.services_annotation, TPD_DEFAULT_SERVICES_ANNOTATION);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.msg[0],
	                       "t:4:12: unknown table [pagerduty.Requestannotations] (ignored; did you mean "
	                       "RequestAnnotations?)"));
	tpd_config_free(cfg);
	cfg = load_ok(PD "[pagerduty.RequestAnnotations]\nnotify = \"x\"\n", false, &w);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.msg[0], "t:5:1: unknown key pagerduty.RequestAnnotations.notify"));
	tpd_config_free(cfg);
}

static void test_pagerduty_options(void **state)
{
	tpd_config *cfg;

	(void)state;
	cfg = load_ok(
	    PD "incident_urgency = \"HIGH\"\nincident_priority_id = \"P53ZZH5\"\nrate_limit_per_minute = 1\n"
	       "cache_ttl = \"1h\"\nconnect_timeout = \"250ms\"\nrequest_timeout = 30_000_000_000\n",
	    false, NULL);
	assert_string_equal(cfg->pagerduty.incident_urgency, "high");
	assert_string_equal(cfg->pagerduty.incident_priority_id, "P53ZZH5");
	assert_int_equal(cfg->pagerduty.rate_limit_per_minute, 1);
	assert_int_equal(cfg->pagerduty.cache_ttl_ms, 3600000);
	assert_int_equal(cfg->pagerduty.connect_timeout_ms, 250);
	assert_int_equal(cfg->pagerduty.request_timeout_ms, 30000);
	tpd_config_free(cfg);
	cfg = load_ok(PD "rate_limit_per_minute = 100000\n", false, NULL);
	assert_int_equal(cfg->pagerduty.rate_limit_per_minute, 100000);
	tpd_config_free(cfg);
	load_fail(PD "incident_urgency = \"medium\"\n", false, 4, 20, "must be high or low");
	load_fail(PD "incident_priority_id = \"P 1\"\n", false, 4, 24, "not a valid PagerDuty id");
	load_fail(PD "rate_limit_per_minute = 0\n", false, 4, 25,
	          "is 0, out of range: it must be between 1 and 100000");
	load_fail(PD "rate_limit_per_minute = 100001\n", false, 4, 25, "out of range");
	load_fail(PD "rate_limit_per_minute = -5\n", false, 4, 25, "out of range");
	load_fail(PD "cache_ttl = \"0s\"\n", false, 4, 13, "pagerduty.cache_ttl must be greater than zero");
	load_fail(PD "connect_timeout = \"0\"\n", false, 4, 19,
	          "pagerduty.connect_timeout must be greater than zero");
	load_fail(PD "request_timeout = 0\n", false, 4, 19,
	          "pagerduty.request_timeout must be greater than zero");
	load_fail(PD "request_timeout = \"9000h\"\n", false, 4, 19, "too long");
}

/* --- [log] --------------------------------------------------------------------------------------- */

static void test_log(void **state)
{
	static const struct {
		const char *s;
		tpd_log_level l;
	} levels[] = {
	    {"info", TPD_LOG_INFO},   {"INFO", TPD_LOG_INFO},    {"Debug", TPD_LOG_DEBUG},
	    {"warn", TPD_LOG_WARN},   {"WARNING", TPD_LOG_WARN}, {"err", TPD_LOG_ERROR},
	    {"Error", TPD_LOG_ERROR}, {"trace", TPD_LOG_TRACE},
	};
	static const char *const outputs[] = {"stdout", "stderr",         "1", "2", "out",
	                                      "error",  "/var/log/pd.log"};
	char text[512];
	tpd_config *cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(text, sizeof(text), PD "[log]\nseverity = \"%s\"\n", levels[i].s);
		cfg = load_ok(text, false, NULL);
		assert_int_equal(cfg->log.severity, levels[i].l);
		tpd_config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
		snprintf(text, sizeof(text), PD "[log]\noutput = \"%s\"\n", outputs[i]);
		cfg = load_ok(text, false, NULL);
		assert_string_equal(cfg->log.output, outputs[i]);
		tpd_config_free(cfg);
	}
	load_fail(PD "[log]\nseverity = \"verbose\"\n", false, 5, 12,
	          "unsupported logger severity: 'verbose' (use one of trace, debug, info, warn (warning), "
	          "error (err)");
	cfg = load_ok(PD "[log]\nformat = \"JSON\"\n", false, NULL);
	assert_int_equal(cfg->log.format, TPD_LOG_FORMAT_JSON);
	tpd_config_free(cfg);
	cfg = load_ok("log:\n  format: text\npagerduty: {api_key: k, user_email: a@b.c}\n", true, NULL);
	assert_int_equal(cfg->log.format, TPD_LOG_FORMAT_TEXT);
	tpd_config_free(cfg);
	load_fail(PD "[log]\nformat = \"logfmt\"\n", false, 5, 10,
	          "unsupported log format: 'logfmt' (use \"text\"");
	load_fail(PD "[log]\noutput = \"a\\nb\"\n", false, 5, 10, "control character");
}

/* --- our tables ---------------------------------------------------------------------------------- */

static void test_our_tables(void **state)
{
	tpd_config *cfg;

	(void)state;
	cfg = load_ok(PD "[reconcile]\nworkers = 64\nresync_interval = \"30m\"\nshutdown_timeout = \"1s\"\n"
	                 "[leader_election]\nenabled = true\nlease_name = \"pd.plugin-1\"\nlease_namespace = "
	                 "\"teleport\"\n"
	                 "lease_duration = \"60s\"\nrenew_deadline = \"40s\"\nretry_period = \"39s\"\n"
	                 "[status]\nlisten_addr = \"[::]:0\"\n",
	              false, NULL);
	assert_int_equal(cfg->reconcile.workers, 64);
	assert_int_equal(cfg->reconcile.resync_interval_ms, 1800000);
	assert_int_equal(cfg->reconcile.shutdown_timeout_ms, 1000);
	assert_true(cfg->leader.enabled);
	assert_string_equal(cfg->leader.lease_name, "pd.plugin-1");
	assert_string_equal(cfg->leader.lease_namespace, "teleport");
	assert_int_equal(cfg->leader.lease_duration_ms, 60000);
	assert_int_equal(cfg->leader.renew_deadline_ms, 40000);
	assert_int_equal(cfg->leader.retry_period_ms, 39000);
	assert_string_equal(cfg->status.listen_addr, "[::]:0");
	tpd_config_free(cfg);
	cfg = load_ok(PD "[reconcile]\nworkers = 1\n", false, NULL);
	assert_int_equal(cfg->reconcile.workers, 1);
	tpd_config_free(cfg);
	load_fail(PD "[reconcile]\nworkers = 0\n", false, 5, 11,
	          "reconcile.workers is 0, out of range: it must be "
	          "between 1 and 64 (example: workers = 4)");
	load_fail(PD "[reconcile]\nworkers = 65\n", false, 5, 11, "out of range");
	load_fail(PD "[reconcile]\nworkers = 4294967297\n", false, 5, 11, "out of range");
	load_fail(PD "[reconcile]\nresync_interval = \"0s\"\n", false, 5, 19, "greater than zero");
	load_fail(PD "[reconcile]\nshutdown_timeout = \"0ms\"\n", false, 5, 20, "greater than zero");
	load_fail(PD "[leader_election]\nlease_duration = \"0s\"\n", false, 5, 18, "greater than zero");
	/* timings: renew_deadline < lease_duration, retry_period < renew_deadline */
	load_fail(PD "[leader_election]\nlease_duration = \"10s\"\n", false, 5, 18,
	          "leader_election.renew_deadline (10000ms) must be less than lease_duration (10000ms)");
	load_fail(PD "[leader_election]\nlease_duration = \"15s\"\nrenew_deadline = \"15s\"\n", false, 6, 18,
	          "must be less than lease_duration");
	load_fail(PD "[leader_election]\nretry_period = \"10s\"\n", false, 5, 16,
	          "leader_election.retry_period (10000ms) must be less than renew_deadline (10000ms)");
	load_fail(PD "[leader_election]\nrenew_deadline = \"2s\"\n", false, 5, 18,
	          "retry_period (2000ms) must be less than renew_deadline (2000ms)");
	load_fail(PD "[leader_election]\nlease_name = \"Bad_Name\"\n", false, 5, 14,
	          "not a valid Kubernetes name");
	load_fail(PD "[leader_election]\nlease_name = \"\"\n", false, 5, 14, "not a valid Kubernetes name");
	load_fail(PD "[leader_election]\nlease_namespace = \"a.b\"\n", false, 5, 19,
	          "not a valid Kubernetes namespace");
	load_fail(PD "[status]\nlisten_addr = \"8081\"\n", false, 5, 15, "not a valid listen address");
	load_fail(PD "[status]\nlisten_addr = \"host:99999\"\n", false, 5, 15, "not a valid listen address");
	load_fail(PD "[status]\nlisten_addr = \"a b:1\"\n", false, 5, 15, "not a valid listen address");
}

/* --- types, unknown keys ----------------------------------------------------------------------------- */

static void test_wrong_types(void **state)
{
	(void)state;
	load_fail(
	    "[teleport]\naddr = 3025\n" PD, false, 2, 8,
	    "teleport.addr must be a string, not an integer (example: addr = \"teleport.example.com:443\")");
	load_fail("[teleport]\nidentity = [\"/a\"]\n" PD, false, 2, 12,
	          "teleport.identity must be a string, not an array");
	load_fail(
	    "[teleport]\nrefresh_identity = \"true\"\n" PD, false, 2, 20,
	    "teleport.refresh_identity must be a boolean, not a string (write true or false without quotes)");
	load_fail("[teleport]\nrefresh_identity = 1\n" PD, false, 2, 20,
	          "must be a boolean, not an integer (example: refresh_identity = true)");
	load_fail(PD "[reconcile]\nworkers = \"4\"\n", false, 5, 11,
	          "reconcile.workers must be an integer, not a string (write the number without quotes)");
	load_fail(PD "[reconcile]\nworkers = 4.0\n", false, 5, 11,
	          "must be an integer, not a float (example: workers = 4)");
	load_fail(PD "[reconcile]\nresync_interval = true\n", false, 5, 19,
	          "must be a duration string, not a boolean (example: resync_interval = \"10m\")");
	load_fail(PD "[pagerduty.x]\n[log]\nseverity = {}\n", false, 6, 12,
	          "log.severity must be a string, not a table");
	load_fail("log = 1\n" PD, false, 1, 7, "log must be a table, not an integer");
	load_fail("pagerduty:\n  api_key: k\n  user_email: [a@b.c]\n", true, 3, 15,
	          "pagerduty.user_email must be a string, not an array");
	load_fail("pagerduty: [1]\n", true, 1, 12, "pagerduty must be a table, not an array");
	load_fail("pagerduty:\n  api_key: k\n  user_email: a@b.c\nreconcile:\n  workers: \"4\"\n", true, 5,
	          12, "must be an integer, not a string");
}

static void test_unknown_keys_warn(void **state)
{
	tpd_config *cfg;
	warnings w;

	(void)state;
	cfg = load_ok(
	    "servce_id = 1\n[teleport]\naddr = \"x:1\"\nadr = \"y\"\n[pagerduty]\napi_key = \"k\"\n"
	    "user_email = \"a@b.c\"\nservice_id = \"P1\"\nauto_approve = true\n[http]\nlisten_addr = \":1\"\n"
	    "[http.tls]\nverify = true\n[teleprot]\nx = 1\n[log]\nseverity = \"info\"\ncolour = true\n",
	    false, &w);
	assert_int_equal(w.n, 7);
	assert_string_equal(w.msg[0],
	                    "t:1:1: unknown key servce_id (ignored; `teleport-pagerduty configure` prints "
	                    "every accepted key)");
	assert_non_null(strstr(w.msg[1], "t:4:1: unknown key teleport.adr (ignored; did you mean addr?)"));
	assert_non_null(
	    strstr(w.msg[2], "t:8:1: unknown key pagerduty.service_id (a setting of the old webhook"));
	assert_non_null(
	    strstr(w.msg[3], "t:9:1: unknown key pagerduty.auto_approve (a setting of the old webhook"));
	assert_non_null(strstr(w.msg[4], "t:10:2: unknown table [http] (a setting of the old webhook"));
	assert_non_null(
	    strstr(w.msg[5], "t:14:2: unknown table [teleprot] (ignored; did you mean teleport?)"));
	assert_non_null(strstr(w.msg[6], "t:18:1: unknown key log.colour"));
	assert_string_equal(cfg->teleport.addr, "x:1");
	tpd_config_free(cfg);
	/* a NULL callback is fine */
	{
		char err[TPD_ERRLEN];

		assert_int_equal(tpd_config_load_string("t", PD "bogus = 1\n", false, &cfg, NULL, NULL, err),
		                 TPD_ERR_OK);
		tpd_config_free(cfg);
	}
}

/* --- the API key never leaks ----------------------------------------------------------------------- */

static void test_secret_never_in_messages(void **state)
{
	static const char *const toml_cases[] = {
	    "[pagerduty]\napi_key = \"" SECRET "\"\nuser_email = \"bad\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = " SECRET "\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\" trailing\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\\q\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\napi_key = \"" SECRET "\"\n",
	    "[pagerduty]\napi_key = [\"" SECRET "\"]\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = { k = \"" SECRET "\" }\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = \"" SECRET " \"\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = \"\"\"" SECRET "\n" SECRET "\"\"\"\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = '" SECRET "\x01'\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\nuser_email = \"a@b.c\"\napi_endpoint = \"http://x\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\nuser_email = \"a@b.c\"\n[log]\nseverity = \"x\"\n",
	    "[pagerduty]\napi_key = \"" SECRET
	    "\"\nuser_email = \"a@b.c\"\n[teleport]\nclient_key = \"/k\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\nuser_email = \"a@b.c\"\n[reconcile]\nworkers = 0\n",
	    "[pagerduty]\napi_key = \"" SECRET
	    "\"\nuser_email = \"a@b.c\"\n[leader_election]\nretry_period = \"1m\"\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\nuser_email = \"a@b.c\"\nservices = 1\n",
	    "[pagerduty]\napi_key = \"" SECRET "\"\nuser_email = \"a@b.c\"\n\xff",
	    "[pagerduty]\n" SECRET " = 1\n",
	    "[pagerduty]\napi_key = 12345678901234567\nuser_email = \"a@b.c\"\n",
	    "[pagerduty]\napi_key = 0x" SECRET "\n",
	};
	static const char *const yaml_cases[] = {
	    "pagerduty:\n  api_key: " SECRET "\n  user_email: bad\n",
	    "pagerduty:\n  api_key: \"" SECRET "\n",
	    "pagerduty:\n  api_key: [" SECRET "]\n  user_email: a@b.c\n",
	    "pagerduty:\n  api_key: &a " SECRET "\n",
	    "pagerduty:\n  api_key: " SECRET "\n  api_key: " SECRET "\n",
	    "pagerduty:\n  api_key: " SECRET ": x\n",
	    "pagerduty:\n  api_key: 12345678901234567\n  user_email: a@b.c\n",
	    "pagerduty:\n  api_key: " SECRET "\n  user_email: a@b.c\nlog: {severity: nope}\n",
	};
	char err[TPD_ERRLEN];

	(void)state;
	for (int y = 0; y < 2; y++) {
		size_t n = y ? sizeof(yaml_cases) / sizeof(yaml_cases[0])
		             : sizeof(toml_cases) / sizeof(toml_cases[0]);

		for (size_t i = 0; i < n; i++) {
			const char *text = y ? yaml_cases[i] : toml_cases[i];
			tpd_config *cfg = NULL;
			warnings w;
			tpd_err rc = load(text, y, &cfg, &w, err);

			if (rc == TPD_ERR_OK)
				fail_msg("%s case %zu should fail", y ? "yaml" : "toml", i);
			if (strstr(err, SECRET) || strstr(err, "12345678901234567") || strstr(err, "SeKrEt"))
				fail_msg("%s case %zu leaks the key: %s", y ? "yaml" : "toml", i, err);
			for (int k = 0; k < w.n && k < 32; k++)
				if (strstr(w.msg[k], "SeKrEt"))
					fail_msg("%s case %zu leaks the key in a warning: %s",
					         y ? "yaml" : "toml", i, w.msg[k]);
			assert_true(strncmp(err, "t:", 2) == 0);
		}
	}
}

/* A key that is also typed as a key name or as another value is masked in warnings and errors. */
static void test_secret_redacted_elsewhere(void **state)
{
	char err[TPD_ERRLEN];
	tpd_config *cfg = NULL;
	warnings w;
	const char *text = "[pagerduty]\napi_key = \"SeKrEt_bare_KEY_42\"\nuser_email = \"a@b.c\"\n"
	                   "SeKrEt_bare_KEY_42 = 1\n[log]\nseverity = \"SeKrEt_bare_KEY_42\"\n";
	char *path = temp_file("SeKrEt_bare_KEY_42\n", 19);
	char text2[512];

	(void)state;
	assert_int_equal(load(text, false, &cfg, &w, err), TPD_ERR_CONFIG);
	assert_null(strstr(err, "SeKrEt"));
	assert_non_null(strstr(err, "t:6:12: unsupported logger severity: '[REDACTED]'"));
	assert_int_equal(w.n, 1);
	assert_null(strstr(w.msg[0], "SeKrEt"));
	assert_non_null(strstr(w.msg[0], "t:4:1: unknown key pagerduty.[REDACTED]"));
	/* same with the key read from a file */
	snprintf(text2, sizeof(text2),
	         "[pagerduty]\napi_key = \"%s\"\nuser_email = \"a@b.c\"\n"
	         "[log]\nSeKrEt_bare_KEY_42 = 1\n",
	         path);
	cfg = load_ok(text2, false, &w);
	assert_string_equal(cfg->pagerduty.api_key, "SeKrEt_bare_KEY_42");
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.msg[0], "unknown key log.[REDACTED]"));
	tpd_config_free(cfg);
	unlink(path);
	free(path);
}

static void test_many_warnings_capped(void **state)
{
	tpd_buf b;
	tpd_config *cfg;
	warnings w;

	(void)state;
	tpd_buf_init(&b, 0);
	tpd_buf_puts(&b, PD);
	for (int i = 0; i < 200; i++)
		tpd_buf_printf(&b, "unknown_%d = 1\n", i);
	cfg = load_ok(b.data, false, &w);
	assert_int_equal(w.n, 65);
	assert_non_null(strstr(w.msg[31], "unknown key pagerduty.unknown_31"));
	tpd_config_free(cfg);
	tpd_buf_free(&b);
}

/* --- corpus and files -------------------------------------------------------------------------------- */

static const char *source_dir(void)
{
	const char *d = getenv("TPD_SOURCE_DIR");

	return d && *d ? d : ".";
}

static bool is_config_name(const char *n)
{
	return tpd_str_endswith(n, ".toml") || tpd_str_endswith(n, ".yaml") || tpd_str_endswith(n, ".yml");
}

/* Every file in tests/config/broken/ starts with "# expect: <line>:<col> <text>" and must fail
 * to load with a PARSE or CONFIG error "<path>:<line>:<col>: ...<text>...". */
static void test_broken_corpus(void **state)
{
	char dir[512];
	DIR *d;
	struct dirent *e;
	int count = 0;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tests/config/broken", source_dir());
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[1024], err[TPD_ERRLEN], want[1100], *text = NULL, expect[300];
		int line, col, used = 0;
		tpd_config *cfg = NULL;
		warnings w;
		tpd_err rc;

		if (!is_config_name(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		assert_int_equal(tpd_read_file(path, 1 << 20, &text, NULL, err), 0);
		if (sscanf(text, "# expect: %d:%d %n", &line, &col, &used) != 2 || !used)
			fail_msg("%s: first line must be '# expect: L:C text'", path);
		snprintf(expect, sizeof(expect), "%.*s", (int)strcspn(text + used, "\n"), text + used);
		free(text);
		memset(&w, 0, sizeof(w));
		rc = tpd_config_load(path, &cfg, collect, &w, err);
		if (rc != TPD_ERR_PARSE && rc != TPD_ERR_CONFIG) {
			tpd_config_free(cfg);
			fail_msg("%s: expected a PARSE or CONFIG error, got %s: %s", path, tpd_errname(rc),
			         err);
		}
		assert_null(cfg);
		snprintf(want, sizeof(want), "%s:%d:%d: ", path, line, col);
		if (strncmp(err, want, strlen(want)) || !strstr(err, expect))
			fail_msg("%s:\n got  %s\n want %s...%s", e->d_name, err, want, expect);
		assert_null(strchr(err, '\n'));
		count++;
	}
	closedir(d);
	assert_true(count >= 40);
}

static void test_good_corpus(void **state)
{
	char dir[512];
	DIR *d;
	struct dirent *e;
	int count = 0;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tests/config/good", source_dir());
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[1024], err[TPD_ERRLEN];
		tpd_config *cfg = NULL;
		warnings w;

		if (!is_config_name(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		memset(&w, 0, sizeof(w));
		if (tpd_config_load(path, &cfg, collect, &w, err))
			fail_msg("%s: %s", path, err);
		assert_string_equal(cfg->path, path);
		if (!strcmp(e->d_name, "webhook_era.toml")) {
			assert_int_equal(w.n, 4);
			assert_true(warned(&w, "unknown key pagerduty.service_id"));
			assert_true(warned(&w, "unknown key pagerduty.auto_approve"));
			assert_true(warned(&w, "unknown table [http]"));
			assert_true(warned(&w, "`auth_server` is deprecated"));
			assert_string_equal(cfg->teleport.addr, "auth.example.com:3025");
		} else if (w.n) {
			fail_msg("%s: unexpected warning %s", path, w.msg[0]);
		}
		if (!strcmp(e->d_name, "full.toml")) {
			assert_string_equal(cfg->pagerduty.api_endpoint, "https://api.eu.pagerduty.com");
			assert_string_equal(cfg->pagerduty.incident_urgency, "high");
			assert_int_equal(cfg->log.severity, TPD_LOG_DEBUG);
			assert_int_equal(cfg->log.format, TPD_LOG_FORMAT_JSON);
			assert_int_equal(cfg->teleport.refresh_identity_interval_ms, 30000);
			assert_int_equal(cfg->leader.retry_period_ms, 5000);
			assert_int_equal(cfg->reconcile.workers, 8);
		}
		if (!strcmp(e->d_name, "helm.yaml")) {
			assert_true(cfg->teleport.refresh_identity);
			assert_string_equal(cfg->log.output, "stdout");
			assert_int_equal(cfg->log.format, TPD_LOG_FORMAT_JSON);
			assert_string_equal(cfg->leader.lease_namespace, "");
		}
		if (!strcmp(e->d_name, "upstream_annotations.toml"))
			assert_string_equal(cfg->pagerduty.notify_service_annotation, "custom_notify");
		tpd_config_free(cfg);
		count++;
	}
	closedir(d);
	assert_true(count >= 7);
}

static void test_load_files(void **state)
{
	char err[TPD_ERRLEN], path[64];
	tpd_config *cfg = NULL;
	char *big;
	size_t n = TPD_CONFIG_MAX_BYTES + 10;
	int fd;

	(void)state;
	assert_int_equal(tpd_config_load("/nonexistent/tpd.toml", &cfg, NULL, NULL, err), TPD_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent/tpd.toml"));
	assert_null(cfg);
	assert_int_equal(tpd_config_load("", &cfg, NULL, NULL, err), TPD_ERR_INVAL);
	/* extension selects YAML, case-insensitively */
	snprintf(path, sizeof(path), "/tmp/tpd-cfg-XXXXXX.YML");
	fd = mkstemps(path, 4);
	assert_true(fd >= 0);
	assert_true(write(fd, "pagerduty: {api_key: k, user_email: a@b.c}\n", 43) == 43);
	close(fd);
	assert_int_equal(tpd_config_load(path, &cfg, NULL, NULL, err), TPD_ERR_OK);
	assert_string_equal(cfg->pagerduty.user_email, "a@b.c");
	tpd_config_free(cfg);
	unlink(path);
	/* too large */
	big = malloc(n);
	assert_non_null(big);
	memset(big, '#', n);
	snprintf(path, sizeof(path), "/tmp/tpd-cfg-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_true(write(fd, big, n) == (ssize_t)n);
	close(fd);
	assert_int_equal(tpd_config_load(path, &cfg, NULL, NULL, err), TPD_ERR_TOO_LARGE);
	assert_int_equal(tpd_config_load_mem("m", big, n, false, &cfg, NULL, NULL, err), TPD_ERR_TOO_LARGE);
	unlink(path);
	free(big);
	/* embedded NUL through the buffer API */
	assert_int_equal(
	    tpd_config_load_mem("m", PD "\0x", sizeof(PD "\0x") - 1, false, &cfg, NULL, NULL, err),
	    TPD_ERR_PARSE);
	assert_non_null(strstr(err, "m:4:1: NUL byte"));
	tpd_config_free(NULL);
}

static void test_truncated_never_crash(void **state)
{
	char *ex = tpd_config_example();
	const char *yaml =
	    "teleport:\n  addr: x:443\n  identity: /id\npagerduty:\n  api_key: k\n  user_email: a@b.c\n"
	    "  RequestAnnotations: {services: s}\nlog: {format: json}\nleader_election:\n  enabled: true\n";
	size_t len = strlen(ex);
	char err[TPD_ERRLEN];

	(void)state;
	for (int y = 0; y < 2; y++) {
		const char *src = y ? yaml : ex;

		len = strlen(src);
		for (size_t n = 0; n <= len; n++) {
			char *copy = malloc(n ? n : 1);
			tpd_config *cfg = NULL;

			memcpy(copy, src, n);
			if (tpd_config_load_mem("t", copy, n, y, &cfg, NULL, NULL, err) == TPD_ERR_OK)
				tpd_config_free(cfg);
			else
				assert_true(strncmp(err, "t:", 2) == 0);
			free(copy);
		}
	}
	free(ex);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example_loads),
	    cmocka_unit_test(test_example_uncommented),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_tls_triple),
	    cmocka_unit_test(test_refresh_identity),
	    cmocka_unit_test(test_auth_server),
	    cmocka_unit_test(test_required_values),
	    cmocka_unit_test(test_api_key_file),
	    cmocka_unit_test(test_api_endpoint),
	    cmocka_unit_test(test_annotations),
	    cmocka_unit_test(test_pagerduty_options),
	    cmocka_unit_test(test_log),
	    cmocka_unit_test(test_our_tables),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_unknown_keys_warn),
	    cmocka_unit_test(test_secret_never_in_messages),
	    cmocka_unit_test(test_secret_redacted_elsewhere),
	    cmocka_unit_test(test_many_warnings_capped),
	    cmocka_unit_test(test_broken_corpus),
	    cmocka_unit_test(test_good_corpus),
	    cmocka_unit_test(test_load_files),
	    cmocka_unit_test(test_truncated_never_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
