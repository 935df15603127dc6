/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/pagemap.c: the per-process radix tree from virtual
 * page to frame descriptor.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdbool.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

#include "core/pagemap.h"

#define PG     0x1000ull
#define M2     (1ull << 21)
#define G1     (1ull << 30)
#define G512   (1ull << 39)
#define TOP    (1ull << 47)           /* end of the 47-bit user space */

/* Entries are never dereferenced: fake, distinct, non-NULL pointers. */
static struct usm_page *P(uint64_t i)
{
	return (struct usm_page *)(uintptr_t)(0x10000000ull + i * 16);
}

/* ---- basic set / get / take ---------------------------------------- */

static void test_empty(void **state)
{
	struct usm_pagemap pm;

	usm_pagemap_init(&pm);
	assert_null(pm.root);
	assert_int_equal(pm.count, 0);
	assert_int_equal(pm.nodes, 0);
	assert_null(usm_pagemap_get(&pm, 0));
	assert_null(usm_pagemap_get(&pm, TOP - PG));
	assert_null(usm_pagemap_take(&pm, 0x7000));
	assert_int_equal(pm.count, 0);
	usm_pagemap_destroy(&pm);
	assert_null(pm.root);
}

static void test_set_get_take(void **state)
{
	struct usm_pagemap pm;

	usm_pagemap_init(&pm);
	assert_int_equal(usm_pagemap_set(&pm, 0x400000, P(1)), 0);
	assert_int_equal(pm.count, 1);
	assert_ptr_equal(usm_pagemap_get(&pm, 0x400000), P(1));
	/* any address inside the page finds it */
	assert_ptr_equal(usm_pagemap_get(&pm, 0x400001), P(1));
	assert_ptr_equal(usm_pagemap_get(&pm, 0x400fff), P(1));
	assert_null(usm_pagemap_get(&pm, 0x3ff000));
	assert_null(usm_pagemap_get(&pm, 0x401000));

	/* overwrite keeps the count */
	assert_int_equal(usm_pagemap_set(&pm, 0x400000, P(2)), 0);
	assert_int_equal(pm.count, 1);
	assert_ptr_equal(usm_pagemap_get(&pm, 0x400000), P(2));

	assert_int_equal(usm_pagemap_set(&pm, 0x401000, P(3)), 0);
	assert_int_equal(pm.count, 2);
	assert_ptr_equal(usm_pagemap_take(&pm, 0x400000), P(2));
	assert_int_equal(pm.count, 1);
	assert_null(usm_pagemap_get(&pm, 0x400000));
	assert_null(usm_pagemap_take(&pm, 0x400000));
	assert_int_equal(pm.count, 1);
	assert_ptr_equal(usm_pagemap_get(&pm, 0x401000), P(3));
	/* take in an allocated leaf, empty slot */
	assert_null(usm_pagemap_take(&pm, 0x402000));
	/* take where no node exists */
	assert_null(usm_pagemap_take(&pm, 5 * G512));
	assert_int_equal(pm.count, 1);

	/* storing NULL is a removal, not a phantom entry */
	assert_int_equal(usm_pagemap_set(&pm, 0x401000, NULL), 0);
	assert_int_equal(pm.count, 0);
	assert_null(usm_pagemap_get(&pm, 0x401000));
	assert_int_equal(usm_pagemap_set(&pm, 0x403000, NULL), 0);
	assert_int_equal(pm.count, 0);
	usm_pagemap_destroy(&pm);
	assert_int_equal(pm.count, 0);
	assert_int_equal(pm.nodes, 0);
}

