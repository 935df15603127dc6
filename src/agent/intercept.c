/* SPDX-License-Identifier: MIT */
/*
 * agent/intercept.c - catch every anonymous mmap and brk the program makes,
 * including the ones glibc's malloc makes internally (which LD_PRELOAD
 * wrappers never see).
 *
 * A seccomp filter returns SECCOMP_RET_TRAP for mmap(MAP_PRIVATE |
 * MAP_ANONYMOUS) and brk when the calling instruction lies in libc's code
 * (and for the signal-mask calls, see below).
 * The SIGSYS handler performs the call with its own `syscall` instruction
 * (outside libc, so it passes the filter) and registers the new range with
 * userfaultfd before the program sees the address.  Calls from anywhere
 * else (the dynamic loader, the agent) are never trapped.
 *
 * A seccomp filter cannot be removed and survives exec.  The new image's
 * libc lands elsewhere (ASLR), so the old filter's range almost never
 * matches it; the new image's agent installs a filter for its own libc and
 * a handler that serves traps from either.
 */
#include "agent/agent.h"
#include "agent/rawsys.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <link.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define PAGE 4096ull
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))

struct text_range {
	uint64_t lo, hi;
};

static int find_libc(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct text_range *r = arg;
	const char *name = info->dlpi_name;

	(void)size;
	if (!name || !strstr(name, "/libc.so"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			r->lo = info->dlpi_addr + ph->p_vaddr;
			r->hi = r->lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

static long do_mmap(long addr, long len, long prot, long flags, long fd, long off)
{
	long ret = raw_syscall6(SYS_mmap, addr, len, prot, flags, fd, off);

	/* The filter only traps private anonymous mmaps; hugetlb and stack
	 * mappings are left to the kernel (userfaultfd would need other
	 * resolve calls for them). */
	if (!raw_is_error(ret) && !(flags & (MAP_HUGETLB | MAP_GROWSDOWN)))
		agent_register((uint64_t)ret, PAGE_UP((uint64_t)len));
	return ret;
}

static long do_brk(long addr)
{
	long old = raw_syscall6(SYS_brk, 0, 0, 0, 0, 0, 0);
	long ret = raw_syscall6(SYS_brk, addr, 0, 0, 0, 0, 0);
	uint64_t from = PAGE_UP((uint64_t)old), to = PAGE_UP((uint64_t)ret);

	/* brk never merges the new pages into a registered heap VMA (the
	 * flags differ), so each growth is a range of its own. */
	if (to > from)
		agent_register(from, to - from);
	return ret;
}

/*
 * A SIGSYS that arrives while blocked kills the process (the kernel forces
 * the default action), so SIGSYS must never be blocked: masks set through
 * libc lose it, and so do the sa_mask of handlers.  The program's own
 * SIGSYS handler is accepted but ours stays installed.
 */
#define SIGSYS_BIT (1ull << (SIGSYS - 1))

struct kernel_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static long do_sigprocmask(long how, long set, long old, long size)
{
	uint64_t m;

	if (!set || how == SIG_UNBLOCK || size != sizeof(m))
		return raw_syscall6(SYS_rt_sigprocmask, how, set, old, size, 0, 0);
	memcpy(&m, (void *)set, sizeof(m));
	m &= ~SIGSYS_BIT;
	return raw_syscall6(SYS_rt_sigprocmask, how, (long)&m, old, size, 0, 0);
}

static long do_sigaction(long sig, long act, long old, long size)
{
	struct kernel_sigaction ka;

	if (!act || size != sizeof(ka.mask))
		return raw_syscall6(SYS_rt_sigaction, sig, act, old, size, 0, 0);
	if (sig == SIGSYS)           /* keep ours; report the current one */
		return raw_syscall6(SYS_rt_sigaction, sig, 0, old, size, 0, 0);
	memcpy(&ka, (void *)act, sizeof(ka));
	ka.mask &= ~SIGSYS_BIT;
	return raw_syscall6(SYS_rt_sigaction, sig, (long)&ka, old, size, 0, 0);
}

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
	int saved_errno = errno;
	long ret;

	(void)sig;
	switch (si->si_syscall) {
	case SYS_mmap:
		ret = do_mmap(g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9]);
		break;
	case SYS_brk:
		ret = do_brk(g[REG_RDI]);
		break;
	case SYS_rt_sigprocmask:
		ret = do_sigprocmask(g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10]);
		break;
	case SYS_rt_sigaction:
		ret = do_sigaction(g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10]);
		break;
	default:
		ret = raw_syscall6(si->si_syscall, g[REG_RDI], g[REG_RSI], g[REG_RDX],
				   g[REG_R10], g[REG_R8], g[REG_R9]);
	}
	g[REG_RAX] = ret;          /* libc's wrapper turns -errno into errno */
	errno = saved_errno;
}

