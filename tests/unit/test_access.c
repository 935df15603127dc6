/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/access.c: the access tracker flags exactly the
 * frames whose pages a real process wrote since the last scan.
 *
 * A child maps NPAGES pages, registers them for asynchronous
 * write-protection (what the tracker needs) and writes them all; then, on
 * command, writes pages [0, 16), only reads [16, 32) and leaves the rest
 * alone.  The parent holds a minimal instance and process whose pagemap
 * maps every page to a frame, and checks the frames' USM_PG_REFERENCED.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/access.h"
#include "core/instance.h"
#include "mech/uffd.h"          /* the newest userfaultfd constants */

#define PG 4096ull
#define NPAGES 64
#define WRITTEN_END 16          /* [0, 16) written */
#define READ_END 32             /* [16, 32) read; [32, 64) untouched */

struct fixture {
	pid_t child;
	int cmd, reply;          /* pipes to and from the child */
	uint64_t base;
	struct usm_instance inst;
	struct usm_process p;
	struct usm_page pages[NPAGES];
};

static void die(int out, const char *what)
{
	char c = 'E';

	(void)what;
	if (write(out, &c, 1) < 0)
		_exit(2);
	_exit(1);
}

static void child_main(int in, int out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	volatile char *m;
	uint64_t base;
	char c;
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		die(out, "userfaultfd");
	m = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		die(out, "mmap");
	madvise((void *)m, NPAGES * PG, MADV_NOHUGEPAGE);
	reg.range.start = (uintptr_t)m;
	reg.range.len = NPAGES * PG;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die(out, "register");
	for (int i = 0; i < NPAGES; i++)
		m[i * PG] = 1;
	base = (uintptr_t)m;
	c = 'R';
	if (write(out, &c, 1) != 1 || write(out, &base, sizeof(base)) != sizeof(base))
		_exit(1);
	while (read(in, &c, 1) == 1 && c == 'T') {
		for (int i = 0; i < WRITTEN_END; i++)
			m[i * PG + 8] = 2;
		for (int i = WRITTEN_END; i < READ_END; i++)
			(void)m[i * PG + 8];
		if (write(out, &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int to[2], from[2];
	char err[256], c;

	assert_non_null(f);
	if (usm_access_init(&f->inst, err, sizeof(err))) {
		print_message("%s\n", err);
		free(f);
		return -1;
	}
	assert_int_equal(pipe(to), 0);
	assert_int_equal(pipe(from), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		close(to[1]);
		close(from[0]);
		child_main(to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	f->cmd = to[1];
	f->reply = from[0];
	assert_int_equal(read(f->reply, &c, 1), 1);
	if (c != 'R') {
		print_message("child could not set up WP-async memory\n");
		return -1;
	}
	assert_int_equal(read(f->reply, &f->base, sizeof(f->base)), sizeof(f->base));

	pthread_mutex_init(&f->inst.lock, NULL);
	f->inst.cfg.page_size = PG;
	f->p.pid = f->child;
	f->p.pidfd = (int)syscall(SYS_pidfd_open, f->child, 0);
	assert_true(f->p.pidfd >= 0);
	usm_pagemap_init(&f->p.pm);
	for (int i = 0; i < NPAGES; i++) {
		struct usm_page *pg = &f->pages[i];

		pg->frame = i;
		pg->proc = &f->p;
		pg->vaddr = f->base + i * PG;
		pg->state = USM_PAGE_MAPPED;
		assert_int_equal(usm_pagemap_set(&f->p.pm, pg->vaddr, pg), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	usm_access_untrack(&f->p);
	close(f->cmd);
	close(f->reply);
	kill(f->child, SIGKILL);
	waitpid(f->child, NULL, 0);
	close(f->p.pidfd);
	usm_pagemap_destroy(&f->p.pm);
	pthread_mutex_destroy(&f->inst.lock);
	usm_access_fini();
	free(f);
	return 0;
}

static unsigned count_referenced(struct fixture *f, int from, int to)
{
	unsigned n = 0;

	for (int i = from; i < to; i++)
		n += !!(f->pages[i].fw_flags & USM_PG_REFERENCED);
	return n;
}

static void clear_flags(struct fixture *f)
{
	for (int i = 0; i < NPAGES; i++)
		f->pages[i].fw_flags = 0;
}

static void touch(struct fixture *f)
{
	char c = 'T';

	assert_int_equal(write(f->cmd, &c, 1), 1);
	assert_int_equal(read(f->reply, &c, 1), 1);
	assert_int_equal(c, 'T');
}

/* Written pages are flagged, read and untouched ones are not, twice. */
static void test_written_pages_flagged(void **state)
{
	struct fixture *f = *state;
	struct usm_access_stats st0, st;

	assert_int_equal(usm_access_track(&f->p), 0);
	usm_access_get_stats(&st0);
	assert_true(st0.enabled);
	assert_int_equal(st0.tracked, 1);

	/* The first scan reports the child's set-up writes: every page. */
	usm_access_scan(&f->inst);
	assert_int_equal(count_referenced(f, 0, NPAGES), NPAGES);
	clear_flags(f);

	/* Nothing happened since: nothing is flagged. */
	usm_access_scan(&f->inst);
	assert_int_equal(count_referenced(f, 0, NPAGES), 0);

	for (int round = 0; round < 2; round++) {
		touch(f);
		usm_access_scan(&f->inst);
		assert_int_equal(count_referenced(f, 0, WRITTEN_END), WRITTEN_END);
		assert_int_equal(count_referenced(f, WRITTEN_END, NPAGES), 0);
		clear_flags(f);
	}
	usm_access_get_stats(&st);
	assert_int_equal(st.scans - st0.scans, 4);
	assert_int_equal(st.pages_marked - st0.pages_marked, NPAGES + 2 * WRITTEN_END);
	assert_int_equal(st.errors, st0.errors);
}

/* A frame that left the page (evicting, another owner, moved) is not
 * flagged even though the kernel reports its old address written. */
static void test_stale_frames_skipped(void **state)
{
	struct fixture *f = *state;
	struct usm_process other = { .pid = 1 };

	assert_int_equal(usm_access_track(&f->p), 0);
	usm_access_scan(&f->inst);
	clear_flags(f);
	f->pages[0].state = USM_PAGE_EVICTING;
	f->pages[1].proc = &other;
	f->pages[2].vaddr += 0x100000;
	touch(f);
	usm_access_scan(&f->inst);
	assert_int_equal(count_referenced(f, 0, 3), 0);
	assert_int_equal(count_referenced(f, 3, WRITTEN_END), WRITTEN_END - 3);
}

/* After untrack, scans leave the process alone; tracking an exited
 * process fails with ESRCH instead of reading a reused pid. */
static void test_untrack_and_exit(void **state)
{
	struct fixture *f = *state;
	struct usm_access_stats st;

	assert_int_equal(usm_access_track(&f->p), 0);
	usm_access_scan(&f->inst);
	usm_access_untrack(&f->p);
	clear_flags(f);
	touch(f);
	usm_access_scan(&f->inst);
	assert_int_equal(count_referenced(f, 0, NPAGES), 0);
	usm_access_get_stats(&st);
	assert_int_equal(st.tracked, 0);

	kill(f->child, SIGKILL);
	waitpid(f->child, NULL, 0);
	assert_int_equal(usm_access_track(&f->p), -ESRCH);
	usm_access_get_stats(&st);
	assert_int_equal(st.tracked, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_written_pages_flagged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_frames_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrack_and_exit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
