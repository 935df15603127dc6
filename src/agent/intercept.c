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
#include "mech/rawsys.h"

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

/* While the agent detaches, the in-process host still puts pages back:
 * its bookkeeping must follow the program's calls until it is done. */
static bool inline_on(void)
{
	return agent.inline_mode && agent.api &&
	       (atomic_load(&agent.state) == AGENT_ATTACHED || atomic_load(&agent.restoring));
}

/* [start, +len) is no longer mapped: the in-process host frees its frames. */
static void inline_gone(uint64_t start, uint64_t len)
{
	if (len && inline_on())
		agent.api->unmap(start, len);
}

/*
 * A call that changes what addresses hold, and the bookkeeping after it,
 * as one step for eviction: the daemon host's channel (agent/evict.c) and
 * the in-process host's layout lock (core/inline_evict.c).  In between,
 * no page is moved out or mapped in at those addresses.
 */
static int layout_begin(void)
{
	int token = agent_evict_layout_begin();

	if (inline_on())
		agent.api->layout_begin();
	return token;
}

static void layout_end(int token, uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	if (inline_on())
		agent.api->layout_end();
	agent_evict_layout_end(token, a, alen, b, blen);
}

static long do_mmap(long addr, long len, long prot, long flags, long fd, long off)
{
	long ret;
	int token = -1;

	if (flags & MAP_FIXED)           /* replaces what is there */
		token = layout_begin();
	ret = raw_syscall6(SYS_mmap, addr, len, prot, flags, fd, off);
	/* MAP_FIXED replaced whatever was there. */
	if (!raw_is_error(ret) && (flags & MAP_FIXED))
		inline_gone((uint64_t)ret, PAGE_UP((uint64_t)len));
	if (flags & MAP_FIXED)
		layout_end(token, (uint64_t)addr, PAGE_UP((uint64_t)len), 0, 0);

	/* The filter only traps private anonymous mmaps; hugetlb and stack
	 * mappings are left to the kernel (userfaultfd would need other
	 * resolve calls for them). */
	/* In inline mode thread stacks stay the kernel's: the SIGBUS frame is
	 * pushed on the faulting thread's stack, which must not be missing. */
	if (agent.inline_mode && (flags & MAP_STACK))
		return ret;
	if (!raw_is_error(ret) && !(flags & (MAP_HUGETLB | MAP_GROWSDOWN)))
		agent_register((uint64_t)ret, PAGE_UP((uint64_t)len));
	return ret;
}

static long do_brk(long addr)
{
	long old, ret;
	uint64_t from, to;
	int token = layout_begin();

	old = raw_syscall6(SYS_brk, 0, 0, 0, 0, 0, 0);
	ret = raw_syscall6(SYS_brk, addr, 0, 0, 0, 0, 0);
	from = PAGE_UP((uint64_t)old);
	to = PAGE_UP((uint64_t)ret);
	if (to < from)
		inline_gone(to, from - to);
	layout_end(token, to < from ? to : 0, to < from ? from - to : 0, 0, 0);

	/* brk never merges the new pages into a registered heap VMA (the
	 * flags differ), so each growth is a range of its own. */
	if (to > from)
		agent_register(from, to - from);
	return ret;
}

static long do_munmap(long addr, long len)
{
	int token = layout_begin();
	long ret = raw_syscall6(SYS_munmap, addr, len, 0, 0, 0, 0);

	if (!raw_is_error(ret))
		inline_gone((uint64_t)addr, PAGE_UP((uint64_t)len));
	layout_end(token, (uint64_t)addr, PAGE_UP((uint64_t)len), 0, 0);
	return ret;
}

static long do_madvise(long addr, long len, long advice)
{
	/* Advice that drops pages changes what an address holds. */
	bool drops = advice == MADV_DONTNEED || advice == MADV_FREE ||
		     advice == MADV_REMOVE || advice == 24 /* DONTNEED_LOCKED */;
	long ret;
	int token = -1;

	if (drops)
		token = layout_begin();
	ret = raw_syscall6(SYS_madvise, addr, len, advice, 0, 0, 0);
	/* These drop the pages (MADV_FREE only may, later: a fault on such
	 * a page is handled as a fresh one). */
	if (!raw_is_error(ret) && inline_on() &&
	    (advice == MADV_DONTNEED || advice == MADV_REMOVE || advice == 24 /* DONTNEED_LOCKED */))
		agent.api->remove((uint64_t)addr, PAGE_UP((uint64_t)len));
	if (drops)
		layout_end(token, (uint64_t)addr, PAGE_UP((uint64_t)len), 0, 0);
	return ret;
}

