/* SPDX-License-Identifier: MIT */
/*
 * core/sentinel.c - write sentinels: was a page mapped ahead written since?
 *
 * A policy that maps pages ahead of faults cannot see the program touch
 * them: a mapped page faults no more.  For a process that asked for
 * sentinels (usm_process_want_sentinels), the last page of every whole
 * aligned window mapped at once (map_plan in core/fault.c) is mapped
 * write-protected (UFFDIO_COPY_MODE_WP) in a
 * mapping registered with UFFDIO_REGISTER_MODE_WP on a userfaultfd with
 * UFFD_FEATURE_WP_ASYNC: the program's first write to it clears the
 * protection inside the kernel (a minor fault, no message), and the
 * page's uffd-wp bit in /proc/<pid>/pagemap (bit 57) says which happened.
 * One pread per question, one ioctl and one minor fault per window.
 * Reads leave no trace: a page only read counts as not written.
 */
#include "core/instance.h"
#include "core/trace.h"
#include "mech/uffd.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define PM_PRESENT (1ull << 63)
#define PM_UFFD_WP (1ull << 57)

void usm_process_want_sentinels(struct usm_process *p)
{
	p->want_sentinels = true;
	atomic_store(&p->sentinels, true);
}

/* The process's pagemap, opened on first use (the in-process host reads
 * its own). */
static int pagemap_fd(struct usm_process *p)
{
	char path[64];

	if (p->pagemap_fd >= 0)
		return p->pagemap_fd;
	if (p->inline_host)
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	else
		snprintf(path, sizeof(path), "/proc/%d/pagemap", p->pid);
	p->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->pagemap_fd < 0)
		usm_log(USM_LOG_WARN, "pid %d: %s: %m; write sentinels off", p->pid, path);
	return p->pagemap_fd;
}

void usm_sentinel_close(struct usm_process *p)
{
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	p->pagemap_fd = -1;
}

int usm_page_written(struct usm_process *p, uint64_t vaddr)
{
	uint64_t ps = usm_page_size(), entry = 0;
	int fd;

	if (!atomic_load(&p->sentinels))
		return USM_EINVAL;
	if (!usm_page_present(p, vaddr))
		return USM_ENOENT;
	fd = pagemap_fd(p);
	if (fd < 0) {
		atomic_store(&p->sentinels, false);
		return USM_EINVAL;
	}
	if (pread(fd, &entry, sizeof(entry), (off_t)(vaddr / ps * sizeof(entry))) !=
	    (ssize_t)sizeof(entry))
		return USM_EINVAL;
	if (!(entry & PM_PRESENT))
		return USM_ENOENT;      /* recorded, not mapped yet (in flight) */
	return !(entry & PM_UFFD_WP);
}

uint64_t usm_sentinel_map(struct usm_process *p, uint64_t va)
{
	uint64_t ps = usm_inst->cfg.page_size, done = 0;
	int rc = usm_uffd_copy_mode(p->uffd, va, usm_inst->zero, ps,
				    UFFDIO_COPY_MODE_WP | UFFDIO_COPY_MODE_DONTWAKE, &done);

	if (rc == -EINVAL) {
		/* The mapping is not registered for write-protection (the
		 * kernel lacks WP_ASYNC): no sentinels for this process. */
		usm_log(USM_LOG_INFO, "pid %d: no write sentinels (the kernel refuses "
			"UFFDIO_COPY_MODE_WP here)", p->pid);
		atomic_store(&p->sentinels, false);
		return 0;
	}
	if (done != ps)
		return 0;               /* the window's own copy deals with it */
	usm_count(&p->c.pages_mapped, 1);
	usm_count(&usm_inst->c.pages_mapped, 1);
	usm_trace_event(p, USM_TR_FAULT, va, 1);
	return ps;
}
