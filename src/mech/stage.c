/* SPDX-License-Identifier: MIT */
/*
 * mech/stage.c - moving pages out of this process (see mech/stage.h).
 */
#include "mech/stage.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int usm_stage_open(struct usm_stage *s, void *area, uint64_t len, uint64_t page_size,
		   const char **what)
{
	uint64_t got = 0, missing = 0;
	int rc;

	s->base = (uint64_t)(uintptr_t)area;
	s->len = len;
	s->page_size = page_size;
	s->uffd = usm_uffd_create();
	if (s->uffd < 0) {
		*what = "userfaultfd for staging";
		return s->uffd;
	}
	rc = usm_uffd_api(s->uffd, UFFD_FEATURE_MOVE, UFFD_FEATURE_MOVE, &got, &missing);
	if (rc) {
		*what = missing ? "staging area (the kernel lacks UFFDIO_MOVE)" : "staging area";
	} else {
		rc = usm_uffd_register(s->uffd, s->base, len, UFFDIO_REGISTER_MODE_MISSING);
		if (rc)
			*what = "registering the staging area";
	}
	if (rc) {
		close(s->uffd);
		s->uffd = -1;
	}
	return rc;
}

void usm_stage_close(struct usm_stage *s)
{
	if (s->uffd >= 0)
		close(s->uffd);
	s->uffd = -1;
}

int usm_stage_create(struct usm_stage *s, unsigned pages, uint64_t page_size, char *err,
		     size_t errlen)
{
	const char *what = "staging area";
	uint64_t len = (uint64_t)pages * page_size;
	void *area = s->mapped ? (void *)(uintptr_t)s->base : raw_map(len, PROT_READ | PROT_WRITE);
	int rc = -ENOMEM;

	if (area) {
		s->mapped = true;
		rc = usm_stage_open(s, area, len, page_size, &what);
	}
	if (rc)
		snprintf(err, errlen, "%s: %s", what, strerror(-rc));
	return rc;
}

/* Is the staging slot at dst holding a page? */
static bool staged(const struct usm_stage *s, uint64_t dst)
{
	unsigned char in = 0;

	return !raw_is_error(raw_syscall6(SYS_mincore, (long)dst, (long)s->page_size, (long)&in,
					  0, 0, 0)) && (in & 1);
}

int usm_stage_take(const struct usm_stage *s, uint64_t dst, uint64_t va)
{
	uint64_t done = 0;
	int rc = usm_uffd_move(s->uffd, dst, va, s->page_size, &done);

	/* A page shared with a fork child (copy-on-write) cannot be moved
	 * until this process has its own copy: an atomic add of zero makes
	 * one without changing a byte. */
	if (rc == -EBUSY) {
		__atomic_fetch_add((uint64_t *)(uintptr_t)va, 0, __ATOMIC_SEQ_CST);
		rc = usm_uffd_move(s->uffd, dst, va, s->page_size, &done);
	}
	/*
	 * The kernel can move the page and still answer -EEXIST (seen on
	 * 6.18 with write-protected pages: it retries, finds the page it
	 * just moved at the destination, and reports that).  The slot was
	 * empty, so a page there is ours: trust the slot, not the code, or
	 * the page's only copy would be emptied with the slot.
	 */
	if (rc && staged(s, dst))
		rc = 0;
	return rc;
}

void usm_stage_empty(const struct usm_stage *s, uint64_t dst, uint64_t len)
{
	(void)s;
	raw_syscall6(SYS_madvise, (long)dst, (long)len, MADV_DONTNEED, 0, 0, 0);
}
