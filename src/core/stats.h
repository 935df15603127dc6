/* SPDX-License-Identifier: MIT */
/*
 * core/stats.h - counters and latency histograms.
 *
 * Workers bump counters with relaxed atomics; `usm stat` reads them from
 * the control thread without stopping anybody.
 */
#ifndef USM_CORE_STATS_H
#define USM_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Log-linear buckets: 4 per power of two, up to ~2^40 ns. */
#define USM_HIST_BUCKETS 168

struct usm_hist {
	_Atomic uint64_t bucket[USM_HIST_BUCKETS];
};

void usm_hist_add(struct usm_hist *h, uint64_t ns);
/* The q-quantile in ns (q <= 0: the smallest sample's bucket, q >= 1: the
 * largest's), 0 if the histogram is empty. */
uint64_t usm_hist_quantile(const struct usm_hist *h, double q);
void usm_hist_merge(struct usm_hist *dst, const struct usm_hist *src);

/* The counters kept per process and, summed, per instance. */
struct usm_counters {
	_Atomic uint64_t faults;          /* missing-page faults handled */
	_Atomic uint64_t pages_mapped;    /* pages mapped by USM (cumulative) */
	_Atomic uint64_t frames_in_use;   /* frames held now */
	_Atomic uint64_t frames_peak;
	_Atomic uint64_t ev_remove;       /* MADV_DONTNEED and friends */
	_Atomic uint64_t ev_unmap;        /* munmap, brk shrink, mmap over */
	_Atomic uint64_t ev_remap;        /* mremap */
	_Atomic uint64_t pages_freed;     /* frames returned by those events */
	_Atomic uint64_t oom_events;      /* faults that found no frame */
	_Atomic uint64_t kernel_pages;    /* pages handed to the kernel by OOM */
	_Atomic uint64_t eexist;          /* pages found already present */
	_Atomic uint64_t huge_pages;      /* 2 MiB pages mapped whole (PMD) */
	_Atomic uint64_t evicted;         /* pages written out and unmapped */
	_Atomic uint64_t swapin_faults;   /* faults on swapped-out pages */
	_Atomic uint64_t swapped_in;      /* pages brought back, incl. prefetch */
	_Atomic uint64_t swapcache_hits;  /* faults served from pages in flight */
	_Atomic uint64_t swapped_now;     /* pages swapped out right now */
	_Atomic uint64_t evict_failed;    /* victims that could not be evicted */
	_Atomic uint64_t copier_windows;  /* windows a copier mapped for a worker */
	_Atomic uint64_t reserve_frames;  /* taken beyond the budget, for threads
					   * that eviction waited for */
};

static inline void usm_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t usm_read(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Raise *peak to v if v is larger. */
void usm_peak(_Atomic uint64_t *peak, uint64_t v);

uint64_t usm_now_ns(void);

#endif /* USM_CORE_STATS_H */
