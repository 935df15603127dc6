/* SPDX-License-Identifier: MIT */
/*
 * policies/clock.c - CLOCK (second chance) eviction.
 *
 * Evictable frames sit on one ring in the order they were mapped; the
 * clock hand is the ring's head.  To pick a victim the hand looks at the
 * head frame: if it was accessed since the hand last passed
 * (usm_page_referenced, which also clears the answer) it gets a second
 * chance and goes to the tail; otherwise it is the victim.  Pinned frames
 * are passed over without touching their access information.  A frame is
 * mapped "referenced", so a new page survives the hand's first pass.
 *
 * Swap-in prefetch: `set clock.prefetch N` (a power of two) pages, the
 * aligned group around the fault, or `auto` (the default), readahead that
 * follows sequential streams (usm_swap_readahead).
 */
#include <usm/usm.h>

static USM_LIST_HEAD(ring);
static uint64_t nring;
static struct usm_prefetch prefetch;

static int clock_init(void)
{
	return usm_prefetch_init(&prefetch, "clock");
}

static void clock_exit(void)
{
	usm_list_init(&ring);
	nring = 0;
}

static void clock_mapped(struct usm_page *pg)
{
	usm_list_add_tail(&pg->list2, &ring);
	nring++;
}

static void clock_unmapped(struct usm_page *pg)
{
	usm_list_del(&pg->list2);
	nring--;
}

static unsigned clock_evict(struct usm_page **out, unsigned want)
{
	/* One lap clears every access bit, the next meets every unpinned
	 * frame again: two laps find all the victims there are. */
	uint64_t steps = 2 * nring;
	unsigned n = 0;

	while (n < want && steps--) {
		struct usm_page *pg = usm_list_first_entry(&ring, struct usm_page, list2);

		if (usm_page_pinned(pg) || usm_page_referenced(pg)) {
			usm_list_move_tail(&pg->list2, &ring);
			continue;
		}
		clock_unmapped(pg);
		out[n++] = pg;
	}
	return n;
}

static unsigned clock_swap_in(struct usm_event *ev)
{
	return usm_prefetch_pages(&prefetch, ev);
}

static const struct usm_swap_policy_ops clock_ops = {
	.usm_init = clock_init,
	.usm_exit = clock_exit,
	.usm_page_mapped = clock_mapped,
	.usm_page_unmapped = clock_unmapped,
	.usm_evict_fallback = clock_evict,
	.usm_swap = clock_swap_in,
};

__attribute__((constructor)) static void clock_register(void)
{
	usm_register_swap_policy(&clock_ops, "clock", false);
}
