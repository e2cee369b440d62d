/* test_teleport.c - unit tests of the Teleport client's pure parts: gRPC status → tpd_err
 * mapping, server version checks, option defaults and credential validation (no network). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <grpc/status.h>

#include "tpd/teleport.h"

#include <dlfcn.h>
#include <grpc/grpc.h>

#include "../../src/teleport/teleport_impl.h"
#include "tpd/util.h"

static void test_status_mapping(void **state)
{
	(void)state;
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_OK, ""), TPD_ERR_OK);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_NOT_FOUND, "not found"), TPD_ERR_NOT_FOUND);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_FAILED_PRECONDITION,
	                                         "expectations not met for field \"incident_id\""),
	                 TPD_ERR_COMPARE_FAILED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_PERMISSION_DENIED, "access denied"),
	                 TPD_ERR_ACCESS_DENIED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_UNAUTHENTICATED, ""), TPD_ERR_ACCESS_DENIED);
	/* Recognised by text whatever the code, like upstream. */
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_PERMISSION_DENIED,
	                                         "user \"plugin\" has already reviewed this request"),
	                 TPD_ERR_ALREADY_REVIEWED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_UNKNOWN, "x has already reviewed this request"),
	                 TPD_ERR_ALREADY_REVIEWED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_PERMISSION_DENIED,
	                                         "the access request has been already approved"),
	                 TPD_ERR_ACCESS_DENIED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_UNAVAILABLE, "Socket closed"),
	                 TPD_ERR_UNAVAILABLE);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded"),
	                 TPD_ERR_TIMEOUT);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_UNIMPLEMENTED, ""), TPD_ERR_UNIMPLEMENTED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_CANCELLED, ""), TPD_ERR_CANCELLED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_INVALID_ARGUMENT, ""), TPD_ERR_INVAL);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_ALREADY_EXISTS, ""), TPD_ERR_EXISTS);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_RESOURCE_EXHAUSTED, ""), TPD_ERR_RATE_LIMITED);
	assert_int_equal(tpd_teleport_status_err(GRPC_STATUS_UNKNOWN, "boom"), TPD_ERR_REMOTE);
	assert_int_equal(tpd_teleport_status_err(99, NULL), TPD_ERR_REMOTE);
	assert_string_equal(tpd_teleport_code_name(GRPC_STATUS_FAILED_PRECONDITION), "FAILED_PRECONDITION");
	assert_string_equal(tpd_teleport_code_name(16), "UNAUTHENTICATED");
	assert_string_equal(tpd_teleport_code_name(-1), "UNKNOWN");
	assert_string_equal(tpd_teleport_code_name(1000), "UNKNOWN");
}

static void test_semver(void **state)
{
	(void)state;
	int c;
	assert_true(tpd_semver_cmp("6.1.0", "6.1.0", &c));
	assert_int_equal(c, 0);
	assert_true(tpd_semver_cmp("v16.4.2", "6.1.0", &c));
	assert_int_equal(c, 1);
	assert_true(tpd_semver_cmp("6.0.99", "6.1.0", &c));
	assert_int_equal(c, -1);
	assert_true(tpd_semver_cmp("6.1.0-beta.1", "6.1.0", &c));
	assert_int_equal(c, -1);
	assert_true(tpd_semver_cmp("6.1.0-beta.2", "6.1.0-beta.1", &c));
	assert_int_equal(c, 1);
	assert_true(tpd_semver_cmp("10.0.0", "9.9.9", &c)); /* numeric, not lexical */
	assert_int_equal(c, 1);
	assert_true(tpd_semver_cmp("6.1.0+dev", "6.1.0", &c));
	assert_int_equal(c, 0);
	assert_false(tpd_semver_cmp("6.1", "6.1.0", &c));
	assert_false(tpd_semver_cmp("", "6.1.0", &c));
	assert_false(tpd_semver_cmp(NULL, "6.1.0", &c));
	assert_false(tpd_semver_cmp("six", "6.1.0", &c));
	assert_false(tpd_semver_cmp("6.1.0-", "6.1.0", &c));

	char err[TPD_ERRLEN];
	assert_int_equal(tpd_teleport_check_version("16.4.0", err), TPD_ERR_OK);
	assert_int_equal(tpd_teleport_check_version("6.1.0", err), TPD_ERR_OK);
	assert_int_equal(tpd_teleport_check_version("6.0.3", err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "6.0.3 is less than 6.1.0"));
	assert_int_equal(tpd_teleport_check_version("nonsense", err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "nonsense"));
}

