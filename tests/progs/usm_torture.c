/*
 * usm_torture — verify every byte of every way a program gets anonymous memory.
 *
 * A plain C program (no USM headers) meant to run both natively and under
 * `usm run`.  Under USM every first touch, zap, remap and fork of this
 * process goes through userspace fault handling, so this program checks that
 * the memory it sees is exactly what the kernel would have given it:
 * fresh memory reads zero, written memory reads back what was written, at
 * the right address, after every malloc/mmap/mremap/munmap/madvise/brk/
 * fork/exec and with several threads faulting at once.
 *
 *   usm_torture [--size-mb N] <test>...      test: all, malloc, calloc, ...
 *
 * Every test prints "torture: <name>: OK (<n> bytes verified)" or a FAIL line
 * naming the first wrong byte; the program exits 1 on the first failure.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define NTHREADS 8
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static const char *g_test = "?";      /* name printed in result lines */
static size_t g_size = 256 * MiB;     /* --size-mb: scale of big allocations */
static size_t g_page;                 /* page size */
static const char *g_self;            /* argv[0], handed to the exec'd child */
static char g_outbuf[4096];           /* static: printing never mallocs (brk) */
static _Thread_local size_t t_verified; /* bytes verified by this thread */

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------------ */
/* Failure reporting                                                   */
/* ------------------------------------------------------------------ */

/* Print one FAIL line and exit 1.  Locked so that a failing thread's line
 * is not interleaved with another thread's. */
static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	flockfile(stdout);
	printf("torture: %s: FAIL ", g_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	funlockfile(stdout);
	exit(1);
}

/* A libc call failed: say which and why (errno is read before the call). */
#define SYSFAIL(...) sys_fail(strerror(errno), __VA_ARGS__)
static void __attribute__((noreturn, format(printf, 2, 3)))
sys_fail(const char *why, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	fail("%s: %s", what, why);
}

/* ------------------------------------------------------------------ */
/* Checked wrappers: every libc call is checked, the test fails loudly  */
/* ------------------------------------------------------------------ */

static void *xmmap(void *addr, size_t len, int prot, int flags)
{
	void *p = mmap(addr, len, prot, flags, -1, 0);

	if (p == MAP_FAILED)
		SYSFAIL("mmap(%p, %zu, %#x, %#x)", addr, len, prot, flags);
	/* Kernels before 4.17 treat MAP_FIXED_NOREPLACE as a mere hint. */
	if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && p != addr)
		fail("mmap(%p, %zu, fixed) returned %p", addr, len, p);
	return p;
}

static unsigned char *map_anon(size_t len)
{
	return xmmap(NULL, len, RW, ANON);
}

static void xmunmap(void *p, size_t len)
{
	if (munmap(p, len) != 0)
		SYSFAIL("munmap(%p, %zu)", p, len);
}

static void xmprotect(void *p, size_t len, int prot)
{
	if (mprotect(p, len, prot) != 0)
		SYSFAIL("mprotect(%p, %zu, %#x)", p, len, prot);
}

static void xmadvise(void *p, size_t len, int advice)
{
	if (madvise(p, len, advice) != 0)
		SYSFAIL("madvise(%p, %zu, %d)", p, len, advice);
}

static unsigned char *xmremap(void *old, size_t oldlen, size_t newlen,
			      int flags, void *newaddr)
{
	void *p = mremap(old, oldlen, newlen, flags, newaddr);

	if (p == MAP_FAILED)
		SYSFAIL("mremap(%p, %zu, %zu, %#x, %p)", old, oldlen, newlen,
			flags, newaddr);
	return p;
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		SYSFAIL("malloc(%zu)", size);
	return p;
}

static void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb, size);

	if (!p)
		SYSFAIL("calloc(%zu, %zu)", nmemb, size);
	return p;
}

static void *xsbrk(intptr_t inc)
{
	void *p = sbrk(inc);

	if (p == (void *)-1)
		SYSFAIL("sbrk(%jd)", (intmax_t)inc);
	return p;
}

static void xpthread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(t, NULL, fn, arg);

	if (err)
		fail("pthread_create: %s", strerror(err));
}

static void xpthread_join(pthread_t t)
{
	int err = pthread_join(t, NULL);

	if (err)
		fail("pthread_join: %s", strerror(err));
}

/* Fork with stdout flushed, so buffered text is not printed twice. */
static pid_t xfork(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		SYSFAIL("fork");
	return pid;
}

/* Wait for a child and require a clean exit(0). */
static void wait_ok(pid_t pid, const char *who)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			SYSFAIL("waitpid(%s %d)", who, (int)pid);
	if (WIFSIGNALED(st))
		fail("%s %d killed by signal %d (%s)", who, (int)pid,
		     WTERMSIG(st), strsignal(WTERMSIG(st)));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("%s %d exited with status %d", who, (int)pid,
		     WEXITSTATUS(st));
}

/* ------------------------------------------------------------------ */
/* The pattern                                                         */
/* ------------------------------------------------------------------ */

/*
 * Byte `off` of a block with key `key` is byte off%8 of pat_word(key, off/8),
 * a hash of (key, word index).  Every byte therefore depends on where it
 * sits in its block: a page mapped at the wrong offset, a stale page, or a
 * page zeroed by mistake all read as wrong.  The pattern depends on the
 * offset, not on the address, so content that legitimately moves (realloc,
 * mremap) can still be checked; tests that want address-dependence mix the
 * address into the key.
 */
