/* SPDX-License-Identifier: MIT */
/*
 * usm sim --trace T --memory M --policy P [--prefetch N|auto] [--plugin X.so]...
 *         [-o LINE]...
 *
 * Replays a recorded trace (core/trace.c) with M of memory through the
 * swap policy P, with no kernel involved, and prints its faults (misses)
 * and miss ratio next to FIFO, LRU, CLOCK and Belady's optimum.
 *
 * P runs as it does in an instance: its registered usm_swap_policy_ops
 * are called, and the frame functions it uses are the framework's own
 * (core/frames.c) on a minimal instance that has a config and a frame
 * table and nothing else: no socket, no workers, no userfaultfd.
 *
 * Each operation of the trace (cli/sim_trace.c):
 *  - a reference (FAULT, SWAPIN or ACCESS page) to a resident page is a
 *    hit and sets the page's REFERENCED flag, as the framework does when
 *    it sees an access;
 *  - a reference to any other page is a miss.  When the page was evicted
 *    earlier in the replay, it is a swap-in: the policy's usm_swap says
 *    how many pages of the aligned group around it come in (neighbours
 *    evicted earlier; prefetch).  Frames are made free by asking the
 *    policy for victims (usm_evict_fallback, as many as still needed),
 *    then the pages are mapped: REFERENCED set, usm_page_mapped called.
 *    Victims are not passed to usm_page_unmapped (the policy already
 *    took them off its lists, as the API says);
 *  - a FREE drops the page: usm_page_unmapped if it was resident.
 *
 * ACCESS records count as references like faults do: in the recorded run
 * those pages were resident and touched, and with less simulated memory
 * the same touch may be a miss.  EVICT records are ignored: evictions are
 * what the simulation decides.  The policy's cond_swap_out is not called
 * (a replay has no reclaimer ticks).
 */
#include "cli/cli.h"
#include "cli/sim.h"
#include "core/instance.h"
#include "core/trace.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX_LINES 64
#define SIM_MAX_FRAMES (1ull << 32)
#define SIM_MAX_PAGE   (1u << 20)        /* frames.c counts frames per MiB */

/* state[] bits, by page id */
#define PG_SWAPPED    (1u << 0)   /* evicted in this replay, content on "swap" */
#define PG_PREFETCHED (1u << 1)   /* brought in ahead, not referenced yet */

struct sim_opts {
	const char *trace, *memory, *policy, *prefetch;
	const char *plugins[SIM_MAX_LINES];
	unsigned nplugins;
	const char *lines[SIM_MAX_LINES];
	unsigned nlines;
};

struct sim_run {
	const struct sim_trace *t;
	const struct usm_swap_policy *pol;
	bool pol_started;                  /* usm_init succeeded: usm_exit due */
	struct usm_instance *inst;
	struct usm_process **procs;        /* by pid index */
	struct usm_page **frame_of;        /* by page id; NULL: not resident */
	uint32_t *page_of;                 /* by frame index */
	uint8_t *state;                    /* by page id: PG_* */
	uint64_t frames;
	uint64_t misses, swapins, evictions, prefetched, prefetch_used;
	char err[512];
};

static int sim_usage(void)
{
	fprintf(stderr,
		"usage: usm sim --trace FILE --memory SIZE --policy NAME [--prefetch N|auto]\n"
		"               [--plugin FILE.so]... [-o LINE]...\n"
		"  SIZE: MiB (64), a size with K/M/G (512K, 1G), or pages (1000p)\n");
	return 2;
}

/* ---- arguments --------------------------------------------------------- */

