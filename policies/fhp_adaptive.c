/* SPDX-License-Identifier: MIT */
/*
 * policies/fhp_adaptive.c - flexible huge pages that size themselves.
 *
 * The first fault in an aligned region maps only `min_pages` around it
 * (default 1): a process that touches one page per region pays nothing
 * extra.  Once a region has `need` pages mapped already, it is in use
 * densely (sequential, strided or random but complete, it does not
 * matter) and the next fault maps every missing page of the region
 * (usm_resolve_fill), up to `max_pages` (default 512, 2 MiB).  A dense
 * region so costs two faults, and a sparse one a small page; the two
 * cases below make most dense regions cost one.
 *
 * A sequential stream (the region just below is full: its first, middle
 * and last pages are mapped, and its last page was written) fills a fresh
 * region on its first fault, so streams cost one fault per region, like a
 * fixed 2 MiB window.  Mapped is not touched: a region filled on its first
 * fault is full at once, and a sparse walk upwards from a dense area would
 * otherwise fill every region above it.  So the policy asks for write
 * sentinels (usm_process_want_sentinels): the last page of a region
 * filled ahead is write-protected until the program writes it, and a
 * stream only continues from a region whose end it reached.  The check is
 * three lookups and a pagemap read, and a sparse pattern that maps one
 * page per region never passes it.  It applies only while bloat is within
 * its bound (`need` is 1).
 *
 * Dense but not sequential (random order, a stride, several threads):
 * the first fault of a region is a probe, and the policy remembers how
 * many recent probes were followed by the region filling up.  When
 * nearly all were (HIT_PCT), a fresh region is filled on its first fault
 * too, except one in PROBE_EVERY that stays a probe, so that the record
 * follows a pattern that turns sparse.  The record decays by 1/4 per
 * probe: after a change to one page per region, the next probe turns the
 * prediction off (seven regions filled in vain, 14 MiB).  In a uniformly
 * random pass most regions see their first touch before any region has
 * filled, so the gain there is smaller than the 1 + 1/PROBE_EVERY faults
 * per region of a stride: 1.4 against 2 in a model of memflt's rand
 * (512 regions), 1.1 for its stride.  It too applies only while bloat is
 * within its bound.
 *
 * The bloat bound: the framework measures the pages mapped ahead that
 * were never touched (usm_process_bloat_pages).  While they exceed
 * `bloat_pct` (default 10) percent of the process's frames for more than
 * a second, `need` doubles each second (the policy waits for more
 * evidence before filling a region); when bloat falls under half the
 * bound, `need` halves back.
 *
 * Parameters per process (`process alloc <comm> fhp_adaptive max_pages=256`)
 * or instance-wide (`set fhp_adaptive.max_pages 256`).
 */
#include <stdlib.h>
#include <time.h>
#include <usm/usm.h>

struct adaptive {
	unsigned min_pages, max_pages, bloat_pct;
	unsigned need;               /* mapped pages that make a region dense */
	uint64_t over_since_ns;      /* bloat above the bound since, 0: not */
	uint64_t fresh;              /* fresh regions seen (not streams) */
	uint32_t probes, hits;       /* decayed counts, in units of 1/ONE */
};

#define PERSIST_NS 1000000000ull /* bloat must last this long to count */
#define ONE 256u                 /* fixed point of probes and hits */
#define PROBE_EVERY 8            /* predicting: one fresh region in 8 is a probe */
#define PROBES_MIN 2             /* probes on record (decayed) to predict */
#define HIT_PCT 75               /* of them followed by a fill, to predict */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static USM_LIST_HEAD(mapped);

static unsigned pow2_param(struct usm_process *p, const char *key, unsigned def)
{
	int err;
	long long v = usm_process_param_int(p, key, def, &err);

	if (err || v < 1 || v > 512 || (v & (v - 1))) {
		usm_log(USM_LOG_ERROR, "fhp_adaptive: %s must be a power of two from 1 to 512, "
			"got %lld; using %u", key, v, def);
		return def;
	}
	return (unsigned)v;
}

static int adaptive_new_process(struct usm_process *p)
{
	struct adaptive *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return USM_ENOMEM;
	a->min_pages = pow2_param(p, "min_pages", 1);
	a->max_pages = pow2_param(p, "max_pages", 512);
	a->bloat_pct = (unsigned)usm_process_param_int(p, "bloat_pct", 10, &err);
	if (err || a->bloat_pct > 100)
		a->bloat_pct = 10;
	a->need = 1;
	usm_process_set_priv(p, a);
	usm_process_track_bloat(p);
	usm_process_want_sentinels(p);
	return USM_OK;
}

