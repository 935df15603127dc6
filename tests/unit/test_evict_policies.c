/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the eviction policies policies/clock.c and
 * policies/s3fifo.c, called through their registered ops on hand-made
 * frames: which victims they choose, that pinned frames are passed over
 * with their access information untouched, S3-FIFO's ghost re-admission,
 * the prefetch parameter, and readahead (prefetch auto) on streams.  (tests/func/71-sim.sh replays whole traces
 * through them.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/instance.h"

#define NPAGES 32

static struct usm_instance inst;
static struct usm_process proc;
static struct usm_page pages[NPAGES];
static const struct usm_swap_policy_ops *ops;

/* A fresh instance with the given config lines (up to two), and policy
 * name started. */
static void start2(const char *name, const char *line, const char *line2)
{
	char err[256];

	memset(&inst, 0, sizeof(inst));
	usm_config_defaults(&inst.cfg);
	inst.nframes = NPAGES;
	if (line)
		assert_int_equal(usm_config_apply_line(&inst.cfg, line, err, sizeof(err)), 0);
	if (line2)
		assert_int_equal(usm_config_apply_line(&inst.cfg, line2, err, sizeof(err)), 0);
	usm_inst = &inst;
	memset(&proc, 0, sizeof(proc));
	proc.pid = 77;
	assert_non_null(usm_registry_find_swap(name));
	ops = usm_registry_find_swap(name)->ops;
	assert_int_equal(ops->usm_init(), USM_OK);
}

static void start(const char *name, const char *line)
{
	start2(name, line, NULL);
}

static void stop(void)
{
	if (ops->usm_exit)
		ops->usm_exit();
	usm_config_free(&inst.cfg);
	usm_inst = NULL;
}

/* Map page i as the framework does: REFERENCED set, then usm_page_mapped. */
static struct usm_page *map(unsigned i)
{
	struct usm_page *pg = &pages[i];

	memset(pg, 0, sizeof(*pg));
	pg->frame = i;
	pg->proc = &proc;
	pg->vaddr = 0x10000000 + i * 4096ull;
	pg->state = USM_PAGE_MAPPED;
	pg->fw_flags = USM_PG_REFERENCED;
	usm_list_init(&pg->list);
	usm_list_init(&pg->list2);
	ops->usm_page_mapped(pg);
	return pg;
}

/* Ask for want victims; expect exactly the page indices in want_idx. */
static void expect_victims(unsigned want, unsigned n, const unsigned *idx)
{
	struct usm_page *out[NPAGES];
	unsigned got = ops->usm_evict_fallback(out, want);

	assert_int_equal(got, n);
	for (unsigned i = 0; i < n; i++)
		assert_ptr_equal(out[i], &pages[idx[i]]);
}

/* ---- CLOCK --------------------------------------------------------------- */

static void test_clock_second_chance(void **state)
{
	start("clock", NULL);
	for (unsigned i = 0; i < 4; i++)
		map(i);
	/* all mapped referenced: one lap clears them, then the oldest goes */
	expect_victims(1, 1, (unsigned[]){ 0 });
	/* 1 is used again: 2 and 3 go before it */
	pages[1].fw_flags |= USM_PG_REFERENCED;
	expect_victims(2, 2, (unsigned[]){ 2, 3 });
	expect_victims(1, 1, (unsigned[]){ 1 });
	expect_victims(1, 0, NULL);
	stop();
}

static void test_clock_pinned(void **state)
{
	start("clock", NULL);
	for (unsigned i = 0; i < 3; i++)
		map(i);
	pages[0].fw_flags |= USM_PG_PINNED;
	expect_victims(3, 2, (unsigned[]){ 1, 2 });
	/* only the pinned page is left: nothing, and its access bit stays */
	expect_victims(1, 0, NULL);
	assert_true(pages[0].fw_flags & USM_PG_REFERENCED);
	/* unpinned, it goes after one more pass */
	pages[0].fw_flags &= ~USM_PG_PINNED;
	expect_victims(1, 1, (unsigned[]){ 0 });
	stop();
}

static void test_clock_unmapped(void **state)
{
	start("clock", NULL);
	for (unsigned i = 0; i < 3; i++)
		map(i);
	ops->usm_page_unmapped(&pages[0]);
	expect_victims(3, 2, (unsigned[]){ 1, 2 });
	stop();
}

/* ---- S3-FIFO --------------------------------------------------------------- */

static void test_s3fifo_small_to_main(void **state)
{
	start("s3fifo", NULL);
	for (unsigned i = 0; i < 10; i++)
		map(i);
	/* being mapped is not a use: the oldest unused page in small goes */
	expect_victims(1, 1, (unsigned[]){ 0 });
	/* 1 and 2 were used: they move to main, 3 goes */
	pages[1].fw_flags |= USM_PG_REFERENCED;
	pages[2].fw_flags |= USM_PG_REFERENCED;
	expect_victims(1, 1, (unsigned[]){ 3 });
	/* small (4..9) stays above 10% of the 8 tracked: it keeps giving */
	expect_victims(6, 6, (unsigned[]){ 4, 5, 6, 7, 8, 9 });
	/* then main, in FIFO order, nothing used since the move */
	expect_victims(2, 2, (unsigned[]){ 1, 2 });
	stop();
}

static void test_s3fifo_main_frequency(void **state)
{
	start("s3fifo", NULL);
	for (unsigned i = 0; i < 3; i++)
		map(i);
	for (unsigned i = 0; i < 3; i++)
		pages[i].fw_flags |= USM_PG_REFERENCED;
	/* all three move to main (frequency 0) on the way; then main's head goes */
	expect_victims(1, 1, (unsigned[]){ 0 });
	map(3);                               /* small: 3; main: 1, 2 */
	pages[1].fw_flags |= USM_PG_REFERENCED;
	pages[2].fw_flags |= USM_PG_REFERENCED;
	/* small holds 1 of 3 (>= 10%): 3 goes first, unused */
	expect_victims(1, 1, (unsigned[]){ 3 });
	/* main: 1 and 2 were used, each goes round once more; then 1 goes */
	expect_victims(1, 1, (unsigned[]){ 1 });
	expect_victims(1, 1, (unsigned[]){ 2 });
	stop();
}

/* 20 pages; the oldest (0) evicted; then page `again` mapped, 1..18 used.
 * Returns the next victim. */
static struct usm_page *ghost_case(unsigned again)
{
	struct usm_page *out[1];

	start("s3fifo", NULL);
	for (unsigned i = 0; i < 20; i++)
		map(i);
	expect_victims(1, 1, (unsigned[]){ 0 });  /* 0 -> ghost */
	map(again);
	for (unsigned i = 1; i <= 18; i++)
		pages[i].fw_flags |= USM_PG_REFERENCED;
	assert_int_equal(ops->usm_evict_fallback(out, 1), 1);
	stop();
	return out[0];
}

static void test_s3fifo_ghost(void **state)
{
	/* A fresh page (20) enters small behind 19: once 1..18 have moved to
	 * main, small holds 19 and 20 (10% of 20) and its head 19 goes. */
	assert_ptr_equal(ghost_case(20), &pages[19]);
	/* 0 comes back while remembered: it enters main, ahead of 1..18, so
	 * once small is down to 19 alone (< 10%), main's head 0 goes. */
	assert_ptr_equal(ghost_case(0), &pages[0]);
}

static void test_s3fifo_pinned(void **state)
{
	start("s3fifo", NULL);
	for (unsigned i = 0; i < 3; i++)
		map(i);
	/* used since mapping, and pinned */
	pages[0].fw_flags |= USM_PG_PINNED | USM_PG_REFERENCED;
	expect_victims(3, 2, (unsigned[]){ 1, 2 });
	assert_true(pages[0].fw_flags & USM_PG_REFERENCED);
	expect_victims(1, 0, NULL);
	stop();
}

/* ---- prefetch parameter ------------------------------------------------------ */

static void test_prefetch(void **state)
{
	struct usm_event ev = { .type = USM_EVENT_ALLOC, .origin = &proc, .vaddr = 1ull << 30 };
	static const char *const names[] = { "clock", "s3fifo", "fifo" };

	for (unsigned i = 0; i < 3; i++) {
		char line[64];

		snprintf(line, sizeof(line), "set %s.prefetch 16", names[(i + 1) % 3]);
		start(names[i], line);                     /* another policy's: ignored */
		assert_int_equal(ops->usm_swap(&ev), 1);   /* default: demand paging */
		stop();
		snprintf(line, sizeof(line), "set %s.prefetch 16", names[i]);
		start(names[i], line);
		assert_int_equal(ops->usm_swap(&ev), 16);
		stop();
		for (const char *const *bad = (const char *const[]){ "0", "3", "1024", "x", "Auto", NULL };
		     *bad; bad++) {
			char err[256];

			memset(&inst, 0, sizeof(inst));
			usm_config_defaults(&inst.cfg);
			snprintf(line, sizeof(line), "set %s.prefetch %s", names[i], *bad);
			assert_int_equal(usm_config_apply_line(&inst.cfg, line, err, sizeof(err)), 0);
			usm_inst = &inst;
			ops = usm_registry_find_swap(names[i])->ops;
			assert_int_equal(ops->usm_init(), USM_EINVAL);
			usm_config_free(&inst.cfg);
			usm_inst = NULL;
		}
	}
}

/* ---- readahead (prefetch auto) ----------------------------------------------- */

/* Swap-in fault at page index pg of proc; returns what fifo asks for. */
static unsigned swapin_at(uint64_t pg)
{
	struct usm_event ev = { .type = USM_EVENT_ALLOC, .origin = &proc,
				.vaddr = (1ull << 30) + pg * 4096 };

	return ops->usm_swap(&ev);
}

/* A forward scan: each fault lands on the first page after the group the
 * last one brought back; the group doubles up to readahead_max. */
static void test_readahead_scan(void **state)
{
	static const unsigned want[] = { 1, 2, 4, 8, 16, 32, 64, 64, 64 };
	uint64_t pg = 0;

	start("fifo", "set fifo.prefetch auto");
	inst.nframes = 4096;                   /* the budget does not cap 64 */
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		unsigned n = swapin_at(pg);

		assert_int_equal(n, want[i]);
		pg = (pg | (n - 1)) + 1;          /* end of the aligned group */
	}
	/* A fault inside the last group keeps its size; a jump far away
	 * starts a new stream of one page, and the old one is still there. */
	assert_int_equal(swapin_at(pg - 3), 64);
	assert_int_equal(swapin_at(pg + 100000), 1);
	assert_int_equal(swapin_at(pg), 64);
	stop();

	/* readahead_max, and the budget: a group is at most an eighth of it */
	for (unsigned cap = 0; cap < 2; cap++) {
		start2("fifo", "set fifo.prefetch auto", cap ? NULL : "set fifo.readahead_max 8");
		inst.nframes = cap ? 64 : 4096;
		pg = 0;
		for (unsigned i = 0; i < 6; i++) {
			unsigned n = swapin_at(pg);

			assert_int_equal(n, i < 3 ? 1u << i : 8);
			pg = (pg | (n - 1)) + 1;
		}
		stop();
	}
}

