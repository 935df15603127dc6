/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the frame budget (core/frames.c): the budget holds
 * exactly, and the reserve beyond it (usm_frames_reserve) opens only for
 * the thread that asked, only in a host that has one, is counted, and is
 * evicted back (no frame is free while the excess is held); descriptors
 * are faulted in ahead of need exactly as far as asked (usm_frames_prefault).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/instance.h"

#define BUDGET_MIB 1
#define BUDGET (BUDGET_MIB * 256)    /* 4 KiB frames */

static struct usm_instance inst;
static struct usm_process proc;
static struct usm_page *taken[2 * BUDGET];
static unsigned ntaken;

static int setup(void **state)
{
	(void)state;
	memset(&inst, 0, sizeof(inst));
	usm_config_defaults(&inst.cfg);
	inst.cfg.memory_mib = BUDGET_MIB;
	inst.cfg.page_size = 4096;
	usm_inst = &inst;
	assert_int_equal(usm_frames_init(&inst), 0);
	memset(&proc, 0, sizeof(proc));
	ntaken = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	usm_frames_reserve(false);
	usm_frames_fini(&inst);
	usm_config_free(&inst.cfg);
	usm_inst = NULL;
	return 0;
}

/* Take frames until none comes; returns how many came. */
static unsigned take_all(void)
{
	struct usm_event ev = { .origin = &proc };
	unsigned n = 0;
	struct usm_page *pg;

	while ((pg = usm_frame_take(&ev)) != NULL) {
		assert_true(ntaken < 2 * BUDGET);
		taken[ntaken++] = pg;
		n++;
	}
	return n;
}

static void put_some(unsigned n)
{
	while (n--)
		usm_frame_put(taken[--ntaken]);
}

static void test_budget_holds(void **state)
{
	(void)state;
	assert_int_equal(usm_frames_total(), BUDGET);
	assert_int_equal(usm_frames_free(), BUDGET);
	assert_int_equal(take_all(), BUDGET);
	assert_int_equal(usm_frames_free(), 0);
	assert_int_equal(usm_read(&inst.c.reserve_frames), 0);
	put_some(10);
	assert_int_equal(usm_frames_free(), 10);
	assert_int_equal(take_all(), 10);
}

static void test_reserve_opens_for_caller(void **state)
{
	(void)state;
	assert_int_equal(take_all(), BUDGET);
	usm_frames_reserve(true);
	assert_int_equal(usm_frames_free(), inst.reserve);
	assert_int_equal(take_all(), inst.reserve);
	assert_int_equal(usm_read(&inst.c.reserve_frames), inst.reserve);
	assert_int_equal(usm_read(&proc.c.reserve_frames), inst.reserve);
	usm_frames_reserve(false);
	/* Closed again: nothing free until the excess is given back. */
	assert_int_equal(usm_frames_free(), 0);
	put_some((unsigned)inst.reserve);
	assert_int_equal(usm_frames_free(), 0);
	put_some(3);
	assert_int_equal(usm_frames_free(), 3);
}

static void *other_thread_free(void *arg)
{
	*(uint64_t *)arg = usm_frames_free();
	return NULL;
}

static void test_reserve_is_per_thread(void **state)
{
	pthread_t t;
	uint64_t seen = 99;

	(void)state;
	assert_int_equal(take_all(), BUDGET);
	usm_frames_reserve(true);
	assert_int_equal(pthread_create(&t, NULL, other_thread_free, &seen), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(seen, 0);
	assert_int_equal(usm_frames_free(), inst.reserve);
}

/* The in-process host has no reserve: opening it changes nothing. */
static void test_no_reserve_in_process(void **state)
{
	(void)state;
	inst.reserve = 0;
	assert_int_equal(take_all(), BUDGET);
	usm_frames_reserve(true);
	assert_int_equal(usm_frames_free(), 0);
	assert_int_equal(take_all(), 0);
	assert_int_equal(usm_read(&inst.c.reserve_frames), 0);
}

/* Is the page holding byte off of array resident? */
static bool resident(const void *array, size_t off)
{
	uintptr_t page = ((uintptr_t)array + off) & ~4095ul;
	unsigned char vec;

	assert_int_equal(mincore((void *)page, 4096, &vec), 0);
	return vec & 1;
}

static void test_prefault_touches_what_was_asked(void **state)
{
	const size_t d = sizeof(struct usm_page);
	struct usm_event ev = { .origin = &proc };
	uint64_t upto = 4096 * 2 / d + 1;     /* into the third page */
	struct usm_page *pg;

	(void)state;
	assert_true(inst.ndesc * d > 5 * 4096);
	assert_false(resident(inst.frames, 0));
	usm_frames_prefault(&inst, upto);
	assert_int_equal(inst.desc_ready, upto);
	for (int page = 0; page < 3; page++)
		assert_true(resident(inst.frames, page * 4096ul));
	assert_false(resident(inst.frames, 4 * 4096ul));
	assert_true(resident(inst.free_stack, 0));

	/* Taking frames afterwards finds the descriptors as usual. */
	pg = usm_frame_take(&ev);
	assert_non_null(pg);
	assert_int_equal(pg->frame, 0);
	assert_ptr_equal(pg->proc, &proc);

	/* Asking for less changes nothing; more stops at the last descriptor. */
	usm_frames_prefault(&inst, 1);
	assert_int_equal(inst.desc_ready, upto);
	assert_int_equal(pg->frame, 0);
	usm_frames_prefault(&inst, inst.ndesc * 10);
	assert_int_equal(inst.desc_ready, inst.ndesc);
	assert_true(resident(inst.frames, (inst.ndesc - 1) * d));
	usm_frame_put(pg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_budget_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_opens_for_caller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_is_per_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_reserve_in_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefault_touches_what_was_asked, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
