/* SPDX-License-Identifier: MIT */
/*
 * agent/thp_pool.c - the 2 MiB page pool (see struct usm_thp_pool).
 *
 * Only the process itself can make the kernel give it a transparent huge
 * page, and UFFDIO_MOVE only moves pages within one process.  So the agent
 * keeps a few zeroed THPs ready in a staging mapping of its own (never
 * registered), and the resolver, in the daemon or in this process, moves
 * one into place when a policy maps a whole 2 MiB window: one ioctl, and
 * the page stays PMD-mapped.  The refill runs off the fault path.
 */
#include "agent/agent.h"
#include "ipc/proto.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define STACK_SIZE (128 * 1024)

static struct usm_thp_pool *pool;
static int pool_fd = -1;
static void *zeros;                /* 2 MiB read-only zeros, for fallbacks */

/* Fill one empty slot with zeroed memory, as a huge page where the
 * kernel can (MADV_HUGEPAGE on the staging mapping); false if none was
 * empty.  Both refill threads and the in-process resolver fill slots: an
 * empty slot is claimed (EMPTY -> TAKEN) before it is filled. */
static bool refill_one(void)
{
	for (uint32_t i = 0; i < pool->nslots; i++) {
		uint32_t empty = USM_SLOT_EMPTY;
		long addr = (long)(pool->base + i * USM_POOL_SLOT_SIZE);

		if (!atomic_compare_exchange_strong(&pool->state[i], &empty, USM_SLOT_TAKEN))
			continue;
		if (raw_is_error(raw_syscall6(SYS_madvise, addr, (long)USM_POOL_SLOT_SIZE,
					      MADV_POPULATE_WRITE, 0, 0, 0))) {
			atomic_store(&pool->state[i], USM_SLOT_EMPTY);
			return false;
		}
		atomic_store(&pool->state[i], USM_SLOT_READY);
		return true;
	}
	return false;
}

static bool requests_waiting(void)
{
	return atomic_load(&pool->req_tail) != atomic_load(&pool->req_head);
}

static int take_ready(void)
{
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < pool->nslots; i++) {
			uint32_t ready = USM_SLOT_READY;
			if (atomic_compare_exchange_strong(&pool->state[i], &ready, USM_SLOT_TAKEN))
				return (int)i;
		}
		refill_one();           /* none ready: make one now */
	}
	return -1;
}

/*
 * The window the program faulted in went through the kernel's 4 KiB fault
 * path (its mapping is not THP-eligible, see agent_register), which left
 * an empty page table under it, and a move onto a page table would split
 * the huge page.  MADV_DONTNEED frees an empty page table
 * (CONFIG_PT_RECLAIM); the window must be really empty, which mincore
 * checks (a fault into it meanwhile waits in the daemon for this
 * request).  The REMOVE event this sends is announced in own_remove first,
 * so that the daemon knows it for ours (usm_huge_own_remove).
 */
static void free_page_table(uint64_t dst)
{
	unsigned char vec[USM_POOL_SLOT_SIZE / 4096];
	unsigned i;

	if (raw_is_error(raw_syscall6(SYS_mincore, (long)dst, (long)USM_POOL_SLOT_SIZE,
				      (long)vec, 0, 0, 0)))
		return;
	for (size_t k = 0; k < sizeof(vec); k++)
		if (vec[k] & 1)
			return;
	for (i = 0; i < USM_POOL_OWN_REMOVES; i++) {
		uint64_t free_ = 0;
		if (atomic_compare_exchange_strong(&pool->own_remove[i], &free_, dst))
			break;
	}
	if (i == USM_POOL_OWN_REMOVES)
		return;                 /* cannot announce it: move onto the table */
	if (raw_is_error(raw_syscall6(SYS_madvise, (long)dst, (long)USM_POOL_SLOT_SIZE,
				      MADV_DONTNEED, 0, 0, 0))) {
		uint64_t mine = dst;    /* no event was sent: take it back */
		atomic_compare_exchange_strong(&pool->own_remove[i], &mine, 0);
	}
}

/*
 * -EAGAIN: an event is queued for the daemon (the REMOVE of another
 * window's page table, a munmap of the program), and the kernel refuses
 * moves and copies until the daemon has read it.  That takes
 * microseconds, so retry, yielding, for up to BUSY_NS: giving up leaves
 * a window the daemon counts as mapped to be faulted in page by page.
 */
#define BUSY_NS 20000000ll

static bool retry_busy(int rc, struct timespec *since)
{
	struct timespec now;

	if (rc != -EAGAIN)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!since->tv_sec && !since->tv_nsec)
		*since = now;
	else if ((now.tv_sec - since->tv_sec) * 1000000000ll + (now.tv_nsec - since->tv_nsec) >
		 BUSY_NS)
		return false;
	sched_yield();
	return true;
}

/* Move slot's huge page to dst; returns the bytes moved. */
static uint64_t move_slot(int slot, uint64_t dst, bool hold)
{
	uint64_t src = pool->base + slot * USM_POOL_SLOT_SIZE, moved = 0;
	struct timespec since = { 0, 0 };

	while (moved < USM_POOL_SLOT_SIZE) {
		uint64_t n = 0;
		int rc = usm_uffd_move_mode(agent.uffd, dst + moved, src + moved,
					    USM_POOL_SLOT_SIZE - moved, hold, &n);

		moved += n;
		if (!rc || !retry_busy(rc, &since))
			break;
	}
	return moved;
}