/*
 * Without UFFD_FEATURE_EVENT_REMAP a moved mapping loses its registration:
 * the host moves its records along and the new range is registered again.
 */
static long do_mremap(long old, long oldlen, long newlen, long flags, long new_)
{
	long ret;
	uint64_t o = (uint64_t)old, ol = PAGE_UP((uint64_t)oldlen), nl = PAGE_UP((uint64_t)newlen);
	int token = layout_begin();

	ret = raw_syscall6(SYS_mremap, old, oldlen, newlen, flags, new_, 0);
	if (!raw_is_error(ret) && inline_on()) {
		if (nl < ol)
			inline_gone(o + nl, ol - nl);
		/* Registered again before the layout is let go: a page of it
		 * swapped out must fault to us, not read as zero. */
		if ((uint64_t)ret != o) {
			agent.api->remap(o, nl < ol ? nl : ol, (uint64_t)ret);
			agent_register((uint64_t)ret, nl);
		}
	}
	layout_end(token, o, ol, raw_is_error(ret) ? 0 : (uint64_t)ret, nl);
	return ret;
}

/*
 * A SIGSYS that arrives while blocked kills the process (the kernel forces
 * the default action), so SIGSYS must never be blocked: masks set through
 * libc lose it, and so do the sa_mask of handlers.  The program's own
 * SIGSYS handler is accepted but ours stays installed.
 */
#define SIGSYS_BIT (1ull << (SIGSYS - 1))
#define SIGBUS_BIT (1ull << (SIGBUS - 1))

/* In inline mode SIGBUS carries our faults: the same rules apply to it. */
static uint64_t protected_bits(void)
{
	return SIGSYS_BIT | (agent.inline_mode ? SIGBUS_BIT : 0);
}

static struct {
	void *handler;
	unsigned long flags;
} app_sigbus = { SIG_DFL, 0 };

void agent_app_sigbus(void **handler, unsigned long *flags)
{
	*handler = app_sigbus.handler;
	*flags = app_sigbus.flags;
}

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
	m &= ~protected_bits();
	return raw_syscall6(SYS_rt_sigprocmask, how, (long)&m, old, size, 0, 0);
}

static long do_sigaction(long sig, long act, long old, long size)
{
	struct kernel_sigaction ka;

	if (sig == SIGBUS && agent.inline_mode && agent.api) {
		/* Ours stays installed; the program's is kept for chaining. */
		if (old) {
			struct kernel_sigaction o = { app_sigbus.handler, app_sigbus.flags, 0, 0 };
			memcpy((void *)old, &o, sizeof(o));
		}
		if (act) {
			memcpy(&ka, (void *)act, sizeof(ka));
			app_sigbus.handler = ka.handler;
			app_sigbus.flags = ka.flags;
		}
		return 0;
	}
	if (!act || size != sizeof(ka.mask))
		return raw_syscall6(SYS_rt_sigaction, sig, act, old, size, 0, 0);
	if (sig == SIGSYS)           /* keep ours; report the current one */
		return raw_syscall6(SYS_rt_sigaction, sig, 0, old, size, 0, 0);
	memcpy(&ka, (void *)act, sizeof(ka));
	ka.mask &= ~protected_bits();
	return raw_syscall6(SYS_rt_sigaction, sig, (long)&ka, old, size, 0, 0);
}

/*
 * The kernel pushes signal frames onto an alternate stack itself, and in
 * SIGBUS mode it cannot wait for a fault there: a frame landing on a
 * page the program never touched (or one swapped out) fails, and the
 * kernel kills the program with SIGSEGV.  So in the in-process host an
 * alternate stack is the kernel's, like thread stacks: its pages are
 * brought in and released from USM before the stack is set.
 */
static long do_sigaltstack(long ss, long old)
{
	if (ss && inline_on()) {
		stack_t st;
		memcpy(&st, (void *)ss, sizeof(st));
		if (!(st.ss_flags & SS_DISABLE) && st.ss_size) {
			uint64_t lo = (uint64_t)(uintptr_t)st.ss_sp & ~(PAGE - 1);
			uint64_t hi = PAGE_UP((uint64_t)(uintptr_t)st.ss_sp + st.ss_size);
			agent.api->release(lo, hi - lo);
		}
	}
	return raw_syscall6(SYS_sigaltstack, ss, old, 0, 0, 0, 0);
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
	case SYS_munmap:
		ret = do_munmap(g[REG_RDI], g[REG_RSI]);
		break;
	case SYS_madvise:
		ret = do_madvise(g[REG_RDI], g[REG_RSI], g[REG_RDX]);
		break;
	case SYS_mremap:
		ret = do_mremap(g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8]);
		break;
	case SYS_rt_sigprocmask:
		ret = do_sigprocmask(g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10]);
		break;
	case SYS_rt_sigaction:
		ret = do_sigaction(g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10]);
		break;
	case SYS_sigaltstack:
		ret = do_sigaltstack(g[REG_RDI], g[REG_RSI]);
		break;
	default: {
		long a[6] = { g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9] };

		int pin = inline_on() ? agent_pretouch(si->si_syscall, a) : -1;

		ret = raw_syscall6(si->si_syscall, a[0], a[1], a[2], a[3], a[4], a[5]);
		agent_pretouch_done(pin);
	}
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

