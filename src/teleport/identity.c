/* identity.c - parses Teleport identity files and key/cert/CA triples (see tpd/identity.h).
 *
 * Two layers. A line scanner splits the input into PEM blocks, the SSH certificate line and
 * `@cert-authority` lines, the way Teleport's decoder does (trimmed lines, unknown lines ignored,
 * PEM blocks by position), and reports structural problems with line numbers: binary data,
 * truncated blocks, mismatched END lines, blocks in the wrong order. A second layer hands each
 * block to OpenSSL, checks that the key matches the certificate and extracts the metadata.
 *
 * Secrets: the key text lives only in the tpd_identity (wiped on free) and in short-lived
 * buffers that are wiped too. Error texts carry line numbers and block types, never block
 * contents. OpenSSL's error queue is cleared after every failed call so nothing leaks into a
 * later, unrelated error report on the same thread. */
#include "tpd/identity.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "tpd/pem.h"
#include "tpd/util.h"

#define MAX_BLOCKS 66 /* key + cert + 64 CAs is far beyond any real identity */
#define MAX_TYPE   48 /* longest PEM label we accept ("ENCRYPTED PRIVATE KEY" is 21) */

struct tpd_identity {
	char *name;
	char *key_pem;
	char *cert_pem;
	char *ca_pem;
	int ca_count;
	char *cluster;
	char *user;
	char *serial;
	const char *key_type;
	int has_ssh;
	int64_t not_before, not_after;
	unsigned char fp[32];
};

typedef struct {
	char type[MAX_TYPE + 1];
	int line;
	tpd_buf text; /* normalised: trimmed lines, "\n"-terminated */
} pem_block;

typedef struct {
	pem_block blocks[MAX_BLOCKS];
	int n;
	int ssh_line;       /* line of the SSH certificate, 0 = none */
	char *ca_cluster;   /* first host of the first @cert-authority line */
	int nonblank_lines; /* lines outside PEM blocks that are not blank */
} scan_result;

static void wipe_buf(tpd_buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	tpd_buf_free(b);
}

static void scan_free(scan_result *s)
{
	for (int i = 0; i < s->n; i++)
		wipe_buf(&s->blocks[i].text);
	s->n = 0;
	free(s->ca_cluster);
	s->ca_cluster = NULL;
}

static bool is_key_type(const char *t)
{
	return tpd_str_endswith(t, "PRIVATE KEY");
}

/* The label of a PEM block as error texts show it: only well-known labels are quoted, since a
 * corrupt file can put anything (key material included) where the label belongs. */
static const char *shown_label(const char *type)
{
	static const char *const known[] = {"CERTIFICATE",        "PRIVATE KEY",           "RSA PRIVATE KEY",
	                                    "EC PRIVATE KEY",     "ENCRYPTED PRIVATE KEY", "PUBLIC KEY",
	                                    "OPENSSH PRIVATE KEY"};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (!strcmp(type, known[i]))
			return type;
	}
	return "(unrecognised label)";
}