static int parse_opts(int argc, char **argv, struct sim_opts *o)
{
	static const struct option longopts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "memory", required_argument, NULL, 'm' },
		{ "policy", required_argument, NULL, 'P' },
		{ "prefetch", required_argument, NULL, 'f' },
		{ "plugin", required_argument, NULL, 'p' },
		{ "option", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "t:m:P:p:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o->trace = optarg; break;
		case 'm': o->memory = optarg; break;
		case 'P': o->policy = optarg; break;
		case 'f': o->prefetch = optarg; break;
		case 'p':
		case 'o':
			if ((c == 'p' ? o->nplugins : o->nlines) == SIM_MAX_LINES) {
				fprintf(stderr, "usm sim: more than %d -%c options\n", SIM_MAX_LINES, c);
				return 2;
			}
			if (c == 'p')
				o->plugins[o->nplugins++] = optarg;
			else
				o->lines[o->nlines++] = optarg;
			break;
		default: return sim_usage();
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usm sim: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->trace || !o->memory || !o->policy) {
		fprintf(stderr, "usm sim: --%s is required\n",
			!o->trace ? "trace" : !o->memory ? "memory" : "policy");
		return sim_usage();
	}
	return 0;
}

/*
 * SIZE: a bare number is MiB; K/M/G (KiB, MiB, GiB) are sizes that must be
 * whole pages; p is a page count.  Returns pages, 0 on error.
 */
static uint64_t parse_memory(const char *s, uint64_t page_size)
{
	char *end;
	unsigned long long v;
	uint64_t unit, bytes;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-' || !v)
		return 0;
	if (v > SIM_MAX_FRAMES)
		return 0;
	if (!strcmp(end, "p"))
		return v;
	if (!*end || !strcmp(end, "M"))
		unit = 1ull << 20;
	else if (!strcmp(end, "K"))
		unit = 1ull << 10;
	else if (!strcmp(end, "G"))
		unit = 1ull << 30;
	else
		return 0;
	if (v > UINT64_MAX / unit)
		return 0;
	bytes = v * unit;
	if (bytes % page_size || bytes / page_size > SIM_MAX_FRAMES)
		return 0;
	return bytes / page_size;
}

static int check_prefetch(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!strcmp(s, "auto"))
		return 0;
	if (end == s || *end || v < 1 || v > USM_RESOLVE_MAX || (v & (v - 1))) {
		fprintf(stderr, "usm sim: --prefetch wants 'auto' or a power of two from 1 to %d, "
			"got '%s'\n",
			USM_RESOLVE_MAX, s);
		return 2;
	}
	return 0;
}

/* ---- the minimal instance ------------------------------------------------ */

static int build_config(struct usm_config *cfg, const struct sim_opts *o, uint32_t page_size,
			uint64_t frames, char *err, size_t errlen)
{
	char line[128];

	usm_config_defaults(cfg);
	for (unsigned i = 0; i < o->nlines; i++)
		if (usm_config_apply_line(cfg, o->lines[i], err, errlen))
			return -1;
	if (o->prefetch) {
		snprintf(line, sizeof(line), "set %s.prefetch %s", o->policy, o->prefetch);
		if (usm_config_apply_line(cfg, line, err, errlen))
			return -1;
	}
	/* frames.c sizes its table in MiB; the cap is the real budget. */
	cfg->page_size = page_size;
	cfg->memory_mib = (frames * page_size + (1 << 20) - 1) >> 20;
	return 0;
}

static void host_destroy(struct sim_run *r)
{
	if (r->pol_started && r->pol->ops->usm_exit)
		r->pol->ops->usm_exit();
	for (uint32_t i = 0; r->procs && i < r->t->npids; i++)
		free(r->procs[i]);
	free(r->procs);
	free(r->frame_of);
	free(r->page_of);
	free(r->state);
	if (r->inst) {
		usm_frames_fini(r->inst);
		usm_config_free(&r->inst->cfg);
		free(r->inst);
	}
	usm_inst = NULL;
}