/* Node counts at the radix boundaries: 1 root + 1 per new level. */
static void test_boundaries_nodes(void **state)
{
	struct usm_pagemap pm;

	usm_pagemap_init(&pm);
	assert_int_equal(usm_pagemap_set(&pm, 0, P(0)), 0);
	assert_int_equal(pm.nodes, 4);                 /* root, L1, L2, leaf */
	assert_int_equal(usm_pagemap_set(&pm, PG, P(1)), 0);
	assert_int_equal(pm.nodes, 4);                 /* same leaf */
	assert_int_equal(usm_pagemap_set(&pm, M2 - PG, P(2)), 0);
	assert_int_equal(pm.nodes, 4);                 /* last slot of the leaf */
	assert_int_equal(usm_pagemap_set(&pm, M2, P(3)), 0);
	assert_int_equal(pm.nodes, 5);                 /* new leaf */
	assert_int_equal(usm_pagemap_set(&pm, G1 - PG, P(4)), 0);
	assert_int_equal(pm.nodes, 6);                 /* new leaf, same L2 */
	assert_int_equal(usm_pagemap_set(&pm, G1, P(5)), 0);
	assert_int_equal(pm.nodes, 8);                 /* new L2 + leaf */
	assert_int_equal(usm_pagemap_set(&pm, G512 - PG, P(6)), 0);
	assert_int_equal(pm.nodes, 10);                /* L2 + leaf under L1[0] */
	assert_int_equal(usm_pagemap_set(&pm, G512, P(7)), 0);
	assert_int_equal(pm.nodes, 13);                /* L1 + L2 + leaf */
	assert_int_equal(usm_pagemap_set(&pm, TOP - PG, P(8)), 0);
	assert_int_equal(pm.nodes, 16);                /* top of the 47-bit space */
	assert_int_equal(pm.count, 9);

	static const uint64_t va[] = { 0, PG, M2 - PG, M2, G1 - PG, G1, G512 - PG,
				       G512, TOP - PG };
	for (unsigned i = 0; i < 9; i++)
		assert_ptr_equal(usm_pagemap_get(&pm, va[i]), P(i));
	/* neighbours of each entry are empty */
	static const uint64_t empty[] = { 2 * PG, M2 - 2 * PG, M2 + PG, G1 - 2 * PG,
					  G1 + PG, G512 - 2 * PG, G512 + PG, TOP - 2 * PG,
					  2 * G512, TOP / 2 };
	for (unsigned i = 0; i < sizeof(empty) / sizeof(empty[0]); i++)
		assert_null(usm_pagemap_get(&pm, empty[i]));

	/* take does not free nodes; destroy frees them all */
	for (unsigned i = 0; i < 9; i++)
		assert_ptr_equal(usm_pagemap_take(&pm, va[i]), P(i));
	assert_int_equal(pm.count, 0);
	assert_int_equal(pm.nodes, 16);
	usm_pagemap_destroy(&pm);
	assert_int_equal(pm.nodes, 0);
	assert_null(pm.root);
}

/* ---- walks -------------------------------------------------------- */

struct rec {
	uint64_t va[64];
	struct usm_page *pg[64];
	unsigned n;
	struct usm_pagemap *pm;     /* non-NULL: remove each entry */
};

static void rec_cb(uint64_t va, struct usm_page *pg, void *arg)
{
	struct rec *r = arg;

	assert_true(r->n < 64);
	r->va[r->n] = va;
	r->pg[r->n++] = pg;
	if (r->pm)
		assert_ptr_equal(usm_pagemap_take(r->pm, va), pg);
}

static const uint64_t walk_va[] = {
	0, PG, M2 - PG, M2, M2 + PG, G1 - PG, G1, G1 + M2, G512 - PG, G512,
	G512 + G1, 3 * G512 + 5 * PG, TOP - M2, TOP - PG,
};
#define NWALK (sizeof(walk_va) / sizeof(walk_va[0]))

static void fill_walk(struct usm_pagemap *pm)
{
	usm_pagemap_init(pm);
	/* insert in reverse to show that the walk order is the address order */
	for (unsigned i = NWALK; i-- > 0;)
		assert_int_equal(usm_pagemap_set(pm, walk_va[i], P(i)), 0);
	assert_int_equal(pm->count, NWALK);
}

