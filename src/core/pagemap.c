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

/* The leaf node holding vaddr's entry, or NULL if there is none. */
static struct node *find_leaf(const struct usm_pagemap *pm, uint64_t vaddr)
{
	struct node *n = pm->root;

	for (int level = 0; n && level < LEVELS - 1; level++)
		n = n->slot[index_at(vaddr, level)];
	return n;
}

/* The leaf node holding vaddr's entry, made with the nodes above it if
 * missing; NULL if memory for a node could not be had. */
static struct node *make_leaf(struct usm_pagemap *pm, uint64_t vaddr)
{
	void **slot = &pm->root;

	for (int level = 0; level < LEVELS - 1; level++) {
		if (!*slot) {
			*slot = node_alloc();
			if (!*slot)
				return NULL;
			pm->nodes++;
		}
		slot = &((struct node *)*slot)->slot[index_at(vaddr, level)];
	}
	if (!*slot) {
		*slot = node_alloc();
		if (!*slot)
			return NULL;
		pm->nodes++;
	}
	return *slot;
}

/* Pages from vaddr to the end of its leaf node's 2 MiB, at most n. */
static unsigned leaf_run(uint64_t vaddr, uint64_t n)
{
	uint64_t left = FANOUT - index_at(vaddr, LEVELS - 1);

	return (unsigned)(n < left ? n : left);
}

unsigned usm_pagemap_count(const struct usm_pagemap *pm, uint64_t vaddr, unsigned n)
{
	unsigned present = 0;

	vaddr &= ~((1ull << PAGE_SHIFT) - 1);
	while (n) {
		unsigned run = leaf_run(vaddr, n), first = index_at(vaddr, LEVELS - 1);
		const struct node *leaf = find_leaf(pm, vaddr);

		for (unsigned i = 0; leaf && i < run; i++)
			present += leaf->slot[first + i] != NULL;
		vaddr += (uint64_t)run << PAGE_SHIFT;
		n -= run;
	}
	return present;
}

int usm_pagemap_set_run(struct usm_pagemap *pm, uint64_t vaddr, struct usm_page *const *pages,
			unsigned n)
{
	uint64_t va;
	unsigned left, run;

	vaddr &= ~((1ull << PAGE_SHIFT) - 1);
	/* Every node first, so that running out of memory changes no entry. */
	for (va = vaddr, left = n; left; va += (uint64_t)run << PAGE_SHIFT, left -= run) {
		run = leaf_run(va, left);
		if (!make_leaf(pm, va))
			return -1;
	}
	for (va = vaddr, left = n; left; va += (uint64_t)run << PAGE_SHIFT, left -= run) {
		struct node *leaf = find_leaf(pm, va);
		unsigned first = index_at(va, LEVELS - 1);

		run = leaf_run(va, left);
		for (unsigned i = 0; i < run; i++, pages++) {
			pm->count += !leaf->slot[first + i] - !*pages;
			leaf->slot[first + i] = *pages;
		}
	}
	return 0;
}

/* Step from vaddr by one page in direction dir (+1/-1) while entries are
 * missing and the next page is inside [lo, hi); returns the last missing
 * page reached (vaddr itself at least). */
static uint64_t empty_edge(const struct usm_pagemap *pm, uint64_t vaddr, uint64_t lo,
			   uint64_t hi, int dir)
{
	const uint64_t pg = 1ull << PAGE_SHIFT;
	uint64_t va = vaddr;

	for (;;) {
		uint64_t next = dir > 0 ? va + pg : va - pg;
		const struct node *leaf;

		if (dir > 0 ? next >= hi : va <= lo)
			return va;
		leaf = find_leaf(pm, next);
		if (!leaf) {
			/* A whole missing 2 MiB: jump to its far end. */
			uint64_t span = slot_span(LEVELS - 2);
			uint64_t far = dir > 0 ? (next | (span - 1)) - (pg - 1) : next & ~(span - 1);
			if (dir > 0 && far >= hi)
				far = hi - pg;
			if (dir < 0 && far < lo)
				far = lo;
			va = far;
			continue;
		}
		if (leaf->slot[index_at(next, LEVELS - 1)])
			return va;
		va = next;
	}
}

void usm_pagemap_empty_run(const struct usm_pagemap *pm, uint64_t vaddr, uint64_t lo,
			   uint64_t hi, uint64_t *start, uint64_t *end)
{
	vaddr &= ~((1ull << PAGE_SHIFT) - 1);
	*start = empty_edge(pm, vaddr, lo, hi, -1);
	*end = empty_edge(pm, vaddr, lo, hi, +1) + (1ull << PAGE_SHIFT);
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
