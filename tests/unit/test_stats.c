/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/stats.c: log-linear latency histograms, quantiles,
 * usm_peak.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"

/* The middle of the top bucket: everything >= 2^42 lands there. */
#define TOP_MID 4123168604160ull   /* 2^41 + 3*2^39 + 2^38 */

static struct usm_hist *hist_new(void)
{
	struct usm_hist *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	return h;
}

static uint64_t total_of(const struct usm_hist *h)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < USM_HIST_BUCKETS; i++)
		t += usm_read(&h->bucket[i]);
	return t;
}

/* Reference: the value a quantile reports for a sample v, computed from
 * the definition (4 linear sub-buckets per power of two from 16 up,
 * exact below 16, everything from 2^42 in the last bucket). */
static uint64_t ref_mid(uint64_t v)
{
	if (v < 16)
		return v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	if (e > 41)
		return TOP_MID;
	uint64_t width = 1ull << (e - 2);
	uint64_t lo = (1ull << e) + ((v - (1ull << e)) / width) * width;
	return lo + width / 2;
}

static uint64_t single(uint64_t v, double q)
{
	struct usm_hist *h = hist_new();
	uint64_t r;

	usm_hist_add(h, v);
	r = usm_hist_quantile(h, q);
	free(h);
	return r;
}

static void test_empty(void **state)
{
	struct usm_hist *h = hist_new();

	assert_int_equal(usm_hist_quantile(h, 0.0), 0);
	assert_int_equal(usm_hist_quantile(h, 0.5), 0);
	assert_int_equal(usm_hist_quantile(h, 0.99), 0);
	assert_int_equal(usm_hist_quantile(h, 1.0), 0);
	free(h);
}

/* Exact bucket boundaries, through a histogram holding one value. */
static void test_bucket_boundaries(void **state)
{
	static const struct { uint64_t v, want; } c[] = {
		{ 0, 0 }, { 1, 1 }, { 7, 7 }, { 15, 15 },
		{ 16, 18 }, { 19, 18 }, { 20, 22 }, { 23, 22 }, { 24, 26 }, { 27, 26 },
		{ 28, 30 }, { 31, 30 },
		{ 32, 36 }, { 39, 36 }, { 40, 44 }, { 63, 60 },
		{ 64, 72 }, { 79, 72 }, { 80, 88 }, { 127, 120 }, { 128, 144 },
		{ 1000, 960 }, { 1023, 960 }, { 1024, 1152 }, { 1279, 1152 }, { 1280, 1408 },
		{ 1000000, 983040 },
		{ 1ull << 40, 1236950581248ull },              /* 2^40 + 2^37 */
		{ (1ull << 40) - 1, (1ull << 40) - (1ull << 36) },
		{ 3ull << 40, 3573412790272ull },               /* 3*2^40 + 2^38 */
		{ (1ull << 42) - 1, TOP_MID },                  /* last real bucket */
		{ 1ull << 42, TOP_MID },                        /* clamped from here */
		{ 1ull << 50, TOP_MID },
		{ 1ull << 63, TOP_MID },
		{ UINT64_MAX, TOP_MID },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		if (single(c[i].v, 0.5) != c[i].want)
			print_error("value %llu\n", (unsigned long long)c[i].v);
		assert_int_equal(single(c[i].v, 0.5), c[i].want);
		assert_int_equal(ref_mid(c[i].v), c[i].want);
	}
	/* every value from 0 to 2^16, and powers of two +-1 up to 2^63 */
	for (uint64_t v = 0; v <= 65536; v++)
		assert_int_equal(single(v, 0.5), ref_mid(v));
	for (unsigned e = 4; e < 64; e++)
		for (int d = -1; d <= 1; d++) {
			uint64_t v = (1ull << e) + (uint64_t)(int64_t)d;
			assert_int_equal(single(v, 0.5), ref_mid(v));
		}
}

/* One value: every quantile is that value's bucket, including 0 and 1. */
static void test_single_value(void **state)
{
	static const double qs[] = { 0.0, 0.01, 0.5, 0.99, 0.999999, 1.0 };

	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		assert_int_equal(single(1000, qs[i]), 960);
		assert_int_equal(single(5, qs[i]), 5);
		assert_int_equal(single(1ull << 45, qs[i]), TOP_MID);
	}
}

/* Out-of-range q is clamped: q <= 0 is the minimum, q >= 1 the maximum. */
static void test_q_clamped(void **state)
{
	struct usm_hist *h = hist_new();

	usm_hist_add(h, 3);
	usm_hist_add(h, 1000);
	assert_int_equal(usm_hist_quantile(h, -1.0), 3);
	assert_int_equal(usm_hist_quantile(h, 0.0), 3);
	assert_int_equal(usm_hist_quantile(h, 1.0), 960);
	assert_int_equal(usm_hist_quantile(h, 2.0), 960);
	assert_int_equal(usm_hist_quantile(h, NAN), 3);
	free(h);
}

/* 1, 2, ..., 100 once each. */
static void test_uniform_1_100(void **state)
{
	struct usm_hist *h = hist_new();

	for (uint64_t v = 1; v <= 100; v++)
		usm_hist_add(h, v);
	assert_int_equal(total_of(h), 100);
	assert_int_equal(usm_hist_quantile(h, 0.0), 1);      /* the minimum */
	assert_int_equal(usm_hist_quantile(h, 0.1), 11);     /* 11th smallest: exact */
	assert_int_equal(usm_hist_quantile(h, 0.14), 15);    /* 15th: still exact */
	assert_int_equal(usm_hist_quantile(h, 0.15), 18);    /* 16 in [16, 20) */
	assert_int_equal(usm_hist_quantile(h, 0.16), 18);    /* 17 in [16, 20) */
	assert_int_equal(usm_hist_quantile(h, 0.5), 52);     /* 51 in [48, 56) */
	assert_int_equal(usm_hist_quantile(h, 0.99), 104);   /* 100 in [96, 112) */
	assert_int_equal(usm_hist_quantile(h, 1.0), 104);    /* the maximum */
	free(h);
}

