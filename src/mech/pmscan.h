/* SPDX-License-Identifier: MIT */
/*
 * mech/pmscan.h - which pages of a process were written since the last
 * look, through the PAGEMAP_SCAN ioctl on /proc/<pid>/pagemap (Linux 6.7).
 *
 * The kernel reports a page as "written" when its PTE lacks the uffd-wp
 * bit.  In a mapping registered with UFFDIO_REGISTER_MODE_WP on a
 * userfaultfd that enabled UFFD_FEATURE_WP_ASYNC, the first write after a
 * write-protect clears that bit inside the kernel (a minor fault, no
 * message to anyone).  One scan with PM_SCAN_WP_MATCHING returns the
 * written pages and write-protects them again, atomically per page table,
 * so consecutive scans partition time: no write is lost between them.
 * Reads leave no trace: this is write tracking only.
 */
#ifndef USM_MECH_PMSCAN_H
#define USM_MECH_PMSCAN_H

#include <stdint.h>

/* Called for each written range [start, end) found by a scan. */
typedef void (*usm_pmscan_fn)(uint64_t start, uint64_t end, void *arg);

/*
 * Does this kernel have PAGEMAP_SCAN?  Returns 0, or -errno (-ENOTTY:
 * too old a kernel; -ENOENT: no /proc).
 */
int usm_pmscan_probe(void);

/*
 * Report the pages of [start, end) written since the previous call, in
 * mappings that allow asynchronous write-protection, and write-protect
 * them again.  fd is the process's /proc/<pid>/pagemap opened O_RDONLY.
 * Returns the number of written bytes reported, or -errno (-ESRCH: the
 * process exited).
 */
int64_t usm_pmscan_written(int fd, uint64_t start, uint64_t end,
			   usm_pmscan_fn fn, void *arg);

/* End of the range worth scanning: the top of a 47-bit user space. */
#define USM_PMSCAN_TOP 0x7ffffffff000ull

#endif /* USM_MECH_PMSCAN_H */
