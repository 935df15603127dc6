/* SPDX-License-Identifier: MIT */
/*
 * mech/uffd.h - the mechanism layer: the only code that talks userfaultfd.
 *
 * Everything above it (framework, daemon, agent) creates, registers and
 * resolves through these calls, so a kernel difference is handled in one
 * place.  All functions return 0 or a negative errno; none of them logs.
 */
#ifndef USM_MECH_UFFD_H
#define USM_MECH_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/userfaultfd.h>

/* Constants newer than the installed kernel headers (probed at run time). */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* Features every USM process needs: non-cooperative events for the frame
 * accounting.  Fork is handled by the agent (a fresh userfaultfd per child),
 * so UFFD_FEATURE_EVENT_FORK is deliberately not requested. */
#define USM_UFFD_REQUIRED (UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | \
			   UFFD_FEATURE_EVENT_UNMAP)
#define USM_UFFD_WANTED   (USM_UFFD_REQUIRED | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MOVE)

/*
 * Create a userfaultfd (O_CLOEXEC | O_NONBLOCK): the syscall first, then
 * /dev/userfaultfd.  Non-root callers get UFFD_USER_MODE_ONLY, which is what
 * vm.unprivileged_userfaultfd = 0 allows.  Returns the fd or -errno.
 */
int usm_uffd_create(void);

/* Which features the running kernel offers (a throw-away fd is used). */
int usm_uffd_probe(uint64_t *features);

/*
 * UFFDIO_API handshake on fd, asking for `want`.  Fails with -ENOTSUP and
 * sets *missing when a bit of `need` is not offered.
 */
int usm_uffd_api(int fd, uint64_t want, uint64_t need, uint64_t *got,
		 uint64_t *missing);

/* Human name of one feature bit (e.g. "EVENT_REMOVE"), "?" if unknown. */
const char *usm_uffd_feature_name(uint64_t bit);

int usm_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode);
int usm_uffd_unregister(int fd, uint64_t start, uint64_t len);

/*
 * UFFDIO_COPY of len bytes from src to dst.  *done gets the bytes actually
 * mapped, also on error (-EEXIST: a page at dst + *done is present;
 * -ENOENT: the mapping ends at dst + *done; -ESRCH: the process is gone;
 * -EAGAIN: a non-cooperative event (munmap, mremap, madvise) is waiting to
 * be read.  The caller must read the pending events before retrying: the
 * process's mm stays "changing" until it does, so retrying here would spin
 * forever).
 */
int usm_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len,
		  uint64_t *done);
/* The same with UFFDIO_COPY_MODE_* flags (DONTWAKE: wake with usm_uffd_wake). */
int usm_uffd_copy_mode(int fd, uint64_t dst, const void *src, uint64_t len,
		       uint64_t mode, uint64_t *done);
/* UFFDIO_ZEROPAGE: map the shared zero page; a later write is a kernel COW. */
int usm_uffd_zeropage(int fd, uint64_t dst, uint64_t len, uint64_t *done);
/* Wake threads waiting on [start, start + len). */
int usm_uffd_wake(int fd, uint64_t start, uint64_t len);

/*
 * Read up to n messages (non-blocking fd).  Returns the count, 0 when none
 * are pending, or -errno.
 */
int usm_uffd_read(int fd, struct uffd_msg *msgs, int n);

/*
 * The mapping (VMA) of process `pid` that contains addr, read through an
 * open /proc/<pid>/maps fd: the PROCMAP_QUERY ioctl where the kernel has it
 * (6.11+), else a scan of the file.  0, -ENOENT (no mapping), or -errno.
 * UFFDIO_COPY refuses a range that leaves its mapping, so windows are
 * clipped to it.
 */
int usm_vma_query(int maps_fd, uint64_t addr, uint64_t *start, uint64_t *end);

/*
 * Clear the accessed bit of [a, a + alen) and [b, b + blen) of the process
 * behind pidfd (process_madvise MADV_COLD), so that a later look at smaps'
 * Referenced tells which of those pages were touched.  Empty ranges are
 * skipped.  0 or -errno.
 */
int usm_mem_cold(int pidfd, uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);

/*
 * UFFDIO_MOVE len bytes from src to dst, both in the process behind fd
 * (dst registered, missing).  A PMD-mapped 2 MiB page stays one.  *done
 * gets the bytes moved, also on error.  0 or -errno (-EINVAL: the kernel
 * has no UFFDIO_MOVE, or it was not enabled).
 */
int usm_uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t *done);
/* The same; with dontwake the faulting threads stay asleep (usm_uffd_wake). */
int usm_uffd_move_mode(int fd, uint64_t dst, uint64_t src, uint64_t len, bool dontwake,
		       uint64_t *done);

#endif /* USM_MECH_UFFD_H */
