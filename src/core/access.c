/* SPDX-License-Identifier: MIT */
/*
 * core/access.c - the access tracker (see access.h).
 *
 * Every tracked process keeps an open /proc/<pid>/pagemap.  A scan asks
 * the kernel, per process, for the pages written since the previous scan
 * (re-protecting them in the same pass), then flags the USM frames behind
 * those addresses USM_PG_REFERENCED.  The kernel walk runs without any
 * USM lock; inst->lock is taken per batch of at most MARK_BATCH pages, so
 * faults wait for no more than one batch.
 *
 * Nothing outlives the daemon: the write-protect bits left in the
 * processes' page tables are asynchronous (the kernel clears them on the
 * next write by itself), and there is no kernel thread to stop.
 */
#include "core/access.h"
#include "core/trace.h"
#include "core/instance.h"
#include "mech/pmscan.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Most pages flagged per hold of inst->lock. */
#define MARK_BATCH 4096
/* Written ranges remembered before they are flagged. */
#define RANGE_BATCH 256

struct tracked {
	struct usm_process *p;
	int pagemap_fd;
};

struct range {
	uint64_t start, end;
};

/* One process's scan: ranges reported by the kernel, not flagged yet. */
struct scan_ctx {
	struct usm_instance *inst;
	struct usm_process *p;
	struct range r[RANGE_BATCH];
	unsigned n;
	uint64_t written, marked;
};

static struct {
	pthread_mutex_t lock;      /* the table and the counters below */
	bool enabled;
	struct tracked *v;
	size_t n, cap;
	struct usm_access_stats st;
} acc = { .lock = PTHREAD_MUTEX_INITIALIZER };

int usm_access_init(struct usm_instance *inst, char *err, size_t errlen)
{
	int rc = usm_pmscan_probe();

	pthread_mutex_lock(&acc.lock);
	acc.enabled = rc == 0;
	pthread_mutex_unlock(&acc.lock);
	if (rc == 0)
		return 0;
	if (rc == -ENOTTY)
		snprintf(err, errlen, "access tracking disabled: the kernel has no PAGEMAP_SCAN "
			 "ioctl (Linux >= 6.7 needed); eviction runs without access information");
	else
		snprintf(err, errlen, "access tracking disabled: PAGEMAP_SCAN on /proc/self/pagemap "
			 "failed: %s", strerror(-rc));
	return -1;
}

void usm_access_fini(void)
{
	pthread_mutex_lock(&acc.lock);
	for (size_t i = 0; i < acc.n; i++)
		close(acc.v[i].pagemap_fd);
	free(acc.v);
	acc.v = NULL;
	acc.n = acc.cap = 0;
	acc.enabled = false;
	pthread_mutex_unlock(&acc.lock);
}

/* Is the process behind p still the one we mean?  Its pidfd says. */
static bool still_alive(const struct usm_process *p)
{
	if (p->pidfd < 0)
		return true;
	return syscall(SYS_pidfd_send_signal, p->pidfd, 0, NULL, 0) == 0;
}

static int open_pagemap(const struct usm_process *p)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)p->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;   /* exited, reaped */
	/* Opened before the pid could be reused: checked after the open, a
	 * live pidfd means the file belongs to p. */
	if (!still_alive(p)) {
		close(fd);
		return -ESRCH;
	}
	return fd;
}

int usm_access_track(struct usm_process *p)
{
	int fd, rc = 0;

	pthread_mutex_lock(&acc.lock);
	if (!acc.enabled) {
		pthread_mutex_unlock(&acc.lock);
		return -EOPNOTSUPP;
	}
	for (size_t i = 0; i < acc.n; i++)
		if (acc.v[i].p == p)
			goto out;               /* tracked already */
	if (acc.n == acc.cap) {
		size_t cap = acc.cap ? acc.cap * 2 : 16;
		struct tracked *v = realloc(acc.v, cap * sizeof(*v));

		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		acc.v = v;
		acc.cap = cap;
	}
	fd = open_pagemap(p);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	acc.v[acc.n++] = (struct tracked){ .p = p, .pagemap_fd = fd };
	acc.st.tracked = acc.n;
out:
	pthread_mutex_unlock(&acc.lock);
	if (rc && rc != -ESRCH)
		usm_log(USM_LOG_WARN, "pid %d: no access tracking: /proc/%d/pagemap: %s",
			(int)p->pid, (int)p->pid, strerror(-rc));
	return rc;
}

