/*
 * memflt: first-touch page-fault cost by access pattern, per 4 KiB page.
 *
 * Plain C11, no USM headers: it is meant to run alone (the kernel baselines)
 * and under `usm run` (USM resolves its faults), so it must not know about
 * USM at all.  Under USM it must not madvise its memory either (the policy
 * decides what to map): use --madvise none there.
 *
 * Usage: memflt PATTERN [--size-mb N] [--stride K] [--threads T]
 *               [--madvise none|nohuge|huge] [--reps R] [--warmup-mb M]
 *               [--warmup-madvise none|nohuge|huge|both] [--seed S]
 *
 * Each repetition mmaps N MiB anonymous private memory (aligned to 2 MiB,
 * so that every variant sees the same huge-page boundaries), applies the
 * --madvise advice, then first-touches every 4 KiB page of it with one
 * 8-byte store, in the order given by PATTERN, and times only that loop:
 *
 *   seq       ascending pages
 *   rand      a random permutation of all pages (computed before timing,
 *             stored in a separate mapping, not in the measured one)
 *   stride    every K-th page (0, K, 2K, ...) ascending, then all the
 *             others ascending
 *   mt        T threads, each first-touches its own contiguous slice of
 *             the mapping in ascending order
 *   mt-rand   T threads, each its own contiguous slice in a random order
 *             (a permutation of that slice)
 *   warmup    only the warm-up below, no measurement
 *
 * For mt and mt-rand, the threads are created and have touched their own
 * stacks before the clock starts; they start together at a barrier, and the
 * time is from the release to the last thread's finish: ns_per_page is wall
 * time divided by all pages (aggregate throughput, not per-thread latency).
 *
 * After timing, every page is checked: its 8-byte word at offset 0 must
 * hold the value written there (a function of the page index), and the last
 * 8 bytes of the page, never written, must still be zero.  A mismatch is
 * reported with its address and the program exits 1.
 *
 * Warm-up: before the first repetition, M MiB (default 0 here; the scripts
 * run `memflt warmup` as a separate process right before each measured
 * run) are touched and unmapped.  On a VM the first touch of guest memory
 * is several times slower, and a ballooned VM returns freed memory to the
 * host within seconds.  A 4K-only warm-up does not help THP: 2 MiB
 * allocations then still land on memory the host has not backed (measured:
 * ~4,000 ns/page for MADV_HUGEPAGE after a 4K warm-up, ~900 after a THP
 * one), so by default the warm-up touches M MiB with MADV_HUGEPAGE and M MiB
 * with MADV_NOHUGEPAGE (--warmup-madvise).
 *
 * Output: one machine-readable line per repetition
 *   result pattern=<p> size_mb=<n> threads=<t> stride=<k> madvise=<a>
 *          rep=<i> pages=<measured pages> aux_pages=<pages of the
 *          permutation array> ns_per_page=<x> minflt=<n> majflt=<n>
 *          cpu_ns_per_page=<y>
 * (minflt/majflt/cpu: getrusage(RUSAGE_SELF) deltas over the timed loop, all
 * threads of the process, an in-process USM host's own threads included;
 * cpu is user plus system time per measured page).  Errors go to stderr and the exit status is 1 (2: bad usage).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SZ   4096UL
#define ALIGN_SZ  (2UL << 20)
#define MAX_THR   256
#define MAGIC     0x6d656d666c7400ULL     /* "memflt\0" */

enum pat { P_SEQ, P_RAND, P_STRIDE, P_MT, P_MT_RAND, P_WARMUP };

static const struct { const char *name; enum pat p; } pats[] = {
	{ "seq", P_SEQ }, { "rand", P_RAND }, { "stride", P_STRIDE },
	{ "mt", P_MT }, { "mt-rand", P_MT_RAND }, { "warmup", P_WARMUP },
};

enum adv { A_NONE, A_NOHUGE, A_HUGE, A_BOTH };
static const char *const adv_names[] = { "none", "nohuge", "huge", "both" };

