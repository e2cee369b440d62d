/* fuzz_pd_json.c - libFuzzer target: PagerDuty response bodies through the exported parsers
 * (tpd_pd_parse_json, tpd_pd_parse_error, tpd_pd_is_duplicate_key_error).
 *
 * The first input byte picks the HTTP status handed to tpd_pd_parse_error (one of the statuses
 * PagerDuty answers with); the rest is the body. Checks: the error text is always printable ASCII
 * (bodies are sanitised before they reach a log), starts with "HTTP <status>", and the mapped
 * code agrees with the status. Seeds: bodies as in docs/pagerduty-api.md (tests/fuzz/corpus/fuzz_pd_json). */
#include <json-c/json.h>

#include "fuzz_common.h"
#include "tpd/pagerduty.h"

static const long statuses[] = {400, 401, 402, 403, 404, 408, 409, 429, 500, 502, 503, 504, 200, 201};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[TPD_ERRLEN], prefix[32];
	const char *body;
	long status;
	size_t len;
	int code = 0;

	if (size < 1 || size > 1024 * 1024)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	/* The body as the transport hands it over: a buffer, not NUL-terminated (exact size). */
	len = size - 1;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		abort();
	memcpy(copy, data + 1, len);
	body = copy;

	json_object *o = tpd_pd_parse_json(body, len);
	if (o) {
		/* What the client does next: walk objects and arrays, print it back. */
		(void)json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		json_object_put(o);
	}

	memset(msg, 0x55, sizeof(msg));
	tpd_err e = tpd_pd_parse_error(status, body, len, &code, msg, sizeof(msg));
	if (!memchr(msg, '\0', sizeof(msg)))
		fuzz_fail("tpd_pd_parse_error: message not NUL-terminated");
	for (const char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			fuzz_fail("tpd_pd_parse_error: non-printable byte 0x%02x in message",
			          (unsigned char)*p);
	snprintf(prefix, sizeof(prefix), "HTTP %ld", status);
	if (strncmp(msg, prefix, strlen(prefix)) != 0)
		fuzz_fail("tpd_pd_parse_error: message does not start with \"%s\": %s", prefix, msg);
	if ((status == 401 || status == 403) && e != TPD_ERR_ACCESS_DENIED)
		fuzz_fail("tpd_pd_parse_error: %ld not mapped to ACCESS_DENIED", status);
	if (status == 404 && e != TPD_ERR_NOT_FOUND)
		fuzz_fail("tpd_pd_parse_error: 404 not mapped to NOT_FOUND");
	if (status >= 500 && e != TPD_ERR_UNAVAILABLE)
		fuzz_fail("tpd_pd_parse_error: %ld not mapped to UNAVAILABLE", status);
	/* NULL outputs are allowed. */
	(void)tpd_pd_parse_error(status, body, len, NULL, NULL, 0);

	(void)tpd_pd_is_duplicate_key_error(body, len);
	free(copy);
	return 0;
}