static bool is_b64_line(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!(isalnum(c) || c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

/* RFC 1421 headers inside legacy PEM ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ..."). */
static bool is_pem_header(const char *p, size_t n)
{
	return (n > 10 && memcmp(p, "Proc-Type:", 10) == 0) || (n > 9 && memcmp(p, "DEK-Info:", 9) == 0);
}

/* "-----BEGIN X-----" / "-----END X-----": copies X to type; false when the line is malformed. */
static bool pem_label(const char *p, size_t n, const char *prefix, char type[MAX_TYPE + 1])
{
	size_t pl = strlen(prefix);
	if (n < pl + 5 || memcmp(p, prefix, pl) != 0 || memcmp(p + n - 5, "-----", 5) != 0)
		return false;
	size_t tl = n - pl - 5;
	if (tl == 0 || tl > MAX_TYPE)
		return false;
	for (size_t i = 0; i < tl; i++) {
		unsigned char c = (unsigned char)p[pl + i];
		if (!(isupper(c) || isdigit(c) || c == ' ' || c == '-' || c == '#'))
			return false;
	}
	memcpy(type, p + pl, tl);
	type[tl] = '\0';
	return true;
}

/* Mirrors sshutils.IsSSHCertType: the first token names an OpenSSH certificate type. */
static bool is_ssh_cert_line(const char *p, size_t n)
{
	static const char suffix[] = "-cert-v01@openssh.com";
	size_t sl = sizeof(suffix) - 1, tok = 0;
	while (tok < n && p[tok] != ' ' && p[tok] != '\t')
		tok++;
	return tok > sl && memcmp(p + tok - sl, suffix, sl) == 0;
}

/* "@cert-authority <cluster>,*.<cluster> <type> <b64> ..." → "<cluster>" (printable only). */
static char *ca_line_cluster(const char *p, size_t n)
{
	size_t i = strlen("@cert-authority"), start, end;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	start = i;
	while (i < n && p[i] != ' ' && p[i] != '\t' && p[i] != ',')
		i++;
	end = i;
	if (end == start)
		return NULL;
	for (size_t k = start; k < end; k++)
		if ((unsigned char)p[k] < 0x21 || (unsigned char)p[k] > 0x7e)
			return NULL;
	return xstrndup(p + start, end - start);
}

/* Splits data into PEM blocks and identity-file lines. Structural errors only. */
static tpd_err scan(const char *label, const char *data, size_t len, scan_result *s, char *err)
{
	size_t pos = 0;
	int lineno = 0;
	pem_block *cur = NULL;
	const char *nul = memchr(data, '\0', len);

	memset(s, 0, sizeof(*s));
	if (nul)
		return tpd_seterr(err, TPD_ERR_PARSE,
		                  "%s contains binary data (a NUL byte at offset %zu); expected PEM text",
		                  label, (size_t)(nul - data));
	while (pos < len) {
		const char *p = data + pos, *eol = memchr(p, '\n', len - pos);
		size_t n = eol ? (size_t)(eol - p) : len - pos;
		pos += n + (eol ? 1 : 0);
		lineno++;
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		if (cur) {
			char type[MAX_TYPE + 1];
			if (n >= 8 && memcmp(p, "-----END", 8) == 0) {
				if (!pem_label(p, n, "-----END ", type) || strcmp(type, cur->type) != 0)
					return tpd_seterr(
					    err, TPD_ERR_PARSE,
					    "%s: PEM block %s starting at line %d is closed by a "
					    "mismatched END line at line %d",
					    label, shown_label(cur->type), cur->line, lineno);
				tpd_buf_append(&cur->text, p, n);
				tpd_buf_puts(&cur->text, "\n");
				cur = NULL;
				continue;
			}
			if (n >= 5 && memcmp(p, "-----", 5) == 0)
				return tpd_seterr(
				    err, TPD_ERR_PARSE,
				    "%s: PEM block %s starting at line %d is truncated (a new PEM "
				    "boundary at line %d before its END line)",
				    label, shown_label(cur->type), cur->line, lineno);
			if (!is_b64_line(p, n) && !is_pem_header(p, n))
				return tpd_seterr(
				    err, TPD_ERR_PARSE,
				    "%s: line %d inside PEM block %s (started at line %d) is not "
				    "base64; the block is corrupt",
				    label, lineno, shown_label(cur->type), cur->line);
			tpd_buf_append(&cur->text, p, n);
			tpd_buf_puts(&cur->text, "\n");
			continue;
		}
		if (n == 0)
			continue;
		if (n >= 10 && memcmp(p, "-----BEGIN", 10) == 0) {
			if (s->n == MAX_BLOCKS)
				return tpd_seterr(err, TPD_ERR_PARSE, "%s: more than %d PEM blocks", label,
				                  MAX_BLOCKS);
			cur = &s->blocks[s->n];
			if (!pem_label(p, n, "-----BEGIN ", cur->type))
				return tpd_seterr(err, TPD_ERR_PARSE,
				                  "%s: malformed PEM BEGIN line at line %d", label, lineno);
			cur->line = lineno;
			tpd_buf_init(&cur->text, 0);
			tpd_buf_append(&cur->text, p, n);
			tpd_buf_puts(&cur->text, "\n");
			s->n++;
			continue;
		}
		if (n >= 8 && memcmp(p, "-----END", 8) == 0)
			return tpd_seterr(
			    err, TPD_ERR_PARSE,
			    "%s: line %d is a PEM END line without a BEGIN line (truncated file?)", label,
			    lineno);
		s->nonblank_lines++;
		if (n >= 15 && memcmp(p, "@cert-authority", 15) == 0) {
			if (!s->ca_cluster)
				s->ca_cluster = ca_line_cluster(p, n);
		} else if (is_ssh_cert_line(p, n) && !s->ssh_line) {
			s->ssh_line = lineno;
		}
		/* Anything else is ignored, as Teleport's decoder does. */
	}
	if (cur)
		return tpd_seterr(err, TPD_ERR_PARSE,
		                  "%s is truncated: PEM block %s starting at line %d has no END line", label,
		                  shown_label(cur->type), cur->line);
	return TPD_ERR_OK;
}

static tpd_err parse_key(const char *label, const pem_block *b, EVP_PKEY **out, char *err)
{
	*out = NULL;
	if (strcmp(b->type, "ENCRYPTED PRIVATE KEY") == 0 || strstr(b->text.data, "Proc-Type: 4,ENCRYPTED"))
		return tpd_seterr(err, TPD_ERR_PARSE,
		                  "%s: the private key (line %d) is encrypted; Teleport identities use "
		                  "unencrypted keys",
		                  label, b->line);
	*out = tpd_pem_read_key(b->text.data, b->text.len);
	if (!*out)
		return tpd_seterr(err, TPD_ERR_PARSE,
		                  "%s: the %s block at line %d is not a valid private key (corrupt base64 "
		                  "or an unsupported key type)",
		                  label, b->type, b->line);
	return TPD_ERR_OK;
}

static tpd_err parse_cert(const char *label, const pem_block *b, const char *what, X509 **out, char *err)
{
	*out = tpd_pem_read_cert(b->text.data, b->text.len);
	if (!*out)
		return tpd_seterr(err, TPD_ERR_PARSE,
		                  "%s: the %s at line %d is not a valid X.509 certificate", label, what,
		                  b->line);
	return TPD_ERR_OK;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

/* UTF-8 value of the first subject attribute with this OID, or NULL. */
static char *subject_attr(X509_NAME *name, const ASN1_OBJECT *obj)
{
	int idx = X509_NAME_get_index_by_OBJ(name, obj, -1);
	unsigned char *utf8 = NULL;
	char *res = NULL;
	int n;

	if (idx < 0)
		return NULL;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
	if (n >= 0 && utf8) {
		res = xstrndup((const char *)utf8, (size_t)n);
		if (strlen(res) != (size_t)n || !printable(res)) {
			free(res);
			res = NULL;
		}
	}
	OPENSSL_free(utf8);
	ERR_clear_error();
	return res;
}

static bool asn1_to_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return false;
	}
	*out = (int64_t)timegm(&tm);
	return true;
}

/* Fills the metadata of id from the certificate and key; checks they belong together. */
static tpd_err describe(tpd_identity *id, const char *label, X509 *x, EVP_PKEY *pk, const char *ca_cluster,
                        char *err)
{
	X509_NAME *subj = X509_get_subject_name(x);
	ASN1_OBJECT *oid = OBJ_txt2obj(TPD_IDENTITY_CLUSTER_OID, 1);
	BIGNUM *bn = NULL;
	char *hex = NULL;
	tpd_err rc = TPD_ERR_OK;

	if (!oid) {
		rc = tpd_seterr(err, TPD_ERR_INTERNAL, "%s: OpenSSL cannot build OID %s", label,
		                TPD_IDENTITY_CLUSTER_OID);
		goto out;
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	/* Magnitude only: RFC 5280 serials are positive; a (non-conforming) negative one is shown
	 * without its sign, so the serial is always upper-case hex with whole bytes. */
	if (bn)
		BN_set_negative(bn, 0);
	hex = bn ? BN_bn2hex(bn) : NULL;
	id->serial = xstrdup(hex ? hex : "");
	id->user = subject_attr(subj, OBJ_nid2obj(NID_commonName));
	if (!id->user)
		id->user = xstrdup("");
	id->cluster = subject_attr(subj, oid);
	if (!id->cluster)
		id->cluster = xstrdup(ca_cluster ? ca_cluster : "");
	if (!asn1_to_unix(X509_get0_notBefore(x), &id->not_before) ||
	    !asn1_to_unix(X509_get0_notAfter(x), &id->not_after)) {
		rc = tpd_seterr(err, TPD_ERR_PARSE,
		                "%s: the TLS certificate has an unreadable validity period", label);
		goto out;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		id->key_type = "RSA";
		break;
	case EVP_PKEY_EC:
		id->key_type = "EC";
		break;
	case EVP_PKEY_ED25519:
		id->key_type = "ED25519";
		break;
	default:
		id->key_type = "other";
	}
	if (X509_check_private_key(x, pk) != 1) {
		rc = tpd_seterr(err, TPD_ERR_PARSE,
		                "%s: the private key does not match the TLS certificate (CN=%s, serial %s); "
		                "they come from different identities",
		                label, id->user, id->serial);
		goto out;
	}
out:
	ERR_clear_error();
	OPENSSL_free(hex);
	BN_free(bn);
	ASN1_OBJECT_free(oid);
	return rc;
}

static void sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);
	ERR_clear_error();
}

