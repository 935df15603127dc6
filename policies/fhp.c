/* SPDX-License-Identifier: MIT */
/*
 * policies/fhp.c - flexible huge pages: N contiguous pages per fault.
 *
 * On a fault, maps the missing run of the naturally aligned N-page window
 * around it (N = 16 … 512: 64 KiB … 2 MiB), clipped to the mapping, so a
 * process that touches its memory densely takes one fault per N pages.
 * N is per process: `process alloc <comm> fhp pages=64`, else
 * `set fhp.pages 64`, default 16.  `track_bloat=1` has the framework
 * measure the pages mapped but never touched (shown by `usm stat`).  When the budget cannot cover a window
 * the policy maps the faulting page alone.
 *
 * Registered twice: as "fhp" and as "batch" (the fixed-size batch policy
 * of earlier configs, read from `set batch.pages`).
 */
#include <usm/usm.h>

#define DEFAULT_PAGES 16
#define MAX_PAGES 512

static USM_LIST_HEAD(mapped);

static int fhp_new_process(struct usm_process *p)
{
	int err;
	long long n = usm_process_param_int(p, "pages", DEFAULT_PAGES, &err);

	if (err || n < 1 || n > MAX_PAGES || (n & (n - 1))) {
		usm_log(USM_LOG_ERROR, "pid %d (%s): pages must be a power of two from 1 to %d, "
			"got %lld; using %d", usm_process_pid(p), usm_process_comm(p),
			MAX_PAGES, n, DEFAULT_PAGES);
		n = DEFAULT_PAGES;
	}
	usm_process_set_priv(p, (void *)(uintptr_t)n);
	/* Measuring bloat costs a process_madvise per fault: only on request. */
	if (n > 1 && usm_process_param_int(p, "track_bloat", 0, NULL))
		usm_process_track_bloat(p);
	return USM_OK;
}

static int fhp_alloc(struct usm_event *ev)
{
	unsigned n = (unsigned)(uintptr_t)usm_process_priv(ev->origin);

	return usm_resolve_window(ev, n ? n : DEFAULT_PAGES, &mapped);
}

static int fhp_pindex_free(struct usm_page *pg)
{
	usm_list_del(&pg->list);
	return USM_OK;
}

static const struct usm_alloc_policy_ops fhp_ops = {
	.usm_new_process = fhp_new_process,
	.usm_alloc = fhp_alloc,
	.usm_pindex_free = fhp_pindex_free,
};

__attribute__((constructor)) static void fhp_register(void)
{
	usm_register_alloc_policy(&fhp_ops, "fhp", false);
	usm_register_alloc_policy(&fhp_ops, "batch", false);
}
