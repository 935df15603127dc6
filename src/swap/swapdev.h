/* SPDX-License-Identifier: MIT */
/*
 * swap/swapdev.h - swap devices: where evicted pages' content lives.
 *
 * An instance has up to USM_SWAP_MAX_DEVS devices from its config
 * (`swapdev <kind> <path|-> <size> [priority=N] [codec=lz4|zstd] [direct]`);
 * stores go to the device of highest priority with room (ties: round
 * robin).  Two kinds:
 *  - "file": a file or block device, page-sized slots, asynchronous
 *    batched I/O through io_uring (liburing), optionally O_DIRECT;
 *  - "zmem": compressed pages (lz4 or zstd) in a memfd.
 *
 * Every stored page is described by a struct usm_swap_loc that is enough,
 * with the device's fd, to read it back without any other device state:
 * the preload agent does exactly that when the instance dies (crash
 * safety), so a loc's bytes on the device must stay untouched until the
 * loc's slot is freed.
 *
 * Slots are reference-counted: a forked child shares its parent's swapped
 * pages; the slot is reused only when the last reference is dropped.
 *
 * Thread safety: the swap layer has its own lock; all calls may come from
 * any thread.  usm_swap_store and usm_swap_load may block on I/O and are
 * never called under the policy lock.
 */
#ifndef USM_SWAP_SWAPDEV_H
#define USM_SWAP_SWAPDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USM_SWAP_MAX_DEVS 8

enum usm_swap_codec { USM_CODEC_NONE = 0, USM_CODEC_LZ4, USM_CODEC_ZSTD };

/* Where one page is stored.  16 bytes, shared with the agent. */
struct usm_swap_loc {
	uint64_t off;       /* byte offset of the data in the device's fd */
	uint32_t slot;      /* the device's slot id (refcount, free) */
	uint16_t len;       /* stored bytes; == page size when raw, 0: none */
	uint8_t dev;        /* device index (config order) */
	uint8_t codec;      /* enum usm_swap_codec */
};

/* One `swapdev` config line. */
struct usm_swapdev_cfg {
	char kind[8];          /* "file" | "zmem" */
	char path[256];        /* file/block device; "-" or "" for zmem */
	uint64_t size;         /* bytes of device space (zmem: compressed bytes) */
	int priority;          /* higher first; default 0 */
	uint8_t codec;         /* zmem: lz4 (default) or zstd */
	bool direct;           /* file: O_DIRECT */
	int line;              /* config line, for messages */
};

/* Parse the words after `swapdev`; 0, or -1 with err naming the problem. */
int usm_swapdev_parse(char *const *words, int nwords, struct usm_swapdev_cfg *out,
		      char *err, size_t errlen);

/* Counters, per device and summed. */
struct usm_swap_stats {
	uint64_t slots_total, slots_used;  /* zmem: slots = pages stored; its
					    * total is size / 64, an upper bound */
	uint64_t bytes_total, bytes_used;  /* device space (zmem: chunks) */
	uint64_t stored, loaded, freed;    /* pages, since init */
	uint64_t raw_bytes, stored_bytes;  /* of the pages stored now:
					    * compression ratio = raw / stored */
	uint64_t store_errors, load_errors;
};

/*
 * Open the devices (page_size bytes per page: a power of two from 4096 to
 * 32768, since a raw page's length must fit loc.len); 0 or -errno with
 * err naming the device and its config line.  Another init before
 * usm_swap_fini fails with -EBUSY.
 */
int usm_swap_init(const struct usm_swapdev_cfg *devs, unsigned ndevs, size_t page_size,
		  char *err, size_t errlen);

/*
 * Where the devices keep their data.  SHARED (the daemon): in files and
 * memfds whose fds the agents hold, to read pages back if the instance
 * dies.  PRIVATE (the in-process host): in the process's own private
 * memory, never registered, so that a fork child inherits a copy-on-write
 * snapshot of every device along with the swap table pointing into it.
 * File devices are SHARED only (-ENOTSUP).
 */
enum usm_swap_mode { USM_SWAP_SHARED, USM_SWAP_PRIVATE };
int usm_swap_init_mode(const struct usm_swapdev_cfg *devs, unsigned ndevs, size_t page_size,
		       enum usm_swap_mode mode, char *err, size_t errlen);
void usm_swap_fini(void);
bool usm_swap_enabled(void);
unsigned usm_swap_ndevs(void);
/* The fd the agent reads device `dev` through (memfd or file; -1 when
 * PRIVATE). */
int usm_swap_dev_fd(unsigned dev);

/*
 * Store n pages (page_size bytes each) as one batch: io_uring submits all
 * writes at once; zmem compresses each.  On return out[i] describes page
 * i, or has len == 0 when it could not be stored (devices full or an I/O
 * error).  Returns how many were stored.  Each stored loc holds one
 * reference.
 */
unsigned usm_swap_store(const void *const *pages, unsigned n, struct usm_swap_loc *out);
/* Read n locs into bufs[i] as one batch; returns 0 or -errno (then no
 * buffer is to be trusted): -EINVAL for a loc that does not hold a
 * reference (never stored, or freed), -ENODEV when swap is not enabled. */
int usm_swap_load(const struct usm_swap_loc *locs, unsigned n, void *const *bufs);
/* Another reference (fork); drop one (the slot is freed at zero).  A loc
 * with len 0 is ignored; a loc not stored is logged and ignored. */
void usm_swap_ref(const struct usm_swap_loc *loc);
void usm_swap_unref(const struct usm_swap_loc *loc);
/* Slots in use over all devices (0 when every process has exited). */
uint64_t usm_swap_slots_used(void);
void usm_swap_stats(int dev, struct usm_swap_stats *out);   /* dev -1: sum */

/* fork with PRIVATE devices: lock before, unlock in the parent after; the
 * child starts with fresh locks. */
void usm_swap_fork_lock(void);
void usm_swap_fork_unlock(void);
void usm_swap_fork_child(void);

/*
 * Read one loc from fd into page, decompressing: no device state, no
 * allocation, async-signal-safe apart from the codec.  Used by the agent
 * when the instance died.  0 or -errno.
 */
int usm_swap_read_loc(int fd, const struct usm_swap_loc *loc, void *page, size_t page_size);

#endif /* USM_SWAP_SWAPDEV_H */
