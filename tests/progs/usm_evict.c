/*
 * usm_evict - write a working set larger than the memory budget, then
 * check every page, in the ways eviction can go wrong.
 *
 * A plain C program (no USM headers) for the eviction tests:
 *
 *   usm_evict [--mb N] [--threads K] [--rand] [--passes P] [--fork]
 *             [--remap] [--unmap] [--ready FILE] [--hold-ms H]
 *
 * N MiB (default 128) of anonymous memory, split between K threads
 * (default 1), is written page by page (in random order with --rand):
 * every word of a page is a function of (generation, page index, word
 * index).  P passes (default 2) each write a new generation and then
 * verify every page.  Then, optionally:
 *   --fork   the child checks the parent's data, writes its own
 *            generation and checks it; the parent waits, checks that its
 *            data did not change, writes and checks again;
 *   --remap  the upper half moves to a new address (mremap) and is
 *            checked there;
 *   --unmap  a quarter in the middle is unmapped, the rest checked, and
 *            the hole mapped again must read as zero;
 *   --fork-exit FILE  fork and exit at once; the child, orphaned, checks
 *            the data and writes its verdict line to FILE.
 * With --ready FILE the program creates FILE once its data is written and
 * sleeps H ms (default 0) before checking it (for tests that kill the
 * instance in between).  Prints "evict: OK <n> pages verified" or a
 * "evict: FAIL ..." line and exits 1.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t *mem;
static size_t npages;
static unsigned nthreads = 1;
static int random_order;
static uint64_t verified;
static pthread_mutex_t verified_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t word_of(uint64_t gen, uint64_t page, uint64_t i)
{
	uint64_t x = (gen << 40) ^ (page << 9) ^ i ^ 0x9e3779b97f4a7c15ull;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static void die(const char *what, uint64_t page, uint64_t gen)
{
	printf("evict: FAIL %s at page %llu (generation %llu)\n", what,
	       (unsigned long long)page, (unsigned long long)gen);
	fflush(stdout);
	exit(1);
}

static void write_page(uint64_t *p, uint64_t gen, uint64_t page)
{
	for (uint64_t i = 0; i < WORDS; i++)
		p[i] = word_of(gen, page, i);
}

static void check_page(const uint64_t *p, uint64_t gen, uint64_t page)
{
	for (uint64_t i = 0; i < WORDS; i++)
		if (p[i] != word_of(gen, page, i))
			die("wrong content", page, gen);
}

struct job {
	uint64_t gen;
	size_t first, count;
	int write;
	uint64_t *base;        /* where page `first` lives */
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	uint64_t n = 0;

	for (size_t k = 0; k < j->count; k++) {
		size_t idx = random_order ? (k * 7919 + j->gen) % j->count : k;
		uint64_t *p = j->base + (uint64_t)idx * WORDS;
		if (j->write)
			write_page(p, j->gen, j->first + idx);
		else
			check_page(p, j->gen, j->first + idx);
		n++;
	}
	if (!j->write) {
		pthread_mutex_lock(&verified_mu);
		verified += n;
		pthread_mutex_unlock(&verified_mu);
	}
	return NULL;
}

/* Pages [first, first + count) at base, split between the threads. */
static void run_all(uint64_t *base, size_t first, size_t count, uint64_t gen, int write)
{
	pthread_t t[64];
	struct job jobs[64];
	size_t per = count / nthreads;

	for (unsigned i = 0; i < nthreads; i++) {
		jobs[i] = (struct job){ gen, first + i * per,
					i == nthreads - 1 ? count - i * per : per, write,
					base + (uint64_t)i * per * WORDS };
		if (pthread_create(&t[i], NULL, run_job, &jobs[i])) {
			printf("evict: FAIL pthread_create\n");
			exit(1);
		}
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
}

static void do_fork(uint64_t gen)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		printf("evict: FAIL fork\n");
		exit(1);
	}
	if (pid == 0) {
		run_all(mem, 0, npages, gen, 0);
		run_all(mem, 0, npages, gen + 100, 1);
		run_all(mem, 0, npages, gen + 100, 0);
		printf("evict: child OK %zu pages verified twice\n", npages);
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("evict: FAIL the child failed\n");
		exit(1);
	}
	run_all(mem, 0, npages, gen, 0);
	run_all(mem, 0, npages, gen + 1, 1);
	run_all(mem, 0, npages, gen + 1, 0);
}

