/* fuzz_pd_client.c - libFuzzer target: the PagerDuty client's whole response handling (status
 * mapping, retries, paging, JSON field extraction, caches, idempotent create), with the network
 * replaced by the tpd_pd_hooks transport hook serving canned answers cut from the fuzz input, and
 * a fake clock so that retries and rate-limit waits cost no time.
 *
 * Input format (text-friendly, so seeds are readable):
 *   byte 0        the call: h health, s find_service, u find_user, o oncall, c create_incident,
 *                 k find_incident_by_key, n add_note, r resolve, l list_open_incidents (any other
 *                 byte: value modulo 9). An upper-case letter also switches the log to JSON.
 *   then answers, each introduced by a line "\n@<status>[ r<ratelimit-reset>][ a<retry-after>]"
 *   and followed by its body up to the next "\n@" line. The first answer's "\n" may be omitted.
 *   When the answers run out, the transport fails permanently (ends any retry loop).
 *
 * Checks: the API key never appears in an error text or a log line (TRACE level, both formats,
 * written to a memfd and searched); errors are one line; outputs are set exactly on success. */
#include <ctype.h>
#include <sys/mman.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fuzz_common.h"
#include "tpd/log.h"
#include "tpd/metrics.h"
#include "../../src/pagerduty/pagerduty_hooks.h"
#include "tpd/pagerduty.h"

#define API_KEY     "u+FuzzSecretApiKey0123456789"
#define MAX_ANSWERS 64

typedef struct {
	long status;
	int64_t reset_s, retry_after_s;
	const char *body;
	size_t len;
} answer;

typedef struct {
	answer a[MAX_ANSWERS];
	size_t n, next;
	int64_t now;
} script;

static int log_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Keep libcurl initialised for the whole run: each tpd_pd_new/free pair would otherwise
	 * initialise and tear down OpenSSL every iteration. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_fd = memfd_create("fuzz-pd-log", 0);
	if (log_fd < 0)
		abort();
	return 0;
}

static int64_t parse_num(const char **p, const char *end)
{
	int64_t v = 0;
	bool neg = false;

	if (*p < end && **p == '-') {
		neg = true;
		(*p)++;
	}
	while (*p < end && isdigit((unsigned char)**p) && v < 100000000)
		v = v * 10 + (**p - '0'), (*p)++;
	return neg ? -v : v;
}

static void parse_script(const char *d, size_t n, script *s)
{
	const char *p = d, *end = d + n;

	memset(s, 0, sizeof(*s));
	s->now = 1700000000000;
	if (p < end && *p == '\n')
		p++;
	while (p < end && *p == '@' && s->n < MAX_ANSWERS) {
		answer *a = &s->a[s->n++];
		const char *nl, *next;

		p++;
		a->status = (long)parse_num(&p, end);
		a->reset_s = a->retry_after_s = -1;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		while (p < nl) {
			if (*p == 'r' || *p == 'a') {
				char k = *p++;
				int64_t v = parse_num(&p, nl);
				if (k == 'r')
					a->reset_s = v;
				else
					a->retry_after_s = v;
			} else {
				p++;
			}
		}
		p = nl < end ? nl + 1 : end;
		next = memmem(p, (size_t)(end - p), "\n@", 2);
		a->body = p;
		a->len = (size_t)((next ? next : end) - p);
		p = next ? next + 1 : end;
	}
}

static tpd_err transport(void *ud, const tpd_pd_http_req *req, tpd_pd_http_resp *resp)
{
	script *s = ud;

	if (!req->method || !req->url || strncmp(req->url, "http://127.0.0.1:9/", 19) != 0)
		fuzz_fail("request with a bad method or URL: %s", req->url ? req->url : "(null)");
	for (size_t i = 0; i < req->n_headers; i++)
		if (strchr(req->headers[i], '\n') || strchr(req->headers[i], '\r'))
			fuzz_fail("header with a line break (header injection)");
	if (strchr(req->url, ' ') || strchr(req->url, '\n'))
		fuzz_fail("URL with whitespace: %s", req->url);
	if (s->next >= s->n) {
		resp->permanent = true;
		snprintf(resp->transport_err, sizeof(resp->transport_err), "fuzz: no more answers");
		return TPD_ERR_UNAVAILABLE;
	}
	const answer *a = &s->a[s->next++];
	if (a->status == 0) {
		snprintf(resp->transport_err, sizeof(resp->transport_err), "fuzz: connection reset");
		return TPD_ERR_UNAVAILABLE;
	}
	resp->status = a->status;
	resp->rl_reset_s = a->reset_s;
	resp->retry_after_s = a->retry_after_s;
	if (!tpd_buf_append(&resp->body, a->body, a->len)) {
		snprintf(resp->transport_err, sizeof(resp->transport_err), "fuzz: body too large");
		return TPD_ERR_TOO_LARGE;
	}
	return TPD_ERR_OK;
}

static int64_t fake_now(void *ud)
{
	return ((script *)ud)->now;
}

static void fake_sleep(void *ud, int64_t ms)
{
	if (ms > 0)
		((script *)ud)->now += ms;
}

static void check_err(tpd_err rc, const char *err)
{
	if (rc == TPD_ERR_OK)
		return;
	fuzz_check_err("tpd_pd call", err);
	if (strstr(err, API_KEY))
		fuzz_fail("API key in an error text: %s", err);
}

/* Known bug "empty ids" (README): empty ids from PagerDuty are accepted as ids. */
static bool bad_id(const char *id)
{
	return !id || (!id[0] && !fuzz_avoid_known());
}

