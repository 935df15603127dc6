/* SPDX-License-Identifier: MIT */
#include "core/pagemap.h"
#include "mech/rawsys.h"

#include <stdatomic.h>
#include <string.h>

#define LEVELS      4
#define BITS        9
#define FANOUT      (1u << BITS)
#define PAGE_SHIFT  12

struct node {
	void *slot[FANOUT];
};

/*
 * Nodes come from a pool mapped with raw syscalls rather than malloc: the
 * in-process host updates pagemaps inside its SIGBUS handler, where malloc
 * is off limits and where memory that libc maps (and the agent registers)
 * could itself fault.
 */
#define POOL_CHUNK (2u << 20)

static struct node *free_nodes;
static atomic_flag pool_lock = ATOMIC_FLAG_INIT;

static struct node *node_alloc(void)
{
	struct node *n;

	while (atomic_flag_test_and_set_explicit(&pool_lock, memory_order_acquire))
		;
	if (!free_nodes) {
		char *chunk = raw_map(POOL_CHUNK, PROT_READ | PROT_WRITE);

		if (chunk)
			raw_advise_huge(chunk, POOL_CHUNK);
		for (size_t off = 0; chunk && off < POOL_CHUNK; off += sizeof(struct node)) {
			struct node *f = (struct node *)(chunk + off);
			f->slot[0] = free_nodes;
			free_nodes = f;
		}
	}
	n = free_nodes;
	if (n)
		free_nodes = n->slot[0];
	atomic_flag_clear_explicit(&pool_lock, memory_order_release);
	if (n)
		memset(n, 0, sizeof(*n));
	return n;
}

static void node_free(struct node *n)
{
	while (atomic_flag_test_and_set_explicit(&pool_lock, memory_order_acquire))
		;
	n->slot[0] = free_nodes;
	free_nodes = n;
	atomic_flag_clear_explicit(&pool_lock, memory_order_release);
}

static unsigned index_at(uint64_t vaddr, int level)
{
	/* level 0 is the root, LEVELS-1 holds the frame pointers */
	unsigned shift = PAGE_SHIFT + BITS * (unsigned)(LEVELS - 1 - level);

	return (unsigned)(vaddr >> shift) & (FANOUT - 1);
}

/* Span of addresses covered by one slot at `level`. */
static uint64_t slot_span(int level)
{
	return 1ull << (PAGE_SHIFT + BITS * (LEVELS - 1 - level));
}

void usm_pagemap_init(struct usm_pagemap *pm)
{
	pm->root = NULL;
	pm->count = 0;
	pm->nodes = 0;
}

struct usm_page *usm_pagemap_get(const struct usm_pagemap *pm, uint64_t vaddr)
{
	struct node *n = pm->root;

	for (int level = 0; n && level < LEVELS - 1; level++)
		n = n->slot[index_at(vaddr, level)];
	return n ? n->slot[index_at(vaddr, LEVELS - 1)] : NULL;
}

int usm_pagemap_set(struct usm_pagemap *pm, uint64_t vaddr, struct usm_page *pg)
{
	void **slot = &pm->root;

	/* Storing NULL is a removal: keep count right, allocate nothing. */
	if (!pg) {
		usm_pagemap_take(pm, vaddr);
		return 0;
	}
	for (int level = 0; level < LEVELS; level++) {
		if (!*slot) {
			*slot = node_alloc();
			if (!*slot)
				return -1;
			pm->nodes++;
		}
		slot = &((struct node *)*slot)->slot[index_at(vaddr, level)];
	}
	if (!*slot)
		pm->count++;
	*slot = pg;
	return 0;
}

struct usm_page *usm_pagemap_take(struct usm_pagemap *pm, uint64_t vaddr)
{
	struct node *n = pm->root;

	for (int level = 0; n && level < LEVELS - 1; level++)
		n = n->slot[index_at(vaddr, level)];
	if (!n)
		return NULL;
	void **slot = &n->slot[index_at(vaddr, LEVELS - 1)];
	struct usm_page *pg = *slot;
	if (pg) {
		*slot = NULL;
		pm->count--;
	}
	return pg;
}

static void walk(struct node *n, int level, uint64_t base, uint64_t start,
		 uint64_t end, void (*fn)(uint64_t, struct usm_page *, void *),
		 void *arg)
{
	uint64_t span = slot_span(level);
	/* Start at the slot holding `start` (the node overlaps [start, end)). */
	unsigned first = start > base ? (unsigned)((start - base) / span) : 0;

	for (unsigned i = first; i < FANOUT; i++) {
		uint64_t lo = base + i * span, hi = lo + span;

		if (hi <= start || !n->slot[i])
			continue;
		if (lo >= end)
			break;
		if (level == LEVELS - 1)
			fn(lo, n->slot[i], arg);
		else
			walk(n->slot[i], level + 1, lo, start, end, fn, arg);
	}
}

void usm_pagemap_walk(struct usm_pagemap *pm, uint64_t start, uint64_t end,
		      void (*fn)(uint64_t vaddr, struct usm_page *pg, void *arg),
		      void *arg)
{
	if (pm->root && start < end)
		walk(pm->root, 0, 0, start, end, fn, arg);
}

static void destroy(struct node *n, int level)
{
	if (level < LEVELS - 1)
		for (unsigned i = 0; i < FANOUT; i++)
			if (n->slot[i])
				destroy(n->slot[i], level + 1);
	node_free(n);
}

void usm_pagemap_destroy(struct usm_pagemap *pm)
{
	if (pm->root)
		destroy(pm->root, 0);
	usm_pagemap_init(pm);
}
