/* teleport.h - gRPC client for the Teleport Auth Service (proto.AuthService over mutual TLS).
 *
 * A small synchronous API for the controller: Ping, a blocking WatchEvents loop, listing access
 * requests, plugin data with compare-and-swap, and access reviews. It talks to the real Auth
 * Service exactly as Teleport's Go client does (docs/teleport-wire.md): gRPC C core with the cluster
 * CA as the only trust root, target name teleport.cluster.local, keepalive never below 60 s,
 * a per-call deadline, and status codes mapped to tpd_err kinds.
 *
 * Every function is safe to call from several threads at once. Credentials can be swapped while
 * calls run (identity rotation): new calls and the next watch use a new channel, calls already in
 * flight finish on the old one, which is released when its last call ends.
 *
 * Conversion between wire messages and the domain model (tpd_access_request, tpd_plugin_data)
 * lives in src/teleport/teleport_conv.c and is exported below for tests and fuzzers. */
#ifndef TPD_TELEPORT_H
#define TPD_TELEPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/metrics.h"
#include "tpd/types.h"

/* The name every Teleport Auth server certificate carries (SNI and verified host name). */
#define TPD_TELEPORT_API_DOMAIN "teleport.cluster.local"
/* The plugin name under which plugin data is stored (upstream's). */
#define TPD_TELEPORT_PLUGIN_NAME "pagerduty"
/* Oldest Teleport server the plugin accepts (upstream's minServerVersion). */
#define TPD_TELEPORT_MIN_SERVER_VERSION "6.1.0"
/* Upper bound for one received gRPC message (gRPC's and Teleport's default). */
#define TPD_TELEPORT_MAX_MSG (4 * 1024 * 1024)

typedef struct tpd_teleport tpd_teleport;

/* How to reach the Auth Service (docs/teleport-wire.md §3.4). */
typedef enum {
	TPD_TELEPORT_PATH_AUTO =
	    0, /* by address: ports 443/3080 and teleport.sh hosts → Proxy TLS routing, else direct */
	TPD_TELEPORT_PATH_DIRECT,  /* gRPC's own mTLS straight to Auth (ALPN h2) */
	TPD_TELEPORT_PATH_ROUTING, /* our OpenSSL TLS with ALPN teleport-auth@<hex(cluster)>..., h2,
	                              through a Proxy in TLS-routing mode (src/teleport/tlsdial.c) */
} tpd_teleport_path;

/* Test seam (the RPCs the reconciler makes): defined in src/teleport/teleport_hooks.h, which only
 * the client and tests include. Production passes NULL. */
typedef struct tpd_teleport_hooks tpd_teleport_hooks;

typedef struct {
	const char *addr;                        /* host:port; NULL or "" → localhost:3025 */
	const char *key_pem, *cert_pem, *ca_pem; /* client key, client cert, cluster CA(s); copied */
	int64_t call_timeout_ms;                 /* per unary call; <= 0 → 10000 */
	int64_t watch_init_timeout_ms;           /* INIT must arrive within; <= 0 → 15000 */
	const char *review_author;               /* Author of submitted reviews; NULL/"" → the
	                                            server fills in the caller's user name */
	tpd_teleport_path path;                  /* default AUTO */
	const char *cluster_name;                /* for the routing ALPN; NULL → from the cert */
	tpd_logger *log;                         /* may be NULL */
	tpd_metrics *metrics;                    /* may be NULL */
	const tpd_teleport_hooks *hooks;         /* NULL in production; copied */
} tpd_teleport_opts;

/* Creates a client (no network I/O yet; the first call connects). Validates the PEMs. */
tpd_err tpd_teleport_new(const tpd_teleport_opts *o, tpd_teleport **out, char *err);
/* Frees the client. No call may be running. NULL is a no-op. */
void tpd_teleport_free(tpd_teleport *t);
/* Swaps credentials (identity rotation): new calls and the next watch use a new channel; calls in
 * flight finish on the old one. The PEMs are validated first; on error nothing changes. */
tpd_err tpd_teleport_set_credentials(tpd_teleport *t, const char *key_pem, const char *cert_pem,
                                     const char *ca_pem, char *err);
/* The target address in use ("localhost:3025" when none was given). */
const char *tpd_teleport_addr(const tpd_teleport *t);
/* The connection path in use: "direct" or "tls-routing" (for logs and `check`). */
const char *tpd_teleport_path_name(const tpd_teleport *t);

typedef struct {
	char *cluster_name, *server_version, *proxy_public_addr;
	bool advanced_workflows;
} tpd_ping_info;