static const char *prog = "memflt";

static void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static void die_err(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
	exit(1);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s PATTERN [--size-mb N] [--stride K] [--threads T]\n"
		"              [--madvise none|nohuge|huge] [--reps R] [--warmup-mb M]\n"
		"              [--warmup-madvise none|nohuge|huge|both] [--seed S]\n"
		"  PATTERN: seq | rand | stride | mt | mt-rand | warmup\n"
		"  --size-mb N     measured mapping in MiB (default 1024)\n"
		"  --stride K      stride pattern: every K-th page first (default 16)\n"
		"  --threads T     mt, mt-rand: threads (default 2)\n"
		"  --madvise A     advice on the mapping: none (default; use under USM),\n"
		"                  nohuge (MADV_NOHUGEPAGE), huge (MADV_HUGEPAGE)\n"
		"  --reps R        repetitions (default 1)\n"
		"  --warmup-mb M   MiB touched and freed once before timing (default 0)\n"
		"  --warmup-madvise A  advice on the warm-up mapping (default both: M MiB\n"
		"                  with MADV_HUGEPAGE and M MiB with MADV_NOHUGEPAGE, held\n"
		"                  together, so that both 4K and 2 MiB allocations later\n"
		"                  find host-backed memory)\n"
		"  --seed S        seed of the random permutations (default 1)\n",
		prog);
}

static unsigned long parse_ulong(const char *opt, const char *s, unsigned long min,
				 unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "%s: %s expects an integer in [%lu, %lu], got '%s'\n",
			prog, opt, min, max, s);
		exit(2);
	}
	return v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime(CLOCK_MONOTONIC)");
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *map_anon(size_t len, const char *what)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		char msg[128];
		snprintf(msg, sizeof(msg), "mmap(%zu KiB, anonymous private) for %s",
			 len >> 10, what);
		die(msg);
	}
	return p;
}

static void unmap(void *p, size_t len)
{
	if (munmap(p, len) != 0)
		die("munmap");
}

/* len bytes (a multiple of 2 MiB), starting on a 2 MiB boundary: map
 * len + 2 MiB and trim both ends. */
static char *map_aligned(size_t len)
{
	char *raw = map_anon(len + ALIGN_SZ, "the measured range");
	uintptr_t a = ((uintptr_t)raw + ALIGN_SZ - 1) & ~(ALIGN_SZ - 1);
	size_t head = a - (uintptr_t)raw, tail = ALIGN_SZ - head;

	if (head)
		unmap(raw, head);
	if (tail)
		unmap((char *)a + len, tail);
	return (char *)a;
}

/* Touch mb MiB with the given advice; for A_BOTH, mb MiB with MADV_HUGEPAGE
 * and another mb MiB with MADV_NOHUGEPAGE, both held at once. */
static void warmup(unsigned long mb, enum adv adv)
{
	if (!mb)
		return;
	size_t len = (size_t)mb << 20;
	int nmaps = adv == A_BOTH ? 2 : 1;
	volatile char *p[2];

	for (int m = 0; m < nmaps; m++) {
		enum adv a = adv == A_BOTH ? (m == 0 ? A_HUGE : A_NOHUGE) : adv;
		p[m] = map_anon(len, "the warm-up");
		if (a == A_HUGE && madvise((void *)p[m], len, MADV_HUGEPAGE) != 0)
			die("madvise(MADV_HUGEPAGE) on the warm-up");
		if (a == A_NOHUGE && madvise((void *)p[m], len, MADV_NOHUGEPAGE) != 0)
			die("madvise(MADV_NOHUGEPAGE) on the warm-up");
		for (size_t off = 0; off < len; off += PAGE_SZ)
			p[m][off] = 1;
	}
	for (int m = 0; m < nmaps; m++)
		unmap((void *)p[m], len);
}

/* ------------------------------------------------------- permutations */

