/* SPDX-License-Identifier: MIT */
/*
 * usm_collide - threads that first-touch the same pages at the same time.
 *
 *   usm_collide THREADS MB [HOLD_MS]
 *
 * Maps MB MiB; THREADS threads wait at a barrier, then each adds 1 to the
 * first word of every page, in the same ascending order, so that their
 * faults keep landing on pages another thread is faulting on right then.
 * Every page must end up holding THREADS.  Prints "collide: OK N pages",
 * then stays alive HOLD_MS milliseconds (for a test to read the instance's
 * counters of a live process), or "collide: FAIL ..." and exits 1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ul
#define MAX_THREADS 64

static char *mem;
static size_t npages;
static pthread_barrier_t start;

static void *toucher(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start);
	for (size_t i = 0; i < npages; i++)
		atomic_fetch_add((_Atomic long *)(mem + i * PAGE), 1);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[MAX_THREADS];
	int n = argc > 2 ? atoi(argv[1]) : 0;
	long mb = argc > 2 ? atol(argv[2]) : 0;
	long hold_ms = argc > 3 ? atol(argv[3]) : 0;

	if (n < 2 || n > MAX_THREADS || mb < 1) {
		fprintf(stderr, "usage: usm_collide THREADS(2-%d) MB [HOLD_MS]\n", MAX_THREADS);
		return 2;
	}
	npages = (size_t)mb * (1 << 20) / PAGE;
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("collide: FAIL mmap");
		return 1;
	}
	pthread_barrier_init(&start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, toucher, NULL)) {
			printf("collide: FAIL pthread_create\n");
			return 1;
		}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < npages; i++) {
		long v = *(long *)(mem + i * PAGE);
		if (v != n) {
			printf("collide: FAIL page %zu holds %ld, expected %d\n", i, v, n);
			return 1;
		}
	}
	printf("collide: OK %zu pages\n", npages);
	fflush(stdout);
	usleep((useconds_t)hold_ms * 1000);
	return 0;
}
