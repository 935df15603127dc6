/* SPDX-License-Identifier: MIT */
/*
 * core/fault.c - turning userfaultfd messages into policy calls.
 *
 * The fast path of a fault: read the message, call the policy's usm_alloc
 * under the policy lock (it picks frames and records them with
 * usm_resolve, which also enters them in the pagemap), drop the lock, and
 * map the whole window with one UFFDIO_COPY.  Only when the kernel refuses
 * part of the window is the lock taken again, to give those frames back.
 */
#include "core/instance.h"
#include "core/trace.h"
#include "mech/uffd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MSGS_PER_READ 64

static uint64_t page_mask(void)
{
	return ~(usm_inst->cfg.page_size - 1);
}

/* ---- the policy-facing half (called under the lock) --------------- */

static uint64_t p_vma_lo(const struct usm_process *p);

/* Enter n taken frames in p's pagemap at vaddr, as mapped (lock held). */
static int record_window(struct usm_process *p, uint64_t vaddr, struct usm_page **pages,
			 unsigned n)
{
	uint64_t ps = usm_inst->cfg.page_size;
	struct usm_policy *owner = usm_instance_policy_of(p);

	for (unsigned i = 0; i < n; i++) {
		if (!pages[i] || pages[i]->state != USM_PAGE_TAKEN) {
			usm_log(USM_LOG_ERROR, "usm_resolve: page %u is %s", i,
				!pages[i] ? "NULL" : "not a taken frame");
			return USM_EINVAL;
		}
	}
	if (usm_pagemap_count(&p->pm, vaddr, n)) {
		usm_log(USM_LOG_ERROR, "usm_resolve: a page of the %u at 0x%llx is already mapped",
			n, (unsigned long long)vaddr);
		return USM_EINVAL;
	}
	if (usm_pagemap_set_run(&p->pm, vaddr, pages, n))
		return USM_ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct usm_page *pg = pages[i];

		pg->state = USM_PAGE_MAPPED;
		pg->proc = p;
		pg->vaddr = vaddr + (uint64_t)i * ps;
		pg->owner = owner;
		usm_evict_track(pg);
	}
	usm_count(&p->c.frames_in_use, n);
	usm_count(&usm_inst->c.frames_in_use, n);
	usm_peak(&p->c.frames_peak, usm_read(&p->c.frames_in_use));
	usm_peak(&usm_inst->c.frames_peak, usm_read(&usm_inst->c.frames_in_use));
	return USM_OK;
}

int usm_resolve(struct usm_event *ev, uint64_t vaddr, struct usm_page **pages,
		unsigned n)
{
	struct usm_worker *w = ev->framework;
	uint64_t ps = usm_inst->cfg.page_size;
	int rc;

	if (!w || ev->type != USM_EVENT_ALLOC || w->plan_n || n == 0 ||
	    n > USM_MAX_BATCH || (vaddr & (ps - 1)) ||
	    ev->vaddr < vaddr || ev->vaddr >= vaddr + (uint64_t)n * ps) {
		usm_log(USM_LOG_ERROR, "usm_resolve: bad request (%u pages at 0x%llx for a "
			"fault at 0x%llx)", n, (unsigned long long)vaddr,
			(unsigned long long)ev->vaddr);
		return USM_EINVAL;
	}
	rc = record_window(ev->origin, vaddr, pages, n);
	if (rc != USM_OK)
		return rc;
	memcpy(w->plan, pages, n * sizeof(*pages));
	w->plan_vaddr = vaddr;
	w->plan_n = n;
	ev->paddr = w->plan[(ev->vaddr - vaddr) / ps]->frame;
	return USM_OK;
}

/* Only usm_resolve_huge* (core/huge.c) use this. */
int usm_resolve_record(struct usm_process *p, uint64_t vaddr, struct usm_page **pages,
		       unsigned n)
{
	return record_window(p, vaddr, pages, n);
}

struct usm_page *usm_page_lookup(const struct usm_process *p, uint64_t vaddr)
{
	struct usm_page *v = usm_pagemap_get(&p->pm, vaddr & page_mask());

	return v && !usm_pm_is_swap(v) ? v : NULL;
}

/*
 * Lock held.  The page at va leaves p: a frame returns to the pool, a
 * frame in flight is left to the reclaimer (marked dropped), a swapped-out
 * page's slot is released.
 */
void usm_fault_drop_entry(struct usm_process *p, uint64_t va)
{
	struct usm_page *v = usm_pagemap_take(&p->pm, va);

	if (!v)
		return;
	if (usm_pm_is_swap(v))
		usm_swapent_drop(p, usm_pm_swap_idx(v));
	else if (v->state == USM_PAGE_EVICTING) {
		v->fw_flags |= USM_PG_DROPPED;
		usm_evict_orphan(p, v);
	} else
		usm_frame_release(v);
}

