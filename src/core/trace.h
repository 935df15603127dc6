/* SPDX-License-Identifier: MIT */
/*
 * core/trace.h - recording a process's fault/eviction trace for `usm sim`.
 *
 * `trace <comm> <file>` in the config makes the instance append one record
 * per event of every process named comm to <file> (the pid is in each
 * record).  The format is described in core/trace.c and docs/eviction.md.
 */
#ifndef USM_CORE_TRACE_H
#define USM_CORE_TRACE_H

#include <stdint.h>

struct usm_process;

enum usm_trace_kind {
	USM_TR_FAULT = 1,   /* first touch of a page (missing, never swapped) */
	USM_TR_SWAPIN,      /* fault on a swapped-out page */
	USM_TR_EVICT,       /* page written out and unmapped */
	USM_TR_ACCESS,      /* page seen accessed by the access tracker */
	USM_TR_FREE,        /* page released (munmap, MADV_DONTNEED, exit) */
};

/* At attach: open p's trace if the config asks for one.  0 or -errno. */
int usm_trace_attach(struct usm_process *p);
/* At exit: flush and close. */
void usm_trace_detach(struct usm_process *p);
/* npages pages from vaddr.  Thread-safe, never blocks on the fault path
 * for long (buffered).  No-op when p is not traced. */
void usm_trace_event(struct usm_process *p, enum usm_trace_kind kind,
		     uint64_t vaddr, uint64_t npages);

#endif /* USM_CORE_TRACE_H */