static int adaptive_process_exit(struct usm_process *p)
{
	free(usm_process_priv(p));
	usm_process_set_priv(p, NULL);
	return USM_OK;
}

/*
 * Follow the measured bloat: demand more density while it stays high.
 * Pages mapped ahead and touched a moment later (a random but complete
 * pass) are bloat only briefly, so only bloat that lasts counts.
 */
static void bound_bloat(struct adaptive *a, struct usm_process *p)
{
	uint64_t frames = usm_process_frames(p), bloat = usm_process_bloat_pages(p);

	if (!frames)
		return;
	if (bloat * 100 > (uint64_t)a->bloat_pct * frames) {
		uint64_t t = now_ns();
		if (!a->over_since_ns)
			a->over_since_ns = t;
		else if (t - a->over_since_ns > PERSIST_NS && a->need < a->max_pages / 2) {
			a->need *= 2;
			a->over_since_ns = t;
		}
	} else {
		a->over_since_ns = 0;
		if (bloat * 200 < (uint64_t)a->bloat_pct * frames && a->need > 1)
			a->need /= 2;
	}
}

/* Is the region of `pages` pages just below ev's region full (sampled),
 * and was its last page written (or is its state unknown)? */
static bool follows_full_region(const struct usm_event *ev, unsigned pages)
{
	uint64_t span = (uint64_t)pages * usm_page_size();
	uint64_t base = ev->vaddr & ~(span - 1);

	if (base < span)
		return false;
	return usm_page_present(ev->origin, base - usm_page_size()) &&
	       usm_page_present(ev->origin, base - span / 2) &&
	       usm_page_present(ev->origin, base - span) &&
	       usm_page_written(ev->origin, base - usm_page_size()) != 0;
}

/* A fresh region got min_pages: one more probe, older ones count less. */
static void count_probe(struct adaptive *a)
{
	a->probes = a->probes - a->probes / 4 + ONE;
	a->hits -= a->hits / 4;
}

/* A region filled up after its probe. */
static void count_hit(struct adaptive *a)
{
	a->hits = a->hits + ONE < a->probes ? a->hits + ONE : a->probes;
}

static bool predicts_dense(const struct adaptive *a)
{
	return a->probes >= PROBES_MIN * ONE &&
	       (uint64_t)a->hits * 100 >= (uint64_t)a->probes * HIT_PCT;
}

/* Pages for the first fault of a region that holds nothing yet. */
static unsigned fresh_region_pages(struct adaptive *a, const struct usm_event *ev)
{
	if (a->need > 1 || a->max_pages == 1)
		return a->min_pages;          /* bloat over its bound: be frugal */
	if (follows_full_region(ev, a->max_pages))
		return a->max_pages;          /* a stream: no bloat, fill ahead now */
	if (predicts_dense(a) && ++a->fresh % PROBE_EVERY)
		return a->max_pages;
	count_probe(a);
	return a->min_pages;
}

static int adaptive_alloc(struct usm_event *ev)
{
	struct adaptive *a = usm_process_priv(ev->origin);
	unsigned have;

	if (!a)                      /* no state: behave like first_fit */
		return usm_resolve_window(ev, 1, &mapped);
	bound_bloat(a, ev->origin);
	have = usm_window_mapped(ev, a->max_pages);
	if (have >= a->need) {      /* need >= 1 */
		count_hit(a);
		return usm_resolve_fill(ev, a->max_pages, &mapped);
	}
	if (have)                    /* not dense enough yet */
		return usm_resolve_window(ev, a->min_pages, &mapped);
	return usm_resolve_window(ev, fresh_region_pages(a, ev), &mapped);
}

static int adaptive_pindex_free(struct usm_page *pg)
{
	usm_list_del(&pg->list);
	return USM_OK;
}

static const struct usm_alloc_policy_ops adaptive_ops = {
	.usm_new_process = adaptive_new_process,
	.usm_process_exit = adaptive_process_exit,
	.usm_alloc = adaptive_alloc,
	.usm_pindex_free = adaptive_pindex_free,
};

__attribute__((constructor)) static void adaptive_register(void)
{
	usm_register_alloc_policy(&adaptive_ops, "fhp_adaptive", false);
}
