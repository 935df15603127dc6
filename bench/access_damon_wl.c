/* SPDX-License-Identifier: MIT */
/*
 * bench/access_damon_wl.c - workload for bench/access_damon_paddr.py:
 *   access_damon_wl MiB hot-percent layout seconds LAYOUT-FILE
 * Maps MiB (4 KiB pages), writes all, then reads one byte of every hot
 * page per pass for `seconds`.  layout 0: the hot pages are the first
 * hot-percent of the range; 1: chosen at random.  Writes "base npages"
 * and a line of 0/1 per page (1 = hot) to LAYOUT-FILE, then prints
 * "ready PID".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s MiB hot-percent layout(0|1) seconds LAYOUT-FILE\n", argv[0]);
		return 2;
	}
	size_t n = strtoull(argv[1], NULL, 10) * 256, k = 0;
	int pct = atoi(argv[2]), random_layout = atoi(argv[3]);
	time_t end = time(NULL) + atoi(argv[4]);
	char *m = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t *idx = malloc(n * sizeof(*idx));
	FILE *f = fopen(argv[5], "w");
	volatile char sink = 0;

	if (m == MAP_FAILED || !idx || !f) {
		perror("access_damon_wl");
		return 1;
	}
	madvise(m, n * 4096, MADV_NOHUGEPAGE);
	srand(1);
	fprintf(f, "%lx %zu\n", (unsigned long)m, n);
	for (size_t i = 0; i < n; i++) {
		int hot = random_layout ? rand() % 100 < pct : i < n * pct / 100;

		m[i * 4096] = 1;
		if (hot)
			idx[k++] = i;
		fputc('0' + hot, f);
	}
	fclose(f);
	printf("ready %d\n", getpid());
	fflush(stdout);
	while (time(NULL) < end)
		for (size_t i = 0; i < k; i++)
			sink += m[idx[i] * 4096];
	return 0;
}
