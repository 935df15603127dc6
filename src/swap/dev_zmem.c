/* SPDX-License-Identifier: MIT */
/*
 * swap/dev_zmem.c - a compressed swap device in memory.
 *
 * Pages are compressed (lz4 by default, or zstd at level 1) into a memfd
 * of the configured size, mapped shared in the instance; the agent reads
 * the same memfd with pread when the instance has died.  In the
 * in-process host (USM_SWAP_PRIVATE) the space is private memory instead.  A page that does
 * not shrink below 7/8 of its size is stored raw (codec NONE): the few
 * bytes saved would not pay for decompressing it.
 *
 * Space comes in size classes of ZMEM_UNIT bytes: a page compressed to
 * len bytes takes a chunk of len rounded up to the unit.  A chunk comes
 * from its class's free list, else by splitting the smallest larger free
 * chunk (the rest goes to its own class), else from the never-used tail of
 * the memfd.  A freed chunk merges with free neighbours (boundary tags:
 * a free chunk's first and last units are marked in a bitmap, and its
 * size is at both ends), so mixed sizes do not fragment the device into
 * pieces too small to use.  The free lists live in the free chunks
 * themselves.  The device is full when no class can serve.
 *
 * Two locks: ctx_lock for the compression context and the output buffer
 * (a whole batch), alloc_lock for the classes (a few instructions), so
 * that freeing a slot never waits for a batch to compress.
 */
#define ZSTD_STATIC_LINKING_ONLY     /* ZSTD_createCCtx_advanced */
#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include <usm/usm.h>
#include "mech/rawsys.h"
#include "swap/swap_int.h"

#define ZMEM_UNIT 64u
#define ZMEM_CLASSES (USM_SWAP_MAX_PAGE / ZMEM_UNIT)
#define ZSTD_LEVEL 1
#define NO_CHUNK UINT64_MAX

struct zmem_dev {
	pthread_mutex_t ctx_lock;
	pthread_mutex_t alloc_lock;
	int memfd;                             /* -1 when PRIVATE */
	unsigned char *map;
	bool private_map;                      /* map is raw_map'd, not the memfd */
	uint64_t size;
	uint64_t bump;                         /* never handed out above this */
	unsigned nclasses;                     /* page_size / ZMEM_UNIT */
	uint64_t free_head[ZMEM_CLASSES + 2];  /* per list: chunk offset + 1, 0: empty */
	uint64_t *free_edges;                  /* bit per unit: first/last of a free chunk */
	size_t edges_bytes;
	uint8_t codec;
	void *lz4_state;
	ZSTD_CCtx *cctx;
	unsigned char out[USM_SWAP_MAX_PAGE];
};

/* ---- size classes ----------------------------------------------------- */

/* The start of a free chunk; its last 8 bytes repeat units (the footer). */
struct free_hdr {
	uint64_t next, prev;       /* offset + 1 in the same list, 0: none */
	uint64_t units;
};

static unsigned units_of(size_t len)
{
	return (unsigned)((len + ZMEM_UNIT - 1) / ZMEM_UNIT);
}

/* Lists 1..nclasses hold chunks of exactly that many units; the last one
 * (nclasses + 1) holds every larger chunk that coalescing made. */
static unsigned list_of(const struct zmem_dev *z, uint64_t units)
{
	return units <= z->nclasses ? (unsigned)units : z->nclasses + 1;
}

static struct free_hdr *hdr_at(struct zmem_dev *z, uint64_t off)
{
	return (struct free_hdr *)(void *)(z->map + off);
}

static bool unit_is_free_edge(const struct zmem_dev *z, uint64_t unit)
{
	return z->free_edges[unit / 64] >> (unit % 64) & 1;
}

static void mark_edges(struct zmem_dev *z, uint64_t off, uint64_t units, bool set)
{
	uint64_t first = off / ZMEM_UNIT, last = first + units - 1;

	if (set) {
		z->free_edges[first / 64] |= 1ull << (first % 64);
		z->free_edges[last / 64] |= 1ull << (last % 64);
	} else {
		z->free_edges[first / 64] &= ~(1ull << (first % 64));
		z->free_edges[last / 64] &= ~(1ull << (last % 64));
	}
}

static void free_insert(struct zmem_dev *z, uint64_t off, uint64_t units)
{
	unsigned l = list_of(z, units);
	struct free_hdr *h = hdr_at(z, off);
	uint64_t footer = off + units * ZMEM_UNIT - sizeof(uint64_t);

	h->units = units;
	h->prev = 0;
	h->next = z->free_head[l];
	if (h->next)
		hdr_at(z, h->next - 1)->prev = off + 1;
	z->free_head[l] = off + 1;
	memcpy(z->map + footer, &units, sizeof(units));
	mark_edges(z, off, units, true);
}

/* Unlink the free chunk at off; returns its units. */
static uint64_t free_remove(struct zmem_dev *z, uint64_t off)
{
	struct free_hdr *h = hdr_at(z, off);
	uint64_t units = h->units;

	if (h->prev)
		hdr_at(z, h->prev - 1)->next = h->next;
	else
		z->free_head[list_of(z, units)] = h->next;
	if (h->next)
		hdr_at(z, h->next - 1)->prev = h->prev;
	mark_edges(z, off, units, false);
	return units;
}

