/* fuzz_identity.c - libFuzzer target: Teleport identity files (tpd_identity_parse).
 *
 * Checks, beyond memory safety: a failure leaves a one-line error that never quotes the private
 * key's base64 body; a success yields a usable identity (key, certificate and >= 1 CA in PEM, a
 * known key type, an upper-case even-length hex serial) whose time check does not crash at the
 * extremes. Seeds (tests/fuzz/corpus/fuzz_identity) are identity files made by tests/pki/gen.sh
 * for a throw-away test PKI, and broken variants of them. */
#include <ctype.h>

#include "fuzz_common.h"
#include "tpd/identity.h"

/* A line of the input's first PEM body (base64 of the key), if any, of at least 16 characters. */
static const char *first_pem_body_line(const char *s, size_t *n)
{
	const char *p = strstr(s, "-----BEGIN ");
	if (!p || !(p = strchr(p, '\n')))
		return NULL;
	p++;
	const char *e = strchr(p, '\n');
	*n = e ? (size_t)(e - p) : strlen(p);
	if (*n > 0 && p[*n - 1] == '\r')
		(*n)--;
	return *n >= 16 && strncmp(p, "-----", 5) != 0 ? p : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TPD_ERRLEN];
	tpd_identity *id = NULL;
	char *text;
	tpd_err rc;

	if (size > 64 * 1024)
		return 0;
	text = fuzz_cstr(data, size);
	fuzz_err_init(err);
	rc = tpd_identity_parse("fuzz-identity", text, size, &id, err);
	if (rc != TPD_ERR_OK) {
		size_t n = 0;
		const char *line;

		if (id)
			fuzz_fail("parse failed but returned an identity");
		fuzz_check_err("tpd_identity_parse", err);
		line = first_pem_body_line(text, &n);
		if (line && memmem(err, strlen(err), line, n))
			fuzz_fail("error text quotes PEM key material: %s", err);
		goto out;
	}
	if (!id)
		fuzz_fail("parse succeeded without an identity");
	if (!strstr(tpd_identity_key_pem(id), "PRIVATE KEY") ||
	    !strstr(tpd_identity_cert_pem(id), "CERTIFICATE") ||
	    !strstr(tpd_identity_ca_pem(id), "CERTIFICATE"))
		fuzz_fail("parsed identity lacks key, certificate or CA PEM");
	if (tpd_identity_ca_count(id) < 1)
		fuzz_fail("parsed identity with %d CAs", tpd_identity_ca_count(id));
	{
		const char *t = tpd_identity_key_type(id);
		if (strcmp(t, "RSA") && strcmp(t, "EC") && strcmp(t, "ED25519") && strcmp(t, "other"))
			fuzz_fail("unknown key type %s", t);
	}
	{
		const char *s = tpd_identity_serial(id);
		size_t n = strlen(s);
		if (n % 2)
			fuzz_fail("serial %s has an odd number of digits", s);
		for (size_t i = 0; i < n; i++)
			if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
				fuzz_fail("serial %s is not upper-case hex", s);
	}
	(void)strlen(tpd_identity_name(id));
	(void)strlen(tpd_identity_cluster_name(id));
	(void)strlen(tpd_identity_user(id));
	(void)tpd_identity_has_ssh_cert(id);
	if (!tpd_identity_fingerprint(id))
		fuzz_fail("no fingerprint");
	{
		int64_t nb = tpd_identity_not_before(id), na = tpd_identity_not_after(id);
		int64_t probes[] = {INT64_MIN, -1, 0, nb, na, na + 1, INT64_MAX};
		for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
			fuzz_err_init(err);
			if (tpd_identity_check_time(id, probes[i], err) != TPD_ERR_OK)
				fuzz_check_err("tpd_identity_check_time", err);
		}
	}
out:
	tpd_identity_free(id);
	free(text);
	return 0;
}