unsigned usm_fault_window(const struct usm_event *ev, unsigned want, uint64_t *start)
{
	uint64_t ps = usm_inst->cfg.page_size;
	const struct usm_pagemap *pm = &ev->origin->pm;
	uint64_t base, end, lo, hi;

	if (want < 1 || want > USM_MAX_BATCH || (want & (want - 1)))
		want = want > USM_MAX_BATCH ? USM_MAX_BATCH : 1;
	base = ev->vaddr & ~((uint64_t)want * ps - 1);
	end = base + (uint64_t)want * ps;
	/* Clip to the mapping when we know it: UFFDIO_COPY refuses a range
	 * that leaves it (map_plan learns the bounds when that happens). */
	if (ev->vaddr >= p_vma_lo(ev->origin) && ev->vaddr < ev->origin->vma_hi) {
		if (base < ev->origin->vma_lo)
			base = ev->origin->vma_lo;
		if (end > ev->origin->vma_hi)
			end = ev->origin->vma_hi;
	}
	usm_pagemap_empty_run(pm, ev->vaddr, base, end, &lo, &hi);
	*start = lo;
	return (unsigned)((hi - lo) / ps);
}

int usm_resolve_window(struct usm_event *ev, unsigned want, struct usm_list_head *list)
{
	struct usm_page *pages[USM_MAX_BATCH];
	uint64_t start;
	unsigned n = usm_fault_window(ev, want, &start);

	if (usm_frames_free() < n) {
		start = ev->vaddr;
		n = 1;
	}
	if (usm_frames_take(ev, pages, n) != USM_OK)
		return USM_ENOMEM;
	if (usm_resolve(ev, start, pages, n) != USM_OK) {
		for (unsigned i = 0; i < n; i++)
			usm_frame_put(pages[i]);
		return USM_EINVAL;
	}
	for (unsigned i = 0; list && i < n; i++)
		usm_list_add_tail(&pages[i]->list, list);
	return USM_OK;
}

/* The next run of missing pages in [va, end) of p: its start, or end. */
static uint64_t next_gap(const struct usm_process *p, uint64_t va, uint64_t end, uint64_t *run_end)
{
	uint64_t ps = usm_inst->cfg.page_size, start;

	while (va < end && usm_pagemap_get(&p->pm, va))
		va += ps;
	*run_end = va;
	if (va < end)
		usm_pagemap_empty_run(&p->pm, va, va, end, &start, run_end);
	return va;
}

int usm_resolve_fill(struct usm_event *ev, unsigned want, struct usm_list_head *list)
{
	struct usm_worker *w = ev->framework;
	struct usm_process *p = ev->origin;
	struct usm_page *pages[USM_MAX_BATCH];
	uint64_t ps = usm_inst->cfg.page_size, base, end, va, run_end;
	int rc = usm_resolve_window(ev, want, list);

	if (rc != USM_OK || w->plan_n < 1)
		return rc;
	if (want < 1 || want > USM_MAX_BATCH || (want & (want - 1)))
		return USM_OK;
	base = ev->vaddr & ~((uint64_t)want * ps - 1);
	end = base + (uint64_t)want * ps;
	if (ev->vaddr >= p->vma_lo && ev->vaddr < p->vma_hi) {
		base = base < p->vma_lo ? p->vma_lo : base;
		end = end > p->vma_hi ? p->vma_hi : end;
	}
	for (va = base; w->nextra < USM_AHEAD_MAX; va = run_end) {
		unsigned n;

		va = next_gap(p, va, end, &run_end);
		n = (unsigned)((run_end - va) / ps);
		if (!n || usm_frames_free() < n || usm_frames_take(ev, pages, n) != USM_OK)
			break;
		if (record_window(p, va, pages, n) != USM_OK) {
			for (unsigned i = 0; i < n; i++)
				usm_frame_put(pages[i]);
			break;
		}
		for (unsigned i = 0; list && i < n; i++)
			usm_list_add_tail(&pages[i]->list, list);
		w->extra[w->nextra].vaddr = va;
		w->extra[w->nextra++].n = n;
	}
	return USM_OK;
}

unsigned usm_window_mapped(const struct usm_event *ev, unsigned want)
{
	uint64_t ps = usm_inst->cfg.page_size;

	if (want < 1 || want > USM_MAX_BATCH || (want & (want - 1)))
		want = want > USM_MAX_BATCH ? USM_MAX_BATCH : 1;
	return usm_pagemap_count(&ev->origin->pm, ev->vaddr & ~((uint64_t)want * ps - 1), want);
}

