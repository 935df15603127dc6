/* SPDX-License-Identifier: MIT */
/*
 * core/inline_evict.c - eviction in the in-process host.
 *
 * The in-process host evicts with the daemon host's machinery (the
 * channel's requests and swap table in core/evict.c, the reclaimer in
 * core/reclaim.c, swap-in in core/swapin.c) and plays the agent's part
 * itself: right after choosing victims, its reclaimer thread moves them
 * out of the program (mech/stage.c), stores them on devices kept in the
 * process's own memory and settles them, all in one round.  A thread
 * that touches a swapped-out page brings it back in its SIGBUS handler,
 * with no round trip to another thread: the reason to evict here at all.
 *
 * Everything lives in private memory (the channel and swap table, the
 * devices, the framework's heap), so a fork child inherits a consistent
 * copy-on-write snapshot of all of it: usm_inline_evict_fork_* stop the
 * world long enough for fork to copy it whole.
 *
 * The program's own address-space changes (munmap, mremap, dropping
 * madvise, MAP_FIXED mmap, brk shrink) are trapped by the agent, which
 * holds the layout lock for writing across each call and the pagemap
 * update that follows it.  Moving victims out and mapping pages in
 * (faults) hold it for reading.  So no page is moved out of, or copied
 * into, an address that was just given to something else: the daemon
 * host gets the same from the order of userfaultfd events.
 *
 * Locks, in order: the reclaimer's round, layout, evict_mu, inst->lock,
 * the swap devices'.
 */
#include "core/instance.h"
#include "mech/rawsys.h"
#include "mech/stage.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#define STAGE_PAGES 64

static struct usm_stage stage = { .uffd = -1 };
static pthread_rwlock_t layout;
static pthread_mutex_t round_mu = PTHREAD_MUTEX_INITIALIZER;

/* A waiting writer (munmap & co) goes before new readers (faults): a
 * stream of faults must not starve the program's own calls. */
static void layout_init(void)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&layout, &a);
	pthread_rwlockattr_destroy(&a);
}

void usm_inline_layout_write(void)
{
	pthread_rwlock_wrlock(&layout);
}

void usm_inline_layout_read(void)
{
	pthread_rwlock_rdlock(&layout);
}

void usm_inline_layout_unlock(void)
{
	pthread_rwlock_unlock(&layout);
}

/*
 * For the thread that detaches (the agent's monitor): a thread in mremap
 * holds the layout lock until its REMAP event is read, which is that
 * thread's job, so it reads events while it waits.
 */
void usm_inline_layout_read_draining(void)
{
	while (pthread_rwlock_tryrdlock(&layout)) {
		usm_inst->host->drain_events();
		sched_yield();
	}
}

void usm_inline_round_begin_draining(void)
{
	while (pthread_mutex_trylock(&round_mu)) {
		usm_inst->host->drain_events();
		sched_yield();
	}
}

int usm_inline_evict_attach(struct usm_process *p, char *err, size_t errlen)
{
	int rc;

	layout_init();
	rc = usm_evict_chan_create(p, true);
	if (rc) {
		snprintf(err, errlen, "swap table: %s", strerror(-rc));
		return rc;
	}
	return usm_stage_create(&stage, STAGE_PAGES, usm_inst->cfg.page_size, err, errlen);
}

/* ---- moving victims out (the agent's part, agent/evict.c) ------------- */

static void move_batch(struct usm_process *p, const unsigned *req, unsigned n)
{
	uint64_t ps = usm_inst->cfg.page_size;
	uint32_t answer[STAGE_PAGES];

	for (unsigned j = 0; j < n; j++) {
		uint64_t slot = usm_stage_slot(&stage, j);
		int rc = usm_stage_take(&stage, slot, p->chan->req[req[j]].vaddr);

		answer[j] = usm_evict_answer(rc);
		if (rc == 0)
			memcpy(usm_evict_outbox(p, req[j]), (void *)(uintptr_t)slot, ps);
	}
	usm_stage_empty(&stage, stage.base, n * ps);
	for (unsigned j = 0; j < n; j++)
		atomic_store_explicit(&p->chan->req[req[j]].state, answer[j], memory_order_release);
}

/*
 * Under the layout lock, a request still QUEUED names its victim's
 * address: a change that took the page away, or moved it, would have
 * called the request off (usm_evict_orphan) while holding the lock for
 * writing.
 */
void usm_inline_move_queued(struct usm_process *p)
{
	unsigned batch[STAGE_PAGES], n = 0;

	usm_inline_layout_read();
	for (unsigned i = 0; i < p->chan->nreq; i++) {
		uint32_t queued = USM_EV_QUEUED;

		if (!atomic_compare_exchange_strong(&p->chan->req[i].state, &queued,
						    USM_EV_MOVING))
			continue;
		batch[n++] = i;
		if (n == STAGE_PAGES) {
			move_batch(p, batch, n);
			n = 0;
		}
	}
	if (n)
		move_batch(p, batch, n);
	usm_inline_layout_unlock();
}

/* The reclaimer holds this across each round: fork and detaching wait
 * for a round to end, when nothing is in flight. */
void usm_inline_round_begin(void)
{
	pthread_mutex_lock(&round_mu);
}

void usm_inline_round_end(void)
{
	pthread_mutex_unlock(&round_mu);
}

/* ---- fork ------------------------------------------------------------ */

/*
 * Before fork, with rounds paused already (usm_inline_round_begin): no
 * address-space change, no fault half done, no device call: the child's
 * copy of every table is consistent.
 */
void usm_inline_evict_fork_prepare(struct usm_process *p)
{
	usm_inline_layout_write();
	pthread_mutex_lock(&p->evict_mu);
	pthread_mutex_lock(&usm_inst->lock);
	usm_swap_fork_lock();
}

void usm_inline_evict_fork_parent(struct usm_process *p)
{
	usm_swap_fork_unlock();
	pthread_mutex_unlock(&usm_inst->lock);
	pthread_mutex_unlock(&p->evict_mu);
	usm_inline_layout_unlock();
	pthread_mutex_unlock(&round_mu);
}

/* Lock held: every page this process holds came through fork: it is the
 * kernel's now (copy-on-write), not ours.  Swapped-out pages stay: the
 * child brings them back from its own copy of the devices. */
static void release_frame(uint64_t va, struct usm_page *v, void *arg)
{
	struct usm_process *p = arg;

	if (usm_pm_is_swap(v))
		return;
	usm_pagemap_take(&p->pm, va);
	v->state = USM_PAGE_MAPPED;      /* usm_frame_release's precondition */
	usm_frame_release(v);
}

/*
 * In the child, single-threaded: the locks are fresh (the parent's
 * threads are gone), the frames go, the staging area needs a
 * userfaultfd of the child's own (fork did not register it anew).
 */
int usm_inline_evict_fork_child(struct usm_process *p, char *err, size_t errlen)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	round_mu = fresh;
	layout_init();
	pthread_mutex_init(&p->evict_mu, NULL);
	usm_swap_fork_child();
	usm_pagemap_walk(&p->pm, 0, UINT64_MAX, release_frame, p);
	memset(p->inflight, 0, sizeof(p->inflight));
	p->ninflight = p->norphaned = 0;
	memset(p->orphaned, 0, sizeof(p->orphaned));
	for (unsigned i = 0; i < p->chan->nreq; i++)
		atomic_store(&p->chan->req[i].state, USM_EV_FREE);
	usm_stage_close(&stage);
	return usm_stage_create(&stage, STAGE_PAGES, usm_inst->cfg.page_size, err, errlen);
}
