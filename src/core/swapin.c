/* SPDX-License-Identifier: MIT */
/*
 * core/swapin.c - faults on pages that are swapped out or on their way
 * out (see core/evict.h).
 *
 * A swapped-out page comes back with the neighbours the swap policy asks
 * for (usm_swap): their locations are read under the lock, the devices
 * are read in one batch without it, every page is mapped with UFFDIO_COPY,
 * and the pagemap is updated under the lock again.  Only this process's
 * worker changes its swap entries, so nothing moves them meanwhile.
 */
#include "core/instance.h"
#include "mech/rawsys.h"
#include "core/trace.h"
#include "mech/uffd.h"
#include "swap/swapdev.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

struct swapin_plan {
	unsigned n;
	uint64_t va[USM_MAX_BATCH];
	uint64_t idx[USM_MAX_BATCH];
	struct usm_swap_loc loc[USM_MAX_BATCH];
	struct usm_page *pg[USM_MAX_BATCH];
	void *buf[USM_MAX_BATCH];
	int rc[USM_MAX_BATCH];
};

/*
 * A worker's swap-in scratch space: the plan and a buffer of
 * USM_MAX_BATCH pages.  In the in-process host a "worker" is a faulting
 * thread's slot and this runs in its SIGBUS handler, so it is mapped with
 * raw system calls (never registered, no allocator) on first use.
 */
struct swapin_scratch {
	struct swapin_plan pl;
};

static uint64_t scratch_pages_off(void)
{
	uint64_t ps = usm_inst->cfg.page_size;

	return (sizeof(struct swapin_scratch) + ps - 1) & ~(ps - 1);
}

static uint64_t scratch_bytes(void)
{
	return scratch_pages_off() + USM_MAX_BATCH * usm_inst->cfg.page_size;
}

static struct swapin_scratch *scratch(struct usm_worker *w)
{
	if (!w->swapbuf)
		w->swapbuf = raw_map(scratch_bytes(), PROT_READ | PROT_WRITE);
	return w->swapbuf;
}

static void *worker_buf(struct usm_worker *w)
{
	struct swapin_scratch *s = scratch(w);

	return s ? (char *)s + scratch_pages_off() : NULL;
}

void usm_swapin_scratch_free(struct usm_worker *w)
{
	if (w->swapbuf)
		raw_unmap(w->swapbuf, scratch_bytes());
	w->swapbuf = NULL;
}

/* How many pages around the fault the policy wants back (power of two). */
static unsigned prefetch_want(struct usm_event *ev)
{
	const struct usm_swap_policy *sp = usm_inst->swap_policy;
	unsigned n = sp->ops->usm_swap ? sp->ops->usm_swap(ev) : 1;

	if (n < 1)
		n = 1;
	if (n > USM_MAX_BATCH)
		n = USM_MAX_BATCH;
	while (n & (n - 1))
		n &= n - 1;
	return n;
}

/* inst->lock held: the faulting page first, then swapped neighbours. */
static void plan_pages(struct usm_process *p, struct usm_event *ev, struct swapin_plan *pl)
{
	uint64_t ps = usm_inst->cfg.page_size, base;
	struct usm_page *v = usm_pagemap_get(&p->pm, ev->vaddr);
	unsigned want;

	pl->n = 1;
	pl->va[0] = ev->vaddr;
	pl->idx[0] = usm_pm_swap_idx(v);
	ev->offst = pl->idx[0];
	want = prefetch_want(ev);
	base = ev->vaddr & ~((uint64_t)want * ps - 1);
	for (unsigned i = 0; i < want && pl->n < usm_frames_free(); i++) {
		uint64_t va = base + (uint64_t)i * ps;
		v = usm_pagemap_get(&p->pm, va);
		if (va == ev->vaddr || !v || !usm_pm_is_swap(v))
			continue;
		pl->va[pl->n] = va;
		pl->idx[pl->n++] = usm_pm_swap_idx(v);
	}
}

/* inst->lock held: record what the locations are, take frames. */
static bool plan_take(struct usm_process *p, struct usm_event *ev, struct swapin_plan *pl,
		      void *bufs)
{
	const struct usm_swap_ent *tab =
		(const void *)((const char *)p->chan + p->chan->table_off);

	if (usm_frames_take(ev, pl->pg, pl->n) != USM_OK)
		return false;
	for (unsigned i = 0; i < pl->n; i++) {
		pl->loc[i] = tab[pl->idx[i]].loc;
		pl->buf[i] = (char *)bufs + (uint64_t)i * usm_inst->cfg.page_size;
	}
	return true;
}

