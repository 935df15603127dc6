/* SPDX-License-Identifier: MIT */
/*
 * cli/sim_trace.c - load a trace file for `usm sim`.
 *
 * Records are put in time order first (stable: equal times keep file
 * order), because a file holds one block of records per process buffer,
 * not one global order.  Each record of npages pages becomes npages
 * operations; EVICT records are counted and dropped (the simulated policy
 * decides evictions itself); FAULT, SWAPIN and ACCESS are all references.
 */
#include "cli/sim.h"
#include "core/tracefile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX_OPS 0xffffffffull

struct rec_ix {
	struct usm_trace_rec r;
	size_t ix;                   /* position in the file */
};

static int by_time(const void *a, const void *b)
{
	const struct rec_ix *x = a, *y = b;

	if (x->r.time_ns != y->r.time_ns)
		return x->r.time_ns < y->r.time_ns ? -1 : 1;
	return x->ix < y->ix ? -1 : x->ix > y->ix;
}

static uint64_t key_hash(uint32_t pid, uint64_t vpn)
{
	uint64_t k = vpn * 0x9e3779b97f4a7c15ull ^ pid * 0xc2b2ae3d27d4eb4full;

	return k ^ (k >> 29);
}

static uint64_t slot_of(const struct sim_trace *t, uint32_t pid, uint64_t vpn)
{
	uint64_t i = key_hash(pid, vpn) & (t->nslots - 1);

	while (t->slots[i]) {
		const struct sim_page_key *k = &t->keys[t->slots[i] - 1];

		if (k->pid == pid && k->vpn == vpn)
			break;
		i = (i + 1) & (t->nslots - 1);
	}
	return i;
}

int64_t sim_trace_find(const struct sim_trace *t, uint32_t pid, uint64_t vpn)
{
	uint32_t s = t->nslots ? t->slots[slot_of(t, pid, vpn)] : 0;

	return s ? (int64_t)s - 1 : -1;
}

static int grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
	uint64_t n = *cap ? *cap : 1024;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static int rehash(struct sim_trace *t)
{
	uint64_t n = t->nslots ? t->nslots * 2 : 4096;

	free(t->slots);
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots)
		return -1;
	t->nslots = n;
	for (uint32_t id = 0; id < t->npages; id++)
		t->slots[slot_of(t, t->keys[id].pid, t->keys[id].vpn)] = id + 1;
	return 0;
}

static int pid_index(struct sim_trace *t, uint32_t pid, uint64_t *cap)
{
	for (uint32_t i = t->npids; i-- > 0;)
		if (t->pids[i] == pid)
			return (int)i;
	if (grow((void **)&t->pids, cap, t->npids + 1ull, sizeof(*t->pids)))
		return -1;
	t->pids[t->npids] = pid;
	return (int)t->npids++;
}

/* The id of (pid, vpn), given one if new; -1 when out of memory. */
static int64_t intern(struct sim_trace *t, uint32_t pid, uint64_t vpn, uint64_t *cap,
		      uint64_t *pidcap)
{
	uint64_t s;
	int pi;

	if (2 * (t->npages + 1ull) > t->nslots && rehash(t))
		return -1;
	s = slot_of(t, pid, vpn);
	if (t->slots[s])
		return t->slots[s] - 1;
	if (t->npages == UINT32_MAX - 1 ||
	    grow((void **)&t->keys, cap, t->npages + 1ull, sizeof(*t->keys)))
		return -1;
	pi = pid_index(t, pid, pidcap);
	if (pi < 0)
		return -1;
	t->keys[t->npages] = (struct sim_page_key){ .vpn = vpn, .pid = pid, .pid_ix = (uint32_t)pi };
	t->slots[s] = ++t->npages;
	return t->npages - 1;
}

static int push_op(struct sim_trace *t, uint64_t *opcap, uint32_t id, enum sim_op_kind kind)
{
	if (t->nops == SIM_MAX_OPS || grow((void **)&t->ops, opcap, t->nops + 1, sizeof(*t->ops)))
		return -1;
	t->ops[t->nops++] = (struct sim_op){ .page = id, .kind = (uint8_t)kind };
	return 0;
}

static int add_refs(struct sim_trace *t, const struct usm_trace_rec *r, uint64_t *opcap,
		    uint64_t *keycap, uint64_t *pidcap)
{
	for (uint32_t p = 0; p < r->npages; p++) {
		int64_t id = intern(t, r->pid, r->vpn + p, keycap, pidcap);

		if (id < 0 || push_op(t, opcap, (uint32_t)id, SIM_REF))
			return -1;
	}
	return 0;
}

/* Only pages referenced before matter: freeing any other changes nothing
 * (and a munmap of a large, mostly untouched range would cost an id per
 * page). */
static int add_frees(struct sim_trace *t, const struct usm_trace_rec *r, uint64_t *opcap)
{
	for (uint32_t p = 0; p < r->npages; p++) {
		int64_t id = sim_trace_find(t, r->pid, r->vpn + p);

		if (id >= 0 && push_op(t, opcap, (uint32_t)id, SIM_FREE))
			return -1;
		t->frees += id >= 0;
	}
	return 0;
}

static int read_all(const char *path, struct rec_ix **out, size_t *n, uint32_t *page_size,
		    char *err, size_t errlen)
{
	struct usm_trace_reader rd;
	struct rec_ix *v = NULL;
	uint64_t cap = 0;
	int rc;

	*n = 0;
	if (usm_trace_open(&rd, path)) {
		snprintf(err, errlen, "%s", rd.err);
		return -1;
	}
	*page_size = rd.hdr.page_size;
	for (;;) {
		struct usm_trace_rec r;

		rc = usm_trace_next(&rd, &r);
		if (rc <= 0)
			break;
		if (grow((void **)&v, &cap, *n + 1, sizeof(*v))) {
			snprintf(err, errlen, "%s: out of memory after %zu records", path, *n);
			rc = -2;
			break;
		}
		v[*n] = (struct rec_ix){ .r = r, .ix = *n };
		(*n)++;
	}
	if (rc == -1)
		snprintf(err, errlen, "%s", rd.err);
	usm_trace_close(&rd);
	if (rc < 0) {
		free(v);
		return -1;
	}
	*out = v;
	return 0;
}

int sim_trace_load(struct sim_trace *t, const char *path, char *err, size_t errlen)
{
	uint64_t opcap = 0, keycap = 0, pidcap = 0;
	struct rec_ix *recs;
	size_t n;

	memset(t, 0, sizeof(*t));
	if (read_all(path, &recs, &n, &t->page_size, err, errlen))
		return -1;
	qsort(recs, n, sizeof(*recs), by_time);
	t->records = n;
	for (size_t i = 0; i < n; i++) {
		const struct usm_trace_rec *r = &recs[i].r;

		t->rec_kind[r->kind]++;
		t->page_kind[r->kind] += r->npages;
		if (r->kind == USM_TR_EVICT)
			continue;
		if (r->kind == USM_TR_FREE ? add_frees(t, r, &opcap) :
					     add_refs(t, r, &opcap, &keycap, &pidcap))
			goto nomem;
	}
	free(recs);
	t->refs = t->nops - t->frees;
	return 0;
nomem:
	snprintf(err, errlen, "%s: too large to simulate here (%zu records, %zu page "
		 "operations so far): out of memory", path, n, t->nops);
	free(recs);
	sim_trace_free(t);
	return -1;
}

void sim_trace_free(struct sim_trace *t)
{
	free(t->ops);
	free(t->keys);
	free(t->slots);
	free(t->pids);
	memset(t, 0, sizeof(*t));
}
