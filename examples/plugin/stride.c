/* SPDX-License-Identifier: MIT */
/*
 * examples/plugin/stride.c - "stride": a prefetching allocation policy,
 * built as a plugin against <usm/usm.h> alone.
 *
 * For each process it remembers where the pages it mapped last end.  A
 * fault exactly there continues a sequential stream, and the run of pages
 * mapped for it doubles: 1, 2, 4, ... up to `set stride.max_pages N`
 * (default 64).  Any other fault ends the stream and maps one page.  The
 * run starts at the faulting page and goes up (prefetch ahead); it stops
 * early at a page that is already mapped, and shrinks to what the budget
 * still holds.
 *
 * Build and use:
 *   cc -shared -fPIC $(pkg-config --cflags usm) stride.c -o stride.so
 *   usm run -p ./stride.so -P stride -o 'set stride.max_pages 128' -- prog
 */
#include <usm/usm.h>

#define STRIDE_LIMIT 512          /* most pages one usm_resolve accepts */

/* Per-process state, in the process's usm_process_priv slot. */
struct stride_proc {
	uint64_t next;                /* first page after the last run mapped */
	unsigned run;                 /* pages in that run */
	struct usm_list_head frames;  /* the process's frames, mapping order */
};

static unsigned max_pages = 64;

static int stride_init(void)
{
	int err;
	long long n = usm_config_get_int("stride.max_pages", 64, &err);

	if (err || n < 1 || n > STRIDE_LIMIT) {
		usm_log(USM_LOG_ERROR, "stride.max_pages must be 1 to %d, got %s",
			STRIDE_LIMIT, usm_config_get("stride.max_pages"));
		return USM_EINVAL;
	}
	max_pages = (unsigned)n;
	return USM_OK;
}

/* The process's state, created on first use if usm_new_process could not. */
static struct stride_proc *state_of(struct usm_process *p)
{
	struct stride_proc *st = usm_process_priv(p);

	if (!st) {
		st = usm_mem_calloc(1, sizeof(*st));
		if (!st)
			return NULL;
		usm_list_init(&st->frames);
		usm_process_set_priv(p, st);
	}
	return st;
}

static int stride_new_process(struct usm_process *p)
{
	return state_of(p) ? USM_OK : USM_ENOMEM;
}

static int stride_process_exit(struct usm_process *p)
{
	struct stride_proc *st = usm_process_priv(p);
	struct usm_list_head *pos, *tmp;

	if (!st)
		return USM_OK;
	/* The framework releases the process's frames after this returns and
	 * calls stride_pindex_free for each: unlink them now, so those calls
	 * never touch the list head freed below. */
	usm_list_for_each_safe(pos, tmp, &st->frames)
		usm_list_del(pos);
	usm_process_set_priv(p, NULL);
	usm_mem_free(st);
	return USM_OK;
}

static int stride_alloc(struct usm_event *ev)
{
	struct usm_page *pages[STRIDE_LIMIT];
	struct stride_proc *st = state_of(ev->origin);
	uint64_t ps = usm_page_size(), avail = usm_frames_free();
	unsigned want = 1, n;

	/* Sequential: this fault is on the page right after the last run. */
	if (st && st->run && ev->vaddr == st->next)
		want = st->run >= max_pages / 2 ? max_pages : st->run * 2;

	/* Missing pages from the fault up, at most want. */
	for (n = 1; n < want; n++)
		if (usm_page_present(ev->origin, ev->vaddr + (uint64_t)n * ps))
			break;

	/* Short of frames: fewer pages, down to the faulting one. */
	if (avail == 0)
		return USM_ENOMEM;           /* the OOM policy decides */
	if (n > avail)
		n = (unsigned)avail;

	if (usm_frames_take(ev, pages, n) != USM_OK)
		return USM_ENOMEM;
	if (usm_resolve(ev, ev->vaddr, pages, n) != USM_OK) {
		for (unsigned i = 0; i < n; i++)
			usm_frame_put(pages[i]);
		return USM_EINVAL;
	}
	if (st) {
		for (unsigned i = 0; i < n; i++)
			usm_list_add_tail(&pages[i]->list, &st->frames);
		st->next = ev->vaddr + (uint64_t)n * ps;
		st->run = n;
	}
	return USM_OK;
}

/* A frame leaves its process (freed, or refused by the kernel because the
 * run went past the end of the mapping): take it off our list. */
static int stride_pindex_free(struct usm_page *pg)
{
	usm_list_del(&pg->list);
	return USM_OK;
}

static const struct usm_alloc_policy_ops stride_ops = {
	.usm_init = stride_init,
	.usm_alloc = stride_alloc,
	.usm_pindex_free = stride_pindex_free,
	.usm_new_process = stride_new_process,
	.usm_process_exit = stride_process_exit,
};

__attribute__((constructor)) static void stride_register(void)
{
	usm_register_alloc_policy(&stride_ops, "stride", false);
}