static inline uint64_t mix64(uint64_t z)
{
	/* splitmix64 finalizer: cheap, and every input bit flips every output bit */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t key3(uint64_t a, uint64_t b, uint64_t c)
{
	return mix64(mix64(mix64(a) ^ b) ^ c);
}

static inline uint64_t pat_word(uint64_t key, size_t word)
{
	return mix64(key + (word + 1) * 0x9e3779b97f4a7c15ULL);
}

static inline unsigned char pat_byte(uint64_t key, size_t off)
{
	uint64_t w = pat_word(key, off / 8);
	unsigned char b[8];

	memcpy(b, &w, 8);	/* memcpy: the same byte order as word stores */
	return b[off % 8];
}

/* Expected contents: either all zero or the pattern of a key. */
struct want {
	bool zero;
	uint64_t key;
};

static inline uint64_t want_word(struct want w, size_t word)
{
	return w.zero ? 0 : pat_word(w.key, word);
}

static inline unsigned char want_byte(struct want w, size_t off)
{
	return w.zero ? 0 : pat_byte(w.key, off);
}

/* Fill [from, to) of the block at base with its pattern. */
static void fill_range(void *base, size_t from, size_t to, uint64_t key)
{
	unsigned char *p = base;
	size_t off = from;

	for (; off < to && off % 8; off++)
		p[off] = pat_byte(key, off);
	for (; off + 8 <= to; off += 8) {
		uint64_t w = pat_word(key, off / 8);
		memcpy(p + off, &w, 8);
	}
	for (; off < to; off++)
		p[off] = pat_byte(key, off);
}

static bool page_is_zero(const unsigned char *page)
{
	for (size_t i = 0; i < g_page; i++)
		if (page[i])
			return false;
	return true;
}

/* If the word read at `off` is the pattern of some other offset of the
 * same block, the page was mapped at the wrong place: say where it belongs. */
static void where_it_belongs(const unsigned char *base, size_t off, size_t to,
			     struct want w, char *out, size_t outlen)
{
	size_t woff = off & ~(size_t)7;
	uint64_t got;

	out[0] = 0;
	if (w.zero || woff + 8 > to)
		return;
	memcpy(&got, base + woff, 8);
	for (size_t i = 0; got && i < 2 * (to / 8) + 1; i++)
		if (pat_word(w.key, i) == got) {
			snprintf(out, outlen, "; the word there belongs at offset %#zx",
				 i * 8);
			return;
		}
}

/* Report the first wrong byte at base+off, with what else is known: how
 * much of its page is wrong, whether the page is all zero, and whether its
 * content belongs elsewhere. */
static void __attribute__((noreturn))
report(const unsigned char *base, size_t off, size_t to, struct want w,
       const char *fmt, va_list ap)
{
	const unsigned char *addr = base + off;
	const unsigned char *page = (const void *)((uintptr_t)addr & ~(g_page - 1));
	size_t end = min_sz(to, off + (size_t)(page + g_page - addr));
	size_t wrong = 0;
	char what[256], where[96];

	vsnprintf(what, sizeof what, fmt, ap);
	for (size_t o = off; o < end; o++)
		wrong += base[o] != want_byte(w, o);
	where_it_belongs(base, off, to, w, where, sizeof where);
	fail("%s: byte at %p (offset %#zx) expected 0x%02x got 0x%02x; "
	     "%zu of the %zu bytes from there to the end of the page are wrong%s%s",
	     what, (const void *)addr, off, want_byte(w, off), base[off],
	     wrong, end - off, page_is_zero(page) ? "; the page reads all zero" : "",
	     where);
}

/* Verify [from, to) of the block at base; fmt describes the block. */
static void verify(const void *vbase, size_t from, size_t to, struct want w,
		   const char *fmt, va_list ap)
{
	const unsigned char *base = vbase;
	size_t off = from;

	/* The compiler must not reuse values it just stored: read memory. */
	__asm__ __volatile__("" ::: "memory");
	for (; off < to && off % 8; off++)
		if (base[off] != want_byte(w, off))
			report(base, off, to, w, fmt, ap);
	for (; off + 8 <= to; off += 8) {
		uint64_t got;

		memcpy(&got, base + off, 8);
		if (got == want_word(w, off / 8))
			continue;
		while (base[off] == want_byte(w, off))
			off++;
		report(base, off, to, w, fmt, ap);
	}
	for (; off < to; off++)
		if (base[off] != want_byte(w, off))
			report(base, off, to, w, fmt, ap);
	t_verified += to - from;
}

static void __attribute__((format(printf, 5, 6)))
check_pat(const void *base, size_t from, size_t to, uint64_t key,
	  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verify(base, from, to, (struct want){ .zero = false, .key = key }, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 4, 5)))
check_zero(const void *base, size_t from, size_t to, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verify(base, from, to, (struct want){ .zero = true, .key = 0 }, fmt, ap);
	va_end(ap);
}

/* Fill a whole block and read it straight back. */
static void fill_check(void *p, size_t len, uint64_t key, const char *what)
{
	fill_range(p, 0, len, key);
	check_pat(p, 0, len, key, "%s (%zu bytes at %p)", what, len, p);
}

/* ------------------------------------------------------------------ */
/* malloc: many sizes, free half, allocate again                       */
/* ------------------------------------------------------------------ */

#define MAX_BLOCKS 512

struct block {
	unsigned char *p;
	size_t size;
	uint64_t key;
};

static void block_new(struct block *b, size_t size, size_t idx, uint64_t seed)
{
	b->p = xmalloc(size);
	b->size = size;
	/* The address is in the key: two blocks never hold the same bytes,
	 * so a page shared or swapped between blocks is caught. */
	b->key = key3((uintptr_t)b->p, idx, seed);
	fill_range(b->p, 0, size, b->key);
}

static void block_check(const struct block *b, size_t idx)
{
	check_pat(b->p, 0, b->size, b->key, "malloc block %zu (%zu bytes at %p)",
		  idx, b->size, (void *)b->p);
}

/* 16 B .. 8 MiB, powers of two and odd sizes whose tail is not a whole word;
 * small sizes repeated so the bins and tcache fill up.  Sizes above 128 KiB
 * start out above glibc's mmap threshold (which then adapts upwards). */
