/* Unit tests for idwatch.c: a kubelet-style secret volume rotation (`..data` symlink swapped with
 * rename, old directory removed or kept), in-place rewrites through the symlink, a plain
 * directory with in-place and rename-over replacement, unrelated files, and an inotify queue
 * overflow. Waits are poll() on the watch fd with a deadline; no sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpd/err.h"
#include "tpd/idwatch.h"
#include "tpd/util.h"

typedef struct {
	char dir[256];
	char file[300];
} fixture;

static void xwrite_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static char *at(const fixture *f, const char *name)
{
	return xasprintf("%s/%s", f->dir, name);
}

/* True as soon as the watch reports a possible change; false after ms without one. */
static bool wait_change(tpd_idwatch *w, int ms)
{
	int64_t deadline = tpd_now_ms() + ms;
	for (;;) {
		int64_t left = deadline - tpd_now_ms();
		struct pollfd p = {.fd = tpd_idwatch_fd(w), .events = POLLIN};
		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) > 0 && tpd_idwatch_drain(w))
			return true;
	}
}

/* Drains whatever is queued now (the tail of a previous step) and reports whether any drain said
 * "changed". */
static bool drain_now(tpd_idwatch *w)
{
	struct pollfd p = {.fd = tpd_idwatch_fd(w), .events = POLLIN};
	bool any = false;
	while (poll(&p, 1, 0) > 0)
		any |= tpd_idwatch_drain(w);
	return any;
}

static void assert_content(const char *path, const char *want)
{
	char *data = NULL, err[TPD_ERRLEN];
	assert_int_equal(tpd_read_file(path, 1024, &data, NULL, err), 0);
	assert_string_equal(data, want);
	free(data);
}

