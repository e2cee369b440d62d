/* identity.h - Teleport client credentials: identity files and key/cert/CA triples.
 *
 * A Teleport identity file (docs/teleport-wire.md §4.1) holds, in this order: the private key (PEM
 * "PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY"), the SSH certificate line, the user's
 * TLS certificate (PEM), `@cert-authority` known-hosts lines and the cluster's TLS Host CA
 * certificates. PEM blocks are assigned by position, like Teleport's decoder: first = key,
 * second = TLS certificate, the rest = TLS CAs. The alternative credential is the upstream
 * `client_key` + `client_crt` + `root_cas` triple of PEM files.
 *
 * Parsing checks every block with OpenSSL, that the key matches the certificate, and extracts
 * what the plugin needs: cluster name (subject OID 1.3.9999.1.7, else the first host pattern of
 * the first `@cert-authority` line), user (subject CN), serial, validity window, and a SHA-256
 * fingerprint of the material for change detection. Errors name the file and what is wrong or
 * missing; no text of the private key ever reaches an error message. The parser is pure (no I/O)
 * and safe on arbitrary bytes, so it doubles as a fuzzing entry point. A parsed identity is
 * immutable, so several threads may read it at once. */
#ifndef TPD_IDENTITY_H
#define TPD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "tpd/err.h"

/* Largest identity / PEM file accepted (an identity with a handful of CAs is ~10 KiB). */
#define TPD_IDENTITY_MAX_BYTES (1024 * 1024)
/* The OID Teleport puts the cluster name under in a user certificate's subject. */
#define TPD_IDENTITY_CLUSTER_OID "1.3.9999.1.7"

typedef struct tpd_identity tpd_identity;

/* Parses an identity file's bytes; `name` (usually the path) is only used in error texts.
 * data need not be NUL-terminated. Returns TPD_ERR_PARSE (with err) on anything malformed. */
tpd_err tpd_identity_parse(const char *name, const char *data, size_t len, tpd_identity **out, char *err);
/* Reads and parses an identity file (at most TPD_IDENTITY_MAX_BYTES). */
tpd_err tpd_identity_load_file(const char *path, tpd_identity **out, char *err);
/* Builds an identity from the client_key / client_crt / root_cas PEM files (all required). */
tpd_err tpd_identity_load_tls(const char *key_path, const char *crt_path, const char *cas_path,
                              tpd_identity **out, char *err);
/* Frees (and wipes the key text of) an identity. NULL is a no-op. */
void tpd_identity_free(tpd_identity *id);

/* The name given at parse time (identity path, or the client_crt path for a triple). */
const char *tpd_identity_name(const tpd_identity *id);
/* Private key as a normalised PEM block. Secret: never log it or copy it into an error. */
const char *tpd_identity_key_pem(const tpd_identity *id);
/* The user's TLS certificate, PEM. */
const char *tpd_identity_cert_pem(const tpd_identity *id);
/* All TLS CA certificates, PEM, concatenated (the only trust roots for the Auth server). */
const char *tpd_identity_ca_pem(const tpd_identity *id);
/* Number of TLS CA certificates (>= 1; more than one during a CA rotation). */
int tpd_identity_ca_count(const tpd_identity *id);
/* Cluster name: subject OID 1.3.9999.1.7, else the first `@cert-authority` host; "" if unknown. */
const char *tpd_identity_cluster_name(const tpd_identity *id);
/* Certificate subject CN (the Teleport user); "" if absent. */
const char *tpd_identity_user(const tpd_identity *id);
/* Certificate serial number, upper-case hex with an even number of digits (openssl -serial). */
const char *tpd_identity_serial(const tpd_identity *id);
/* Key algorithm: "RSA", "EC", "ED25519" or "other". */
const char *tpd_identity_key_type(const tpd_identity *id);
/* True when the file carried an SSH certificate line (not needed by the TLS-only client). */
int tpd_identity_has_ssh_cert(const tpd_identity *id);
/* Certificate validity window, unix seconds. */
int64_t tpd_identity_not_before(const tpd_identity *id);
int64_t tpd_identity_not_after(const tpd_identity *id);
/* SHA-256 over the raw credential bytes (32 bytes): equal fingerprints = nothing changed. */
const unsigned char *tpd_identity_fingerprint(const tpd_identity *id);
/* TPD_ERR_EXPIRED with "identity <name> expired at <RFC3339>; renew it with tbot or `tctl auth
 * sign`", or "... is not valid before <RFC3339> ..." when now_unix precedes not_before. */
tpd_err tpd_identity_check_time(const tpd_identity *id, int64_t now_unix, char *err);

#endif
