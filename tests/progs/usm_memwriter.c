/*
 * usm_memwriter - write a lot of memory over a chosen time, then verify it.
 *
 * A plain C program (no USM headers) for the functional tests that need a
 * managed program to be in the middle of its work when something happens
 * to the instance (kill -9, SIGSTOP, a full budget, `usm stat`).
 *
 *   usm_memwriter [--mb N] [--ms T] [--threads K] [--hold-ms H] [--ready FILE]
 *
 * N MiB (default 64) in 1 MiB chunks, alternately from mmap and malloc, are
 * filled by K threads (default 2) with a pattern that depends on the chunk
 * and word index only; the writes are paced to take about T ms (default 0:
 * as fast as possible).  Each thread re-reads one of its earlier chunks
 * after every chunk it writes.  Once everything is written the program
 * creates FILE (if given), sleeps H ms, verifies every word and prints
 *
 *   memwriter: OK <N> MiB verified, checksum <16 hex digits>
 *
 * The checksum is a function of N alone (the sum of all words), so a run
 * under USM can be compared with a native run.  Any wrong word prints a
 * "memwriter: FAIL ..." line and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK ((size_t)1 << 20)
#define WORDS (CHUNK / sizeof(uint64_t))
#define MAX_THREADS 64

static size_t n_chunks = 64;
static unsigned n_threads = 2;
static long write_ms;
static long hold_ms;
static const char *ready_file;
static uint64_t **chunks;
static struct timespec t_start;

static uint64_t mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t want(size_t chunk, size_t word)
{
	return mix(((uint64_t)chunk << 32) | word);
}

static void __attribute__((noreturn)) die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	flockfile(stdout);
	fputs("memwriter: FAIL ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	funlockfile(stdout);
	exit(1);
}

static void check_chunk(size_t c)
{
	const uint64_t *p = chunks[c];

	for (size_t j = 0; j < WORDS; j++)
		if (p[j] != want(c, j))
			die("chunk %zu word %zu (%p): got %016llx, want %016llx", c, j,
			    (const void *)&p[j], (unsigned long long)p[j],
			    (unsigned long long)want(c, j));
}

static void sleep_until_ms(double ms)
{
	struct timespec now, t;
	double elapsed;

	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed = (double)(now.tv_sec - t_start.tv_sec) * 1e3 +
		  (double)(now.tv_nsec - t_start.tv_nsec) / 1e6;
	if (ms <= elapsed)
		return;
	ms -= elapsed;
	t.tv_sec = (time_t)(ms / 1e3);
	t.tv_nsec = (long)((ms - (double)t.tv_sec * 1e3) * 1e6);
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static void *writer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	size_t done = 0;

	for (size_t c = id; c < n_chunks; c += n_threads) {
		uint64_t *p;

		if (c % 2 == 0) {
			p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				die("mmap of chunk %zu: %s", c, strerror(errno));
		} else {
			p = malloc(CHUNK);
			if (!p)
				die("malloc of chunk %zu failed", c);
		}
		/* Fresh anonymous memory reads as zero. */
		for (size_t j = 0; j < WORDS; j += 512)
			if (c % 2 == 0 && p[j] != 0)
				die("chunk %zu word %zu is not zero when fresh: %016llx", c, j,
				    (unsigned long long)p[j]);
		for (size_t j = 0; j < WORDS; j++)
			p[j] = want(c, j);
		chunks[c] = p;
		done++;
		if (done > 1)
			check_chunk(c - n_threads * (1 + (c * 2654435761u) % (done - 1)));
		if (write_ms > 0)
			sleep_until_ms((double)write_ms * (double)(c + 1) / (double)n_chunks);
	}
	return NULL;
}

static long num_arg(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "usm_memwriter: %s wants a number in [%ld, %ld], got '%s'\n",
			opt, min, max, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_THREADS];
	uint64_t sum = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fprintf(stderr, "usage: usm_memwriter [--mb N] [--ms T] [--threads K] "
				"[--hold-ms H] [--ready FILE]\n");
			return 2;
		}
		if (!strcmp(a, "--mb"))
			n_chunks = (size_t)num_arg(a, v, 1, 1 << 20);
		else if (!strcmp(a, "--ms"))
			write_ms = num_arg(a, v, 0, 3600000);
		else if (!strcmp(a, "--threads"))
			n_threads = (unsigned)num_arg(a, v, 1, MAX_THREADS);
		else if (!strcmp(a, "--hold-ms"))
			hold_ms = num_arg(a, v, 0, 3600000);
		else if (!strcmp(a, "--ready"))
			ready_file = v;
		else {
			fprintf(stderr, "usm_memwriter: unknown option '%s'\n", a);
			return 2;
		}
		i++;
	}
	chunks = calloc(n_chunks, sizeof(*chunks));
	if (!chunks)
		die("calloc of the chunk table failed");
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	for (unsigned t = 0; t < n_threads; t++)
		if ((errno = pthread_create(&th[t], NULL, writer, (void *)(uintptr_t)t)))
			die("pthread_create: %s", strerror(errno));
	for (unsigned t = 0; t < n_threads; t++)
		pthread_join(th[t], NULL);
	if (ready_file) {
		int fd = open(ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("cannot create %s: %s", ready_file, strerror(errno));
		close(fd);
	}
	if (hold_ms > 0) {
		struct timespec h = { hold_ms / 1000, (hold_ms % 1000) * 1000000L };

		while (nanosleep(&h, &h) < 0 && errno == EINTR)
			;
	}
	for (size_t c = 0; c < n_chunks; c++) {
		check_chunk(c);
		for (size_t j = 0; j < WORDS; j++)
			sum += chunks[c][j];
	}
	printf("memwriter: OK %zu MiB verified, checksum %016llx\n", n_chunks,
	       (unsigned long long)sum);
	return 0;
}