static size_t malloc_sizes(size_t *sz)
{
	size_t cap = min_sz(8 * MiB, g_size / 16), n = 0;

	for (size_t s = 16; s <= cap; s *= 2) {
		int reps = s <= 64 * KiB ? 8 : 2;

		for (int r = 0; r < reps && n + 2 <= MAX_BLOCKS; r++) {
			sz[n++] = s;
			sz[n++] = s - s / 4 + 3;
		}
	}
	return n;
}

static void test_malloc(void)
{
	static struct block blk[MAX_BLOCKS];
	size_t sizes[MAX_BLOCKS], n = malloc_sizes(sizes);

	for (size_t i = 0; i < n; i++)
		block_new(&blk[i], sizes[i], i, 1);
	for (size_t i = 0; i < n; i++)
		block_check(&blk[i], i);
	for (size_t i = 1; i < n; i += 2)
		free(blk[i].p);
	/* Refill the holes with other sizes, so freed chunks get split,
	 * merged and reused rather than handed back unchanged. */
	for (size_t i = 1; i < n; i += 2)
		block_new(&blk[i], sizes[(i * 7) % n], i, 2);
	for (size_t i = 0; i < n; i++)
		block_check(&blk[i], i);
	for (size_t i = 0; i < n; i++)
		free(blk[i].p);
}

/* ------------------------------------------------------------------ */
/* calloc: zero-filled, fresh and reusing freed (dirty) memory         */
/* ------------------------------------------------------------------ */

static void calloc_fresh(size_t nmemb, size_t size, uint64_t key)
{
	size_t len = nmemb * size;
	unsigned char *p = xcalloc(nmemb, size);

	check_zero(p, 0, len, "calloc(%zu, %zu) at %p", nmemb, size, (void *)p);
	fill_check(p, len, key, "calloc block");
	free(p);
}

/* Dirty several blocks of one size, free them, then calloc the same size:
 * the chunks come back from the bins and calloc must clear them. */
static void calloc_reuse(size_t size, uint64_t key)
{
	enum { MAXN = 16 };
	unsigned char *p[MAXN];
	int N = size <= 64 * KiB ? MAXN : 2;	/* enough to pass the tcache */

	for (int i = 0; i < N; i++) {
		p[i] = xmalloc(size);
		fill_range(p[i], 0, size, key + i);
	}
	for (int i = 0; i < N; i++)
		free(p[i]);
	for (int i = 0; i < N; i++) {
		p[i] = xcalloc(1, size);
		check_zero(p[i], 0, size, "calloc(1, %zu) at %p after freeing "
			   "dirty blocks of that size", size, (void *)p[i]);
	}
	for (int i = 0; i < N; i++)
		free(p[i]);
}

static void test_calloc(void)
{
	size_t big = g_size / 4;

	for (size_t s = 16; s < big; s *= 4)
		calloc_fresh(1, s, key3(3, s, 0));
	calloc_fresh(1000, 24, key3(3, 24, 1));
	calloc_fresh(1, big, key3(3, big, 2));
	for (size_t s = 16; s <= g_size / 64; s *= 2) {
		calloc_reuse(s, key3(4, s, 0));
		calloc_reuse(s + s / 3 + 1, key3(4, s, 1));
	}
}

/* ------------------------------------------------------------------ */
/* realloc: grow and shrink chains, the kept prefix checked each step  */
/* ------------------------------------------------------------------ */

static unsigned char *realloc_step(unsigned char *p, size_t old, size_t new,
				   uint64_t key)
{
	uintptr_t was = (uintptr_t)p;	/* p is invalid after realloc */
	unsigned char *q = realloc(p, new);

	if (!q)
		SYSFAIL("realloc(%#jx, %zu -> %zu)", (uintmax_t)was, old, new);
	check_pat(q, 0, min_sz(old, new), key, "realloc(%#jx, %zu -> %zu) = %p, "
		  "kept prefix", (uintmax_t)was, old, new, (void *)q);
	return q;
}

static void test_realloc(void)
{
	const uint64_t key = key3(5, 0, 0);	/* offset-only: survives moves */
	size_t size = KiB, max = g_size / 4, nb = 0;
	void *blockers[64];
	unsigned char *p = xmalloc(size);

	fill_range(p, 0, size, key);
	while (size < max) {
		size_t next = min_sz(size * 2 + 13, max);

		p = realloc_step(p, size, next, key);
		fill_range(p, size, next, key);
		size = next;
		/* A fresh neighbour stops the next heap growth from
		 * happening in place, so realloc has to copy. */
		if (nb < 64)
			blockers[nb++] = xmalloc(64);
	}
	check_pat(p, 0, size, key, "realloc chain top (%zu bytes at %p)", size,
		  (void *)p);
	while (size > KiB) {
		size_t next = max_sz(size / 3, KiB);

		p = realloc_step(p, size, next, key);
		size = next;
	}
	free(p);
	for (size_t i = 0; i < nb; i++)
		free(blockers[i]);
}

/* ------------------------------------------------------------------ */
/* mmap: first-touch zero, write/verify, sparse touch, variants        */
/* ------------------------------------------------------------------ */

static void mmap_read_first(size_t len, uint64_t key)
{
	unsigned char *p = map_anon(len);

	check_zero(p, 0, len, "fresh mmap(%zu) at %p, first touch a read", len,
		   (void *)p);
	fill_check(p, len, key, "mmap, written after reading zero");
	xmunmap(p, len);
}

/* First touch a write; flags add MAP_POPULATE, MAP_NORESERVE, MAP_SHARED. */
static void mmap_write_first(size_t len, int flags, uint64_t key)
{
	unsigned char *p = xmmap(NULL, len, RW, MAP_ANONYMOUS | flags);
	char what[64];

	snprintf(what, sizeof what, "mmap flags %#x, first touch a write", flags);
	fill_check(p, len, key, what);
	xmunmap(p, len);
}

