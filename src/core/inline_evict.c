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
#include "mech/uffd.h"

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

/* ---- pages system calls are using -------------------------------------- */

/*
 * A thread about to enter a system call on registered memory pins it
 * (agent/pretouch.c), then touches it; the mover checks the pins after
 * each move and puts a pinned page straight back.  Either the mover sees
 * the pin, or the page was moved before the touch, which then faults and
 * waits for the request to settle: no lock on the system-call path.
 */
#define PIN_SLOTS  64
#define PIN_RANGES 16

struct pin_slot {
	_Atomic int used;
	_Atomic unsigned n;
	_Atomic bool all;
	uint64_t lo[PIN_RANGES], hi[PIN_RANGES];
};

static struct pin_slot pins[PIN_SLOTS];
static _Atomic unsigned npins;

int usm_inline_pin(const uint64_t *lo, const uint64_t *hi, unsigned n, bool all)
{
	if (n > PIN_RANGES) {
		n = 0;
		all = true;               /* too many to list: pin everything */
	}
	for (;;)
		for (int i = 0; i < PIN_SLOTS; i++) {
			struct pin_slot *s = &pins[i];
			int free_ = 0;

			if (!atomic_compare_exchange_weak(&s->used, &free_, 1))
				continue;
			memcpy(s->lo, lo, n * sizeof(*lo));
			memcpy(s->hi, hi, n * sizeof(*hi));
			atomic_store(&s->n, n);
			atomic_store(&s->all, all);
			atomic_fetch_add(&npins, 1);
			atomic_thread_fence(memory_order_seq_cst);
			return i;
		}
}

void usm_inline_unpin(int i)
{
	atomic_fetch_sub(&npins, 1);
	atomic_store(&pins[i].n, 0);
	atomic_store(&pins[i].all, false);
	atomic_store(&pins[i].used, 0);
}

static bool pinned(uint64_t va)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load(&npins))
		return false;
	for (int i = 0; i < PIN_SLOTS; i++) {
		struct pin_slot *s = &pins[i];
		unsigned n;

		if (!atomic_load(&s->used))
			continue;
		if (atomic_load(&s->all))
			return true;
		n = atomic_load(&s->n);
		for (unsigned k = 0; k < n; k++)
			if (va >= s->lo[k] && va < s->hi[k])
				return true;
	}
	return false;
}

/* ---- moving victims out (the agent's part, agent/evict.c) ------------- */

/* The page just moved from va to slot goes back to va; false if it could
 * not (then it stays moved out and is stored as usual). */
static bool put_back(struct usm_process *p, uint64_t va, uint64_t slot)
{
	uint64_t done = 0;
	int rc = usm_uffd_copy_mode(p->uffd, va, (const void *)(uintptr_t)slot,
				    usm_inst->cfg.page_size, 0, &done);

	return rc == 0;
}

static void move_batch(struct usm_process *p, const unsigned *req, unsigned n)
{
	uint64_t ps = usm_inst->cfg.page_size;
	uint32_t answer[STAGE_PAGES];

	for (unsigned j = 0; j < n; j++) {
		uint64_t slot = usm_stage_slot(&stage, j), va = p->chan->req[req[j]].vaddr;
		int rc = pinned(va) ? -EBUSY : usm_stage_take(&stage, slot, va);

		/* A system call started on it meanwhile: it goes back at once. */
		if (rc == 0 && pinned(va) && !put_back(p, va, slot))
			rc = -EBUSY;
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