void usm_access_untrack(struct usm_process *p)
{
	pthread_mutex_lock(&acc.lock);
	for (size_t i = 0; i < acc.n; i++) {
		if (acc.v[i].p != p)
			continue;
		close(acc.v[i].pagemap_fd);
		acc.v[i] = acc.v[--acc.n];
		break;
	}
	acc.st.tracked = acc.n;
	pthread_mutex_unlock(&acc.lock);
}

/* Flag the frames of p in [start, end) that are still mapped there
 * (inst->lock held).  Returns how many were flagged. */
static uint64_t mark_range(struct usm_process *p, uint64_t psz, uint64_t start, uint64_t end)
{
	uint64_t marked = 0;

	for (uint64_t va = start & ~(psz - 1); va < end; va += psz) {
		struct usm_page *pg = usm_pagemap_get(&p->pm, va);

		/* The kernel's answer is older than the pagemap's: the frame
		 * may have been freed, evicted or reused meanwhile. */
		if (!pg || usm_pm_is_swap(pg) || pg->proc != p || pg->state != USM_PAGE_MAPPED || pg->vaddr != va)
			continue;
		pg->fw_flags |= USM_PG_REFERENCED;
		marked++;
	}
	return marked;
}

static void flush_ranges(struct scan_ctx *c)
{
	uint64_t psz = c->inst->cfg.page_size;
	unsigned i = 0;

	while (i < c->n) {
		uint64_t budget = MARK_BATCH;

		pthread_mutex_lock(&c->inst->lock);
		for (; i < c->n && budget; ) {
			struct range *r = &c->r[i];
			uint64_t pages = (r->end - r->start + psz - 1) / psz;
			uint64_t end = pages > budget ? r->start + budget * psz : r->end;

			c->marked += mark_range(c->p, psz, r->start, end);
			budget -= pages > budget ? budget : pages;
			if (end < r->end)
				r->start = end;         /* the rest in the next hold */
			else
				i++;
		}
		pthread_mutex_unlock(&c->inst->lock);
	}
	c->n = 0;
}

static void on_written(uint64_t start, uint64_t end, void *arg)
{
	struct scan_ctx *c = arg;

	c->written += (end - start) / 4096;
	usm_trace_event(c->p, USM_TR_ACCESS, start, (end - start) / 4096);
	if (c->n == RANGE_BATCH)
		flush_ranges(c);
	c->r[c->n++] = (struct range){ start, end };
}

/* One process: 0, or -errno from the kernel (it exited, most likely). */
static int scan_one(struct usm_instance *inst, struct tracked *t, struct scan_ctx *c)
{
	int64_t rc;

	c->inst = inst;
	c->p = t->p;
	c->n = 0;
	rc = usm_pmscan_written(t->pagemap_fd, 0, USM_PMSCAN_TOP, on_written, c);
	flush_ranges(c);
	return rc < 0 ? (int)rc : 0;
}

void usm_access_scan(struct usm_instance *inst)
{
	struct scan_ctx *c;
	uint64_t t0 = usm_now_ns(), dt;

	/* The batch is 6 KiB: off the reclaimer's stack. */
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	pthread_mutex_lock(&acc.lock);
	if (!acc.enabled) {
		pthread_mutex_unlock(&acc.lock);
		free(c);
		return;
	}
	for (size_t i = 0; i < acc.n; i++) {
		int rc = scan_one(inst, &acc.v[i], c);

		if (rc) {
			acc.st.errors++;
			usm_log(USM_LOG_DEBUG, "pid %d: PAGEMAP_SCAN: %s",
				(int)acc.v[i].p->pid, strerror(-rc));
		}
	}
	dt = usm_now_ns() - t0;
	acc.st.scans++;
	acc.st.pages_written += c->written;
	acc.st.pages_marked += c->marked;
	acc.st.scan_ns += dt;
	acc.st.last_scan_ns = dt;
	pthread_mutex_unlock(&acc.lock);
	free(c);
}

void usm_access_get_stats(struct usm_access_stats *out)
{
	pthread_mutex_lock(&acc.lock);
	*out = acc.st;
	out->enabled = acc.enabled;
	pthread_mutex_unlock(&acc.lock);
}