/* Builds an identity from already-scanned key, cert and CA blocks. */
static tpd_err build(const char *name, const char *key_label, const pem_block *key, const char *crt_label,
                     const pem_block *const *certs, int ncerts, const char *ca_label,
                     const pem_block *const *cas, int ncas, const char *ca_cluster, tpd_identity **out,
                     char *err)
{
	tpd_identity *id = tpd_new(tpd_identity);
	EVP_PKEY *pk = NULL;
	X509 *leaf = NULL, *tmp = NULL;
	tpd_buf b;
	tpd_err rc;

	id->name = xstrdup(name);
	rc = parse_key(key_label, key, &pk, err);
	if (rc)
		goto out;
	id->key_pem = xstrndup(key->text.data, key->text.len);
	rc = parse_cert(crt_label, certs[0], "TLS certificate", &leaf, err);
	if (rc)
		goto out;
	tpd_buf_init(&b, 0);
	for (int i = 0; i < ncerts; i++) {
		if (i > 0) {
			rc = parse_cert(crt_label, certs[i], "chain certificate", &tmp, err);
			X509_free(tmp);
			tmp = NULL;
			if (rc) {
				tpd_buf_free(&b);
				goto out;
			}
		}
		tpd_buf_append(&b, certs[i]->text.data, certs[i]->text.len);
	}
	id->cert_pem = tpd_buf_steal(&b);
	for (int i = 0; i < ncas; i++) {
		rc = parse_cert(ca_label, cas[i], "TLS CA certificate", &tmp, err);
		X509_free(tmp);
		tmp = NULL;
		if (rc) {
			tpd_buf_free(&b);
			goto out;
		}
		tpd_buf_append(&b, cas[i]->text.data, cas[i]->text.len);
	}
	id->ca_pem = tpd_buf_steal(&b);
	id->ca_count = ncas;
	rc = describe(id, crt_label, leaf, pk, ca_cluster, err);
out:
	X509_free(leaf);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	if (rc) {
		tpd_identity_free(id);
		id = NULL;
	}
	*out = id;
	return rc;
}