static int host_create(struct sim_run *r, const struct sim_opts *o)
{
	const struct sim_trace *t = r->t;

	r->inst = calloc(1, sizeof(*r->inst));
	if (!r->inst)
		goto nomem;
	snprintf(r->inst->name, sizeof(r->inst->name), "sim");
	if (build_config(&r->inst->cfg, o, t->page_size, r->frames, r->err, sizeof(r->err)))
		return -1;
	usm_inst = r->inst;
	if (usm_frames_init(r->inst))
		goto nomem;
	r->inst->cap = r->frames;
	r->procs = calloc(t->npids, sizeof(*r->procs));
	r->frame_of = calloc(t->npages + 1ull, sizeof(*r->frame_of));
	r->page_of = calloc(r->inst->nframes, sizeof(*r->page_of));
	r->state = calloc(t->npages + 1ull, 1);
	if (!r->procs || !r->frame_of || !r->page_of || !r->state)
		goto nomem;
	for (uint32_t i = 0; i < t->npids; i++) {
		r->procs[i] = calloc(1, sizeof(**r->procs));
		if (!r->procs[i])
			goto nomem;
		r->procs[i]->pid = (pid_t)t->pids[i];
		snprintf(r->procs[i]->comm, sizeof(r->procs[i]->comm), "pid%u", t->pids[i]);
	}
	if (r->pol->ops->usm_init && r->pol->ops->usm_init() != USM_OK) {
		snprintf(r->err, sizeof(r->err), "policy %s: usm_init failed", r->pol->name);
		return -1;
	}
	r->pol_started = true;
	return 0;
nomem:
	snprintf(r->err, sizeof(r->err), "out of memory for %llu frames",
		 (unsigned long long)r->frames);
	return -1;
}

/* ---- replay through the policy ---------------------------------------------- */

static struct usm_event page_event(const struct sim_run *r, uint32_t id)
{
	const struct sim_page_key *k = &r->t->keys[id];

	return (struct usm_event){
		.type = USM_EVENT_ALLOC, .origin = r->procs[k->pid_ix],
		.vaddr = k->vpn * r->t->page_size, .length = r->t->page_size,
		.offst = id,                   /* stands in for the swap slot */
	};
}

static int evict(struct sim_run *r, struct usm_page *pg)
{
	uint64_t fi = (uint64_t)(pg - r->inst->frames);
	uint32_t id;

	if (pg < r->inst->frames || fi >= r->inst->nframes || &r->inst->frames[fi] != pg ||
	    pg->state != USM_PAGE_MAPPED || r->frame_of[r->page_of[fi]] != pg) {
		snprintf(r->err, sizeof(r->err), "policy %s chose a victim that is not a "
			 "mapped frame (%p)", r->pol->name, (void *)pg);
		return -1;
	}
	id = r->page_of[fi];
	r->frame_of[id] = NULL;
	r->state[id] = PG_SWAPPED;          /* an unused prefetch is dropped */
	usm_frame_put(pg);
	r->evictions++;
	return 0;
}

/* Evict until `need` frames are free. */
static int make_room(struct sim_run *r, uint64_t need)
{
	struct usm_page *victims[USM_RESOLVE_MAX];

	while (usm_frames_free() < need) {
		uint64_t want = need - usm_frames_free();
		unsigned n = r->pol->ops->usm_evict_fallback(victims, want > USM_RESOLVE_MAX ?
							     USM_RESOLVE_MAX : (unsigned)want);

		if (!n || n > want) {
			snprintf(r->err, sizeof(r->err), "policy %s returned %u victims when "
				 "asked for %llu with all %llu frames in use", r->pol->name, n,
				 (unsigned long long)want, (unsigned long long)r->frames);
			return -1;
		}
		for (unsigned i = 0; i < n; i++)
			if (evict(r, victims[i]))
				return -1;
	}
	return 0;
}

static void map_page(struct sim_run *r, uint32_t id)
{
	struct usm_event ev = page_event(r, id);
	struct usm_page *pg = usm_frame_take(&ev);

	pg->state = USM_PAGE_MAPPED;
	pg->vaddr = ev.vaddr;
	pg->fw_flags |= USM_PG_REFERENCED;
	r->page_of[pg->frame] = id;
	r->frame_of[id] = pg;
	r->state[id] &= (uint8_t)~PG_SWAPPED;
	r->pol->ops->usm_page_mapped(pg);
}

