/* SPDX-License-Identifier: MIT */
/*
 * bench/access_bench.c - accuracy and cost of the access tracker's source
 * (PAGEMAP_SCAN write tracking, src/mech/pmscan.c, compiled in below).
 *
 *   access_bench [MiB] [hot-percent] [tick-ms] [phase-seconds]
 *
 * A child process maps MiB of anonymous memory, registers it for
 * asynchronous write-protection (UFFD_FEATURE_WP_ASYNC, the setup the
 * tracker needs), writes every page once, then loops over a hot set of
 * hot-percent of its pages chosen at random (one byte per page per pass),
 * writing them, or reading them in the "read" rows.  The parent runs three
 * phases of phase-seconds each: no tracking, tracking (one scan every
 * tick-ms), no tracking again, and prints per workload:
 *   - hot flagged:  mean fraction of hot pages a scan reported accessed;
 *   - cold flagged: mean fraction of cold pages a scan reported accessed;
 *   - scan ms:      CPU time of one scan (the tracker's thread), mean/max;
 *   - slowdown:     the child's passes/s while tracked, relative to the
 *                   mean of the two untracked phases.
 * Scans after the first are counted (the first reports every page the
 * child wrote since it started).  Also printed for comparison: the CPU
 * time of reading the child's smaps_rollup once (Referenced is per
 * mapping only, the other source considered in docs/access-tracking.md).
 */
#include "mech/pmscan.c"

#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define PAGE 4096ull

struct shared {
	_Atomic int ready;       /* child: memory set up, base published */
	_Atomic int stop;        /* parent: child may exit */
	_Atomic uint64_t passes; /* child: passes over the hot set */
	uint64_t base;
	char err[128];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The child: set up WP-async memory, then touch the hot set forever. */
static void child(struct shared *sh, const uint8_t *hot, size_t n, bool writes)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	size_t *idx = malloc(n * sizeof(*idx)), k = 0;
	char *m;
	int uffd;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		snprintf(sh->err, sizeof(sh->err), "userfaultfd with WP_ASYNC: %s", strerror(errno));
		_exit(1);
	}
	m = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || !idx) {
		snprintf(sh->err, sizeof(sh->err), "mmap %zu pages: %s", n, strerror(errno));
		_exit(1);
	}
	madvise(m, n * PAGE, MADV_NOHUGEPAGE);     /* 4 KiB pages, like USM's */
	reg.range.start = (uintptr_t)m;
	reg.range.len = n * PAGE;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		snprintf(sh->err, sizeof(sh->err), "UFFDIO_REGISTER WP: %s", strerror(errno));
		_exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		m[i * PAGE] = 1;
		if (hot[i])
			idx[k++] = i;
	}
	sh->base = (uintptr_t)m;
	atomic_store(&sh->ready, 1);
	for (uint64_t pass = 0; !atomic_load_explicit(&sh->stop, memory_order_relaxed); pass++) {
		size_t off = pass % PAGE;   /* a different cache line each pass */
		volatile char *v = m;

		if (writes)
			for (size_t i = 0; i < k; i++)
				v[idx[i] * PAGE + off] = (char)pass;
		else
			for (size_t i = 0; i < k; i++)
				(void)v[idx[i] * PAGE + off];
		atomic_fetch_add_explicit(&sh->passes, 1, memory_order_relaxed);
	}
	_exit(0);
}

struct tick {
	uint64_t base;
	uint8_t *flagged;
	size_t n;
};

static void on_written(uint64_t start, uint64_t end, void *arg)
{
	struct tick *t = arg;

	for (uint64_t a = start; a < end; a += PAGE) {
		uint64_t i = (a - t->base) / PAGE;

		if (a >= t->base && i < t->n)
			t->flagged[i] = 1;
	}
}

/* Passes per second over an untracked phase. */
static double idle_phase(struct shared *sh, double secs)
{
	uint64_t p0 = atomic_load(&sh->passes);
	double t0 = now_s();
	struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };

	nanosleep(&ts, NULL);
	return (atomic_load(&sh->passes) - p0) / (now_s() - t0);
}

static double smaps_ms(pid_t pid)
{
	char path[64], buf[4096];
	double c0 = cpu_ms();
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return cpu_ms() - c0;
}