tpd_err tpd_identity_parse(const char *name, const char *data, size_t len, tpd_identity **out, char *err)
{
	scan_result *s = tpd_new(scan_result);
	const pem_block *certs[1], *cas[MAX_BLOCKS];
	char *label = NULL;
	tpd_err rc;
	int i;

	*out = NULL;
	if (!name)
		name = "(unnamed)";
	label = xasprintf("identity %s", name);
	if (!data)
		len = 0;
	if (len > TPD_IDENTITY_MAX_BYTES) {
		rc = tpd_seterr(err, TPD_ERR_TOO_LARGE, "%s is larger than %d bytes; not an identity file",
		                label, TPD_IDENTITY_MAX_BYTES);
		goto out;
	}
	rc = scan(label, data ? data : "", len, s, err);
	if (rc)
		goto out;
	if (s->n == 0) {
		if (s->nonblank_lines == 0)
			rc = tpd_seterr(
			    err, TPD_ERR_PARSE,
			    "%s is empty; expected a Teleport identity file (tctl auth sign or tbot "
			    "output)",
			    label);
		else
			rc = tpd_seterr(
			    err, TPD_ERR_PARSE,
			    "%s has no PEM blocks; expected a private key, an SSH certificate line, "
			    "a TLS certificate and the cluster's TLS CA certificates",
			    label);
		goto out;
	}
	if (!is_key_type(s->blocks[0].type)) {
		rc = tpd_seterr(
		    err, TPD_ERR_PARSE,
		    "%s: the first PEM block (line %d) is %s, but an identity file starts with the "
		    "private key (wrong order, or not an identity file)",
		    label, s->blocks[0].line, s->blocks[0].type);
		goto out;
	}
	for (i = 1; i < s->n; i++) {
		if (strcmp(s->blocks[i].type, "CERTIFICATE") != 0) {
			rc =
			    tpd_seterr(err, TPD_ERR_PARSE,
			               "%s: PEM block %d (line %d) is %s; only CERTIFICATE blocks may follow "
			               "the private key",
			               label, i + 1, s->blocks[i].line, s->blocks[i].type);
			goto out;
		}
	}
	if (s->n < 2) {
		rc = tpd_seterr(err, TPD_ERR_PARSE,
		                "%s has a private key but no TLS certificate (a CERTIFICATE block after the "
		                "SSH certificate line)",
		                label);
		goto out;
	}
	if (s->n < 3) {
		rc = tpd_seterr(
		    err, TPD_ERR_PARSE,
		    "%s has no TLS CA certificates (the cluster's Host CA, CERTIFICATE blocks at the "
		    "end); the Auth server cannot be verified",
		    label);
		goto out;
	}
	certs[0] = &s->blocks[1];
	for (i = 2; i < s->n; i++)
		cas[i - 2] = &s->blocks[i];
	rc =
	    build(name, label, &s->blocks[0], label, certs, 1, label, cas, s->n - 2, s->ca_cluster, out, err);
	if (rc)
		goto out;
	(*out)->has_ssh = s->ssh_line != 0;
	sha256(data, len, (*out)->fp);
out:
	scan_free(s);
	free(s);
	free(label);
	return rc;
}

