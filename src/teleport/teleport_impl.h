/* teleport_impl.h - what the Teleport client's files share (private to src/teleport*.c):
 *   teleport.c       helpers (status codes, versions), lifecycle, the RPCs and the watch
 *   teleport_chan.c  channels: credentials, the direct and TLS-routing paths, replacement on rotation
 *   teleport_call.c  one unary call and one server stream on a channel (completion queues) */
#ifndef TPD_TELEPORT_IMPL_H
#define TPD_TELEPORT_IMPL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "teleport_authservice.pb-c.h"
#include "teleport_types.pb-c.h"

#include "tpd/identity.h"
#include "tpd/pem.h"
#include "teleport_hooks.h"
#include "tpd/teleport.h"
#include "tpd/tlsdial.h"
#include "tpd/util.h"

#define DEFAULT_ADDR            "localhost:3025"
#define DEFAULT_CALL_TIMEOUT_MS 10000
#define DEFAULT_INIT_TIMEOUT_MS 15000
#define KEEPALIVE_TIME_MS       60000 /* never lower: Teleport's enforcement minimum */
#define KEEPALIVE_TIMEOUT_MS    20000
#define LIST_PAGE_SIZE          256
#define LIST_MAX_PAGES          100000
#define MAX_PEM                 262144
#define METHOD_PREFIX           "/proto.AuthService/"

/* Channel holder; refs and replacement under tpd_teleport.mu. */
typedef struct chan {
	grpc_channel *ch; /* NULL: a routing placeholder not dialled yet */
	/* The watch's own channel (its own TCP connection; direct path only, NULL on the routing
	 * path, where the watch shares ch). With gRPC's poll engine (tpd_teleport_process_init) a
	 * worker waiting for a unary answer then reads it itself, instead of the watcher's thread
	 * reading it and waking the worker: two context switches fewer per call. */
	grpc_channel *wch;
	grpc_channel_credentials *creds;
	tpd_tlsdial *dial; /* routing path only */
	bool routing;
	int refs;
	unsigned gen;
} chan;

enum { WATCH_RUN = 0, WATCH_STOP = 1, WATCH_RECONNECT = 2 };
enum { CQ_IDLE_MAX = 16 };

struct tpd_teleport {
	tpd_teleport_hooks hooks; /* test seam; all NULL in production */
	char *addr;
	int64_t call_timeout_ms;
	int64_t init_timeout_ms;
	char *author;
	tpd_logger *log;
	tpd_metric *m_req, *m_dur, *m_ev, *m_conn;

	pthread_mutex_t mu;
	chan *cur;
	unsigned gen;
	/* Idle completion queues of finished unary calls, reused by the next ones (guarded by mu):
	 * a queue's poller keeps its wake-up eventfd, which a fresh queue would create and close
	 * again on every call. */
	grpc_completion_queue *cq_idle[CQ_IDLE_MAX];
	size_t n_cq_idle;
	bool routing;        /* path chosen at creation */
	char *cluster;       /* for the routing ALPN; "" → from the identity */
	pthread_mutex_t dmu; /* serialises routing dials; guards id */
	tpd_identity *id;    /* routing path: current credentials */

	pthread_mutex_t wmu;
	grpc_call *wcall; /* the running watch's call, or NULL */
	bool wactive;
	bool wstop;  /* sticky */
	int wreason; /* why the running watch was cancelled */
};

typedef int (*msg_fn)(void *ud, const uint8_t *b, size_t n, tpd_err *rc, char *err);
/* Called about every 200 ms while it returns 0; returns 1 (and fills rc/err) to cancel the stream,
 * -1 when it needs no more calls (the stream then waits for events only: no idle wake-ups). */
typedef int (*tick_fn)(void *ud, tpd_err *rc, char *err);

typedef struct {
	bool watch;         /* register the call for watch_stop/watch_reconnect */
	int64_t timeout_ms; /* 0: no deadline */
	msg_fn on_msg;
	tick_fn on_tick;
	void *ud;
} stream_spec;

/* abseil's SetMutexDeadlockDetectionMode, as Debian 12 names it (inline namespace debian3) and
 * as an upstream build of release 20220623 does. */
#define TP_ABSL_DEADLOCK_MODE_DEBIAN "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE"
#define TP_ABSL_DEADLOCK_MODE_LTS                                                                            \
	"_ZN4absl12lts_2022062329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE"
/* Turns off abseil's deadlock detection for gRPC's mutexes (tpd_teleport_process_init); false
 * when this abseil has no such switch under either name. */
bool tp_abseil_deadlock_checks_off(void);
void tp_grpc_log_drop(gpr_log_func_args *args);
tpd_err tp_check_pems(const char *key_pem, const char *cert_pem, const char *ca_pem, char *err);
chan *tp_chan_create(tpd_teleport *t, const char *key_pem, const char *cert_pem, const char *ca_pem);
tpd_err tp_identity_from_pems(const char *key_pem, const char *cert_pem, const char *ca_pem,
                              tpd_identity **out, char *err);
chan *tp_chan_placeholder(void);
void tp_chan_release(tpd_teleport *t, chan *c);
tpd_err tp_chan_get(tpd_teleport *t, chan **out, char *err);
tpd_err tp_unary_raw(tpd_teleport *t, const char *method, const uint8_t *req, size_t req_len, uint8_t **resp,
                     size_t *resp_len, char *err);
tpd_err tp_unary(tpd_teleport *t, const char *method, const ProtobufCMessage *req, uint8_t **resp,
                 size_t *resp_len, char *err);
/* Destroys the idle completion queues (tpd_teleport_free, before grpc_shutdown). */
void tp_cq_idle_free(tpd_teleport *t);
tpd_err tp_server_stream(tpd_teleport *t, const char *method, const ProtobufCMessage *req,
                         const stream_spec *sp, char *err);

#endif
