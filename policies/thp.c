/* SPDX-License-Identifier: MIT */
/*
 * policies/thp.c - real 2 MiB pages.
 *
 * A fault in a 2 MiB-aligned window that lies wholly inside its mapping
 * and holds nothing yet gets the whole window as one PMD-mapped huge page
 * (usm_resolve_huge: a ready huge page moved into place).  Elsewhere, near
 * the ends of mappings or in partly mapped windows, it maps the missing
 * run of the window with 4 KiB pages, like fhp with 512 pages.
 */
#include <usm/usm.h>

#define HUGE_PAGES USM_RESOLVE_MAX

static USM_LIST_HEAD(mapped);

static int thp_new_process(struct usm_process *p)
{
	usm_process_want_huge(p);
	return USM_OK;
}

static int try_huge(struct usm_event *ev)
{
	struct usm_page *pages[HUGE_PAGES];

	if (usm_frames_free() < HUGE_PAGES || usm_window_mapped(ev, HUGE_PAGES))
		return USM_EINVAL;
	if (usm_frames_take(ev, pages, HUGE_PAGES) != USM_OK)
		return USM_ENOMEM;
	if (usm_resolve_huge(ev, pages) != USM_OK) {
		for (unsigned i = 0; i < HUGE_PAGES; i++)
			usm_frame_put(pages[i]);
		return USM_EINVAL;
	}
	for (unsigned i = 0; i < HUGE_PAGES; i++)
		usm_list_add_tail(&pages[i]->list, &mapped);
	return USM_OK;
}

static int thp_alloc(struct usm_event *ev)
{
	if (try_huge(ev) == USM_OK)
		return USM_OK;
	return usm_resolve_window(ev, HUGE_PAGES, &mapped);
}

static int thp_pindex_free(struct usm_page *pg)
{
	usm_list_del(&pg->list);
	return USM_OK;
}

static const struct usm_alloc_policy_ops thp_ops = {
	.usm_new_process = thp_new_process,
	.usm_alloc = thp_alloc,
	.usm_pindex_free = thp_pindex_free,
};

__attribute__((constructor)) static void thp_register(void)
{
	usm_register_alloc_policy(&thp_ops, "thp", false);
}
