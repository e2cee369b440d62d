/* leader_impl.h - what the Lease leader election's two files share (private to src/leader*.c):
 * leader.c (the algorithm, the thread, the public API) and leader_http.c (the Kubernetes API
 * calls: bearer token, one HTTPS request, status errors). */
#ifndef TPD_LEADER_IMPL_H
#define TPD_LEADER_IMPL_H

#include "tpd/leader.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tpd/http.h"
#include "tpd/util.h"

#define SA_DIR       "/var/run/secrets/kubernetes.io/serviceaccount"
#define RESP_MAX     (1024 * 1024)
#define TOKEN_MAX    (64 * 1024)
#define NAME_MAX_LEN 253

struct tpd_leader {
	/* configuration (immutable after new) */
	char *url_item, *url_coll;
	char *token_file, *ca_file;
	char *name, *ns, *id;
	int64_t lease_ms, renew_ms, retry_ms;
	tpd_leader_cb cb;
	void *cb_ud;
	tpd_logger *log;
	tpd_metric *m_is_leader, *m_transitions;
	bool curl_inited;

	/* election-thread state (owned by the thread; by free after the join) */
	CURL *curl;
	char *token;
	struct stat token_st;
	json_object *lease;  /* last Lease read or written */
	char *obs_rv;        /* its resourceVersion */
	int64_t obs_time_ms; /* monotonic time we first saw that resourceVersion */
	char *followed;      /* holder last logged with "Following leader" */

	/* shared state */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	atomic_bool stopping; /* read by libcurl's progress callback */
	bool leading;
	int64_t renewed_ms; /* monotonic start of the last successful acquire/renew */
};

const char *lease_jstr(json_object *o, const char *key);
json_object *lease_parse_json(const char *s, size_t len);
/* One request to the API server; see leader_http.c. */
tpd_err lease_http_do(tpd_leader *l, const char *method, const char *url, const char *body,
                      int64_t deadline_ms, json_object **out, char *err);

#endif
