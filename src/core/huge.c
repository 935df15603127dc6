/* SPDX-License-Identifier: MIT */
/*
 * core/huge.c - real 2 MiB pages: usm_resolve_huge and the pool consumer.
 *
 * UFFDIO_COPY of 2 MiB always produces 4 KiB pages; UFFDIO_MOVE of a
 * PMD-mapped transparent huge page keeps it huge.  The agent keeps a few
 * such pages ready in the process (agent/thp_pool.c); here one is moved
 * into the faulting window.
 */
#include "core/instance.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"

#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HUGE (2ull << 20)

void usm_process_want_huge(struct usm_process *p)
{
	p->want_pool = true;
}

/* Is the 2 MiB window at base inside one mapping of p, and empty? */
static bool window_fits(struct usm_process *p, uint64_t base)
{
	struct usm_event probe = { .origin = p, .vaddr = base };

	if (usm_inst->cfg.page_size * USM_RESOLVE_MAX != HUGE)
		return false;
	if (!(base >= p->vma_lo && base + HUGE <= p->vma_hi) &&
	    (p->maps_fd < 0 || usm_vma_query(p->maps_fd, base, &p->vma_lo, &p->vma_hi) ||
	     base < p->vma_lo || base + HUGE > p->vma_hi))
		return false;
	return usm_window_mapped(&probe, USM_RESOLVE_MAX) == 0;
}

/* In-process host: mark the window at base busy until it is moved in;
 * false when the table is full (then it is not planned as huge). */
static bool mark_busy(struct usm_process *p, uint64_t base)
{
	size_t n = sizeof(p->huge_busy) / sizeof(p->huge_busy[0]);

	if (!p->inline_host)
		return true;
	for (size_t i = 0; i < n; i++) {
		uint64_t free_ = 0;
		if (atomic_compare_exchange_strong(&p->huge_busy[i], &free_, base))
			return true;
	}
	return false;
}

void usm_huge_done(struct usm_process *p, uint64_t base)
{
	size_t n = sizeof(p->huge_busy) / sizeof(p->huge_busy[0]);

	if (!p->inline_host)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = base;
		if (atomic_compare_exchange_strong(&p->huge_busy[i], &b, 0))
			return;
	}
}

int usm_resolve_huge(struct usm_event *ev, struct usm_page **pages)
{
	struct usm_worker *w = ev->framework;
	uint64_t base = ev->vaddr & ~(HUGE - 1);
	int rc;

	if (!window_fits(ev->origin, base) || !mark_busy(ev->origin, base))
		return USM_EINVAL;
	rc = usm_resolve(ev, base, pages, USM_RESOLVE_MAX);
	if (rc == USM_OK)
		w->plan_huge = true;
	else
		usm_huge_done(ev->origin, base);
	return rc;
}

/* Room in the daemon host's request ring for the fault and its windows
 * ahead (a full ring would turn them into 4 KiB copies). */
static bool ring_has_room(const struct usm_process *p, unsigned more)
{
	const struct usm_thp_pool *pool = p->pool;

	if (!pool || p->inline_host)
		return true;
	return atomic_load(&pool->req_head) - atomic_load(&pool->req_tail) + more + 1 <
	       USM_POOL_REQS;
}

int usm_resolve_huge_ahead(struct usm_event *ev, uint64_t base, struct usm_page **pages)
{
	struct usm_worker *w = ev->framework;
	struct usm_process *p = ev->origin;

	if (!w || ev->type != USM_EVENT_ALLOC || !w->plan_huge || w->nahead >= USM_AHEAD_MAX ||
	    (base & (HUGE - 1)) || !p->pool || !ring_has_room(p, w->nahead + 1) ||
	    !window_fits(p, base) || !mark_busy(p, base))
		return USM_EINVAL;
	if (usm_resolve_record(p, base, pages, USM_RESOLVE_MAX) != USM_OK) {
		usm_huge_done(p, base);
		return USM_EINVAL;
	}
	w->ahead[w->nahead++] = base;
	return USM_OK;
}

/* Is a move to the window holding va still to come?  Daemon host: queued
 * for the agent; in-process host: planned by another thread. */
bool usm_huge_pending(struct usm_process *p, uint64_t va)
{
	const struct usm_thp_pool *pool = p->pool;
	uint64_t base = va & ~(HUGE - 1);

	if (p->inline_host) {
		for (size_t i = 0; i < sizeof(p->huge_busy) / sizeof(p->huge_busy[0]); i++)
			if (atomic_load(&p->huge_busy[i]) == base)
				return true;
		return false;
	}
	if (!pool)
		return false;
	for (uint64_t i = atomic_load(&pool->req_tail); i != atomic_load(&pool->req_head); i++)
		if ((pool->req[i % USM_POOL_REQS] & ~USM_POOL_REQ_FLAGS) == base)
			return true;
	return false;
}

/*
 * Daemon host: is [start, end) the MADV_DONTNEED the agent made to free
 * the page table under a faulting window it fills (agent/thp_pool.c)?
 * That REMOVE event is not the program's: the window's pages are planned
 * and must stay recorded.  The agent announces each such window in
 * own_remove before the madvise; one event takes one announcement out,
 * whether the move has happened meanwhile or not.
 */
