/*
 * usm_dontneed - release and rewrite pages at random while they are being
 * evicted, and check that every page holds what was last written to it.
 *
 *   usm_dontneed [MiB] [seconds]
 *
 * A region of MiB (default 64) holds one known word per page.  For the
 * given time (default 5 s) random pages are either dropped with
 * MADV_DONTNEED and written again with a new value, or read and compared.
 * Under a budget smaller than the region, the reclaimer is moving pages
 * out all along: a drop-and-rewrite racing an eviction must never lose the
 * new value.  Prints "dontneed: OK <ops> operations, 0 wrong pages" or the
 * first wrong pages and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PS 4096

static uint64_t *word(char *m, size_t p)
{
	return (uint64_t *)(m + p * PS);
}

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, np = (mb << 20) / PS;
	int secs = argc > 2 ? atoi(argv[2]) : 5;
	char *m = mmap(NULL, np * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *want = calloc(np, sizeof(*want));
	uint64_t seed = 12345, ops = 0, wrong = 0;
	time_t end = time(NULL) + secs;

	if (m == MAP_FAILED || !want || !np) {
		fprintf(stderr, "usm_dontneed: cannot set up %zu MiB\n", mb);
		return 2;
	}
	for (size_t i = 0; i < np; i++)
		*word(m, i) = want[i] = i + 1;
	while (time(NULL) < end) {
		for (int k = 0; k < 1000; k++, ops++) {
			size_t p;
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			p = (seed >> 20) % np;
			if ((seed >> 8) & 1) {
				madvise(m + p * PS, PS, MADV_DONTNEED);
				*word(m, p) = want[p] = seed | 1;
			} else if (*word(m, p) != want[p]) {
				if (++wrong < 4)
					printf("dontneed: page %zu reads %#llx, wrote %#llx\n", p,
					       (unsigned long long)*word(m, p),
					       (unsigned long long)want[p]);
				want[p] = *word(m, p);
			}
		}
	}
	for (size_t i = 0; i < np; i++)
		wrong += *word(m, i) != want[i];
	printf("dontneed: %s %llu operations, %llu wrong pages\n", wrong ? "FAIL" : "OK",
	       (unsigned long long)ops, (unsigned long long)wrong);
	return wrong != 0;
}
