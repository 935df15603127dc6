/* SPDX-License-Identifier: MIT */
/*
 * agent/rawsys.h - system calls that do not go through libc.
 *
 * The seccomp filter traps mmap and brk issued from libc's code; calls made
 * with this inline `syscall` instruction come from the agent's own code and
 * pass, which is how the SIGSYS handler performs the trapped call itself.
 */
#ifndef USM_AGENT_RAWSYS_H
#define USM_AGENT_RAWSYS_H

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

#endif /* USM_AGENT_RAWSYS_H */
