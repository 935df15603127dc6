/* SPDX-License-Identifier: MIT */
/*
 * core/bloat.c - how much of what USM mapped ahead was never touched.
 *
 * Pages mapped ahead of a fault get their accessed bit cleared (MADV_COLD,
 * see map_plan; one window in USM_BLOAT_SAMPLE, the estimate is scaled);
 * the hardware sets it again on the first access.  So over
 * the process's registered mappings (smaps VmFlags "um"), Rss - Referenced
 * is the memory mapped but not touched since.  The kernel's own aging
 * clears accessed bits too, but only under memory pressure.
 */
#include "core/instance.h"
#include "mech/procfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 65536

/* Static: the in-process host samples from its monitor thread, which must
 * not allocate (the heap is registered memory). */
static char buf[CHUNK + 1];
static atomic_flag buf_lock = ATOMIC_FLAG_INIT;

struct vma_acc {
	uint64_t rss_kb, ref_kb, total;
	unsigned vmas;                   /* registered mappings seen */
};

static void line(struct vma_acc *a, const char *l)
{
	unsigned long long kb;

	if (sscanf(l, "Rss: %llu kB", &kb) == 1)
		a->rss_kb = kb;
	else if (sscanf(l, "Referenced: %llu kB", &kb) == 1)
		a->ref_kb = kb;
	else if (!strncmp(l, "VmFlags:", 8)) {
		if (strstr(l, " um")) {
			a->vmas++;
			if (a->rss_kb > a->ref_kb)
				a->total += (a->rss_kb - a->ref_kb) / 4;
		}
		a->rss_kb = a->ref_kb = 0;
	}
}

static int bloat_line(char *l, void *arg)
{
	line(arg, l);
	return 0;
}

int usm_bloat_sample(pid_t pid, uint64_t *pages)
{
	struct vma_acc a = { 0, 0, 0, 0 };
	char path[64];
	int rc;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	while (atomic_flag_test_and_set(&buf_lock))
		;
	rc = usm_proc_lines(path, buf, sizeof(buf), bloat_line, &a);
	atomic_flag_clear(&buf_lock);
	/* An exiting process has taken its mappings down: nothing to say,
	 * and the last sample stands. */
	if (!rc && !a.vmas)
		rc = -ENOENT;
	/* Only one window in USM_BLOAT_SAMPLE had its accessed bits cleared;
	 * the others read as touched.  Scale the sample up. */
	*pages = a.total * USM_BLOAT_SAMPLE;
	return rc;
}

void usm_process_track_bloat(struct usm_process *p)
{
	p->track_bloat = true;
}

uint64_t usm_process_bloat_pages(const struct usm_process *p)
{
	return usm_read(&p->bloat_pages);
}