/* How many pages of the aligned group around a swapped-out page come in. */
static int swapin_group(struct sim_run *r, uint32_t id, unsigned *group)
{
	struct usm_event ev = page_event(r, id);
	unsigned n = r->pol->ops->usm_swap ? r->pol->ops->usm_swap(&ev) : 1;

	if (n < 1 || n > USM_RESOLVE_MAX || (n & (n - 1))) {
		snprintf(r->err, sizeof(r->err), "policy %s: usm_swap returned %u (expected a "
			 "power of two from 1 to %d)", r->pol->name, n, USM_RESOLVE_MAX);
		return -1;
	}
	*group = n;
	return 0;
}

static int miss(struct sim_run *r, uint32_t id)
{
	const struct sim_page_key *k = &r->t->keys[id];
	uint32_t ids[USM_RESOLVE_MAX];
	unsigned group = 1, n = 0;

	r->misses++;
	if (r->state[id] & PG_SWAPPED) {
		r->swapins++;
		if (swapin_group(r, id, &group))
			return -1;
	}
	/* The faulting page, then its evicted neighbours, in address order,
	 * as many as the memory holds. */
	ids[n++] = id;
	for (uint64_t v = k->vpn & ~(uint64_t)(group - 1); v < (k->vpn | (group - 1)) + 1; v++) {
		int64_t nb = v == k->vpn ? -1 : sim_trace_find(r->t, k->pid, v);

		if (nb >= 0 && (r->state[nb] & PG_SWAPPED) && n < r->frames)
			ids[n++] = (uint32_t)nb;
	}
	if (make_room(r, n))
		return -1;
	for (unsigned i = 0; i < n; i++) {
		map_page(r, ids[i]);
		if (i) {
			r->state[ids[i]] |= PG_PREFETCHED;
			r->prefetched++;
		}
	}
	return 0;
}

static void release(struct sim_run *r, uint32_t id)
{
	struct usm_page *pg = r->frame_of[id];

	r->state[id] = 0;
	if (!pg)
		return;
	r->pol->ops->usm_page_unmapped(pg);
	r->frame_of[id] = NULL;
	usm_frame_put(pg);
}

static int replay(struct sim_run *r)
{
	for (size_t i = 0; i < r->t->nops; i++) {
		uint32_t id = r->t->ops[i].page;
		struct usm_page *pg = r->frame_of[id];

		if (r->t->ops[i].kind == SIM_FREE) {
			release(r, id);
		} else if (pg) {
			pg->fw_flags |= USM_PG_REFERENCED;
			if (r->state[id] & PG_PREFETCHED)
				r->prefetch_used++;
			r->state[id] &= (uint8_t)~PG_PREFETCHED;
		} else if (miss(r, id)) {
			return -1;
		}
	}
	return 0;
}

/* ---- output ------------------------------------------------------------------ */

static void print_row(const char *name, int64_t misses, uint64_t refs)
{
	if (misses < 0) {
		printf("%-16s %12s %11s\n", name, "-", "(no memory)");
		return;
	}
	printf("%-16s %12lld %10.2f%%\n", name, (long long)misses,
	       refs ? 100.0 * (double)misses / (double)refs : 0.0);
}

static void print_trace(const char *path, const struct sim_trace *t, uint64_t frames)
{
	printf("trace      %s: %llu records (fault %llu, swapin %llu, access %llu, free %llu, "
	       "evict %llu ignored)\n", path, (unsigned long long)t->records,
	       (unsigned long long)t->rec_kind[USM_TR_FAULT],
	       (unsigned long long)t->rec_kind[USM_TR_SWAPIN],
	       (unsigned long long)t->rec_kind[USM_TR_ACCESS],
	       (unsigned long long)t->rec_kind[USM_TR_FREE],
	       (unsigned long long)t->rec_kind[USM_TR_EVICT]);
	printf("pages      %u distinct in %u process%s, page size %u\n", t->npages, t->npids,
	       t->npids == 1 ? "" : "es", t->page_size);
	printf("references %llu, frees %llu\n", (unsigned long long)t->refs,
	       (unsigned long long)t->frees);
	printf("memory     %llu pages (%.2f MiB)\n\n", (unsigned long long)frames,
	       (double)frames * t->page_size / (1 << 20));
}

