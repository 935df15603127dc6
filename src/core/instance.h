/* SPDX-License-Identifier: MIT */
/*
 * core/instance.h - the framework's internals: an instance (InstanceUSM),
 * its processes, frames and workers.  Not part of the public API.
 *
 * Threads: one control thread (accepts clients, answers stats, samples
 * RSS) and `workers` fault-handling threads.  Each process belongs to one
 * worker, which handles all of its events in order, so per-process state
 * needs no lock of its own.  Frames, policy state and pagemaps are guarded
 * by the instance's policy lock (inst->lock).
 */
#ifndef USM_CORE_INSTANCE_H
#define USM_CORE_INSTANCE_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include <usm/usm.h>
#include "core/config.h"
#include "core/inline.h"
#include "core/pagemap.h"
#include "core/registry.h"
#include "core/stats.h"
#include "core/evict.h"
#include "ipc/proto.h"

#define USM_MAX_BATCH USM_RESOLVE_MAX  /* pages per resolve: 2 MiB */
#define USM_HISTORY_MAX 256   /* exited processes kept for the stats */
#define USM_BLOAT_SAMPLE 32   /* one mapped-ahead window in 32 is measured */

struct usm_worker;

/* What an epoll event refers to. */
enum usm_watch_kind { WATCH_UFFD, WATCH_SOCK, WATCH_PIDFD, WATCH_WAKE, WATCH_RPC };

struct usm_watch {
	enum usm_watch_kind kind;
	struct usm_process *proc;
};

/* A swap-in stream (core/readahead.c). */
#define USM_RA_STREAMS 8
struct usm_ra_stream {
	uint64_t next;       /* end of the group it last brought back */
	uint32_t win;        /* that group's size in pages; 0: unused */
	uint32_t used;       /* p->ra_clock when it was last continued */
};

struct usm_process {
	pid_t pid;
	char comm[16];
	int priority;
	int uffd, sock, pidfd;
	int maps_fd;                      /* /proc/<pid>/maps, for VMA bounds */
	uint64_t vma_lo, vma_hi;          /* last VMA learnt (0, 0: none) */
	struct usm_policy *policy;        /* NULL: follow the instance default */
	const struct usm_cfg_process *cfgline;   /* its `process alloc` line */
	void *priv;
	struct usm_pagemap pm;
	struct usm_counters c;
	struct usm_hist lat;
	uint64_t attached_ns;
	uint64_t rss_anon_peak, usm_at_peak;
	bool track_bloat;                 /* usm_process_track_bloat() */
	unsigned bloat_tick;              /* which windows are sampled */
	bool want_pool;                   /* usm_process_want_huge() */
	bool want_sentinels;              /* usm_process_want_sentinels() */
	_Atomic bool sentinels;           /* ... and the kernel takes them */
	int pagemap_fd;                   /* /proc/<pid>/pagemap, or -1 (core/sentinel.c) */
	struct usm_thp_pool *pool;        /* its 2 MiB page pool, once ready */
	/* In-process host: 2 MiB windows planned and not yet moved in (a
	 * fault there waits; see usm_huge_pending).  0: a free entry. */
	_Atomic uint64_t huge_busy[2 * (1 + USM_AHEAD_MAX)];
	_Atomic uint64_t bloat_pages;     /* last sample */
	bool killed;                      /* OOM sent SIGKILL */
	bool warned_oom;
	bool exiting;                     /* usm_process_exit called (policy lock) */
	bool dead;                        /* torn down; waiting to be freed */
	bool inline_host;                 /* faults handled in the process */
	struct usm_trace *trace;          /* `trace` recording, or NULL */
	/* eviction (core/evict.c) */
	struct usm_evict_chan *chan;      /* shared with the agent, or NULL */
	int chan_fd;
	pthread_mutex_t evict_mu;         /* the channel: reclaimer vs fork vs fault */
	struct usm_page *inflight[USM_EVICT_REQS];   /* frame of each request */
	unsigned ninflight;
	bool orphaned[USM_EVICT_REQS];    /* its frame has left the request's address */
	unsigned norphaned;
	uint64_t *swap_free;              /* free swap-table entries (stack) */
	uint64_t nswap_free, swap_next;
	uint32_t layout_seen;             /* the agent's layout markers processed */
	struct usm_ra_stream ra[USM_RA_STREAMS];   /* swap-in readahead */
	uint32_t ra_clock;
	uint64_t limit_frames;            /* `limit`, 0: none */
	uint64_t limit_cursor;            /* where the limit's victims were taken */
	_Atomic bool limit_stuck;         /* at its limit, nothing evictable */
	bool warned_limit;
	_Atomic int refs;                 /* freed by usm_process_put at 0 */
	_Atomic unsigned copies;          /* windows with a copier (core/copier.c) */
	uint32_t last_tid;                /* thread of its last fault (worker) */
	uint64_t other_tid_ns;            /* when another thread faulted */
	int rpc_sock;                     /* inline: lease/stats channel, or -1 */
	uint64_t nleased;                 /* inline: frames lent to it */
	struct usm_lease_page *lease_page; /* inline: asks it for frames back */
	int lease_fd;
	uint64_t refused_ns;              /* inline: last lease it got less of */
	struct usm_swap_stats inline_swap; /* inline: its own devices, pushed */
	uint64_t inline_access[3];        /* inline: scans, marked, scan ns */
	struct usm_worker *worker;
	struct usm_watch w_uffd, w_sock, w_pidfd, w_rpc;
	struct usm_list_head link;        /* inst->procs, under procs_lock */
	struct usm_list_head inbox_link;  /* worker->inbox, until it watches p */
};