/* ---- mapping a plan (no lock) -------------------------------------- */

static uint64_t p_vma_lo(const struct usm_process *p)
{
	return p->vma_lo;
}

/* Learn the bounds of the mapping holding addr; false if there is none. */
static bool learn_vma(struct usm_process *p, uint64_t addr)
{
	uint64_t lo, hi;

	if (p->maps_fd < 0 || usm_vma_query(p->maps_fd, addr, &lo, &hi))
		return false;
	p->vma_lo = lo;
	p->vma_hi = hi;
	return true;
}

/* An munmap or mremap may have changed the mapping we remember. */
static void forget_vma(struct usm_process *p, uint64_t start, uint64_t end)
{
	if (start < p->vma_hi && end > p->vma_lo)
		p->vma_lo = p->vma_hi = 0;
}

/* Frames the kernel refused go back through the policy to the pool. */
void usm_fault_unplan(struct usm_process *p, uint64_t from, uint64_t to)
{
	uint64_t ps = usm_inst->cfg.page_size;

	pthread_mutex_lock(&usm_inst->lock);
	for (uint64_t va = from; va < to; va += ps)
		usm_fault_drop_entry(p, va);
	pthread_mutex_unlock(&usm_inst->lock);
}

static void add_pending(struct usm_worker *w, struct usm_process *p, uint64_t addr,
			uint32_t flags);

/* Pages mapped ahead of the fault start "not accessed" (see core/bloat.c). */
static void cold_ahead(struct usm_process *p, uint64_t from, uint64_t to, uint64_t fault)
{
	uint64_t ps = usm_inst->cfg.page_size;

	if (fault >= from && fault < to)
		usm_mem_cold(p->pidfd, from, fault - from, fault + ps, to - fault - ps);
	else
		usm_mem_cold(p->pidfd, from, to - from, 0, 0);
}

static void count_huge_window(struct usm_process *p, uint64_t va)
{
	usm_trace_event(p, USM_TR_FAULT, va, USM_RESOLVE_MAX);
	usm_count(&p->c.pages_mapped, USM_RESOLVE_MAX);
	usm_count(&usm_inst->c.pages_mapped, USM_RESOLVE_MAX);
}

static void unplan_ahead(struct usm_worker *w, struct usm_process *p)
{
	uint64_t span = (uint64_t)USM_RESOLVE_MAX * usm_inst->cfg.page_size;

	for (unsigned i = 0; i < w->nahead; i++) {
		usm_fault_unplan(p, w->ahead[i], w->ahead[i] + span);
		usm_huge_done(p, w->ahead[i]);
	}
	w->nahead = 0;
}

/* A window ahead that cannot be had as a huge page: 4 KiB zero pages,
 * what is refused (populated meanwhile, unmapped) goes back. */
static void fill_ahead_small(struct usm_process *p, uint64_t va, uint64_t end, bool hold)
{
	uint64_t ps = usm_inst->cfg.page_size;

	while (va < end) {
		uint64_t done = 0;
		int rc = usm_uffd_copy_mode(p->uffd, va, usm_inst->zero, end - va,
					    hold ? UFFDIO_COPY_MODE_DONTWAKE : 0, &done);

		usm_count(&p->c.pages_mapped, done / ps);
		usm_count(&usm_inst->c.pages_mapped, done / ps);
		va += done;
		if (rc == 0)
			return;
		if (rc != -EEXIST) {
			usm_fault_unplan(p, va, end);
			return;
		}
		usm_fault_unplan(p, va, va + ps);
		va += ps;
	}
}

/* The other runs of a usm_resolve_fill window, after the fault's own run
 * (held and made cold like it when its bloat is being measured; [*first,
 * *last) grows to what the final wake-up must cover). */
static void map_extra(struct usm_worker *w, struct usm_process *p, bool ok, bool hold,
		      uint64_t fault, uint64_t *first, uint64_t *last)
{
	uint64_t ps = usm_inst->cfg.page_size;
	unsigned n = w->nextra;

	w->nextra = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t va = w->extra[i].vaddr, end = va + (uint64_t)w->extra[i].n * ps;

		if (!ok) {
			usm_fault_unplan(p, va, end);
			continue;
		}
		*first = va < *first ? va : *first;
		*last = end > *last ? end : *last;
		usm_trace_event(p, USM_TR_FAULT, va, w->extra[i].n);
		fill_ahead_small(p, va, end, hold);
		if (hold)
			cold_ahead(p, va, end, fault);
	}
}

