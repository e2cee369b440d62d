/* pem.h - the one place that hands PEM text to OpenSSL.
 *
 * Every reader here never prompts for a password (an encrypted key is simply unreadable: the
 * callback refuses), leaves nothing on OpenSSL's error queue (so no later, unrelated error report
 * on this thread picks it up) and never quotes its input. Callers say what was wrong, in their
 * own words, with their own context (file, line, which credential). */
#ifndef TPD_PEM_H
#define TPD_PEM_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* The first private key in pem[0..len), or NULL when there is none or it is unreadable. */
EVP_PKEY *tpd_pem_read_key(const char *pem, size_t len);
/* The first certificate in pem[0..len) (PEM blocks of other types are skipped), or NULL. */
X509 *tpd_pem_read_cert(const char *pem, size_t len);
/* Every certificate in pem[0..len), in order (other PEM blocks skipped), up to the end or the first
 * unreadable one; NULL when there is none. Free with sk_X509_pop_free(s, X509_free). */
STACK_OF(X509) * tpd_pem_read_certs(const char *pem, size_t len);

#endif