/* Touch every 17th page only; the untouched neighbours must stay zero. */
static void mmap_sparse(size_t len, uint64_t key)
{
	unsigned char *p = map_anon(len);
	size_t pages = len / g_page;

	for (size_t i = 0; i < pages; i += 17)
		fill_range(p, i * g_page, (i + 1) * g_page, key);
	for (size_t i = 0; i < pages; i += 17) {
		check_pat(p, i * g_page, (i + 1) * g_page, key,
			  "sparse mmap at %p, touched page %zu", (void *)p, i);
		if (i + 1 < pages)
			check_zero(p, (i + 1) * g_page, (i + 2) * g_page,
				   "sparse mmap at %p, untouched page %zu",
				   (void *)p, i + 1);
	}
	xmunmap(p, len);
}

/* Reserve PROT_NONE and commit with mprotect, as glibc does for thread
 * arenas and stacks; then make it read-only and read it again. */
static void mmap_reserve_commit(size_t len, uint64_t key)
{
	unsigned char *p = xmmap(NULL, len, PROT_NONE, ANON | MAP_NORESERVE);

	xmprotect(p, len / 2, RW);
	check_zero(p, 0, len / 2, "mprotect-committed half at %p", (void *)p);
	fill_range(p, 0, len / 2, key);
	xmprotect(p + len / 2, len / 2, RW);
	check_zero(p, len / 2, len, "mprotect-committed second half at %p",
		   (void *)p);
	fill_range(p, len / 2, len, key);
	xmprotect(p, len, PROT_READ);
	check_pat(p, 0, len, key, "read-only after commit (%zu bytes at %p)", len,
		  (void *)p);
	xmunmap(p, len);
}

/* A MADV_HUGEPAGE range (THP may be off: then the advice is just ignored). */
static void mmap_thp(size_t len, uint64_t key)
{
	unsigned char *p = map_anon(len);

	if (madvise(p, len, MADV_HUGEPAGE) != 0 && errno != EINVAL)
		SYSFAIL("madvise(%p, %zu, MADV_HUGEPAGE)", (void *)p, len);
	check_zero(p, 0, len / 2, "MADV_HUGEPAGE mmap at %p, read first",
		   (void *)p);
	fill_check(p, len, key, "MADV_HUGEPAGE mmap");
	xmunmap(p, len);
}

static void test_mmap(void)
{
	size_t pg = g_page;
	const size_t sizes[] = { pg, 2 * pg, 17 * pg, MiB, 2 * MiB,
				 2 * MiB + 3 * pg, 32 * MiB, g_size };

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		if (sizes[i] <= g_size)
			mmap_read_first(sizes[i], key3(6, i, 0));
	mmap_write_first(g_size / 8, MAP_PRIVATE, key3(6, 1, 1));
	mmap_write_first(g_size / 16, MAP_PRIVATE | MAP_POPULATE, key3(6, 1, 2));
	mmap_write_first(g_size / 16, MAP_PRIVATE | MAP_NORESERVE, key3(6, 1, 3));
	mmap_write_first(g_size / 16, MAP_SHARED, key3(6, 1, 4));
	mmap_reserve_commit(g_size / 8, key3(6, 2, 0));
	mmap_thp(g_size / 8, key3(6, 3, 0));
	mmap_sparse(g_size, key3(6, 4, 0));
}

/* ------------------------------------------------------------------ */
/* mremap: grow in place, move, shrink, fixed target, DONTUNMAP        */
/* ------------------------------------------------------------------ */

/* Grow without MREMAP_MAYMOVE: the range after the mapping is ours (we
 * mapped it and unmap it just before), so growing in place must work. */
static void mremap_grow_in_place(size_t len, uint64_t key)
{
	unsigned char *p = map_anon(2 * len), *q;

	fill_range(p, 0, len, key);
	xmunmap(p + len, len);
	q = xmremap(p, len, 2 * len, 0, NULL);
	if (q != p)
		fail("mremap grow in place moved %p to %p", (void *)p, (void *)q);
	check_pat(q, 0, len, key, "mremap grown in place at %p, old part",
		  (void *)q);
	check_zero(q, len, 2 * len, "mremap grown in place at %p, new tail",
		   (void *)q);
	fill_range(q, len, 2 * len, key);
	check_pat(q, 0, 2 * len, key, "mremap grown in place at %p", (void *)q);
	xmunmap(q, 2 * len);
}

/* A read-only blocker right after the mapping forces MREMAP_MAYMOVE to
 * move it; then shrink it, and grow it again: the part given up by the
 * shrink must come back zero, not with its old content. */
static void mremap_move_shrink(size_t len, uint64_t key)
{
	unsigned char *p = map_anon(2 * len), *q, *blocker = p + len;

	xmprotect(blocker, len, PROT_READ);	/* now a separate mapping */
	fill_range(p, 0, len, key);
	q = xmremap(p, len, 2 * len, MREMAP_MAYMOVE, NULL);
	if (q == p)
		fail("mremap at %p grew in place over the blocker", (void *)p);
	check_pat(q, 0, len, key, "mremap moved %p -> %p, old content",
		  (void *)p, (void *)q);
	check_zero(q, len, 2 * len, "mremap moved to %p, new tail", (void *)q);
	check_zero(blocker, 0, len, "blocker at %p after mremap", (void *)blocker);
	fill_range(q, len, 2 * len, key);
	check_pat(q, 0, 2 * len, key, "mremap moved to %p", (void *)q);

	p = xmremap(q, 2 * len, len / 2, 0, NULL);
	if (p != q)
		fail("mremap shrink moved %p to %p", (void *)q, (void *)p);
	check_pat(p, 0, len / 2, key, "mremap shrunk at %p", (void *)p);
	q = xmremap(p, len / 2, len, MREMAP_MAYMOVE, NULL);
	check_pat(q, 0, len / 2, key, "mremap regrown %p -> %p, kept part",
		  (void *)p, (void *)q);
	check_zero(q, len / 2, len, "mremap regrown to %p, part given up by "
		   "the shrink", (void *)q);
	xmunmap(q, len);
	xmunmap(blocker, len);
}