/*
 * The windows the policy asked for ahead of the fault (usm_resolve_huge_
 * ahead), in order.  In the daemon host the agent moves them and the last
 * one wakes the faulting thread, held since its own window (see
 * agent/thp_pool.c); in the process, this thread maps them before it
 * returns to the program.
 */
static void map_ahead(struct usm_worker *w, struct usm_process *p, uint64_t fault_win)
{
	uint64_t span = (uint64_t)USM_RESOLVE_MAX * usm_inst->cfg.page_size;
	unsigned n = w->nahead;

	w->nahead = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t va = w->ahead[i];
		bool hold = i + 1 < n;

		if (usm_huge_move(p, va, hold, false)) {
			count_huge_window(p, va);
			usm_huge_done(p, va);
			continue;
		}
		fill_ahead_small(p, va, va + span, hold);
		usm_huge_done(p, va);
		/* The held range must still be woken (the agent only wakes it
		 * on a request that is not held). */
		if (!hold && !p->inline_host)
			usm_uffd_wake(p->uffd, fault_win, va + span - fault_win);
	}
}

/* Give the plan (the fault's run and a fill's other runs) to a copier. */
static bool hand_over(struct usm_worker *w, struct usm_process *p, uint64_t from,
		      uint64_t to, uint64_t fault)
{
	uint64_t ps = usm_inst->cfg.page_size;
	struct usm_copy_run runs[1 + USM_AHEAD_MAX] = { { from, to } };

	for (unsigned i = 0; i < w->nextra; i++)
		runs[1 + i] = (struct usm_copy_run){ w->extra[i].vaddr,
						     w->extra[i].vaddr + (uint64_t)w->extra[i].n * ps };
	if (!usm_copier_offer(p, runs, 1 + w->nextra, fault, w->fault_t0, w->fault_tid))
		return false;
	w->handed = true;
	w->nextra = 0;
	w->plan_n = 0;
	return true;
}

/* Is the plan one naturally aligned window of two or more pages? */
static bool whole_window(const struct usm_worker *w)
{
	uint64_t len = (uint64_t)w->plan_n * usm_inst->cfg.page_size;

	return w->plan_n > 1 && !w->nextra && !(w->plan_n & (w->plan_n - 1)) &&
	       !(w->plan_vaddr & (len - 1));
}