static uint64_t rng_state;

static uint64_t rng_next(void)      /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Unbiased integer in [0, n). */
static uint64_t rng_below(uint64_t n)
{
	uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;

	do
		x = rng_next();
	while (x >= lim);
	return x % n;
}

/* perm[lo..hi) := a random permutation of the page indices lo..hi-1. */
static void shuffle_range(uint32_t *perm, size_t lo, size_t hi)
{
	for (size_t i = lo; i < hi; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = hi - lo; i > 1; i--) {
		size_t j = (size_t)rng_below(i);
		uint32_t t = perm[lo + i - 1];
		perm[lo + i - 1] = perm[lo + j];
		perm[lo + j] = t;
	}
}

static void check_perm(const uint32_t *perm, size_t lo, size_t hi)
{
	/* A bitmap in a throw-away mapping: every index once, nothing outside. */
	size_t n = hi - lo, bytes = ((n + 63) / 64) * 8;
	uint64_t *seen = map_anon(bytes ? bytes : 8, "the permutation check");

	for (size_t i = lo; i < hi; i++) {
		size_t v = perm[i];
		if (v < lo || v >= hi || (seen[(v - lo) / 64] >> ((v - lo) % 64) & 1)) {
			fprintf(stderr, "%s: internal error: bad permutation at %zu\n", prog, i);
			exit(1);
		}
		seen[(v - lo) / 64] |= 1ULL << ((v - lo) % 64);
	}
	unmap(seen, bytes ? bytes : 8);
}

/* ---------------------------------------------------------- touching */

static inline uint64_t value_of(size_t page)
{
	return MAGIC ^ ((uint64_t)page * 0x9e3779b97f4a7c15ULL);
}

static inline void touch(char *base, size_t page)
{
	*(volatile uint64_t *)(base + page * PAGE_SZ) = value_of(page);
}

static void touch_seq(char *base, size_t lo, size_t hi)
{
	for (size_t i = lo; i < hi; i++)
		touch(base, i);
}

static void touch_perm(char *base, const uint32_t *perm, size_t lo, size_t hi)
{
	for (size_t i = lo; i < hi; i++)
		touch(base, perm[i]);
}

static void touch_stride(char *base, size_t pages, size_t k)
{
	for (size_t i = 0; i < pages; i += k)
		touch(base, i);
	for (size_t i = 0; i < pages; i++)
		if (i % k)
			touch(base, i);
}

static void verify(const char *base, size_t pages)
{
	for (size_t i = 0; i < pages; i++) {
		const char *pg = base + i * PAGE_SZ;
		uint64_t got = *(const volatile uint64_t *)pg;
		uint64_t tail = *(const volatile uint64_t *)(pg + PAGE_SZ - 8);
		if (got != value_of(i)) {
			fprintf(stderr, "%s: page %zu (%p) reads 0x%016llx, wrote 0x%016llx\n",
				prog, i, (const void *)pg, (unsigned long long)got,
				(unsigned long long)value_of(i));
			exit(1);
		}
		if (tail != 0) {
			fprintf(stderr, "%s: page %zu (%p): never-written bytes at +%lu read "
				"0x%016llx, not zero\n", prog, i, (const void *)pg, PAGE_SZ - 8,
				(unsigned long long)tail);
			exit(1);
		}
	}
}

/* ------------------------------------------------------------ threads */

struct worker {
	pthread_t th;
	char *base;
	const uint32_t *perm;   /* NULL: ascending */
	size_t lo, hi;          /* page slice */
	pthread_barrier_t *bar;
	uint64_t t_end;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int r = pthread_barrier_wait(w->bar);

	if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
		die_err("pthread_barrier_wait(worker)", r);
	if (w->perm)
		touch_perm(w->base, w->perm, w->lo, w->hi);
	else
		touch_seq(w->base, w->lo, w->hi);
	w->t_end = now_ns();
	return NULL;
}