/* Frees the strings of a ping answer and zeroes it. */
void tpd_ping_info_clear(tpd_ping_info *p);
/* Ping; refuses a server older than 6.1.0 (TPD_ERR_CONFIG, out still filled). */
tpd_err tpd_teleport_ping(tpd_teleport *t, tpd_ping_info *out, char *err);

/* How long connecting to Teleport may take in all, shared between the paths tried (upstream's
 * initTimeout). */
#define TPD_TELEPORT_CONNECT_TIMEOUT_MS 10000

/* Sleeps up to ms; returns true to give up (the process is stopping). */
typedef bool (*tpd_teleport_wait_fn)(void *ud, int64_t ms);

/* Creates a client and connects like upstream's: the address decides the paths and their order
 * (port 3025: Auth directly; 443/3080 or *.teleport.sh: the Proxy with TLS routing first, then
 * direct; anything else: direct, then routing). Each path gets its share of timeout_ms and Ping is
 * retried with back-off within it (the Auth server may still be starting); a path whose server
 * answers, even with a refusal, is kept. On success *out is the client and *ping its answer
 * (clear it with tpd_ping_info_clear); o->log (may be NULL) says which path failed and which
 * connected. On failure nothing is returned and err names the address and the last cause. wait
 * may be NULL (plain sleep). o->path is overwritten. `check` and `start` both connect this way. */
tpd_err tpd_teleport_connect(tpd_teleport_opts *o, int64_t timeout_ms, tpd_teleport_wait_fn wait,
                             void *wait_ud, tpd_teleport **out, tpd_ping_info *ping, char *err);

/* Called for every access request; a non-zero return stops the listing (not an error). */
typedef int (*tpd_request_cb)(void *ud, const tpd_access_request *r);
/* Lists all access requests: ListAccessRequests page by page, falling back to the streaming
 * GetAccessRequestsV2 when the server answers UNIMPLEMENTED. */
tpd_err tpd_teleport_list_requests(tpd_teleport *t, tpd_request_cb cb, void *ud, char *err);

/* Reads the "pagerduty" plugin data of a request into out (initialised by the call);
 * TPD_ERR_NOT_FOUND when there is none. */
tpd_err tpd_teleport_get_plugin_data(tpd_teleport *t, const char *request_id, tpd_plugin_data *out,
                                     char *err);
/* Compare-and-swap write of every plugin-data key (upstream's 9 plus pd_resolved). expect == NULL
 * means "nothing stored yet" (Expect = all keys empty, as upstream; a missing key counts as "").
 * TPD_ERR_COMPARE_FAILED on mismatch, TPD_ERR_NOT_FOUND if the request is gone. */
tpd_err tpd_teleport_update_plugin_data(tpd_teleport *t, const char *request_id, const tpd_plugin_data *set,
                                        const tpd_plugin_data *expect, char *err);

/* Submits an APPROVED review with the given reason. TPD_ERR_ALREADY_REVIEWED when the server says
 * this author has already reviewed the request (callers treat that as success). */
tpd_err tpd_teleport_submit_review(tpd_teleport *t, const char *request_id, const char *reason, char *err);

typedef enum { TPD_EV_INIT, TPD_EV_PUT, TPD_EV_DELETE } tpd_event_op;
typedef struct {
	tpd_event_op op;
	const tpd_access_request *request; /* PUT */
	const char *deleted_id;            /* DELETE */
} tpd_event;
/* Called for every event; a non-zero return ends the watch (tpd_teleport_watch returns OK). */
typedef int (*tpd_event_cb)(void *ud, const tpd_event *ev);

/* Watches access_request events. Blocks, calling cb for each event, until the stream breaks
 * (UNAVAILABLE, TIMEOUT, ...; never a silent OK), cb returns non-zero (OK),
 * tpd_teleport_watch_stop() is called (CANCELLED), or tpd_teleport_watch_reconnect() is called
 * (UNAVAILABLE). The first event must be INIT within watch_init_timeout_ms (else TIMEOUT).
 * One watch at a time per client (a second concurrent one gets TPD_ERR_INVAL). */
tpd_err tpd_teleport_watch(tpd_teleport *t, tpd_event_cb cb, void *ud, char *err);
/* Process-wide gRPC settings. Call once from main, before any thread starts (it may set an
 * environment variable). Selects gRPC's "poll" engine unless GRPC_POLL_STRATEGY is set: with it
 * each waiting thread polls the sockets of its own calls, so a worker reads its unary answers
 * itself. With the default "epoll1" engine one thread polls for the whole process (usually the
 * watcher, which waits longest) and hands every answer over: two context switches per call
 * (with the watch's own channel, 30 → 14 switches per lifecycle in bench/; bench/RESULTS.md). */