/* Move to an address of our choosing (over our own reservation). */
static void mremap_fixed(size_t len, uint64_t key)
{
	unsigned char *src = map_anon(len), *dst = map_anon(len), *q;

	fill_range(src, 0, len, key);
	q = xmremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (q != dst)
		fail("mremap(MREMAP_FIXED) to %p returned %p", (void *)dst,
		     (void *)q);
	check_pat(q, 0, len, key, "mremap FIXED %p -> %p", (void *)src,
		  (void *)q);
	xmunmap(q, len);
}

/* MREMAP_DONTUNMAP (Linux 5.7): the content moves, the old range stays
 * mapped but empty, so it reads zero. */
static void mremap_dontunmap(size_t len, uint64_t key)
{
	unsigned char *p = map_anon(len), *q;

	fill_range(p, 0, len, key);
	q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	if (q == MAP_FAILED && errno == EINVAL) {	/* kernel < 5.7 */
		xmunmap(p, len);
		return;
	}
	if (q == MAP_FAILED)
		SYSFAIL("mremap(%p, MREMAP_DONTUNMAP)", (void *)p);
	check_pat(q, 0, len, key, "mremap DONTUNMAP %p -> %p, moved content",
		  (void *)p, (void *)q);
	check_zero(p, 0, len, "mremap DONTUNMAP, old range %p", (void *)p);
	fill_check(p, len, key + 1, "old range rewritten after DONTUNMAP");
	xmunmap(q, len);
	xmunmap(p, len);
}

static void test_mremap(void)
{
	size_t len = g_size / 8;

	mremap_grow_in_place(len, key3(7, 0, 0));
	mremap_move_shrink(len, key3(7, 1, 0));
	mremap_fixed(len / 4, key3(7, 2, 0));
	mremap_dontunmap(len / 4, key3(7, 3, 0));
}

/* ------------------------------------------------------------------ */
/* munmap: hole punch, re-map at the same address, MAP_FIXED over data */
/* ------------------------------------------------------------------ */

static void test_munmap(void)
{
	size_t len = g_size / 8, q = len / 4;
	uint64_t k1 = key3(8, 1, 0), k2 = key3(8, 2, 0), k3 = key3(8, 3, 0);
	unsigned char *p = map_anon(len);

	fill_range(p, 0, len, k1);
	xmunmap(p + q, 2 * q);		/* punch a hole in the middle */
	check_pat(p, 0, q, k1, "left of hole at %p", (void *)(p + q));
	check_pat(p, 3 * q, len, k1, "right of hole at %p", (void *)(p + q));

	/* Fill the hole again.  NOREPLACE: if anything else (a thread of a
	 * USM agent, say) took the address meanwhile, fail, don't clobber it. */
	xmmap(p + q, 2 * q, RW, ANON | MAP_FIXED_NOREPLACE);
	check_zero(p, q, 3 * q, "hole re-mapped at %p", (void *)(p + q));
	fill_range(p, q, 3 * q, k2);

	/* MAP_FIXED over our own live data replaces it with zero pages. */
	xmmap(p, q, RW, ANON | MAP_FIXED);
	check_zero(p, 0, q, "MAP_FIXED over written data at %p", (void *)p);
	fill_range(p, 0, q, k3);
	check_pat(p, 0, q, k3, "after MAP_FIXED at %p", (void *)p);
	check_pat(p, q, 3 * q, k2, "re-mapped hole at %p", (void *)(p + q));
	check_pat(p, 3 * q, len, k1, "right part at %p", (void *)(p + 3 * q));

	/* Trim one page off each end: the rest must not move or change. */
	xmunmap(p, g_page);
	xmunmap(p + len - g_page, g_page);
	check_pat(p, g_page, q, k3, "after trimming first page of %p", (void *)p);
	check_pat(p, 3 * q, len - g_page, k1, "after trimming last page of %p",
		  (void *)p);

	/* Unmap it all and map the same address again: all zero. */
	xmunmap(p + g_page, len - 2 * g_page);
	xmmap(p, len, RW, ANON | MAP_FIXED_NOREPLACE);
	check_zero(p, 0, len, "re-mapped at %p after full munmap", (void *)p);
	fill_check(p, len, k1 + 1, "re-mapped after full munmap");
	xmunmap(p, len);
}

/* ------------------------------------------------------------------ */
/* madvise: DONTNEED zeroes, FREE keeps-or-zeroes, COLD/PAGEOUT keep   */
/* ------------------------------------------------------------------ */

/* After MADV_FREE a page holds either its old content or zero; nothing else. */
static void check_pat_or_zero_pages(unsigned char *p, size_t from, size_t to,
				    uint64_t key)
{
	for (size_t off = from; off < to; off += g_page) {
		__asm__ __volatile__("" ::: "memory");
		if (!page_is_zero(p + off))
			check_pat(p, off, off + g_page, key, "page %p after "
				  "MADV_FREE (neither old content nor zero)",
				  (void *)(p + off));
	}
}

/* Advice that must never change content; EINVAL = kernel too old. */
static void advise_keep(unsigned char *p, size_t len, int advice, uint64_t key)
{
	if (madvise(p, len, advice) != 0 && errno != EINVAL)
		SYSFAIL("madvise(%p, %zu, %d)", (void *)p, len, advice);
	check_pat(p, 0, len, key, "after madvise(%d) at %p", advice, (void *)p);
}

