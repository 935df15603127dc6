/*
 * usm_evict_adv - adversarial programs for eviction: the address space
 * changes under pages that are being evicted, and every byte is checked.
 *
 * A plain C program (no USM headers):
 *
 *   usm_evict_adv MODE [--mb N] [--threads K] [--secs S] [--forks F]
 *
 * Every mode runs a "pressure" thread that keeps writing and checking an
 * N MiB array (default 64; make it larger than the budget) so that the
 * instance evicts all the time, and K worker threads (default 4) that do
 * what the mode says for S seconds (default 5):
 *
 *   dontneed  write a region, MADV_DONTNEED a random part of it (which
 *             must read zero at once), write it again, check everything;
 *   munmap    write a region, unmap it, map it again (the same address,
 *             most of the time), which must read zero, write it again;
 *   mremap    write a region, move it (mremap) to a new address and map
 *             the old one again: the moved pages keep their content, the
 *             new mapping reads zero;
 *   mprotect  write a region, make it read-only, check it, make it
 *             writable again, write it again;
 *   signals   every worker is interrupted by a fast timer signal whose
 *             handler checks a page of a constant region;
 *   fork      F (default 40) forks of the process with pages swapped
 *             out: each child checks a sample of pages of the array and
 *             of a region of each worker, then exits (every third one
 *             execs /bin/true instead);
 *   forkidle  K threads that sleep in read() and K that have exited
 *             (their stacks are in glibc's cache): the pressure sweeps
 *             the array three times, so the pages at the top of their
 *             stacks (the thread descriptors, which a child's glibc walks
 *             inside fork before any atfork handler runs) are swapped
 *             out; then F forks (default 40), each child checks a sample
 *             of the array and exits;
 *   forkuser  forkidle with the sleeping threads on stacks the program
 *             allocates itself (pthread_attr_setstack, from malloc), so
 *             their descriptors are in managed, evictable memory;
 *   cow       one fork; parent and child then both write the shared
 *             array, each its own generation, and check it;
 *   orphan    one fork after which the parent exits at once; the child
 *             checks the whole array, writes it and checks again;
 *   blocked   (with --ready R --go G, for a test that kills the instance)
 *             the array is written, R is created; once G exists a thread
 *             calls MADV_DONTNEED on its region, which blocks until the
 *             instance (or the agent, after the instance died) reads the
 *             event; then every page is checked.
 *
 * Contents are a function of (generation, page id, word index); a page
 * that must be empty must be all zero.  Prints "adv: OK <mode> <n> pages
 * verified" or "adv: FAIL ..." and exits 1.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)
#define REGION_PAGES 256           /* 1 MiB per worker region */
#define MAX_THREADS 32

static const char *mode;
static unsigned nthreads = 4, secs = 5, nforks = 40;
static size_t npages;
static uint64_t *arr;                   /* the pressure array */
static _Atomic uint32_t *arr_gen;       /* its pages' generations */
static atomic_int stop;
static atomic_uint sweeps;              /* whole passes of the pressure */
static atomic_ullong verified;

/* A worker's region: its pages' generations (0: must read zero). */
struct region {
	uint64_t *base;
	uint32_t gen[REGION_PAGES];
	uint64_t id;                    /* first page id */
	uint64_t next_gen;
	unsigned seed;
};
static struct region regions[MAX_THREADS];

