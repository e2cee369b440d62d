/* pagerduty_http.c - the PagerDuty client's libcurl transport: pooled easy handles sharing DNS,
 * TLS sessions and connections, each exchange made by the shared helper (tpd/http.h) with the
 * ratelimit-* headers captured. See pagerduty_impl.h. */
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

/* Captures the rate-limit headers PagerDuty sends. */
static void on_header(void *ud, const char *name, size_t nl, const char *v, size_t vl)
{
	tpd_pd_http_resp *resp = ud;

#define HDR(h) (nl == sizeof(h) - 1 && strncasecmp(name, h, nl) == 0)
	if (HDR("ratelimit-remaining"))
		resp->rl_remaining = header_int(v, vl);
	else if (HDR("ratelimit-reset"))
		resp->rl_reset_s = header_int(v, vl);
	else if (HDR("ratelimit-limit"))
		resp->rl_limit = header_int(v, vl);
	else if (HDR("retry-after"))
		resp->retry_after_s = header_int(v, vl); /* an HTTP date is ignored (-1) */
#undef HDR
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
	tpd_http_result res;
	tpd_err rc;
	CURL *h = pool_get(pd);
	tpd_http_req hr = {.method = req->method,
	                   .url = req->url,
	                   .headers = req->headers,
	                   .n_headers = req->n_headers,
	                   .body = req->body,
	                   .ca_file = pd->ca_file,
	                   .ca_path = pd->ca_path,
	                   .connect_timeout_ms = pd->connect_timeout,
	                   .timeout_ms = pd->request_timeout,
	                   .share = pd->share,
	                   /* The shared connection cache is trimmed to each transfer's MAXCONNECTS
	                    * (default 5): keep one connection per concurrent caller instead of
	                    * reconnecting with more than 5 workers. */
	                   .max_connects = POOL_MAX,
	                   .cancel = &pd->stopping,
	                   .trace = pd->log,
	                   .on_header = on_header,
	                   .header_ud = resp};

	if (!h) {
		snprintf(resp->transport_err, sizeof(resp->transport_err), "cannot create a libcurl handle");
		return TPD_ERR_NOMEM;
	}
	rc = tpd_http_perform(h, &hr, &resp->body, &res);
	resp->status = res.status;
	resp->permanent = res.permanent;
	if (rc)
		snprintf(resp->transport_err, sizeof(resp->transport_err), "%s", res.error);
	pool_put(pd, h);
	return rc;
}
