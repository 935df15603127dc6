/* SPDX-License-Identifier: MIT */
/*
 * swap/readloc.c - read one stored page back from a device's fd, with
 * nothing but the loc: the preload agent does this when the instance has
 * died, inside an arbitrary program, possibly in a signal handler.
 *
 * So: no allocation, no state besides static buffers, no use of the other
 * swap files.  zstd needs a decompression context; it lives in a static
 * buffer (ZSTD_initStaticDCtx).  Several threads of the program may read
 * at once, so there are a few decoders, each taken with an atomic flag;
 * a thread that finds them all busy yields and tries again.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <lz4.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "swap/swap_int.h"

#define DECODERS 4
/* ZSTD_estimateDCtxSize() is ~96 KiB with zstd 1.5; initStaticDCtx
 * refuses a smaller buffer, which read_loc reports as -ENOMEM. */
#define DCTX_BYTES (128u * 1024)

struct decoder {
	atomic_flag busy;
	ZSTD_DCtx *dctx;                            /* in dctx_mem once set */
	_Alignas(64) unsigned char src[USM_SWAP_MAX_PAGE];
	_Alignas(64) unsigned char dctx_mem[DCTX_BYTES];
};

static struct decoder decoders[DECODERS] = {
	{ .busy = ATOMIC_FLAG_INIT }, { .busy = ATOMIC_FLAG_INIT },
	{ .busy = ATOMIC_FLAG_INIT }, { .busy = ATOMIC_FLAG_INIT },
};

static struct decoder *decoder_get(void)
{
	for (;;) {
		for (unsigned i = 0; i < DECODERS; i++)
			if (!atomic_flag_test_and_set_explicit(&decoders[i].busy,
							       memory_order_acquire))
				return &decoders[i];
		sched_yield();
	}
}

static void decoder_put(struct decoder *dec)
{
	atomic_flag_clear_explicit(&dec->busy, memory_order_release);
}

static int check_loc(const struct usm_swap_loc *loc, size_t page_size)
{
	if (loc->len == 0)
		return -ENODATA;
	if (page_size == 0 || page_size > USM_SWAP_MAX_PAGE || loc->len > page_size)
		return -EINVAL;
	switch (loc->codec) {
	case USM_CODEC_NONE:
		return loc->len == page_size ? 0 : -EINVAL;
	case USM_CODEC_LZ4:
	case USM_CODEC_ZSTD:
		return 0;
	default:
		return -EINVAL;
	}
}

/* Decompress src (loc->len bytes) into exactly page_size bytes. */
static int decode_with(struct decoder *dec, const void *src, const struct usm_swap_loc *loc,
		       void *page, size_t page_size)
{
	switch (loc->codec) {
	case USM_CODEC_NONE:
		memcpy(page, src, page_size);
		return 0;
	case USM_CODEC_LZ4: {
		int r = LZ4_decompress_safe(src, page, loc->len, (int)page_size);

		return r == (int)page_size ? 0 : -EIO;
	}
	default: {
		size_t r;

		if (!dec->dctx)
			dec->dctx = ZSTD_initStaticDCtx(dec->dctx_mem, sizeof(dec->dctx_mem));
		if (!dec->dctx)
			return -ENOMEM;
		r = ZSTD_decompressDCtx(dec->dctx, page, page_size, src, loc->len);
		return !ZSTD_isError(r) && r == page_size ? 0 : -EIO;
	}
	}
}

int usm_swap_decode(const void *src, const struct usm_swap_loc *loc, void *page,
		    size_t page_size)
{
	struct decoder *dec;
	int ret = check_loc(loc, page_size);

	if (ret)
		return ret;
	if (loc->codec != USM_CODEC_ZSTD)       /* no context needed */
		return decode_with(NULL, src, loc, page, page_size);
	dec = decoder_get();
	ret = decode_with(dec, src, loc, page, page_size);
	decoder_put(dec);
	return ret;
}

/* Exactly len bytes at off, through short reads and signals. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;     /* the device ends before the page does */
		done += (size_t)r;
	}
	return 0;
}

int usm_swap_read_loc(int fd, const struct usm_swap_loc *loc, void *page, size_t page_size)
{
	int saved_errno = errno;     /* callers may be signal handlers */
	struct decoder *dec;
	int ret = check_loc(loc, page_size);

	if (ret)
		return ret;
	if (loc->codec == USM_CODEC_NONE) {
		ret = pread_full(fd, page, page_size, loc->off);
	} else {
		dec = decoder_get();
		ret = pread_full(fd, dec->src, loc->len, loc->off);
		if (!ret)
			ret = decode_with(dec, dec->src, loc, page, page_size);
		decoder_put(dec);
	}
	errno = saved_errno;
	return ret;
}
