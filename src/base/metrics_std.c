/* metrics_std.c - the standard metrics every exporter has: the process collector (CPU, memory,
 * file descriptors, start time from /proc/self), build info, and the count of dropped series. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics_impl.h"
#include "tpd/util.h"

/* Reads a small /proc file into buf; returns false when it cannot. */
static bool read_small(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "re");
	size_t n;

	if (!fp)
		return false;
	n = fread(buf, 1, len - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return n > 0;
}

/* Fields of /proc/self/stat after the command name: field k (1-based, as in proc(5)) is at index
 * k - 3 of the tokens that follow the last ')'. */
static bool proc_stat_fields(char *buf, size_t len, unsigned long long *utime, unsigned long long *stime,
                             unsigned long long *starttime, unsigned long long *vsize)
{
	char *p, *save = NULL;
	int field = 3;

	if (!read_small("/proc/self/stat", buf, len))
		return false;
	p = strrchr(buf, ')');
	if (!p)
		return false;
	for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
		if (field == 14)
			*utime = strtoull(tok, NULL, 10);
		else if (field == 15)
			*stime = strtoull(tok, NULL, 10);
		else if (field == 22)
			*starttime = strtoull(tok, NULL, 10);
		else if (field == 23) {
			*vsize = strtoull(tok, NULL, 10);
			return true;
		}
	}
	return false;
}

static double boot_time(void)
{
	char buf[8192];
	const char *p;

	if (!read_small("/proc/stat", buf, sizeof(buf)))
		return 0;
	p = strstr(buf, "\nbtime ");
	return p ? strtod(p + 7, NULL) : 0;
}

static void process_collect(tpd_metrics *m, void *ud)
{
	process_state *ps = ud;
	char buf[1024];
	unsigned long long ut = 0, st = 0, start = 0, vsize = 0;
	struct rlimit rl;
	DIR *d;

	(void)m;
	if (proc_stat_fields(buf, sizeof(buf), &ut, &st, &start, &vsize)) {
		tpd_metric_set_raw(ps->cpu, (double)(ut + st) / (double)ps->clk_tck);
		tpd_metric_set_raw(ps->vsize, (double)vsize);
	}
	if (read_small("/proc/self/statm", buf, sizeof(buf))) {
		unsigned long long size = 0, resident = 0;

		if (sscanf(buf, "%llu %llu", &size, &resident) == 2)
			tpd_metric_set_raw(ps->rss, (double)resident * (double)ps->page_size);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		double n = 0;

		while (readdir(d))
			n++;
		closedir(d);
		tpd_metric_set_raw(ps->fds, n > 3 ? n - 3 : 0); /* ".", ".." and the directory's own fd */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		tpd_metric_set_raw(ps->max_fds,
		                   rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
	tpd_metric_set_raw(ps->start, ps->start_time);
}

void tpd_metrics_add_process_collector(tpd_metrics *m)
{
	process_state *ps;
	char buf[1024];
	unsigned long long ut = 0, st = 0, start = 0, vsize = 0;

	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	if (m->proc) {
		pthread_mutex_unlock(&m->mu);
		return;
	}
	ps = m->proc = tpd_new(process_state);
	pthread_mutex_unlock(&m->mu);
	ps->clk_tck = sysconf(_SC_CLK_TCK);
	if (ps->clk_tck <= 0)
		ps->clk_tck = 100;
	ps->page_size = sysconf(_SC_PAGESIZE);
	if (ps->page_size <= 0)
		ps->page_size = 4096;
	if (proc_stat_fields(buf, sizeof(buf), &ut, &st, &start, &vsize))
		ps->start_time = boot_time() + (double)start / (double)ps->clk_tck;
	else
		ps->start_time = (double)tpd_wall_ms() / 1000.0;
	ps->cpu = tpd_metrics_counter(m, "process_cpu_seconds_total",
	                              "Total user and system CPU time spent in seconds.", NULL);
	ps->rss =
	    tpd_metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
	ps->vsize =
	    tpd_metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL);
	ps->fds = tpd_metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", NULL);
	ps->max_fds =
	    tpd_metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.", NULL);
	ps->start = tpd_metrics_gauge(m, "process_start_time_seconds",
	                              "Start time of the process since unix epoch in seconds.", NULL);
	tpd_metrics_add_collector(m, process_collect, ps);
}

void tpd_metrics_set_build_info(tpd_metrics *m, const char *version, const char *commit)
{
	tpd_metric *f = tpd_metrics_gauge(
	    m, TPD_METRICS_PREFIX "build_info",
	    "A metric with a constant '1' value labelled by version and commit.", "version,commit");

	tpd_metric_set(f, 1, tpd_str_empty(version) ? "unknown" : version,
	               tpd_str_empty(commit) ? "unknown" : commit);
}

void tpd_metrics_set_start_time(tpd_metrics *m, double unix_seconds)
{
	tpd_metric *f = tpd_metrics_gauge(m, TPD_METRICS_PREFIX "start_time_seconds",
	                                  "Time the plugin started, in seconds since the Unix epoch.", NULL);

	tpd_metric_set(f, unix_seconds);
}

static void dropped_collect(tpd_metrics *m, void *ud)
{
	(void)ud;
	tpd_metric_set_raw(m->dropped_family, (double)tpd_metrics_dropped_series(m));
}

void tpd_metrics_add_standard(tpd_metrics *m, const char *version, const char *commit)
{
	tpd_metric *f;

	if (!m)
		return;
	tpd_metrics_set_build_info(m, version, commit);
	tpd_metrics_set_start_time(m, (double)(tpd_wall_ms() / 1000));
	tpd_metrics_add_process_collector(m);
	f = tpd_metrics_counter(
	    m, TPD_METRICS_PREFIX "metrics_series_dropped_total",
	    "Label combinations not recorded because their metric family was at its series limit.", NULL);
	pthread_mutex_lock(&m->mu);
	bool first = m->dropped_family == NULL;
	m->dropped_family = f;
	pthread_mutex_unlock(&m->mu);
	if (first && f)
		tpd_metrics_add_collector(m, dropped_collect, NULL);
}
