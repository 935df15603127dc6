/* SPDX-License-Identifier: MIT */
/*
 * core/evict.c - a process's eviction channel and swap table, and the
 * swap-out half of eviction (see core/evict.h).
 */
#include "core/instance.h"
#include "core/trace.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"
#include "swap/swapdev.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t chan_size(uint64_t ps)
{
	uint64_t hdr = (sizeof(struct usm_evict_chan) + ps - 1) & ~(ps - 1);

	return hdr + USM_EVICT_REQS * ps + USM_EVICT_TABLE * sizeof(struct usm_swap_ent);
}

static void *outbox(const struct usm_process *p, unsigned i)
{
	return (char *)p->chan + p->chan->outbox_off + (uint64_t)i * p->chan->page_size;
}

void *usm_evict_outbox(const struct usm_process *p, unsigned i)
{
	return outbox(p, i);
}

static struct usm_swap_ent *table(const struct usm_process *p)
{
	return (struct usm_swap_ent *)((char *)p->chan + p->chan->table_off);
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* ---- the swap table (inst->lock) ------------------------------------ */

static int64_t swapent_alloc(struct usm_process *p)
{
	if (p->nswap_free)
		return (int64_t)p->swap_free[--p->nswap_free];
	if (p->swap_next == p->chan->table_cap)
		return -1;
	atomic_store_explicit(&p->chan->table_hwm, p->swap_next + 1, memory_order_release);
	return (int64_t)p->swap_next++;
}

/* Record a swapped-out page: the pagemap now points at table entry idx. */
static int swapent_add(struct usm_process *p, uint64_t vaddr, const struct usm_swap_loc *loc)
{
	int64_t idx = swapent_alloc(p);
	struct usm_swap_ent *e;

	if (idx < 0)
		return -ENOSPC;
	if (usm_pagemap_set(&p->pm, vaddr, usm_pm_swap_tag((uint64_t)idx))) {
		p->swap_free[p->nswap_free++] = (uint64_t)idx;
		return -ENOMEM;
	}
	e = &table(p)[idx];
	e->loc = *loc;
	/* The address last: the agent trusts an entry once it sees one. */
	atomic_store_explicit(&e->vaddr, vaddr, memory_order_release);
	usm_count(&p->c.swapped_now, 1);
	usm_count(&usm_inst->c.swapped_now, 1);
	return 0;
}

void usm_swapent_drop(struct usm_process *p, uint64_t idx)
{
	struct usm_swap_ent *e = &table(p)[idx];

	atomic_store_explicit(&e->vaddr, 0, memory_order_release);
	usm_swap_unref(&e->loc);
	p->swap_free[p->nswap_free++] = idx;
	usm_count(&p->c.swapped_now, (uint64_t)-1);
	usm_count(&usm_inst->c.swapped_now, (uint64_t)-1);
}

void usm_swapent_move(struct usm_process *p, uint64_t idx, uint64_t to)
{
	atomic_store_explicit(&table(p)[idx].vaddr, to, memory_order_release);
}

/* ---- swap policy hooks (inst->lock) ---------------------------------- */

void usm_evict_track(struct usm_page *pg)
{
	const struct usm_swap_policy *sp = usm_inst->swap_policy;

	if (!sp || (pg->fw_flags & (USM_PG_TRACKED | USM_PG_PINNED)))
		return;
	pg->fw_flags |= USM_PG_TRACKED | USM_PG_REFERENCED;
	sp->ops->usm_page_mapped(pg);
}

void usm_evict_untrack(struct usm_page *pg)
{
	const struct usm_swap_policy *sp = usm_inst->swap_policy;

	if (!sp || !(pg->fw_flags & USM_PG_TRACKED))
		return;
	pg->fw_flags &= ~USM_PG_TRACKED;
	sp->ops->usm_page_unmapped(pg);
}

/* ---- channel set-up --------------------------------------------------- */

/* The channel's memory: a memfd shared with the agent (daemon host), or
 * private memory of the process itself (in-process host: no agent to
 * share it with, and a fork child inherits a copy-on-write snapshot). */
static struct usm_evict_chan *chan_map(uint64_t size, bool private_mem, int *fd_out)
{
	struct usm_evict_chan *c;
	int fd;