static uint64_t word_of(uint64_t gen, uint64_t page, uint64_t i)
{
	uint64_t x = (gen << 40) ^ (page << 9) ^ i ^ 0x9e3779b97f4a7c15ull;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static void fail(const char *what, uint64_t page, uint64_t gen, uint64_t word, uint64_t got)
{
	printf("adv: FAIL %s %s: page id %llu (generation %llu) word %llu = 0x%llx, "
	       "expected 0x%llx\n", mode, what, (unsigned long long)page,
	       (unsigned long long)gen, (unsigned long long)word, (unsigned long long)got,
	       (unsigned long long)(gen ? word_of(gen, page, word) : 0));
	fflush(stdout);
	_exit(1);
}

static void die(const char *what)
{
	printf("adv: FAIL %s %s: %s\n", mode, what, strerror(errno));
	fflush(stdout);
	_exit(1);
}

static void write_page(uint64_t *p, uint64_t gen, uint64_t id)
{
	for (uint64_t i = 0; i < WORDS; i++)
		p[i] = word_of(gen, id, i);
}

static void check_page(const uint64_t *p, uint64_t gen, uint64_t id, const char *what)
{
	for (uint64_t i = 0; i < WORDS; i++) {
		uint64_t want = gen ? word_of(gen, id, i) : 0;
		if (p[i] != want)
			fail(what, id, gen, i, p[i]);
	}
	atomic_fetch_add_explicit(&verified, 1, memory_order_relaxed);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *map_anon(void *at, size_t len)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

/* ---- the pressure array --------------------------------------------- */

#define ARR_ID 0x100000000ull

static void arr_write(size_t i, uint32_t gen)
{
	write_page(arr + i * WORDS, gen, ARR_ID + i);
	atomic_store(&arr_gen[i], gen);
}

static void arr_check(size_t i, const char *what)
{
	check_page(arr + i * WORDS, atomic_load(&arr_gen[i]), ARR_ID + i, what);
}

/* Sweep the array: check each page, then write its next generation. */
static void *pressure(void *arg)
{
	uint32_t gen = 1;

	(void)arg;
	while (!atomic_load(&stop)) {
		gen++;
		for (size_t i = 0; i < npages && !atomic_load(&stop); i++) {
			arr_check(i, "pressure array");
			arr_write(i, gen);
		}
		atomic_fetch_add(&sweeps, 1);
	}
	return NULL;
}

/* ---- regions -------------------------------------------------------- */

static void region_write(struct region *r, unsigned from, unsigned to)
{
	uint64_t gen = ++r->next_gen;

	for (unsigned i = from; i < to; i++) {
		write_page(r->base + (uint64_t)i * WORDS, gen, r->id + i);
		r->gen[i] = (uint32_t)gen;
	}
}

static void region_check(const struct region *r, const char *what)
{
	for (unsigned i = 0; i < REGION_PAGES; i++)
		check_page(r->base + (uint64_t)i * WORDS, r->gen[i], r->id + i, what);
}

static void region_init(struct region *r, unsigned k)
{
	r->base = map_anon(NULL, REGION_PAGES * PAGE);
	r->id = (uint64_t)(k + 1) << 20;
	r->next_gen = 1;
	r->seed = k * 7919u + 1;
	memset(r->gen, 0, sizeof(r->gen));
	region_write(r, 0, REGION_PAGES);
}

static void random_range(struct region *r, unsigned *a, unsigned *b)
{
	unsigned x = (unsigned)rand_r(&r->seed) % REGION_PAGES;
	unsigned y = (unsigned)rand_r(&r->seed) % REGION_PAGES;

	*a = x < y ? x : y;
	*b = (x < y ? y : x) + 1;
}

static void step_dontneed(struct region *r)
{
	unsigned a, b;

	random_range(r, &a, &b);
	if (madvise(r->base + (uint64_t)a * WORDS, (b - a) * (size_t)PAGE, MADV_DONTNEED))
		die("madvise(MADV_DONTNEED)");
	memset(r->gen + a, 0, (b - a) * sizeof(r->gen[0]));
	region_check(r, "after MADV_DONTNEED");
	region_write(r, a, b);
	region_check(r, "rewritten after MADV_DONTNEED");
}

static void step_munmap(struct region *r)
{
	region_check(r, "before munmap");
	if (munmap(r->base, REGION_PAGES * PAGE))
		die("munmap");
	r->base = map_anon(NULL, REGION_PAGES * PAGE);
	memset(r->gen, 0, sizeof(r->gen));
	region_check(r, "fresh mapping after munmap");
	region_write(r, 0, REGION_PAGES);
	region_check(r, "rewritten after munmap");
}

static void step_mremap(struct region *r)
{
	uint64_t *old = r->base;
	void *to = mmap(NULL, REGION_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct region fresh;
	unsigned a, b;

	if (to == MAP_FAILED)
		die("mmap for mremap");
	/* A part of the region is written just before the move: those
	 * pages are the youngest, the rest may be on their way out. */
	random_range(r, &a, &b);
	region_write(r, a, b);
	r->base = mremap(old, REGION_PAGES * PAGE, REGION_PAGES * PAGE,
			 MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (r->base == MAP_FAILED)
		die("mremap");
	/* The old place is mapped again and written at once.  Another
	 * worker may have taken it meanwhile (its own mmap(NULL) can land
	 * there): never map over it, take any other place then. */
	fresh = *r;
	fresh.base = mmap(old, REGION_PAGES * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (fresh.base == MAP_FAILED && errno == EEXIST)
		fresh.base = map_anon(NULL, REGION_PAGES * PAGE);
	if (fresh.base == MAP_FAILED)
		die("mmap at the old place of a mremap");
	fresh.id = r->id + (1u << 19);
	memset(fresh.gen, 0, sizeof(fresh.gen));
	region_check(&fresh, "fresh mapping at the old place of a mremap");
	region_write(&fresh, 0, REGION_PAGES);
	region_check(r, "moved by mremap");
	region_check(&fresh, "written at the old place of a mremap");
	if (munmap(fresh.base, REGION_PAGES * PAGE))
		die("munmap");
}

static void step_mprotect(struct region *r)
{
	if (mprotect(r->base, REGION_PAGES * PAGE, PROT_READ))
		die("mprotect(PROT_READ)");
	usleep(2000);
	region_check(r, "read-only");
	if (mprotect(r->base, REGION_PAGES * PAGE, PROT_READ | PROT_WRITE))
		die("mprotect(PROT_READ|PROT_WRITE)");
	region_write(r, 0, REGION_PAGES);
	region_check(r, "writable again");
}

/* signals: a constant region checked by the handler. */
#define CONST_PAGES 1024
static uint64_t *const_mem;
static _Atomic unsigned long handled;

static void on_alarm(int sig)
{
	static _Thread_local unsigned seed;
	int saved = errno;
	size_t i = (size_t)rand_r(&seed) % CONST_PAGES;

	(void)sig;
	check_page(const_mem + i * WORDS, 7, 0x200000000ull + i, "in a signal handler");
	atomic_fetch_add(&handled, 1);
	errno = saved;
}

static void step_signals(struct region *r)
{
	unsigned a, b;

	random_range(r, &a, &b);
	region_write(r, a, b);
	region_check(r, "interrupted by signals");
	usleep(1000);       /* EINTR is fine: it comes back */
}

static void *worker(void *arg)
{
	struct region *r = arg;

	while (!atomic_load(&stop)) {
		if (!strcmp(mode, "dontneed"))
			step_dontneed(r);
		else if (!strcmp(mode, "munmap"))
			step_munmap(r);
		else if (!strcmp(mode, "mremap"))
			step_mremap(r);
		else if (!strcmp(mode, "mprotect"))
			step_mprotect(r);
		else
			step_signals(r);
	}
	return NULL;
}

/* ---- forks ----------------------------------------------------------- */

/* In a child: a sample of the array and every worker region. */
static int child_checks(unsigned k)
{
	for (size_t i = k % 7; i < npages; i += 37)
		arr_check(i, "in a fork child (array)");
	for (unsigned t = 0; t < nthreads; t++)
		region_check(&regions[t], "in a fork child (region)");
	return 0;
}

static void reap(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		printf("adv: FAIL %s %s: child status 0x%x\n", mode, what, st);
		fflush(stdout);
		_exit(1);
	}
}

/* Forks while the pressure thread runs (the workers' regions are quiet),
 * four children alive at a time. */
static void fork_storm(void)
{
	pid_t kids[4];

	for (unsigned k = 0; k < nforks; k += 4) {
		unsigned n = 0;
		for (; n < 4 && k + n < nforks; n++) {
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				if ((k + n) % 3 == 2) {
					execl("/bin/true", "true", (char *)NULL);
					_exit(3);
				}
				child_checks(k + n);
				_exit(0);
			}
			kids[n] = pid;
		}
		while (n)
			reap(kids[--n], "fork storm");
	}
}

static int sleep_fd = -1;

static void *sleeper(void *arg)
{
	char c;

	(void)arg;
	while (read(sleep_fd, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void *quitter(void *arg)
{
	return arg;
}

/* A sleeper on a stack of the program's own, from its (managed) heap. */
static void *start_on_own_stack(pthread_t *t)
{
	size_t size = 256 << 10;
	void *stack = NULL;
	pthread_attr_t attr;

	if (posix_memalign(&stack, 4096, size))
		die("posix_memalign for a thread stack");
	memset(stack, 0, size);
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, size);
	if (pthread_create(t, &attr, sleeper, NULL))
		die("pthread_create on an own stack");
	pthread_attr_destroy(&attr);
	return stack;
}

/* The top page of t's stack, which holds its descriptor.  Asking reads
 * the descriptor, so ask before the pressure. */
static char *descriptor_page(pthread_t t)
{
	pthread_attr_t attr;
	void *stack;
	size_t size;

	if (pthread_getattr_np(t, &attr) || pthread_attr_getstack(&attr, &stack, &size))
		die("pthread_getattr_np");
	pthread_attr_destroy(&attr);
	return (char *)stack + size - PAGE;
}

/* How many of these pages are not in memory: the hazard forkidle and
 * forkuser are about. */
static unsigned pages_out(char *const *pages, unsigned n)
{
	unsigned out = 0;

	for (unsigned k = 0; k < n; k++) {
		unsigned char in_core;

		if (mincore(pages[k], PAGE, &in_core))
			die("mincore");
		out += !(in_core & 1);
	}
	return out;
}

/* Forks while threads have been quiet for a long time (see the top). */
static void fork_idle(pthread_t pressure_thread, bool own_stacks)
{
	pthread_t sleepers[MAX_THREADS], quit;
	void *stacks[MAX_THREADS] = { 0 };
	char *tops[MAX_THREADS];
	int pfd[2];

	if (pipe(pfd))
		die("pipe");
	sleep_fd = pfd[0];
	for (unsigned k = 0; k < nthreads; k++) {
		if (own_stacks)
			stacks[k] = start_on_own_stack(&sleepers[k]);
		else if (pthread_create(&sleepers[k], NULL, sleeper, NULL))
			die("pthread_create");
		tops[k] = descriptor_page(sleepers[k]);
		if (pthread_create(&quit, NULL, quitter, NULL))
			die("pthread_create");
		pthread_join(quit, NULL);
	}
	while (atomic_load(&sweeps) < 3)
		usleep(10000);
	atomic_store(&stop, 1);
	pthread_join(pressure_thread, NULL);
	printf("adv: descriptor pages out before fork: %u of %u\n",
	       pages_out(tops, nthreads), nthreads);
	for (unsigned k = 0; k < nforks; k++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			for (size_t i = k % 7; i < npages; i += 37)
				arr_check(i, "in a fork child (array)");
			_exit(0);
		}
		reap(pid, "fork with idle threads");
	}
	for (unsigned k = 0; k < nthreads; k++)     /* a byte per sleeper */
		if (write(pfd[1], "", 1) < 0)
			die("write");
	for (unsigned k = 0; k < nthreads; k++) {
		pthread_join(sleepers[k], NULL);
		free(stacks[k]);
	}
	close(pfd[0]);
	close(pfd[1]);
}

/* Parent and child both write the (shared copy-on-write) array. */
static void cow(void)
{
	pid_t pid;

	atomic_store(&stop, 1);        /* the pressure thread is joined by main */
	pid = fork();
	if (pid < 0)
		die("fork");
	for (unsigned round = 0; round < 3; round++) {
		uint32_t g = (pid == 0 ? 1000u : 2000u) + round;
		for (size_t i = 0; i < npages; i++)
			arr_check(i, pid == 0 ? "cow child" : "cow parent");
		for (size_t i = 0; i < npages; i++)
			arr_write(i, g);
	}
	for (size_t i = 0; i < npages; i++)
		arr_check(i, pid == 0 ? "cow child, final" : "cow parent, final");
	if (pid == 0)
		_exit(0);
	reap(pid, "cow");
}

static void orphan(void)
{
	pid_t pid;
	int pfd[2];
	char c;

	if (pipe(pfd))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid) {
		/* The parent exits at once; the child reports through stdout. */
		_exit(0);
	}
	close(pfd[1]);
	/* Wait until the parent is gone (the pipe's writer closes). */
	while (read(pfd[0], &c, 1) > 0)
		;
	for (size_t i = 0; i < npages; i++)
		arr_check(i, "orphan child");
	for (size_t i = 0; i < npages; i++)
		arr_write(i, 5000);
	for (size_t i = 0; i < npages; i++)
		arr_check(i, "orphan child, written");
	printf("adv: OK %s %llu pages verified\n", mode, (unsigned long long)verified);
	fflush(stdout);
	_exit(0);
}

static const char *ready_file, *go_file;

static void touch_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("creating the ready file");
	fclose(f);
}

static atomic_int go;

static void *dontneed_region0(void *arg)
{
	(void)arg;
	while (!atomic_load(&go))
		usleep(1000);
	if (madvise(regions[0].base, REGION_PAGES * PAGE, MADV_DONTNEED))
		die("madvise(MADV_DONTNEED)");
	memset(regions[0].gen, 0, sizeof(regions[0].gen));
	return NULL;
}

/*
 * The array is swapped out in good part when the instance dies while an
 * MADV_DONTNEED event waits to be read.  Nothing here may fault after
 * the go: the main thread runs on the (unmanaged) process stack and the
 * other thread on a shared mapping, which USM never manages.
 */
static void blocked(void)
{
	size_t stack_size = 256 << 10;
	void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_attr_t attr;
	pthread_t t;

	if (!ready_file || !go_file) {
		fprintf(stderr, "usm_evict_adv: blocked needs --ready and --go\n");
		exit(2);
	}
	if (stack == MAP_FAILED)
		die("mmap for a thread stack");
	memset(stack, 0, stack_size);
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, stack_size);
	if (pthread_create(&t, &attr, dontneed_region0, NULL))
		die("pthread_create");
	touch_file(ready_file);
	while (access(go_file, F_OK))
		usleep(10000);
	atomic_store(&go, 1);
	usleep(300000);
	pthread_join(t, NULL);
	for (size_t i = 0; i < npages; i++)
		arr_check(i, "array after the instance died");
	region_check(&regions[0], "region released while the instance died");
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s dontneed|munmap|mremap|mprotect|signals|fork|forkidle|forkuser|cow|orphan|"
		"blocked [--mb N] [--threads K] [--secs S] [--forks F] [--ready R --go G]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	pthread_t pt, wt[MAX_THREADS];
	size_t mb = 64;
	int workers;

	if (argc < 2)
		usage(argv[0]);
	mode = argv[1];
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--secs") && i + 1 < argc)
			secs = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--forks") && i + 1 < argc)
			nforks = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--ready") && i + 1 < argc)
			ready_file = argv[++i];
		else if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go_file = argv[++i];
		else
			usage(argv[0]);
	}
	workers = !strcmp(mode, "dontneed") || !strcmp(mode, "munmap") ||
		  !strcmp(mode, "mremap") || !strcmp(mode, "mprotect") ||
		  !strcmp(mode, "signals");
	if (!workers && strcmp(mode, "fork") && strcmp(mode, "forkidle") &&
	    strcmp(mode, "forkuser") && strcmp(mode, "cow") &&
	    strcmp(mode, "orphan") && strcmp(mode, "blocked"))
		usage(argv[0]);
	if (!mb || !nthreads || nthreads > MAX_THREADS) {
		fprintf(stderr, "usm_evict_adv: --mb must be positive, --threads 1-%d\n",
			MAX_THREADS);
		return 2;
	}
	npages = mb * 256;
	arr = map_anon(NULL, npages * PAGE);
	arr_gen = calloc(npages, sizeof(*arr_gen));
	if (!arr_gen)
		die("calloc");
	for (size_t i = 0; i < npages; i++)
		arr_write(i, 1);
	for (unsigned k = 0; k < nthreads; k++)
		region_init(&regions[k], k);

	if (!strcmp(mode, "signals")) {
		struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
		struct itimerval it = { { 0, 500 }, { 0, 500 } };

		const_mem = map_anon(NULL, CONST_PAGES * PAGE);
		for (size_t i = 0; i < CONST_PAGES; i++)
			write_page(const_mem + i * WORDS, 7, 0x200000000ull + i);
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
	}
	if (!strcmp(mode, "orphan"))
		orphan();
	if (!strcmp(mode, "blocked")) {
		blocked();
		printf("adv: OK %s %llu pages verified\n", mode, (unsigned long long)verified);
		return 0;
	}
	if (pthread_create(&pt, NULL, pressure, NULL))
		die("pthread_create");
	if (workers) {
		for (unsigned k = 0; k < nthreads; k++)
			if (pthread_create(&wt[k], NULL, worker, &regions[k]))
				die("pthread_create");
		uint64_t end = now_ms() + secs * 1000ull;
		while (now_ms() < end)
			usleep(50000);
		atomic_store(&stop, 1);
		for (unsigned k = 0; k < nthreads; k++)
			pthread_join(wt[k], NULL);
		pthread_join(pt, NULL);
		for (unsigned k = 0; k < nthreads; k++)
			region_check(&regions[k], "at the end");
	} else if (!strcmp(mode, "fork")) {
		usleep(200000);
		fork_storm();
		atomic_store(&stop, 1);
		pthread_join(pt, NULL);
	} else if (!strcmp(mode, "forkidle") || !strcmp(mode, "forkuser")) {
		fork_idle(pt, !strcmp(mode, "forkuser"));
	} else {
		usleep(200000);
		atomic_store(&stop, 1);
		pthread_join(pt, NULL);
		cow();
	}
	if (!strcmp(mode, "signals")) {
		struct itimerval off = { { 0, 0 }, { 0, 0 } };
		setitimer(ITIMER_REAL, &off, NULL);
		if (!atomic_load(&handled)) {
			printf("adv: FAIL signals: no signal was handled\n");
			return 1;
		}
	}
	for (size_t i = 0; i < npages; i++)
		arr_check(i, "array at the end");
	printf("adv: OK %s %llu pages verified\n", mode, (unsigned long long)verified);
	return 0;
}