static void test_madvise(void)
{
	size_t len = g_size / 8, q = len / 4, pg = g_page;
	size_t one = 5 * q / 2 + 3 * pg;	/* a single page in the third quarter */
	uint64_t k1 = key3(9, 1, 0), k2 = key3(9, 2, 0);
	unsigned char *p = map_anon(len);

	fill_range(p, 0, len, k1);
	xmadvise(p + q, q, MADV_DONTNEED);
	xmadvise(p + one, pg, MADV_DONTNEED);
	check_pat(p, 0, q, k1, "before DONTNEED range of %p", (void *)p);
	check_zero(p, q, 2 * q, "MADV_DONTNEED range at %p", (void *)(p + q));
	check_pat(p, 2 * q, one, k1, "between DONTNEED ranges of %p", (void *)p);
	check_zero(p, one, one + pg, "MADV_DONTNEED page at %p", (void *)(p + one));
	check_pat(p, one + pg, len, k1, "after DONTNEED page of %p", (void *)p);

	fill_range(p, q, 2 * q, k1);		/* rewrite the zapped parts */
	fill_range(p, one, one + pg, k1);
	check_pat(p, 0, len, k1, "rewritten after DONTNEED (%p)", (void *)p);

	advise_keep(p, len, MADV_WILLNEED, k1);
	advise_keep(p, len, MADV_COLD, k1);
	advise_keep(p, len, MADV_PAGEOUT, k1);

	xmadvise(p + q, q, MADV_FREE);
	check_pat_or_zero_pages(p, q, 2 * q, k1);
	fill_range(p, q, 2 * q, k1);		/* a write makes it stable again */
	check_pat(p, 0, len, k1, "rewritten after MADV_FREE (%p)", (void *)p);

	xmadvise(p, len, MADV_DONTNEED);
	check_zero(p, 0, len, "whole mapping after MADV_DONTNEED (%p)", (void *)p);
	fill_check(p, len, k2, "rewritten after whole DONTNEED");
	xmunmap(p, len);
}

/* ------------------------------------------------------------------ */
/* brk: grow in steps, shrink, grow again                              */
/* ------------------------------------------------------------------ */

/* Nothing in here may call malloc (it could move the break under us); the
 * stdout buffer is static for that reason. */
static void test_brk(void)
{
	size_t total = min_sz(8 * MiB, g_size / 16), step = total / 8;
	uint64_t key = key3(10, 0, 0);
	char *start = xsbrk(0);
	size_t pad = (g_page - (uintptr_t)start % g_page) % g_page;
	unsigned char *base;

	/* Page-align the break: the kernel keeps a partial page on shrink,
	 * so only whole pages come back zero after growing again. */
	xsbrk((intptr_t)pad);
	base = xsbrk(0);
	for (size_t off = 0; off < total; off += step) {
		unsigned char *p = xsbrk((intptr_t)step);

		if (p != base + off)
			fail("sbrk(%zu) returned %p, expected %p", step, (void *)p,
			     (void *)(base + off));
		check_zero(base, off, off + step, "fresh brk memory at %p", (void *)p);
		fill_range(base, off, off + step, key);
		check_pat(base, 0, off + step, key, "brk heap at %p", (void *)base);
	}
	xsbrk(-(intptr_t)(total / 2));
	check_pat(base, 0, total / 2, key, "brk heap at %p after shrink",
		  (void *)base);
	xsbrk((intptr_t)(total / 2));
	check_zero(base, total / 2, total, "brk heap at %p, regrown part",
		   (void *)base);
	fill_range(base, total / 2, total, key);
	check_pat(base, 0, total, key, "brk heap at %p after regrow", (void *)base);
	if (brk(start) != 0)
		SYSFAIL("brk(%p) back to the start", (void *)start);
}

/* ------------------------------------------------------------------ */
/* threads: 8 threads faulting at once, private and shared memory      */
/* ------------------------------------------------------------------ */

#define NSMALL 64

struct worker {
	pthread_t tid;
	size_t idx;
	size_t len;			/* of map and heap */
	unsigned char *map, *heap;	/* mmap'd and malloc'd, private */
	unsigned char *small[NSMALL];	/* small mallocs: the thread's arena */
	size_t verified;
};

static pthread_barrier_t g_barrier;
static unsigned char *g_shared;
static size_t g_shared_len;

static uint64_t worker_key(size_t idx, int kind)
{
	return key3(11, idx, (uint64_t)kind);
}

static size_t small_size(size_t i)
{
	return 512 + i * 509;		/* odd sizes across the small bins */
}

static void barrier(void)
{
	int r = pthread_barrier_wait(&g_barrier);

	if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
		fail("pthread_barrier_wait: %s", strerror(r));
}

/* Fresh pages of this thread's own stack. */
static void __attribute__((noinline)) touch_stack(size_t idx)
{
	unsigned char buf[256 * KiB];

	fill_check(buf, sizeof buf, worker_key(idx, 3), "thread stack");
}

/* The shared mapping: first half in contiguous slices, second half
 * interleaved page by page, so neighbouring pages fault from different
 * threads at the same time. All threads write one offset-based pattern. */
static void touch_shared(size_t idx)
{
	size_t half = g_shared_len / 2, slice = half / NTHREADS;
	uint64_t key = worker_key(0, 4);

	fill_range(g_shared, idx * slice, (idx + 1) * slice, key);
	for (size_t off = half + idx * g_page; off < g_shared_len;
	     off += NTHREADS * g_page)
		fill_range(g_shared, off, off + g_page, key);
}

static void check_neighbour_slice(size_t idx)
{
	size_t n = (idx + 1) % NTHREADS, slice = g_shared_len / 2 / NTHREADS;

	check_pat(g_shared, n * slice, (n + 1) * slice, worker_key(0, 4),
		  "thread %zu reading thread %zu's slice of shared %p", idx, n,
		  (void *)g_shared);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	barrier();			/* start faulting all at once */
	w->map = map_anon(w->len);
	w->heap = xmalloc(w->len);
	fill_range(w->map, 0, w->len, worker_key(w->idx, 0));
	fill_range(w->heap, 0, w->len, worker_key(w->idx, 1));
	for (size_t i = 0; i < NSMALL; i++) {
		w->small[i] = xmalloc(small_size(i));
		fill_range(w->small[i], 0, small_size(i), worker_key(w->idx, 2) + i);
	}
	touch_stack(w->idx);
	check_pat(w->map, 0, w->len, worker_key(w->idx, 0), "thread %zu mmap %p",
		  w->idx, (void *)w->map);
	check_pat(w->heap, 0, w->len, worker_key(w->idx, 1), "thread %zu malloc %p",
		  w->idx, (void *)w->heap);
	barrier();
	touch_shared(w->idx);
	barrier();			/* the others' writes are now visible */
	check_neighbour_slice(w->idx);
	w->verified = t_verified;
	return NULL;
}