/*
 * A chunk of units * ZMEM_UNIT bytes, or NO_CHUNK: the class's own list,
 * else a larger free chunk split in two, else the never-used tail.
 */
static uint64_t chunk_alloc(struct zmem_dev *z, unsigned units)
{
	uint64_t bytes = (uint64_t)units * ZMEM_UNIT, off;

	for (unsigned l = units; l <= z->nclasses + 1; l++) {
		uint64_t have;

		if (!z->free_head[l])
			continue;
		off = z->free_head[l] - 1;
		have = free_remove(z, off);
		if (have > units)
			free_insert(z, off + bytes, have - units);
		return off;
	}
	if (z->size - z->bump < bytes)
		return NO_CHUNK;
	off = z->bump;
	z->bump += bytes;
	return off;
}

/* Give a chunk back, merged with free neighbours (or the unused tail). */
static void chunk_free(struct zmem_dev *z, uint64_t off, uint64_t units)
{
	uint64_t end = off + units * ZMEM_UNIT;

	if (off && unit_is_free_edge(z, off / ZMEM_UNIT - 1)) {
		uint64_t prev_units;

		memcpy(&prev_units, z->map + off - sizeof(uint64_t), sizeof(prev_units));
		off -= prev_units * ZMEM_UNIT;
		units += free_remove(z, off);
	}
	if (end < z->bump && unit_is_free_edge(z, end / ZMEM_UNIT)) {
		units += free_remove(z, end);
		end = off + units * ZMEM_UNIT;
	}
	if (end == z->bump)
		z->bump = off;
	else
		free_insert(z, off, units);
}

/* ---- compression ------------------------------------------------------ */

/* Compressed size if it is at most cap bytes, else 0. */
static size_t compress_page(struct zmem_dev *z, const void *page, size_t ps, size_t cap)
{
	if (z->codec == USM_CODEC_ZSTD) {
		size_t r = ZSTD_compress2(z->cctx, z->out, cap, page, ps);

		return ZSTD_isError(r) ? 0 : r;
	}
	return (size_t)LZ4_compress_fast_extState(z->lz4_state, page, (char *)z->out, (int)ps,
						  (int)cap, 1);
}

/* One page into the device; loc gets off, len, codec (len 0: full). */
static void store_page(struct zmem_dev *z, const void *page, size_t ps,
		       struct usm_swap_loc *loc)
{
	size_t len = compress_page(z, page, ps, ps - ps / 8);
	const void *src = len ? z->out : page;
	uint64_t off;

	if (!len)
		len = ps;
	pthread_mutex_lock(&z->alloc_lock);
	off = chunk_alloc(z, units_of(len));
	pthread_mutex_unlock(&z->alloc_lock);
	if (off == NO_CHUNK)
		return;
	memcpy(z->map + off, src, len);
	loc->off = off;
	loc->len = (uint16_t)len;
	loc->codec = len == ps ? USM_CODEC_NONE : z->codec;
}

/* ---- device ops ------------------------------------------------------- */

static unsigned zmem_store(struct swap_dev *d, const void *const *pages, const uint32_t *slots,
			   unsigned n, struct usm_swap_loc *out, uint64_t *errors)
{
	struct zmem_dev *z = d->priv;
	unsigned stored = 0;

	pthread_mutex_lock(&z->ctx_lock);
	for (unsigned i = 0; i < n; i++) {
		store_page(z, pages[i], d->page_size, &out[i]);
		stored += out[i].len != 0;
	}
	pthread_mutex_unlock(&z->ctx_lock);
	return stored;
}

