/* SPDX-License-Identifier: MIT */
/*
 * agent/pretouch.c - make system calls work on memory the in-process host
 * has not mapped yet, or has swapped out.
 *
 * In SIGBUS mode the kernel cannot wait for a fault it takes inside a
 * system call: read(2) into a registered page the program has not touched
 * yet fails with EFAULT.  So in inline mode the calls that write into
 * user memory are trapped as well, and before performing one the SIGSYS
 * handler reads one byte of each page of its output buffers: a user-mode
 * fault, which the SIGBUS handler resolves as usual.  At most PRETOUCH_MAX
 * bytes per buffer: a longer read then ends short at the first untouched
 * page, which programs handle, instead of mapping memory it may never use.
 *
 * With eviction on, a page the program did touch may be swapped out when
 * the kernel comes to it, also for reading: write(2)'s buffer, a path, the
 * arguments of execve.  So the calls that read user memory are trapped
 * too, their memory is touched the same way, and it is pinned while the
 * call runs (the in-process host moves no pinned page out).  An input
 * longer than PRETOUCH_MAX ends short the same way (a partial write);
 * execve, whose arguments are too many to list, holds eviction off
 * altogether until it returns.
 *
 * Not covered: calls outside these lists (a futex word swapped out
 * between glibc's own access and the call is one), and memory the kernel
 * reaches later on its own (io_uring, AIO, O_DIRECT buffers).
 */
#include "agent/agent.h"

#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

#define PAGE 4096ul
#define PRETOUCH_MAX (64ul << 10)
#define STRING_MAX 4096ul           /* PATH_MAX */
#define IOV_MAX_TOUCH 64
#define EXEC_ARGS_MAX 4096
#define RANGES 16

/* Calls that write into user memory (always trapped in inline mode). */
const uint32_t agent_pretouch_nrs[] = {
	SYS_read, SYS_pread64, SYS_readv, SYS_preadv, SYS_preadv2,
	SYS_recvfrom, SYS_recvmsg, SYS_epoll_wait, SYS_epoll_pwait, SYS_poll,
	SYS_ppoll, SYS_getdents64, SYS_wait4, SYS_fstat, SYS_newfstatat,
	SYS_statx, SYS_getrandom, SYS_accept4, SYS_accept, SYS_pipe2,
	SYS_socketpair, SYS_readlink,
};
const unsigned agent_pretouch_n = sizeof(agent_pretouch_nrs) / sizeof(agent_pretouch_nrs[0]);

/* Calls that only read user memory (trapped when the host evicts). */
const uint32_t agent_pretouch_in_nrs[] = {
	SYS_write, SYS_pwrite64, SYS_writev, SYS_pwritev, SYS_pwritev2,
	SYS_sendto, SYS_sendmsg, SYS_open, SYS_openat, SYS_stat, SYS_lstat,
	SYS_access, SYS_faccessat, SYS_unlink, SYS_unlinkat, SYS_mkdir, SYS_mkdirat,
	SYS_rename, SYS_renameat, SYS_renameat2, SYS_connect, SYS_bind,
	SYS_setsockopt, SYS_execve, SYS_nanosleep, SYS_clock_nanosleep,
	SYS_epoll_ctl, SYS_truncate, SYS_chdir,
};
const unsigned agent_pretouch_in_n =
	sizeof(agent_pretouch_in_nrs) / sizeof(agent_pretouch_in_nrs[0]);

/* The user memory one call uses, as far as the kernel reaches it itself. */
struct sys_mem {
	unsigned n;
	bool all;                       /* too much to list: hold eviction off */
	bool reads;                     /* the host evicts: list what is read too */
	uint64_t lo[RANGES], hi[RANGES];
};

static void add(struct sys_mem *m, long addr, unsigned long len)
{
	if (!addr || !len || m->n == RANGES)
		return;
	if (len > PRETOUCH_MAX)
		len = PRETOUCH_MAX;
	m->lo[m->n] = (uint64_t)addr & ~(PAGE - 1);
	m->hi[m->n++] = ((uint64_t)addr + len + PAGE - 1) & ~(PAGE - 1);
}

static void add_in(struct sys_mem *m, long addr, unsigned long len)
{
	if (m->reads)
		add(m, addr, len);
}

/* A string the kernel reads: as far as its end (the reading brings its
 * pages in), at most STRING_MAX bytes. */
static void add_string(struct sys_mem *m, long addr)
{
	const volatile char *s = (const volatile char *)addr;
	unsigned long n = 0;

	if (!m->reads || !s)
		return;
	while (n < STRING_MAX && s[n])
		n++;
	add(m, addr, n + 1);
}

static void add_iov(struct sys_mem *m, long iov, long cnt, bool out)
{
	const struct iovec *v = (const struct iovec *)iov;

	if (cnt > IOV_MAX_TOUCH)
		cnt = IOV_MAX_TOUCH;
	add_in(m, iov, (unsigned long)cnt * sizeof(*v));
	for (long i = 0; v && i < cnt; i++) {
		if (out)
			add(m, (long)v[i].iov_base, v[i].iov_len);
		else
			add_in(m, (long)v[i].iov_base, v[i].iov_len);
	}
}

static void add_msg(struct sys_mem *m, long msg, bool out)
{
	const struct msghdr *h = (const struct msghdr *)msg;

	if (!h)
		return;
	add_in(m, msg, sizeof(*h));
	add(m, (long)h->msg_name, h->msg_namelen);
	add_iov(m, (long)h->msg_iov, (long)h->msg_iovlen, out);
	add(m, (long)h->msg_control, h->msg_controllen);
}

