/* SPDX-License-Identifier: MIT */
#include "core/stats.h"
#include "ipc/proto.h"

_Static_assert(USM_HIST_BUCKETS == USM_HIST_SLOTS, "histogram size on the wire");

#include <time.h>

static unsigned bucket_of(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);   /* v in [2^e, 2^e+1) */
	unsigned sub = (unsigned)(v >> (e - 2)) & 3u;
	unsigned b = 16 + (e - 4) * 4 + sub;

	return b < USM_HIST_BUCKETS ? b : USM_HIST_BUCKETS - 1;
}

/* Middle of a bucket's value range, the estimate a quantile reports. */
static uint64_t bucket_value(unsigned b)
{
	if (b < 16)
		return b;
	unsigned e = (b - 16) / 4 + 4, sub = (b - 16) % 4;
	uint64_t lo = (1ull << e) + (uint64_t)sub * (1ull << (e - 2));

	return lo + (1ull << (e - 3));
}

void usm_hist_add(struct usm_hist *h, uint64_t ns)
{
	usm_count(&h->bucket[bucket_of(ns)], 1);
}

uint64_t usm_hist_quantile(const struct usm_hist *h, double q)
{
	uint64_t total = 0, seen = 0;

	for (unsigned i = 0; i < USM_HIST_BUCKETS; i++)
		total += usm_read(&h->bucket[i]);
	if (!total)
		return 0;
	/* rank of the wanted sample, 0-based: q = 1 is the largest one (rank
	 * total would run past every bucket), q <= 0 (or NaN) the smallest. */
	uint64_t rank = q > 0 ? (q < 1 ? (uint64_t)(q * (double)total) : total - 1) : 0;

	if (rank >= total)
		rank = total - 1;
	for (unsigned i = 0; i < USM_HIST_BUCKETS; i++) {
		seen += usm_read(&h->bucket[i]);
		if (seen > rank)
			return bucket_value(i);
	}
	return bucket_value(USM_HIST_BUCKETS - 1);
}

void usm_hist_merge(struct usm_hist *dst, const struct usm_hist *src)
{
	for (unsigned i = 0; i < USM_HIST_BUCKETS; i++)
		usm_count(&dst->bucket[i], usm_read(&src->bucket[i]));
}

void usm_peak(_Atomic uint64_t *peak, uint64_t v)
{
	uint64_t cur = usm_read(peak);

	while (v > cur && !atomic_compare_exchange_weak_explicit(
			peak, &cur, v, memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t usm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
