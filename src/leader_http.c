/* leader_http.c - the Lease client's requests to the Kubernetes API server: the service-account
 * bearer token (re-read when its file changes), one HTTPS request with a capped body and a
 * timeout, and readable errors for failed statuses. See leader_impl.h. */
#include "leader_impl.h"

/* --- HTTP ------------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	tpd_buf *b = ud;

	if (!tpd_buf_append(b, p, size * n))
		return 0; /* larger than RESP_MAX: abort the transfer */
	return size * n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	tpd_leader *l = ud;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&l->stopping) ? 1 : 0;
}

/* Reads the token when its file changed since the last read (or was never read). */
static tpd_err load_token(tpd_leader *l, char *err)
{
	struct stat st;
	char *buf = NULL;
	tpd_err rc = TPD_ERR_OK;

	if (stat(l->token_file, &st) != 0) {
		if (l->token)
			return TPD_ERR_OK; /* keep the last token while the file is being swapped */
		return tpd_seterr(err, TPD_ERR_IO, "cannot read the service-account token %s: %s",
		                  l->token_file, strerror(errno));
	}
	if (l->token && st.st_ino == l->token_st.st_ino && st.st_dev == l->token_st.st_dev &&
	    st.st_size == l->token_st.st_size && st.st_mtim.tv_sec == l->token_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == l->token_st.st_mtim.tv_nsec)
		return TPD_ERR_OK;
	rc = tpd_read_file(l->token_file, TOKEN_MAX, &buf, NULL, err);
	if (rc != TPD_ERR_OK)
		goto out;
	tpd_str_trim(buf);
	if (buf[0] == '\0' || strpbrk(buf, "\r\n")) {
		rc = tpd_seterr(err, TPD_ERR_CONFIG,
		                "the service-account token file %s is empty or malformed", l->token_file);
		goto out;
	}
	tpd_logger_add_secret(l->log, buf);
	if (l->token) {
		memset(l->token, 0, strlen(l->token));
		free(l->token);
	}
	l->token = buf;
	buf = NULL;
	l->token_st = st;
out:
	if (buf) {
		memset(buf, 0, strlen(buf));
		free(buf);
	}
	return rc;
}

/* Turns a non-2xx answer into an error code and a text with the Status reason and message. */
static tpd_err status_error(long code, const tpd_buf *body, const char *method, const char *what, char *err)
{
	json_object *st = body->len ? lease_parse_json(body->data, body->len) : NULL;
	const char *reason = lease_jstr(st, "reason");
	const char *msg = lease_jstr(st, "message");
	tpd_err e;

	if (code == 404)
		e = TPD_ERR_NOT_FOUND;
	else if (code == 409)
		e = tpd_streq(reason, "AlreadyExists") ? TPD_ERR_EXISTS : TPD_ERR_COMPARE_FAILED;
	else if (code == 401 || code == 403)
		e = TPD_ERR_ACCESS_DENIED;
	else if (code == 429)
		e = TPD_ERR_RATE_LIMITED;
	else if (code == 408 || code == 504)
		e = TPD_ERR_TIMEOUT;
	else if (code >= 500)
		e = TPD_ERR_UNAVAILABLE;
	else
		e = TPD_ERR_REMOTE;
	tpd_seterr(err, e, "%s %s: HTTP %ld%s%s%s%.200s", method, what, code, reason ? " " : "",
	           reason ? reason : "", msg ? ": " : "", msg ? msg : "");
	json_object_put(st);
	return e;
}

/* One request, to finish by the monotonic deadline (at least 100 ms). On 2xx *out gets the
 * parsed JSON body. */
tpd_err lease_http_do(tpd_leader *l, const char *method, const char *url, const char *body,
                      int64_t deadline_ms, json_object **out, char *err)
{
	int64_t timeout_ms = deadline_ms - tpd_now_ms();
	struct curl_slist *hdrs = NULL;
	char *auth = NULL;
	tpd_buf resp;
	long code = 0;
	CURLcode cc;
	tpd_err rc;
	const char *what = strcmp(url, l->url_coll) == 0 ? "leases" : "lease";

	*out = NULL;
	tpd_buf_init(&resp, RESP_MAX);
	rc = load_token(l, err);
	if (rc != TPD_ERR_OK)
		goto out;
	if (timeout_ms < 100)
		timeout_ms = 100;
	auth = xasprintf("Authorization: Bearer %s", l->token);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_reset(l->curl);
	curl_easy_setopt(l->curl, CURLOPT_URL, url);
	curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(l->curl, CURLOPT_USERAGENT, "teleport-pagerduty/" TPD_VERSION " leader-election");
	curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(l->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(l->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(l->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(l->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (!tpd_str_empty(l->ca_file))
		curl_easy_setopt(l->curl, CURLOPT_CAINFO, l->ca_file);
	curl_easy_setopt(l->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(l->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(l->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(l->curl, CURLOPT_XFERINFODATA, l);
	if (body) {
		curl_easy_setopt(l->curl, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(l->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	cc = curl_easy_perform(l->curl);
	if (cc != CURLE_OK) {
		switch (cc) {
		case CURLE_OPERATION_TIMEDOUT:
			rc = TPD_ERR_TIMEOUT;
			break;
		case CURLE_ABORTED_BY_CALLBACK:
			rc = TPD_ERR_CANCELLED;
			break;
		case CURLE_WRITE_ERROR:
			rc = TPD_ERR_TOO_LARGE;
			break;
		default:
			rc = TPD_ERR_UNAVAILABLE;
			break;
		}
		tpd_seterr(err, rc, "%s %s: %s", method, what,
		           rc == TPD_ERR_TOO_LARGE ? "response larger than 1 MiB" : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		rc = status_error(code, &resp, method, what, err);
		goto out;
	}
	*out = lease_parse_json(resp.data, resp.len);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		rc = tpd_seterr(err, TPD_ERR_PARSE, "%s %s: HTTP %ld with a body that is not a JSON object",
		                method, what, code);
		goto out;
	}
	rc = TPD_ERR_OK;
out:
	curl_slist_free_all(hdrs);
	if (auth) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	tpd_buf_free(&resp);
	return rc;
}