/* A fault waiting for frames (oom wait / kill). */
struct usm_pending {
	struct usm_process *proc;
	uint64_t addr;
	uint32_t flags;
	uint32_t tid;                     /* the faulting thread, 0: unknown */
};

/* Where a worker runs, in mode colocate (core/placement.c). */
struct usm_placement {
	cpu_set_t start_mask;              /* the CPUs it may use */
	int cpu;                           /* pinned there, or -1: start_mask */
	bool fixed;                        /* the kernel refused: stay put */
	uint64_t period_start;
	struct usm_process *proc;          /* the thread that faulted last */
	uint32_t tid;                      /*   (0: none yet) */
	uint64_t since;                    /*   and since when only it */
	bool switched;                     /* another one faulted this period */
	int stat_fd;                       /* /proc/pid/task/tid/stat, or -1 */
	pid_t stat_pid;
	uint32_t stat_tid;
	struct usm_process *pinned_proc;   /* the thread pinned with the worker */
	uint32_t pinned_tid;               /*   (0: none) */
	cpu_set_t thread_mask;             /*   and its own mask, to put back */
	uint64_t moves;
};

struct usm_worker {
	struct usm_instance *inst;
	unsigned id;
	pthread_t thread;
	int epfd;
	int wakefd;                        /* eventfd: stop, or frames freed */
	struct usm_watch w_wake;
	pthread_mutex_t inbox_lock;        /* processes handed over, not yet watched */
	struct usm_list_head inbox;
	struct usm_pending *pending;
	size_t npending, cap_pending;
	/* The resolve plan of the ALLOC event being handled. */
	uint64_t plan_vaddr;
	unsigned plan_n;
	bool plan_huge;                    /* usm_resolve_huge */
	uint64_t ahead[USM_AHEAD_MAX];     /* usm_resolve_huge_ahead windows */
	unsigned nahead;
	struct { uint64_t vaddr; unsigned n; } extra[USM_AHEAD_MAX]; /* usm_resolve_fill */
	unsigned nextra;
	struct usm_page *plan[USM_MAX_BATCH];
	uint64_t fault_t0;                 /* when the fault being handled was read */
	uint32_t fault_tid;                /* and its thread, 0: unknown */
	bool handed;                       /* its window went to a copier */
	/* In-process host: the 2 MiB region whose planned window this slot
	 * is mapping (set under inst->lock when planned), 0: none. */
	_Atomic uint64_t mapping_region;
	void *swapbuf;                     /* swap-in scratch (core/swapin.c) */
	struct usm_placement place;
};

struct usm_instance {
	char name[64];
	struct usm_config cfg;
	pthread_mutex_t lock;             /* the policy lock */

	/* frames */
	struct usm_page *frames;
	uint64_t nframes, nfree, next_fresh;
	uint64_t lent;                    /* frames lent to in-process hosts */
	uint64_t cap;                     /* frames this host may hold: nframes,
					   * or what the in-process host leased */
	uint64_t reserve;                 /* frames beyond the budget, for
					   * usm_frames_reserve (0: none) */
	uint64_t ndesc;                   /* descriptors: nframes + reserve */
	uint64_t *free_stack;
	uint64_t desc_ready;              /* descriptors touched ahead of need
					   * (usm_frames_prefault) */

	struct usm_policy *default_policy;
	struct usm_counters c;            /* totals, incl. exited processes */
	struct usm_hist lat;

	pthread_mutex_t procs_lock;       /* procs list and the history */
	struct usm_list_head procs;
	struct usm_stat_proc *history;    /* ring of exited processes */
	size_t history_len, history_next;
	unsigned next_worker;