tpd_err tpd_identity_load_file(const char *path, tpd_identity **out, char *err)
{
	char *data = NULL, inner[TPD_ERRLEN];
	size_t len = 0;
	tpd_err rc;

	*out = NULL;
	rc = (tpd_err)tpd_read_file(path, TPD_IDENTITY_MAX_BYTES, &data, &len, inner);
	if (rc) {
		tpd_seterr(err, rc, "identity file cannot be read: %s", inner);
		goto out;
	}
	rc = tpd_identity_parse(path, data, len, out, err);
out:
	if (data) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	return rc;
}

/* Reads and scans one PEM file of the key/cert/CA triple. */
static tpd_err load_pem_file(const char *what, const char *path, char **data, size_t *len, scan_result *s,
                             char **label, char *err)
{
	char inner[TPD_ERRLEN];
	tpd_err rc;

	*label = xasprintf("%s %s", what, path ? path : "(unset)");
	if (tpd_str_empty(path))
		return tpd_seterr(err, TPD_ERR_CONFIG,
		                  "%s is not set; client_key, client_crt and root_cas are all required",
		                  what);
	rc = (tpd_err)tpd_read_file(path, TPD_IDENTITY_MAX_BYTES, data, len, inner);
	if (rc)
		return tpd_seterr(err, rc, "%s cannot be read: %s", what, inner);
	rc = scan(*label, *data, *len, s, err);
	if (rc)
		return rc;
	if (s->n == 0)
		return tpd_seterr(err, TPD_ERR_PARSE, "%s %s", *label,
		                  *len == 0 || s->nonblank_lines == 0 ? "is empty" : "has no PEM blocks");
	return TPD_ERR_OK;
}

