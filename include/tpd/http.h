/* http.h - one HTTPS exchange over libcurl, shared by the PagerDuty client and the Lease client:
 * the caller's headers, a body fed by a read callback (never rewound: a resend of a write that
 * may have arrived fails instead of repeating it), a size-capped answer, response headers handed
 * to the caller, cancellation through a flag, libcurl's trace with the Authorization header cut
 * out, and one mapping of libcurl failures to error codes. Callers own the easy handle (reused
 * for keep-alive) and, optionally, a share handle. */
#ifndef TPD_HTTP_H
#define TPD_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/util.h"

/* One response header: name and value as received (value with its leading blanks and line end). */
typedef void (*tpd_http_header_fn)(void *ud, const char *name, size_t name_len, const char *value,
                                   size_t value_len);

typedef struct {
	const char *method; /* GET sends no body; anything else sends body ("" when NULL) */
	const char *url;
	const char *const *headers; /* "Name: value" lines */
	size_t n_headers;
	const char *body;
	const char *ca_file, *ca_path; /* optional trust overrides; else the system store */
	int64_t connect_timeout_ms, timeout_ms;
	CURLSH *share;                /* optional: shared DNS, TLS sessions, connections */
	long max_connects;            /* > 0: size of the connection cache */
	const atomic_bool *cancel;    /* optional: the transfer aborts (CANCELLED) once set */
	tpd_logger *trace;            /* optional: libcurl's trace at TRACE level */
	tpd_http_header_fn on_header; /* optional */
	void *header_ud;
} tpd_http_req;

typedef struct {
	long status;     /* HTTP status; 0 when no answer arrived */
	bool permanent;  /* a failure retrying cannot fix (TLS verification, bad URL) */
	char error[256]; /* what went wrong when the call returns an error */
} tpd_http_result;

/* Performs req on handle h (reset first), appending the answer to body (initialised by the caller
 * with its size cap). Returns TPD_ERR_OK when any HTTP answer arrived, whatever its status;
 * otherwise TIMEOUT, CANCELLED, TOO_LARGE (body over its cap), NOMEM or UNAVAILABLE, with
 * res->error filled. */
tpd_err tpd_http_perform(CURL *h, const tpd_http_req *req, tpd_buf *body, tpd_http_result *res);

#endif
