/* SPDX-License-Identifier: MIT */
/*
 * core/frames.c - the instance's frame budget.
 *
 * A frame is a unit of budget plus its descriptor.  Descriptors live in one
 * array mapped with MAP_NORESERVE, so a 24 GiB budget costs memory only for
 * the frames ever used, and advised for huge pages: descriptors are first
 * touched on the fault path, 46 to a 4 KiB page, and one small kernel
 * fault per 46 frames is the kind of cost the kernel's struct pages never
 * pay.  Free frames are a stack of indices (recently freed
 * first, cache-warm descriptors); never-used frames come from next_fresh.
 * Every function here runs under the policy lock.
 */
#include "core/instance.h"
#include "mech/rawsys.h"

#include <errno.h>
#include <sys/mman.h>

/* Raw syscalls: in the in-process host this memory must never be registered. */
static void *map_array(uint64_t bytes)
{
	void *a = raw_map(bytes, PROT_READ | PROT_WRITE);

	if (a)
		raw_advise_huge(a, bytes);
	return a;
}

/*
 * The reserve: frames beyond the budget, for the faults of threads that
 * hold up eviction (see usm_evict_chan.layout_tid).  A few per slot: such a
 * thread touches a few pages of its stack while it holds the agent's lock.
 * Only a worker that opened it (usm_frames_reserve) may take from it, and
 * the reclaimer, seeing no free frame, evicts the excess again.
 */
#define RESERVE_FRAMES (4 * USM_LAYOUT_TIDS)

static __thread bool reserve_open;

/*
 * The in-process host has no reserve, and must never touch the flag: it
 * is loaded with dlopen, so a thread's first access to its thread-local
 * storage may allocate, inside a fault handler.
 */
void usm_frames_reserve(bool open)
{
	if (usm_inst->reserve)
		reserve_open = open;
}

/* Frames the caller may hold now. */
static uint64_t cap_now(const struct usm_instance *inst)
{
	return inst->cap + (inst->reserve && reserve_open ? inst->reserve : 0);
}

