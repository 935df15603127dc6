/* SPDX-License-Identifier: MIT */
/*
 * core/pagemap.h - per-process map from virtual page to frame descriptor.
 *
 * A four-level radix tree shaped like the x86-64 page table (9 bits per
 * level over the 36-bit virtual page number), so lookups are four loads and
 * range walks skip empty 2 MiB / 1 GiB / 512 GiB regions whole.  Owned by
 * one worker thread at a time: no locking inside.
 */
#ifndef USM_CORE_PAGEMAP_H
#define USM_CORE_PAGEMAP_H

#include <stdint.h>

struct usm_page;

struct usm_pagemap {
	void *root;
	uint64_t count;     /* entries present */
	uint64_t nodes;     /* nodes allocated, for the stats */
};

/*
 * An entry is a frame descriptor (8-byte aligned) or, with bit 0 set, the
 * index of a swapped-out page in the process's swap table (core/evict.c).
 */
static inline int usm_pm_is_swap(const struct usm_page *v)
{
	return ((uintptr_t)v & 1) != 0;
}
static inline uint64_t usm_pm_swap_idx(const struct usm_page *v)
{
	return (uintptr_t)v >> 1;
}
static inline struct usm_page *usm_pm_swap_tag(uint64_t idx)
{
	return (struct usm_page *)(uintptr_t)((idx << 1) | 1);
}

void usm_pagemap_init(struct usm_pagemap *pm);
struct usm_page *usm_pagemap_get(const struct usm_pagemap *pm, uint64_t vaddr);
/* Returns 0, or -1 if memory for a node could not be had. */
int usm_pagemap_set(struct usm_pagemap *pm, uint64_t vaddr, struct usm_page *pg);
/* Entries present among the n pages from vaddr. */
unsigned usm_pagemap_count(const struct usm_pagemap *pm, uint64_t vaddr, unsigned n);
/*
 * Set the n entries from vaddr to pages[0], pages[1], ... (one walk per
 * 2 MiB instead of one per page).  Returns 0, or -1, with no entry
 * changed, if memory for a node could not be had.
 */
int usm_pagemap_set_run(struct usm_pagemap *pm, uint64_t vaddr, struct usm_page *const *pages,
			unsigned n);
/*
 * The run of missing entries around vaddr (whose own entry is missing),
 * within [lo, hi): *start is its first page, *end the end of its last.
 */
void usm_pagemap_empty_run(const struct usm_pagemap *pm, uint64_t vaddr, uint64_t lo,
			   uint64_t hi, uint64_t *start, uint64_t *end);
/* Remove and return the entry at vaddr (NULL if none). */
struct usm_page *usm_pagemap_take(struct usm_pagemap *pm, uint64_t vaddr);
/*
 * Call fn for each entry in [start, end), in address order.  fn may remove
 * the entry it is given (and only that one).
 */
void usm_pagemap_walk(struct usm_pagemap *pm, uint64_t start, uint64_t end,
		      void (*fn)(uint64_t vaddr, struct usm_page *pg, void *arg),
		      void *arg);
/* Free every node; entries are not touched. */
void usm_pagemap_destroy(struct usm_pagemap *pm);

#endif /* USM_CORE_PAGEMAP_H */
