/* pem.c - PEM text to OpenSSL objects (see tpd/pem.h). */
#include "tpd/pem.h"

#include <limits.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

/* Password callback that refuses: OpenSSL's default would prompt on the terminal. */
static int refuse_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static BIO *open_text(const char *pem, size_t len)
{
	if (!pem || len > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(pem, (int)len);
}

EVP_PKEY *tpd_pem_read_key(const char *pem, size_t len)
{
	BIO *bio = open_text(pem, len);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, refuse_password, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	return k;
}

STACK_OF(X509) * tpd_pem_read_certs(const char *pem, size_t len)
{
	BIO *bio = open_text(pem, len);
	STACK_OF(X509) *s = bio ? sk_X509_new_null() : NULL;
	X509 *x;

	while (s && (x = PEM_read_bio_X509(bio, NULL, refuse_password, NULL)) != NULL) {
		if (!sk_X509_push(s, x)) {
			X509_free(x);
			break;
		}
	}
	BIO_free(bio);
	ERR_clear_error();
	if (s && sk_X509_num(s) == 0) {
		sk_X509_free(s);
		s = NULL;
	}
	return s;
}

X509 *tpd_pem_read_cert(const char *pem, size_t len)
{
	STACK_OF(X509) *all = tpd_pem_read_certs(pem, len);
	X509 *x = all ? sk_X509_shift(all) : NULL;

	sk_X509_pop_free(all, X509_free);
	return x;
}
