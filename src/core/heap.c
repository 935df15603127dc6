/* SPDX-License-Identifier: MIT */
/*
 * core/heap.c - the framework's own heap in the in-process host.
 *
 * In the in-process host the framework runs inside the managed program,
 * whose malloc'd memory is registered with userfaultfd: USM maps it and,
 * with eviction on, swaps it out.  The framework's own state (processes,
 * swap tables, policy lists and tables) must never live there: a policy
 * callback touching a swapped-out page of its own state would fault inside
 * the very handler that brings pages back.  So libusm-inline.so is linked
 * with --wrap for malloc, calloc, realloc, free and strdup: every
 * allocation the framework and the built-in policies make comes from here,
 * memory mapped with raw system calls that is never registered.  (The
 * daemon's libusm.so is not wrapped and never calls these.)
 *
 * One reserved region, so that free() can tell our blocks from glibc's
 * (libc may hand the framework memory of its own to free).  Small blocks,
 * up to 32 KiB, come from power-of-two size classes carved from 64 KiB
 * slabs; larger ones are page-aligned extents, given back to the kernel
 * when freed and reused first-fit.  One spin lock: the callers are SIGBUS
 * handlers of faulting threads and USM's own threads, and code holding it
 * touches only this region, so no signal of ours can arrive inside it.
 */
#include "mech/rawsys.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PAGE        4096ul
#define HDR         16ul                 /* keeps blocks 16-byte aligned */
#define MIN_SHIFT   4                    /* 16-byte class */
#define MAX_SHIFT   15                   /* 32 KiB class */
#define NCLASSES    (MAX_SHIFT - MIN_SHIFT + 1)
#define SLAB        (64ul << 10)
#define LARGE       UINT32_MAX           /* class of an extent */
#define MAX_EXTENTS 1024                 /* free extents remembered */

/* Before every block: its class (or LARGE) and, for extents, the size. */
struct hdr {
	uint32_t cls;
	uint32_t magic;
	uint64_t bytes;                  /* extents: whole extent incl. header */
};
#define MAGIC 0x55534d48u                /* "USMH" */

struct extent {
	uintptr_t at;
	uint64_t bytes;
};

static struct {
	atomic_flag lock;
	uintptr_t base, end, bump;       /* the region; bump: never used above */
	void *free_list[NCLASSES];       /* per class, linked through the block */
	uintptr_t slab, slab_end;        /* current slab of small blocks */
	struct extent extents[MAX_EXTENTS];
	unsigned nextents;
} heap = { .lock = ATOMIC_FLAG_INIT };

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static void lock(void)
{
	while (atomic_flag_test_and_set_explicit(&heap.lock, memory_order_acquire))
		sched_yield();
}

static void unlock(void)
{
	atomic_flag_clear_explicit(&heap.lock, memory_order_release);
}

/* A fork child keeps the region (copy-on-write), with nobody in it. */
static void fork_prepare(void) { lock(); }
static void fork_after(void) { unlock(); }

/* Reserve the region on first use: as much as the system lets us, from
 * 64 GiB down (MAP_NORESERVE: only what is touched costs memory). */
static bool reserve(void)
{
	static const uint64_t sizes[] = { 64ull << 30, 8ull << 30, 1ull << 30, 256ull << 20 };

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = raw_map(sizes[i], PROT_READ | PROT_WRITE);
		if (p) {
			heap.base = heap.bump = (uintptr_t)p;
			heap.end = heap.base + sizes[i];
			pthread_atfork(fork_prepare, fork_after, fork_after);
			return true;
		}
	}
	return false;
}

static uintptr_t carve(uint64_t bytes)
{
	uintptr_t at;

	if (!heap.base && !reserve())
		return 0;
	if (heap.end - heap.bump < bytes)
		return 0;
	at = heap.bump;
	heap.bump += bytes;
	return at;
}

static bool owned(const void *p)
{
	return (uintptr_t)p >= heap.base && (uintptr_t)p < heap.end;
}

static unsigned class_of(size_t n)
{
	unsigned c = 0;

	while (((size_t)1 << (c + MIN_SHIFT)) < n + HDR)
		c++;
	return c;
}