static void print_results(const struct sim_run *r, const struct sim_opts *o)
{
	const struct sim_trace *t = r->t;
	static const struct { const char *name; enum sim_ref_kind kind; } refs[] = {
		{ "FIFO", SIM_FIFO }, { "LRU", SIM_LRU }, { "CLOCK", SIM_CLOCK },
	};

	printf("%-16s %12s %11s\n", "policy", "faults", "miss ratio");
	print_row(o->policy, (int64_t)r->misses, t->refs);
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
		print_row(refs[i].name, sim_ref_queue(t, r->frames, refs[i].kind), t->refs);
	print_row("OPT", sim_ref_opt(t, r->frames), t->refs);
	printf("\n%s: %llu evictions, %llu swap-ins", o->policy,
	       (unsigned long long)r->evictions, (unsigned long long)r->swapins);
	printf(", %llu pages prefetched, %llu of them used\n",
	       (unsigned long long)r->prefetched, (unsigned long long)r->prefetch_used);
}

/* ---- the command ---------------------------------------------------------------- */

static int find_policy(const struct sim_opts *o, struct sim_run *r)
{
	char names[512];

	for (unsigned i = 0; i < o->nplugins; i++)
		if (usm_plugin_load(o->plugins[i], r->err, sizeof(r->err))) {
			fprintf(stderr, "usm sim: %s\n", r->err);
			return 1;
		}
	r->pol = usm_registry_find_swap(o->policy);
	if (r->pol && (!r->pol->ops->usm_page_mapped || !r->pol->ops->usm_page_unmapped ||
		       !r->pol->ops->usm_evict_fallback)) {
		fprintf(stderr, "usm sim: swap policy '%s' lacks usm_page_mapped, "
			"usm_page_unmapped or usm_evict_fallback\n", o->policy);
		return 1;
	}
	if (!r->pol) {
		usm_registry_swap_names(names, sizeof(names));
		fprintf(stderr, "usm sim: unknown swap policy '%s' (registered: %s)\n",
			o->policy, names);
		return 2;
	}
	return 0;
}

int cmd_sim(int argc, char **argv)
{
	struct sim_opts o = { 0 };
	struct sim_trace t;
	struct sim_run r = { .t = &t };
	int rc = parse_opts(argc, argv, &o);

	if (rc || (o.prefetch && (rc = check_prefetch(o.prefetch))) || (rc = find_policy(&o, &r)))
		return rc;
	if (sim_trace_load(&t, o.trace, r.err, sizeof(r.err))) {
		fprintf(stderr, "usm sim: %s\n", r.err);
		return 1;
	}
	if (t.page_size > SIM_MAX_PAGE) {
		fprintf(stderr, "usm sim: %s: page size %u is above %u, the largest "
			"usm sim supports\n", o.trace, t.page_size, SIM_MAX_PAGE);
		sim_trace_free(&t);
		return 1;
	}
	r.frames = parse_memory(o.memory, t.page_size);
	if (!r.frames) {
		fprintf(stderr, "usm sim: bad --memory '%s': expected MiB (64), a size in whole "
			"%u-byte pages (512K, 1G) or a page count (1000p)\n", o.memory, t.page_size);
		sim_trace_free(&t);
		return 2;
	}
	rc = host_create(&r, &o) || replay(&r) ? 1 : 0;
	if (rc) {
		fprintf(stderr, "usm sim: %s\n", r.err);
	} else {
		print_trace(o.trace, &t, r.frames);
		print_results(&r, &o);
	}
	host_destroy(&r);
	sim_trace_free(&t);
	return rc;
}