tpd_err tpd_identity_load_tls(const char *key_path, const char *crt_path, const char *cas_path,
                              tpd_identity **out, char *err)
{
	scan_result *s = xcalloc(3, sizeof(scan_result));
	char *data[3] = {NULL, NULL, NULL}, *label[3] = {NULL, NULL, NULL};
	size_t len[3] = {0, 0, 0};
	static const char *const what[3] = {"client_key", "client_crt", "root_cas"};
	const char *paths[3] = {key_path, crt_path, cas_path};
	const pem_block *certs[MAX_BLOCKS], *cas[MAX_BLOCKS];
	EVP_MD_CTX *md = NULL;
	tpd_err rc = TPD_ERR_OK;
	int i, k;

	*out = NULL;
	for (k = 0; k < 3; k++) {
		rc = load_pem_file(what[k], paths[k], &data[k], &len[k], &s[k], &label[k], err);
		if (rc)
			goto out;
	}
	if (s[0].n != 1 || !is_key_type(s[0].blocks[0].type)) {
		rc = tpd_seterr(err, TPD_ERR_PARSE,
		                "%s must hold exactly one private key PEM block (found %s%s)", label[0],
		                s[0].blocks[0].type, s[0].n > 1 ? " and more" : "");
		goto out;
	}
	for (k = 1; k < 3; k++)
		for (i = 0; i < s[k].n; i++)
			if (strcmp(s[k].blocks[i].type, "CERTIFICATE") != 0) {
				rc = tpd_seterr(
				    err, TPD_ERR_PARSE,
				    "%s: PEM block at line %d is %s; expected only CERTIFICATE blocks",
				    label[k], s[k].blocks[i].line, s[k].blocks[i].type);
				goto out;
			}
	for (i = 0; i < s[1].n; i++)
		certs[i] = &s[1].blocks[i];
	for (i = 0; i < s[2].n; i++)
		cas[i] = &s[2].blocks[i];
	rc = build(crt_path, label[0], &s[0].blocks[0], label[1], certs, s[1].n, label[2], cas, s[2].n, NULL,
	           out, err);
	if (rc)
		goto out;
	md = EVP_MD_CTX_new();
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		unsigned int n = 32;
		for (k = 0; k < 3; k++) {
			EVP_DigestUpdate(md, data[k], len[k]);
			EVP_DigestUpdate(md, "", 1);
		}
		EVP_DigestFinal_ex(md, (*out)->fp, &n);
	}
	ERR_clear_error();
out:
	EVP_MD_CTX_free(md);
	for (k = 0; k < 3; k++) {
		scan_free(&s[k]);
		if (data[k])
			OPENSSL_cleanse(data[k], len[k]);
		free(data[k]);
		free(label[k]);
	}
	free(s);
	return rc;
}

void tpd_identity_free(tpd_identity *id)
{
	if (!id)
		return;
	if (id->key_pem) {
		OPENSSL_cleanse(id->key_pem, strlen(id->key_pem));
		free(id->key_pem);
	}
	free(id->name);
	free(id->cert_pem);
	free(id->ca_pem);
	free(id->cluster);
	free(id->user);
	free(id->serial);
	free(id);
}

const char *tpd_identity_name(const tpd_identity *id)
{
	return id->name;
}

const char *tpd_identity_key_pem(const tpd_identity *id)
{
	return id->key_pem;
}

const char *tpd_identity_cert_pem(const tpd_identity *id)
{
	return id->cert_pem;
}

const char *tpd_identity_ca_pem(const tpd_identity *id)
{
	return id->ca_pem;
}

int tpd_identity_ca_count(const tpd_identity *id)
{
	return id->ca_count;
}

const char *tpd_identity_cluster_name(const tpd_identity *id)
{
	return id->cluster;
}

const char *tpd_identity_user(const tpd_identity *id)
{
	return id->user;
}

const char *tpd_identity_serial(const tpd_identity *id)
{
	return id->serial;
}

const char *tpd_identity_key_type(const tpd_identity *id)
{
	return id->key_type;
}

int tpd_identity_has_ssh_cert(const tpd_identity *id)
{
	return id->has_ssh;
}

int64_t tpd_identity_not_before(const tpd_identity *id)
{
	return id->not_before;
}

int64_t tpd_identity_not_after(const tpd_identity *id)
{
	return id->not_after;
}

const unsigned char *tpd_identity_fingerprint(const tpd_identity *id)
{
	return id->fp;
}

tpd_err tpd_identity_check_time(const tpd_identity *id, int64_t now_unix, char *err)
{
	char when[40];

	if (now_unix >= id->not_after) {
		tpd_format_rfc3339(id->not_after * 1000, when, sizeof(when));
		return tpd_seterr(err, TPD_ERR_EXPIRED,
		                  "identity %s expired at %s; renew it with tbot or `tctl auth sign`",
		                  id->name, when);
	}
	if (now_unix < id->not_before) {
		tpd_format_rfc3339(id->not_before * 1000, when, sizeof(when));
		return tpd_seterr(err, TPD_ERR_EXPIRED,
		                  "identity %s is not valid before %s; check the system clock, or renew it "
		                  "with tbot or `tctl auth sign`",
		                  id->name, when);
	}
	return TPD_ERR_OK;
}
