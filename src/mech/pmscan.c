/* SPDX-License-Identifier: MIT */
/*
 * mech/pmscan.c - PAGEMAP_SCAN write tracking (see pmscan.h).
 *
 * The installed kernel headers may predate the ioctl (Linux 6.7); its
 * ABI is defined here under #ifndef, as for the newest userfaultfd bits.
 */
#include "mech/pmscan.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef PAGEMAP_SCAN
#include <linux/types.h>

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN         _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED    (1 << 0)
#define PAGE_IS_WRITTEN      (1 << 1)
#define PAGE_IS_PRESENT      (1 << 3)
#define PM_SCAN_WP_MATCHING  (1 << 0)
#endif

/* Ranges per ioctl: the kernel stops early when the vector is full. */
#define VEC_LEN 256

int usm_pmscan_probe(void)
{
	struct pm_scan_arg a = { .size = sizeof(a) };
	static char page[1];
	int fd, rc = 0;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A report-only scan of one page of our own: no protection asked. */
	a.start = (uintptr_t)page & ~4095ull;
	a.end = a.start + 4096;
	a.category_mask = PAGE_IS_PRESENT;
	a.return_mask = PAGE_IS_PRESENT;
	if (ioctl(fd, PAGEMAP_SCAN, &a) < 0)
		rc = errno == EINVAL ? -ENOTTY : -errno;
	close(fd);
	return rc;
}

int64_t usm_pmscan_written(int fd, uint64_t start, uint64_t end,
			   usm_pmscan_fn fn, void *arg)
{
	struct page_region vec[VEC_LEN];
	int64_t bytes = 0;

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = PM_SCAN_WP_MATCHING,
			.start = start,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = VEC_LEN,
			/* Present, written, and in a mapping that can be
			 * write-protected again without a fault handler. */
			.category_mask = PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_PRESENT,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++) {
			fn(vec[i].start, vec[i].end, arg);
			bytes += vec[i].end - vec[i].start;
		}
		if (a.walk_end <= start)   /* no progress: never spin */
			break;
		start = a.walk_end;
	}
	return bytes;
}
