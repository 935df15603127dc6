/* SPDX-License-Identifier: MIT */
/*
 * agent/pretouch.c - make system calls work on untouched memory in the
 * in-process host.
 *
 * In SIGBUS mode the kernel cannot wait for a fault it takes inside a
 * system call: read(2) into a registered page the program has not touched
 * yet fails with EFAULT.  So in inline mode the calls that write into
 * user memory are trapped as well, and before performing one the SIGSYS
 * handler reads one byte of each page of its output buffers: a user-mode
 * fault, which the SIGBUS handler resolves as usual.  At most PRETOUCH_MAX
 * bytes per buffer: a longer read then ends short at the first untouched
 * page, which programs handle, instead of mapping memory it may never use.
 */
#include "agent/agent.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define PAGE 4096ul
#define PRETOUCH_MAX (64ul << 10)

const uint32_t agent_pretouch_nrs[] = {
	SYS_read, SYS_pread64, SYS_readv, SYS_preadv, SYS_preadv2,
	SYS_recvfrom, SYS_recvmsg, SYS_epoll_wait, SYS_epoll_pwait, SYS_poll,
	SYS_ppoll, SYS_getdents64, SYS_wait4, SYS_fstat, SYS_newfstatat,
	SYS_statx, SYS_getrandom, SYS_accept4, SYS_accept, SYS_pipe2,
	SYS_socketpair, SYS_readlink,
};
const unsigned agent_pretouch_n = sizeof(agent_pretouch_nrs) / sizeof(agent_pretouch_nrs[0]);

static void touch(long addr, unsigned long len)
{
	unsigned long p, end;

	if (!addr || !len)
		return;
	if (len > PRETOUCH_MAX)
		len = PRETOUCH_MAX;
	end = (unsigned long)addr + len;
	for (p = (unsigned long)addr & ~(PAGE - 1); p < end; p += PAGE)
		(void)*(volatile const char *)p;
}

static void touch_iov(long iov, long cnt)
{
	const struct iovec *v = (const struct iovec *)iov;

	for (long i = 0; v && i < cnt && i < 64; i++)
		touch((long)v[i].iov_base, v[i].iov_len);
}

static void touch_msg(long msg)
{
	const struct msghdr *m = (const struct msghdr *)msg;

	if (!m)
		return;
	touch((long)m->msg_name, m->msg_namelen);
	touch_iov((long)m->msg_iov, (long)m->msg_iovlen);
	touch((long)m->msg_control, m->msg_controllen);
}

static void touch_addr(long addr, long lenp)
{
	if (addr && lenp)
		touch(addr, *(const volatile socklen_t *)lenp);
}

void agent_pretouch(long nr, const long *a)
{
	switch (nr) {
	case SYS_read: case SYS_pread64: case SYS_getdents64:
		touch(a[1], (unsigned long)a[2]);
		break;
	case SYS_readv: case SYS_preadv: case SYS_preadv2:
		touch_iov(a[1], a[2]);
		break;
	case SYS_recvfrom:
		touch(a[1], (unsigned long)a[2]);
		touch_addr(a[4], a[5]);
		break;
	case SYS_recvmsg:
		touch_msg(a[1]);
		break;
	case SYS_epoll_wait: case SYS_epoll_pwait:
		touch(a[1], (unsigned long)a[2] * sizeof(struct epoll_event));
		break;
	case SYS_poll: case SYS_ppoll:
		touch(a[0], (unsigned long)a[1] * sizeof(struct pollfd));
		break;
	case SYS_wait4:
		touch(a[1], sizeof(int));
		touch(a[3], 144);           /* struct rusage */
		break;
	case SYS_fstat:
		touch(a[1], 144);           /* struct stat */
		break;
	case SYS_newfstatat:
		touch(a[2], 144);
		break;
	case SYS_statx:
		touch(a[4], 256);           /* struct statx */
		break;
	case SYS_getrandom:
		touch(a[0], (unsigned long)a[1]);
		break;
	case SYS_accept: case SYS_accept4:
		touch_addr(a[1], a[2]);
		break;
	case SYS_pipe2:
		touch(a[0], 2 * sizeof(int));
		break;
	case SYS_socketpair:
		touch(a[3], 2 * sizeof(int));
		break;
	case SYS_readlink:
		touch(a[1], (unsigned long)a[2]);
		break;
	}
}