	*fd_out = -1;
	if (private_mem) {
		c = raw_map(size, PROT_READ | PROT_WRITE);
		return c ? c : (errno = ENOMEM, NULL);
	}
	fd = memfd_create("usm-evict", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	c = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c == MAP_FAILED) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	*fd_out = fd;
	return c;
}

static void chan_unmap(struct usm_evict_chan *c, int fd)
{
	if (fd < 0) {
		raw_unmap(c, c->size);
		return;
	}
	munmap(c, c->size);
	close(fd);
}

int usm_evict_chan_create(struct usm_process *p, bool private_mem)
{
	uint64_t ps = usm_inst->cfg.page_size, size = chan_size(ps);
	struct usm_evict_chan *c;
	int fd;

	c = chan_map(size, private_mem, &fd);
	if (!c)
		return -errno;
	c->magic = USM_EVICT_MAGIC;
	c->nreq = USM_EVICT_REQS;
	c->page_size = ps;
	c->outbox_off = (sizeof(*c) + ps - 1) & ~(ps - 1);
	c->table_off = c->outbox_off + USM_EVICT_REQS * ps;
	c->table_cap = USM_EVICT_TABLE;
	c->size = size;
	p->swap_free = calloc(USM_EVICT_TABLE, sizeof(uint64_t));
	if (!p->swap_free) {
		chan_unmap(c, fd);
		return -ENOMEM;
	}
	/* The process is in the table already: the reclaimer looks for
	 * processes with a channel under procs_lock. */
	pthread_mutex_lock(&usm_inst->procs_lock);
	p->chan_fd = fd;
	p->chan = c;
	pthread_mutex_unlock(&usm_inst->procs_lock);
	return 0;
}

static int send_devices(struct usm_process *p)
{
	struct usm_msg_evict_setup s;
	int rc;

	usm_msg_init(&s.h, USM_MSG_EVICT_SETUP, sizeof(s));
	s.ndevs = usm_swap_ndevs();
	rc = usm_sock_send(p->sock, &s, sizeof(s), p->chan_fd);
	for (unsigned i = 0; !rc && i < s.ndevs; i++) {
		struct usm_msg_swapdev d;

		usm_msg_init(&d.h, USM_MSG_SWAPDEV, sizeof(d));
		d.dev = i;
		rc = usm_sock_send(p->sock, &d, sizeof(d), usm_swap_dev_fd(i));
	}
	return rc;
}

/* A FORK_PREPARE snapshot: the parent's swapped pages, one reference
 * each, waiting for the child's HELLO. */
struct usm_fork_snap {
	struct usm_list_head link;
	uint32_t token;
	pid_t ppid;
	uint64_t born_ns;
	uint64_t n;
	struct usm_swap_ent *ents;
};

#define FORK_SNAP_TTL_NS (30ull * 1000000000)

static void snap_free(struct usm_fork_snap *s, bool unref)
{
	for (uint64_t i = 0; unref && i < s->n; i++)
		usm_swap_unref(&s->ents[i].loc);
	usm_list_del(&s->link);
	free(s->ents);
	free(s);
}

/* inst->lock held.  Forget snapshots nobody claimed in time. */
static void snaps_expire(struct usm_instance *inst, uint64_t now)
{
	struct usm_list_head *pos, *tmp;

	usm_list_for_each_safe(pos, tmp, &inst->forks) {
		struct usm_fork_snap *s = usm_list_entry(pos, struct usm_fork_snap, link);
		if (now - s->born_ns > FORK_SNAP_TTL_NS)
			snap_free(s, true);
	}
}

static struct usm_fork_snap *snap_claim(struct usm_instance *inst, uint32_t token, pid_t ppid)
{
	struct usm_list_head *pos;

