/* SPDX-License-Identifier: MIT */
/*
 * core/readahead.c - swap-in prefetch for swap policies: a fixed group,
 * or readahead that follows sequential streams (usm_swap_readahead).
 *
 * A process keeps USM_RA_STREAMS streams, each the end of the last group
 * it brought back and that group's size.  A swap-in at or just past the
 * end of a stream continues it and doubles its group (up to the policy's
 * maximum); any other swap-in starts a stream of one page in place of the
 * least recently continued one.  A group is at most an eighth of the
 * budget.  Random access thus pays nothing (one
 * page per fault, as without prefetch), a scan soon brings back whole
 * groups, and threads that sweep their own slices each keep a stream.
 * Forward streams only: a backward sweep gets one page per fault.
 *
 * Every call runs under the policy lock (it is made from usm_swap), which
 * also guards the streams.
 */
#include "core/instance.h"

#include <stdio.h>
#include <string.h>

#define RA_DEFAULT_MAX 64
#define RA_BUDGET_SHARE 8     /* a group is at most 1/8 of the budget */

static struct usm_ra_stream *ra_find(struct usm_process *p, uint64_t va, uint64_t ps)
{
	for (unsigned i = 0; i < USM_RA_STREAMS; i++) {
		struct usm_ra_stream *s = &p->ra[i];
		uint64_t span = (uint64_t)s->win * ps;

		/* A fault inside the last group (a page that was not swapped out
		 * or left again) or up to one group past it continues the stream:
		 * the slack lets threads of one stream overtake each other. */
		if (s->win && va + span >= s->next && va < s->next + span)
			return s;
	}
	return NULL;
}

static struct usm_ra_stream *ra_oldest(struct usm_process *p)
{
	struct usm_ra_stream *old = &p->ra[0];

	for (unsigned i = 1; i < USM_RA_STREAMS; i++)
		if (p->ra[i].used < old->used)
			old = &p->ra[i];
	return old;
}

unsigned usm_swap_readahead(struct usm_event *ev, unsigned max)
{
	struct usm_process *p = ev->origin;
	uint64_t ps = usm_page_size();
	struct usm_ra_stream *s;

	if (!p || max <= 1)
		return 1;
	if (max > USM_RESOLVE_MAX)
		max = USM_RESOLVE_MAX;
	/* A group that fills much of the budget would push out what the
	 * stream brought back before it is read. */
	while (max > 1 && (uint64_t)max * RA_BUDGET_SHARE > usm_frames_total())
		max /= 2;
	s = ra_find(p, ev->vaddr, ps);
	if (!s) {
		s = ra_oldest(p);
		s->win = 1;
	} else if (ev->vaddr >= s->next && s->win < max) {
		s->win *= 2;
	}
	while (s->win > max)
		s->win /= 2;
	s->next = (ev->vaddr | ((uint64_t)s->win * ps - 1)) + 1;
	s->used = ++p->ra_clock;
	return s->win;
}

/* `set <policy>.prefetch N|auto` and `set <policy>.readahead_max N`. */
int usm_prefetch_init(struct usm_prefetch *pf, const char *policy)
{
	char key[64];
	const char *v;
	int err = 0;
	long long n;

	snprintf(key, sizeof(key), "%s.prefetch", policy);
	v = usm_config_get(key);
	pf->fixed = 0;                  /* default: readahead */
	if (v && strcmp(v, "auto")) {
		n = usm_config_get_int(key, 1, &err);
		if (err)
			return USM_EINVAL;
		if (n < 1 || n > USM_RESOLVE_MAX || (n & (n - 1))) {
			usm_log(USM_LOG_ERROR, "set %s: expected 'auto' or a power of two "
				"from 1 to %d, got '%s'", key, USM_RESOLVE_MAX, v);
			return USM_EINVAL;
		}
		pf->fixed = (unsigned)n;
	}
	snprintf(key, sizeof(key), "%s.readahead_max", policy);
	n = usm_config_get_int(key, RA_DEFAULT_MAX, &err);
	if (err)
		return USM_EINVAL;
	if (n < 1 || n > USM_RESOLVE_MAX || (n & (n - 1))) {
		usm_log(USM_LOG_ERROR, "set %s: expected a power of two from 1 to %d, got '%s'",
			key, USM_RESOLVE_MAX, usm_config_get(key));
		return USM_EINVAL;
	}
	pf->max = (unsigned)n;
	return USM_OK;
}

unsigned usm_prefetch_pages(const struct usm_prefetch *pf, struct usm_event *ev)
{
	return pf->fixed ? pf->fixed : usm_swap_readahead(ev, pf->max);
}
