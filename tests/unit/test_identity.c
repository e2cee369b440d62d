/* Unit tests for identity.c: Teleport identity files in every key format, the key/cert/CA
 * triple, every class of bad file (empty, binary, truncated, wrong order, key without cert,
 * mismatch, corrupt, encrypted), expiry messages, cluster-name extraction, and a truncation and
 * bit-flip sweep that must never crash. The PKI comes from tests/pki/gen.sh, generated once per
 * build directory at test time (nothing secret is committed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>

#include "tpd/err.h"
#include "tpd/identity.h"
#include "tpd/util.h"

#define CLUSTER "idtest.example.com"
#define USER    "plugin-bot"

static char pki[512];

/* Reads a PKI file whole (NUL-terminated) with stdio. Not with tpd_read_file(path, &local, ...):
 * gcc 12 at -O2 cannot see into it, assumes the callee may store the local's own address in
 * it, and reports every later use of the returned buffer as -Wdangling-pointer. */
static char *slurp(const char *name)
{
	char path[600], *data;
	long n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", pki, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		fail_msg("cannot size %s", path);
	data = xmalloc((size_t)n + 1);
	if (fread(data, 1, (size_t)n, f) != (size_t)n)
		fail_msg("short read on %s", path);
	data[n] = '\0';
	fclose(f);
	return data;
}

static char *pkipath(const char *name)
{
	return xasprintf("%s/%s", pki, name);
}

/* Returns the first line of the identity file that starts with prefix (with its newline). */
static char *identity_line(const char *prefix)
{
	char *id = slurp("identity"), *p = strstr(id, prefix), *res;
	assert_non_null(p);
	res = xstrndup(p, (size_t)(strchr(p, '\n') - p + 1));
	free(id);
	return res;
}

/* key + SSH cert line + cert + CA line + CA, like gen.sh's identity files. */
static char *compose(const char *key, const char *cert, const char *ca_line, const char *ca)
{
	char *ssh = identity_line("ssh-rsa-cert-v01@openssh.com");
	char *res = xasprintf("%s%s%s%s%s", key, ssh, cert, ca_line ? ca_line : "", ca ? ca : "");
	free(ssh);
	return res;
}

static tpd_identity *parse_ok(const char *name, const char *data)
{
	char err[TPD_ERRLEN] = "";
	tpd_identity *id = NULL;
	tpd_err rc = tpd_identity_parse(name, data, strlen(data), &id, err);
	if (rc)
		fail_msg("parse %s: %s", name, err);
	assert_non_null(id);
	return id;
}

/* Parses data expecting failure; checks the message names the file and contains `want`, and
 * that no line of the private key body leaks into it. */
static void parse_bad(const char *data, size_t len, const char *want)
{
	char err[TPD_ERRLEN] = "";
	tpd_identity *id = (tpd_identity *)0x1;
	char *key = slurp("client.key"), *line2 = strchr(key, '\n') + 1;
	tpd_err rc = tpd_identity_parse("/secrets/identity", data, len, &id, err);

	assert_int_equal(rc, TPD_ERR_PARSE);
	assert_null(id);
	assert_non_null(strstr(err, "identity /secrets/identity"));
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	line2[40] = '\0';
	assert_null(strstr(err, line2));
	assert_null(strstr(err, "PRIVATE KEY-----"));
	free(key);
}

static int setup(void **state)
{
	const char *bd = getenv("TPD_BUILD_DIR");
	char cmd[1200];

	(void)state;
	if (bd && *bd)
		snprintf(pki, sizeof(pki), "%s/identity-pki", bd);
	else
		snprintf(pki, sizeof(pki), "/tmp/tpd-identity-pki-%d", (int)getuid());
	snprintf(cmd, sizeof(cmd), "tests/pki/gen.sh '%s' " CLUSTER " " USER, pki);
	return system(cmd) == 0 ? 0 : -1;
}

static char *serial_of(const char *name)
{
	char *s = slurp("serials.txt"), *res = NULL, *line;
	char want[64];
	snprintf(want, sizeof(want), "%s ", name);
	for (line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, want, strlen(want)) == 0)
			res = xstrdup(line + strlen(want));
	free(s);
	assert_non_null(res);
	return res;
}