	usm_list_for_each(pos, &inst->forks) {
		struct usm_fork_snap *s = usm_list_entry(pos, struct usm_fork_snap, link);
		if (s->token == token && s->ppid == ppid)
			return s;
	}
	return NULL;
}

/* inst->lock held: the child starts with its parent's swapped pages. */
static void adopt_snapshot(struct usm_process *p, struct usm_fork_snap *s)
{
	uint64_t i;

	for (i = 0; i < s->n; i++) {
		uint64_t va = atomic_load(&s->ents[i].vaddr);
		if (swapent_add(p, va, &s->ents[i].loc)) {
			usm_log(USM_LOG_ERROR, "pid %d: cannot record page 0x%llx of its "
				"parent's swap", p->pid, (unsigned long long)va);
			usm_swap_unref(&s->ents[i].loc);
		}
	}
	s->n = 0;
	snap_free(s, false);
}

int usm_evict_attach(struct usm_process *p, uint32_t fork_token, int32_t ppid)
{
	int rc = usm_evict_chan_create(p, false);

	if (rc == 0)
		rc = send_devices(p);
	if (rc) {
		usm_log(USM_LOG_WARN, "pid %d: no eviction channel: %s; not managing it "
			"in memory", p->pid, strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&usm_inst->lock);
	if (fork_token) {
		struct usm_fork_snap *s = snap_claim(usm_inst, fork_token, ppid);
		if (s)
			adopt_snapshot(p, s);
		else
			usm_log(USM_LOG_ERROR, "pid %d: fork snapshot %u of pid %d is gone; "
				"pages its parent had swapped out read as zero", p->pid,
				fork_token, ppid);
	}
	pthread_mutex_unlock(&usm_inst->lock);
	return 0;
}

void usm_evict_release(struct usm_process *p)
{
	if (p->chan) {
		chan_unmap(p->chan, p->chan_fd);
		p->chan_fd = -1;
		p->chan = NULL;
	}
	free(p->swap_free);
	p->swap_free = NULL;
}

/* ---- swap-out: queue ---------------------------------------------------- */

/*
 * inst->lock held.  Queue victim pg on its process's channel; false if
 * the channel is full (the victim goes back to the policy).
 */
bool usm_evict_queue(struct usm_page *pg)
{
	struct usm_process *p = pg->proc;

	if (!p->chan || p->exiting || p->ninflight == USM_EVICT_REQS)
		return false;
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		struct usm_evict_req *r = &p->chan->req[i];

		if (p->inflight[i] || atomic_load(&r->state) != USM_EV_FREE)
			continue;
		p->inflight[i] = pg;
		p->ninflight++;
		pg->state = USM_PAGE_EVICTING;
		pg->fw_flags &= ~USM_PG_DROPPED;
		r->vaddr = pg->vaddr;
		r->seq = p->layout_seen;
		atomic_store_explicit(&r->state, USM_EV_QUEUED, memory_order_release);
		return true;
	}
	return false;
}

void usm_evict_kick_agent(struct usm_process *p)
{
	atomic_fetch_add(&p->chan->kick, 1);
	futex_wake(&p->chan->kick);
}

/* ---- swap-out: collect -------------------------------------------------- */

/* inst->lock held: request i is over; its frame is no longer in flight. */
static void req_done(struct usm_process *p, unsigned i)
{
	if (p->orphaned[i]) {
		p->orphaned[i] = false;
		p->norphaned--;
	}
	p->inflight[i] = NULL;
	p->ninflight--;
	atomic_store_explicit(&p->chan->req[i].state, USM_EV_FREE, memory_order_release);
}

/* inst->lock held: the page stayed (or came back): evictable again. */
static void back_to_mapped(struct usm_page *pg, bool pinned)
{
	pg->state = USM_PAGE_MAPPED;
	if (pinned) {
		/* Out of the policy's sight until the next unpin sweep
		 * (usm_evict_unpin_all): its mapping may become movable. */
		pg->fw_flags |= USM_PG_PINNED;
		usm_list_add_tail(&pg->list2, &usm_inst->pinned);
		usm_count(&pg->proc->c.evict_failed, 1);
		usm_count(&usm_inst->c.evict_failed, 1);
		return;
	}
	usm_evict_track(pg);
}

/* inst->lock held: the frame of request i left the process for good. */
static void frame_gone(struct usm_page *pg)
{
	pg->state = USM_PAGE_MAPPED;    /* usm_frame_release's precondition */
	usm_frame_release(pg);
}

/* GONE or PINNED answers. */
static void settle_unmoved(struct usm_process *p, unsigned i, bool pinned)
{
	struct usm_page *pg = p->inflight[i];

	if (pg->fw_flags & USM_PG_DROPPED)
		frame_gone(pg);
	else
		back_to_mapped(pg, pinned);
	req_done(p, i);
}

/* A stored page: record it, or undo if the program let it go meanwhile. */
static bool settle_stored(struct usm_process *p, unsigned i, const struct usm_swap_loc *loc)
{
	struct usm_page *pg = p->inflight[i];

	if (pg->fw_flags & USM_PG_DROPPED) {
		usm_swap_unref(loc);
		frame_gone(pg);
	} else {
		uint64_t va = pg->vaddr;
		if (swapent_add(p, va, loc)) {
			usm_swap_unref(loc);
			return false;         /* put it back below */
		}
		usm_count(&p->c.evicted, 1);
		usm_count(&usm_inst->c.evicted, 1);
		usm_trace_event(p, USM_TR_EVICT, va, 1);
		pg->state = USM_PAGE_MAPPED;
		usm_frame_release(pg);     /* the pagemap already holds the entry */
	}
	req_done(p, i);
	return true;
}

/* evict_mu held, not inst->lock: a page that found no room on any device
 * goes back where it was. */
static void put_back(struct usm_process *p, unsigned i)
{
	uint64_t done = 0, ps = p->chan->page_size;
	struct usm_page *pg;
	uint64_t va;
	int rc;

	pthread_mutex_lock(&usm_inst->lock);
	pg = p->inflight[i];
	va = pg->vaddr;
	pthread_mutex_unlock(&usm_inst->lock);
	rc = usm_uffd_copy_mode(p->uffd, va, outbox(p, i), ps, 0, &done);
	pthread_mutex_lock(&usm_inst->lock);
	if (rc == 0 || rc == -EEXIST || (pg->fw_flags & USM_PG_DROPPED)) {
		if (pg->fw_flags & USM_PG_DROPPED)
			frame_gone(pg);
		else
			back_to_mapped(pg, false);
		req_done(p, i);
	} else if (rc != -EAGAIN) {
		usm_log(USM_LOG_ERROR, "pid %d: cannot put page 0x%llx back: %s",
			p->pid, (unsigned long long)va, strerror(-rc));
	}
	/* -EAGAIN: an munmap/mremap is in progress; next round. */
	pthread_mutex_unlock(&usm_inst->lock);
}

/*
 * evict_mu held.  Take in what the agent answered: store moved pages on
 * the devices (one batch), settle the rest.  Returns the requests still
 * outstanding.
 */
unsigned usm_evict_collect(struct usm_process *p)
{
	const void *pages[USM_EVICT_REQS];
	unsigned idx[USM_EVICT_REQS], n = 0, left;
	struct usm_swap_loc locs[USM_EVICT_REQS];
	bool unstored[USM_EVICT_REQS] = { false };

	pthread_mutex_lock(&usm_inst->lock);
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		uint32_t st;
		if (!p->inflight[i])
			continue;
		st = atomic_load_explicit(&p->chan->req[i].state, memory_order_acquire);
		if (st == USM_EV_GONE || st == USM_EV_PINNED)
			settle_unmoved(p, i, st == USM_EV_PINNED);
		else if (st == USM_EV_COPIED) {
			idx[n] = i;
			pages[n++] = outbox(p, i);
		}
	}
	pthread_mutex_unlock(&usm_inst->lock);
	if (!n)
		return p->ninflight;