static char *pki_file(const char *name)
{
	const char *build = getenv("TPD_BUILD_DIR");
	char dir[1024], path[1200], cmd[2600], err[TPD_ERRLEN];
	snprintf(dir, sizeof(dir), "%s/teleport-test-pki", build && *build ? build : ".");
	const char *src = getenv("TPD_SOURCE_DIR");
	snprintf(cmd, sizeof(cmd), "'%s/tests/pki/gen.sh' '%s' >/dev/null", src && *src ? src : ".", dir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *out = NULL;
	size_t len;
	if (tpd_read_file(path, 1 << 20, &out, &len, err) != 0)
		return NULL;
	return out;
}

static void test_new_validates_credentials(void **state)
{
	(void)state;
	char *key = pki_file("client.key"), *crt = pki_file("client.crt"), *ca = pki_file("ca.crt");
	char *key2 = pki_file("client2.key"), *eckey = pki_file("client-ec.key"),
	     *eccrt = pki_file("client-ec.crt");
	assert_non_null(key);
	assert_non_null(crt);
	assert_non_null(ca);
	char err[TPD_ERRLEN];
	tpd_teleport *t = NULL;

	tpd_teleport_opts o = {.key_pem = key, .cert_pem = crt, .ca_pem = ca};
	assert_int_equal(tpd_teleport_new(&o, &t, err), TPD_ERR_OK);
	assert_string_equal(tpd_teleport_addr(t), "localhost:3025");
	/* Swapping to an EC identity works; a mismatched pair is refused. */
	assert_int_equal(tpd_teleport_set_credentials(t, eckey, eccrt, ca, err), TPD_ERR_OK);
	assert_int_equal(tpd_teleport_set_credentials(t, key2, crt, ca, err), TPD_ERR_INVAL);
	tpd_teleport_free(t);
	tpd_teleport_free(NULL);

	o.addr = "auth.example.com:3025";
	assert_int_equal(tpd_teleport_new(&o, &t, err), TPD_ERR_OK);
	assert_string_equal(tpd_teleport_addr(t), "auth.example.com:3025");
	tpd_teleport_free(t);

	tpd_teleport_opts bad = o;
	bad.key_pem = key2;
	t = (tpd_teleport *)1;
	assert_int_equal(tpd_teleport_new(&bad, &t, err), TPD_ERR_INVAL);
	assert_null(t);
	assert_null(strstr(err, "BEGIN")); /* never quotes key material */
	bad = o;
	bad.ca_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	assert_int_equal(tpd_teleport_new(&bad, &t, err), TPD_ERR_PARSE);
	bad = o;
	bad.cert_pem = "";
	assert_int_equal(tpd_teleport_new(&bad, &t, err), TPD_ERR_INVAL);
	bad = o;
	bad.key_pem = "-----BEGIN RSA PRIVATE KEY-----\ngarbage\n-----END RSA PRIVATE KEY-----\n";
	assert_int_equal(tpd_teleport_new(&bad, &t, err), TPD_ERR_PARSE);
	assert_null(strstr(err, "garbage"));
	assert_int_equal(tpd_teleport_new(NULL, &t, err), TPD_ERR_INVAL);
	free(key);
	free(crt);
	free(ca);
	free(key2);
	free(eckey);
	free(eccrt);
}

static void test_watch_stop_before_start(void **state)
{
	(void)state;
	char *key = pki_file("client.key"), *crt = pki_file("client.crt"), *ca = pki_file("ca.crt");
	char err[TPD_ERRLEN];
	tpd_teleport *t = NULL;
	/* Port 9 on loopback: nothing listens; the stop must win without any network. */
	tpd_teleport_opts o = {.addr = "127.0.0.1:9", .key_pem = key, .cert_pem = crt, .ca_pem = ca};
	assert_int_equal(tpd_teleport_new(&o, &t, err), TPD_ERR_OK);
	tpd_teleport_watch_reconnect(t); /* no watch running: no effect */
	tpd_teleport_watch_stop(t);
	assert_int_equal(tpd_teleport_watch(t, NULL, NULL, err), TPD_ERR_CANCELLED);
	tpd_teleport_free(t);
	free(key);
	free(crt);
	free(ca);
}

/* gRPC's mutexes skip abseil's deadlock graph (tpd_teleport_process_init): with the abseil release
 * the switch's names are written for (Debian 12's, 20220623) loaded, it must be found; with any
 * other abseil the test says so and skips. */
static void test_abseil_deadlock_checks_off(void **state)
{
	(void)state;
	grpc_init(); /* libgrpc and its abseil are loaded by now either way; this keeps it explicit */
	void *absl = dlopen("libabsl_synchronization.so.20220623", RTLD_NOW | RTLD_NOLOAD);
	if (!absl) {
		grpc_shutdown();
		print_message("abseil 20220623 not loaded: another abseil, the switch is not looked for\n");
		skip();
	}
	dlclose(absl);
	assert_true(tp_abseil_deadlock_checks_off());
	grpc_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_mapping),
	    cmocka_unit_test(test_semver),
	    cmocka_unit_test(test_new_validates_credentials),
	    cmocka_unit_test(test_watch_stop_before_start),
	    cmocka_unit_test(test_abseil_deadlock_checks_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
