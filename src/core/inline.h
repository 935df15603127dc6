/* SPDX-License-Identifier: MIT */
/*
 * core/inline.h - the in-process host (`usm run --inline`).
 *
 * The same policies, run inside the managed process: the agent loads
 * libusm.so, and a thread that faults on a missing page (userfaultfd in
 * UFFD_FEATURE_SIGBUS mode) resolves it itself in its SIGBUS handler, with
 * no round trip to another thread.  The instance still owns the budget
 * (frames are leased in chunks) and the statistics (pushed to it).
 *
 * Everything here may run in a signal handler: no malloc on these paths,
 * and all framework memory is mapped with raw syscalls (never registered).
 */
#ifndef USM_CORE_INLINE_H
#define USM_CORE_INLINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/proto.h"

/* What the agent provides: its channel to the instance. */
struct usm_inline_host {
	/* Lease delta frames (< 0: give back); *granted gets the change. */
	int (*lease)(int64_t delta, int64_t *granted);
	/* Budget exhausted: ask the instance (it may kill a process).  0 or -errno. */
	int (*oom)(void);
	/* Send the process's counters. */
	int (*push)(const struct usm_msg_stats_push *m);
	/* Read the userfaultfd's pending events (a thread in mremap waits
	 * for that): while the agent's monitor thread is busy detaching,
	 * nobody else would. */
	void (*drain_events)(void);
};

/* The entry points, looked up by the agent with dlsym. */
struct usm_inline_api {
	int (*start)(const struct usm_inline_host *host, const char *config_text,
		     pid_t pid, const char *comm, int uffd, char *err, size_t errlen);
	/* 0: resolved; -1: not a fault this host can resolve. */
	int (*fault)(uint64_t addr, unsigned write);
	void (*unmap)(uint64_t start, uint64_t len);
	void (*remove)(uint64_t start, uint64_t len);
	void (*remap)(uint64_t from, uint64_t len, uint64_t to);
	void (*push_stats)(void);
	/* In a fork child, after it attached with its own userfaultfd. */
	void (*forked)(pid_t pid, int uffd);
	/* Does the policy want a 2 MiB page pool?  Then here it is. */
	int (*wants_pool)(void);
	void (*pool_ready)(struct usm_thp_pool *pool);
	/* After the agent's seccomp filter: start the host's own threads. */
	void (*start_threads)(void);
	/* Does this host evict (swap devices)?  Then system calls may find
	 * their buffers swapped out (agent/pretouch.c). */
	int (*evicting)(void);
	/* Around a trapped call that changes the address space and the
	 * unmap/remove/remap that follows it. */
	void (*layout_begin)(void);
	void (*layout_end)(void);
	/* fork, in the parent: stop evicting (pause; resume undoes it), then
	 * stop everything (prepare), and after (the child calls forked). */
	void (*fork_pause)(void);
	void (*fork_resume)(void);
	void (*fork_prepare)(void);
	void (*fork_parent)(void);
	/* The instance is gone: put every swapped-out page back in place. */
	void (*restore)(void);
};

#define USM_INLINE_API_SYMBOL "usm_inline_api"

#endif /* USM_CORE_INLINE_H */
