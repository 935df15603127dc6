/* SPDX-License-Identifier: MIT */
/*
 * core/access.h - which mapped frames were accessed recently, for the
 * eviction policies (usm_page_referenced).
 *
 * Source: PAGEMAP_SCAN write tracking on each process's /proc/<pid>/pagemap
 * (mech/pmscan.h).  Per 4 KiB page and exact for writes; reads are not
 * seen.  It needs the process's registered memory to be registered with
 * UFFDIO_REGISTER_MODE_WP on a userfaultfd created with
 * UFFD_FEATURE_WP_ASYNC; elsewhere a scan finds nothing.  Pages USM maps
 * are reported once after they are mapped (a fresh page is not
 * write-protected).  docs/access-tracking.md has the choice and numbers.
 *
 * Threads: track/untrack from any thread, scan from the reclaimer.  Lock
 * order: the tracker's own lock, then inst->lock; so usm_access_untrack
 * must not be called with inst->lock held.  After usm_access_untrack(p)
 * returns, no scan touches p any more.
 */
#ifndef USM_CORE_ACCESS_H
#define USM_CORE_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct usm_instance;
struct usm_process;

struct usm_access_stats {
	bool enabled;
	uint64_t tracked;        /* processes tracked now */
	uint64_t scans;          /* usm_access_scan calls that ran */
	uint64_t pages_written;  /* pages the kernel reported written */
	uint64_t pages_marked;   /* USM frames flagged USM_PG_REFERENCED */
	uint64_t errors;         /* failed process scans (e.g. exited meanwhile) */
	uint64_t scan_ns;        /* wall time in usm_access_scan, total */
	uint64_t last_scan_ns;   /* ... of the last call */
};

/*
 * Probe the kernel.  Returns 0 with the tracker enabled, or -1 with it
 * disabled and one clear sentence in err (the instance runs on without
 * access information).
 */
int usm_access_init(struct usm_instance *inst, char *err, size_t errlen);
void usm_access_fini(void);
/* Start tracking p (after its attach).  0, or -errno (logged). */
int usm_access_track(struct usm_process *p);
/* Stop tracking p (before it is freed; not under inst->lock). */
void usm_access_untrack(struct usm_process *p);
/* Learn what every tracked process wrote since the last scan and flag
 * those frames USM_PG_REFERENCED.  Takes inst->lock in short holds. */
void usm_access_scan(struct usm_instance *inst);
void usm_access_get_stats(struct usm_access_stats *out);

#endif /* USM_CORE_ACCESS_H */
