/* SPDX-License-Identifier: MIT */
/*
 * mech/rawsys.h - system calls that do not go through libc.
 *
 * The agent's seccomp filter traps mmap, brk and friends issued from libc's
 * code; calls made with this inline `syscall` instruction come from USM's
 * own code and pass.  The SIGSYS handler performs trapped calls this way,
 * and the framework maps its own memory this way, so that memory is never
 * registered with userfaultfd (the in-process host must never fault on it).
 */
#ifndef USM_MECH_RAWSYS_H
#define USM_MECH_RAWSYS_H

static inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4,
				long a5, long a6)
{
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline int raw_is_error(long ret)
{
	return ret < 0 && ret > -4096;
}

#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/* Private anonymous memory that is never registered, or NULL. */
static inline void *raw_map(unsigned long len, int prot)
{
	long r = raw_syscall6(SYS_mmap, 0, (long)len, prot,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return raw_is_error(r) ? NULL : (void *)r;
}

/*
 * Transparent huge pages for framework metadata that grows on the fault
 * path (frame descriptors, pagemap nodes): its first touch then costs one
 * 2 MiB fault per 2 MiB instead of 512 small ones, as the kernel's own
 * struct pages cost nothing at fault time.  Advice only: where the kernel
 * says no (THP off, too small), the memory still works in 4 KiB pages.
 */
static inline void raw_advise_huge(void *p, unsigned long len)
{
	raw_syscall6(SYS_madvise, (long)p, (long)len, MADV_HUGEPAGE, 0, 0, 0);
}

static inline void raw_unmap(void *p, unsigned long len)
{
	raw_syscall6(SYS_munmap, (long)p, (long)len, 0, 0, 0, 0);
}

#endif /* USM_MECH_RAWSYS_H */
