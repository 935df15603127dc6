/* SPDX-License-Identifier: MIT */
/*
 * core/evict.h - eviction and swap-in in the daemon host.
 *
 * A page leaves memory in three steps (see struct usm_evict_chan):
 *  1. the reclaimer asks the swap policy for victims and queues them on
 *     their processes' channels (frames go USM_PAGE_EVICTING);
 *  2. each agent moves its victims out with UFFDIO_MOVE into the channel's
 *     outbox (only the process itself can move its pages);
 *  3. the reclaimer stores the outbox pages on a swap device, records them
 *     in the process's swap table and pagemap, and frees the frames.
 * A fault on a swapped-out page reads it back (with the neighbours the
 * policy asks for) and maps it with UFFDIO_COPY; a fault on a page in
 * flight is served from the outbox.
 *
 * Locking: inst->lock guards frames, pagemaps and policy state as
 * everywhere; p->evict_mu serialises the users of one channel (reclaimer,
 * FORK_PREPARE, faults on pages in flight) and is taken before inst->lock.
 * Device I/O happens under evict_mu only, never under inst->lock.
 */
#ifndef USM_CORE_EVICT_H
#define USM_CORE_EVICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct usm_instance;
struct usm_process;
struct usm_worker;
struct usm_page;
struct usm_event;
struct usm_fork_snap;

/* ---- instance --------------------------------------------------------- */
/* Open the swap devices, pick the swap policy, start the reclaimer (in
 * the process itself: later, with usm_evict_start_reclaimer). */
int usm_evict_start(struct usm_instance *inst, char *err, size_t errlen);
int usm_evict_start_reclaimer(struct usm_instance *inst, char *err, size_t errlen);
/* (Re)initialise the reclaimer's lock and condition. */
void usm_reclaim_sync_init(struct usm_instance *inst);
void usm_evict_stop(struct usm_instance *inst);
bool usm_evict_enabled(const struct usm_instance *inst);
/* Frames ran short (or a fault waits for one): wake the reclaimer. */
void usm_reclaim_kick(struct usm_instance *inst);
/* In-process host: below the low watermark, the calling (faulting)
 * thread evicts up to max pages itself. */
void usm_reclaim_direct(struct usm_instance *inst, unsigned max);
/* In-process host: evict up to want pages now, whatever the watermarks
 * (the instance asked for frames back). */
void usm_reclaim_pages(struct usm_instance *inst, uint64_t want);

/* ---- processes -------------------------------------------------------- */
/* Set up p's channel and send it (and the device fds) to the agent, after
 * the HELLO ACK.  A forked child adopts its parent's swapped pages from
 * the FORK_PREPARE snapshot named by token.  0 or -errno. */
int usm_evict_attach(struct usm_process *p, uint32_t fork_token, int32_t ppid);
/* p's channel and swap table: a memfd for the agent, or (private_mem, the
 * in-process host) the process's own memory.  0 or -errno. */
int usm_evict_chan_create(struct usm_process *p, bool private_mem);
/* Both locks held, at exit after the pagemap is released: frames in flight
 * return to the pool. */
void usm_evict_exit(struct usm_process *p);
/* Final release of p's channel (from usm_process_put). */
void usm_evict_release(struct usm_process *p);
/* Answer a FORK_PREPARE from pid: returns the token (> 0) or -errno. */
int usm_evict_fork_prepare(struct usm_instance *inst, pid_t pid);

/* ---- called under inst->lock by core/fault.c and core/process.c -------- */
/* A swap-table entry is released (munmap, MADV_DONTNEED, exit). */
void usm_swapent_drop(struct usm_process *p, uint64_t idx);
/* mremap moved a swapped-out page. */
void usm_swapent_move(struct usm_process *p, uint64_t idx, uint64_t to);
/* A frame became evictable / stopped being so (swap policy hooks). */
void usm_evict_track(struct usm_page *pg);
void usm_evict_untrack(struct usm_page *pg);