static void test_rsa_pkcs1_identity(void **state)
{
	char *path = pkipath("identity"), *ca = slurp("ca.crt"), *serial = serial_of("client");
	char err[TPD_ERRLEN];
	tpd_identity *id = NULL;
	static const unsigned char zero[32];

	(void)state;
	assert_int_equal(tpd_identity_load_file(path, &id, err), TPD_ERR_OK);
	assert_string_equal(tpd_identity_name(id), path);
	assert_string_equal(tpd_identity_cluster_name(id), CLUSTER);
	assert_string_equal(tpd_identity_user(id), USER);
	assert_string_equal(tpd_identity_key_type(id), "RSA");
	assert_string_equal(tpd_identity_serial(id), serial);
	assert_true(tpd_identity_has_ssh_cert(id));
	assert_int_equal(tpd_identity_ca_count(id), 1);
	assert_string_equal(tpd_identity_ca_pem(id), ca);
	assert_true(tpd_str_startswith(tpd_identity_key_pem(id), "-----BEGIN RSA PRIVATE KEY-----\n"));
	assert_true(tpd_str_endswith(tpd_identity_key_pem(id), "-----END RSA PRIVATE KEY-----\n"));
	assert_true(tpd_str_startswith(tpd_identity_cert_pem(id), "-----BEGIN CERTIFICATE-----\n"));
	assert_null(strstr(tpd_identity_cert_pem(id), "PRIVATE"));
	assert_true(tpd_identity_not_before(id) <= time(NULL));
	assert_true(tpd_identity_not_after(id) > time(NULL) + 365 * 86400);
	assert_int_equal(tpd_identity_check_time(id, time(NULL), err), TPD_ERR_OK);
	assert_memory_not_equal(tpd_identity_fingerprint(id), zero, 32);
	tpd_identity_free(id);
	free(path);
	free(ca);
	free(serial);
}

static void test_ec_pkcs8_identity(void **state)
{
	char *path = pkipath("identity-ec"), *serial = serial_of("client-ec");
	char err[TPD_ERRLEN];
	tpd_identity *id = NULL;

	(void)state;
	assert_int_equal(tpd_identity_load_file(path, &id, err), TPD_ERR_OK);
	assert_string_equal(tpd_identity_key_type(id), "EC");
	assert_true(tpd_str_startswith(tpd_identity_key_pem(id), "-----BEGIN PRIVATE KEY-----\n"));
	assert_string_equal(tpd_identity_serial(id), serial);
	assert_string_equal(tpd_identity_cluster_name(id), CLUSTER);
	tpd_identity_free(id);
	free(path);
	free(serial);
}

static void test_ec_sec1_identity(void **state)
{
	char *key = slurp("client-ec.key"), *crt = slurp("client-ec.crt"), *ca = slurp("ca.crt");
	char *ca_line = identity_line("@cert-authority"), *data = compose(key, crt, ca_line, ca);
	tpd_identity *id;

	(void)state;
	assert_true(tpd_str_startswith(key, "-----BEGIN EC PRIVATE KEY-----"));
	id = parse_ok("sec1", data);
	assert_string_equal(tpd_identity_key_type(id), "EC");
	assert_true(tpd_str_startswith(tpd_identity_key_pem(id), "-----BEGIN EC PRIVATE KEY-----\n"));
	tpd_identity_free(id);
	free(key);
	free(crt);
	free(ca);
	free(ca_line);
	free(data);
}

