/* SPDX-License-Identifier: MIT */
/*
 * policies/batch.c - N pages per fault (`set batch.pages N`, default 16).
 *
 * Maps the missing run of the naturally aligned N-page window around the
 * fault in one go, so a sequential toucher takes one fault per N pages.
 * When the budget cannot cover the whole window it maps what it can,
 * down to the single faulting page.
 */
#include <usm/usm.h>

#define BATCH_MAX 512

static USM_LIST_HEAD(mapped);
static unsigned batch_pages = 16;

static int batch_init(void)
{
	int err;
	long long n = usm_config_get_int("batch.pages", 16, &err);

	if (err || n < 1 || n > BATCH_MAX || (n & (n - 1))) {
		usm_log(USM_LOG_ERROR, "batch.pages must be a power of two from 1 to %d, got %lld",
			BATCH_MAX, n);
		return USM_EINVAL;
	}
	batch_pages = (unsigned)n;
	return USM_OK;
}

/* Not enough frames for the window: fall back to the faulting page. */
static unsigned fit_budget(const struct usm_event *ev, uint64_t *start, unsigned n)
{
	uint64_t free = usm_frames_free();

	if (free >= n)
		return n;
	*start = ev->vaddr;
	return free ? 1 : 0;
}

static int batch_alloc(struct usm_event *ev)
{
	struct usm_page *pages[BATCH_MAX];
	uint64_t start;
	unsigned n = usm_fault_window(ev, batch_pages, &start);

	n = fit_budget(ev, &start, n);
	if (n == 0 || usm_frames_take(ev, pages, n) != USM_OK)
		return USM_ENOMEM;
	if (usm_resolve(ev, start, pages, n) != USM_OK) {
		for (unsigned i = 0; i < n; i++)
			usm_frame_put(pages[i]);
		return USM_EINVAL;
	}
	for (unsigned i = 0; i < n; i++)
		usm_list_add_tail(&pages[i]->list, &mapped);
	return USM_OK;
}

static int batch_pindex_free(struct usm_page *pg)
{
	usm_list_del(&pg->list);
	return USM_OK;
}

static const struct usm_alloc_policy_ops batch_ops = {
	.usm_init = batch_init,
	.usm_alloc = batch_alloc,
	.usm_pindex_free = batch_pindex_free,
};

__attribute__((constructor)) static void batch_register(void)
{
	usm_register_alloc_policy(&batch_ops, "batch", false);
}
