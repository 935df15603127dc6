/* SPDX-License-Identifier: MIT */
#include "mech/uffd.h"
#include "mech/rawsys.h"

#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int uffd_syscall(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags);

	if (fd >= 0)
		return fd;
	if (errno == EPERM && !(flags & UFFD_USER_MODE_ONLY))
		return uffd_syscall(flags | UFFD_USER_MODE_ONLY);
	return -errno;
}

/* /dev/userfaultfd (5.11+) works where the syscall is restricted by
 * vm.unprivileged_userfaultfd, given access to the device node. */
static int uffd_devnode(int flags)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd, err;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	err = errno;
	close(dev);
	return fd >= 0 ? fd : -err;
}

int usm_uffd_create(void)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd;

	if (geteuid() != 0)
		flags |= UFFD_USER_MODE_ONLY;
	fd = uffd_syscall(flags);
	if (fd >= 0)
		return fd;
	int dfd = uffd_devnode(flags);
	return dfd >= 0 ? dfd : fd;
}

int usm_uffd_api(int fd, uint64_t want, uint64_t need, uint64_t *got,
		 uint64_t *missing)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };

	if (missing)
		*missing = 0;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	if (got)
		*got = api.features;
	if ((api.features & need) != need) {
		if (missing)
			*missing = need & ~api.features;
		return -ENOTSUP;
	}
	return 0;
}

int usm_uffd_probe(uint64_t *features)
{
	int fd = usm_uffd_create();
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int ret = 0;

	if (fd < 0)
		return fd;
	/* With features = 0 the kernel answers with everything it supports. */
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		ret = -errno;
	else
		*features = api.features;
	close(fd);
	return ret;
}

const char *usm_uffd_feature_name(uint64_t bit)
{
	static const char *const names[] = {
		"PAGEFAULT_FLAG_WP", "EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE",
		"MISSING_HUGETLBFS", "MISSING_SHMEM", "EVENT_UNMAP", "SIGBUS",
		"THREAD_ID", "MINOR_HUGETLBFS", "MINOR_SHMEM", "EXACT_ADDRESS",
		"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON", "WP_ASYNC", "MOVE",
	};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (bit == (1ull << i))
			return names[i];
	return "?";
}

int usm_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = mode,
	};
	return ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

int usm_uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

int usm_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len,
		  uint64_t *done)
{
	return usm_uffd_copy_mode(fd, dst, src, len, 0, done);
}

int usm_uffd_copy_mode(int fd, uint64_t dst, const void *src, uint64_t len,
		       uint64_t mode, uint64_t *done)
{
	*done = 0;
	while (*done < len) {
		struct uffdio_copy c = {
			.dst = dst + *done,
			.src = (uint64_t)(uintptr_t)src + *done,
			.len = len - *done,
			.mode = mode,
		};
		int rc = ioctl(fd, UFFDIO_COPY, &c);
		int err = errno;

		if (c.copy > 0)
			*done += (uint64_t)c.copy;
		if (rc == 0)
			continue;
		return -err;
	}
	return 0;
}

int usm_uffd_zeropage(int fd, uint64_t dst, uint64_t len, uint64_t *done)
{
	*done = 0;
	while (*done < len) {
		struct uffdio_zeropage z = {
			.range = { .start = dst + *done, .len = len - *done },
			.mode = 0,
		};
		int rc = ioctl(fd, UFFDIO_ZEROPAGE, &z);
		int err = errno;

		if (z.zeropage > 0)
			*done += (uint64_t)z.zeropage;
		if (rc == 0)
			continue;
		return -err;
	}
	return 0;
}

int usm_uffd_wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

int usm_uffd_read(int fd, struct uffd_msg *msgs, int n)
{
	ssize_t r = read(fd, msgs, sizeof(*msgs) * (size_t)n);

	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	return (int)(r / (ssize_t)sizeof(*msgs));
}

/* ---- VMA bounds ------------------------------------------------------ */

#ifndef PROCMAP_QUERY
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#endif

static int vma_scan(int fd, uint64_t addr, uint64_t *start, uint64_t *end)
{
	char buf[8192];
	size_t have = 0;
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(fd, buf + have, sizeof(buf) - 1 - have, off);
		char *line = buf, *nl;

		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOENT;
		off += n;
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(line, '\n'))) {
			unsigned long long s, e;
			if (sscanf(line, "%llx-%llx", &s, &e) == 2 && addr >= s && addr < e) {
				*start = s;
				*end = e;
				return 0;
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
}

int usm_vma_query(int maps_fd, uint64_t addr, uint64_t *start, uint64_t *end)
{
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = 0,            /* the VMA containing addr exactly */
		.query_addr = addr,
	};

	if (ioctl(maps_fd, PROCMAP_QUERY, &q) == 0) {
		*start = q.vma_start;
		*end = q.vma_end;
		return 0;
	}
	if (errno == ENOENT)
		return -ENOENT;
	return vma_scan(maps_fd, addr, start, end);
}

/* ---- access tracking ------------------------------------------------- */

int usm_mem_cold(int pidfd, uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	struct iovec iov[2];
	int n = 0;
	long r;

	if (alen)
		iov[n++] = (struct iovec){ (void *)(uintptr_t)a, alen };
	if (blen)
		iov[n++] = (struct iovec){ (void *)(uintptr_t)b, blen };
	if (!n)
		return 0;
	/* A raw syscall: in the in-process host, libc's would be trapped. */
	r = raw_syscall6(SYS_process_madvise, pidfd, (long)iov, n, MADV_COLD, 0, 0);
	return raw_is_error(r) ? (int)r : 0;
}

#ifndef UFFDIO_MOVE
struct uffdio_move {
	uint64_t dst, src, len, mode;
	int64_t move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif

#ifndef UFFDIO_MOVE_MODE_DONTWAKE
#define UFFDIO_MOVE_MODE_DONTWAKE (1ull << 0)
#endif

int usm_uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t *done)
{
	return usm_uffd_move_mode(fd, dst, src, len, false, done);
}

int usm_uffd_move_mode(int fd, uint64_t dst, uint64_t src, uint64_t len, bool dontwake,
		       uint64_t *done)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = len,
		.mode = dontwake ? UFFDIO_MOVE_MODE_DONTWAKE : 0,
	};
	int rc = ioctl(fd, UFFDIO_MOVE, &m);

	*done = m.move > 0 ? (uint64_t)m.move : 0;
	return rc < 0 ? -errno : 0;
}