static void test_rsa_pkcs8_identity_crlf(void **state)
{
	char *key = slurp("client.key"), *crt = slurp("client.crt"), *ca = slurp("ca.crt");
	char *ca_line = identity_line("@cert-authority"), *data, *p8 = NULL, *crlf;
	BIO *in = BIO_new_mem_buf(key, -1), *out = BIO_new(BIO_s_mem());
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	BUF_MEM *mem;
	tpd_buf b;
	tpd_identity *id, *id2;

	(void)state;
	assert_non_null(pk);
	assert_int_equal(PEM_write_bio_PrivateKey(out, pk, NULL, NULL, 0, NULL, NULL), 1);
	BIO_get_mem_ptr(out, &mem);
	p8 = xstrndup(mem->data, mem->length);
	assert_true(tpd_str_startswith(p8, "-----BEGIN PRIVATE KEY-----"));
	data = compose(p8, crt, ca_line, ca);
	id = parse_ok("pkcs8", data);
	assert_string_equal(tpd_identity_key_type(id), "RSA");
	assert_true(tpd_str_startswith(tpd_identity_key_pem(id), "-----BEGIN PRIVATE KEY-----\n"));

	/* Windows line endings, indentation and unknown lines are tolerated like upstream. */
	tpd_buf_init(&b, 0);
	tpd_buf_puts(&b, "# written by a test\r\n\r\n");
	for (const char *p = data; *p; p++) {
		if (*p == '\n')
			tpd_buf_puts(&b, "  \r\n");
		else
			tpd_buf_append(&b, p, 1);
	}
	tpd_buf_puts(&b, "some trailing note\r\n");
	crlf = tpd_buf_steal(&b);
	id2 = parse_ok("crlf", crlf);
	assert_string_equal(tpd_identity_key_pem(id2), tpd_identity_key_pem(id));
	assert_string_equal(tpd_identity_cert_pem(id2), tpd_identity_cert_pem(id));
	assert_string_equal(tpd_identity_serial(id2), tpd_identity_serial(id));
	/* Same material, different bytes: the fingerprint is over the bytes. */
	assert_memory_not_equal(tpd_identity_fingerprint(id), tpd_identity_fingerprint(id2), 32);
	tpd_identity_free(id);
	tpd_identity_free(id2);
	EVP_PKEY_free(pk);
	BIO_free(in);
	BIO_free(out);
	free(crlf);
	free(p8);
	free(data);
	free(key);
	free(crt);
	free(ca);
	free(ca_line);
}

static void test_several_cas_and_fingerprints(void **state)
{
	char *id1 = slurp("identity"), *id2txt = slurp("identity2"), *evil = slurp("evil-ca.crt");
	char *two = xasprintf("%s%s", id1, evil);
	tpd_identity *a = parse_ok("a", id1), *a2 = parse_ok("a-again", id1), *b = parse_ok("b", id2txt);
	tpd_identity *c = parse_ok("c", two);

	(void)state;
	assert_int_equal(tpd_identity_ca_count(c), 2);
	assert_non_null(strstr(tpd_identity_ca_pem(c), evil));
	assert_memory_equal(tpd_identity_fingerprint(a), tpd_identity_fingerprint(a2), 32);
	assert_memory_not_equal(tpd_identity_fingerprint(a), tpd_identity_fingerprint(b), 32);
	assert_string_not_equal(tpd_identity_serial(a), tpd_identity_serial(b));
	assert_string_equal(tpd_identity_user(a), tpd_identity_user(b));
	tpd_identity_free(a);
	tpd_identity_free(a2);
	tpd_identity_free(b);
	tpd_identity_free(c);
	free(id1);
	free(id2txt);
	free(evil);
	free(two);
}

static void test_cluster_name_sources(void **state)
{
	/* server.crt has no 1.3.9999.1.7 attribute: the name must come from the CA line. */
	char *key = slurp("server.key"), *crt = slurp("server.crt"), *ca = slurp("ca.crt");
	char *ckey = slurp("client.key"), *ccrt = slurp("client.crt");
	const char *other = "@cert-authority other.cluster,*.other.cluster ssh-ed25519 AAAAC3Nz type=host\n";
	char *d1 = compose(key, crt, other, ca), *d2 = compose(key, crt, NULL, ca),
	     *d3 = compose(ckey, ccrt, other, ca);
	tpd_identity *a = parse_ok("ca-line", d1), *b = parse_ok("none", d2), *c = parse_ok("oid-wins", d3);

	(void)state;
	assert_string_equal(tpd_identity_cluster_name(a), "other.cluster");
	assert_string_equal(tpd_identity_user(a), "teleport.cluster.local");
	assert_string_equal(tpd_identity_cluster_name(b), "");
	assert_string_equal(tpd_identity_cluster_name(c), CLUSTER);
	tpd_identity_free(a);
	tpd_identity_free(b);
	tpd_identity_free(c);
	free(key);
	free(crt);
	free(ca);
	free(ckey);
	free(ccrt);
	free(d1);
	free(d2);
	free(d3);
}

