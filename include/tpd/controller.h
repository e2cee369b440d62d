/* controller.h - the operator-style controller: joins the Teleport watcher, the keyed work queue,
 * the worker pool, the PagerDuty client, identity rotation and the status server.
 *
 * Lifecycle: new → start (connects, bounded by an init timeout, then spawns threads) → ... →
 * request_stop (from any thread) → wait → free. */
#ifndef TPD_CONTROLLER_H
#define TPD_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "tpd/config.h"
#include "tpd/err.h"
#include "tpd/log.h"

typedef struct tpd_controller tpd_controller;

/* cfg and lg must outlive the controller. */
tpd_err tpd_controller_new(const tpd_config *cfg, tpd_logger *lg, tpd_controller **out, char *err);
/* Connects to Teleport and PagerDuty and starts the threads. On failure nothing keeps running. */
tpd_err tpd_controller_start(tpd_controller *c, char *err);
/* Asks for a graceful stop: stop taking work, finish in-flight work. Thread-safe, idempotent. */
void tpd_controller_request_stop(tpd_controller *c);
/* Waits up to timeout_ms (0 = poll) for every thread to end; true when they have. */
bool tpd_controller_wait(tpd_controller *c, int64_t timeout_ms);
/* A descriptor that becomes readable once every thread has ended (after a stop, or a fatal error
 * that stopped the controller by itself): poll it instead of calling tpd_controller_wait in a
 * loop, so an idle process does not wake up. Owned by the controller. */
int tpd_controller_done_fd(const tpd_controller *c);
/* True when the controller stopped by itself because of a fatal error (err holds why). */
bool tpd_controller_failed(tpd_controller *c, char *err);
/* SIGHUP: re-read the identity now. Thread-safe. */
void tpd_controller_reload(tpd_controller *c);
void tpd_controller_free(tpd_controller *c);

#endif
