/* pagerduty_http.c - the PagerDuty client's libcurl transport: pooled easy handles sharing DNS,
 * TLS sessions and connections; one HTTP exchange with a size-capped body and the ratelimit-*
 * headers captured. See pagerduty_impl.h. */
#include "pagerduty_impl.h"

/* ---- libcurl transport --------------------------------------------------------------------- */

void pd_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	tpd_pd *pd = ud;

	(void)h;
	(void)access;
	pthread_mutex_lock(&pd->share_mu[data]);
}

void pd_share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	tpd_pd *pd = ud;

	(void)h;
	pthread_mutex_unlock(&pd->share_mu[data]);
}

typedef struct {
	tpd_pd_http_resp *resp;
	bool too_large;
	tpd_pd *pd;
	const char *body; /* request body of a write, read out by on_read */
	size_t body_len, body_off;
} xfer;

/* Feeds a write's body to libcurl. There is deliberately no seek callback: libcurl resends a
 * request by itself when a reused connection dies before any answer byte arrives, even after
 * PagerDuty may have acted on it. Such a resend needs the body rewound, which then fails
 * (CURLE_SEND_FAIL_REWIND), so the failure reaches pd_call, which treats it as ambiguous and
 * checks before writing again. A note is never posted twice behind our back. */
static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t left = x->body_len - x->body_off, want = size * n;

	if (want > left)
		want = left;
	memcpy(buf, x->body + x->body_off, want);
	x->body_off += want;
	return want;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;

	if (!tpd_buf_append(&x->resp->body, p, size * n)) {
		x->too_large = true;
		return 0;
	}
	return size * n;
}

static int64_t header_int(const char *v, size_t len)
{
	int64_t n = 0;
	size_t i = 0;

	while (i < len && (v[i] == ' ' || v[i] == '\t'))
		i++;
	if (i == len || v[i] < '0' || v[i] > '9')
		return -1;
	for (; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
		if (n > 100000000)
			return -1; /* absurd: treat as absent */
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	const char *colon = memchr(p, ':', len);

	if (!colon)
		return len;
	size_t nl = (size_t)(colon - p), vl = len - nl - 1;
	const char *v = colon + 1;
#define HDR(name) (nl == sizeof(name) - 1 && strncasecmp(p, name, nl) == 0)
	if (HDR("ratelimit-remaining"))
		x->resp->rl_remaining = header_int(v, vl);
	else if (HDR("ratelimit-reset"))
		x->resp->rl_reset_s = header_int(v, vl);
	else if (HDR("ratelimit-limit"))
		x->resp->rl_limit = header_int(v, vl);
	else if (HDR("retry-after"))
		x->resp->retry_after_s = header_int(v, vl); /* an HTTP date is ignored (-1) */
#undef HDR
	return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	xfer *x = ud;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&x->pd->stopping) ? 1 : 0;
}

/* libcurl's trace output at TPD_LOG_TRACE, with the Authorization header cut out. Bodies are not
 * traced here (pd_attempt traces them, bounded). */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
	tpd_pd *pd = ud;
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
		tpd_log(pd->log, TPD_LOG_TRACE, what, "data", b.data, NULL);
	tpd_buf_free(&b);
	return 0;
}

static CURL *pool_get(tpd_pd *pd)
{
	CURL *h = NULL;

	pthread_mutex_lock(&pd->mu);
	if (pd->npool)
		h = pd->pool[--pd->npool];
	pthread_mutex_unlock(&pd->mu);
	if (!h)
		h = curl_easy_init();
	else
		curl_easy_reset(h);
	return h;
}

static void pool_put(tpd_pd *pd, CURL *h)
{
	pthread_mutex_lock(&pd->mu);
	if (pd->npool < POOL_MAX) {
		pd->pool[pd->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&pd->mu);
	if (h)
		curl_easy_cleanup(h);
}

tpd_err pd_curl_transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp)
{
	tpd_pd *pd = ud;
	struct curl_slist *hdrs = NULL;
	xfer x = {.resp = resp, .pd = pd};
	tpd_err rc = TPD_ERR_OK;
	CURLcode cc;
	CURL *h = pool_get(pd);

	if (!h) {
		snprintf(resp->transport_err, sizeof(resp->transport_err), "cannot create a libcurl handle");
		return TPD_ERR_NOMEM;
	}
	for (size_t i = 0; i < req->n_headers; i++)
		hdrs = curl_slist_append(hdrs, req->headers[i]);
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip on POST */
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (pd->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, pd->ca_file);
	if (pd->ca_path)
		curl_easy_setopt(h, CURLOPT_CAPATH, pd->ca_path);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)pd->connect_timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)pd->request_timeout);
	curl_easy_setopt(h, CURLOPT_SHARE, pd->share);
	/* The shared connection cache is trimmed to each transfer's MAXCONNECTS (default 5): keep one
	 * connection per concurrent caller instead of reconnecting with more than 5 workers. */
	curl_easy_setopt(h, CURLOPT_MAXCONNECTS, (long)POOL_MAX);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	if (tpd_logger_enabled(pd->log, TPD_LOG_TRACE)) {
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
		curl_easy_setopt(h, CURLOPT_DEBUGDATA, pd);
	}
	if (strcmp(req->method, "GET") != 0) {
		x.body = req->body ? req->body : "";
		x.body_len = strlen(x.body);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x.body_len);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
		goto out;
	}
	resp->status = 0;
	snprintf(resp->transport_err, sizeof(resp->transport_err), "%s", curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		rc = TPD_ERR_TIMEOUT;
		break;
	case CURLE_WRITE_ERROR:
		rc = x.too_large ? TPD_ERR_TOO_LARGE : TPD_ERR_UNAVAILABLE;
		if (x.too_large)
			snprintf(resp->transport_err, sizeof(resp->transport_err),
			         "response body larger than %u bytes", TPD_PD_MAX_BODY);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		rc = TPD_ERR_CANCELLED;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		resp->permanent = true;
		rc = TPD_ERR_UNAVAILABLE;
		break;
	default:
		rc = TPD_ERR_UNAVAILABLE;
	}
out:
	curl_slist_free_all(hdrs);
	pool_put(pd, h);
	return rc;
}
