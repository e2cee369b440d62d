/* http.c - one HTTPS exchange over libcurl (see tpd/http.h). */
#include "tpd/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct {
	const tpd_http_req *req;
	tpd_buf *body;
	bool too_large;
	const char *send; /* request body */
	size_t sent, len;
} xfer;

/* Feeds a write's body to libcurl. There is deliberately no seek callback: libcurl resends a
 * request by itself when a reused connection dies before any answer byte arrives, even after
 * the server may have acted on it. Such a resend needs the body rewound, which then fails
 * (CURLE_SEND_FAIL_REWIND), so the caller sees a failure it treats as ambiguous and checks
 * before writing again: a write is never repeated behind its back. */
static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t left = x->len - x->sent, want = size * n;

	if (want > left)
		want = left;
	memcpy(buf, x->send + x->sent, want);
	x->sent += want;
	return want;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;

	if (!tpd_buf_append(x->body, p, size * n)) {
		x->too_large = true;
		return 0; /* aborts the transfer */
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	const char *colon = memchr(p, ':', len);

	if (colon && x->req->on_header)
		x->req->on_header(x->req->header_ud, p, (size_t)(colon - p), colon + 1,
		                  len - (size_t)(colon - p) - 1);
	return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	xfer *x = ud;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(x->req->cancel) ? 1 : 0;
}

/* libcurl's trace at TRACE level, the Authorization header cut out. Bodies are not traced. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
	tpd_logger *lg = ud;
	tpd_buf b;
	const char *what;

	(void)h;
	if (type == CURLINFO_TEXT)
		what = "curl";
	else if (type == CURLINFO_HEADER_OUT)
		what = "curl request headers";
	else if (type == CURLINFO_HEADER_IN)
		what = "curl response header";
	else
		return 0;
	tpd_buf_init(&b, 16384);
	for (size_t i = 0; i < size;) {
		const char *eol = memchr(data + i, '\n', size - i);
		size_t ll = eol ? (size_t)(eol - (data + i)) + 1 : size - i;

		if (ll >= 14 && strncasecmp(data + i, "authorization:", 14) == 0)
			tpd_buf_puts(&b, "Authorization: [REDACTED]\n");
		else
			tpd_buf_append(&b, data + i, ll);
		i += ll;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (b.data)
		tpd_log(lg, TPD_LOG_TRACE, what, "data", b.data, NULL);
	tpd_buf_free(&b);
	return 0;
}

static tpd_err map_failure(CURLcode cc, const xfer *x, tpd_http_result *res)
{
	snprintf(res->error, sizeof(res->error), "%s", curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return TPD_ERR_TIMEOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		return TPD_ERR_CANCELLED;
	case CURLE_OUT_OF_MEMORY:
		return TPD_ERR_NOMEM;
	case CURLE_WRITE_ERROR:
		if (!x->too_large)
			return TPD_ERR_UNAVAILABLE;
		snprintf(res->error, sizeof(res->error), "response body larger than %zu bytes", x->body->max);
		return TPD_ERR_TOO_LARGE;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		res->permanent = true;
		return TPD_ERR_UNAVAILABLE;
	default:
		return TPD_ERR_UNAVAILABLE;
	}
}

tpd_err tpd_http_perform(CURL *h, const tpd_http_req *req, tpd_buf *body, tpd_http_result *res)
{
	struct curl_slist *hdrs = NULL;
	xfer x = {.req = req, .body = body};
	CURLcode cc;
	tpd_err rc = TPD_ERR_OK;

	memset(res, 0, sizeof(*res));
	curl_easy_reset(h);
	for (size_t i = 0; i < req->n_headers; i++)
		hdrs = curl_slist_append(hdrs, req->headers[i]);
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip on writes */
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (req->ca_file && *req->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
	if (req->ca_path && *req->ca_path)
		curl_easy_setopt(h, CURLOPT_CAPATH, req->ca_path);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	if (req->share)
		curl_easy_setopt(h, CURLOPT_SHARE, req->share);
	if (req->max_connects > 0)
		curl_easy_setopt(h, CURLOPT_MAXCONNECTS, req->max_connects);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	if (req->cancel) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	}
	if (tpd_logger_enabled(req->trace, TPD_LOG_TRACE)) {
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
		curl_easy_setopt(h, CURLOPT_DEBUGDATA, req->trace);
	}
	if (strcmp(req->method, "GET") != 0) {
		x.send = req->body ? req->body : "";
		x.len = strlen(x.send);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x.len);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
	else
		rc = map_failure(cc, &x, res);
	curl_slist_free_all(hdrs);
	return rc;
}
