/* SPDX-License-Identifier: MIT */
/*
 * policies/fifo.c - FIFO eviction, the original USM's basic swap policy.
 *
 * Pages leave memory in the order they arrived, whatever their use: the
 * cheapest policy to run and the baseline the others are measured
 * against.  Swap-in prefetch: `set fifo.prefetch N` pages around the
 * fault (an aligned group of N, a power of two; 1 is demand paging), or
 * `auto` (the default), readahead that follows sequential streams
 * (usm_swap_readahead).
 */
#include <usm/usm.h>

static USM_LIST_HEAD(queue);
static struct usm_prefetch prefetch;

static int fifo_init(void)
{
	return usm_prefetch_init(&prefetch, "fifo");
}

static void fifo_mapped(struct usm_page *pg)
{
	usm_list_add_tail(&pg->list2, &queue);
}

static void fifo_unmapped(struct usm_page *pg)
{
	usm_list_del(&pg->list2);
}

static unsigned fifo_evict(struct usm_page **out, unsigned want)
{
	unsigned n = 0;

	while (n < want && !usm_list_empty(&queue)) {
		struct usm_page *pg = usm_list_entry(queue.next, struct usm_page, list2);
		usm_list_del(&pg->list2);
		out[n++] = pg;
	}
	return n;
}

static unsigned fifo_swap(struct usm_event *ev)
{
	return usm_prefetch_pages(&prefetch, ev);
}

static const struct usm_swap_policy_ops fifo_ops = {
	.usm_init = fifo_init,
	.usm_page_mapped = fifo_mapped,
	.usm_page_unmapped = fifo_unmapped,
	.usm_evict_fallback = fifo_evict,
	.usm_swap = fifo_swap,
};

__attribute__((constructor)) static void fifo_register(void)
{
	usm_register_swap_policy(&fifo_ops, "fifo", true);
}
