/* teleport_hooks.h - the Teleport client's test seam. Only the client (teleport*.c) and tests
 * include it; production passes no hooks (tpd_teleport_opts.hooks = NULL). */
#ifndef TPD_TELEPORT_HOOKS_H
#define TPD_TELEPORT_HOOKS_H

#include "tpd/teleport.h"

/* Replaces the RPCs the reconciler makes (same contracts as tpd_teleport_get_plugin_data, _update_plugin_data
 * and _submit_review in tpd/teleport.h). With hooks, the client needs no credentials and dials nothing for
 * these calls. */
struct tpd_teleport_hooks {
	tpd_err (*get_plugin_data)(void *ud, const char *request_id, tpd_plugin_data *out, char *err);
	tpd_err (*update_plugin_data)(void *ud, const char *request_id, const tpd_plugin_data *set,
	                              const tpd_plugin_data *expect, char *err);
	tpd_err (*submit_review)(void *ud, const char *request_id, const char *reason, char *err);
	void *ud;
};

#endif