static void check_walk(struct usm_pagemap *pm, uint64_t start, uint64_t end)
{
	struct rec r = { .n = 0 };
	unsigned n = 0;

	usm_pagemap_walk(pm, start, end, rec_cb, &r);
	for (unsigned i = 0; i < NWALK; i++) {
		if (walk_va[i] < start || walk_va[i] >= end)
			continue;
		assert_true(n < r.n);
		assert_int_equal(r.va[n], walk_va[i]);
		assert_ptr_equal(r.pg[n], P(i));
		n++;
	}
	assert_int_equal(r.n, n);
}

static void test_walk_bounds(void **state)
{
	struct usm_pagemap pm;

	fill_walk(&pm);
	check_walk(&pm, 0, UINT64_MAX);
	check_walk(&pm, 0, TOP);
	check_walk(&pm, 0, 0);               /* empty range */
	check_walk(&pm, G1, G1);
	check_walk(&pm, G1, M2);             /* start > end */
	check_walk(&pm, 0, PG);              /* end is exclusive */
	check_walk(&pm, PG, M2 - PG);
	check_walk(&pm, PG, M2);
	check_walk(&pm, M2 - PG, M2 + PG);
	check_walk(&pm, M2 - PG, M2 + 2 * PG);
	check_walk(&pm, M2 + 2 * PG, G1 - PG);
	check_walk(&pm, G1 - PG, G1 + PG);
	check_walk(&pm, G1 + PG, G512 - PG);
	check_walk(&pm, G1 + PG, G512);
	check_walk(&pm, G512 - PG, G512 + PG);
	check_walk(&pm, G512 + PG, TOP - PG);
	check_walk(&pm, TOP - M2, TOP);
	check_walk(&pm, TOP - PG, UINT64_MAX);
	check_walk(&pm, TOP, UINT64_MAX);
	check_walk(&pm, 2 * G512, 3 * G512 + 6 * PG);
	check_walk(&pm, 3 * G512 + 5 * PG, 3 * G512 + 6 * PG);
	for (unsigned i = 0; i < NWALK; i++)
		for (unsigned j = i; j < NWALK; j++)
			check_walk(&pm, walk_va[i], walk_va[j]);
	usm_pagemap_destroy(&pm);
}

/* The callback may remove the entry it is given. */
static void test_walk_remove(void **state)
{
	struct usm_pagemap pm;
	struct rec r = { .n = 0 };

	fill_walk(&pm);
	r.pm = &pm;
	usm_pagemap_walk(&pm, M2, G512 + PG, rec_cb, &r);
	/* M2, M2+PG, G1-PG, G1, G1+M2, G512-PG, G512 */
	assert_int_equal(r.n, 7);
	assert_int_equal(r.va[0], M2);
	assert_int_equal(r.va[6], G512);
	assert_int_equal(pm.count, NWALK - 7);
	for (unsigned i = 0; i < NWALK; i++) {
		bool gone = walk_va[i] >= M2 && walk_va[i] < G512 + PG;
		if (gone)
			assert_null(usm_pagemap_get(&pm, walk_va[i]));
		else
			assert_ptr_equal(usm_pagemap_get(&pm, walk_va[i]), P(i));
	}
	/* remove everything, like a process teardown */
	r.n = 0;
	usm_pagemap_walk(&pm, 0, UINT64_MAX, rec_cb, &r);
	assert_int_equal(r.n, NWALK - 7);
	assert_int_equal(pm.count, 0);
	r.n = 0;
	usm_pagemap_walk(&pm, 0, UINT64_MAX, rec_cb, &r);
	assert_int_equal(r.n, 0);
	usm_pagemap_destroy(&pm);
}

/* ---- destroy releases every node ------------------------------------- */

static void test_destroy_frees(void **state)
{
	struct usm_pagemap pm;
	struct mallinfo2 before, after;

	before = mallinfo2();
	usm_pagemap_init(&pm);
	/* a sparse spread: many nodes at every level */
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(usm_pagemap_set(&pm, ((i * 0x9e3779b97f4a7c15ull) % TOP) & ~(PG - 1),
						 P(i + 1)), 0);
	assert_true(pm.nodes > 300);
	usm_pagemap_destroy(&pm);
	after = mallinfo2();
	assert_int_equal(pm.nodes, 0);
	assert_int_equal(pm.count, 0);
	/* Under ASan mallinfo2 does not see the allocations; LSan checks then. */
	assert_int_equal(after.uordblks, before.uordblks);
}

