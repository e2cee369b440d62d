/* extras.h - one incident per notify service ([pagerduty] notify_all_services): the pure helpers.
 *
 * The annotation's first service keeps upstream's incident (incident_key
 * teleport-access-request/<request id>, upstream's plugin data keys), so a cluster can switch back
 * to upstream without a duplicate. Each further service (annotation order, de-duplicated
 * case-insensitively, empty values skipped) gets an incident of its own with the key
 * teleport-access-request/<request id>/<PagerDuty service id>; they are recorded in the plugin
 * data key extra_incidents (ours; upstream ignores it) as "<service>=<incident id>,...", the
 * service names percent-encoded ('%', ',', '=' and control characters), an empty id meaning
 * "service not found in PagerDuty, skipped". No I/O here. */
#ifndef TPD_EXTRAS_H
#define TPD_EXTRAS_H

#include <stdbool.h>
#include <stddef.h>

#include "tpd/types.h"

/* The notify services of a request in annotation order, de-duplicated case-insensitively (the
 * first spelling wins), empty values skipped. Returns how many; *out is owned (free each and the
 * array; NULL when none). */
size_t tpd_notify_services(const tpd_access_request *r, const char *annotation, char ***out);
/* Whether `extras` records `service` (exactly as written in the annotation); *id (may be NULL)
 * gets its incident id (owned; "" when the service was not found). */
bool tpd_extras_get(const char *extras, const char *service, char **id);
/* `extras` with "service=id" appended (owned). */
char *tpd_extras_add(const char *extras, const char *service, const char *id);
/* The non-empty incident ids recorded, in order (owned array of owned strings); returns how many. */
size_t tpd_extras_ids(const char *extras, char ***ids);
/* The key of a further service's incident: teleport-access-request/<request id>/<service id>. */
char *tpd_extra_incident_key(const char *request_id, const char *service_id);

#endif
