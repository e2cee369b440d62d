/* status.h - the HTTP status server: /healthz, /readyz and Prometheus /metrics (libwebsockets).
 *
 * The server runs on its own thread and is the only user of its libwebsockets context. Checks are
 * plain callbacks run on that thread for every probe; they must not block (read atomics or take a
 * short lock). Other threads never call libwebsockets except through this module, which only
 * uses lws_cancel_service to wake the thread.
 *
 * Endpoints (GET and HEAD only, 405 otherwise; 404 for every other path; never file serving):
 *   /healthz            200 "ok" when every liveness check passes, else 500 with one line per
 *                       failing check: "[-]name failed: reason".
 *   /readyz             200 "ok" when every readiness check passes, else 503 likewise.
 *   ...?verbose         lists every check ("[+]name ok" / "[-]name failed: reason") and a last
 *                       line "healthz check passed" (or failed), like the Kubernetes API server.
 *   /healthz/<name>, /readyz/<name>   one check only (404 if there is no such check).
 *   /metrics            200, text/plain; version=0.0.4; charset=utf-8.
 * Every answer is text/plain with cache-control: no-store.
 *
 * Hostile clients are bounded: a cap on connections, on header size, and on the time a client may
 * take to send its request or hold an idle connection. */
#ifndef TPD_STATUS_H
#define TPD_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/metrics.h"

typedef struct tpd_status tpd_status;

/* A check returns true when healthy; on failure it writes a short reason (one line) into
 * reason[len]. Called on the status thread: must not block (read atomics / take a short lock). */
typedef bool (*tpd_status_check_fn)(void *ud, char *reason, size_t len);

/* Limits against hostile clients; tpd_status_new starts from TPD_STATUS_LIMITS_DEFAULT. Beyond
 * max_connections, new connections wait in the kernel's backlog or are closed at once. */
typedef struct {
	unsigned max_connections;  /* simultaneous connections; never more than half of RLIMIT_NOFILE */
	unsigned max_header_bytes; /* request line + headers; larger requests get 431/400 and close */
	unsigned header_timeout_s; /* time to send a complete request (slowloris) */
	unsigned idle_timeout_s;   /* keep-alive idle time between requests */
} tpd_status_limits;

#define TPD_STATUS_LIMITS_DEFAULT ((tpd_status_limits){1024, 8192, 5, 5})

/* Parses ":8081" (all interfaces), "host:port", "[v6]:port" (port 0 = any free port). host is set
 * to "" for all interfaces. Fills err with the address and the fix on bad input. */
tpd_err tpd_status_parse_addr(const char *listen_addr, char *host, size_t host_len, int *port, char *err);

/* Binds the listening socket (so a port in use fails here, with the address named) without
 * serving yet. m and lg may be NULL and must outlive the server. */
tpd_err tpd_status_new(const char *listen_addr, tpd_metrics *m, tpd_logger *lg, tpd_status **out, char *err);
/* Like tpd_status_new with explicit limits (tests, tuning). */
tpd_err tpd_status_new_with_limits(const char *listen_addr, const tpd_status_limits *limits, tpd_metrics *m,
                                   tpd_logger *lg, tpd_status **out, char *err);
/* Adds a check (name copied; readiness false = liveness). Thread-safe; also after start. */
void tpd_status_add_check(tpd_status *s, const char *name, bool readiness, tpd_status_check_fn fn, void *ud);
/* Starts serving on the server's own thread. */
tpd_err tpd_status_start(tpd_status *s, char *err);
/* The actual listening port (useful after ":0"); -1 for NULL. */
int tpd_status_port(const tpd_status *s);
/* Marks the process as shutting down: /readyz answers 503 "[-]shutdown failed: shutting down"
 * from now on while /healthz is unchanged. Thread-safe. */
void tpd_status_set_shutting_down(tpd_status *s);
/* Stops the thread, joins it, closes every connection and frees; NULL-safe. */
void tpd_status_free(tpd_status *s);

/* Watchdog for liveness: a loop (worker, watcher) beats at least every max_age_ms, including
 * while it idles (wait with a timeout); the check fails when the last beat is older, e.g.
 * "[-]worker-1 failed: no heartbeat for 31s (limit 30s)". Lock-free; beat from any thread.
 *   tpd_status_heartbeat hb; tpd_status_heartbeat_init(&hb, 30000);
 *   tpd_status_add_check(s, "worker-1", false, tpd_status_heartbeat_check, &hb);
 *   ... in the loop: tpd_status_heartbeat_beat(&hb); */
typedef struct {
	_Atomic long long last_ms; /* tpd_now_ms() of the last beat */
	long long max_age_ms;
} tpd_status_heartbeat;

/* Starts the heartbeat as if it had just beaten. */
void tpd_status_heartbeat_init(tpd_status_heartbeat *hb, long long max_age_ms);
/* Records a beat now. NULL-safe. */
void tpd_status_heartbeat_beat(tpd_status_heartbeat *hb);
/* A tpd_status_check_fn: ud is a tpd_status_heartbeat *. */
bool tpd_status_heartbeat_check(void *ud, char *reason, size_t len);

#endif