static void *small_alloc(unsigned c)
{
	size_t size = (size_t)1 << (c + MIN_SHIFT);
	struct hdr *h = heap.free_list[c];

	if (h) {
		heap.free_list[c] = *(void **)(h + 1);
	} else {
		if (heap.slab_end - heap.slab < size) {
			heap.slab = carve(SLAB);
			heap.slab_end = heap.slab ? heap.slab + SLAB : 0;
			if (!heap.slab)
				return NULL;
		}
		h = (struct hdr *)heap.slab;
		heap.slab += size;
	}
	h->cls = c;
	h->magic = MAGIC;
	h->bytes = size;
	return h + 1;
}

static void *large_alloc(size_t n)
{
	uint64_t bytes = (n + HDR + PAGE - 1) & ~(PAGE - 1);
	uintptr_t at = 0;
	struct hdr *h;

	for (unsigned i = 0; i < heap.nextents; i++) {
		struct extent *e = &heap.extents[i];
		if (e->bytes < bytes)
			continue;
		at = e->at;
		e->at += bytes;
		e->bytes -= bytes;
		if (!e->bytes)
			*e = heap.extents[--heap.nextents];
		break;
	}
	if (!at)
		at = carve(bytes);
	if (!at)
		return NULL;
	h = (struct hdr *)at;
	h->cls = LARGE;
	h->magic = MAGIC;
	h->bytes = bytes;
	return h + 1;
}

static void large_free(struct hdr *h)
{
	uintptr_t at = (uintptr_t)h;
	uint64_t bytes = h->bytes;

	/* The pages go back to the kernel; the addresses stay ours. */
	raw_syscall6(SYS_madvise, (long)at, (long)bytes, MADV_DONTNEED, 0, 0, 0);
	for (unsigned i = 0; i < heap.nextents; i++) {
		struct extent *e = &heap.extents[i];
		if (e->at + e->bytes == at) {
			e->bytes += bytes;
			return;
		}
		if (at + bytes == e->at) {
			e->at = at;
			e->bytes += bytes;
			return;
		}
	}
	if (heap.nextents < MAX_EXTENTS)
		heap.extents[heap.nextents++] = (struct extent){ at, bytes };
	/* else: the range is lost to reuse, not to correctness */
}

static size_t usable(const struct hdr *h)
{
	return h->bytes - HDR;
}

#define API __attribute__((visibility("hidden")))

/* Is p one of this heap's blocks?  (For the unit test.) */
API bool usm_heap_owns(const void *p)
{
	return owned(p);
}

API void *__wrap_malloc(size_t n)
{
	void *p;

	if (n == 0)
		n = 1;
	lock();
	p = n + HDR <= ((size_t)1 << MAX_SHIFT) ? small_alloc(class_of(n)) : large_alloc(n);
	unlock();
	return p;
}

API void __wrap_free(void *p)
{
	struct hdr *h;

	if (!p)
		return;
	if (!owned(p)) {             /* memory glibc gave the framework */
		__real_free(p);
		return;
	}
	h = (struct hdr *)p - 1;
	lock();
	if (h->cls == LARGE) {
		large_free(h);
	} else {
		*(void **)p = heap.free_list[h->cls];
		heap.free_list[h->cls] = h;
	}
	unlock();
}

API void *__wrap_calloc(size_t n, size_t size)
{
	size_t bytes;
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	bytes = n * size;
	p = __wrap_malloc(bytes);
	/* Extents come zeroed (fresh, or given back with MADV_DONTNEED);
	 * small blocks may be reused. */
	if (p && ((struct hdr *)p - 1)->cls != LARGE)
		memset(p, 0, bytes);
	return p;
}

API void *__wrap_realloc(void *p, size_t n)
{
	void *q;

	if (!p)
		return __wrap_malloc(n);
	if (!owned(p))
		return __real_realloc(p, n);
	if (n <= usable((struct hdr *)p - 1))
		return p;
	q = __wrap_malloc(n);
	if (q) {
		memcpy(q, p, usable((struct hdr *)p - 1));
		__wrap_free(p);
	}
	return q;
}

API char *__wrap_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = __wrap_malloc(n);

	if (p)
		memcpy(p, s, n);
	return p;
}