/* Returns the elapsed ns of the concurrent touch. */
static uint64_t run_threads(char *base, const uint32_t *perm, size_t pages, unsigned nthr)
{
	struct worker w[MAX_THR];
	pthread_barrier_t bar;
	int err;

	if ((err = pthread_barrier_init(&bar, NULL, nthr + 1)) != 0)
		die_err("pthread_barrier_init", err);
	for (unsigned t = 0; t < nthr; t++) {
		w[t] = (struct worker){
			.base = base, .perm = perm, .bar = &bar,
			.lo = pages * t / nthr, .hi = pages * (t + 1) / nthr,
		};
		if ((err = pthread_create(&w[t].th, NULL, worker_main, &w[t])) != 0)
			die_err("pthread_create", err);
	}
	/* Let every worker reach the barrier (and fault its stack in) first. */
	usleep(20000);
	uint64_t t0 = now_ns();
	err = pthread_barrier_wait(&bar);
	if (err != 0 && err != PTHREAD_BARRIER_SERIAL_THREAD)
		die_err("pthread_barrier_wait(main)", err);
	uint64_t t1 = t0;
	for (unsigned t = 0; t < nthr; t++) {
		if ((err = pthread_join(w[t].th, NULL)) != 0)
			die_err("pthread_join", err);
		if (w[t].t_end > t1)
			t1 = w[t].t_end;
	}
	if ((err = pthread_barrier_destroy(&bar)) != 0)
		die_err("pthread_barrier_destroy", err);
	return t1 - t0;
}

/* ------------------------------------------------------------- main */

struct usage {
	long minflt, majflt;
	uint64_t cpu_ns;        /* user + system time of all threads */
};