/* 990 fast faults at 100 ns, 10 slow ones at 1 ms. */
static void test_bimodal(void **state)
{
	struct usm_hist *h = hist_new();

	for (int i = 0; i < 990; i++)
		usm_hist_add(h, 100);
	for (int i = 0; i < 10; i++)
		usm_hist_add(h, 1000000);
	assert_int_equal(usm_hist_quantile(h, 0.5), 104);
	assert_int_equal(usm_hist_quantile(h, 0.989), 104);
	assert_int_equal(usm_hist_quantile(h, 0.99), 983040);
	assert_int_equal(usm_hist_quantile(h, 1.0), 983040);
	free(h);
}

/* Large latencies (> 2^40 ns, about 18 minutes) keep their order. */
static void test_large_values(void **state)
{
	struct usm_hist *h = hist_new();

	usm_hist_add(h, 10);
	usm_hist_add(h, 1ull << 40);
	usm_hist_add(h, 3ull << 40);
	usm_hist_add(h, 1ull << 60);
	assert_int_equal(usm_hist_quantile(h, 0.0), 10);
	assert_int_equal(usm_hist_quantile(h, 0.25), 1236950581248ull);
	assert_int_equal(usm_hist_quantile(h, 0.5), 3573412790272ull);
	assert_int_equal(usm_hist_quantile(h, 0.75), TOP_MID);
	assert_int_equal(usm_hist_quantile(h, 1.0), TOP_MID);
	free(h);
}

/* Random samples against sorting them. */
static void test_random_vs_sorted(void **state)
{
	enum { N = 5000 };
	static uint64_t v[N];
	static const double qs[] = { 0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0 };
	struct usm_hist *h = hist_new();
	uint64_t s = 88172645463325252ull;

	for (int i = 0; i < N; i++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		/* log-uniform over 0 .. 2^44 */
		unsigned bits = (unsigned)(s % 45);
		v[i] = bits ? (s >> 19) & ((1ull << bits) - 1) : 0;
		usm_hist_add(h, v[i]);
	}
	for (int i = 1; i < N; i++)            /* insertion sort: N is small */
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint64_t t = v[j]; v[j] = v[j - 1]; v[j - 1] = t;
		}
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		uint64_t rank = (uint64_t)(qs[i] * N);
		if (rank >= N)
			rank = N - 1;
		assert_int_equal(usm_hist_quantile(h, qs[i]), ref_mid(v[rank]));
	}
	free(h);
}

static void test_merge(void **state)
{
	struct usm_hist *a = hist_new(), *b = hist_new();

	for (int i = 0; i < 50; i++)
		usm_hist_add(a, 10);
	for (int i = 0; i < 50; i++)
		usm_hist_add(b, 1000);
	usm_hist_merge(a, b);
	assert_int_equal(total_of(a), 100);
	assert_int_equal(total_of(b), 50);
	assert_int_equal(usm_hist_quantile(a, 0.49), 10);
	assert_int_equal(usm_hist_quantile(a, 0.5), 960);
	usm_hist_merge(a, b);
	assert_int_equal(total_of(a), 150);
	free(a);
	free(b);
}

static void test_peak(void **state)
{
	_Atomic uint64_t peak = 0;

	usm_peak(&peak, 0);
	assert_int_equal(usm_read(&peak), 0);
	usm_peak(&peak, 5);
	assert_int_equal(usm_read(&peak), 5);
	usm_peak(&peak, 3);
	assert_int_equal(usm_read(&peak), 5);
	usm_peak(&peak, 5);
	assert_int_equal(usm_read(&peak), 5);
	usm_peak(&peak, UINT64_MAX);
	assert_int_equal(usm_read(&peak), UINT64_MAX);
	usm_peak(&peak, 7);
	assert_int_equal(usm_read(&peak), UINT64_MAX);
}

/* ---- concurrency: counters and peaks from several threads ------------- */

#define THREADS 4
#define PER_THREAD 100000

static _Atomic uint64_t shared_peak;
static struct usm_hist shared_hist;
static _Atomic uint64_t shared_count;

struct thr {
	uint64_t seed, max;
};

static void *hammer(void *arg)
{
	struct thr *t = arg;
	uint64_t s = t->seed;

	for (int i = 0; i < PER_THREAD; i++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		uint64_t v = s >> 24;
		if (v > t->max)
			t->max = v;
		usm_peak(&shared_peak, v);
		usm_hist_add(&shared_hist, v & 0xffff);
		usm_count(&shared_count, 1);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	pthread_t th[THREADS];
	struct thr t[THREADS];
	uint64_t max = 0;

	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct thr){ .seed = 0x1234567ull * (uint64_t)(i + 1), .max = 0 };
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (t[i].max > max)
			max = t[i].max;
	}
	assert_int_equal(usm_read(&shared_peak), max);
	assert_int_equal(total_of(&shared_hist), THREADS * PER_THREAD);
	assert_int_equal(usm_read(&shared_count), THREADS * PER_THREAD);
}

static void test_now(void **state)
{
	uint64_t a = usm_now_ns(), b = usm_now_ns();

	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bucket_boundaries),
		cmocka_unit_test(test_single_value),
		cmocka_unit_test(test_q_clamped),
		cmocka_unit_test(test_uniform_1_100),
		cmocka_unit_test(test_bimodal),
		cmocka_unit_test(test_large_values),
		cmocka_unit_test(test_random_vs_sorted),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_peak),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_now),
	};

	return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