/* Daemon-style: the parent leaves at once, the orphaned child checks. */
static void do_fork_exit(uint64_t gen, const char *out)
{
	pid_t pid = fork();
	FILE *f;

	if (pid < 0)
		die("fork", 0, gen);
	if (pid > 0)
		exit(0);
	usleep(100000);                 /* the parent is gone by now */
	run_all(mem, 0, npages, gen, 0);
	f = fopen(out, "w");
	if (!f)
		_exit(1);
	fprintf(f, "evict: child OK %zu pages verified\n", npages);
	fclose(f);
	_exit(0);
}

static void do_remap(uint64_t gen)
{
	size_t half = npages / 2, moved = npages - half;
	uint64_t *to = mmap(NULL, moved * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *now;

	if (to == MAP_FAILED)
		die("mmap for mremap", 0, gen);
	now = mremap(mem + half * WORDS, moved * PAGE, moved * PAGE,
		     MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (now == MAP_FAILED)
		die("mremap", half, gen);
	run_all(mem, 0, half, gen, 0);
	run_all(now, half, moved, gen, 0);
	run_all(mem, 0, half, gen + 1, 1);
	run_all(now, half, moved, gen + 1, 1);
	run_all(mem, 0, half, gen + 1, 0);
	run_all(now, half, moved, gen + 1, 0);
	munmap(now, moved * PAGE);
	npages = half;
}

static void do_unmap(uint64_t gen)
{
	size_t q = npages / 4, hole = npages / 4;
	uint64_t *h = mem + q * WORDS;

	if (munmap(h, hole * PAGE))
		die("munmap", q, gen);
	run_all(mem, 0, q, gen, 0);
	run_all(mem + (q + hole) * WORDS, q + hole, npages - q - hole, gen, 0);
	if (mmap(h, hole * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != h)
		die("mmap over the hole", q, gen);
	for (size_t i = 0; i < hole * WORDS; i++)
		if (h[i])
			die("non-zero page in a fresh mapping", q + i / WORDS, gen);
}

int main(int argc, char **argv)
{
	size_t mb = 128;
	unsigned passes = 2, hold_ms = 0;
	int fork_test = 0, remap = 0, unmap = 0;
	const char *ready = NULL, *fork_exit = NULL;
	uint64_t gen = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--passes") && i + 1 < argc)
			passes = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--hold-ms") && i + 1 < argc)
			hold_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--ready") && i + 1 < argc)
			ready = argv[++i];
		else if (!strcmp(argv[i], "--fork-exit") && i + 1 < argc)
			fork_exit = argv[++i];
		else if (!strcmp(argv[i], "--rand"))
			random_order = 1;
		else if (!strcmp(argv[i], "--fork"))
			fork_test = 1;
		else if (!strcmp(argv[i], "--remap"))
			remap = 1;
		else if (!strcmp(argv[i], "--unmap"))
			unmap = 1;
		else {
			fprintf(stderr, "usage: %s [--mb N] [--threads K] [--rand] [--passes P] "
				"[--fork] [--fork-exit FILE] [--remap] [--unmap] [--ready FILE] "
				"[--hold-ms H]\n", argv[0]);
			return 2;
		}
	}
	if (!mb || !nthreads || nthreads > 64 || !passes) {
		fprintf(stderr, "usm_evict: --mb, --threads (1-64) and --passes must be positive\n");
		return 2;
	}
	npages = mb * 256;
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (unsigned p = 0; p < passes; p++, gen++) {
		run_all(mem, 0, npages, gen, 1);
		if (p == passes - 1 && ready) {
			int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd >= 0)
				close(fd);
			usleep(hold_ms * 1000u);
		}
		run_all(mem, 0, npages, gen, 0);
	}
	gen--;
	if (fork_exit)
		do_fork_exit(gen, fork_exit);
	if (fork_test)
		do_fork(gen), gen++;
	if (remap)
		do_remap(gen), gen++;
	if (unmap)
		do_unmap(gen);
	printf("evict: OK %llu pages verified\n", (unsigned long long)verified);
	return 0;
}