static struct usage usage_now(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage");
	return (struct usage){
		.minflt = ru.ru_minflt,
		.majflt = ru.ru_majflt,
		.cpu_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
			  (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull,
	};
}

int main(int argc, char **argv)
{
	unsigned long size_mb = 1024, stride = 16, nthr = 2, reps = 1, warmup_mb = 0, seed = 1;
	enum adv adv = A_NONE, wadv = A_BOTH;
	const char *pat_name = NULL;
	enum pat pat;

	if (argc > 0 && argv[0][0])
		prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--size-mb") || !strcmp(a, "--stride") || !strcmp(a, "--threads") ||
		    !strcmp(a, "--madvise") || !strcmp(a, "--reps") || !strcmp(a, "--warmup-mb") ||
		    !strcmp(a, "--seed") || !strcmp(a, "--warmup-madvise")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: %s needs a value\n", prog, a);
				return 2;
			}
			const char *v = argv[++i];
			if (!strcmp(a, "--size-mb"))
				size_mb = parse_ulong(a, v, 2, 1UL << 22);
			else if (!strcmp(a, "--stride"))
				stride = parse_ulong(a, v, 2, 1UL << 20);
			else if (!strcmp(a, "--threads"))
				nthr = parse_ulong(a, v, 1, MAX_THR);
			else if (!strcmp(a, "--reps"))
				reps = parse_ulong(a, v, 1, 100000);
			else if (!strcmp(a, "--warmup-mb"))
				warmup_mb = parse_ulong(a, v, 0, 1UL << 22);
			else if (!strcmp(a, "--seed"))
				seed = parse_ulong(a, v, 0, ~0UL);
			else {
				bool wu = !strcmp(a, "--warmup-madvise");
				size_t k, n = wu ? 4 : 3;
				for (k = 0; k < n && strcmp(v, adv_names[k]); k++)
					;
				if (k == n) {
					fprintf(stderr, "%s: %s expects none, nohuge, huge%s, got '%s'\n",
						prog, a, wu ? " or both" : "", v);
					return 2;
				}
				if (wu)
					wadv = (enum adv)k;
				else
					adv = (enum adv)k;
			}
			continue;
		}
		if (a[0] == '-' || pat_name) {
			fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
			usage(stderr);
			return 2;
		}
		pat_name = a;
	}
	if (!pat_name) {
		usage(stderr);
		return 2;
	}
	size_t k;
	for (k = 0; k < sizeof(pats) / sizeof(pats[0]); k++)
		if (!strcmp(pats[k].name, pat_name))
			break;
	if (k == sizeof(pats) / sizeof(pats[0])) {
		fprintf(stderr, "%s: unknown pattern '%s'\n", prog, pat_name);
		usage(stderr);
		return 2;
	}
	pat = pats[k].p;
	if (size_mb % 2) {
		fprintf(stderr, "%s: --size-mb must be even (a multiple of 2 MiB), got %lu\n",
			prog, size_mb);
		return 2;
	}

	warmup(warmup_mb, wadv);
	if (pat == P_WARMUP) {
		printf("# %s: warmed up %lu MiB (%s)\n", prog, warmup_mb, adv_names[wadv]);
		return 0;
	}

	size_t len = (size_t)size_mb << 20, pages = len / PAGE_SZ;
	if (pages > UINT32_MAX) {
		fprintf(stderr, "%s: --size-mb %lu: too many pages\n", prog, size_mb);
		return 2;
	}
	unsigned threads = (pat == P_MT || pat == P_MT_RAND) ? (unsigned)nthr : 1;
	if (threads > pages) {
		fprintf(stderr, "%s: more threads than pages\n", prog);
		return 2;
	}

	/* The permutation lives in its own mapping, written (so faulted in)
	 * here, long before the timed loop. */
	uint32_t *perm = NULL;
	size_t perm_len = 0;
	if (pat == P_RAND || pat == P_MT_RAND) {
		perm_len = (pages * sizeof(uint32_t) + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
		perm = map_anon(perm_len, "the permutation");
		rng_state = seed;
		for (unsigned t = 0; t < threads; t++) {
			size_t lo = pages * t / threads, hi = pages * (t + 1) / threads;
			shuffle_range(perm, lo, hi);
			check_perm(perm, lo, hi);
		}
	}

	for (unsigned long r = 0; r < reps; r++) {
		char *p = map_aligned(len);
		if (adv == A_NOHUGE && madvise(p, len, MADV_NOHUGEPAGE) != 0)
			die("madvise(MADV_NOHUGEPAGE)");
		if (adv == A_HUGE && madvise(p, len, MADV_HUGEPAGE) != 0)
			die("madvise(MADV_HUGEPAGE)");

		struct usage u0, u1;
		uint64_t ns;
		if (pat == P_MT || pat == P_MT_RAND) {
			u0 = usage_now();
			ns = run_threads(p, perm, pages, threads);
			u1 = usage_now();
		} else {
			u0 = usage_now();
			uint64_t t0 = now_ns();
			if (pat == P_SEQ)
				touch_seq(p, 0, pages);
			else if (pat == P_RAND)
				touch_perm(p, perm, 0, pages);
			else
				touch_stride(p, pages, stride);
			uint64_t t1 = now_ns();
			u1 = usage_now();
			ns = t1 - t0;
		}
		verify(p, pages);
		unmap(p, len);

		printf("result pattern=%s size_mb=%lu threads=%u stride=%lu madvise=%s rep=%lu "
		       "pages=%zu aux_pages=%zu ns_per_page=%.1f minflt=%ld majflt=%ld "
		       "cpu_ns_per_page=%.1f\n",
		       pat_name, size_mb, threads, stride, adv_names[adv], r, pages,
		       perm_len / PAGE_SZ, (double)ns / (double)pages, u1.minflt - u0.minflt,
		       u1.majflt - u0.majflt, (double)(u1.cpu_ns - u0.cpu_ns) / (double)pages);
		if (fflush(stdout) != 0)
			die("fflush(stdout)");
	}
	if (perm)
		unmap(perm, perm_len);
	return 0;
}