/* ---- the reclaimer's side ------------------------------------------------ */
/* inst->lock held: queue victim pg on its process's channel (false: full). */
bool usm_evict_queue(struct usm_page *pg);
void usm_evict_kick_agent(struct usm_process *p);
/* evict_mu held: settle the agent's answers; returns requests outstanding. */
unsigned usm_evict_collect(struct usm_process *p);
/* inst->lock and evict_mu held: the content of in-flight pg, if moved. */
bool usm_evict_peek(struct usm_process *p, struct usm_page *pg, void *buf);
/* inst->lock held: in-flight pg left the address its request names. */
void usm_evict_orphan(struct usm_process *p, struct usm_page *pg);
/* inst->lock held: must a fault at va wait for a request to settle? */
bool usm_evict_busy_at(const struct usm_process *p, uint64_t va);
/* Both locks held: a fault mapped in-flight pg again from the outbox. */
void usm_evict_cancel(struct usm_process *p, struct usm_page *pg);
void usm_evict_forks_expire(struct usm_instance *inst);
/* inst->lock held: pinned frames become evictable candidates again. */
void usm_evict_unpin_all(struct usm_instance *inst);
void usm_evict_forks_fini(struct usm_instance *inst);

/* Request i's outbox page. */
void *usm_evict_outbox(const struct usm_process *p, unsigned i);

/* ---- the in-process host (core/inline.c, core/inline_evict.c) ------------ */
/* Move p's queued victims out of this process (what the agent does in the
 * daemon host). */
void usm_inline_move_queued(struct usm_process *p);
/* Ask the instance for up to `need` more frames; returns how many came. */
uint64_t usm_inline_lease_more(uint64_t need);
/* Frames came free (or the OOM policy is to decide): wake the faulting
 * threads waiting for one. */
void usm_inline_wake_faults(bool freed);
/* The in-process reclaimer's tick: frames the instance asked back. */
void usm_inline_tick(void);
/* Still too early to call the in-process host out of memory?  (Frames
 * may be coming back from another process.) */
bool usm_inline_oom_grace(void);
/* The instance has frames again: lease at the next fault. */
void usm_inline_lease_now(void);
/* p's private channel and staging area.  0, or -errno with err set. */
int usm_inline_evict_attach(struct usm_process *p, char *err, size_t errlen);
/* The layout lock (see core/inline_evict.c). */
void usm_inline_layout_write(void);
void usm_inline_layout_read(void);
void usm_inline_layout_unlock(void);
/* The same, reading the userfaultfd's events while waiting (detaching). */
void usm_inline_layout_read_draining(void);
void usm_inline_round_begin_draining(void);
/* A system call is using these pages: none is moved out until unpinned
 * (see core/inline_evict.c).  Returns the pin. */
int usm_inline_pin(const uint64_t *lo, const uint64_t *hi, unsigned n, bool all);
void usm_inline_unpin(int pin);
/* The reclaimer's round: fork and detaching wait for it to end. */
void usm_inline_round_begin(void);
void usm_inline_round_end(void);
void usm_inline_evict_fork_prepare(struct usm_process *p);
void usm_inline_evict_fork_parent(struct usm_process *p);
int usm_inline_evict_fork_child(struct usm_process *p, char *err, size_t errlen);
/* Put every swapped-out page of p back in place, outside the budget
 * (the instance is gone).  Returns how many; *lost counts the others. */
uint64_t usm_swapin_restore_all(struct usm_worker *w, struct usm_process *p, uint64_t *lost);

/* ---- the fault path (a worker, no lock held) ---------------------------- */
/* ev's page is swapped out or in flight: bring it back.  Returns an enum
 * usm_fault_result. */
int usm_swapin(struct usm_worker *w, struct usm_process *p, struct usm_event *ev);
/* Unmap a worker's swap-in scratch space (mapped on its first swap-in). */
void usm_swapin_scratch_free(struct usm_worker *w);

#endif /* USM_CORE_EVICT_H */