	struct usm_worker *workers;
	unsigned nworkers;
	/* mode colocate: a bit per CPU some worker is pinned to, so that two
	 * workers never share one (core/placement.c) */
	_Atomic uint64_t cpu_claims[CPU_SETSIZE / 64];
	struct usm_copy_queue *copyq;     /* copier threads, or NULL */

	char sock_path[256];
	int listen_fd;
	int ctl_epfd;
	int stop_fd;                      /* eventfd: stop the control loop */
	_Atomic bool stopping;
	uint64_t start_ns;
	void *zero;                       /* USM_MAX_BATCH zero pages, read-only */
	const struct usm_inline_host *host;   /* in-process host, else NULL */

	/* eviction */
	struct usm_swap_policy *swap_policy;   /* NULL: no swap device */
	uint64_t wm_low, wm_high;         /* free frames */
	pthread_t reclaimer;
	bool reclaimer_running;
	pthread_mutex_t reclaim_mu;
	pthread_cond_t reclaim_cv;
	bool reclaim_kicked;
	_Atomic bool reclaim_stuck;       /* nothing evictable: OOM decides */
	bool direct_reclaim;              /* in-process: faulting threads evict */
	_Atomic uint64_t swap_full_at;    /* slots used + 1 when a store found
					   * no room, 0 while there is room */
	uint64_t referenced_asked;        /* usm_page_referenced calls (lock) */
	struct usm_list_head forks;       /* snapshots for forked children */
	struct usm_list_head pinned;      /* frames that could not be moved out */
	uint32_t fork_seq;
	/* In-process hosts' devices: what exited ones stored and loaded,
	 * and their access scans (scans, frames marked, ns). */
	struct usm_swap_stats inline_swap_gone;
	uint64_t inline_access_gone[3];
};

extern struct usm_instance *usm_inst;

/* instance.c */
int usm_instance_create(struct usm_instance **out, const char *name,
			struct usm_config *cfg, char *err, size_t errlen);
/* An instance inside a managed process: no socket, no workers. */
int usm_instance_create_host(struct usm_instance **out, const char *name,
			     struct usm_config *cfg, const struct usm_inline_host *host,
			     char *err, size_t errlen);
int usm_instance_run(struct usm_instance *inst);   /* until stopped */
/* Name a thread of the instance "<base><index>" (no index if negative). */
void usm_thread_name(pthread_t t, const char *base, int index);
void usm_instance_stop(struct usm_instance *inst);
void usm_instance_destroy(struct usm_instance *inst);
struct usm_policy *usm_instance_policy_of(struct usm_process *p);

/* Drop a reference to p; the last one frees it (after teardown). */
void usm_process_put(struct usm_process *p);

/* frames.c */
int usm_frames_init(struct usm_instance *inst);
/* Let the calling thread's frame takes dip into the reserve (or stop). */
void usm_frames_reserve(bool open);
void usm_frames_fini(struct usm_instance *inst);
/* Return a mapped frame of a process to the pool (lock held). */
void usm_frame_release(struct usm_page *pg);
uint64_t usm_frames_lend(uint64_t want);
void usm_frames_unlend(uint64_t n);
/* Fault in the descriptors of frames [0, upto) now, off the policy lock
 * (one caller at a time). */
void usm_frames_prefault(struct usm_instance *inst, uint64_t upto);

/* process.c */
struct usm_process *usm_process_new(struct usm_instance *inst, const struct usm_msg_hello *h,
				    int uffd, int sock, char *err, size_t errlen);
void usm_process_teardown(struct usm_process *p);
void usm_process_snapshot(const struct usm_process *p, struct usm_stat_proc *out);
void usm_counters_snapshot(const struct usm_counters *c, const struct usm_hist *h,
			   struct usm_stat_counters *out);

/* fault.c: event handling on a worker (or a faulting thread, inline) */
enum usm_fault_result {
	USM_FAULT_DONE,      /* the faulting page is mapped */
	USM_FAULT_RETRY,     /* not now: no frame yet, or events to read first */
	USM_FAULT_FAILED,    /* cannot be mapped: no such registered mapping */
};
enum usm_fault_result usm_fault_resolve(struct usm_worker *w, struct usm_process *p,
					uint64_t addr, uint32_t flags, uint32_t tid);
void usm_fault_record_latency(struct usm_process *p, uint64_t t0);
/* Lock held: no frame for ev and nothing to evict: the OOM policy decides. */
enum usm_oom_action usm_fault_oom(struct usm_event *ev);
/* Lock held: the entry at va leaves p (frame, frame in flight, or slot). */
void usm_fault_drop_entry(struct usm_process *p, uint64_t va);
/* Lock not held: give back the planned pages of [from, to). */
void usm_fault_unplan(struct usm_process *p, uint64_t from, uint64_t to);

