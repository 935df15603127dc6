/* SPDX-License-Identifier: MIT */
/*
 * policies/thp.c - real 2 MiB pages.
 *
 * A fault in a 2 MiB-aligned window that lies wholly inside its mapping
 * and holds nothing yet gets the whole window as one PMD-mapped huge page
 * (usm_resolve_huge: a ready huge page moved into place).  Elsewhere, near
 * the ends of mappings or in partly mapped windows, it maps the missing
 * run of the window with 4 KiB pages, like fhp with 512 pages.
 *
 * Fault-ahead, as the kernel's readahead does for files: when the windows
 * just below the fault are full, the fault is part of a stream, and the
 * policy maps as many windows ahead as it found full below, up to `ahead`
 * (default and most USM_AHEAD_MAX; 0 turns it off).  A stream so takes
 * one fault per 9 windows instead of one per window, and each fault saved
 * is a 2 MiB clear saved too: on a THP-eligible mapping the kernel clears
 * a huge page before it finds the mapping registered and asks USM.
 *
 * Parameter per process (`process alloc <comm> thp ahead=0`) or
 * instance-wide (`set thp.ahead 4`).
 */
#include <usm/usm.h>

#define HUGE_PAGES USM_RESOLVE_MAX

static USM_LIST_HEAD(mapped);

static unsigned ahead_max(struct usm_process *p)
{
	int err;
	long long v = usm_process_param_int(p, "ahead", USM_AHEAD_MAX, &err);

	if (err || v < 0 || v > USM_AHEAD_MAX) {
		usm_log(USM_LOG_ERROR, "thp: ahead must be 0 to %d, got %lld; using %d",
			USM_AHEAD_MAX, v, USM_AHEAD_MAX);
		return USM_AHEAD_MAX;
	}
	return (unsigned)v;
}

static int thp_new_process(struct usm_process *p)
{
	usm_process_want_huge(p);
	usm_process_set_priv(p, (void *)(uintptr_t)(ahead_max(p) + 1));
	return USM_OK;
}

static int thp_process_exit(struct usm_process *p)
{
	usm_process_set_priv(p, NULL);
	return USM_OK;
}

static uint64_t window_bytes(void)
{
	return (uint64_t)HUGE_PAGES * usm_page_size();
}

/* Is the window at base full?  Its first, middle and last pages tell. */
static bool window_full(const struct usm_process *p, uint64_t base)
{
	uint64_t ps = usm_page_size();

	return usm_page_present(p, base) && usm_page_present(p, base + window_bytes() / 2) &&
	       usm_page_present(p, base + window_bytes() - ps);
}

/* How many windows to map ahead of the fault's window at base. */
static unsigned stream_length(const struct usm_event *ev, uint64_t base, unsigned max)
{
	unsigned n = 0;

	while (n < max && base >= (uint64_t)(n + 1) * window_bytes() &&
	       window_full(ev->origin, base - (uint64_t)(n + 1) * window_bytes()))
		n++;
	return n;
}

static int take_window(struct usm_event *ev, struct usm_page **pages)
{
	if (usm_frames_free() < HUGE_PAGES)
		return USM_ENOMEM;
	return usm_frames_take(ev, pages, HUGE_PAGES);
}

static void keep_window(struct usm_page **pages)
{
	for (unsigned i = 0; i < HUGE_PAGES; i++)
		usm_list_add_tail(&pages[i]->list, &mapped);
}

static void give_back(struct usm_page **pages)
{
	for (unsigned i = 0; i < HUGE_PAGES; i++)
		usm_frame_put(pages[i]);
}

static void map_ahead(struct usm_event *ev, uint64_t base)
{
	unsigned max = (unsigned)(uintptr_t)usm_process_priv(ev->origin);
	unsigned n = max ? stream_length(ev, base, max - 1) : 0;
	struct usm_page *pages[HUGE_PAGES];

	for (unsigned i = 1; i <= n; i++) {
		if (take_window(ev, pages) != USM_OK)
			return;
		if (usm_resolve_huge_ahead(ev, base + i * window_bytes(), pages) != USM_OK) {
			give_back(pages);
			return;
		}
		keep_window(pages);
	}
}

static int try_huge(struct usm_event *ev)
{
	struct usm_page *pages[HUGE_PAGES];
	uint64_t base = ev->vaddr & ~(window_bytes() - 1);
	int rc;

	if (usm_frames_free() < HUGE_PAGES || usm_window_mapped(ev, HUGE_PAGES))
		return USM_EINVAL;
	rc = take_window(ev, pages);
	if (rc != USM_OK)
		return rc;
	if (usm_resolve_huge(ev, pages) != USM_OK) {
		give_back(pages);
		return USM_EINVAL;
	}
	keep_window(pages);
	map_ahead(ev, base);
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
	.usm_process_exit = thp_process_exit,
	.usm_alloc = thp_alloc,
	.usm_pindex_free = thp_pindex_free,
};

__attribute__((constructor)) static void thp_register(void)
{
	usm_register_alloc_policy(&thp_ops, "thp", false);
}