/* inst->lock held: page i is in place; its frame takes over the entry. */
static void commit_page(struct usm_process *p, struct swapin_plan *pl, unsigned i)
{
	struct usm_page *pg = pl->pg[i];

	usm_swapent_drop(p, pl->idx[i]);
	usm_pagemap_set(&p->pm, pl->va[i], pg);   /* replaces the entry: no node needed */
	pg->state = USM_PAGE_MAPPED;
	pg->proc = p;
	pg->vaddr = pl->va[i];
	pg->owner = usm_instance_policy_of(p);
	usm_count(&p->c.frames_in_use, 1);
	usm_count(&usm_inst->c.frames_in_use, 1);
	usm_count(&p->c.swapped_in, 1);
	usm_count(&usm_inst->c.swapped_in, 1);
	usm_evict_track(pg);
}

static enum usm_fault_result map_pages(struct usm_worker *w, struct usm_process *p,
				       struct swapin_plan *pl)
{
	uint64_t ps = usm_inst->cfg.page_size;
	enum usm_fault_result res = USM_FAULT_DONE;

	for (unsigned i = 0; i < pl->n; i++) {
		uint64_t done = 0;
		pl->rc[i] = usm_uffd_copy_mode(p->uffd, pl->va[i], pl->buf[i], ps, 0, &done);
		if (pl->rc[i] == -EAGAIN) {
			/* An munmap/mremap/madvise event waits: read it first. */
			for (unsigned j = i + 1; j < pl->n; j++)
				pl->rc[j] = -EAGAIN;
			break;
		}
	}
	pthread_mutex_lock(&usm_inst->lock);
	for (unsigned i = 0; i < pl->n; i++) {
		if (pl->rc[i] == 0) {
			commit_page(p, pl, i);
			continue;
		}
		usm_frame_put(pl->pg[i]);
		if (pl->rc[i] == -EEXIST) {
			/* Present after all: the entry was stale. */
			usm_pagemap_take(&p->pm, pl->va[i]);
			usm_swapent_drop(p, pl->idx[i]);
		}
	}
	atomic_store(&w->mapping_region, 0);
	pthread_mutex_unlock(&usm_inst->lock);
	for (unsigned i = 0; i < pl->n; i++)
		if (pl->rc[i] == 0)
			usm_trace_event(p, USM_TR_SWAPIN, pl->va[i], 1);
	if (pl->rc[0] == -EAGAIN)
		res = USM_FAULT_RETRY;
	else if (pl->rc[0] && pl->rc[0] != -EEXIST) {
		usm_uffd_wake(p->uffd, pl->va[0], ps);
		res = USM_FAULT_FAILED;
	}
	return res;
}

/*
 * The OOM policy said "kernel": the page comes back outside the budget,
 * content and all, and USM stops managing it (as any kernel page).
 */
static enum usm_fault_result outside_budget(struct usm_process *p, struct usm_event *ev,
					    void *buf)
{
	const struct usm_swap_ent *tab;
	struct usm_swap_loc loc;
	struct usm_page *v;
	uint64_t done = 0;
	void *one[1] = { buf };
	int rc;

	pthread_mutex_lock(&usm_inst->lock);
	v = usm_pagemap_get(&p->pm, ev->vaddr);
	if (!v || !usm_pm_is_swap(v)) {
		pthread_mutex_unlock(&usm_inst->lock);
		return USM_FAULT_RETRY;
	}
	tab = (const void *)((const char *)p->chan + p->chan->table_off);
	loc = tab[usm_pm_swap_idx(v)].loc;
	pthread_mutex_unlock(&usm_inst->lock);
	rc = usm_swap_load(&loc, 1, one);
	if (!rc)
		rc = usm_uffd_copy_mode(p->uffd, ev->vaddr, buf, usm_inst->cfg.page_size, 0, &done);
	if (rc == -EAGAIN)
		return USM_FAULT_RETRY;
	if (rc && rc != -EEXIST) {
		usm_log(USM_LOG_ERROR, "pid %d: swapped page 0x%llx: %s", p->pid,
			(unsigned long long)ev->vaddr, strerror(-rc));
		usm_process_kill(p, "a swapped-out page cannot be read back");
		return USM_FAULT_FAILED;
	}
	pthread_mutex_lock(&usm_inst->lock);
	usm_pagemap_take(&p->pm, ev->vaddr);
	usm_swapent_drop(p, usm_pm_swap_idx(v));
	pthread_mutex_unlock(&usm_inst->lock);
	usm_count(&p->c.kernel_pages, 1);
	usm_count(&usm_inst->c.kernel_pages, 1);
	usm_trace_event(p, USM_TR_SWAPIN, ev->vaddr, 1);
	return USM_FAULT_DONE;
}