static void on_incident(void *ud, const char *id, const char *key)
{
	(void)ud;
	if (bad_id(id) || !key || strncmp(key, "teleport-access-request/", 24) != 0)
		fuzz_fail("list_open_incidents returned an incident outside the prefix: %s",
		          key ? key : "(null)");
	(void)strlen(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char ops[] = "hsuocknrl";
	static script s; /* large; reset every run */
	char err[TPD_ERRLEN];
	tpd_pd *pd = NULL;
	tpd_logger *lg;
	tpd_metrics *m;
	tpd_err rc = TPD_ERR_OK;
	int op;

	if (size < 1 || size > 256 * 1024)
		return 0;
	const char *c = strchr(ops, tolower(data[0]));
	op = c && data[0] ? (int)(c - ops) : data[0] % 9;
	parse_script((const char *)data + 1, size - 1, &s);

	if (ftruncate(log_fd, 0) != 0 || lseek(log_fd, 0, SEEK_SET) != 0)
		abort();
	lg = tpd_logger_new();
	tpd_logger_set_fd(lg, log_fd);
	tpd_logger_set_level(lg, TPD_LOG_TRACE);
	tpd_logger_set_format(lg, isupper(data[0]) ? TPD_LOG_FORMAT_JSON : TPD_LOG_FORMAT_TEXT);
	m = tpd_metrics_new();

	tpd_pd_hooks hooks = {.transport = transport,
	                      .transport_ud = &s,
	                      .now_ms = fake_now,
	                      .sleep_ms = fake_sleep,
	                      .clock_ud = &s};
	tpd_pd_opts o = {.api_endpoint = "http://127.0.0.1:9/",
	                 .api_key = API_KEY,
	                 .user_email = "bot@example.com",
	                 .rate_limit_per_minute = 900,
	                 .max_retry_ms = 60000,
	                 .incident_urgency = "high",
	                 .user_agent_version = "fuzz",
	                 .log = lg,
	                 .metrics = m,
	                 .hooks = &hooks,
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	fuzz_err_init(err);
	if (tpd_pd_new(&o, &pd, err) != TPD_ERR_OK)
		fuzz_fail("tpd_pd_new: %s", err);

	fuzz_err_init(err);
	switch (op) {
	case 0:
		rc = tpd_pd_health(pd, err);
		break;
	case 1: {
		tpd_pd_service svc = {0};
		rc = tpd_pd_find_service(pd, "Teleport Access", &svc, err);
		if (rc == TPD_ERR_OK && (bad_id(svc.id) || !svc.name || !svc.escalation_policy_id))
			fuzz_fail("find_service OK with a NULL field");
		tpd_pd_service_clear(&svc);
		/* Second lookup: served from the cache, or another round of answers. */
		if (rc == TPD_ERR_OK) {
			rc = tpd_pd_find_service(pd, "teleport access", &svc, err);
			tpd_pd_service_clear(&svc);
		}
		break;
	}
	case 2: {
		tpd_pd_user u = {0};
		rc = tpd_pd_find_user(pd, "alice@example.com", &u, err);
		if (rc == TPD_ERR_OK && (bad_id(u.id) || !u.email))
			fuzz_fail("find_user OK with a NULL field");
		tpd_pd_user_clear(&u);
		break;
	}
	case 3: {
		const char *pol[] = {"PPOL001", "PPOL002", "PPOL001"};
		bool on[3] = {false, false, false};
		rc = tpd_pd_oncall(pd, "PUSER01", pol, 3, on, err);
		if (rc == TPD_ERR_OK && on[0] != on[2])
			fuzz_fail("the same policy answered differently");
		break;
	}
	case 4: {
		tpd_pd_incident_spec sp = {.title = "Access request from alice",
		                           .service_id = "PSVC001",
		                           .incident_key = "teleport-access-request/8f6a3c1e",
		                           .details = "User: alice\nRoles: admin\nReason: fuzz"};
		char *id = NULL;
		bool adopted = false;
		rc = tpd_pd_create_incident(pd, &sp, &id, &adopted, err);
		if (rc == TPD_ERR_OK && bad_id(id))
			fuzz_fail("create_incident OK without an incident id");
		free(id);
		break;
	}
	case 5: {
		char *id = NULL, *st = NULL;
		rc = tpd_pd_find_incident_by_key(pd, "teleport-access-request/8f6a3c1e", &id, &st, err);
		if (rc == TPD_ERR_OK && bad_id(id))
			fuzz_fail("find_incident_by_key OK without an id");
		free(id);
		free(st);
		break;
	}
	case 6:
		rc = tpd_pd_add_note(pd, "PINC001", "alice reviewed the request: APPROVED", err);
		break;
	case 7:
		rc = tpd_pd_resolve_incident(pd, "PINC001", err);
		break;
	default:
		rc = tpd_pd_list_open_incidents(pd, "teleport-access-request/", on_incident, NULL, err);
		break;
	}
	check_err(rc, err);
	tpd_pd_free(pd);
	tpd_logger_free(lg);

	/* Nothing the client logged may contain the key. */
	{
		off_t n = lseek(log_fd, 0, SEEK_END);
		if (n > 0) {
			char *buf = mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE, log_fd, 0);
			if (buf == MAP_FAILED)
				abort();
			if (memmem(buf, (size_t)n, API_KEY, sizeof(API_KEY) - 1))
				fuzz_fail("API key in a log line");
			munmap(buf, (size_t)n);
		}
	}
	tpd_metrics_free(m);
	return 0;
}
