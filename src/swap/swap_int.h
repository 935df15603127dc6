/* SPDX-License-Identifier: MIT */
/*
 * swap/swap_int.h - between the device set (swap.c) and the device kinds
 * (dev_file.c, dev_zmem.c).  Not part of the swap API.
 *
 * swap.c owns slot ids, their reference counts and the record of what each
 * slot holds; a device kind owns its space and its I/O.  A store reserves
 * slot ids first, then asks the device to write the pages; a page the
 * device cannot take (no space, I/O error) gets its slot id back and is
 * offered to the next device.
 */
#ifndef USM_SWAP_SWAP_INT_H
#define USM_SWAP_SWAP_INT_H

#include <pthread.h>

#include "swap/swapdev.h"

/* Largest page the swap layer handles: a raw page's length is a uint16. */
#define USM_SWAP_MAX_PAGE 32768u
/* Pages handed to a device in one call; also the io_uring queue depth. */
#define USM_SWAP_BATCH 64u

struct swap_dev;

struct swap_dev_ops {
	/* Open the device; on success call usm_swap_dev_opened. */
	int (*open)(struct swap_dev *d, char *err, size_t errlen);
	/* Release what open set up (its priv). */
	void (*close)(void *priv);
	/*
	 * Write pages[i] (n <= USM_SWAP_BATCH) for slot ids slots[i]; set
	 * out[i].off, .len, .codec, or .len = 0 for a page not stored (that
	 * page then holds no device space).  Returns the number stored.
	 */
	unsigned (*store)(struct swap_dev *d, const void *const *pages, const uint32_t *slots,
			  unsigned n, struct usm_swap_loc *out, uint64_t *errors);
	/* Read locs[i] into bufs[i] (n <= USM_SWAP_BATCH); 0 or -errno. */
	int (*load)(struct swap_dev *d, const struct usm_swap_loc *locs, void *const *bufs,
		    unsigned n);
	/* The slot of rec lost its last reference: free its space (or NULL). */
	void (*release)(struct swap_dev *d, const struct usm_swap_loc *rec);
	/* In a fork child (PRIVATE): fresh locks (or NULL). */
	void (*forked)(struct swap_dev *d);
};

extern const struct swap_dev_ops usm_swap_file_ops;
extern const struct swap_dev_ops usm_swap_zmem_ops;

struct swap_dev {
	const struct swap_dev_ops *ops;
	struct usm_swapdev_cfg cfg;
	unsigned index;
	size_t page_size;
	bool private_mem;           /* USM_SWAP_PRIVATE: no fd, private memory */
	/* set by ops->open through usm_swap_dev_opened */
	int fd;                     /* what the agent reads (usm_swap_dev_fd) */
	uint32_t nslots;            /* slot ids 0 .. nslots-1 */
	uint64_t bytes_total;
	uint32_t space_unit;        /* a stored page takes len rounded up to this */
	void *priv;
	/* slot table, owned by swap.c, under its lock */
	uint32_t *refs;             /* 0: free */
	struct usm_swap_loc *recs;  /* what each slot holds (len 0: nothing yet) */
	uint32_t *free_ids;         /* stack of freed ids */
	uint32_t nfree;
	uint32_t next_unused;       /* ids >= this were never used */
	struct usm_swap_stats st;
};

/*
 * What a device's open found: its state, the fd the agent reads, how many
 * slot ids it has (capped at 2^32-1) and the bytes each stands for (device
 * space = slots * bytes_per_slot), and the unit its space is counted in.
 */
void usm_swap_dev_opened(struct swap_dev *d, void *priv, int fd, uint64_t slots,
			 uint64_t bytes_per_slot, uint32_t space_unit);

/*
 * Decode one stored page from src (loc->len bytes) into page: memcpy,
 * lz4 or zstd.  Thread-safe, no allocation (readloc.c).  0 or -errno.
 */
int usm_swap_decode(const void *src, const struct usm_swap_loc *loc, void *page,
		    size_t page_size);

/* "what: strerror(-e)" into err; returns e. */
int usm_swap_fail(char *err, size_t errlen, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* USM_SWAP_SWAP_INT_H */