static void test_expiry_messages(void **state)
{
	char *path = pkipath("identity-expired"), err[TPD_ERRLEN], want[1024];
	char *key = slurp("future.key"), *crt = slurp("future.crt"), *ca = slurp("ca.crt");
	char *data = compose(key, crt, NULL, ca);
	tpd_identity *id = NULL, *fut;

	(void)state;
	assert_int_equal(tpd_identity_load_file(path, &id, err), TPD_ERR_OK);
	assert_int_equal(tpd_identity_not_after(id), 1577923200); /* 2020-01-02T00:00:00Z */
	assert_int_equal(tpd_identity_check_time(id, time(NULL), err), TPD_ERR_EXPIRED);
	snprintf(want, sizeof(want),
	         "identity %s expired at 2020-01-02T00:00:00.000Z; renew it with tbot or `tctl auth sign`",
	         path);
	assert_string_equal(err, want);
	assert_int_equal(tpd_identity_check_time(id, 1577923199, err), TPD_ERR_OK);
	assert_int_equal(tpd_identity_check_time(id, 1577923200, err), TPD_ERR_EXPIRED);

	fut = parse_ok("/etc/future-identity", data);
	assert_int_equal(tpd_identity_check_time(fut, time(NULL), err), TPD_ERR_EXPIRED);
	assert_non_null(
	    strstr(err, "identity /etc/future-identity is not valid before 2099-01-01T00:00:00.000Z"));
	assert_int_equal(tpd_identity_check_time(fut, 4070908800 + 10, err), TPD_ERR_OK);
	tpd_identity_free(id);
	tpd_identity_free(fut);
	free(path);
	free(key);
	free(crt);
	free(ca);
	free(data);
}

static void test_bad_files(void **state)
{
	char *key = slurp("client.key"), *crt = slurp("client.crt"), *ca = slurp("ca.crt");
	char *key2 = slurp("client2.key"), *full = slurp("identity");
	char *ca_line = identity_line("@cert-authority"), *d;
	size_t n;

	(void)state;
	parse_bad("", 0, "is empty");
	parse_bad(" \n\n\t\n", 5, "is empty");
	parse_bad("\x7f"
	          "ELF\x02\x01\x01\0\0\0garbage",
	          16, "binary data");
	parse_bad("hello\nworld\n", 12, "has no PEM blocks");

	/* Truncated in the middle of the certificate block. */
	n = (size_t)(strstr(full, "-----BEGIN CERTIFICATE-----") - full) + 200;
	parse_bad(full, n, "is truncated: PEM block CERTIFICATE starting at line");
	/* Truncated in the middle of the key. */
	parse_bad(full, 300, "is truncated: PEM block RSA PRIVATE KEY starting at line 1 has no END line");

	/* Wrong order: certificate first. */
	d = xasprintf("%s%s%s", crt, key, ca);
	parse_bad(d, strlen(d), "the first PEM block (line 1) is CERTIFICATE");
	free(d);
	/* Wrong order: key after the certificate. */
	d = xasprintf("%s%s%s%s", key, crt, key, ca);
	parse_bad(d, strlen(d), "is RSA PRIVATE KEY; only CERTIFICATE blocks may follow");
	free(d);
	/* A key without a certificate. */
	parse_bad(key, strlen(key), "has a private key but no TLS certificate");
	/* Key and certificate but no CA. */
	d = compose(key, crt, ca_line, NULL);
	parse_bad(d, strlen(d), "has no TLS CA certificates");
	free(d);
	/* Key from another identity. */
	d = compose(key2, crt, ca_line, ca);
	parse_bad(d, strlen(d), "the private key does not match the TLS certificate (CN=" USER);
	free(d);
	/* Mismatched END line. */
	d = compose(key, crt, ca_line, ca);
	memcpy(strstr(d, "-----END CERTIFICATE-----"), "-----END CERTIFICATX-----", 25);
	parse_bad(d, strlen(d), "mismatched END line");
	free(d);
	/* A non-base64 line inside a block. */
	d = compose(key, crt, ca_line, ca);
	strstr(d, "-----BEGIN CERTIFICATE-----\n")[30] = '!';
	parse_bad(d, strlen(d), "is not base64; the block is corrupt");
	free(d);
	/* Valid base64, but not DER. */
	d = compose(key, crt, ca_line, ca);
	memcpy(strstr(d, "-----BEGIN CERTIFICATE-----\n") + 28, "AAAAAAAA", 8);
	parse_bad(d, strlen(d), "the TLS certificate at line");
	free(d);
	/* Corrupt key body. */
	d = compose(key, crt, ca_line, ca);
	memcpy(d + 32, "AAAAAAAA", 8);
	parse_bad(d, strlen(d), "is not a valid private key");
	free(d);
	/* An encrypted key is refused without prompting on the terminal. */
	d = xasprintf(
	    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n%s%s", crt,
	    ca);
	parse_bad(d, strlen(d), "is encrypted");
	free(d);
	/* A dangling END line. */
	parse_bad("-----END CERTIFICATE-----\n", 26, "END line without a BEGIN line");

	free(key);
	free(key2);
	free(crt);
	free(ca);
	free(full);
	free(ca_line);
}

