/* SPDX-License-Identifier: MIT */
/*
 * usm_touch - first-touch a mapping with a stride and verify every page.
 *
 *   usm_touch SIZE_MB STEP [OFFSET_PAGES [touched]]
 *
 * Maps SIZE_MB MiB (anonymous, private; at OFFSET_PAGES pages past a 2 MiB
 * boundary, to put windows across the mapping's ends), writes a pattern
 * into every STEP-th page, then checks every page: written pages hold the
 * pattern, the others read zero (whatever a policy mapped ahead must be
 * zero-filled; with "touched", only the written pages are read back, so
 * the check itself touches nothing new).  Prints the pages touched, and
 * AnonHugePages for the process and for the mapping alone (the process's
 * figure includes USM's own metadata), so tests can compare USM's counters
 * with what was really used.
 * USM_TOUCH_HOLD_MS=N keeps the process alive N ms after the check (for
 * measurements USM samples, such as bloat); USM_TOUCH_RANDOM=1 writes the
 * pages in a random (fixed-seed) order instead of ascending, and
 * USM_TOUCH_STRIDE=K in K ascending passes (pages 0, K, 2K, ..., then 1,
 * K + 1, ...), like memflt's stride pattern.  USM_TOUCH_DENSE_MB=D
 * writes every page of the first D MiB (in that order) before the
 * STEP-th pages of the rest, from the top down: a dense phase, then a
 * sparse one that does not look like a stream.  With USM_TOUCH_SPARSE_UP=1
 * the sparse part goes upwards, from the end of the dense one: a sparse
 * walk that looks like a stream to whoever sees only the faults.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ul
#define HUGE (2ul << 20)

static uint64_t pattern(uint64_t page, uint64_t word)
{
	return (page * 0x9e3779b97f4a7c15ull) ^ (word + 1);
}

static long anon_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* AnonHugePages of the mapping that holds addr, from /proc/self/smaps. */
static long mapping_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long lo, hi;
	int inside = 0;
	long kb = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

static size_t dense_pages;       /* USM_TOUCH_DENSE_MB, in pages */

static int written(size_t pg, size_t step)
{
	return pg < dense_pages || pg % step == 0;
}

static int verify(const char *p, size_t pages, size_t step, int only_touched)
{
	for (size_t pg = 0; pg < pages; pg++) {
		const uint64_t *w = (const uint64_t *)(p + pg * PAGE);
		if (only_touched && !written(pg, step))
			continue;
		for (size_t i = 0; i < PAGE / 8; i++) {
			uint64_t want = written(pg, step) ? pattern(pg, i) : 0;
			if (w[i] != want) {
				printf("usm_touch: FAIL page %zu word %zu: %016llx, expected %016llx\n",
				       pg, i, (unsigned long long)w[i], (unsigned long long)want);
				return 1;
			}
		}
	}
	return 0;
}

static void write_page(char *p, size_t pg)
{
	uint64_t *w = (uint64_t *)(p + pg * PAGE);

	for (size_t i = 0; i < PAGE / 8; i++)
		w[i] = pattern(pg, i);
}

static void shuffle(size_t *order, size_t n)
{
	srandom(42);
	for (size_t k = n - 1; k > 0; k--) {
		size_t j = (size_t)random() % (k + 1), t = order[k];
		order[k] = order[j];
		order[j] = t;
	}
}

/* Write every step-th page, ascending, shuffled (random_order) or in
 * `passes` strided passes (> 1); returns how many. */
static size_t write_pages(char *p, size_t pages, size_t step, int random_order, size_t passes)
{
	size_t n = (pages + step - 1) / step, at = 0;
	size_t *order;

	if (!random_order && passes <= 1) {
		for (size_t k = 0; k < n; k++)
			write_page(p, k * step);
		return n;
	}
	if (passes < 1)
		passes = 1;
	order = malloc(n * sizeof(*order));
	if (!order) {
		perror("usm_touch: malloc");
		exit(1);
	}
	for (size_t first = 0; first < passes; first++)
		for (size_t k = first; k < n; k += passes)
			order[at++] = k * step;
	if (random_order)
		shuffle(order, n);
	for (size_t k = 0; k < n; k++)
		write_page(p, order[k]);
	free(order);
	return n;
}

int main(int argc, char **argv)
{
	size_t mb, step, off, pages, touched = 0;
	char *raw, *p;

	if (argc < 3 || (mb = strtoul(argv[1], NULL, 10)) == 0 ||
	    (step = strtoul(argv[2], NULL, 10)) == 0) {
		fprintf(stderr, "usage: usm_touch SIZE_MB STEP [OFFSET_PAGES]\n");
		return 2;
	}
	off = argc > 3 ? strtoul(argv[3], NULL, 10) : 0;
	pages = mb * (1024 * 1024 / PAGE);
	raw = mmap(NULL, pages * PAGE + 2 * HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("usm_touch: mmap");
		return 1;
	}
	/* Trim to exactly [aligned + off, + pages): the ends are real ends. */
	p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1)) + off * PAGE;
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + pages * PAGE, (size_t)(raw + pages * PAGE + 2 * HUGE - (p + pages * PAGE)));
	if (getenv("USM_TOUCH_DENSE_MB"))
		dense_pages = strtoul(getenv("USM_TOUCH_DENSE_MB"), NULL, 10) * (1024 * 1024 / PAGE);
	if (dense_pages > pages)
		dense_pages = pages;
	touched = write_pages(p, dense_pages ? dense_pages : pages, dense_pages ? 1 : step,
			      getenv("USM_TOUCH_RANDOM") != NULL,
			      getenv("USM_TOUCH_STRIDE") ? strtoul(getenv("USM_TOUCH_STRIDE"), NULL, 10) : 1);
	bool up = dense_pages && getenv("USM_TOUCH_SPARSE_UP");
	for (size_t k = (dense_pages + step - 1) / step; up && k * step < pages; k++) {
		write_page(p, k * step);
		touched++;
	}
	for (size_t k = (pages - 1) / step; dense_pages && !up && k * step >= dense_pages; k--) {
		write_page(p, k * step);      /* descending: no stream */
		touched++;
		if (k == 0)
			break;
	}
	printf("usm_touch: touched %zu pages of %zu\n", touched, pages);
	printf("usm_touch: AnonHugePages %ld kB\n", anon_huge_kb());
	printf("usm_touch: mapping AnonHugePages %ld kB\n", mapping_huge_kb(p));
	if (verify(p, pages, step, argc > 4 && !strcmp(argv[4], "touched")))
		return 1;
	printf("usm_touch: OK\n");
	fflush(stdout);
	if (getenv("USM_TOUCH_HOLD_MS"))
		usleep((useconds_t)strtoul(getenv("USM_TOUCH_HOLD_MS"), NULL, 10) * 1000);
	return 0;
}
