/* SPDX-License-Identifier: MIT */
/*
 * mech/stage.h - taking a page out of this process's own address space.
 *
 * Eviction must make a page's content stable and remove it in one step, or
 * a write landing between the copy and the removal is lost.  UFFDIO_MOVE
 * does both: once the page is moved into a staging area, it is missing
 * where it was, and a thread touching it faults.  The kernel only moves
 * within one address space, so whoever evicts from a process runs in it:
 * the agent's evictor (daemon host) or the in-process reclaimer.
 *
 * A staging area is a range of private anonymous memory, never registered
 * with the process's own userfaultfd, but with one of its own (MOVE needs
 * a registered destination), asked for no events: emptying it must not
 * reach anyone.  Every slot of it must be empty before a page moves in.
 */
#ifndef USM_MECH_STAGE_H
#define USM_MECH_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct usm_stage {
	int uffd;                 /* the staging area's own userfaultfd */
	uint64_t base, len;       /* the area, page-aligned */
	uint64_t page_size;
	bool mapped;              /* usm_stage_create mapped it */
};

/*
 * Register [area, area + len) as a staging area.  0, or -errno (-ENOTSUP:
 * the kernel has no UFFDIO_MOVE); *what names the step that failed.
 */
int usm_stage_open(struct usm_stage *s, void *area, uint64_t len, uint64_t page_size,
		   const char **what);
void usm_stage_close(struct usm_stage *s);

/*
 * The same on memory of its own: `pages` slots mapped with raw system
 * calls on the first call, kept across later ones (a fork child opens its
 * copy again: fork leaves it unregistered).  0, or -errno with err set.
 */
int usm_stage_create(struct usm_stage *s, unsigned pages, uint64_t page_size, char *err,
		     size_t errlen);
/* Slot i of a created area. */
static inline uint64_t usm_stage_slot(const struct usm_stage *s, unsigned i)
{
	return s->base + (uint64_t)i * s->page_size;
}

/*
 * Move the page at va into the empty staging slot at dst.  0: the page is
 * at dst and missing at va; -EINVAL: its mapping cannot be moved from
 * (read-only, locked, not anonymous: the page stays); any other -errno:
 * there was no page to move (freed, moved meanwhile).
 */
int usm_stage_take(const struct usm_stage *s, uint64_t dst, uint64_t va);

/* Empty [dst, dst + len) of the staging area for the next pages. */
void usm_stage_empty(const struct usm_stage *s, uint64_t dst, uint64_t len);

#endif /* USM_MECH_STAGE_H */