static void test_missing_file(void **state)
{
	char err[TPD_ERRLEN];
	tpd_identity *id = (tpd_identity *)0x1;

	(void)state;
	assert_int_equal(tpd_identity_load_file("/nonexistent/identity", &id, err), TPD_ERR_IO);
	assert_null(id);
	assert_non_null(strstr(err, "/nonexistent/identity"));
	assert_non_null(strstr(err, "No such file"));
}

static void test_tls_triple(void **state)
{
	char *k = pkipath("client.key"), *c = pkipath("client.crt"), *ca = pkipath("ca.crt");
	char *k2 = pkipath("client2.key"), *c2 = pkipath("client2.crt"), *idf = pkipath("identity");
	char err[TPD_ERRLEN];
	tpd_identity *a = NULL, *b = NULL, *x = (tpd_identity *)0x1;

	(void)state;
	assert_int_equal(tpd_identity_load_tls(k, c, ca, &a, err), TPD_ERR_OK);
	assert_string_equal(tpd_identity_cluster_name(a), CLUSTER);
	assert_string_equal(tpd_identity_user(a), USER);
	assert_string_equal(tpd_identity_name(a), c);
	assert_false(tpd_identity_has_ssh_cert(a));
	assert_int_equal(tpd_identity_load_tls(k2, c2, ca, &b, err), TPD_ERR_OK);
	assert_memory_not_equal(tpd_identity_fingerprint(a), tpd_identity_fingerprint(b), 32);

	assert_int_equal(tpd_identity_load_tls(k2, c, ca, &x, err), TPD_ERR_PARSE);
	assert_null(x);
	assert_non_null(strstr(err, "does not match"));
	assert_int_equal(tpd_identity_load_tls(k, c, NULL, &x, err), TPD_ERR_CONFIG);
	assert_non_null(strstr(err, "root_cas is not set"));
	assert_int_equal(tpd_identity_load_tls(c, c, ca, &x, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "client_key"));
	assert_int_equal(tpd_identity_load_tls(k, c, idf, &x, err), TPD_ERR_PARSE);
	assert_non_null(strstr(err, "root_cas"));
	assert_non_null(strstr(err, "expected only CERTIFICATE blocks"));
	assert_int_equal(tpd_identity_load_tls(k, "/nonexistent.crt", ca, &x, err), TPD_ERR_IO);
	assert_non_null(strstr(err, "client_crt"));
	assert_non_null(strstr(err, "/nonexistent.crt"));
	tpd_identity_free(a);
	tpd_identity_free(b);
	free(k);
	free(c);
	free(ca);
	free(k2);
	free(c2);
	free(idf);
}

/* Every prefix of a good file, and many random corruptions: never a crash or leak. */
static void test_truncation_and_flips(void **state)
{
	char *full = slurp("identity-ec"), err[TPD_ERRLEN], *copy;
	size_t len = strlen(full), ok = 0;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	tpd_identity *id;

	(void)state;
	for (size_t n = 0; n < len; n++) {
		id = NULL;
		if (tpd_identity_parse("t", full, n, &id, err) == TPD_ERR_OK)
			ok++;
		else
			assert_null(id);
		tpd_identity_free(id);
	}
	/* Prefixes that only drop trailing CA lines/newlines may parse; the rest must not. */
	assert_true(ok < 200);
	copy = xmalloc(len);
	for (int i = 0; i < 3000; i++) {
		memcpy(copy, full, len);
		for (int k = 0; k < 1 + i % 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			copy[x % len] = (char)(x >> 32);
		}
		id = NULL;
		tpd_identity_parse("t", copy, len, &id, err);
		tpd_identity_free(id);
	}
	free(copy);
	free(full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsa_pkcs1_identity),
	    cmocka_unit_test(test_ec_pkcs8_identity),
	    cmocka_unit_test(test_ec_sec1_identity),
	    cmocka_unit_test(test_rsa_pkcs8_identity_crlf),
	    cmocka_unit_test(test_several_cas_and_fingerprints),
	    cmocka_unit_test(test_cluster_name_sources),
	    cmocka_unit_test(test_expiry_messages),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_tls_triple),
	    cmocka_unit_test(test_truncation_and_flips),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