static enum usm_fault_result map_plan(struct usm_worker *w, struct usm_process *p,
				      uint64_t fault)
{
	enum usm_fault_result res = USM_FAULT_DONE;
	uint64_t ps = usm_inst->cfg.page_size;
	uint64_t cur = w->plan_vaddr, end = cur + (uint64_t)w->plan_n * ps;
	uint64_t first = cur, last = end;
	/* Measuring bloat, on one window in USM_BLOAT_SAMPLE (MADV_COLD also
	 * deactivates the pages, which is not free): the pages ahead must
	 * lose their accessed bit before the program runs again, so wake
	 * only afterwards. */
	bool hold = p->track_bloat && w->plan_n > 1 && !w->plan_huge &&
		    p->bloat_tick++ % USM_BLOAT_SAMPLE == 0;
	bool huge = false;

	if (w->plan_huge) {
		w->plan_huge = false;
		huge = true;
		if (usm_huge_move(p, cur, w->nahead > 0, true)) {
			count_huge_window(p, cur);
			w->plan_n = 0;
			usm_huge_done(p, cur);
			map_ahead(w, p, cur);
			return USM_FAULT_DONE;
		}
		/* No ready huge page: 4 KiB pages, as any window; the windows
		 * ahead are given back (nothing holds the thread for them). */
		unplan_ahead(w, p);
	}
	/* A whole aligned window mapped at once, ahead of any touch but the
	 * fault's: its last page first, as a write sentinel, unless it is
	 * the faulting page (core/sentinel.c). */
	if (atomic_load(&p->sentinels) && !huge && whole_window(w) && end - ps != fault)
		end -= usm_sentinel_map(p, end - ps);
	if (!hold && !huge && hand_over(w, p, cur, end, fault))
		return USM_FAULT_DONE;

	while (cur < end) {
		uint64_t done = 0;
		int rc = usm_uffd_copy_mode(p->uffd, cur, usm_inst->zero, end - cur,
					    hold ? UFFDIO_COPY_MODE_DONTWAKE : 0, &done);

		usm_count(&p->c.pages_mapped, done / ps);
		usm_count(&usm_inst->c.pages_mapped, done / ps);
		if (done)
			usm_trace_event(p, USM_TR_FAULT, cur, done / ps);
		if (hold && done > ps)
			cold_ahead(p, cur, cur + done, fault);
		cur += done;
		if (rc == 0)
			break;
		if (rc == -EEXIST) {
			/* Populated behind our back (e.g. before registration):
			 * not ours, skip it.  Wake in case it is the faulting
			 * page and the populating thread did not. */
			usm_count(&p->c.eexist, 1);
			usm_fault_unplan(p, cur, cur + ps);
			if (cur == fault)
				usm_uffd_wake(p->uffd, cur, ps);
			cur += ps;
		} else if (rc == -ENOENT && cur <= fault && learn_vma(p, fault) &&
			   (p->vma_lo > cur || p->vma_hi < end) && p->vma_hi > fault) {
			/* The window leaves the mapping: clip it and retry. */
			if (p->vma_lo > cur) {
				usm_fault_unplan(p, cur, p->vma_lo);
				cur = p->vma_lo;
			}
			if (p->vma_hi < end) {
				usm_fault_unplan(p, p->vma_hi, end);
				end = p->vma_hi;
			}
		} else if (rc == -EAGAIN) {
			/* An munmap/mremap/madvise event is queued behind this
			 * fault: give the frames back, read it, retry. */
			usm_fault_unplan(p, cur, end);
			res = cur > fault ? USM_FAULT_DONE : USM_FAULT_RETRY;
			break;
		} else {
			/* The mapping ends here (-ENOENT), or the process is
			 * gone (-ESRCH): nothing more can be mapped. */
			if (rc != -ENOENT && rc != -ESRCH)
				usm_log(USM_LOG_WARN, "pid %d: UFFDIO_COPY at 0x%llx: %s",
					p->pid, (unsigned long long)cur, strerror(-rc));
			usm_fault_unplan(p, cur, end);
			/* Never leave the faulting thread asleep. */
			if (cur <= fault) {
				usm_uffd_wake(p->uffd, fault, ps);
				res = USM_FAULT_FAILED;
			}
			break;
		}
	}
	if (w->nextra)
		map_extra(w, p, res == USM_FAULT_DONE, hold, fault, &first, &last);
	if (hold)
		usm_uffd_wake(p->uffd, first, last - first);
	if (huge)
		usm_huge_done(p, w->plan_vaddr);
	w->plan_n = 0;
	return res;
}

/* ---- ALLOC ---------------------------------------------------------- */

static void add_pending(struct usm_worker *w, struct usm_process *p, uint64_t addr,
			uint32_t flags)
{
	if (w->npending == w->cap_pending) {
		size_t cap = w->cap_pending ? w->cap_pending * 2 : 64;
		void *n = realloc(w->pending, cap * sizeof(*w->pending));
		if (!n) {
			/* Cannot even remember the fault: let the kernel have it
			 * rather than leave a thread hanging. */
			uint64_t done;
			usm_uffd_zeropage(p->uffd, addr, usm_inst->cfg.page_size, &done);
			return;
		}
		w->pending = n;
		w->cap_pending = cap;
	}
	w->pending[w->npending++] = (struct usm_pending){ p, addr, flags, w->fault_tid };
}

static enum usm_fault_result oom_to_kernel(struct usm_process *p, uint64_t addr)
{
	uint64_t done;
	int rc = usm_uffd_zeropage(p->uffd, addr, usm_inst->cfg.page_size, &done);

	if (rc == -EAGAIN)
		return USM_FAULT_RETRY;
	if (rc == -EEXIST)
		usm_uffd_wake(p->uffd, addr, usm_inst->cfg.page_size);
	else if (rc)
		return USM_FAULT_FAILED;
	usm_count(&p->c.kernel_pages, 1);
	usm_count(&usm_inst->c.kernel_pages, 1);
	return USM_FAULT_DONE;
}

/* Call the policy; returns what to do if nothing was planned. */
static enum usm_oom_action plan_fault(struct usm_worker *w, struct usm_event *ev)
{
	struct usm_process *p = ev->origin;
	struct usm_policy *pol = usm_instance_policy_of(p);
	struct usm_page *v = usm_pagemap_get(&p->pm, ev->vaddr);
	int rc;