void tpd_teleport_process_init(void);
/* Drives the direct path's channels (the calls' and the watch's) to READY (connecting them
 * now, then polling their sockets from this thread) for up to timeout_ms; returns whether both
 * are. Between calls nothing else advances a reconnect but gRPC's backup poller, which is left
 * at its slow default so that an idle process is not woken for it: the watcher calls this
 * before it opens the watch again. tpd_teleport_watch_stop ends the wait. The routing path
 * dials per call: true at once. */
bool tpd_teleport_await_ready(tpd_teleport *t, int64_t timeout_ms);
/* Ends the running watch and every later one with TPD_ERR_CANCELLED (shutdown; sticky). Thread-safe. */
void tpd_teleport_watch_stop(tpd_teleport *t);
/* Ends the running watch (if any) with TPD_ERR_UNAVAILABLE so that the caller reconnects, e.g.
 * onto new credentials. Thread-safe; no effect when no watch runs. */
void tpd_teleport_watch_reconnect(tpd_teleport *t);

/* --- helpers, exported for tests ---------------------------------------------------------- */

/* Maps a gRPC status code and message to a tpd_err (ALREADY_REVIEWED recognised by text). */
tpd_err tpd_teleport_status_err(int grpc_code, const char *details);
/* gRPC status code name ("NOT_FOUND"), for metric labels. Never NULL. */
const char *tpd_teleport_code_name(int grpc_code);
/* Checks a server version against TPD_TELEPORT_MIN_SERVER_VERSION: 0 if acceptable, TPD_ERR_CONFIG
 * (too old) or TPD_ERR_PARSE (unparsable) with err filled. */
tpd_err tpd_teleport_check_version(const char *server_version, char *err);
/* Compares two semantic versions ("v" prefix allowed; a pre-release sorts before its release).
 * Returns <0, 0, >0; false if either is unparsable. */
bool tpd_semver_cmp(const char *a, const char *b, int *result);

/* Wire ↔ domain conversion (src/teleport/teleport_conv.c). Each decode takes serialised protobuf bytes. */
/* A zero Go time (-62135596800 s) or an absent Timestamp is 0 ("unset"). */
int64_t tpd_teleport_ts_seconds(bool present, int64_t seconds);
/* Decodes a types.AccessRequestV3 into out (cleared first). */
tpd_err tpd_teleport_decode_request(const uint8_t *buf, size_t len, tpd_access_request *out, char *err);
/* Decodes a proto.ListAccessRequestsResponse, calling cb for each request until it returns
 * non-zero (then *stopped = true); *next_key gets the page key (caller frees, "" at the end). */
tpd_err tpd_teleport_decode_request_list(const uint8_t *buf, size_t len, tpd_request_cb cb, void *ud,
                                         bool *stopped, char **next_key, char *err);
/* Decodes a proto.Event. *op gets the operation; for PUT of an access request, req is filled and
 * *has_request set; for DELETE of an access request, *deleted_id is set (caller frees). Events of
 * other kinds or unknown oneof members leave both unset (the caller ignores them). */
tpd_err tpd_teleport_decode_event(const uint8_t *buf, size_t len, tpd_event_op *op, tpd_access_request *req,
                                  bool *has_request, char **deleted_id, char *err);
/* Decodes a proto.PluginDataSeq and extracts the "pagerduty" entry; TPD_ERR_NOT_FOUND if absent. */
tpd_err tpd_teleport_decode_plugin_data(const uint8_t *buf, size_t len, tpd_plugin_data *out, char *err);
/* Encodes a types.PluginDataUpdateParams (kind access_request, plugin pagerduty, every key in
 * Set and Expect; "" in Set deletes the key server-side). Returns a malloc'ed buffer in *out / *out_len. */
tpd_err tpd_teleport_encode_plugin_update(const char *request_id, const tpd_plugin_data *set,
                                          const tpd_plugin_data *expect, uint8_t **out, size_t *out_len,
                                          char *err);
/* Encodes a types.AccessReviewSubmission proposing APPROVED (created_unix 0 → field omitted;
 * created_nanos: the nanoseconds within that second, Teleport keeps them). */
tpd_err tpd_teleport_encode_review(const char *request_id, const char *author, const char *reason,
                                   int64_t created_unix, int32_t created_nanos, uint8_t **out,
                                   size_t *out_len, char *err);

#endif