int usm_frames_init(struct usm_instance *inst)
{
	inst->nframes = inst->cfg.memory_mib * (1024 * 1024 / inst->cfg.page_size);
	inst->reserve = RESERVE_FRAMES;
	inst->ndesc = inst->nframes + inst->reserve;
	inst->frames = map_array(inst->ndesc * sizeof(struct usm_page));
	inst->free_stack = map_array(inst->ndesc * sizeof(uint64_t));
	if (!inst->frames || !inst->free_stack)
		return -ENOMEM;
	inst->nfree = 0;
	inst->next_fresh = 0;
	inst->desc_ready = 0;
	inst->cap = inst->nframes;
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Fault in bytes [from, to) of an array (its mapping ends past to). */
static void populate(void *array, uint64_t from, uint64_t to)
{
	uintptr_t lo = ((uintptr_t)array + from) & ~4095ul;
	uintptr_t hi = ((uintptr_t)array + to + 4095) & ~4095ul;

	raw_syscall6(SYS_madvise, (long)lo, (long)(hi - lo), MADV_POPULATE_WRITE, 0, 0, 0);
}

/*
 * A descriptor's first touch is a page fault, a 2 MiB clear on the huge
 * pages the arrays are advised for, and it comes in pop_frame, under the
 * policy lock, where every other faulting thread waits for it.  The
 * in-process host, whose budget grows lease by lease, touches the
 * descriptors of a new lease here instead, while it holds no lock.
 * Advice only: on failure the fault path touches them as before.
 */
void usm_frames_prefault(struct usm_instance *inst, uint64_t upto)
{
	uint64_t from = inst->desc_ready;

	if (upto > inst->ndesc)
		upto = inst->ndesc;
	if (upto <= from)
		return;
	populate(inst->frames, from * sizeof(struct usm_page), upto * sizeof(struct usm_page));
	populate(inst->free_stack, from * sizeof(uint64_t), upto * sizeof(uint64_t));
	inst->desc_ready = upto;
}

void usm_frames_fini(struct usm_instance *inst)
{
	if (inst->frames)
		raw_unmap(inst->frames, inst->ndesc * sizeof(struct usm_page));
	if (inst->free_stack)
		raw_unmap(inst->free_stack, inst->ndesc * sizeof(uint64_t));
	inst->frames = NULL;
	inst->free_stack = NULL;
}

uint64_t usm_page_size(void)
{
	return usm_inst->cfg.page_size;
}

uint64_t usm_frames_total(void)
{
	return usm_inst->nframes;
}

/* Frames held now: taken from the table and not given back, or lent. */
static uint64_t frames_used(const struct usm_instance *inst)
{
	return inst->next_fresh - inst->nfree + inst->lent;
}

uint64_t usm_frames_free(void)
{
	uint64_t used = frames_used(usm_inst), cap = cap_now(usm_inst);

	return cap > used ? cap - used : 0;
}

unsigned usm_budget_used_pct(void)
{
	return (unsigned)(frames_used(usm_inst) * 100 / usm_inst->nframes);
}

static struct usm_page *pop_frame(struct usm_instance *inst)
{
	struct usm_page *pg;

	if (frames_used(inst) >= cap_now(inst))
		return NULL;
	if (inst->nfree)
		pg = &inst->frames[inst->free_stack[--inst->nfree]];
	else if (inst->next_fresh < inst->ndesc)
		pg = &inst->frames[inst->next_fresh++];
	else
		return NULL;
	pg->frame = (uint64_t)(pg - inst->frames);
	pg->state = USM_PAGE_TAKEN;
	pg->vaddr = 0;
	pg->policy_flags = 0;
	pg->fw_flags = 0;
	pg->priv = NULL;
	pg->owner = NULL;
	usm_list_init(&pg->list);
	usm_list_init(&pg->list2);
	return pg;
}

/* Below the low watermark: the reclaimer makes room ahead of need. */
static void check_watermark(struct usm_instance *inst)
{
	if (inst->swap_policy && usm_frames_free() < inst->wm_low)
		usm_reclaim_kick(inst);
}

/*
 * Lend up to want frames to an in-process host; returns how many.  The
 * host keeps descriptors of its own, so a lent frame is budget only: a
 * count, never a descriptor taken from the table.  Taking 73,728
 * descriptors one by one (the largest lease) kept a faulting thread
 * waiting for milliseconds.
 */
uint64_t usm_frames_lend(uint64_t want)
{
	uint64_t n = usm_frames_free();

	if (n > want)
		n = want;
	usm_inst->lent += n;
	check_watermark(usm_inst);
	return n;
}

void usm_frames_unlend(uint64_t n)
{
	usm_inst->lent -= n;
}

struct usm_page *usm_frame_take(struct usm_event *ev)
{
	struct usm_page *pg = pop_frame(usm_inst);

	check_watermark(usm_inst);
	if (!pg)
		return NULL;
	pg->proc = ev ? ev->origin : NULL;
	if (frames_used(usm_inst) > usm_inst->cap) {        /* from the reserve */
		usm_count(&usm_inst->c.reserve_frames, 1);
		if (pg->proc)
			usm_count(&pg->proc->c.reserve_frames, 1);
	}
	return pg;
}

/* Like n calls of usm_frame_take, with the watermark and the reserve
 * looked at once: a 2 MiB window is 512 frames. */
int usm_frames_take(struct usm_event *ev, struct usm_page **out, unsigned n)
{
	struct usm_instance *inst = usm_inst;
	struct usm_process *proc = ev ? ev->origin : NULL;
	uint64_t used;

	if (usm_frames_free() < n)
		return USM_ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		out[i] = pop_frame(inst);
		if (!out[i]) {              /* no descriptor left: undo */
			while (i--)
				usm_frame_put(out[i]);
			return USM_ENOMEM;
		}
		out[i]->proc = proc;
	}
	used = frames_used(inst);
	if (used > inst->cap) {             /* the last ones from the reserve */
		uint64_t from_reserve = used - inst->cap < n ? used - inst->cap : n;
		usm_count(&inst->c.reserve_frames, from_reserve);
		if (proc)
			usm_count(&proc->c.reserve_frames, from_reserve);
	}
	check_watermark(inst);
	return USM_OK;
}

void usm_frame_put(struct usm_page *pg)
{
	struct usm_instance *inst = usm_inst;

	pg->state = USM_PAGE_FREE;
	pg->proc = NULL;
	pg->vaddr = 0;
	inst->free_stack[inst->nfree++] = pg->frame;
}

/* A mapped frame leaves its process: policy first, then the pool. */
void usm_frame_release(struct usm_page *pg)
{
	struct usm_process *p = pg->proc;
	const struct usm_policy *pol = pg->owner;

	usm_evict_untrack(pg);
	if (pg->fw_flags & USM_PG_PINNED)
		usm_list_del(&pg->list2);    /* on the instance's pinned list */
	if (pol && pol->ops->usm_pindex_free)
		pol->ops->usm_pindex_free(pg);
	usm_count(&p->c.frames_in_use, (uint64_t)-1);
	usm_count(&usm_inst->c.frames_in_use, (uint64_t)-1);
	usm_frame_put(pg);
}

bool usm_page_referenced(struct usm_page *pg)
{
	bool ref = (pg->fw_flags & USM_PG_REFERENCED) != 0;

	pg->fw_flags &= ~USM_PG_REFERENCED;
	usm_inst->referenced_asked++;   /* the policy uses access information */
	return ref;
}

bool usm_page_pinned(const struct usm_page *pg)
{
	return (pg->fw_flags & USM_PG_PINNED) != 0;
}
