/* SPDX-License-Identifier: MIT */
/*
 * usm_demo - a small workload to watch USM at work: it builds a hash table
 * of 2 M entries with malloc, sorts an mmap'd array of 8 M integers, frees
 * half of everything, and prints checksums.  Under `usm run --stats` every
 * page it touches is a fault served by the instance's policy.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ENTRIES (2u << 20)
#define INTS    (8u << 20)

struct entry {
	uint64_t key, value;
	struct entry *next;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static uint64_t hash_table_phase(void)
{
	size_t nb = ENTRIES / 2;
	struct entry **buckets = calloc(nb, sizeof(*buckets));
	uint64_t sum = 0;

	if (!buckets)
		return 0;
	for (uint64_t i = 0; i < ENTRIES; i++) {
		struct entry *e = malloc(sizeof(*e));
		if (!e)
			abort();
		e->key = mix(i);
		e->value = i;
		e->next = buckets[e->key % nb];
		buckets[e->key % nb] = e;
	}
	for (size_t b = 0; b < nb; b++)
		for (struct entry *e = buckets[b], *n; e; e = n) {
			n = e->next;
			sum += e->key ^ e->value;
			if (b % 2)
				free(e);
		}
	return sum;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static uint64_t sort_phase(void)
{
	size_t len = INTS * sizeof(uint32_t);
	uint32_t *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t sum = 0;

	if (a == MAP_FAILED)
		return 0;
	for (uint32_t i = 0; i < INTS; i++)
		a[i] = (uint32_t)mix(i);
	qsort(a, INTS, sizeof(*a), cmp_u32);
	for (uint32_t i = 1; i < INTS; i++)
		if (a[i - 1] > a[i])
			abort();
	for (uint32_t i = 0; i < INTS; i += 4096)
		sum += a[i];
	munmap(a, len);
	return sum;
}

int main(void)
{
	printf("usm_demo: hash table checksum %016llx\n",
	       (unsigned long long)hash_table_phase());
	printf("usm_demo: sorted array checksum %016llx\n",
	       (unsigned long long)sort_phase());
	return 0;
}
