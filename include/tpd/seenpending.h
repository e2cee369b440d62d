/* seenpending.h - the controller's memory of requests it saw PENDING that have left that state
 * (resolved or deleted) before their incident was fully handled.
 *
 * While a request is PENDING the informer cache holds it. When a watch event or a listing shows
 * that it left PENDING (a put with a new state, a delete, or a listing without it), the
 * controller moves the last PENDING copy here, so the planner can still open the incident of a
 * request reviewed or deleted a moment after its creation: the work queue collapses a key's
 * events and the planner only sees the newest state.
 *
 * Each entry keeps a slim snapshot (id, user, roles, times, reasons and the two annotations the
 * planner reads), its insertion time and a generation number. Bounded: an entry goes when its
 * request is handled (tpd_seen_pending_forget), when it is older than the TTL
 * (tpd_seen_pending_expire), or, when the cap is reached, the oldest entry makes room.
 * Pure data structure: no I/O, no clock (callers pass now), not thread-safe (callers lock). */
#ifndef TPD_SEENPENDING_H
#define TPD_SEENPENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpd/types.h"

typedef struct tpd_seen_pending tpd_seen_pending;

/* cap: most entries kept (> 0); ttl_ms: an entry older than this is dropped by _expire.
 * notify_key / services_key: the annotations copied into snapshots (copied). */
tpd_seen_pending *tpd_seen_pending_new(size_t cap, int64_t ttl_ms, const char *notify_key,
                                       const char *services_key);
void tpd_seen_pending_free(tpd_seen_pending *s);

/* Records the PENDING request r (r->id set) as seen at now_ms, replacing an older entry of the
 * same id (which then counts as new). Returns how many entries were evicted to stay within the
 * cap (0 or 1). */
size_t tpd_seen_pending_put(tpd_seen_pending *s, const tpd_access_request *r, int64_t now_ms);

/* The snapshot for id (owned by the store, valid until the next modification) or NULL; *gen (if
 * not NULL) receives the entry's generation, for tpd_seen_pending_forget. */
const tpd_access_request *tpd_seen_pending_get(const tpd_seen_pending *s, const char *id, uint64_t *gen);

/* Drops id's entry if its generation is gen (0: whatever it is). Returns true if dropped. */
bool tpd_seen_pending_forget(tpd_seen_pending *s, const char *id, uint64_t gen);

/* Drops entries put at or before now_ms - ttl_ms; returns how many. */
size_t tpd_seen_pending_expire(tpd_seen_pending *s, int64_t now_ms);

size_t tpd_seen_pending_len(const tpd_seen_pending *s);

/* Calls fn for every entry, oldest first (no modification of the store inside fn). */
void tpd_seen_pending_each(const tpd_seen_pending *s,
                           void (*fn)(void *ud, const char *id, const tpd_access_request *snap), void *ud);

/* The slim copy the store keeps (exposed for tests): no reviews, only the two annotations. */
tpd_access_request *tpd_seen_pending_snapshot(const tpd_access_request *r, const char *notify_key,
                                              const char *services_key);

#endif