	/* Swapped out or in flight since we looked: retry as such. */
	if (v && (usm_pm_is_swap(v) || v->state == USM_PAGE_EVICTING))
		return USM_OOM_WAIT;
	/* Mapped entries are handled before (fault_on_mapped); anything
	 * else left at the address is released and the fault handled like
	 * any other. */
	usm_fault_drop_entry(p, ev->vaddr);
	w->plan_n = 0;
	w->plan_huge = false;
	w->nahead = 0;
	w->nextra = 0;
	rc = pol->ops->usm_alloc(ev);
	if (rc == USM_OK && w->plan_n)
		return USM_OOM_RETRY;
	if (rc == USM_YIELD)
		return USM_OOM_WAIT;
	if (rc != USM_ENOMEM) {
		usm_log(USM_LOG_ERROR, "policy %s: usm_alloc returned %d without "
			"resolving 0x%llx; handing the page to the kernel",
			pol->name, rc, (unsigned long long)ev->vaddr);
		return USM_OOM_KERNEL;
	}
	/* With swap devices, a full budget is the reclaimer's job until it
	 * finds nothing more to evict; only then does the OOM policy act. */
	if (usm_evict_enabled(usm_inst) && !atomic_load(&usm_inst->reclaim_stuck)) {
		usm_reclaim_kick(usm_inst);
		return USM_OOM_WAIT;
	}
	return usm_fault_oom(ev);
}

enum usm_oom_action usm_fault_oom(struct usm_event *ev)
{
	struct usm_process *p = ev->origin;
	struct usm_policy *pol = usm_instance_policy_of(p);

	usm_count(&p->c.oom_events, 1);
	usm_count(&usm_inst->c.oom_events, 1);
	return pol->ops->usm_oom ? pol->ops->usm_oom(ev) : usm_oom_default(ev);
}

/*
 * A fault at an address the pagemap holds as mapped.  Either the message
 * is stale (another thread's window landed after the kernel queued it),
 * or the kernel dropped the page (MADV_FREE reclaimed it).  One zero page
 * tells which: EEXIST, it is there; mapped, it had been dropped and reads
 * zero now, as it should.  The entry stays either way.
 */
static enum usm_fault_result fault_on_mapped(struct usm_process *p, uint64_t va)
{
	uint64_t ps = usm_inst->cfg.page_size, done = 0;
	int rc = usm_uffd_copy(p->uffd, va, usm_inst->zero, ps, &done);

	if (rc == -EAGAIN)
		return USM_FAULT_RETRY;
	if (rc == 0) {
		usm_count(&p->c.pages_mapped, 1);
		usm_count(&usm_inst->c.pages_mapped, 1);
		return USM_FAULT_DONE;
	}
	usm_uffd_wake(p->uffd, va, ps);
	return rc == -EEXIST ? USM_FAULT_DONE : USM_FAULT_FAILED;
}

/*
 * Is thread tid of p waiting for or holding its agent's eviction lock?
 * Then the frames in flight to that agent wait for this fault: it must
 * not wait for them (see usm_evict_chan.layout_tid).
 */
static bool holds_up_eviction(const struct usm_process *p, uint32_t tid)
{
	if (!tid || !p->chan)
		return false;
	for (unsigned i = 0; i < USM_LAYOUT_TIDS; i++)
		if (atomic_load_explicit(&p->chan->layout_tid[i], memory_order_relaxed) ==
		    (int32_t)tid)
			return true;
	return false;
}

static enum usm_fault_result resolve(struct usm_worker *w, struct usm_process *p,
				     struct usm_event *e);

enum usm_fault_result usm_fault_resolve(struct usm_worker *w, struct usm_process *p,
					uint64_t addr, uint32_t flags, uint32_t tid)
{
	struct usm_event ev = {
		.type = USM_EVENT_ALLOC, .origin = p, .vaddr = addr & page_mask(),
		.length = usm_inst->cfg.page_size, .flags = flags, .tid = tid,
		.framework = w,
	};
	bool reserve = holds_up_eviction(p, tid);
	enum usm_fault_result r;

	/* At its own limit: the reclaimer evicts some of its pages first. */
	if (!reserve && p->limit_frames && p->chan && !p->limit_stuck &&
	    usm_read(&p->c.frames_in_use) >= p->limit_frames) {
		usm_reclaim_kick(usm_inst);
		return USM_FAULT_RETRY;
	}
	usm_frames_reserve(reserve);
	r = resolve(w, p, &ev);
	usm_frames_reserve(false);
	return r;
}

static enum usm_fault_result resolve(struct usm_worker *w, struct usm_process *p,
				     struct usm_event *e)
{
	struct usm_event ev = *e;
	enum usm_oom_action act;
	struct usm_page *v;

