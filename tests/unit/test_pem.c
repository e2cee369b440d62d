/* test_pem.c - the one PEM reader: keys, single certificates, certificate lists, encrypted keys
 * refused without a prompt, and OpenSSL's error queue left empty after every call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "tpd/pem.h"
#include "tpd/util.h"

static char *bio_text(BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = xstrndup(p, (size_t)n);

	BIO_free(b);
	return s;
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static X509 *new_cert(EVP_PKEY *k, const char *cn)
{
	X509 *x = X509_new();

	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn,
	                           -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	return x;
}

static void test_key_and_certs(void **state)
{
	(void)state;
	EVP_PKEY *k = new_key(), *got;
	X509 *a = new_cert(k, "first"), *b = new_cert(k, "second"), *one;
	BIO *bio = BIO_new(BIO_s_mem());
	char *key_pem, *certs_pem, cn[64];
	STACK_OF(X509) * all;

	PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
	key_pem = bio_text(bio);
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, a);
	PEM_write_bio_X509(bio, b);
	certs_pem = bio_text(bio);

	got = tpd_pem_read_key(key_pem, strlen(key_pem));
	assert_non_null(got);
	assert_int_equal(EVP_PKEY_eq(got, k), 1);
	EVP_PKEY_free(got);

	one = tpd_pem_read_cert(certs_pem, strlen(certs_pem));
	assert_non_null(one);
	X509_NAME_get_text_by_NID(X509_get_subject_name(one), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "first");
	X509_free(one);

	all = tpd_pem_read_certs(certs_pem, strlen(certs_pem));
	assert_non_null(all);
	assert_int_equal(sk_X509_num(all), 2);
	X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(all, 1)), NID_commonName, cn,
	                          sizeof(cn));
	assert_string_equal(cn, "second");
	sk_X509_pop_free(all, X509_free);
	assert_int_equal(ERR_peek_error(), 0);

	/* A key is not a certificate, a certificate is not a key, and a cut text is nothing. */
	assert_null(tpd_pem_read_cert(key_pem, strlen(key_pem)));
	assert_null(tpd_pem_read_certs(key_pem, strlen(key_pem)));
	assert_null(tpd_pem_read_key(certs_pem, strlen(certs_pem)));
	assert_null(tpd_pem_read_key(NULL, 0));
	assert_null(tpd_pem_read_cert(certs_pem, 40));
	assert_int_equal(ERR_peek_error(), 0);

	free(key_pem);
	free(certs_pem);
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(k);
}

/* An encrypted key is unreadable: no password is asked for (OpenSSL's default callback would
 * prompt on the terminal, or read an empty password from a closed one). */
static void test_encrypted_key_refused(void **state)
{
	(void)state;
	EVP_PKEY *k = new_key();
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;

	assert_int_equal(
	    PEM_write_bio_PrivateKey(bio, k, EVP_aes_128_cbc(), (unsigned char *)"pw", 2, NULL, NULL), 1);
	pem = bio_text(bio);
	assert_non_null(strstr(pem, "ENCRYPTED"));
	assert_null(tpd_pem_read_key(pem, strlen(pem)));
	assert_int_equal(ERR_peek_error(), 0);
	free(pem);
	EVP_PKEY_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_and_certs),
	    cmocka_unit_test(test_encrypted_key_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
