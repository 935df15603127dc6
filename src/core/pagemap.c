/* SPDX-License-Identifier: MIT */
#include "core/pagemap.h"

#include <stdlib.h>

#define LEVELS      4
#define BITS        9
#define FANOUT      (1u << BITS)
#define PAGE_SHIFT  12

struct node {
	void *slot[FANOUT];
};

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
			*slot = calloc(1, sizeof(struct node));
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
	free(n);
}

void usm_pagemap_destroy(struct usm_pagemap *pm)
{
	if (pm->root)
		destroy(pm->root, 0);
	usm_pagemap_init(pm);
}
