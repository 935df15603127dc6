/* SPDX-License-Identifier: MIT */
/*
 * agent/agent.h - the preload agent, loaded into an unmodified program by
 * `usm run` (LD_PRELOAD).
 *
 * It is trusted mechanism, like the original USM's kernel module, and holds
 * no policy: it creates the process's userfaultfd, hands it to the instance,
 * registers the process's private anonymous memory as it appears, and gives
 * that memory back to the kernel if the instance dies or stops answering.
 *
 * It must never make a managed program hang or lose data, so code that can
 * run while the instance is unreachable (the SIGSYS handler, the monitor
 * thread, detaching) touches only agent-owned memory that is never
 * registered: static buffers and a monitor stack mapped by raw syscalls.
 */
#ifndef USM_AGENT_AGENT_H
#define USM_AGENT_AGENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/inline.h"

enum agent_state { AGENT_OFF = 0, AGENT_ATTACHED, AGENT_DETACHED };

struct agent {
	_Atomic int state;
	int uffd;
	int sock;
	atomic_flag lock;        /* uffd use (register) vs. detach */
	bool intercepting;       /* seccomp filter + SIGSYS handler installed */
	bool required;           /* USM_REQUIRED: refuse to run unmanaged */
	int timeout_ms;          /* silence before detaching */
	char sock_path[108];
	char policy[32];
	bool inline_mode;        /* faults resolved in this process (SIGBUS) */
	bool want_pool;          /* the instance wants a 2 MiB page pool */
	bool want_evict;         /* the instance evicts: EVICT_SETUP follows */
	bool want_sentinels;     /* the policy wants write sentinels */
	uint64_t features;       /* what UFFDIO_API granted */
	uint64_t reg_mode;       /* UFFDIO_REGISTER_MODE_*: MISSING, + WP when
				  * the instance tracks writes (it evicts) */
	const struct usm_inline_api *api;   /* libusm's in-process host */
	_Atomic bool restoring;  /* detaching: swapped-out pages go back first */
	const char *uffd_pending_config;    /* inline config, until the host starts */
};

extern struct agent agent;

/* agent.c */
void agent_comm(char *comm, size_t len);
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Register [start, start + len) for missing faults, if attached. */
void agent_register(uint64_t start, uint64_t len);
/* Give every registered range back to the kernel and stop managing. */
void agent_detach(const char *why);

/* intercept.c: trap glibc's mmap and brk (incl. malloc's own calls), and
 * in inline mode munmap, madvise and mremap for the frame accounting. */
int agent_intercept_install(void);
/* The program's SIGBUS action, kept aside while ours is installed. */
void agent_app_sigbus(void **handler, unsigned long *flags);

/* pretouch.c: the memory of system calls, touched first (inline): what
 * they write into, and with eviction on what they read, pinned until
 * agent_pretouch_done (given agent_pretouch's answer). */
extern const uint32_t agent_pretouch_nrs[];
extern const unsigned agent_pretouch_n;
extern const uint32_t agent_pretouch_in_nrs[];
extern const unsigned agent_pretouch_in_n;
int agent_pretouch(long nr, const long *args);
void agent_pretouch_done(int pin);

/* inline.c: the in-process host (USM_INLINE=1, or the instance says so). */
int agent_inline_start(const char *config, char *err, size_t errlen);
int agent_inline_forked(char *err, size_t errlen);
void agent_inline_stop(void);
/* After the seccomp filter (and in a fork child): the 2 MiB pool and
 * the host's own threads. */
void agent_inline_threads(void);

/* monitor.c: watch the instance; detach when it dies or goes silent. */
int agent_monitor_start(void);
/* In-process host: read and drop the userfaultfd's (REMAP) events. */
void agent_drain_events(void);
/* Start an agent thread (own stack, signals blocked).  0 or -errno. */
int agent_spawn(const char *name, void *(*fn)(void *), void *arg);

/* evict.c: the eviction channel (daemon host with swap devices). */
/* After a HELLO ACK with USM_ACK_EVICT: receive the channel and devices. */
int agent_evict_setup(int sock, int uffd, char *err, size_t errlen);
/* Start moving pages out on the daemon's request. */
int agent_evict_start(void);
/* Detaching: put every swapped-out page back in place first. */
void agent_evict_restore(void);
/* Around a call that changes the address space (munmap, mremap, madvise,
 * MAP_FIXED mmap, brk): no page moves meanwhile, and the change is
 * numbered and marked for the instance.  Ranges [a, a+alen) and
 * [b, b+blen) are what it touched (lengths may be 0).  begin's token goes
 * to end. */
int agent_evict_layout_begin(void);
void agent_evict_layout_end(int token, uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);
/* fork: snapshot for the child (prepare), resume (parent), forget (child). */
void agent_evict_fork_prepare(void);
void agent_evict_fork_parent(void);
void agent_evict_fork_child(void);
/* The token the child's HELLO carries (0: none). */
uint32_t agent_evict_fork_token(void);
pid_t agent_evict_fork_asker(void);

/* thp_pool.c: the 2 MiB page pool.  Returns the pool's memfd (or -errno). */
struct usm_thp_pool;
int agent_pool_create(struct usm_thp_pool **out);
void agent_pool_forget(void);

/* pins.c: threads pinned by mode colocate (struct usm_msg_pin) */
struct usm_msg_pin;
void agent_pins_note(const struct usm_msg_pin *m);
void agent_pins_restore(void);
void agent_pins_fork_prepare(void);
void agent_pins_fork_child(void);

/* maps.c: walk /proc/self/maps or smaps without allocating. */
struct maps_entry {
	uint64_t start, end;
	char perms[5];
	bool anon;               /* no backing file ([heap] counts as anon) */
	bool heap, stack;
	bool uffd_missing;       /* smaps VmFlags "um" (smaps walks only) */
};
int agent_maps_walk(bool smaps, int (*fn)(const struct maps_entry *, void *), void *arg);

#endif /* USM_AGENT_AGENT_H */