bool usm_huge_own_remove(struct usm_process *p, uint64_t start, uint64_t end)
{
	struct usm_thp_pool *pool = p->pool;

	if (!pool || p->inline_host || end - start != HUGE)
		return false;
	for (unsigned i = 0; i < USM_POOL_OWN_REMOVES; i++) {
		uint64_t want = start;
		if (atomic_compare_exchange_strong(&pool->own_remove[i], &want, 0))
			return true;
	}
	return false;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * A ready slot, or else an empty one filled right here: faulting in the
 * huge page costs what the kernel's own THP fault costs, and beats
 * falling back to 512 copied pages.  (In the process only: the slot
 * lives in its address space.)
 */
static int take_slot(struct usm_thp_pool *pool)
{
	for (uint32_t want = USM_SLOT_READY;; want = USM_SLOT_EMPTY) {
		for (uint32_t i = 0; i < pool->nslots && i < USM_POOL_SLOTS; i++) {
			uint32_t st = want;
			if (!atomic_compare_exchange_strong(&pool->state[i], &st, USM_SLOT_TAKEN))
				continue;
			if (want == USM_SLOT_READY)
				return (int)i;
			long r = raw_syscall6(SYS_madvise, (long)(pool->base + i * HUGE), (long)HUGE,
					      MADV_POPULATE_WRITE, 0, 0, 0);
			if (!raw_is_error(r))
				return (int)i;
			atomic_store(&pool->state[i], USM_SLOT_EMPTY);
			return -1;
		}
		if (want == USM_SLOT_EMPTY)
			return -1;
	}
}

/*
 * In-process host: the fault that brought us here went through the
 * kernel's 4 KiB path (the mapping is not THP-eligible, see
 * agent_register) and left an empty page table under the window, and a
 * move onto a page table would split the huge page.  MADV_DONTNEED frees
 * an empty page table (CONFIG_PT_RECLAIM); the window must be really
 * empty, which mincore checks (a fault into it meanwhile waits for us:
 * usm_huge_pending).  No userfaultfd event: the in-process host asks for
 * none.
 */
static void free_page_table(uint64_t dst)
{
	unsigned char vec[USM_RESOLVE_MAX];

	if (raw_is_error(raw_syscall6(SYS_mincore, (long)dst, (long)HUGE, (long)vec, 0, 0, 0)))
		return;
	for (unsigned i = 0; i < USM_RESOLVE_MAX; i++)
		if (vec[i] & 1)
			return;
	raw_syscall6(SYS_madvise, (long)dst, (long)HUGE, MADV_DONTNEED, 0, 0, 0);
}

/*
 * Move a ready huge page to dst.  True if the whole window is mapped; on
 * false nothing or part was moved and the caller fills the rest.
 */
/* Daemon host: the agent's thread moves the page (see struct usm_thp_pool);
 * with hold it does not wake the range (a later request will); faulted:
 * it frees the page table under dst first (agent/thp_pool.c). */
static bool delegate(struct usm_process *p, uint64_t dst, bool hold, bool faulted)
{
	struct usm_thp_pool *pool = p->pool;
	uint64_t head = atomic_load(&pool->req_head);

	if (head - atomic_load(&pool->req_tail) >= USM_POOL_REQS)
		return false;               /* queue full: fill it ourselves */
	pool->req[head % USM_POOL_REQS] = dst | (hold ? USM_POOL_REQ_HOLD : 0) |
					  (faulted ? USM_POOL_REQ_FAULTED : 0);
	atomic_store(&pool->req_head, head + 1);
	atomic_fetch_add(&pool->kick, 1);
	syscall(SYS_futex, &pool->kick, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	usm_worker_leave_cpu();
	usm_count(&p->c.huge_pages, 1);
	usm_count(&usm_inst->c.huge_pages, 1);
	return true;
}

bool usm_huge_move(struct usm_process *p, uint64_t dst, bool hold, bool faulted)
{
	struct usm_thp_pool *pool = p->pool;
	uint64_t done = 0;
	int slot, rc;

	if (pool && !p->inline_host)
		return delegate(p, dst, hold, faulted);

	if (!pool || (slot = take_slot(pool)) < 0) {
		usm_log(USM_LOG_DEBUG, "pid %d: no ready 2 MiB page (%s)", p->pid,
			pool ? "pool empty" : "no pool");
		return false;
	}
	free_page_table(dst);
	rc = usm_uffd_move(p->uffd, dst, pool->base + (uint64_t)slot * HUGE, HUGE, &done);
	usm_pool_release_slot(pool, slot, done);
	if (rc || done != HUGE) {
		usm_log(USM_LOG_DEBUG, "pid %d: UFFDIO_MOVE to 0x%llx: %s (%llu bytes moved)",
			p->pid, (unsigned long long)dst, strerror(-rc), (unsigned long long)done);
		return false;
	}
	usm_count(&p->c.huge_pages, 1);
	usm_count(&usm_inst->c.huge_pages, 1);
	return true;
}

void usm_pool_attach(struct usm_process *p, int memfd)
{
	struct usm_thp_pool *pool = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	if (pool == MAP_FAILED)
		return;
	if (pool->magic != USM_POOL_MAGIC || pool->nslots > USM_POOL_SLOTS) {
		munmap(pool, 4096);
		return;
	}
	p->pool = pool;
}

void usm_pool_detach(struct usm_process *p)
{
	if (p->pool)
		usm_log(USM_LOG_DEBUG, "pid %d: 2 MiB pool: %llu moved, %llu filled with 4 KiB pages",
			p->pid, (unsigned long long)atomic_load(&p->pool->moved),
			(unsigned long long)atomic_load(&p->pool->fallback));
	if (p->pool && !p->inline_host)
		munmap(p->pool, 4096);
	p->pool = NULL;
}