/* ---- randomised comparison with a reference model -------------------- */

/* The model: entries sorted by address (binary search, memmove). */
struct model {
	uint64_t *va;
	struct usm_page **pg;
	size_t n, cap;
};

/* Index of the first entry >= va. */
static size_t model_lower(const struct model *m, uint64_t va)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->va[mid] < va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static ssize_t model_find(const struct model *m, uint64_t va)
{
	size_t i = model_lower(m, va);

	return i < m->n && m->va[i] == va ? (ssize_t)i : -1;
}

static void model_set(struct model *m, uint64_t va, struct usm_page *pg)
{
	size_t i = model_lower(m, va);

	if (i < m->n && m->va[i] == va) {
		m->pg[i] = pg;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		m->va = realloc(m->va, m->cap * sizeof(*m->va));
		m->pg = realloc(m->pg, m->cap * sizeof(*m->pg));
		assert_non_null(m->va);
		assert_non_null(m->pg);
	}
	memmove(&m->va[i + 1], &m->va[i], (m->n - i) * sizeof(*m->va));
	memmove(&m->pg[i + 1], &m->pg[i], (m->n - i) * sizeof(*m->pg));
	m->va[i] = va;
	m->pg[i] = pg;
	m->n++;
}

static struct usm_page *model_take(struct model *m, uint64_t va)
{
	ssize_t i = model_find(m, va);
	struct usm_page *pg;

	if (i < 0)
		return NULL;
	pg = m->pg[i];
	memmove(&m->va[i], &m->va[i + 1], (m->n - (size_t)i - 1) * sizeof(*m->va));
	memmove(&m->pg[i], &m->pg[i + 1], (m->n - (size_t)i - 1) * sizeof(*m->pg));
	m->n--;
	return pg;
}

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	/* xorshift64*: fixed seed, same sequence every run */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

/* Addresses that stress the radix: clusters, boundaries, far apart. */
static uint64_t rnd_addr(void)
{
	static const uint64_t bases[] = { 0, M2, G1, G512, TOP - G1, 0x7f0000000000ull,
					  0x555555554000ull };
	uint64_t r = rnd();

	switch (r % 5) {
	case 0:  /* within 16 pages around a boundary */
		return (bases[(r >> 8) % 7] + (((r >> 16) % 32) - 16) * PG) % TOP;
	case 1:  /* within a 4 MiB cluster */
		return bases[(r >> 8) % 7] + ((r >> 16) % 1024) * PG;
	case 2:  /* anywhere */
		return ((r >> 8) % TOP) & ~(PG - 1);
	default: /* a dense 256-page region */
		return 0x7ffff0000000ull + ((r >> 8) % 256) * PG;
	}
}

struct collect {
	uint64_t *va;
	struct usm_page **pg;
	size_t n, cap;
	uint64_t last;
	bool remove_odd;
	struct usm_pagemap *pm;
};

static void collect_cb(uint64_t va, struct usm_page *pg, void *arg)
{
	struct collect *c = arg;

	if (c->n)
		assert_true(va > c->last);     /* strictly ascending */
	c->last = va;
	assert_true(c->n < c->cap);
	c->va[c->n] = va;
	c->pg[c->n++] = pg;
	if (c->remove_odd && (va / PG) % 2)
		assert_ptr_equal(usm_pagemap_take(c->pm, va), pg);
}

