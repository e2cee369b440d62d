/* pagerduty_hooks.h - the PagerDuty client's test seam: replace the network (one HTTP exchange),
 * the clock and sleeping. Only the client (pagerduty*.c) and tests include it; production passes
 * no hooks (tpd_pd_opts.hooks = NULL) and gets libcurl, tpd_now_ms and an interruptible sleep. */
#ifndef TPD_PAGERDUTY_HOOKS_H
#define TPD_PAGERDUTY_HOOKS_H

#include "tpd/pagerduty.h"

/* One HTTP request as the client would send it. */
typedef struct {
	const char *method;         /* "GET", "POST", "PUT" */
	const char *url;            /* absolute URL */
	const char *const *headers; /* "Name: value" lines */
	size_t n_headers;
	const char *body; /* NULL for GET */
} tpd_pd_http_req;

/* The answer, filled by the transport. body is initialised by the caller with a size cap. */
typedef struct {
	long status; /* HTTP status; 0 when no answer was received */
	tpd_buf body;
	int64_t rl_remaining;    /* ratelimit-remaining, -1 when absent */
	int64_t rl_limit;        /* ratelimit-limit, -1 when absent */
	int64_t rl_reset_s;      /* ratelimit-reset (seconds), -1 when absent */
	int64_t retry_after_s;   /* Retry-After (seconds), -1 when absent */
	bool permanent;          /* transport failure that retrying cannot fix (TLS verification) */
	char transport_err[256]; /* what went wrong when the transport returned an error */
} tpd_pd_http_resp;

/* Returns TPD_ERR_OK when any HTTP answer arrived (whatever its status); otherwise the transport
 * failure (UNAVAILABLE, TIMEOUT, TOO_LARGE, CANCELLED) with resp->transport_err filled. */
typedef tpd_err (*tpd_pd_transport_fn)(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp);

struct tpd_pd_hooks {
	tpd_pd_transport_fn transport; /* NULL → libcurl */
	void *transport_ud;
	int64_t (*now_ms)(void *ud);            /* NULL → tpd_now_ms */
	void (*sleep_ms)(void *ud, int64_t ms); /* NULL → interruptible sleep */
	void *clock_ud;
};

#endif