/* Zeroed 4 KiB pages over [va, end); pages populated meanwhile stay. */
static void fill_small(uint64_t va, uint64_t end)
{
	struct timespec since = { 0, 0 };

	while (va < end) {
		uint64_t n = 0;
		int rc = usm_uffd_copy_mode(agent.uffd, va, zeros, end - va,
					    UFFDIO_COPY_MODE_DONTWAKE, &n);

		va += n;
		if (!rc)
			return;
		if (rc == -EEXIST)
			va += 4096;
		else if (!retry_busy(rc, &since))
			return;
	}
}

/* Fill one 2 MiB window the daemon asked for.  Unless held, the kernel
 * wakes the faulting thread when the page lands. */
static void fill(uint64_t dst, bool hold, bool faulted)
{
	int slot = take_ready();
	uint64_t done = 0;

	if (slot >= 0) {
		if (faulted)
			free_page_table(dst);
		done = move_slot(slot, dst, hold);
		usm_pool_release_slot(pool, slot, done);
		if (done == USM_POOL_SLOT_SIZE) {
			atomic_fetch_add(&pool->moved, 1);
			return;
		}
	}
	/* The rest as zeroed 4 KiB pages: the window must be mapped, its
	 * frames are already counted. */
	atomic_fetch_add(&pool->fallback, 1);
	fill_small(dst + done, dst + USM_POOL_SLOT_SIZE);
	if (!hold)
		usm_uffd_wake(agent.uffd, dst, USM_POOL_SLOT_SIZE);
}

/*
 * Requests are served in order.  A held request (a window ahead of a
 * fault, or the fault's own window with windows ahead) is moved without
 * a wake-up; the next request that is not held wakes everything from the
 * first held one on, so the faulting thread runs once its whole stream
 * is in place instead of faulting again on each window.
 */
static void serve_requests(void)
{
	static uint64_t held_lo;
	uint64_t tail = atomic_load(&pool->req_tail);

	while (tail != atomic_load(&pool->req_head)) {
		uint64_t r = pool->req[tail % USM_POOL_REQS];
		uint64_t dst = r & ~USM_POOL_REQ_FLAGS;
		bool hold = r & USM_POOL_REQ_HOLD;

		if (atomic_load(&agent.state) == AGENT_ATTACHED)
			fill(dst, hold, r & USM_POOL_REQ_FAULTED);
		if (hold && (!held_lo || dst < held_lo))
			held_lo = dst;
		if (!hold && held_lo) {
			uint64_t lo = held_lo < dst ? held_lo : dst;
			uint64_t hi = dst + USM_POOL_SLOT_SIZE;
			usm_uffd_wake(agent.uffd, lo, hi - lo);
			held_lo = 0;
		}
		atomic_store(&pool->req_tail, ++tail);
	}
}

/*
 * The first thread serves the daemon's requests and refills; the others
 * only refill, so that zeroing huge pages uses more than one CPU.  A
 * refill is one 2 MiB clear at a time: the serving thread looks for
 * requests between two, so that a faulting thread never waits behind a
 * whole round of refills (four clears) for its own move.
 */
static void *refiller(void *arg)
{
	bool serves = arg != NULL;

	for (;;) {
		uint32_t seen = atomic_load(&pool->kick);

		if (serves)
			serve_requests();
		if (serves && requests_waiting())
			continue;
		if (refill_one())
			continue;
		syscall(SYS_futex, &pool->kick, FUTEX_WAIT, seen, NULL, NULL, 0);
	}
	return NULL;
}

static int start_refiller(bool serves)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	void *stack = raw_map(STACK_SIZE, PROT_READ | PROT_WRITE);
	int rc;

	if (!stack)
		return -ENOMEM;
	memset(stack, 0, STACK_SIZE);
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, refiller, serves ? pool : NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc)
		(void)pthread_setname_np(t, "usm-thp-refill");
	pthread_attr_destroy(&attr);
	return -rc;
}

/* A 2 MiB-aligned staging mapping of nslots slots, never registered. */
static uint64_t map_staging(uint32_t nslots)
{
	uint64_t len = nslots * USM_POOL_SLOT_SIZE;
	char *raw = raw_map(len + USM_POOL_SLOT_SIZE, PROT_READ | PROT_WRITE);
	uint64_t base;

	if (!raw)
		return 0;
	base = ((uint64_t)(uintptr_t)raw + USM_POOL_SLOT_SIZE - 1) & ~(USM_POOL_SLOT_SIZE - 1);
	raw_syscall6(SYS_madvise, (long)base, (long)len, MADV_HUGEPAGE, 0, 0, 0);
	return base;
}

int agent_pool_create(struct usm_thp_pool **out)
{
	int fd, rc;
	void *hdr;

	if (pool) {
		*out = pool;
		return pool_fd;
	}
	fd = (int)syscall(SYS_memfd_create, "usm-pool", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 4096) < 0 ||
	    (hdr = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return rc;
	}
	pool = hdr;
	pool->magic = USM_POOL_MAGIC;
	pool->nslots = USM_POOL_SLOTS;
	pool->base = map_staging(USM_POOL_SLOTS);
	zeros = raw_map(USM_POOL_SLOT_SIZE, PROT_READ);
	if (!pool->base || !zeros || (rc = start_refiller(true)) < 0) {
		munmap(hdr, 4096);
		close(fd);
		pool = NULL;
		return -ENOMEM;
	}
	/* A second refill thread: a stream of huge-page faults needs zeroing
	 * on more than one CPU to keep up with the kernel's own THP faults.
	 * Without it the pool still works, only slower. */
	(void)start_refiller(false);
	pool_fd = fd;
	*out = pool;
	return fd;
}

/* In a fork child: the slots are shared copy-on-write with the parent and
 * the refill thread did not come along.  Start without a pool. */
void agent_pool_forget(void)
{
	if (pool_fd >= 0)
		close(pool_fd);
	pool_fd = -1;
	pool = NULL;
}