/* Random faults never read ahead; two interleaved scans (two threads)
 * each keep their own stream; a fixed prefetch ignores streams. */
static void test_readahead_streams(void **state)
{
	uint64_t a = 0, b = 50000;

	start("fifo", "set fifo.prefetch auto");
	inst.nframes = 4096;
	for (uint64_t k = 1; k <= 1000; k++)
		assert_int_equal(swapin_at((k * 7919 * 13) % 1000003), 1);
	for (unsigned i = 0; i < 8; i++) {
		unsigned na = swapin_at(a), nb = swapin_at(b);

		assert_int_equal(na, i < 6 ? 1u << i : 64);
		assert_int_equal(nb, i < 6 ? 1u << i : 64);
		a = (a | (na - 1)) + 1;
		b = (b | (nb - 1)) + 1;
	}
	stop();

	start("fifo", "set fifo.prefetch 4");
	for (uint64_t k = 0; k < 8; k++)
		assert_int_equal(swapin_at(k * 4), 4);
	stop();
}

static void test_readahead_bad_max(void **state)
{
	for (const char *const *bad = (const char *const[]){ "0", "6", "1024", "many", NULL };
	     *bad; bad++) {
		char line[64], err[256];

		memset(&inst, 0, sizeof(inst));
		usm_config_defaults(&inst.cfg);
		snprintf(line, sizeof(line), "set fifo.readahead_max %s", *bad);
		assert_int_equal(usm_config_apply_line(&inst.cfg, line, err, sizeof(err)), 0);
		usm_inst = &inst;
		ops = usm_registry_find_swap("fifo")->ops;
		assert_int_equal(ops->usm_init(), USM_EINVAL);
		usm_config_free(&inst.cfg);
		usm_inst = NULL;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clock_second_chance),
		cmocka_unit_test(test_clock_pinned),
		cmocka_unit_test(test_clock_unmapped),
		cmocka_unit_test(test_s3fifo_small_to_main),
		cmocka_unit_test(test_s3fifo_main_frequency),
		cmocka_unit_test(test_s3fifo_ghost),
		cmocka_unit_test(test_s3fifo_pinned),
		cmocka_unit_test(test_prefetch),
		cmocka_unit_test(test_readahead_scan),
		cmocka_unit_test(test_readahead_streams),
		cmocka_unit_test(test_readahead_bad_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
