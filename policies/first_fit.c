/* SPDX-License-Identifier: MIT */
/*
 * policies/first_fit.c - one page per fault, the original USM's basic
 * allocation policy.  Mapped frames are kept on a FIFO list in mapping
 * order, which is what an eviction policy would walk.
 */
#include <usm/usm.h>

static USM_LIST_HEAD(mapped);

static int ff_alloc(struct usm_event *ev)
{
	struct usm_page *pg = usm_frame_take(ev);

	if (!pg)
		return USM_ENOMEM;
	if (usm_resolve(ev, ev->vaddr, &pg, 1) != USM_OK) {
		usm_frame_put(pg);
		return USM_EINVAL;
	}
	usm_list_add_tail(&pg->list, &mapped);
	return USM_OK;
}

static int ff_pindex_free(struct usm_page *pg)
{
	usm_list_del(&pg->list);
	return USM_OK;
}

static const struct usm_alloc_policy_ops first_fit_ops = {
	.usm_alloc = ff_alloc,
	.usm_pindex_free = ff_pindex_free,
};

__attribute__((constructor)) static void first_fit_register(void)
{
	usm_register_alloc_policy(&first_fit_ops, "first_fit", true);
}