static int zmem_load(struct swap_dev *d, const struct usm_swap_loc *locs, void *const *bufs,
		     unsigned n)
{
	struct zmem_dev *z = d->priv;

	for (unsigned i = 0; i < n; i++) {
		int ret = usm_swap_decode(z->map + locs[i].off, &locs[i], bufs[i], d->page_size);

		if (ret) {
			usm_log(USM_LOG_ERROR, "swap: zmem device %u: page at %llu does not "
				"decode: %s", d->index, (unsigned long long)locs[i].off,
				strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static void zmem_release(struct swap_dev *d, const struct usm_swap_loc *rec)
{
	struct zmem_dev *z = d->priv;

	pthread_mutex_lock(&z->alloc_lock);
	chunk_free(z, rec->off, units_of(rec->len));
	pthread_mutex_unlock(&z->alloc_lock);
}

static void zmem_forked(struct swap_dev *d)
{
	struct zmem_dev *z = d->priv;

	pthread_mutex_init(&z->ctx_lock, NULL);
	pthread_mutex_init(&z->alloc_lock, NULL);
}

static void zmem_close(void *priv)
{
	struct zmem_dev *z = priv;

	if (z->map && z->private_map)
		raw_unmap(z->map, z->size);
	else if (z->map)
		munmap(z->map, z->size);
	if (z->free_edges)
		raw_unmap(z->free_edges, z->edges_bytes);
	if (z->memfd >= 0)
		close(z->memfd);
	free(z->lz4_state);
	ZSTD_freeCCtx(z->cctx);
	pthread_mutex_destroy(&z->ctx_lock);
	pthread_mutex_destroy(&z->alloc_lock);
	free(z);
}

/* zstd's context through our malloc: in the in-process host that is the
 * framework's own heap (core/heap.c), never the program's. */
static void *zstd_alloc(void *opaque, size_t n)
{
	(void)opaque;
	return malloc(n);
}

static void zstd_free(void *opaque, void *p)
{
	(void)opaque;
	free(p);
}

static int codec_init(struct zmem_dev *z, char *err, size_t errlen)
{
	static const ZSTD_customMem mem = { zstd_alloc, zstd_free, NULL };

	if (z->codec == USM_CODEC_LZ4) {
		z->lz4_state = malloc((size_t)LZ4_sizeofState());
		return z->lz4_state ? 0 : usm_swap_fail(err, errlen, -ENOMEM, "lz4 state");
	}
	z->cctx = ZSTD_createCCtx_advanced(mem);
	if (!z->cctx)
		return usm_swap_fail(err, errlen, -ENOMEM, "zstd context");
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 0)))
		return usm_swap_fail(err, errlen, -EINVAL, "zstd parameters");
	return 0;
}

/* PRIVATE: the process's own memory (a fork child gets a copy-on-write
 * snapshot); no fd. */
static int private_init(struct zmem_dev *z, char *err, size_t errlen)
{
	z->map = raw_map(z->size, PROT_READ | PROT_WRITE);
	if (!z->map)
		return usm_swap_fail(err, errlen, -ENOMEM, "mapping %llu bytes",
				     (unsigned long long)z->size);
	z->private_map = true;
	return 0;
}

static int memfd_init(struct zmem_dev *z, char *err, size_t errlen)
{
	z->memfd = memfd_create("usm-zmem", MFD_CLOEXEC);
	if (z->memfd < 0)
		return usm_swap_fail(err, errlen, -errno, "memfd_create");
	if (ftruncate(z->memfd, (off_t)z->size))
		return usm_swap_fail(err, errlen, -errno, "sizing the memfd to %llu bytes",
				     (unsigned long long)z->size);
	z->map = mmap(NULL, z->size, PROT_READ | PROT_WRITE, MAP_SHARED, z->memfd, 0);
	if (z->map == MAP_FAILED) {
		z->map = NULL;
		return usm_swap_fail(err, errlen, -errno, "mapping %llu bytes of memfd",
				     (unsigned long long)z->size);
	}
	return 0;
}

static int edges_init(struct zmem_dev *z, char *err, size_t errlen)
{
	z->edges_bytes = (z->size / ZMEM_UNIT + 63) / 64 * sizeof(uint64_t);
	z->free_edges = raw_map(z->edges_bytes, PROT_READ | PROT_WRITE);
	if (!z->free_edges)
		return usm_swap_fail(err, errlen, -ENOMEM, "free-chunk bitmap");
	return 0;
}

static int zmem_open(struct swap_dev *d, char *err, size_t errlen)
{
	struct zmem_dev *z;
	int ret;

	if (d->cfg.size < d->page_size)
		return usm_swap_fail(err, errlen, -EINVAL, "size %llu is less than a page",
				     (unsigned long long)d->cfg.size);
	if (d->cfg.codec != USM_CODEC_LZ4 && d->cfg.codec != USM_CODEC_ZSTD)
		return usm_swap_fail(err, errlen, -EINVAL, "codec %u", d->cfg.codec);
	z = calloc(1, sizeof(*z));
	if (!z)
		return usm_swap_fail(err, errlen, -ENOMEM, "device state");
	pthread_mutex_init(&z->ctx_lock, NULL);
	pthread_mutex_init(&z->alloc_lock, NULL);
	z->memfd = -1;
	z->size = d->cfg.size / ZMEM_UNIT * ZMEM_UNIT;
	z->nclasses = (unsigned)(d->page_size / ZMEM_UNIT);
	z->codec = d->cfg.codec;
	ret = codec_init(z, err, errlen);
	if (!ret)
		ret = d->private_mem ? private_init(z, err, errlen) : memfd_init(z, err, errlen);
	if (!ret)
		ret = edges_init(z, err, errlen);
	if (ret) {
		zmem_close(z);
		return ret;
	}
	/* One slot per smallest chunk: the most pages the device can hold. */
	usm_swap_dev_opened(d, z, z->memfd, z->size / ZMEM_UNIT, ZMEM_UNIT, ZMEM_UNIT);
	return 0;
}


const struct swap_dev_ops usm_swap_zmem_ops = {
	.open = zmem_open,
	.close = zmem_close,
	.store = zmem_store,
	.load = zmem_load,
	.release = zmem_release,
	.forked = zmem_forked,
};