static void check_range(struct usm_pagemap *pm, struct model *m, uint64_t start,
			uint64_t end, bool remove_odd)
{
	struct collect c = { .cap = m->n + 1, .remove_odd = remove_odd, .pm = pm };
	size_t lo = model_lower(m, start), hi = start < end ? model_lower(m, end) : lo;

	c.va = malloc(c.cap * sizeof(*c.va));
	c.pg = malloc(c.cap * sizeof(*c.pg));
	assert_non_null(c.va);
	assert_non_null(c.pg);
	usm_pagemap_walk(pm, start, end, collect_cb, &c);
	assert_int_equal(c.n, hi - lo);
	for (size_t i = 0; i < c.n; i++) {
		assert_int_equal(c.va[i], m->va[lo + i]);
		assert_ptr_equal(c.pg[i], m->pg[lo + i]);
	}
	if (remove_odd)
		for (size_t i = 0; i < c.n; i++)
			if ((c.va[i] / PG) % 2)
				model_take(m, c.va[i]);
	free(c.va);
	free(c.pg);
}

static void test_random_vs_model(void **state)
{
	struct usm_pagemap pm;
	struct model m = { 0 };

	usm_pagemap_init(&pm);
	for (int op = 0; op < 30000; op++) {
		uint64_t r = rnd(), va = rnd_addr();

		switch (r % 16) {
		case 0: case 1: case 2: case 3: case 4: case 5: {
			struct usm_page *pg = P((uint64_t)op + 1);
			assert_int_equal(usm_pagemap_set(&pm, va, pg), 0);
			model_set(&m, va, pg);
			break;
		}
		case 6: case 7: case 8:
			assert_ptr_equal(usm_pagemap_take(&pm, va), model_take(&m, va));
			break;
		case 9: case 10: case 11: case 12: case 14: {
			/* get, also at an unaligned address inside the page */
			ssize_t i = model_find(&m, va);
			assert_ptr_equal(usm_pagemap_get(&pm, va + (r >> 40) % PG),
					 i < 0 ? NULL : m.pg[i]);
			break;
		}
		case 13: {
			uint64_t b = rnd_addr();
			check_range(&pm, &m, va < b ? va : b, va < b ? b : va, false);
			break;
		}
		default:
			if (op % 7 == 0) {
				uint64_t b = rnd_addr();
				check_range(&pm, &m, va < b ? va : b, va < b ? b : va, true);
			}
			break;
		}
		assert_int_equal(pm.count, m.n);
	}
	check_range(&pm, &m, 0, UINT64_MAX, false);
	/* every model entry is there, and it was a real workout */
	for (size_t i = 0; i < m.n; i++)
		assert_ptr_equal(usm_pagemap_get(&pm, m.va[i]), m.pg[i]);
	assert_true(m.n > 1000);
	check_range(&pm, &m, 0, UINT64_MAX, true);
	assert_int_equal(pm.count, m.n);
	usm_pagemap_destroy(&pm);
	free(m.va);
	free(m.pg);
}

/* ---- range operations against page-by-page answers ---------------- */

#define AREA_PAGES 4096                /* 16 MiB: eight leaves */
#define AREA_BASE  (G1 - 3 * M2)       /* crosses a 1 GiB node boundary too */

static unsigned count_slow(const struct usm_pagemap *pm, uint64_t va, unsigned n)
{
	unsigned c = 0;

	for (unsigned i = 0; i < n; i++)
		c += usm_pagemap_get(pm, va + i * PG) != NULL;
	return c;
}

/* An area with dense, sparse and missing 2 MiB leaves. */
static void fill_area(struct usm_pagemap *pm)
{
	for (unsigned i = 0; i < AREA_PAGES; i++) {
		unsigned leaf = i / 512;
		bool on = leaf == 1 || leaf == 6 ? false :          /* no leaf at all */
			  leaf == 3 ? rnd() % 50 == 0 :              /* sparse */
			  rnd() % 3 != 0;
		if (on)
			assert_int_equal(usm_pagemap_set(pm, AREA_BASE + i * PG, P(i + 1)), 0);
	}
}

