/* SPDX-License-Identifier: MIT */
/*
 * policies/fifo.c - FIFO eviction, the original USM's basic swap policy.
 *
 * Pages leave memory in the order they arrived, whatever their use: the
 * cheapest policy to run and the baseline the others are measured
 * against.  Swap-in brings back `set fifo.prefetch N` pages around the
 * fault (an aligned group of N, a power of two, default 1).
 */
#include <usm/usm.h>

static USM_LIST_HEAD(queue);
static unsigned prefetch = 1;

static int fifo_init(void)
{
	int err = 0;
	long long n = usm_config_get_int("fifo.prefetch", 1, &err);

	if (err)            /* usm_config_get_int said what is wrong */
		return USM_EINVAL;
	if (n < 1 || n > USM_RESOLVE_MAX || (n & (n - 1))) {
		usm_log(USM_LOG_ERROR, "set fifo.prefetch: expected a power of two "
			"from 1 to %d, got '%s'", USM_RESOLVE_MAX, usm_config_get("fifo.prefetch"));
		return USM_EINVAL;
	}
	prefetch = (unsigned)n;
	return USM_OK;
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
	(void)ev;
	return prefetch;
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
