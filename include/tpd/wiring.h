/* wiring.h - from a loaded configuration to working clients: the one code path that both
 * `teleport-pagerduty check` and `start` take, so that `check` accepts exactly the configurations
 * (credentials, addresses, connection paths, PagerDuty settings) that `start` accepts. */
#ifndef TPD_WIRING_H
#define TPD_WIRING_H

#include <stdbool.h>
#include <stdint.h>

#include "tpd/config.h"
#include "tpd/err.h"
#include "tpd/identity.h"
#include "tpd/log.h"
#include "tpd/metrics.h"
#include "tpd/pagerduty.h"
#include "tpd/teleport.h"

/* How long connecting to Teleport may take in all, shared between the paths tried (upstream's
 * initTimeout). */
#define TPD_WIRING_CONNECT_TIMEOUT_MS 10000

/* Loads the credentials the config names: the identity file, else the TLS key pair. */
tpd_err tpd_wiring_load_identity(const tpd_config *cfg, tpd_identity **out, char *err);

/* Fills the client options from the config (pointers into cfg and id, which must outlive o). */
void tpd_wiring_teleport_opts(const tpd_config *cfg, const tpd_identity *id, tpd_logger *lg, tpd_metrics *m,
                              tpd_teleport_opts *o);
void tpd_wiring_pd_opts(const tpd_config *cfg, tpd_logger *lg, tpd_metrics *m, tpd_pd_opts *o);

/* Sleeps up to ms; returns true to give up (the process is stopping). */
typedef bool (*tpd_wiring_wait_fn)(void *ud, int64_t ms);

/* Connects like upstream's client: the address decides the paths and their order (port 3025:
 * Auth directly; 443/3080 or *.teleport.sh: the Proxy with TLS routing first, then direct;
 * anything else: direct, then routing). Each path gets its share of timeout_ms and Ping is
 * retried with back-off within it (the Auth server may still be starting); a path whose server
 * answers, even with a refusal, is kept. On success *out is the client and *ping its answer
 * (clear it with tpd_ping_info_clear); the log (lg may be NULL) says which path failed and which
 * connected. On failure nothing is returned and err names the address and the last cause.
 * wait may be NULL (plain sleep). o->path is overwritten. */
tpd_err tpd_wiring_connect_teleport(tpd_teleport_opts *o, int64_t timeout_ms, tpd_wiring_wait_fn wait,
                                    void *wait_ud, tpd_logger *lg, tpd_teleport **out, tpd_ping_info *ping,
                                    char *err);

#endif