/* After join: everything every thread wrote, checked by the main thread. */
static void check_worker(struct worker *w)
{
	check_pat(w->map, 0, w->len, worker_key(w->idx, 0),
		  "thread %zu mmap %p after join", w->idx, (void *)w->map);
	check_pat(w->heap, 0, w->len, worker_key(w->idx, 1),
		  "thread %zu malloc %p after join", w->idx, (void *)w->heap);
	for (size_t i = 0; i < NSMALL; i++)
		check_pat(w->small[i], 0, small_size(i), worker_key(w->idx, 2) + i,
			  "thread %zu small block %zu at %p after join", w->idx,
			  i, (void *)w->small[i]);
	xmunmap(w->map, w->len);
	free(w->heap);
	for (size_t i = 0; i < NSMALL; i++)
		free(w->small[i]);	/* freed by another thread: arena path */
}

static void test_threads(void)
{
	static struct worker w[NTHREADS];
	int err = pthread_barrier_init(&g_barrier, NULL, NTHREADS);

	if (err)
		fail("pthread_barrier_init: %s", strerror(err));
	g_shared_len = g_size;
	g_shared = map_anon(g_shared_len);
	for (size_t i = 0; i < NTHREADS; i++) {
		/* 64 MiB per thread at the default size: half mmap, half malloc */
		w[i] = (struct worker){ .idx = i, .len = g_size / 8 };
		xpthread_create(&w[i].tid, worker_main, &w[i]);
	}
	for (size_t i = 0; i < NTHREADS; i++) {
		xpthread_join(w[i].tid);
		t_verified += w[i].verified;
	}
	for (size_t i = 0; i < NTHREADS; i++)
		check_worker(&w[i]);
	check_pat(g_shared, 0, g_shared_len, worker_key(0, 4),
		  "shared mapping %p after join", (void *)g_shared);
	xmunmap(g_shared, g_shared_len);
	pthread_barrier_destroy(&g_barrier);
}

/* ------------------------------------------------------------------ */
/* fork: copy-on-write both ways, untouched pages, a running thread    */
/* ------------------------------------------------------------------ */

/* Shared with children: their byte counts, so the OK line includes them. */
struct fork_report {
	size_t verified;
	unsigned char data[];
};

static void fork_child(unsigned char *p, size_t len, uint64_t ka,
		       struct fork_report *rep, size_t replen)
{
	g_test = "fork(child)";
	t_verified = 0;
	check_pat(p, 0, len / 2, ka, "child: pre-fork data at %p", (void *)p);
	check_zero(p, len / 2, len, "child: part untouched before fork at %p",
		   (void *)p);
	fill_check(p, len, key3(12, 2, 0), "child's own pattern");
	fill_check(rep->data, replen, key3(12, 3, 0), "child: MAP_SHARED memory");
	rep->verified = t_verified;
	exit(0);
}

static void fork_basic(unsigned char *p, size_t len)
{
	uint64_t ka = key3(12, 0, 0), kp = key3(12, 1, 0);
	size_t replen = g_size / 16;
	struct fork_report *rep = xmmap(NULL, sizeof *rep + replen, RW,
					MAP_SHARED | MAP_ANONYMOUS);
	pid_t pid;

	fill_range(p, 0, len / 2, ka);	/* the other half stays untouched */
	pid = xfork();
	if (pid == 0)
		fork_child(p, len, ka, rep, replen);
	check_pat(p, 0, len / 2, ka, "parent: pre-fork data at %p", (void *)p);
	check_zero(p, len / 2, len, "parent: untouched part at %p", (void *)p);
	fill_check(p, len, kp, "parent's post-fork pattern");
	wait_ok(pid, "fork child");
	check_pat(p, 0, len, kp, "parent's data at %p after the child ran",
		  (void *)p);
	check_pat(rep->data, 0, replen, key3(12, 3, 0),
		  "MAP_SHARED memory at %p written by the child", (void *)rep->data);
	t_verified += rep->verified;
	xmunmap(rep, sizeof *rep + replen);
}

/* A thread that keeps mapping, faulting in, verifying and unmapping memory
 * while the main thread forks: fork lands in the middle of its faults. */
struct churn {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started, stop;
	size_t len, verified;
};

