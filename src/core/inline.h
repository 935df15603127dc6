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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/proto.h"

/* What the agent provides: its channel to the instance. */
struct usm_inline_host {
	/* Lease delta frames (< 0: give back); *granted gets the change,
	 * *recalling whether the instance, short, asked another process to
	 * give some back (then asking again soon may bring them). */
	int (*lease)(int64_t delta, int64_t *granted, bool *recalling);
	/* Budget exhausted: ask the instance (it may kill a process).  The
	 * instance's enum usm_oom_action (USM_OOM_RETRY: it has frames to
	 * lease again), or -errno. */
	int (*oom)(void);
	/* Send the process's counters. */
	int (*push)(const struct usm_msg_stats_push *m);
	/* Read the userfaultfd's pending events (a thread in mremap waits
	 * for that): while the agent's monitor thread is busy detaching,
	 * nobody else would. */
	void (*drain_events)(void);
	/* Frames the instance asks back (struct usm_lease_page), taken;
	 * and telling it that not all of them could be given. */
	int64_t (*recalled)(void);
	void (*recall_short)(void);
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
	/* Does the policy want write sentinels (core/sentinel.c)?  Then the
	 * agent registers memory for asynchronous write-protection too. */
	int (*wants_sentinels)(void);
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
	/* [start, start + len) becomes the kernel's (an alternate signal
	 * stack): its pages are brought in, forgotten and unregistered. */
	int (*release)(uint64_t start, uint64_t len);
	/* A system call is about to use [lo[i], hi[i]) (or, all, memory too
	 * scattered to list): no page there is moved out until unpin(the
	 * answer).  -1 when there is nothing to pin. */
	int (*pin)(const uint64_t *lo, const uint64_t *hi, unsigned n, bool all);
	void (*unpin)(int pin);
};

#define USM_INLINE_API_SYMBOL "usm_inline_api"

#endif /* USM_CORE_INLINE_H */