#define LD_ABS(off)        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, t, f)       BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JGE(k, t, f)       BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (k), (t), (f))
#define JSET(k, t, f)      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))
#define RET(v)             BPF_STMT(BPF_RET | BPF_K, (v))

#define OFF_NR     offsetof(struct seccomp_data, nr)
#define OFF_ARCH   offsetof(struct seccomp_data, arch)
#define OFF_IP_LO  offsetof(struct seccomp_data, instruction_pointer)
#define OFF_IP_HI  (OFF_IP_LO + 4)
#define OFF_ARG3   (offsetof(struct seccomp_data, args) + 3 * 8)

static int install_filter(const struct text_range *libc)
{
	uint32_t hi = (uint32_t)(libc->lo >> 32);
	enum { IPCHECK = 11, ALLOW = 17 };
#define TO(label, at) ((label) - (at) - 1)
	struct sock_filter f[] = {
		/* 0 */ LD_ABS(OFF_ARCH),
		/* 1 */ JEQ(AUDIT_ARCH_X86_64, 0, TO(ALLOW, 1)),
		/* 2 */ LD_ABS(OFF_NR),
		/* 3 */ JEQ(SYS_brk, TO(IPCHECK, 3), 0),
		/* 4 */ JEQ(SYS_rt_sigprocmask, TO(IPCHECK, 4), 0),
		/* 5 */ JEQ(SYS_rt_sigaction, TO(IPCHECK, 5), 0),
		/* 6 */ JEQ(SYS_mmap, 0, TO(ALLOW, 6)),
		/* 7 */ LD_ABS(OFF_ARG3),                 /* mmap flags */
		/* 8 */ JSET(MAP_ANONYMOUS, 0, TO(ALLOW, 8)),
		/* 9 */ JSET(MAP_SHARED, TO(ALLOW, 9), 0), /* SHARED or SHARED_VALIDATE */
		/* 10 */ JSET(MAP_HUGETLB | MAP_GROWSDOWN, TO(ALLOW, 10), 0),
		/* 11 IPCHECK: only calls made by libc's code */
		/* 11 */ LD_ABS(OFF_IP_HI),
		/* 12 */ JEQ(hi, 0, TO(ALLOW, 12)),
		/* 13 */ LD_ABS(OFF_IP_LO),
		/* 14 */ JGE((uint32_t)libc->lo, 0, TO(ALLOW, 14)),
		/* 15 */ JGE((uint32_t)libc->hi, TO(ALLOW, 15), 0),
		/* 16 */ RET(SECCOMP_RET_TRAP),
		/* 17 ALLOW */ RET(SECCOMP_RET_ALLOW),
	};
#undef TO
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	/* Without CAP_SYS_ADMIN a filter needs no_new_privs (setuid programs
	 * exec'd later then do not gain privileges). */
	if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return -errno;
	return 0;
}

int agent_intercept_install(void)
{
	struct text_range libc = { 0, 0 };
	struct sigaction sa;
	int rc;

	if (!dl_iterate_phdr(find_libc, &libc)) {
		agent_log("libc not found: only the brk heap present now is managed");
		return -ENOENT;
	}
	if ((libc.lo >> 32) != ((libc.hi - 1) >> 32)) {
		agent_log("libc's code straddles a 4 GiB boundary: mmap/brk not intercepted");
		return -ERANGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	rc = install_filter(&libc);
	if (rc)
		agent_log("seccomp filter refused (%s): new memory is not managed", strerror(-rc));
	return rc;
}