	pthread_mutex_lock(&usm_inst->lock);
	if (p->ninflight && usm_evict_busy_at(p, ev.vaddr)) {
		pthread_mutex_unlock(&usm_inst->lock);
		return USM_FAULT_RETRY;
	}
	v = usm_pagemap_get(&p->pm, ev.vaddr);
	if (v && !usm_pm_is_swap(v) && v->state == USM_PAGE_MAPPED) {
		/* Planned by another thread of an in-process host and maybe
		 * not copied yet: a probe now would map a zero page under
		 * its copy, which then fails with EEXIST and gives back a
		 * frame that is in use.  Wait for it. */
		bool pending = usm_huge_pending(p, ev.vaddr) ||
			       (p->inline_host && usm_inline_mapping(w, ev.vaddr));

		pthread_mutex_unlock(&usm_inst->lock);
		if (pending)
			return USM_FAULT_RETRY;
		usm_copier_drain(p);        /* a copier may be mapping it */
		return fault_on_mapped(p, ev.vaddr);
	}
	if (p->chan && v && (usm_pm_is_swap(v) || v->state == USM_PAGE_EVICTING)) {
		pthread_mutex_unlock(&usm_inst->lock);
		int r = usm_swapin(w, p, &ev);
		if (r >= 0)
			return (enum usm_fault_result)r;
		pthread_mutex_lock(&usm_inst->lock);
	}
	act = plan_fault(w, &ev);
	if (p->inline_host && w->plan_n)
		atomic_store(&w->mapping_region, usm_region_of(ev.vaddr));
	pthread_mutex_unlock(&usm_inst->lock);

	if (w->plan_n) {
		enum usm_fault_result r = map_plan(w, p, ev.vaddr);

		atomic_store(&w->mapping_region, 0);
		return r;
	}
	if (act == USM_OOM_KERNEL)
		return oom_to_kernel(p, ev.vaddr);
	return USM_FAULT_RETRY;
}

void usm_fault_record_latency(struct usm_process *p, uint64_t t0)
{
	uint64_t dt = usm_now_ns() - t0;

	usm_hist_add(&p->lat, dt);
	usm_hist_add(&usm_inst->lat, dt);
}

static void handle_alloc(struct usm_worker *w, struct usm_process *p, uint64_t addr,
			 uint32_t flags, uint32_t tid, bool retry)
{
	uint64_t t0 = usm_now_ns();

	w->fault_t0 = t0;
	w->fault_tid = tid;
	w->handed = false;
	if (!retry)
		usm_place_note(w, p, tid, t0);
	if (usm_fault_resolve(w, p, addr, flags, tid) == USM_FAULT_RETRY) {
		add_pending(w, p, addr & page_mask(), flags);
		return;
	}
	if (!retry && !w->handed)           /* a copier records its own */
		usm_fault_record_latency(p, t0);
}

void usm_retry_pending(struct usm_worker *w)
{
	size_t n = w->npending;
	struct usm_pending *batch;

	if (!n)
		return;
	batch = malloc(n * sizeof(*batch));
	if (!batch)
		return;
	memcpy(batch, w->pending, n * sizeof(*batch));
	w->npending = 0;
	for (size_t i = 0; i < n; i++)
		if (!batch[i].proc->dead)
			handle_alloc(w, batch[i].proc, batch[i].addr, batch[i].flags, batch[i].tid,
				     true);
	free(batch);
}

void usm_drop_pending(struct usm_worker *w, struct usm_process *p)
{
	size_t j = 0;

	for (size_t i = 0; i < w->npending; i++)
		if (w->pending[i].proc != p)
			w->pending[j++] = w->pending[i];
	w->npending = j;
}

/* ---- FREE and VIRT_AS_CHANGE ---------------------------------------- */

static void release_cb(uint64_t va, struct usm_page *pg, void *arg)
{
	struct usm_process *p = arg;

	if (!usm_pm_is_swap(pg)) {
		usm_count(&p->c.pages_freed, 1);
		usm_count(&usm_inst->c.pages_freed, 1);
	}
	usm_fault_drop_entry(p, va);
}

void usm_fault_free(struct usm_worker *w, struct usm_process *p, uint64_t start,
		    uint64_t end, bool unmap)
{
	struct usm_event ev = {
		.type = USM_EVENT_FREE, .origin = p, .vaddr = start,
		.length = end - start, .flags = unmap ? USM_FREE_UNMAP : 0,
		.framework = w,
	};
	struct usm_policy *pol;

	if (!unmap && p->chan && p->chan->marker == start) {
		/* The agent's marker: every change before it is in the pagemap. */
		pthread_mutex_lock(&usm_inst->lock);
		p->layout_seen++;
		pthread_mutex_unlock(&usm_inst->lock);
		return;
	}
	if (unmap)
		forget_vma(p, start, end);
	usm_trace_event(p, USM_TR_FREE, start, (end - start) / usm_inst->cfg.page_size);
	usm_count(unmap ? &p->c.ev_unmap : &p->c.ev_remove, 1);
	usm_count(unmap ? &usm_inst->c.ev_unmap : &usm_inst->c.ev_remove, 1);
	pthread_mutex_lock(&usm_inst->lock);
	pol = usm_instance_policy_of(p);
	if (pol->ops->usm_free)
		pol->ops->usm_free(&ev);
	usm_pagemap_walk(&p->pm, start, end, release_cb, p);
	pthread_mutex_unlock(&usm_inst->lock);
}