static void test_count_and_empty_run(void **state)
{
	struct usm_pagemap pm;

	usm_pagemap_init(&pm);
	fill_area(&pm);
	for (int t = 0; t < 3000; t++) {
		unsigned first = (unsigned)(rnd() % AREA_PAGES);
		unsigned n = (unsigned)(rnd() % (AREA_PAGES - first)) + 1;
		uint64_t va = AREA_BASE + first * PG, lo, hi, start, end, want_lo, want_hi;

		assert_int_equal(usm_pagemap_count(&pm, va, n), count_slow(&pm, va, n));
		if (usm_pagemap_get(&pm, va))
			continue;
		lo = AREA_BASE + (rnd() % (first + 1)) * PG;
		hi = va + PG + (rnd() % (AREA_PAGES - first)) * PG;
		for (want_lo = va; want_lo > lo && !usm_pagemap_get(&pm, want_lo - PG); want_lo -= PG)
			;
		for (want_hi = va + PG; want_hi < hi && !usm_pagemap_get(&pm, want_hi); want_hi += PG)
			;
		usm_pagemap_empty_run(&pm, va, lo, hi, &start, &end);
		assert_int_equal(start, want_lo);
		assert_int_equal(end, want_hi);
	}
	/* the bottom and the top of the address space */
	uint64_t start, end;
	usm_pagemap_empty_run(&pm, 0, 0, 4 * PG, &start, &end);
	assert_int_equal(start, 0);
	assert_int_equal(end, 4 * PG);
	usm_pagemap_empty_run(&pm, TOP - PG, TOP - M2, TOP, &start, &end);
	assert_int_equal(start, TOP - M2);
	assert_int_equal(end, TOP);
	assert_int_equal(usm_pagemap_count(&pm, TOP - 8 * PG, 8), 0);
	usm_pagemap_destroy(&pm);
}

static void test_set_run(void **state)
{
	struct usm_pagemap pm;
	static struct usm_page *pages[1024];

	usm_pagemap_init(&pm);
	fill_area(&pm);
	for (int t = 0; t < 500; t++) {
		unsigned first = (unsigned)(rnd() % (AREA_PAGES - 1024));
		unsigned n = (unsigned)(rnd() % 1024) + 1;
		uint64_t va = AREA_BASE + first * PG;
		uint64_t before = pm.count, had = usm_pagemap_count(&pm, va, n);

		for (unsigned i = 0; i < n; i++)
			pages[i] = rnd() % 4 ? P(100000 + (uint64_t)t * 1024 + i) : NULL;
		assert_int_equal(usm_pagemap_set_run(&pm, va, pages, n), 0);
		unsigned now = 0;
		for (unsigned i = 0; i < n; i++) {
			assert_ptr_equal(usm_pagemap_get(&pm, va + i * PG), pages[i]);
			now += pages[i] != NULL;
		}
		assert_int_equal(pm.count, before - had + now);
		assert_int_equal(usm_pagemap_count(&pm, va, n), now);
	}
	/* untouched neighbours of a run stay as they were */
	assert_int_equal(usm_pagemap_set(&pm, G512 - PG, P(7)), 0);
	assert_int_equal(usm_pagemap_set(&pm, G512 + 600 * PG, P(8)), 0);
	for (unsigned i = 0; i < 600; i++)
		pages[i] = P(9 + i);
	assert_int_equal(usm_pagemap_set_run(&pm, G512, pages, 600), 0);
	assert_ptr_equal(usm_pagemap_get(&pm, G512 - PG), P(7));
	assert_ptr_equal(usm_pagemap_get(&pm, G512 + 599 * PG), P(9 + 599));
	assert_ptr_equal(usm_pagemap_get(&pm, G512 + 600 * PG), P(8));
	assert_int_equal(usm_pagemap_count(&pm, G512 - PG, 602), 602);
	usm_pagemap_destroy(&pm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_set_get_take),
		cmocka_unit_test(test_boundaries_nodes),
		cmocka_unit_test(test_walk_bounds),
		cmocka_unit_test(test_walk_remove),
		cmocka_unit_test(test_destroy_frees),
		cmocka_unit_test(test_random_vs_model),
		cmocka_unit_test(test_count_and_empty_run),
		cmocka_unit_test(test_set_run),
	};

	return cmocka_run_group_tests_name("pagemap", tests, NULL, NULL);
}