/* The largest window's aligned region (2 MiB) that holds va. */
static inline uint64_t usm_region_of(uint64_t va)
{
	return va & ~((uint64_t)USM_RESOLVE_MAX * usm_inst->cfg.page_size - 1);
}

/* inline.c: is another thread of this (in-process) host mapping a
 * window planned in va's 2 MiB region? */
bool usm_inline_mapping(const struct usm_worker *self_slot, uint64_t va);

/* worker.c: the fault being handled was passed to a thread of the process
 * (the agent's 2 MiB pool), which needs a CPU to finish it: a hybrid
 * worker sleeps after this batch instead of polling. */
void usm_worker_leave_cpu(void);

/* placement.c */
void usm_place_init(struct usm_worker *w);
void usm_place_fini(struct usm_worker *w);
void usm_place_note(struct usm_worker *w, struct usm_process *p, uint32_t tid, uint64_t now);
void usm_place_tick(struct usm_worker *w, uint64_t now);
void usm_place_forget(struct usm_worker *w, struct usm_process *p);
bool usm_place_colocated(const struct usm_worker *w);

/* copier.c: copies handed over by workers (see there). */
struct usm_copy_queue;
struct usm_copy_run { uint64_t from, to; };
int  usm_copiers_start(struct usm_instance *inst);
void usm_copiers_stop(struct usm_instance *inst);
bool usm_copier_offer(struct usm_process *p, const struct usm_copy_run *runs, unsigned nruns,
		      uint64_t fault, uint64_t t0, uint32_t tid);
void usm_copier_drain(struct usm_process *p);
void usm_fault_free(struct usm_worker *w, struct usm_process *p, uint64_t start,
		    uint64_t end, bool unmap);
void usm_fault_remap(struct usm_worker *w, struct usm_process *p, uint64_t from,
		     uint64_t to, uint64_t len);
void usm_handle_uffd(struct usm_worker *w, struct usm_process *p);
void usm_retry_pending(struct usm_worker *w);
void usm_drop_pending(struct usm_worker *w, struct usm_process *p);

/* huge.c */
enum usm_fault_result;
bool usm_huge_move(struct usm_process *p, uint64_t dst, bool hold, bool faulted);
bool usm_huge_own_remove(struct usm_process *p, uint64_t start, uint64_t end);
bool usm_huge_pending(struct usm_process *p, uint64_t va);
void usm_huge_done(struct usm_process *p, uint64_t base);
int usm_resolve_record(struct usm_process *p, uint64_t vaddr, struct usm_page **pages,
		       unsigned n);
/* core/sentinel.c: map va (the last page of a window mapped ahead) as a
 * write sentinel; returns the bytes mapped (0: map it as usual). */
uint64_t usm_sentinel_map(struct usm_process *p, uint64_t va);
void usm_sentinel_close(struct usm_process *p);
void usm_pool_attach(struct usm_process *p, int memfd);
void usm_pool_detach(struct usm_process *p);

/* bloat.c */
/* Sum Rss - Referenced over pid's registered mappings, in pages: 0, or
 * -errno (-ENOENT: it has none left, it is exiting). */
int usm_bloat_sample(pid_t pid, uint64_t *pages);

/* inline_rpc.c: the daemon's side of the in-process host */
/* Attach pid's channel; *page_fd gets its lease page (for the ACK). */
int usm_inline_attach_rpc(struct usm_instance *inst, int sock, pid_t pid, int *page_fd,
			  char *err, size_t errlen);
void usm_inline_serve_rpc(struct usm_process *p);
void usm_inline_release(struct usm_process *p);
int usm_inline_send_config(struct usm_process *p);
/* The in-process hosts' devices and access scans (scans, frames marked,
 * ns), added to sum and access (takes procs_lock). */
void usm_inline_swap_stats(struct usm_instance *inst, struct usm_swap_stats *sum,
			   uint64_t access[3]);

/* reclaim.c (with core/evict.h) */
void usm_evict_fini(struct usm_instance *inst);

/* worker.c */
int usm_workers_start(struct usm_instance *inst);
void usm_workers_stop(struct usm_instance *inst);
int usm_worker_adopt(struct usm_worker *w, struct usm_process *p);
void usm_worker_kick(struct usm_worker *w);

/* control.c */
int usm_control_open(struct usm_instance *inst, char *err, size_t errlen);
int usm_control_loop(struct usm_instance *inst);
void usm_control_close(struct usm_instance *inst);

#endif /* USM_CORE_INSTANCE_H */