static bool churn_should_stop(struct churn *c)
{
	bool stop;

	pthread_mutex_lock(&c->lock);
	if (!c->started) {
		c->started = true;
		pthread_cond_signal(&c->cond);
	}
	stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static void *churn_main(void *arg)
{
	struct churn *c = arg;

	for (uint64_t round = 0; !churn_should_stop(c); round++) {
		unsigned char *q = map_anon(c->len);
		uint64_t key = key3(13, round, 0);

		for (size_t off = 0; off < c->len; off += g_page)
			fill_range(q, off, off + g_page, key);
		check_pat(q, 0, c->len, key, "churn thread round %ju at %p",
			  (uintmax_t)round, (void *)q);
		xmunmap(q, c->len);
	}
	c->verified = t_verified;
	return NULL;
}

/* The child of a multi-threaded parent: the pre-fork data is there, and
 * malloc and mmap work (glibc resets its locks in the child). */
static void fork_thread_child(unsigned char *p, size_t len, uint64_t kp)
{
	size_t n = g_size / 32;
	unsigned char *m, *h;

	g_test = "fork(child of threaded parent)";
	check_pat(p, 0, len, kp, "child: parent data at %p", (void *)p);
	m = map_anon(n);
	h = xmalloc(n);
	fill_check(m, n, key3(14, 1, 0), "child mmap");
	fill_check(h, n, key3(14, 2, 0), "child malloc");
	exit(0);
}

static void fork_with_thread(unsigned char *p, size_t len)
{
	struct churn c = { .len = g_size / 256 };
	uint64_t kp = key3(12, 1, 0);	/* what fork_basic left in p */
	pthread_t t;

	if (pthread_mutex_init(&c.lock, NULL) || pthread_cond_init(&c.cond, NULL))
		fail("pthread mutex/cond init failed");
	xpthread_create(&t, churn_main, &c);
	pthread_mutex_lock(&c.lock);
	while (!c.started)		/* a progress wait, not a timing one */
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	for (int i = 0; i < 4; i++) {
		pid_t pid = xfork();

		if (pid == 0)
			fork_thread_child(p, len, kp);
		wait_ok(pid, "child of threaded parent");
		check_pat(p, 0, len, kp, "parent data at %p after fork %d",
			  (void *)p, i);
	}
	pthread_mutex_lock(&c.lock);
	c.stop = true;
	pthread_mutex_unlock(&c.lock);
	xpthread_join(t);
	t_verified += c.verified;
	pthread_mutex_destroy(&c.lock);
	pthread_cond_destroy(&c.cond);
}

static void test_fork(void)
{
	size_t len = g_size / 4;
	unsigned char *p = map_anon(len);

	fork_basic(p, len);
	fork_with_thread(p, len);
	xmunmap(p, len);
}

/* ------------------------------------------------------------------ */
/* exec: a child re-executes this program in exec-child mode           */
/* ------------------------------------------------------------------ */

/* What the exec'd image does: a fresh address space, malloc and mmap. */
static void test_exec_child(void)
{
	size_t n = g_size / 8;
	unsigned char *h = xmalloc(n), *m = map_anon(n);

	fill_check(h, n, key3(15, 1, 0), "exec-child malloc");
	fill_check(m, n, key3(15, 2, 0), "exec-child mmap");
	free(h);
	xmunmap(m, n);
}

static void test_exec(void)
{
	size_t n = g_size / 8;
	unsigned char *p = map_anon(n);
	char mb[32];
	pid_t pid;

	/* The parent's memory must survive its child's exec untouched. */
	fill_range(p, 0, n, key3(15, 0, 0));
	snprintf(mb, sizeof mb, "%zu", g_size / MiB);
	pid = xfork();
	if (pid == 0) {
		char *argv[] = { (char *)g_self, "--size-mb", mb, "exec-child", NULL };

		execv("/proc/self/exe", argv);
		SYSFAIL("execv(/proc/self/exe)");
	}
	wait_ok(pid, "exec child");
	check_pat(p, 0, n, key3(15, 0, 0), "parent data at %p after child's exec",
		  (void *)p);
	xmunmap(p, n);
}

/* ------------------------------------------------------------------ */
/* Driver                                                              */
/* ------------------------------------------------------------------ */

struct test {
	const char *name;
	void (*run)(void);
	bool in_all;
};

static const struct test tests[] = {
	{ "malloc", test_malloc, true },
	{ "calloc", test_calloc, true },
	{ "realloc", test_realloc, true },
	{ "mmap", test_mmap, true },
	{ "mremap", test_mremap, true },
	{ "munmap", test_munmap, true },
	{ "madvise", test_madvise, true },
	{ "brk", test_brk, true },
	{ "threads", test_threads, true },
	{ "fork", test_fork, true },
	{ "exec", test_exec, true },
	{ "exec-child", test_exec_child, false },
};
#define NTESTS (sizeof tests / sizeof tests[0])

static void run_test(const struct test *t)
{
	g_test = t->name;
	t_verified = 0;
	t->run();
	printf("torture: %s: OK (%zu bytes verified)\n", t->name, t_verified);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: %s [--size-mb N] <test>...\n  tests: all", g_self);
	for (size_t i = 0; i < NTESTS; i++)
		fprintf(stderr, " %s", tests[i].name);
	fprintf(stderr, "\n  --size-mb N  scale of the big allocations "
		"(default 256, at least 16)\n");
	exit(2);
}

static void parse_size(const char *s)
{
	char *end;
	unsigned long long mb;

	errno = 0;
	mb = strtoull(s, &end, 10);
	if (errno || end == s || *end || mb < 16 || mb > (1ULL << 20))
		usage();
	g_size = (size_t)mb * MiB;
}

static const struct test *find_test(const char *name)
{
	for (size_t i = 0; i < NTESTS; i++)
		if (strcmp(tests[i].name, name) == 0)
			return &tests[i];
	usage();
}

/* Check every name first, so a typo fails before anything runs. */
static size_t parse_args(int argc, char **argv, const char **names)
{
	size_t n = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--size-mb") == 0 && i + 1 < argc)
			parse_size(argv[++i]);
		else if (strncmp(argv[i], "--size-mb=", 10) == 0)
			parse_size(argv[i] + 10);
		else if (argv[i][0] == '-')
			usage();
		else if (strcmp(argv[i], "all") == 0 || find_test(argv[i]))
			names[n++] = argv[i];
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *names[argc > 0 ? argc : 1];
	size_t n;

	g_self = argc > 0 ? argv[0] : "usm_torture";
	setvbuf(stdout, g_outbuf, _IOLBF, sizeof g_outbuf);
	g_page = (size_t)sysconf(_SC_PAGESIZE);
	n = parse_args(argc, argv, names);
	if (n == 0)
		usage();
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], "all") != 0) {
			run_test(find_test(names[i]));
			continue;
		}
		for (size_t j = 0; j < NTESTS; j++)
			if (tests[j].in_all)
				run_test(&tests[j]);
		g_test = "all";
		printf("torture: all: OK\n");
	}
	return 0;
}