struct move {
	struct usm_process *p;
	uint64_t from, to;
};

/*
 * Move one entry to its new address.  Inserting during the walk is safe:
 * the kernel never lets the old and new ranges of a move overlap, and the
 * walk does not visit addresses outside [from, from + len).  No malloc:
 * in the in-process host this runs inside a signal handler.
 */
static void move_cb(uint64_t va, struct usm_page *pg, void *arg)
{
	struct move *m = arg;
	uint64_t nva = m->to + (va - m->from);

	usm_fault_drop_entry(m->p, nva);
	if (usm_pagemap_set(&m->p->pm, nva, pg)) {
		usm_fault_drop_entry(m->p, va);      /* no node for it: give it up */
		return;
	}
	usm_pagemap_take(&m->p->pm, va);
	if (usm_pm_is_swap(pg)) {
		usm_swapent_move(m->p, usm_pm_swap_idx(pg), nva);
	} else {
		pg->vaddr = nva;
		if (pg->state == USM_PAGE_EVICTING)
			usm_evict_orphan(m->p, pg);
	}
}

void usm_fault_remap(struct usm_worker *w, struct usm_process *p, uint64_t from,
		     uint64_t to, uint64_t len)
{
	struct usm_event ev = {
		.type = USM_EVENT_VIRT_AS_CHANGE, .origin = p, .vaddr = from,
		.length = len, .offst = to, .framework = w,
	};
	struct move m = { p, from, to };
	struct usm_policy *pol;

	forget_vma(p, from, from + len);
	forget_vma(p, to, to + len);
	usm_count(&p->c.ev_remap, 1);
	usm_count(&usm_inst->c.ev_remap, 1);
	pthread_mutex_lock(&usm_inst->lock);
	usm_pagemap_walk(&p->pm, from, from + len, move_cb, &m);
	pol = usm_instance_policy_of(p);
	if (pol->ops->usm_virt_address_space_change)
		pol->ops->usm_virt_address_space_change(&ev);
	pthread_mutex_unlock(&usm_inst->lock);
}

/* ---- the message loop ----------------------------------------------- */

static void dispatch(struct usm_worker *w, struct usm_process *p, const struct uffd_msg *m)
{
	/* Anything but a fault comes after the copies handed over before it. */
	if (m->event != UFFD_EVENT_PAGEFAULT)
		usm_copier_drain(p);
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT: {
		uint32_t flags = (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE)
				 ? USM_FAULT_WRITE : 0;
		usm_count(&p->c.faults, 1);
		usm_count(&usm_inst->c.faults, 1);
		handle_alloc(w, p, m->arg.pagefault.address, flags,
			     m->arg.pagefault.feat.ptid, false);
		break;
	}
	case UFFD_EVENT_REMOVE:
		if (!usm_huge_own_remove(p, m->arg.remove.start, m->arg.remove.end))
			usm_fault_free(w, p, m->arg.remove.start, m->arg.remove.end, false);
		break;
	case UFFD_EVENT_UNMAP:
		usm_fault_free(w, p, m->arg.remove.start, m->arg.remove.end, true);
		break;
	case UFFD_EVENT_REMAP:
		usm_fault_remap(w, p, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	default:
		usm_log(USM_LOG_WARN, "pid %d: unexpected userfaultfd event %u",
			p->pid, m->event);
	}
}

void usm_handle_uffd(struct usm_worker *w, struct usm_process *p)
{
	struct uffd_msg msgs[MSGS_PER_READ];
	int n = 0;

	/* Drain: faults that arrive while we work are taken without another
	 * trip through epoll, but only so many, so that the sockets and
	 * other processes of this worker get their turn. */
	for (int rounds = 0; rounds < 8 && (n = usm_uffd_read(p->uffd, msgs, MSGS_PER_READ)) > 0;
	     rounds++)
		for (int i = 0; i < n && !p->dead; i++)
			dispatch(w, p, &msgs[i]);
	if (n < 0 && !p->dead)
		usm_log(USM_LOG_WARN, "pid %d: reading userfaultfd: %s", p->pid, strerror(-n));
}
