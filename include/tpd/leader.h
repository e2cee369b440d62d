/* leader.h - leader election with a Kubernetes coordination.k8s.io/v1 Lease (client-go's
 * algorithm and default timings), for running more than one replica of the controller.
 *
 * One thread tries to acquire the Lease every retry period; the holder renews it every retry
 * period and gives up leadership by itself when it could not renew for renew_deadline, which is
 * shorter than lease_duration, so two processes never reconcile at once. Optimistic concurrency
 * on metadata.resourceVersion; timestamps in RFC 3339 with microseconds (MicroTime).
 * Credentials: the pod's service-account token, CA and namespace files, or explicit values
 * (tests). libcurl + json-c. */
#ifndef TPD_LEADER_H
#define TPD_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "tpd/err.h"
#include "tpd/log.h"
#include "tpd/metrics.h"

typedef struct tpd_leader tpd_leader;

/* Called on the election thread when leadership is gained (true) or lost (false). Must not block. */
typedef void (*tpd_leader_cb)(void *ud, bool leading);

typedef struct {
	/* API server: "" → https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
	const char *api_url;
	/* Files; "" → /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}. The
	 * token file is re-read when it changes (projected tokens rotate). */
	const char *token_file, *ca_file;
	const char *lease_name;      /* default "teleport-plugin-pagerduty" */
	const char *lease_namespace; /* "" → $POD_NAMESPACE, the namespace file, else "default" */
	const char *identity;        /* holder identity; "" → $POD_NAME, else hostname */
	/* Required, lease > renew > retry > 0 (the config's defaults are in src/config/config_table.c). */
	int64_t lease_duration_ms;
	int64_t renew_deadline_ms;
	int64_t retry_period_ms;
	tpd_leader_cb cb;
	void *cb_ud;
	tpd_logger *log;      /* may be NULL */
	tpd_metrics *metrics; /* may be NULL: leader_is_leader, leader_transitions_total */
} tpd_leader_opts;

tpd_err tpd_leader_new(const tpd_leader_opts *o, tpd_leader **out, char *err);
/* Starts the election thread. */
tpd_err tpd_leader_start(tpd_leader *l, char *err);
/* True while this process holds a lease it renewed within renew_deadline. Thread-safe. */
bool tpd_leader_is_leader(tpd_leader *l);
/* Stops the thread; a leader releases the lease (holder cleared) so a follower takes over at
 * once. Call it after all leader work has stopped; it does not call cb. NULL-safe. */
void tpd_leader_free(tpd_leader *l);

#endif