#define MAX_FILTER 128

/* Trap `nr` when libc's code makes the call. */
static unsigned add_trap(struct sock_filter *f, unsigned n, uint32_t nr)
{
	f[n] = (struct sock_filter)JEQ(nr, 0, 0);      /* jt patched below */
	return n + 1;
}

static int install_filter(const struct text_range *libc)
{
	uint32_t hi = (uint32_t)(libc->lo >> 32);
	struct sock_filter f[MAX_FILTER];
	unsigned n = 0, first_trap, ipcheck, allow;

	f[n++] = (struct sock_filter)LD_ABS(OFF_ARCH);
	f[n++] = (struct sock_filter)JEQ(AUDIT_ARCH_X86_64, 0, 0);   /* jf: ALLOW */
	f[n++] = (struct sock_filter)LD_ABS(OFF_NR);
	first_trap = n;
	n = add_trap(f, n, SYS_brk);
	n = add_trap(f, n, SYS_rt_sigprocmask);
	n = add_trap(f, n, SYS_rt_sigaction);
	if (agent.inline_mode || agent.want_evict) {
		/* What frees or moves memory: the in-process host's accounting,
		 * and the eviction channel's ordering (agent/evict.c). */
		n = add_trap(f, n, SYS_munmap);
		n = add_trap(f, n, SYS_madvise);
		n = add_trap(f, n, SYS_mremap);
	}
	if (agent.inline_mode) {        /* what the kernel writes into (pretouch.c) */
		for (unsigned i = 0; i < agent_pretouch_n; i++)
			n = add_trap(f, n, agent_pretouch_nrs[i]);
		n = add_trap(f, n, SYS_sigaltstack);
	}
	if (agent.inline_mode && agent.api && agent.api->evicting())  /* and reads */
		for (unsigned i = 0; i < agent_pretouch_in_n; i++)
			n = add_trap(f, n, agent_pretouch_in_nrs[i]);
	/* mmap: only private anonymous, not hugetlb or stack */
	unsigned mmap_at = n;
	f[n++] = (struct sock_filter)JEQ(SYS_mmap, 0, 0);            /* jf: ALLOW */
	f[n++] = (struct sock_filter)LD_ABS(OFF_ARG3);
	f[n++] = (struct sock_filter)JSET(MAP_ANONYMOUS, 0, 0);      /* jf: ALLOW */
	f[n++] = (struct sock_filter)JSET(MAP_SHARED, 0, 0);         /* jt: ALLOW */
	f[n++] = (struct sock_filter)JSET(MAP_HUGETLB | MAP_GROWSDOWN, 0, 0); /* jt: ALLOW */
	ipcheck = n;                     /* only calls made by libc's code */
	f[n++] = (struct sock_filter)LD_ABS(OFF_IP_HI);
	f[n++] = (struct sock_filter)JEQ(hi, 0, 0);                  /* jf: ALLOW */
	f[n++] = (struct sock_filter)LD_ABS(OFF_IP_LO);
	f[n++] = (struct sock_filter)JGE((uint32_t)libc->lo, 0, 0);  /* jf: ALLOW */
	f[n++] = (struct sock_filter)JGE((uint32_t)libc->hi, 0, 0);  /* jt: ALLOW */
	f[n++] = (struct sock_filter)RET(SECCOMP_RET_TRAP);
	allow = n;
	f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
#define TO(label, at) ((uint8_t)((label) - (at) - 1))
	f[1].jf = TO(allow, 1);
	for (unsigned i = first_trap; i < mmap_at; i++)
		f[i].jt = TO(ipcheck, i);
	f[mmap_at].jf = TO(allow, mmap_at);
	f[mmap_at + 2].jf = TO(allow, mmap_at + 2);
	f[mmap_at + 3].jt = TO(allow, mmap_at + 3);
	f[mmap_at + 4].jt = TO(allow, mmap_at + 4);
	f[ipcheck + 1].jf = TO(allow, ipcheck + 1);
	f[ipcheck + 3].jf = TO(allow, ipcheck + 3);
	f[ipcheck + 4].jt = TO(allow, ipcheck + 4);
#undef TO
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };

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