/* inst->lock held on entry, released on return. */
static enum usm_fault_result from_device(struct usm_worker *w, struct usm_process *p,
					 struct usm_event *ev)
{
	struct swapin_scratch *s = scratch(w);
	void *bufs = worker_buf(w);
	int rc;

	if (!s) {
		pthread_mutex_unlock(&usm_inst->lock);
		usm_log(USM_LOG_ERROR, "pid %d: no memory for a swap-in; retrying", p->pid);
		return USM_FAULT_RETRY;
	}
	struct swapin_plan *pl = &s->pl;

	plan_pages(p, ev, pl);
	if (!plan_take(p, ev, pl, bufs)) {
		/* No frame: the reclaimer makes one, unless it cannot. */
		enum usm_oom_action act = atomic_load(&usm_inst->reclaim_stuck)
					  ? usm_fault_oom(ev) : USM_OOM_WAIT;
		pthread_mutex_unlock(&usm_inst->lock);
		if (act == USM_OOM_KERNEL)
			return outside_budget(p, ev, bufs);
		usm_reclaim_kick(usm_inst);
		return USM_FAULT_RETRY;
	}
	usm_count(&p->c.swapin_faults, 1);
	usm_count(&usm_inst->c.swapin_faults, 1);
	if (p->inline_host)                 /* see other_thread_swapping */
		atomic_store(&w->mapping_region, usm_region_of(ev->vaddr));
	pthread_mutex_unlock(&usm_inst->lock);

	rc = usm_swap_load(pl->loc, pl->n, pl->buf);
	if (rc) {
		pthread_mutex_lock(&usm_inst->lock);
		for (unsigned i = 0; i < pl->n; i++)
			usm_frame_put(pl->pg[i]);
		atomic_store(&w->mapping_region, 0);
		pthread_mutex_unlock(&usm_inst->lock);
		/* Its data cannot be read back: never let it run on with zeros. */
		usm_log(USM_LOG_ERROR, "pid %d: reading swapped page 0x%llx: %s", p->pid,
			(unsigned long long)ev->vaddr, strerror(-rc));
		usm_process_kill(p, "a swapped-out page cannot be read back");
		return USM_FAULT_FAILED;
	}
	return map_pages(w, p, pl);
}

/* Both locks held on entry; released on return.  pg is in flight. */
static enum usm_fault_result from_outbox(struct usm_worker *w, struct usm_process *p,
					 struct usm_page *pg, uint64_t va)
{
	uint64_t ps = usm_inst->cfg.page_size, done = 0;
	void *buf = worker_buf(w);
	int rc;

	if (!buf || !usm_evict_peek(p, pg, buf)) {
		/* Being moved right now: the reclaimer wakes us when done. */
		pthread_mutex_unlock(&usm_inst->lock);
		pthread_mutex_unlock(&p->evict_mu);
		return USM_FAULT_RETRY;
	}
	pthread_mutex_unlock(&usm_inst->lock);
	rc = usm_uffd_copy_mode(p->uffd, va, buf, ps, 0, &done);
	if (rc == 0 || rc == -EEXIST) {
		pthread_mutex_lock(&usm_inst->lock);
		usm_evict_cancel(p, pg);
		pthread_mutex_unlock(&usm_inst->lock);
		usm_count(&p->c.swapcache_hits, 1);
		usm_count(&usm_inst->c.swapcache_hits, 1);
		usm_trace_event(p, USM_TR_SWAPIN, va, 1);
	}
	pthread_mutex_unlock(&p->evict_mu);
	if (rc == -EAGAIN)
		return USM_FAULT_RETRY;
	if (rc && rc != -EEXIST) {
		usm_uffd_wake(p->uffd, va, ps);
		return USM_FAULT_FAILED;
	}
	return USM_FAULT_DONE;
}

/*
 * inst->lock held: is another thread of this (in-process) host bringing
 * back pages of va's 2 MiB region?  Then this fault waits for it: both
 * would take the same swap entries.  (A worker serves its processes
 * alone, so the daemon host never has to ask.)
 */