	if (usm_swap_store(pages, n, locs) < n)
		/* The devices are full: no more victims until slots free up. */
		atomic_store(&usm_inst->swap_full_at, usm_swap_slots_used() + 1);
	pthread_mutex_lock(&usm_inst->lock);
	for (unsigned k = 0; k < n; k++)
		if (!locs[k].len || !settle_stored(p, idx[k], &locs[k]))
			unstored[k] = true;
	pthread_mutex_unlock(&usm_inst->lock);
	for (unsigned k = 0; k < n; k++)
		if (unstored[k])
			put_back(p, idx[k]);
	left = p->ninflight;
	return left;
}

/*
 * evict_mu held.  Before a fork: requests the agent has not taken go back
 * (its evictor is paused and nothing is moving).
 */
static void cancel_queued(struct usm_process *p)
{
	pthread_mutex_lock(&usm_inst->lock);
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		uint32_t queued = USM_EV_QUEUED;
		if (p->inflight[i] &&
		    atomic_compare_exchange_strong(&p->chan->req[i].state, &queued, USM_EV_GONE))
			settle_unmoved(p, i, false);
	}
	pthread_mutex_unlock(&usm_inst->lock);
}

/* ---- swap-in from the outbox -------------------------------------------- */

/*
 * A fault on pg, a page in flight (inst->lock held, evict_mu held).  If
 * the agent has moved it, copy its content to buf and return true: the
 * caller maps it and calls usm_evict_cancel().
 */
