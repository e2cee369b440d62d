/* leader_http.c - the Lease client's requests to the Kubernetes API server: the service-account
 * bearer token (re-read when its file changes), one HTTPS request with a capped body and a
 * timeout, and readable errors for failed statuses. See leader_impl.h. */
#include "leader_impl.h"

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
	const char *headers[5];
	size_t nh = 0;
	char *auth = NULL;
	tpd_buf resp;
	tpd_http_result res;
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
	headers[nh++] = auth;
	headers[nh++] = "Accept: application/json";
	headers[nh++] = "User-Agent: teleport-pagerduty/" TPD_VERSION " leader-election";
	if (body)
		headers[nh++] = "Content-Type: application/json";
	rc = tpd_http_perform(l->curl,
	                      &(tpd_http_req){.method = method,
	                                      .url = url,
	                                      .headers = headers,
	                                      .n_headers = nh,
	                                      .body = body,
	                                      .ca_file = l->ca_file,
	                                      .connect_timeout_ms = timeout_ms,
	                                      .timeout_ms = timeout_ms,
	                                      .cancel = &l->stopping},
	                      &resp, &res);
	if (rc != TPD_ERR_OK) {
		tpd_seterr(err, rc, "%s %s: %s", method, what, res.error);
		goto out;
	}
	if (res.status < 200 || res.status > 299) {
		rc = status_error(res.status, &resp, method, what, err);
		goto out;
	}
	*out = lease_parse_json(resp.data, resp.len);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		rc = tpd_seterr(err, TPD_ERR_PARSE, "%s %s: HTTP %ld with a body that is not a JSON object",
		                method, what, res.status);
		goto out;
	}
	rc = TPD_ERR_OK;
out:
	if (auth) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	tpd_buf_free(&resp);
	return rc;
}
