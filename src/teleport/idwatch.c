/* idwatch.c - inotify watch on an identity file and its directory (see tpd/idwatch.h).
 *
 * Two watches on one non-blocking inotify fd:
 *   DIR   the file's directory. Sees kubelet's `rename(..data_tmp, ..data)` as IN_MOVED_TO
 *         "..data", an atomic replace of the file as IN_MOVED_TO <name>, a plain rewrite in a
 *         plain directory as IN_MODIFY/IN_CLOSE_WRITE <name>.
 *   FILE  the file path, following symlinks to the real inode. Sees an in-place rewrite through
 *         a secret-volume symlink (IN_MODIFY/IN_CLOSE_WRITE), which the DIR watch cannot see
 *         because the real file lives in a hidden sub-directory.
 * The FILE watch is re-pointed at the path's current inode after every event that may have
 * swapped it, and lost watches (IN_IGNORED, IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT) are re-added
 * by path on the next drain. IN_Q_OVERFLOW means events were lost, so it reports a change. */
#include "tpd/idwatch.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "tpd/util.h"

#define DIR_MASK                                                                                             \
	(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB |      \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define FILE_MASK (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
#define LOST_MASK (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)
#define MAX_READS 64 /* per drain; a flood leaves the fd readable for the next poll */

struct tpd_idwatch {
	int fd;
	char *path, *dir, *base;
	int dir_wd, file_wd;
	unsigned overflows;
};

/* (Re-)adds a watch by path; drops the previous one when the path now names another inode. */
static void rearm(tpd_idwatch *w, const char *path, uint32_t mask, int *wd)
{
	int nwd = inotify_add_watch(w->fd, path, mask);
	if (*wd >= 0 && nwd != *wd)
		inotify_rm_watch(w->fd, *wd);
	*wd = nwd;
}

tpd_err tpd_idwatch_new(const char *file_path, tpd_idwatch **out, char *err)
{
	tpd_idwatch *w;
	const char *slash;
	tpd_err rc = TPD_ERR_OK;

	*out = NULL;
	if (tpd_str_empty(file_path) || tpd_str_endswith(file_path, "/"))
		return tpd_seterr(err, TPD_ERR_INVAL, "identity watch: \"%s\" is not a file path",
		                  file_path ? file_path : "");
	w = tpd_new(tpd_idwatch);
	w->dir_wd = w->file_wd = -1;
	w->path = xstrdup(file_path);
	slash = strrchr(file_path, '/');
	if (!slash) {
		w->dir = xstrdup(".");
		w->base = xstrdup(file_path);
	} else {
		w->dir = slash == file_path ? xstrdup("/") : xstrndup(file_path, (size_t)(slash - file_path));
		w->base = xstrdup(slash + 1);
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		rc = tpd_seterr(err, TPD_ERR_IO, "identity watch: inotify_init1: %s", strerror(errno));
		goto out;
	}
	w->dir_wd = inotify_add_watch(w->fd, w->dir, DIR_MASK);
	if (w->dir_wd < 0) {
		rc = tpd_seterr(err, TPD_ERR_IO, "cannot watch directory %s of identity %s: %s", w->dir,
		                file_path, strerror(errno));
		goto out;
	}
	w->file_wd = inotify_add_watch(w->fd, w->path, FILE_MASK); /* may not exist yet: -1 */
out:
	if (rc) {
		tpd_idwatch_free(w);
		w = NULL;
	}
	*out = w;
	return rc;
}

int tpd_idwatch_fd(tpd_idwatch *w)
{
	return w->fd;
}

unsigned tpd_idwatch_overflows(const tpd_idwatch *w)
{
	return w->overflows;
}

static bool names_us(const tpd_idwatch *w, const struct inotify_event *ev)
{
	return ev->len > 0 && (strcmp(ev->name, w->base) == 0 || strcmp(ev->name, "..data") == 0);
}

bool tpd_idwatch_drain(tpd_idwatch *w)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool changed = false, rearm_dir = w->dir_wd < 0, rearm_file = w->file_wd < 0;

	for (int i = 0; i < MAX_READS; i++) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			changed = rearm_dir = rearm_file = true;
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				w->overflows++;
				changed = rearm_dir = rearm_file = true;
				continue;
			}
			if (ev->wd == w->dir_wd) {
				if (ev->mask & LOST_MASK) {
					changed = rearm_dir = rearm_file = true;
					if (ev->mask & IN_IGNORED)
						w->dir_wd = -1;
				} else if (names_us(w, ev)) {
					changed = rearm_file = true;
				}
			} else if (ev->wd == w->file_wd) {
				changed = true;
				if (ev->mask & LOST_MASK) {
					rearm_file = true;
					if (ev->mask & IN_IGNORED)
						w->file_wd = -1;
				}
			}
		}
	}
	if (rearm_dir)
		rearm(w, w->dir, DIR_MASK, &w->dir_wd);
	if (rearm_file)
		rearm(w, w->path, FILE_MASK, &w->file_wd);
	return changed;
}

void tpd_idwatch_free(tpd_idwatch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w->path);
	free(w->dir);
	free(w->base);
	free(w);
}