bool usm_evict_peek(struct usm_process *p, struct usm_page *pg, void *buf)
{
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		if (p->inflight[i] != pg)
			continue;
		if (atomic_load_explicit(&p->chan->req[i].state, memory_order_acquire) !=
		    USM_EV_COPIED)
			return false;
		memcpy(buf, outbox(p, i), p->chan->page_size);
		return true;
	}
	return false;
}

/* ---- fork ------------------------------------------------------------- */

static struct usm_process *find_process(struct usm_instance *inst, pid_t pid)
{
	struct usm_list_head *pos;
	struct usm_process *found = NULL;

	pthread_mutex_lock(&inst->procs_lock);
	usm_list_for_each(pos, &inst->procs) {
		struct usm_process *p = usm_list_entry(pos, struct usm_process, link);
		if (p->pid == pid && !p->dead && !p->inline_host) {
			atomic_fetch_add(&p->refs, 1);
			found = p;
			break;
		}
	}
	pthread_mutex_unlock(&inst->procs_lock);
	return found;
}

/* inst->lock held: one reference per swapped page, for the child. */
static struct usm_fork_snap *snapshot(struct usm_instance *inst, struct usm_process *p)
{
	struct usm_fork_snap *s = calloc(1, sizeof(*s));
	uint64_t n = usm_read(&p->c.swapped_now), k = 0;

	if (!s)
		return NULL;
	s->ents = calloc(n ? n : 1, sizeof(*s->ents));
	if (!s->ents) {
		free(s);
		return NULL;
	}
	for (uint64_t i = 0; i < p->swap_next && k < n; i++) {
		struct usm_swap_ent *e = &table(p)[i];
		uint64_t va = atomic_load(&e->vaddr);
		if (!va)
			continue;
		atomic_store(&s->ents[k].vaddr, va);
		s->ents[k].loc = e->loc;
		usm_swap_ref(&e->loc);
		k++;
	}
	s->n = k;
	s->token = ++inst->fork_seq ? inst->fork_seq : ++inst->fork_seq;
	s->ppid = p->pid;
	s->born_ns = usm_now_ns();
	usm_list_add_tail(&s->link, &inst->forks);
	return s;
}

int usm_evict_fork_prepare(struct usm_instance *inst, pid_t pid)
{
	struct usm_process *p = find_process(inst, pid);
	struct usm_fork_snap *s = NULL;
	int rc;

	if (!p)
		return -ESRCH;
	if (!p->chan) {
		usm_process_put(p);
		return -ENOENT;
	}
	pthread_mutex_lock(&p->evict_mu);
	cancel_queued(p);
	/* Pages already moved out must be on a device before the child
	 * can share them. */
	for (int tries = 0; usm_evict_collect(p) && tries < 100; tries++)
		usleep(1000);
	pthread_mutex_lock(&inst->lock);
	snaps_expire(inst, usm_now_ns());
	if (!p->ninflight)
		s = snapshot(inst, p);
	rc = s ? (int)s->token : p->ninflight ? -EBUSY : -ENOMEM;
	pthread_mutex_unlock(&inst->lock);
	pthread_mutex_unlock(&p->evict_mu);
	usm_process_put(p);
	return rc;
}

