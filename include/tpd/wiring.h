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

/* Loads the credentials the config names: the identity file, else the TLS key pair. */
tpd_err tpd_wiring_load_identity(const tpd_config *cfg, tpd_identity **out, char *err);

/* Fills the client options from the config (pointers into cfg and id, which must outlive o). */
void tpd_wiring_teleport_opts(const tpd_config *cfg, const tpd_identity *id, tpd_logger *lg, tpd_metrics *m,
                              tpd_teleport_opts *o);
void tpd_wiring_pd_opts(const tpd_config *cfg, tpd_logger *lg, tpd_metrics *m, tpd_pd_opts *o);

#endif