static int setup(void **state)
{
	fixture *f = tpd_new(fixture);
	snprintf(f->dir, sizeof(f->dir), "/tmp/tpd-idwatch-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->file, sizeof(f->file), "%s/identity", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* One kubelet AtomicWriter update: new timestamped dir, ..data_tmp symlink, rename onto ..data,
 * then (optionally) remove the previous dir. */
static void kubelet_update(const fixture *f, int gen, const char *content, bool remove_old)
{
	char name[64], *d, *file, *tmp = at(f, "..data_tmp"), *data = at(f, "..data");
	snprintf(name, sizeof(name), "..2026_11_29_09_00_%02d.000000001", gen);
	d = at(f, name);
	file = xasprintf("%s/identity", d);
	assert_int_equal(mkdir(d, 0755), 0);
	xwrite_file(file, content);
	assert_int_equal(symlink(name, tmp), 0);
	assert_int_equal(rename(tmp, data), 0);
	if (remove_old && gen > 1) {
		char old[64], *od, *ofile;
		snprintf(old, sizeof(old), "..2026_11_29_09_00_%02d.000000001", gen - 1);
		od = at(f, old);
		ofile = xasprintf("%s/identity", od);
		assert_int_equal(unlink(ofile), 0);
		assert_int_equal(rmdir(od), 0);
		free(od);
		free(ofile);
	}
	free(d);
	free(file);
	free(tmp);
	free(data);
}

static void test_kubelet_rotation(void **state)
{
	fixture *f = *state;
	char err[TPD_ERRLEN];
	tpd_idwatch *w = NULL;

	kubelet_update(f, 1, "v1", false);
	assert_int_equal(symlink("..data/identity", f->file), 0);
	assert_int_equal(tpd_idwatch_new(f->file, &w, err), TPD_ERR_OK);
	assert_false(drain_now(w));

	/* Rotation with the old dir removed (what kubelet does). */
	kubelet_update(f, 2, "v2", true);
	assert_true(wait_change(w, 5000));
	assert_content(f->file, "v2");
	drain_now(w);

	/* Rotation with the old dir kept: the file watch sees nothing, the dir watch must. */
	kubelet_update(f, 3, "v3", false);
	assert_true(wait_change(w, 5000));
	assert_content(f->file, "v3");
	drain_now(w);

	/* In-place rewrite through the symlinks (tbot writing the mounted file): the file watch
	 * must have been re-pointed at the new real file. */
	xwrite_file(f->file, "v4");
	assert_true(wait_change(w, 5000));
	drain_now(w);

	/* An unrelated file in the directory is not a change. */
	char *other = at(f, "unrelated.txt");
	xwrite_file(other, "x");
	assert_false(wait_change(w, 200));
	free(other);

	/* And the next rotation is still seen. */
	kubelet_update(f, 4, "v5", true);
	assert_true(wait_change(w, 5000));
	assert_content(f->file, "v5");
	tpd_idwatch_free(w);
}

static void test_plain_directory(void **state)
{
	fixture *f = *state;
	char err[TPD_ERRLEN], *tmp = at(f, ".identity.tmp");
	tpd_idwatch *w = NULL;

	/* The file does not exist yet when the watch starts. */
	assert_int_equal(tpd_idwatch_new(f->file, &w, err), TPD_ERR_OK);
	xwrite_file(f->file, "v1");
	assert_true(wait_change(w, 5000));
	drain_now(w);

	xwrite_file(f->file, "v2");
	assert_true(wait_change(w, 5000));
	drain_now(w);

	/* Atomic replace: write a temp file, rename it over the name. */
	xwrite_file(tmp, "v3");
	drain_now(w);
	assert_int_equal(rename(tmp, f->file), 0);
	assert_true(wait_change(w, 5000));
	assert_content(f->file, "v3");
	drain_now(w);

	/* The replaced file is watched too. */
	xwrite_file(f->file, "v4");
	assert_true(wait_change(w, 5000));
	free(tmp);
	tpd_idwatch_free(w);
}

static void test_overflow(void **state)
{
	fixture *f = *state;
	char err[TPD_ERRLEN], *a, *b, *data = NULL;
	tpd_idwatch *w = NULL;
	long max = 0;
	int fa, fb;

	if (tpd_read_file("/proc/sys/fs/inotify/max_queued_events", 64, &data, NULL, err) == 0)
		max = strtol(data, NULL, 10);
	free(data);
	if (max <= 0 || max > 1000000)
		skip();
	a = at(f, "a");
	b = at(f, "b");
	xwrite_file(f->file, "v1");
	assert_int_equal(tpd_idwatch_new(f->file, &w, err), TPD_ERR_OK);
	fa = open(a, O_WRONLY | O_CREAT, 0600);
	fb = open(b, O_WRONLY | O_CREAT, 0600);
	assert_true(fa >= 0 && fb >= 0);
	/* Alternating names defeat the kernel's merging of identical events. */
	for (long i = 0; i < max + 64; i++) {
		assert_int_equal(write(i % 2 ? fb : fa, "x", 1), 1);
	}
	close(fa);
	close(fb);
	assert_true(wait_change(w, 5000));
	drain_now(w);
	assert_true(tpd_idwatch_overflows(w) >= 1);
	assert_false(drain_now(w));

	/* Still working afterwards. */
	xwrite_file(f->file, "v2");
	assert_true(wait_change(w, 5000));
	free(a);
	free(b);
	tpd_idwatch_free(w);
}

static void test_bad_paths(void **state)
{
	char err[TPD_ERRLEN];
	tpd_idwatch *w = (tpd_idwatch *)0x1;

	(void)state;
	assert_int_equal(tpd_idwatch_new("/nonexistent-dir-tpd/identity", &w, err), TPD_ERR_IO);
	assert_null(w);
	assert_non_null(strstr(err, "/nonexistent-dir-tpd"));
	assert_int_equal(tpd_idwatch_new("", &w, err), TPD_ERR_INVAL);
	assert_int_equal(tpd_idwatch_new("/tmp/", &w, err), TPD_ERR_INVAL);
	tpd_idwatch_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_kubelet_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plain_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
	    cmocka_unit_test(test_bad_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