static int run(size_t mib, unsigned hot_pct, unsigned tick_ms, double phase, bool writes)
{
	size_t n = mib * 256;
	uint8_t *hot = calloc(n, 1);
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct tick t = { .n = n, .flagged = calloc(n, 1) };
	double hot_sum = 0, cold_sum = 0, ms_sum = 0, ms_max = 0, r1, r2, rt, smaps;
	size_t nhot = 0, ticks = 0;
	char path[64];
	pid_t pid;
	int fd, status;

	if (!hot || !t.flagged || sh == MAP_FAILED) {
		fprintf(stderr, "access_bench: out of memory\n");
		return 1;
	}
	srand(42);
	for (size_t i = 0; i < n; i++)
		nhot += hot[i] = (unsigned)rand() % 100 < hot_pct;
	pid = fork();
	if (pid == 0)
		child(sh, hot, n, writes);
	while (!atomic_load(&sh->ready)) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "access_bench: child failed: %s\n", sh->err);
			return 1;
		}
		usleep(1000);
	}
	t.base = sh->base;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror(path);
		return 1;
	}

	r1 = idle_phase(sh, phase);
	{
		double t0 = now_s(), end = t0 + phase;
		uint64_t p0 = atomic_load(&sh->passes);

		for (unsigned k = 0; now_s() < end; k++) {
			double c0 = cpu_ms(), ms;
			int64_t rc;

			memset(t.flagged, 0, n);
			rc = usm_pmscan_written(fd, 0, USM_PMSCAN_TOP, on_written, &t);
			ms = cpu_ms() - c0;
			if (rc < 0) {
				fprintf(stderr, "access_bench: PAGEMAP_SCAN: %s\n", strerror((int)-rc));
				return 1;
			}
			if (k > 0) {       /* the first scan reports the set-up writes */
				size_t fh = 0, fc = 0;

				for (size_t i = 0; i < n; i++) {
					fh += t.flagged[i] && hot[i];
					fc += t.flagged[i] && !hot[i];
				}
				hot_sum += (double)fh / nhot;
				cold_sum += (double)fc / (n - nhot);
				ms_sum += ms;
				ms_max = ms > ms_max ? ms : ms_max;
				ticks++;
			}
			usleep(tick_ms * 1000);
		}
		rt = (atomic_load(&sh->passes) - p0) / (now_s() - t0);
	}
	r2 = idle_phase(sh, phase);
	smaps = smaps_ms(pid);

	atomic_store(&sh->stop, 1);
	waitpid(pid, &status, 0);
	close(fd);
	if (!ticks) {
		fprintf(stderr, "access_bench: no scan completed in %.1f s\n", phase);
		return 1;
	}
	printf("| %-6s | %5zu | %3u%% | %5u | %5zu | %6.3f | %6.4f | %6.2f / %6.2f | %6.2f | %5.1f%% |\n",
	       writes ? "write" : "read", mib, hot_pct, tick_ms, ticks,
	       hot_sum / ticks, cold_sum / ticks, ms_sum / ticks, ms_max, smaps,
	       100.0 * (1 - rt / ((r1 + r2) / 2)));
	munmap(sh, sizeof(*sh));
	free(hot);
	free(t.flagged);
	return 0;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	unsigned hot = argc > 2 ? (unsigned)atoi(argv[2]) : 10;
	unsigned tick = argc > 3 ? (unsigned)atoi(argv[3]) : 100;
	double phase = argc > 4 ? atof(argv[4]) : 3;
	int rc;

	if (!mib || hot > 100 || !tick || phase <= 0) {
		fprintf(stderr, "usage: %s [MiB > 0] [hot-percent 0-100] [tick-ms > 0] [phase-seconds > 0]\n",
			argv[0]);
		return 2;
	}
	rc = usm_pmscan_probe();
	if (rc) {
		fprintf(stderr, "access_bench: PAGEMAP_SCAN unavailable: %s\n", strerror(-rc));
		return 1;
	}
	printf("| access | MiB   | hot  | tick  | scans | hot    | cold   | scan CPU ms     | smaps  | slow-  |\n");
	printf("|        |       |      | ms    |       | flagged| flagged| mean / max      | ms     | down   |\n");
	printf("|--------|-------|------|-------|-------|--------|--------|-----------------|--------|--------|\n");
	fflush(stdout);
	rc = run(mib, hot, tick, phase, true);
	fflush(stdout);
	if (!rc)
		rc = run(mib, hot, tick, phase, false);
	return rc;
}
