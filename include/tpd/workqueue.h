/* workqueue.h - a keyed, deduplicating, rate-limited work queue (client-go's model).
 *
 * - A key is queued at most once; adding a queued key only merges its flags.
 * - A key being processed is never handed to a second worker; if it is added meanwhile it is
 *   marked dirty and handed out again after tpd_workqueue_done().
 * - Failed keys are re-added after a per-key exponential backoff with jitter
 *   (base 50 ms, doubling, cap 5 min by default); tpd_workqueue_forget() resets it on success.
 * - After tpd_workqueue_shutdown() workers get no more keys (queued keys are dropped: the
 *   controller is level-triggered and lists everything again on start).
 * Thread-safe. */
#ifndef TPD_WORKQUEUE_H
#define TPD_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "tpd/metrics.h"

typedef struct tpd_workqueue tpd_workqueue;

/* Flags travel with a key and are OR-merged when a key is added again before it is taken. */
#define TPD_WQ_EVENT  0x1u /* a watch event or the first listing showed this key */
#define TPD_WQ_RESYNC 0x2u /* periodic resync */
#define TPD_WQ_ORPHAN 0x4u /* an open incident exists for a request the cache does not know */

tpd_workqueue *tpd_workqueue_new(int64_t base_delay_ms, int64_t max_delay_ms, tpd_metrics *m);
void tpd_workqueue_free(tpd_workqueue *q);

void tpd_workqueue_add(tpd_workqueue *q, const char *key, unsigned flags);
void tpd_workqueue_add_after(tpd_workqueue *q, const char *key, unsigned flags, int64_t delay_ms);
/* Re-adds after the key's next backoff delay; returns that delay in ms. */
int64_t tpd_workqueue_add_rate_limited(tpd_workqueue *q, const char *key, unsigned flags);
/* Number of failures recorded for the key. */
unsigned tpd_workqueue_failures(tpd_workqueue *q, const char *key);
void tpd_workqueue_forget(tpd_workqueue *q, const char *key);

/* Takes the next ready key, waiting up to timeout_ms (< 0 = forever). Returns 0 and sets *key
 * (malloc'd, caller frees) and *flags; 1 on timeout; -1 after shutdown. */
int tpd_workqueue_get(tpd_workqueue *q, int64_t timeout_ms, char **key, unsigned *flags);
/* Marks the key processed (must follow every successful get). */
void tpd_workqueue_done(tpd_workqueue *q, const char *key);
void tpd_workqueue_shutdown(tpd_workqueue *q);
/* Keys ready or waiting (not counting those in progress or delayed). */
size_t tpd_workqueue_len(tpd_workqueue *q);
/* Keys delayed for a retry or a later add. */
size_t tpd_workqueue_delayed(tpd_workqueue *q);
/* Blocks until the queue is empty, nothing is in progress and nothing is delayed, or timeout
 * (ms) passes; returns 0 when idle, 1 on timeout. For tests and the drain on shutdown. */
int tpd_workqueue_wait_idle(tpd_workqueue *q, int64_t timeout_ms);

#endif