/* A socket address and its length, written back by the kernel. */
static void add_addr(struct sys_mem *m, long addr, long lenp)
{
	if (!addr || !lenp)
		return;
	add(m, lenp, sizeof(socklen_t));
	add(m, addr, *(const volatile socklen_t *)lenp);
}

/* execve's arguments: the vector and every string in it. */
static void add_vector(struct sys_mem *m, long vec)
{
	const char *const volatile *v = (const char *const volatile *)vec;

	for (unsigned i = 0; v && i < EXEC_ARGS_MAX && v[i]; i++)
		(void)*(volatile const char *)v[i];    /* brings each string in */
	m->all = true;
}

static void describe_writes(long nr, const long *a, struct sys_mem *m)
{
	switch (nr) {
	case SYS_read: case SYS_pread64: case SYS_getdents64:
		add(m, a[1], (unsigned long)a[2]);
		break;
	case SYS_readv: case SYS_preadv: case SYS_preadv2:
		add_iov(m, a[1], a[2], true);
		break;
	case SYS_recvfrom:
		add(m, a[1], (unsigned long)a[2]);
		add_addr(m, a[4], a[5]);
		break;
	case SYS_recvmsg:
		add_msg(m, a[1], true);
		break;
	case SYS_epoll_wait: case SYS_epoll_pwait:
		add(m, a[1], (unsigned long)a[2] * sizeof(struct epoll_event));
		break;
	case SYS_poll: case SYS_ppoll:
		add(m, a[0], (unsigned long)a[1] * sizeof(struct pollfd));
		if (nr == SYS_ppoll)
			add_in(m, a[2], sizeof(struct timespec));
		break;
	case SYS_wait4:
		add(m, a[1], sizeof(int));
		add(m, a[3], 144);          /* struct rusage */
		break;
	case SYS_fstat:
		add(m, a[1], 144);          /* struct stat */
		break;
	case SYS_newfstatat:
		add_string(m, a[1]);
		add(m, a[2], 144);
		break;
	case SYS_statx:
		add_string(m, a[1]);
		add(m, a[4], 256);          /* struct statx */
		break;
	case SYS_getrandom:
		add(m, a[0], (unsigned long)a[1]);
		break;
	case SYS_accept: case SYS_accept4:
		add_addr(m, a[1], a[2]);
		break;
	case SYS_pipe2:
		add(m, a[0], 2 * sizeof(int));
		break;
	case SYS_socketpair:
		add(m, a[3], 2 * sizeof(int));
		break;
	case SYS_readlink:
		add_string(m, a[0]);
		add(m, a[1], (unsigned long)a[2]);
		break;
	}
}

static void describe_reads(long nr, const long *a, struct sys_mem *m)
{
	switch (nr) {
	case SYS_write: case SYS_pwrite64:
		add_in(m, a[1], (unsigned long)a[2]);
		break;
	case SYS_writev: case SYS_pwritev: case SYS_pwritev2:
		add_iov(m, a[1], a[2], false);
		break;
	case SYS_sendto:
		add_in(m, a[1], (unsigned long)a[2]);
		add_in(m, a[4], (unsigned long)a[5]);
		break;
	case SYS_sendmsg:
		add_msg(m, a[1], false);
		break;
	case SYS_open: case SYS_stat: case SYS_lstat: case SYS_access: case SYS_unlink:
	case SYS_mkdir: case SYS_truncate: case SYS_chdir:
		add_string(m, a[0]);
		if (nr == SYS_stat || nr == SYS_lstat)
			add(m, a[1], 144);
		break;
	case SYS_openat: case SYS_faccessat: case SYS_unlinkat: case SYS_mkdirat:
		add_string(m, a[1]);
		break;
	case SYS_rename:
		add_string(m, a[0]);
		add_string(m, a[1]);
		break;
	case SYS_renameat: case SYS_renameat2:
		add_string(m, a[1]);
		add_string(m, a[3]);
		break;
	case SYS_connect: case SYS_bind:
		add_in(m, a[1], (unsigned long)a[2]);
		break;
	case SYS_setsockopt:
		add_in(m, a[3], (unsigned long)a[4]);
		break;
	case SYS_nanosleep:
		add_in(m, a[0], sizeof(struct timespec));
		add(m, a[1], sizeof(struct timespec));
		break;
	case SYS_clock_nanosleep:
		add_in(m, a[2], sizeof(struct timespec));
		add(m, a[3], sizeof(struct timespec));
		break;
	case SYS_epoll_ctl:
		add_in(m, a[3], sizeof(struct epoll_event));
		break;
	case SYS_execve:
		add_string(m, a[0]);
		add_vector(m, a[1]);
		add_vector(m, a[2]);
		break;
	}
}

static void touch_all(const struct sys_mem *m)
{
	for (unsigned i = 0; i < m->n; i++)
		for (uint64_t p = m->lo[i]; p < m->hi[i]; p += PAGE)
			(void)*(volatile const char *)(uintptr_t)p;
}

int agent_pretouch(long nr, const long *a)
{
	struct sys_mem m = { .reads = agent.api->evicting() };
	int pin = -1;

	describe_writes(nr, a, &m);
	describe_reads(nr, a, &m);
	/* Pinned first, then brought in: a page moved out in between comes
	 * back with the touch, and stays until the call returns. */
	if (m.reads && (m.n || m.all))
		pin = agent.api->pin(m.lo, m.hi, m.n, m.all);
	touch_all(&m);
	return pin;
}

void agent_pretouch_done(int pin)
{
	if (pin >= 0)
		agent.api->unpin(pin);
}
