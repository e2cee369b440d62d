/* idwatch.h - notices when an identity file may have changed (inotify).
 *
 * Works for the three ways the file gets replaced (docs/kubernetes-lease.md §3,
 * docs/teleport-wire.md §4.2):
 * a Kubernetes secret volume (kubelet renames a new `..data` symlink into place), tbot or an
 * operator rewriting the file in place, and an atomic rename of a new file onto the name. It
 * watches the file's directory plus the file itself (following symlinks) and re-adds watches
 * that the kernel drops. It only says "may have changed": the caller re-reads the file and
 * compares tpd_identity_fingerprint() to debounce. Spurious wake-ups are possible, missed
 * changes are not (as long as the directory exists; keep a polling fallback for the rest).
 * Not thread-safe: one owner thread polls and drains it. */
#ifndef TPD_IDWATCH_H
#define TPD_IDWATCH_H

#include <stdbool.h>

#include "tpd/err.h"

typedef struct tpd_idwatch tpd_idwatch;

/* Starts watching file_path and its directory. The file itself need not exist yet. */
tpd_err tpd_idwatch_new(const char *file_path, tpd_idwatch **out, char *err);
/* Non-blocking inotify fd: poll it for POLLIN, then call tpd_idwatch_drain. */
int tpd_idwatch_fd(tpd_idwatch *w);
/* Reads all pending events, re-arms lost watches; true when the file may have changed. */
bool tpd_idwatch_drain(tpd_idwatch *w);
/* How many times the kernel queue overflowed (IN_Q_OVERFLOW); for tests and debugging. */
unsigned tpd_idwatch_overflows(const tpd_idwatch *w);
/* Closes the fd and frees. NULL is a no-op. */
void tpd_idwatch_free(tpd_idwatch *w);

#endif