static bool other_thread_swapping(const struct usm_worker *w, const struct usm_process *p,
				  uint64_t va)
{
	return p->inline_host && usm_inline_mapping(w, va);
}

int usm_swapin(struct usm_worker *w, struct usm_process *p, struct usm_event *ev)
{
	struct usm_page *v;

	pthread_mutex_lock(&usm_inst->lock);
	v = usm_pagemap_get(&p->pm, ev->vaddr);
	if (v && usm_pm_is_swap(v)) {
		if (other_thread_swapping(w, p, ev->vaddr)) {
			pthread_mutex_unlock(&usm_inst->lock);
			return USM_FAULT_RETRY;
		}
		return from_device(w, p, ev);
	}
	if (!v || v->state != USM_PAGE_EVICTING) {
		pthread_mutex_unlock(&usm_inst->lock);
		return -1;                  /* neither: an ordinary fault */
	}
	/* In flight: its request is the channel's, whose lock comes first.
	 * Only this case takes it, so that swap-ins from the devices never
	 * wait for the reclaimer storing a batch. */
	pthread_mutex_unlock(&usm_inst->lock);
	pthread_mutex_lock(&p->evict_mu);
	pthread_mutex_lock(&usm_inst->lock);
	v = usm_pagemap_get(&p->pm, ev->vaddr);
	if (v && !usm_pm_is_swap(v) && v->state == USM_PAGE_EVICTING)
		return from_outbox(w, p, v, ev->vaddr);
	pthread_mutex_unlock(&usm_inst->lock);
	pthread_mutex_unlock(&p->evict_mu);
	return USM_FAULT_RETRY;             /* settled meanwhile: look again */
}

/* ---- the in-process host's last act -------------------------------------- */

/* Put one swapped-out page back at va; 0 or -errno. */
static int restore_one(struct usm_worker *w, struct usm_process *p, uint64_t va,
		       const struct usm_swap_loc *loc)
{
	void *buf = worker_buf(w);
	void *one[1] = { buf };
	uint64_t done = 0;
	int rc = buf ? usm_swap_load(loc, 1, one) : -ENOMEM;

	if (!rc)
		rc = usm_uffd_copy_mode(p->uffd, va, buf, usm_inst->cfg.page_size, 0, &done);
	return rc == -EEXIST ? 0 : rc;
}

uint64_t usm_swapin_restore_all(struct usm_worker *w, struct usm_process *p, uint64_t *lost)
{
	const struct usm_swap_ent *tab =
		(const void *)((const char *)p->chan + p->chan->table_off);
	uint64_t n = atomic_load(&p->chan->table_hwm), back = 0;

	for (uint64_t idx = 0; idx < n && idx < p->chan->table_cap;) {
		struct usm_swap_loc loc;
		struct usm_page *v;
		uint64_t va;
		int rc;

		usm_inline_layout_read_draining();
		pthread_mutex_lock(&usm_inst->lock);
		va = atomic_load_explicit(&tab[idx].vaddr, memory_order_acquire);
		v = va ? usm_pagemap_get(&p->pm, va) : NULL;
		if (!v || !usm_pm_is_swap(v) || usm_pm_swap_idx(v) != idx) {
			pthread_mutex_unlock(&usm_inst->lock);
			usm_inline_layout_unlock();
			idx++;
			continue;
		}
		if (other_thread_swapping(w, p, va)) {   /* its fault finishes first */
			pthread_mutex_unlock(&usm_inst->lock);
			usm_inline_layout_unlock();
			sched_yield();
			continue;
		}
		loc = tab[idx].loc;
		atomic_store(&w->mapping_region, usm_region_of(va));
		pthread_mutex_unlock(&usm_inst->lock);
		rc = restore_one(w, p, va, &loc);
		pthread_mutex_lock(&usm_inst->lock);
		if (rc == 0) {
			usm_pagemap_take(&p->pm, va);
			usm_swapent_drop(p, idx);
			back++;
		} else {
			usm_log(USM_LOG_ERROR, "cannot restore page 0x%llx: %s",
				(unsigned long long)va, strerror(-rc));
			(*lost)++;
		}
		atomic_store(&w->mapping_region, 0);
		pthread_mutex_unlock(&usm_inst->lock);
		usm_inline_layout_unlock();
		idx++;
	}
	return back;
}