void usm_evict_forks_fini(struct usm_instance *inst)
{
	struct usm_list_head *pos, *tmp;

	usm_list_for_each_safe(pos, tmp, &inst->forks)
		snap_free(usm_list_entry(pos, struct usm_fork_snap, link), true);
}

void usm_evict_forks_expire(struct usm_instance *inst)
{
	pthread_mutex_lock(&inst->lock);
	snaps_expire(inst, usm_now_ns());
	pthread_mutex_unlock(&inst->lock);
}

/*
 * inst->lock held.  In-flight pg no longer lives at the address its
 * request names (the program released it, or mremap moved it): a request
 * the agent has not taken is called off, since a new page could appear
 * at that address and must not be moved out in its place.
 */
void usm_evict_orphan(struct usm_process *p, struct usm_page *pg)
{
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		uint32_t queued = USM_EV_QUEUED;
		if (p->inflight[i] != pg)
			continue;
		if (!p->orphaned[i]) {
			p->orphaned[i] = true;
			p->norphaned++;
		}
		atomic_compare_exchange_strong(&p->chan->req[i].state, &queued, USM_EV_GONE);
		return;
	}
}

/*
 * inst->lock held.  Is the agent possibly moving a page at va on behalf
 * of a frame that has left va?  Then a fault at va must wait: the page it
 * would map could be moved out by that request.  Only orphaned requests
 * qualify, and there rarely are any: every fault asks, and a scan of all
 * requests (their addresses in memory the agent writes) cost the worker
 * about 2 % of its time under swap load.
 */
bool usm_evict_busy_at(const struct usm_process *p, uint64_t va)
{
	if (!p->norphaned)
		return false;
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		const struct usm_page *pg = p->inflight[i];
		uint32_t st;
		if (!pg || p->chan->req[i].vaddr != va)
			continue;
		if (!(pg->fw_flags & USM_PG_DROPPED) && pg->vaddr == va)
			continue;
		st = atomic_load_explicit(&p->chan->req[i].state, memory_order_acquire);
		if (st == USM_EV_QUEUED || st == USM_EV_MOVING)
			return true;
	}
	return false;
}

/* Both locks held: a fault put in-flight pg back from the outbox. */
void usm_evict_cancel(struct usm_process *p, struct usm_page *pg)
{
	for (unsigned i = 0; i < USM_EVICT_REQS; i++)
		if (p->inflight[i] == pg) {
			req_done(p, i);
			back_to_mapped(pg, false);
			return;
		}
}

/* Both locks held, p exiting, its pagemap released: the frames still in
 * flight go back to the pool (the agent is gone with the process). */
void usm_evict_exit(struct usm_process *p)
{
	if (!p->chan)
		return;
	for (unsigned i = 0; i < USM_EVICT_REQS; i++) {
		struct usm_page *pg = p->inflight[i];
		if (!pg)
			continue;
		frame_gone(pg);
		p->inflight[i] = NULL;
		p->ninflight--;
		p->orphaned[i] = false;
		/* A stopping instance leaves moved pages in the outbox for the
		 * agent to put back; the request stays as the agent left it. */
		if (!usm_inst->stopping)
			atomic_store_explicit(&p->chan->req[i].state, USM_EV_FREE, memory_order_release);
	}
	p->norphaned = 0;
}

/* inst->lock held.  Pinned pages get another chance: a read-only mapping
 * may have become writable (the program's mprotect is not seen). */
void usm_evict_unpin_all(struct usm_instance *inst)
{
	while (!usm_list_empty(&inst->pinned)) {
		struct usm_page *pg = usm_list_entry(inst->pinned.next, struct usm_page, list2);
		usm_list_del(&pg->list2);
		pg->fw_flags &= ~USM_PG_PINNED;
		usm_evict_track(pg);
	}
}
