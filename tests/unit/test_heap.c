/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/heap.c: the in-process host's own heap.  Built like
 * libusm-inline.so: this file and heap.c linked with --wrap for malloc &
 * co, so that malloc() here is the framework's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

bool usm_heap_owns(const void *p);
void *__real_malloc(size_t n);
void __real_free(void *p);

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 131 + i * 7);
}

static bool check(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed * 131 + i * 7))
			return false;
	return true;
}

/* Every size class and some extents: aligned, ours, kept apart. */
static void test_sizes(void **state)
{
	static const size_t sizes[] = { 1, 8, 15, 16, 17, 100, 1000, 4080, 4096, 10000,
					32752, 32753, 65536, 300000, 1u << 21 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	unsigned char *p[N];

	(void)state;
	for (unsigned i = 0; i < N; i++) {
		p[i] = malloc(sizes[i]);
		assert_non_null(p[i]);
		assert_true(usm_heap_owns(p[i]));
		assert_int_equal((uintptr_t)p[i] % 16, 0);
		fill(p[i], sizes[i], i);
	}
	for (unsigned i = 0; i < N; i++) {
		assert_true(check(p[i], sizes[i], i));
		free(p[i]);
	}
}

/* A reused small block comes back zeroed from calloc. */
static void test_calloc_zeroes(void **state)
{
	unsigned char *a, *b;
	uintptr_t was;
	volatile size_t huge = SIZE_MAX / 2;

	(void)state;
	a = malloc(200);
	memset(a, 0xff, 200);
	was = (uintptr_t)a;
	free(a);
	b = calloc(10, 20);
	assert_int_equal((uintptr_t)b, was);   /* the same class hands it back */
	for (unsigned i = 0; i < 200; i++)
		assert_int_equal(b[i], 0);
	free(b);
	assert_null(calloc(huge, 4));          /* n * size overflows */
}

/* Freed extents are reused, and read as zero again. */
static void test_extents(void **state)
{
	unsigned char *a = malloc(1u << 20), *b, *c;
	uintptr_t lo = (uintptr_t)a, hi = lo + (1u << 20);

	(void)state;
	memset(a, 0xab, 1u << 20);
	free(a);
	b = malloc(256u << 10);
	c = calloc(1, 256u << 10);
	assert_true((uintptr_t)b >= lo && (uintptr_t)b < hi);
	assert_true((uintptr_t)c >= lo && (uintptr_t)c < hi);
	for (unsigned i = 0; i < (256u << 10); i++)
		assert_int_equal(c[i], 0);
	free(b);
	free(c);
}

static void test_realloc_strdup(void **state)
{
	unsigned char *p = realloc(NULL, 10), *q;
	uintptr_t was = (uintptr_t)p;
	char *s;

	(void)state;
	fill(p, 10, 3);
	p = realloc(p, 12);
	assert_int_equal((uintptr_t)p, was);     /* fits its 32-byte block */
	q = realloc(p, 100000);
	assert_true(check(q, 10, 3));
	assert_true(usm_heap_owns(q));
	free(q);
	s = strdup("usm heap");
	assert_true(usm_heap_owns(s));
	assert_string_equal(s, "usm heap");
	free(s);
}

/* A block glibc allocated goes back to glibc. */
static void test_foreign_free(void **state)
{
	void *p = __real_malloc(64);

	(void)state;
	assert_false(usm_heap_owns(p));
	free(p);
	free(NULL);
}

static void *churn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	unsigned char *live[64] = { 0 };
	size_t len[64] = { 0 };

	for (unsigned i = 0; i < 20000; i++) {
		unsigned k = (seed = seed * 1103515245 + 12345) % 64;
		if (live[k]) {
			if (!check(live[k], len[k], k + (unsigned)(uintptr_t)arg))
				return (void *)1;
			free(live[k]);
		}
		len[k] = 1 + (seed >> 8) % 9000;
		live[k] = malloc(len[k]);
		if (!live[k])
			return (void *)1;
		fill(live[k], len[k], k + (unsigned)(uintptr_t)arg);
	}
	for (unsigned k = 0; k < 64; k++)
		free(live[k]);
	return NULL;
}

/* Threads allocating at once never see each other's blocks. */
static void test_threads(void **state)
{
	pthread_t t[4];
	void *rc;

	(void)state;
	for (uintptr_t i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rc), 0);
		assert_null(rc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_calloc_zeroes),
		cmocka_unit_test(test_extents),
		cmocka_unit_test(test_realloc_strdup),
		cmocka_unit_test(test_foreign_free),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
